"""`make bench --only backfill`: `memory-bridge backfill` over a large history, as figures (dev-only).

A history of N messages over N/50 conversations (about 50 messages each, five conversations per
customer, every sixth message an agent's reply) is seeded in a Conversations sandbox that this process
runs (its HTTP server threads answer the backfill); the Memory sandbox and moto run as processes of
their own (bench.backends). The backfill CLI runs as a subprocess of its own, so that its peak memory
and resident size over time (/proc: VmHWM and VmRSS, read each second) and CPU time (getrusage of that
one child, through os.wait4) are the command's alone. Each size gets a fresh store, ledger table and queue.

Reported per size: wall time, messages a second, Memory requests per message by kind (Lookups, profile
creations, posts, checks), Conversations API calls by kind, peak RSS, and RSS in the first and last
tenth of the run (flat memory: the peaks of two sizes and the growth within one run).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import urllib3

from memory_bridge_dev.customer_chats import AGENT_ATTRIBUTES, BUSINESS_NUMBER

ROOT = Path(__file__).resolve().parents[2]
START = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)
MESSAGES_PER_CONVERSATION = 50
CONVERSATIONS_PER_CUSTOMER = 5
AGENT_EVERY = 6  # every sixth message is the agent's reply
AGENT = "agent-bench@example.com"
# Memory's operations (the sandbox's names) as the report groups them.
MEMORY_KINDS = {
    "CreateProfilesLookup": "lookups",
    "CreateProfile": "creates",
    "CreateProfileObservation": "posts",
    "ListProfileObservations": "checks",
}


def seed_history(sandbox: Any, messages: int) -> dict[str, int]:
    """`messages` messages in closed conversations of 50, one a day apart per customer's five; returns
    what was seeded."""
    conversations = max(1, messages // MESSAGES_PER_CONVERSATION)
    customers = max(1, conversations // CONVERSATIONS_PER_CUSTOMER)
    seeded = agent_messages = 0
    for number in range(conversations):
        customer = f"+1555400{number % customers:04d}"
        opened = START + timedelta(minutes=number)
        sid = sandbox.add_conversation(date_created=opened, state="closed")
        sandbox.add_participant(sid, address=customer, proxy_address=BUSINESS_NUMBER)
        sandbox.add_participant(sid, identity=AGENT, attributes=AGENT_ATTRIBUTES)
        # The last conversation takes what is left, so that the total is exactly `messages`.
        count = messages - seeded if number == conversations - 1 else MESSAGES_PER_CONVERSATION
        for index in range(count):
            by_agent = index % AGENT_EVERY == AGENT_EVERY - 1
            agent_messages += by_agent
            sandbox.add_message(
                sid,
                AGENT if by_agent else customer,
                f"bench history c{number} m{index} " + "lorem ipsum dolor sit amet " * 3,
                date_created=opened + timedelta(seconds=index),
            )
        seeded += count
    return {
        "messages": seeded,
        "conversations": conversations,
        "customers": customers,
        "agent_messages": agent_messages,
    }


class RssSampler:
    """The child's resident size (VmRSS, /proc) once a second, while it runs, and its high-water mark
    (VmHWM). Not getrusage's ru_maxrss: Linux carries the parent's high-water mark over the spawn into
    the child's, and the parent here holds the whole seeded history."""

    def __init__(self, pid: int):
        self.pid = pid
        self.samples_kb: list[int] = []
        self.peak_kb = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        status = Path(f"/proc/{self.pid}/status")
        while not self.stop.wait(1.0):
            try:
                text = status.read_text()
            except OSError:
                return
            for line in text.splitlines():
                if line.startswith("VmRSS:"):
                    self.samples_kb.append(int(line.split()[1]))
                elif line.startswith("VmHWM:"):
                    self.peak_kb = max(self.peak_kb, int(line.split()[1]))

    def close(self) -> list[int]:
        self.stop.set()
        self.thread.join(timeout=5)
        return self.samples_kb


def run_backfill(argv: list[str], env: dict[str, str]) -> dict[str, Any]:
    """The CLI in a child process: its exit code, JSON report, stderr's tail, wall time, CPU time (its
    own getrusage, by os.wait4), peak RSS (its VmHWM, read each second until it ends) and RSS samples."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        started = time.perf_counter()
        process = subprocess.Popen(
            [sys.executable, "-m", "memory_bridge_cli.main", *argv],
            env=env,
            cwd=ROOT,
            stdout=out,
            stderr=err,
            text=True,
        )
        sampler = RssSampler(process.pid)
        _, status, usage = os.wait4(process.pid, 0)
        seconds = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
        samples = sampler.close()
        out.seek(0)
        err.seek(0)
        text, errors = out.read(), err.read()
    return {
        "code": process.returncode,
        "report": json.loads(text) if text.strip() else {},
        "stderr_tail": errors[-1500:],
        "seconds": seconds,
        "peak_rss_mb": round(sampler.peak_kb / 1024, 1),
        "cpu_seconds": round(usage.ru_utime + usage.ru_stime, 1),
        "rss_samples_kb": samples,
    }


def rss_tenths(samples_kb: list[int]) -> tuple[float | None, float | None]:
    """Mean RSS (MB) over the first and the last tenth of the samples (None when too few)."""
    if len(samples_kb) < 10:
        return None, None
    tenth = len(samples_kb) // 10
    first, last = samples_kb[:tenth], samples_kb[-tenth:]
    return round(sum(first) / len(first) / 1024, 1), round(sum(last) / len(last) / 1024, 1)


def memory_requests(sandbox_url: str, store_id: str) -> Counter[str]:
    """Memory's requests for `store_id`, by kind (every attempt counts, a 429 or a 5xx too)."""
    requests = urllib3.request("GET", sandbox_url + "/__sandbox/requests").json()["requests"]
    kinds: Counter[str] = Counter()
    for request in requests:
        if f"/Stores/{store_id}/" in request["path"]:
            kinds[MEMORY_KINDS.get(request["operation"], request["operation"])] += 1
    return kinds


def one_size(
    messages: int,
    urls: dict[str, str],
    number: int,
    credentials: tuple[str, str],
    rate: float,
    latency_ms: float,
) -> dict[str, Any]:
    """Seed a fresh history, table, queue and store, run the backfill once over it, and measure."""
    import boto3

    from memory_bridge_dev.aws_resources import (
        create_dead_letter_queue,
        create_idempotency_table,
        load_template,
    )
    from memory_bridge_dev.conversations_sandbox import ConversationsSandbox
    from memory_bridge_dev.conversations_sandbox import Fault as ConversationsFault

    account, token = credentials
    template = load_template()
    table = create_idempotency_table(boto3.client("dynamodb"), f"backfill-ledger-{number}", template)
    queue_url = create_dead_letter_queue(boto3.client("sqs"), f"backfill-dlq-{number}", template)
    store_id = urllib3.request(
        "POST", urls["sandbox"] + "/__sandbox/stores", json={"displayName": f"backfill{number}"}
    ).json()["id"]
    conversations = ConversationsSandbox(account, token)
    try:
        seeded = seed_history(conversations, messages)
        conversations_url = conversations.serve()
        if latency_ms:  # both APIs across the internet; the sandboxes alone answer in < 1 ms
            conversations.add_fault(ConversationsFault(latency=latency_ms / 1000))
        argv = [
            "backfill",
            "--since",
            (START - timedelta(days=1)).date().isoformat(),
            "--until",
            (START + timedelta(days=30)).date().isoformat(),
            "--rate",
            f"{rate:g}",
            "--store",
            store_id,
            "--queue-url",
            queue_url,
            "--table",
            table,
            "--memory-api-url",
            urls["sandbox"],
            "--conversations-api-url",
            conversations_url,
            "--json",
        ]
        env = {
            **os.environ,
            "TWILIO_ACCOUNT_SID": account,
            "TWILIO_AUTH_TOKEN": token,
            "MEMORY_BRIDGE_LOCAL_STATE": str(Path(tempfile.gettempdir()) / "no-local-stack.json"),
        }
        ran = run_backfill(argv, env)
        api_calls = conversations.calls()
    finally:
        conversations.close()
    return figures(seeded, ran, memory_requests(urls["sandbox"], store_id), api_calls, rate, latency_ms)


def figures(
    seeded: dict[str, int],
    ran: dict[str, Any],
    memory: Counter[str],
    api_calls: Counter[str],
    rate: float,
    latency_ms: float,
) -> dict[str, Any]:
    report, messages = ran["report"], seeded["messages"]
    first, last = rss_tenths(ran["rss_samples_kb"])
    counts = report.get("messages", {})
    handled = counts.get("posted", 0) + counts.get("alreadyPosted", 0) + counts.get("parked", 0)
    return {
        **seeded,
        "rate": rate,
        "latency_ms": latency_ms,
        "exit": ran["code"],
        "complete": bool(report.get("complete")),
        "posted": counts.get("posted"),
        "already_posted": counts.get("alreadyPosted"),
        "parked": counts.get("parked"),
        "left": counts.get("left"),
        "seconds": round(ran["seconds"], 1),
        "messages_per_second": round(handled / ran["seconds"], 1),
        "cpu_seconds": ran["cpu_seconds"],
        "memory_requests": dict(memory),
        "memory_requests_per_message": round(sum(memory.values()) / messages, 4),
        "memory_requests_per_message_by_kind": {k: round(v / messages, 4) for k, v in memory.items()},
        "conversations_api_calls": sum(api_calls.values()),
        "conversations_api_calls_by_operation": dict(api_calls),
        "peak_rss_mb": ran["peak_rss_mb"],
        "rss_first_tenth_mb": first,
        "rss_last_tenth_mb": last,
        "report_seconds": report.get("seconds"),
        "stderr_tail": "" if ran["code"] == 0 else ran["stderr_tail"],
    }


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--backfill-messages",
        type=int,
        default=100_000,
        help="the backfill section's history (50 messages a conversation); a quarter of it runs first, "
        "to compare peak memory",
    )
    parser.add_argument(
        "--backfill-full-only",
        action="store_true",
        help="skip the quarter-size run (its peak memory is then not compared); for a long run on a "
        "machine shared with other work",
    )
    parser.add_argument(
        "--backfill-rate", type=float, default=1000.0, help="the backfill's --rate (Memory requests a second)"
    )
    parser.add_argument(
        "--backfill-latency-ms",
        type=float,
        default=0.0,
        help="Memory's and Conversations' answer time per call in the backfill section (default: the "
        "sandboxes' own)",
    )


def section(
    args: argparse.Namespace,
    backends: Callable[[], AbstractContextManager[dict[str, str]]],
    aws_environment: Callable[[str], None],
    credentials: tuple[str, str],
) -> list[dict[str, Any]]:
    sizes = sorted({max(args.backfill_messages // 4, 1), args.backfill_messages})
    if args.backfill_full_only:
        sizes = [args.backfill_messages]
    print(f"• backfill: histories of {sizes} messages…", flush=True)
    return run(
        sizes,
        backends,
        aws_environment,
        credentials,
        rate=args.backfill_rate,
        latency_ms=args.backfill_latency_ms,
    )


def run(
    sizes: list[int],
    backends: Callable[[], AbstractContextManager[dict[str, str]]],
    aws_environment: Callable[[str], None],
    credentials: tuple[str, str],
    *,
    rate: float,
    latency_ms: float,
) -> list[dict[str, Any]]:
    """Each size in turn, smallest first, against one moto and one Memory sandbox."""
    rows = []
    with backends() as urls:
        aws_environment(urls["moto"])
        for number, size in enumerate(sorted(sizes)):
            print(f"  backfill of {size} messages…", flush=True)
            rows.append(one_size(size, urls, number, credentials, rate, latency_ms))
            print(f"  {size} messages: {summary_line(rows[-1])}", flush=True)
    return rows


def summary_line(row: dict[str, Any]) -> str:
    kinds = row["memory_requests"]
    return (
        f"{row['seconds']} s, {row['messages_per_second']} msg/s, "
        f"{row['memory_requests_per_message']} Memory requests a message "
        f"({kinds.get('lookups', 0)} Lookups, {kinds.get('creates', 0)} creates, {kinds.get('posts', 0)} "
        f"posts, {kinds.get('checks', 0)} checks), {row['conversations_api_calls']} Conversations calls, "
        f"peak RSS {row['peak_rss_mb']} MB (first/last tenth {row['rss_first_tenth_mb']}/"
        f"{row['rss_last_tenth_mb']} MB), exit {row['exit']}"
    )


def render(rows: list[dict[str, Any]]) -> list[str]:
    if not rows:
        return []
    head = rows[0]
    lines = [
        "",
        f"Backfill (memory-bridge backfill in a child process; Memory sandbox and moto as processes, "
        f"Conversations sandbox in the bench's; each API answers in {head['latency_ms']:g} ms; "
        f"--rate {head['rate']:g}; 50 messages a conversation, 5 conversations a customer, 1 in "
        f"{AGENT_EVERY} an agent's)",
    ]
    lines += [
        f"  {row['messages']:>7} messages / {row['conversations']} conversations / {row['customers']} "
        f"customers: " + summary_line(row)
        for row in rows
    ]
    return lines


def verdicts(rows: list[dict[str, Any]]) -> Iterator[tuple[str, str, bool]]:
    for row in rows:
        per = row["memory_requests_per_message"]
        yield (f"backfill {row['messages']}: Memory requests a message ≤ 0.15", f"{per}", per <= 0.15)
        yield (
            f"backfill {row['messages']}: every message handled, once",
            f"posted {row['posted']}, exit {row['exit']}",
            row["complete"] and row["posted"] == row["messages"],
        )
    if len(rows) > 1:
        small, large = rows[0], rows[-1]
        growth = round(large["peak_rss_mb"] / small["peak_rss_mb"], 2)
        yield (
            f"backfill peak RSS {large['messages']} vs {small['messages']} ≤ 1.25 x",
            f"{growth}x ({large['peak_rss_mb']} vs {small['peak_rss_mb']} MB)",
            growth <= 1.25,
        )
