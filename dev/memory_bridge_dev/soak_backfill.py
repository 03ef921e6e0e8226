"""`make soak`'s backfill phase (dev-only): a history that `memory-bridge backfill` brings in while the
soak's live webhooks arrive for the same conversations.

  • before sending, some customers' conversations get a history in the stack's Conversations sandbox
    (over its REST API, dated two days back, every fifth message their agent's);
  • some of those history messages are also delivered live as webhooks, mixed into the sending (a
    webhook racing the backfill for the same MessageSid);
  • while the senders run (Memory failing 30 % of requests), the backfill runs in a child process and
    is killed with SIGKILL, at a named step of the replay engine it drives and at a random time, then
    run again;
  • after Memory heals and the dead-letter queue is replayed (what the backfill parked included), the
    killed runs' leases end and the backfill runs until it exits 0.

The accounting (`history_accounting`) then finds every history message on its customer's profile
exactly once, with its date, an agent's labelled "Agent: …" with the agents' source.
"""

from __future__ import annotations

import json
import os
import random
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import urllib3

from memory_bridge_dev import crash_points
from memory_bridge_dev.customer_chats import Chat

ROOT = Path(__file__).resolve().parents[2]
BODY_PREFIX = "soak history "
AGENT_EVERY = 5  # every fifth history message is the agent's


@dataclass(frozen=True)
class HistoryMessage:
    sid: str
    customer: int
    body: str
    by_agent: bool
    index: int
    date_created: datetime

    def content(self) -> str:
        """What Memory must hold for it: the body, an agent's labelled as the webhook labels it."""
        return ("Agent: " if self.by_agent else "") + self.body


@dataclass
class BackfillRuns:
    """What the backfill's child processes did: one line each."""

    runs: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, phase: str, where: str, ended: crash_points.ReplayProcess) -> dict[str, Any]:
        report: dict[str, Any] = {}
        if ended.stdout.strip():
            try:
                report = json.loads(ended.stdout)
            except ValueError:
                report = {}
        messages = report.get("messages") or {}
        run = {
            "phase": phase,
            "kill": where,
            "exit": ended.code,
            "killed": ended.killed or "no",
            "seconds": round(ended.seconds, 1),
            "posted": messages.get("posted"),
            "already_posted": messages.get("alreadyPosted"),
            "parked": messages.get("parked"),
            "left": messages.get("left"),
        }
        with self.lock:
            self.runs.append(run)
        print(
            f"  backfill ({phase}, kill {where}): exit {ended.code}, killed {run['killed']}, "
            f"posted {run['posted']}, already {run['already_posted']}, parked {run['parked']}, "
            f"left {run['left']}",
            flush=True,
        )
        return run


def pick_customers(chats: dict[int, Chat], count: int, rng: random.Random) -> list[int]:
    """`count` customers whose conversation has an agent (their history has agent replies)."""
    with_agent = sorted(customer for customer, chat in chats.items() if chat.agent)
    return sorted(rng.sample(with_agent, min(count, len(with_agent))))


def seed_history(
    info: dict[str, Any], chats: dict[int, Chat], customers: list[int], per_customer: int
) -> list[HistoryMessage]:
    """`per_customer` messages in each chosen customer's conversation, over the sandbox's REST API
    (POST …/Messages with DateCreated, as an import into Twilio would make them)."""
    from urllib.parse import urlencode

    pool = urllib3.PoolManager(maxsize=2, retries=False)
    headers = {
        **urllib3.make_headers(basic_auth=f"{info['account_sid']}:{info['auth_token']}"),
        "Content-Type": "application/x-www-form-urlencoded",
    }
    start = (datetime.now(UTC) - timedelta(days=2)).replace(microsecond=0)
    history = []
    for customer in customers:
        chat = chats[customer]
        for n in range(per_customer):
            by_agent = n % AGENT_EVERY == AGENT_EVERY - 1
            body = f"{BODY_PREFIX}c{customer:04d} m{n:02d}"
            when = start + timedelta(minutes=customer, seconds=n)
            fields = {
                "Author": str(chat.agent if by_agent else chat.customer),
                "Body": body,
                "DateCreated": when.strftime("%Y-%m-%dT%H:%M:%SZ"),
            }
            answer = pool.request(
                "POST",
                f"{info['conversations_url']}/v1/Conversations/{chat.conversation_sid}/Messages",
                body=urlencode(fields),
                headers=headers,
                timeout=10.0,
            )
            if answer.status != 201:
                raise RuntimeError(f"seeding the history: HTTP {answer.status} {answer.data[:200]!r}")
            made = answer.json()
            history.append(HistoryMessage(made["sid"], customer, body, by_agent, made["index"], when))
    return history


def backfill_argv() -> list[str]:
    """The backfill of the last week, everything else from the local stack's state file."""
    return ["backfill", "--since", "7d", "--json"]


def backfill_env(state: Path) -> dict[str, str]:
    return {**os.environ, "MEMORY_BRIDGE_LOCAL_STATE": str(state), "PYTHONUNBUFFERED": "1"}


def while_sending(
    state: Path, rng: random.Random, sending_done: threading.Event, runs: BackfillRuns, delay: float
) -> None:
    """After `delay` s of sending: a run killed at a named step, one killed at a random time (and more
    while none was killed: a run can end before its kill), then runs until one exits 0 or the senders
    are done (what is left then is for the run after the heal)."""
    if sending_done.wait(delay):
        return
    env = backfill_env(state)
    kills: list[tuple[tuple[str, int] | None, int | None]] = [
        ((rng.choice(["claimed", "posted", "settled"]), rng.randint(1, 3)), None),
        (None, rng.randrange(500, 3000)),
    ]
    killed = 0
    while kills:
        step, after_ms = kills.pop(0)
        ended = crash_points.run_replay(
            backfill_argv(), env, step=step, kill_after_ms=after_ms, timeout=300, cwd=ROOT
        )
        runs.add("while sending", f"{step[0]}#{step[1]}" if step else f"{after_ms} ms", ended)
        killed += ended.killed is not None
        if not kills and not killed and len(runs.runs) < 4:  # a run that ended first: kill another
            kills.append((("claimed", 1), None))
    while not sending_done.is_set():
        ended = crash_points.run_replay(backfill_argv(), env, timeout=300, cwd=ROOT)
        runs.add("while sending", "none", ended)
        if ended.code == 0:
            return
        sending_done.wait(2.0)


def after_heal(state: Path, dynamodb: Any, table: str, runs: BackfillRuns) -> int:
    """The killed runs' leases end (their hold passes), then the backfill runs until it exits 0 (at most
    three runs); returns how many messages those runs parked (the caller replays them)."""
    crash_points.expire_leases(dynamodb, table)
    parked = 0
    for _ in range(3):
        ended = crash_points.run_replay(backfill_argv(), backfill_env(state), timeout=300, cwd=ROOT)
        run = runs.add("after the heal", "none", ended)
        parked += run["parked"] or 0
        if ended.code == 0:
            break
        time.sleep(1.0)
    return parked


def history_accounting(
    history: list[HistoryMessage],
    observations: list[dict[str, Any]],
    profiles: dict[int, str],
    source: str,
    still_parked: set[str],
) -> dict[str, int]:
    """Per history message: Memory holds its content once, more than once, or not at all (still parked
    apart); and whether every copy is on its customer's profile (`profiles`: customer → profile id)
    with the right source (the agents' for an agent's), dated when it was said."""
    found: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for observation in observations:
        found[str(observation.get("content"))].append(observation)
    counts = dict.fromkeys(
        (
            "history_messages",
            "posted_once",
            "posted_more_than_once",
            "never_posted",
            "still_parked",
            "agents_labelled",
            "landed_elsewhere",
            "dated_wrong",
        ),
        0,
    )
    counts["history_messages"] = len(history)
    for message in history:
        copies = found.get(message.content(), [])
        if len(copies) > 1:
            counts["posted_more_than_once"] += 1
        elif copies:
            counts["posted_once"] += 1
            counts["agents_labelled"] += message.by_agent
        elif message.sid in still_parked:
            counts["still_parked"] += 1
        else:
            counts["never_posted"] += 1
        wanted = {
            "profileId": profiles.get(message.customer),
            "source": source + ("-agent" if message.by_agent else ""),
        }
        if any({key: o.get(key) for key in wanted} != wanted for o in copies):
            counts["landed_elsewhere"] += 1
        if any(_when(o.get("occurredAt")) != message.date_created for o in copies):
            counts["dated_wrong"] += 1
    return counts


def _when(text: Any) -> datetime | None:
    try:
        return datetime.fromisoformat(str(text).replace("Z", "+00:00")).replace(microsecond=0)
    except ValueError:
        return None


def accounting_ok(counts: dict[str, int], agent_messages: int) -> bool:
    return (
        counts["posted_once"] == counts["history_messages"]
        and counts["agents_labelled"] == agent_messages
        and counts["landed_elsewhere"] == 0
        and counts["dated_wrong"] == 0
    )
