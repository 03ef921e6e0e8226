"""`make bench`: cold start, warm path, replay throughput, memory and package size, as figures.

Machines here are shared and noisy, so every figure is a median or a ratio measured side by side in
the same run. The table is printed and the same figures are written as JSON to bench/results/.
moto's server and the Memory sandbox run as processes of their own, so that the CPU, memory and
call counts below are the bridge's alone.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import urllib3

from memory_bridge_dev import backfill_bench, redaction_bench
from memory_bridge_dev.aws_resources import load_template
from memory_bridge_dev.conversations_sandbox import ConversationsSandbox
from memory_bridge_dev.conversations_sandbox import Fault as ConversationsFault
from memory_bridge_dev.customer_chats import Chat, InProcessSeeder, Seeder, message_params
from memory_bridge_dev.lambda_model import (
    MEMORY_SIZES,
    PRICE_DATE,
    REST_API_PRICE_PER_MILLION,
    ColdStart,
    Invocation,
    cold_first_answer_ms,
    cpu_factor,
    modelled_ms,
    percentile,
    size_row,
    template_memory_size,
)
from memory_bridge_dev.parking import free_port, park_observations
from memory_bridge_dev.sam_tools import SAM, sam_environment

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "bench" / "results"
DEV_ACCOUNT_SID = "AC00000000000000000000000000000000"
DEV_AUTH_TOKEN = "dev-auth-token-0123456789abcdef"
SECTIONS = ["cold", "warm", "replay", "scale", "backfill", "size", "redaction"]


# ---- helpers: moto and the sandbox as processes ------------------------------------------------------


@contextmanager
def backends() -> Iterator[dict[str, str]]:
    moto_port, sandbox_port = free_port(), free_port()
    moto = subprocess.Popen(
        [sys.executable, "-m", "memory_bridge_dev.moto_process", "--port", str(moto_port)],
        stdout=subprocess.PIPE,
        text=True,
    )
    sandbox = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "memory_bridge_dev.sandbox",
            "--port",
            str(sandbox_port),
            "--user",
            DEV_ACCOUNT_SID,
            "--password",
            DEV_AUTH_TOKEN,
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert moto.stdout is not None
        assert sandbox.stdout is not None
        moto.stdout.readline()
        sandbox.stdout.readline()
        yield {"moto": f"http://127.0.0.1:{moto_port}", "sandbox": f"http://127.0.0.1:{sandbox_port}"}
    finally:
        for process in (moto, sandbox):
            process.terminate()
            process.wait(timeout=20)


def aws_environment(moto_url: str) -> None:
    os.environ.update(
        AWS_ENDPOINT_URL=moto_url,
        AWS_ACCESS_KEY_ID="bench",
        AWS_SECRET_ACCESS_KEY="bench",
        AWS_DEFAULT_REGION="us-east-1",
    )
    os.environ.pop("AWS_PROFILE", None)


# ---- 1 and 2. the webhook as Lambda runs it, beside the simple peer -------------------------------------

# "baseline" joins them with --baseline REF: memory-bridge at that commit, interleaved with the rest.
APPS: tuple[str, ...] = ("bridge", "peer")
WEBHOOK_URL = "https://abc123.execute-api.us-east-1.amazonaws.com/Prod/webhooks/conversations"


class Environment:
    """One fresh process as Lambda's execution environment (memory_bridge_dev.bench_child)."""

    def __init__(self, app: str, env: dict[str, str], memory_mb: int, count_calls: bool = False):
        command = [
            sys.executable,
            "-m",
            "memory_bridge_dev.bench_child",
            "--app",
            app,
            "--memory-mb",
            str(memory_mb),
        ]
        if count_calls:
            command.append("--count-calls")
        self.process = subprocess.Popen(
            command, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT
        )
        self.init: dict[str, Any] = self._read()

    def _read(self) -> dict[str, Any]:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            self.process.wait(timeout=30)
            raise RuntimeError(f"bench child ended early (exit {self.process.returncode})")
        answer: dict[str, Any] = json.loads(line)
        return answer

    def send(self, command: dict[str, Any]) -> dict[str, Any]:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(command) + "\n")
        self.process.stdin.flush()
        return self._read()

    def run(self, events: list[dict[str, Any]]) -> dict[str, Any]:
        return self.send({"events": events})

    def close(self) -> dict[str, Any]:
        final = self.send({"exit": True})
        self.process.wait(timeout=30)
        return final


class WebhookEvents:
    """Signed API Gateway events for onMessageAdded, each MessageSid new, from a fixed set of customers,
    each writing in an SMS conversation of their own in the Conversations sandbox (as Twilio has it: the
    webhook carries the conversation's ChatServiceSid and the author's ParticipantSid, and the bridge
    reads the participants to know who spoke). `next(n, new_conversation=True)`: each message the first
    of a new conversation of one of those customers (known to Memory, a conversation not yet read)."""

    def __init__(self, customers: int) -> None:
        self.customers = customers
        self.sequence = 0
        self.seeder: Seeder | None = None
        self.chats: list[Chat] = []

    def authors(self) -> list[str]:
        return [f"+1555100{c:04d}" for c in range(self.customers)]

    def seed(self, seeder: Seeder) -> None:
        """Each customer's conversation, made through `seeder`."""
        self.seeder = seeder
        self.chats = [seeder.sms_conversation(author) for author in self.authors()]

    def next(self, count: int, new_conversation: bool = False) -> list[dict[str, Any]]:
        from memory_bridge.domain.signature import compute_signature
        from memory_bridge_dev.apigw import rest_api_event

        if self.seeder is None:
            raise RuntimeError("seed the customers' conversations first")
        events = []
        for _ in range(count):
            self.sequence += 1
            index = self.sequence
            chat = self.chats[index % self.customers]
            if new_conversation:
                chat = self.seeder.sms_conversation(chat.customer)
            params = message_params(
                chat,
                account_sid=DEV_ACCOUNT_SID,
                # Twilio's SID format (the webhook refuses any other): the process id, then the index.
                message_sid=f"IM{os.getpid():08x}{index:024x}",
                body=f"bench message {index}",
                index=index,
            )
            headers = {
                "Content-Type": "application/x-www-form-urlencoded",
                "X-Twilio-Signature": compute_signature(WEBHOOK_URL, params, DEV_AUTH_TOKEN),
            }
            events.append(
                rest_api_event(
                    method="POST",
                    path="/webhooks/conversations",
                    headers=headers,
                    body=urlencode(params).encode(),
                )
            )
        return events


@contextmanager
def lambda_stack(memory_latency_ms: float, events: WebhookEvents) -> Iterator[dict[str, str]]:
    """moto and the Memory sandbox, the stack's resources on them, the customers' profiles made, a
    Conversations sandbox (in this process) with each customer's conversation, and the environment each
    function process gets (the template's, resolved)."""
    import boto3

    from memory_bridge_dev.aws_resources import (
        create_dead_letter_queue,
        create_idempotency_table,
        load_template,
        put_credentials_secret,
    )
    from memory_bridge_dev.fault_proxy import FaultProxy
    from memory_bridge_dev.local_stack import function_environment

    with backends() as urls:
        aws_environment(urls["moto"])
        template = load_template()
        put_credentials_secret(
            boto3.client("secretsmanager"),
            "bench/twilio",
            {"account_sid": DEV_ACCOUNT_SID, "auth_token": DEV_AUTH_TOKEN},
        )
        queue_url = create_dead_letter_queue(boto3.client("sqs"), "bench-dlq", template)
        table = create_idempotency_table(boto3.client("dynamodb"), "bench-idempotency", template)
        store_id = urllib3.request(
            "POST", urls["sandbox"] + "/__sandbox/stores", json={"displayName": "bench"}
        ).json()["id"]
        auth = urllib3.make_headers(basic_auth=f"{DEV_ACCOUNT_SID}:{DEV_AUTH_TOKEN}")
        for author in events.authors():  # conversations in progress: profiles exist
            urllib3.request(
                "POST",
                f"{urls['sandbox']}/v1/Stores/{store_id}/Profiles",
                json={"traits": {"Contact": {"phone": author}}},
                headers=auth,
            )
        if memory_latency_ms:  # Memory's round trip over the internet; the sandbox alone answers in < 1 ms
            urllib3.request(
                "POST",
                urls["sandbox"] + "/__sandbox/faults",
                json={"latency": memory_latency_ms / 1000, "match": "/v1/"},
            )
        # moto's server (werkzeug) closes every connection after one answer, which AWS does not: each
        # call would pay a new connection and a piecemeal answer, about 1.5 ms of the caller's CPU
        # here. A keep-alive front (the fault proxy, no fault set) stands before it, for both apps.
        front = FaultProxy(urls["moto"])
        aws_front = front.serve()
        # The participants' reads: Twilio's Conversations API, across the internet as Memory is (the
        # same modelled latency). In this process: the function processes' CPU is measured, not ours.
        conversations = ConversationsSandbox(DEV_ACCOUNT_SID, DEV_AUTH_TOKEN)
        conversations_url = conversations.serve()
        if memory_latency_ms:
            conversations.add_fault(ConversationsFault(latency=memory_latency_ms / 1000))
        events.seed(InProcessSeeder(conversations))
        env = {
            **os.environ,
            "AWS_ENDPOINT_URL": aws_front,
            **function_environment(
                template,
                {
                    "MemoryStoreId": store_id,
                    "TwilioCredentialsSecret": "bench/twilio",
                    "DeadLetterQueue": queue_url,
                    "IdempotencyTable": table,
                    "MemoryApiBaseUrl": urls["sandbox"],
                    "ConversationsApiBaseUrl": conversations_url,
                },
            ),
            "CONVERSATIONS_API_BASE_URL": conversations_url,
            "AWS_LAMBDA_FUNCTION_NAME": "WebhookFunction",
        }
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        try:
            yield {**urls, "store_id": store_id, "env": json.dumps(env), "conversations": conversations_url}
        finally:
            front.close()
            conversations.close()


def _invocations(samples: dict[str, Any]) -> list[Invocation]:
    count = len(samples["cpu_ms"])
    return [
        Invocation(c, w, d, n)
        for c, w, d, n in zip(
            samples["cpu_ms"],
            samples["wall_ms"],
            samples.get("dynamodb_wall_ms", [0.0] * count),
            samples.get("dynamodb_calls", [0] * count),
            strict=True,
        )
    ]


@dataclass
class WarmSamples:
    """What one app's warm invocations measured: each invocation, its participants reads, the rest."""

    invocations: list[Invocation] = field(default_factory=list)
    conversations_wall_ms: list[float] = field(default_factory=list)
    conversations_calls: list[int] = field(default_factory=list)
    outcomes: Counter[str] = field(default_factory=Counter)
    calls: Counter[str] = field(default_factory=Counter)
    rss: list[int] = field(default_factory=list)

    def add(self, answer: dict[str, Any]) -> None:
        self.invocations += _invocations(answer)
        count = len(answer["cpu_ms"])
        self.conversations_wall_ms += answer.get("conversations_wall_ms", [0.0] * count)
        self.conversations_calls += answer.get("conversations_calls", [0] * count)
        self.outcomes.update(answer["outcomes"])
        self.calls.update(answer["calls"])
        self.rss.append(answer["rss_kb"])


def lambda_bench(  # noqa: C901 - one measurement harness, read top-down; split when it next grows
    *,
    cold_runs: int,
    webhooks: int,
    memory_latency_ms: float,
    dynamodb_latency_ms: float = 5.0,
    batch: int = 100,
    customers: int = 50,
    profile_webhooks: int = 0,
) -> dict[str, Any]:
    """Cold first answers and warm webhooks of memory-bridge and the peer, interleaved, modelled. Warm
    twice: in conversations whose participants the container has read (no Conversations call), and
    each the first message of a new conversation (one participants read)."""
    memory_mb = template_memory_size(load_template())
    events = WebhookEvents(customers)
    cold: dict[str, list[ColdStart]] = {app: [] for app in APPS}
    first_outcomes: dict[str, Counter[str]] = {app: Counter() for app in APPS}
    warm = {app: WarmSamples() for app in APPS}
    new = {app: WarmSamples() for app in APPS}
    finals: dict[str, dict[str, Any]] = {}
    profile_text = ""
    with lambda_stack(memory_latency_ms, events) as stack:
        env = json.loads(stack["env"])
        for app in APPS:  # the file cache and byte-code, as a deployed image has them; not counted
            Environment(app, env, memory_mb).close()
        for run in range(cold_runs):  # fresh processes, interleaved; each round starts with the other
            for app in APPS if run % 2 == 0 else APPS[::-1]:
                environment = Environment(app, env, memory_mb)
                first = environment.run(events.next(1))
                environment.close()
                cold[app].append(
                    ColdStart(
                        environment.init["init"]["wall_ms"],
                        environment.init["init"]["cpu_ms"],
                        Invocation(first["cpu_ms"][0], first["wall_ms"][0]),
                    )
                )
                first_outcomes[app].update(first["outcomes"])
        if webhooks:
            environments = {app: Environment(app, env, memory_mb, count_calls=True) for app in APPS}
            for app in APPS:  # every customer's profile and conversation cached, as in conversations going on
                environments[app].run(events.next(customers * 2))
            rounds = max(webhooks // batch, 1)
            for round_ in range(rounds):
                for app in APPS if round_ % 2 == 0 else APPS[::-1]:
                    warm[app].add(environments[app].run(events.next(batch)))
                # A quarter as many first messages of new conversations, interleaved with the rest.
                if round_ % 4 == 0:
                    for app in APPS if round_ % 8 == 0 else APPS[::-1]:
                        new[app].add(environments[app].run(events.next(batch, new_conversation=True)))
            if profile_webhooks:
                profile_text = environments["bridge"].send(
                    {"profile": events.next(profile_webhooks), "top": 25}
                )["profile"]
            finals = {app: environments[app].close() for app in APPS}

    result: dict[str, Any] = {
        "memory_mb": memory_mb,
        "cpu_factor": round(cpu_factor(memory_mb), 3),
        "memory_latency_ms": memory_latency_ms,
        "dynamodb_latency_ms": dynamodb_latency_ms,
        "cold_runs": cold_runs,
        "webhooks": len(warm["bridge"].invocations),
        "new_conversation_webhooks": len(new["bridge"].invocations),
        "customers": customers,
        "apps": {},
    }
    for app in APPS:
        figures: dict[str, Any] = {}
        if cold[app]:
            figures["cold"] = cold_figures(cold[app], first_outcomes[app], memory_mb)
        if warm[app].invocations:
            figures["warm"] = warm_figures(warm[app], memory_mb, dynamodb_latency_ms)
            figures["warm"]["peak_rss_mb"] = round(finals[app]["peak_rss_mb"], 1)
        if new[app].invocations:
            figures["new_conversation"] = warm_figures(new[app], memory_mb, dynamodb_latency_ms)
        if cold[app] and warm[app].invocations:
            figures["sizes"] = [size_row(warm[app].invocations, cold[app], size) for size in MEMORY_SIZES]
        result["apps"][app] = figures
    result["ratios"] = ratios(result["apps"])
    result.update({"vs_baseline": baseline_ratios(result["apps"])} if "baseline" in result["apps"] else {})
    if profile_text:
        result["profile"] = profile_text
    return result


def cold_figures(runs: list[ColdStart], outcomes: Counter[str], memory_mb: int) -> dict[str, Any]:
    firsts = [c.first for c in runs]
    return {
        "init_wall_ms": round(statistics.median(c.init_wall_ms for c in runs), 1),
        "init_cpu_ms": round(statistics.median(c.init_cpu_ms for c in runs), 1),
        "first_cpu_ms": round(statistics.median(i.cpu_ms for i in firsts), 2),
        "first_io_wait_ms": round(statistics.median(max(i.wall_ms - i.cpu_ms, 0) for i in firsts), 2),
        "init_plus_first_here_ms": round(
            statistics.median(c.init_wall_ms + c.first.wall_ms for c in runs), 1
        ),
        "modelled_ms": round(
            statistics.median(
                cold_first_answer_ms(c.init_wall_ms, c.first.cpu_ms, c.first.wall_ms, memory_mb) for c in runs
            ),
            1,
        ),
        "outcomes": dict(outcomes),
    }


def warm_figures(samples: WarmSamples, memory_mb: int, dynamodb_latency_ms: float) -> dict[str, Any]:
    """Percentiles, modelled durations, calls per message and the participants reads of warm invocations."""
    invocations = samples.invocations
    modelled = [modelled_ms(i.cpu_ms, i.wall_ms, memory_mb) for i in invocations]
    adjusted = [
        modelled_ms(a.cpu_ms, a.wall_ms, memory_mb)
        for a in (i.with_dynamodb_latency(dynamodb_latency_ms) for i in invocations)
    ]
    rss = samples.rss
    half = rss[len(rss) // 2 - 1] if len(rss) > 1 else rss[0]
    reads = sum(samples.conversations_calls)
    return {
        "wall_here_ms": {
            "p50": round(percentile([i.wall_ms for i in invocations], 0.5), 2),
            "p99": round(percentile([i.wall_ms for i in invocations], 0.99), 2),
        },
        "cpu_ms": {
            "p50": round(percentile([i.cpu_ms for i in invocations], 0.5), 3),
            "p99": round(percentile([i.cpu_ms for i in invocations], 0.99), 3),
        },
        "modelled_ms": {
            "p50": round(percentile(modelled, 0.5), 1),
            "p99": round(percentile(modelled, 0.99), 1),
        },
        "dynamodb_wall_per_call_ms": round(
            sum(i.dynamodb_wall_ms for i in invocations) / max(sum(i.dynamodb_calls for i in invocations), 1),
            2,
        ),
        # The participants read (GET …/Participants) on its own: wall time per call, here, with Twilio's
        # round trip modelled; 0 calls where the conversation's participants were cached.
        "participants_read_wall_per_call_ms": round(sum(samples.conversations_wall_ms) / max(reads, 1), 2),
        "modelled_with_dynamodb_latency_ms": {
            "p50": round(percentile(adjusted, 0.5), 1),
            "p99": round(percentile(adjusted, 0.99), 1),
        },
        "outcomes": dict(samples.outcomes),
        "calls_per_message": {
            service: round(samples.calls.get(service, 0) / len(invocations), 3)
            for service in ("memory", "dynamodb", "secretsmanager", "sqs", "conversations")
        },
        "rss_growth_pct_between_halves": round((rss[-1] - half) / half * 100, 2),
    }


def baseline_ratios(apps: dict[str, Any]) -> dict[str, float]:
    """memory-bridge now / memory-bridge at the baseline commit, measured in the same run."""
    now, then = apps["bridge"], apps["baseline"]
    pairs: dict[str, tuple[float, float]] = {}
    if "cold" in now and "cold" in then:
        for key in ("init_wall_ms", "init_cpu_ms", "first_cpu_ms", "modelled_ms"):
            pairs[f"cold_{key}"] = (now["cold"][key], then["cold"][key])
    if "warm" in now and "warm" in then:
        pairs["warm_cpu_p50"] = (now["warm"]["cpu_ms"]["p50"], then["warm"]["cpu_ms"]["p50"])
        pairs["warm_cpu_p99"] = (now["warm"]["cpu_ms"]["p99"], then["warm"]["cpu_ms"]["p99"])
        pairs["warm_modelled_p50"] = (now["warm"]["modelled_ms"]["p50"], then["warm"]["modelled_ms"]["p50"])
    if "new_conversation" in now and "new_conversation" in then:
        a, b = now["new_conversation"], then["new_conversation"]
        pairs["new_conversation_cpu_p50"] = (a["cpu_ms"]["p50"], b["cpu_ms"]["p50"])
        pairs["new_conversation_modelled_p50"] = (a["modelled_ms"]["p50"], b["modelled_ms"]["p50"])
    return {name: round(a / b, 3) if b else float("inf") for name, (a, b) in pairs.items()}


@contextmanager
def baseline_tree(ref: str) -> Iterator[Path]:
    """A detached git worktree of `ref`, removed afterwards."""
    git = shutil.which("git") or "git"
    where = Path(tempfile.mkdtemp(prefix="bench-baseline-"))
    subprocess.run([git, "worktree", "add", "--detach", "--quiet", str(where), ref], cwd=ROOT, check=True)
    try:
        yield where
    finally:
        subprocess.run([git, "worktree", "remove", "--force", str(where)], cwd=ROOT, check=False)
        shutil.rmtree(where, ignore_errors=True)


TARGET_MB = 256  # the targets are set at 256 MB, whatever the template's default


def ratios(apps: dict[str, Any]) -> dict[str, float]:
    """memory-bridge / peer for each figure both have (lower is better for every one)."""
    bridge, peer = apps["bridge"], apps["peer"]
    pairs: dict[str, tuple[float, float]] = {}
    if "cold" in bridge and "cold" in peer:
        for key in ("init_wall_ms", "init_cpu_ms", "first_cpu_ms", "init_plus_first_here_ms", "modelled_ms"):
            pairs[f"cold_{key}"] = (bridge["cold"][key], peer["cold"][key])
    if "warm" in bridge and "warm" in peer:
        pairs["warm_cpu_p50"] = (bridge["warm"]["cpu_ms"]["p50"], peer["warm"]["cpu_ms"]["p50"])
        pairs["warm_wall_here_p50"] = (
            bridge["warm"]["wall_here_ms"]["p50"],
            peer["warm"]["wall_here_ms"]["p50"],
        )
        pairs["warm_modelled_p50"] = (
            bridge["warm"]["modelled_ms"]["p50"],
            peer["warm"]["modelled_ms"]["p50"],
        )
        pairs["warm_modelled_p99"] = (
            bridge["warm"]["modelled_ms"]["p99"],
            peer["warm"]["modelled_ms"]["p99"],
        )
        pairs["warm_modelled_with_dynamodb_latency_p50"] = (
            bridge["warm"]["modelled_with_dynamodb_latency_ms"]["p50"],
            peer["warm"]["modelled_with_dynamodb_latency_ms"]["p50"],
        )
    if "new_conversation" in bridge and "new_conversation" in peer:
        a, b = bridge["new_conversation"], peer["new_conversation"]
        pairs["new_conversation_cpu_p50"] = (a["cpu_ms"]["p50"], b["cpu_ms"]["p50"])
        pairs["new_conversation_modelled_p50"] = (a["modelled_ms"]["p50"], b["modelled_ms"]["p50"])
    if "sizes" in bridge and "sizes" in peer:
        for mine, theirs in zip(bridge["sizes"], peer["sizes"], strict=True):
            mb = mine["memory_mb"]
            pairs[f"cold_at_{mb}"] = (mine["cold_first_answer_ms"], theirs["cold_first_answer_ms"])
            pairs[f"warm_p50_at_{mb}"] = (mine["warm_p50_ms"], theirs["warm_p50_ms"])
            pairs[f"warm_p99_at_{mb}"] = (mine["warm_p99_ms"], theirs["warm_p99_ms"])
            pairs[f"cost_at_{mb}"] = (mine["cost_per_million_usd"], theirs["cost_per_million_usd"])
    return {name: round(a / b, 2) if b else float("inf") for name, (a, b) in pairs.items()}


# ---- 3. replay throughput ------------------------------------------------------------------------------


def replay_throughput(  # noqa: PLR0915 - setup, two replays and the accounting, in order
    messages: int, profiles: int, latency_ms: float, one_by_one_seconds: float
) -> dict[str, Any]:
    import boto3

    from memory_bridge.adapters.dead_letters import DeadLetterQueue
    from memory_bridge.adapters.ledger_table import LedgerTable, replay_dynamodb_client
    from memory_bridge.adapters.memory_api import MemoryApiClient
    from memory_bridge.domain.credentials import TwilioCredentials
    from memory_bridge.domain.identifiers import Identifier
    from memory_bridge.domain.outcomes import Accepted
    from memory_bridge.ports import StaticCredentials
    from memory_bridge.replay import ReplayEngine, ReplayOptions
    from memory_bridge_dev.aws_resources import (
        create_dead_letter_queue,
        create_idempotency_table,
        load_template,
    )

    results: dict[str, Any] = {
        "messages": messages,
        "profiles": profiles,
        "memory_latency_ms": latency_ms,
        "one_by_one_time_cap_s": one_by_one_seconds,
    }
    with backends() as urls:
        aws_environment(urls["moto"])
        sqs = boto3.client("sqs")
        template = load_template()
        store_id = urllib3.request(
            "POST", urls["sandbox"] + "/__sandbox/stores", json={"displayName": "r"}
        ).json()["id"]
        memory = MemoryApiClient(
            urls["sandbox"],
            StaticCredentials(TwilioCredentials(DEV_ACCOUNT_SID, DEV_AUTH_TOKEN)),
            connect_timeout=3,
            read_timeout=15,
        )
        profile_ids = []
        for p in range(profiles):
            answer = memory.create_profile(store_id, "Contact", Identifier("phone", f"+1555200{p:04d}"))
            assert isinstance(answer, Accepted)
            profile_ids.append(answer.body["id"])

        def fill(queue_name: str) -> str:
            queue_url = create_dead_letter_queue(sqs, queue_name, template)
            park_observations(sqs, queue_url, store_id, profile_ids, messages, queue_name)
            return queue_url

        grouped_queue = fill("grouped")
        if latency_ms:  # model Memory's round trip over the internet; the sandbox answers in < 1 ms
            urllib3.request(
                "POST",
                urls["sandbox"] + "/__sandbox/faults",
                json={"latency": latency_ms / 1000, "match": "/Observations"},
            )
        ledger = LedgerTable(
            create_idempotency_table(boto3.client("dynamodb"), "bench-ledger", template),
            3600,
            client_factory=replay_dynamodb_client,
        )
        before = memory.requests_sent
        t0 = time.perf_counter()
        summary = ReplayEngine(DeadLetterQueue(grouped_queue), memory, ledger=ledger).run(ReplayOptions())
        grouped_seconds = time.perf_counter() - t0
        grouped_requests = memory.requests_sent - before
        results["grouped"] = {
            "replayed": summary.counts.replayed,
            "seconds": round(grouped_seconds, 2),
            "messages_per_second": round(summary.counts.replayed / grouped_seconds, 1),
            "requests_per_message": round(grouped_requests / messages, 4),
        }

        # One message per request, deleted one by one: what a naive replayer does, on the same sized queue.
        single_queue = fill("single")
        queue = DeadLetterQueue(single_queue)
        before = memory.requests_sent
        replayed = 0
        t0 = time.perf_counter()
        from memory_bridge.domain.envelope import parse_envelope

        while time.perf_counter() - t0 < one_by_one_seconds:
            batch = queue.receive(10, 900, wait_seconds=1)
            if not batch:
                break
            for message in batch:
                envelope = parse_envelope(message.body)
                assert envelope.profile_id is not None
                if isinstance(
                    memory.create_observations(store_id, envelope.profile_id, envelope.observations), Accepted
                ):
                    queue.delete([message])
                    replayed += 1
        single_seconds = time.perf_counter() - t0
        results["one_by_one"] = {
            "replayed": replayed,
            "seconds": round(single_seconds, 2),
            "messages_per_second": round(replayed / single_seconds, 1),
            "requests_per_message": round((memory.requests_sent - before) / max(replayed, 1), 4),
        }
        results["speedup"] = round(
            results["grouped"]["messages_per_second"] / results["one_by_one"]["messages_per_second"], 2
        )
        posted = Counter(
            o["content"]
            for o in urllib3.request("GET", urls["sandbox"] + "/__sandbox/observations").json()[
                "observations"
            ]
        )
        results["posted_exactly_once"] = sum(1 for count in posted.values() if count == 1)
        results["posted_more_than_once"] = sum(1 for count in posted.values() if count > 1)
    return results


# ---- 4. replay at scale ---------------------------------------------------------------------------------


def replay_at_scale(sizes: list[int], profiles: int, latency_ms: float) -> list[dict[str, Any]]:
    """The replay engine over N parked messages, round-robin over `profiles` customers: the Memory
    sandbox over HTTP (latency modelled) and the ledger on moto's DynamoDB, real; the queue an
    in-process SQS model (memory_queue.py), as moto's receive scans every message it holds."""
    import boto3

    from memory_bridge.adapters.ledger_table import LedgerTable, replay_dynamodb_client
    from memory_bridge.adapters.memory_api import MemoryApiClient
    from memory_bridge.domain.credentials import TwilioCredentials
    from memory_bridge.domain.identifiers import Identifier
    from memory_bridge.domain.outcomes import Accepted
    from memory_bridge.ports import StaticCredentials
    from memory_bridge.replay import ReplayEngine, ReplayOptions
    from memory_bridge_dev.aws_resources import create_idempotency_table, load_template
    from memory_bridge_dev.memory_queue import InProcessQueue
    from memory_bridge_dev.parking import envelope_bodies

    rows = []
    with backends() as urls:
        aws_environment(urls["moto"])
        template = load_template()
        memory = MemoryApiClient(
            urls["sandbox"],
            StaticCredentials(TwilioCredentials(DEV_ACCOUNT_SID, DEV_AUTH_TOKEN)),
            connect_timeout=3,
            read_timeout=15,
        )
        if latency_ms:
            urllib3.request(
                "POST",
                urls["sandbox"] + "/__sandbox/faults",
                json={"latency": latency_ms / 1000, "match": "/Observations"},
            )
        for number, size in enumerate(sizes):
            store_id = urllib3.request(
                "POST", urls["sandbox"] + "/__sandbox/stores", json={"displayName": f"scale{number}"}
            ).json()["id"]
            profile_ids = []
            for p in range(profiles):
                answer = memory.create_profile(store_id, "Contact", Identifier("phone", f"+1555300{p:04d}"))
                assert isinstance(answer, Accepted)
                profile_ids.append(answer.body["id"])
            queue = InProcessQueue()
            label = f"S{number}"
            for body in envelope_bodies(store_id, profile_ids, size, label):
                queue.send(body)
            ledger = LedgerTable(
                create_idempotency_table(boto3.client("dynamodb"), f"scale-ledger-{number}", template),
                3600,
                client_factory=replay_dynamodb_client,
            )
            before = memory.requests_sent
            started = time.perf_counter()
            summary = ReplayEngine(queue, memory, ledger=ledger).run(ReplayOptions())
            seconds = time.perf_counter() - started
            counts = summary.counts
            rows.append(
                {
                    "messages": size,
                    "profiles": profiles,
                    "memory_latency_ms": latency_ms,
                    "replayed": counts.replayed,
                    "seconds": round(seconds, 1),
                    "messages_per_second": round(counts.replayed / seconds, 1),
                    "observation_posts": counts.posts,
                    "posts_per_message": round(counts.posts / size, 4),
                    "memory_requests": memory.requests_sent - before,
                    "slices": counts.slices,
                    "left_on_queue": len(queue),
                    "complete": summary.complete,
                    "stopped": summary.stopped,
                    "counts": {k: v for k, v in vars(counts).items() if v},
                    "notes": summary.notes[:5],
                    "failures": summary.failures[:5],
                }
            )
            print(f"  {size} messages: {rows[-1]}", flush=True)
    return rows


# ---- 5. package size -----------------------------------------------------------------------------------


def package_size() -> dict[str, Any]:
    if not SAM.exists():
        return {"skipped": "aws-sam-cli not installed (make tools)"}
    build = Path(tempfile.mkdtemp(prefix="bench-build-"))
    subprocess.run(
        [str(SAM), "build", "--build-dir", str(build)],
        cwd=ROOT,
        env=sam_environment(),
        check=True,
        capture_output=True,
    )

    def size(path: Path) -> float:
        return round(sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 1024 / 1024, 2)

    sizes = {name: size(build / name) for name in ("WebhookFunction", "ReplayFunction", "BridgeLayer")}
    shutil.rmtree(build, ignore_errors=True)
    return {
        "unzipped_mb": sizes,
        "memory_mb": template_memory_size(load_template()),
        "timeout_s": {"WebhookFunction": 10, "ReplayFunction": 900},
        "why": "MemorySize from the table under 'What a million webhooks cost' (README); 10 s covers a "
        "slow cold start while the code answers Twilio within its own 4 s budget",
    }


# ---- report ---------------------------------------------------------------------------------------------


def verdicts(result: dict[str, Any]) -> list[tuple[str, str, bool]]:
    checks = []
    webhook = result.get("webhook")
    if webhook:
        r = webhook["ratios"]
        if f"cold_at_{TARGET_MB}" in r:
            checks.append(
                (
                    f"cold first answer at {TARGET_MB} MB ≤ 0.8 x peer",
                    f"{r[f'cold_at_{TARGET_MB}']}x",
                    r[f"cold_at_{TARGET_MB}"] <= 0.8,
                )
            )
        if "warm_cpu_p50" in r:
            checks.append(("warm CPU p50 ≤ 1.0 x peer", f"{r['warm_cpu_p50']}x", r["warm_cpu_p50"] <= 1.0))
        if f"warm_p50_at_{TARGET_MB}" in r:
            checks.append(
                (
                    f"warm p50 at {TARGET_MB} MB ≤ 0.65 x peer",
                    f"{r[f'warm_p50_at_{TARGET_MB}']}x",
                    r[f"warm_p50_at_{TARGET_MB}"] <= 0.65,
                )
            )
        warm = webhook["apps"]["bridge"].get("warm")
        if warm:
            calls = warm["calls_per_message"]
            checks += [
                ("Memory calls per message = 1.00", f"{calls['memory']:.2f}", calls["memory"] == 1.0),
                (
                    "Secrets Manager calls per message = 0",
                    f"{calls['secretsmanager']}",
                    calls["secretsmanager"] == 0,
                ),
                ("SQS calls per message = 0", f"{calls['sqs']}", calls["sqs"] == 0),
                (
                    "participants reads per message, conversation cached = 0",
                    f"{calls['conversations']}",
                    calls["conversations"] == 0,
                ),
                ("peak RSS ≤ 128 MB", f"{warm['peak_rss_mb']} MB", warm["peak_rss_mb"] <= 128),
                (
                    "RSS growth, first half → end ≤ 2 %",
                    f"{warm['rss_growth_pct_between_halves']} %",
                    warm["rss_growth_pct_between_halves"] <= 2,
                ),
            ]
    new = (webhook or {}).get("apps", {}).get("bridge", {}).get("new_conversation")
    if new:
        reads = new["calls_per_message"]["conversations"]
        checks.append(("participants reads per message, new conversation = 1", f"{reads}", reads == 1.0))
    replay = result.get("replay")
    if replay:
        checks += [
            (
                "replay requests per message ≤ 0.11",
                f"{replay['grouped']['requests_per_message']}",
                replay["grouped"]["requests_per_message"] <= 0.11,
            ),
            ("replay ≥ 5 x one-by-one", f"{replay['speedup']}x", replay["speedup"] >= 5),
            (
                "replay posted more than once = 0",
                f"{replay['posted_more_than_once']}",
                replay["posted_more_than_once"] == 0,
            ),
        ]
    checks += backfill_bench.verdicts(result.get("backfill") or [])
    redaction = result.get("redaction")
    if redaction:
        worst = max(redaction["adversarial_32kb_ms"].items(), key=lambda item: item[1])
        fp = redaction["false_positives"]
        checks += [
            (
                "redaction ≤ 0.05 ms per KB (realistic 1 KB bodies)",
                f"{redaction['ms_per_kb']['realistic_1kb_bodies']} ms/KB",
                redaction["ms_per_kb"]["realistic_1kb_bodies"] <= 0.05,
            ),
            (
                "32 KB adversarial body < 5 ms (worst case)",
                f"{worst[1]} ms ({worst[0]})",
                worst[1] < 5,
            ),
            (
                "phone numbers wrongly redacted = 0",
                f"{fp['phone_numbers']['rate_pct']} %",
                fp["phone_numbers"]["redacted"] == 0,
            ),
        ]
    return checks


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="make bench", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--cold-runs", type=int, default=15, help="fresh processes of each, interleaved")
    parser.add_argument("--webhooks", type=int, default=2000, help="warm webhooks measured of each")
    parser.add_argument(
        "--webhook-memory-latency-ms",
        type=float,
        default=30.0,
        help="Memory's answer time per call in the cold and warm sections (both apps alike)",
    )
    parser.add_argument(
        "--dynamodb-latency-ms",
        type=float,
        default=5.0,
        help="DynamoDB's answer time per call for the second warm figure, in place of the emulator's own "
        "(moto answers an UpdateItem in 10-20 ms here; in-region DynamoDB in single-digit ms)",
    )
    parser.add_argument(
        "--profile-webhooks", type=int, default=300, help="warm webhooks of memory-bridge run under cProfile"
    )
    parser.add_argument("--replay-messages", type=int, default=10_000)
    parser.add_argument("--replay-profiles", type=int, default=1_000)
    parser.add_argument(
        "--memory-latency-ms",
        type=float,
        default=50.0,
        help="Memory's round trip modelled in the replay section (the sandbox alone answers in <1 ms)",
    )
    parser.add_argument(
        "--one-by-one-seconds",
        type=float,
        default=60.0,
        help="time cap for the one-by-one replay; its rate is measured over what it did",
    )
    parser.add_argument(
        "--baseline",
        metavar="REF",
        help="also measure memory-bridge at this git commit, interleaved (cold and warm; e.g. HEAD~5)",
    )
    parser.add_argument(
        "--scale-messages",
        default="20000,100000",
        help="replay-at-scale sizes, comma-separated (the queue is an in-process SQS model; see the report)",
    )
    backfill_bench.add_arguments(parser)
    parser.add_argument("--only", choices=SECTIONS, action="append")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    only = set(args.only or SECTIONS)
    result: dict[str, Any] = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "python": platform.python_version(),
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "processor": platform.machine(),
        },
    }
    if "cold" in only or "warm" in only:
        cold_runs = args.cold_runs if "cold" in only else 0
        webhooks = args.webhooks if "warm" in only else 0
        print(
            f"• webhook, memory-bridge beside the peer: {cold_runs} cold starts and {webhooks} warm "
            "webhooks each, interleaved…",
            flush=True,
        )
        with contextlib.ExitStack() as stack:
            if args.baseline:
                global APPS
                tree = stack.enter_context(baseline_tree(args.baseline))
                os.environ["BENCH_BASELINE_ROOT"] = str(tree)
                APPS = ("bridge", "peer", "baseline")
                result["baseline"] = args.baseline
            result["webhook"] = lambda_bench(
                cold_runs=cold_runs,
                webhooks=webhooks,
                memory_latency_ms=args.webhook_memory_latency_ms,
                dynamodb_latency_ms=args.dynamodb_latency_ms,
                profile_webhooks=args.profile_webhooks if webhooks else 0,
            )
    if "replay" in only:
        print(
            f"• replay: {args.replay_messages} parked messages across {args.replay_profiles} profiles…",
            flush=True,
        )
        result["replay"] = replay_throughput(
            args.replay_messages, args.replay_profiles, args.memory_latency_ms, args.one_by_one_seconds
        )
    if "scale" in only:
        sizes = [int(n) for n in args.scale_messages.split(",") if n.strip()]
        print(f"• replay at scale: {sizes} messages across {args.replay_profiles} profiles…", flush=True)
        result["replay_at_scale"] = replay_at_scale(sizes, args.replay_profiles, args.memory_latency_ms)
    if "backfill" in only:
        result["backfill"] = backfill_bench.section(
            args, backends, aws_environment, (DEV_ACCOUNT_SID, DEV_AUTH_TOKEN)
        )
    if "size" in only:
        print("• package size: sam build…", flush=True)
        result["package"] = package_size()
    if "redaction" in only:
        print("• redaction: chat corpora, adversarial bodies, false positives…", flush=True)
        result["redaction"] = redaction_bench.run()
    result["targets"] = [
        {"target": name, "measured": value, "met": met} for name, value, met in verdicts(result)
    ]
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    (RESULTS / f"bench-{stamp}.json").write_text(json.dumps(result, indent=2) + "\n")
    if not args.only:  # a partial run (--only) must not replace the full figures a later run compares with
        (RESULTS / "latest.json").write_text(json.dumps(result, indent=2) + "\n")
    print(render(result))
    print(f"\nwritten to bench/results/bench-{stamp}.json")
    return 0


def render(result: dict[str, Any]) -> str:
    lines = [
        f"\nmemory-bridge bench — {result['date']} — Python {result['machine']['python']}, "
        f"{result['machine']['cpus']} CPUs, {result['machine']['platform']}"
    ]
    webhook = result.get("webhook")
    if webhook:
        lines += render_webhook(webhook)
    replay = result.get("replay")
    if replay:
        lines += [
            "",
            f"Replay ({replay['messages']} messages across {replay['profiles']} profiles; Memory round trip "
            f"modelled at {replay['memory_latency_ms']:g} ms; "
            f"one-by-one capped at {replay['one_by_one_time_cap_s']:g} s)",
            f"  grouped (the engine)   {replay['grouped']['messages_per_second']:>8.1f} msg/s   "
            f"{replay['grouped']['requests_per_message']} requests/message   "
            f"{replay['grouped']['seconds']} s",
            f"  one by one             {replay['one_by_one']['messages_per_second']:>8.1f} msg/s   "
            f"{replay['one_by_one']['requests_per_message']} requests/message   "
            f"{replay['one_by_one']['seconds']} s",
            f"  speed-up {replay['speedup']}x; posted exactly once {replay['posted_exactly_once']}, "
            f"more than once {replay['posted_more_than_once']}",
        ]
    lines += render_extras(result)
    lines += backfill_bench.render(result.get("backfill") or [])
    package = result.get("package")
    if package and "unzipped_mb" in package:
        sizes = package["unzipped_mb"]
        lines += [
            "",
            "Package (sam build, unzipped)",
            "  " + "   ".join(f"{name} {mb} MB" for name, mb in sizes.items()),
            f"  settings: {package['memory_mb']} MB, timeouts {package['timeout_s']}: {package['why']}",
        ]
    if result.get("redaction"):
        lines += ["", redaction_bench.render(result["redaction"])]
    lines += ["", "Targets"]
    lines += [
        f"  {'met ' if t['met'] else 'MISS'}  {t['target']:<44} {t['measured']}" for t in result["targets"]
    ]
    return "\n".join(lines)


def render_extras(result: dict[str, Any]) -> list[str]:
    """memory-bridge against its baseline commit, and the replay at scale."""
    lines: list[str] = []
    webhook = result.get("webhook") or {}
    if "vs_baseline" in webhook:
        now, then = webhook["apps"]["bridge"], webhook["apps"]["baseline"]
        peer = webhook["apps"]["peer"]
        mb = webhook["memory_mb"]
        lines += [
            "",
            f"memory-bridge now beside itself at {result.get('baseline')} and the peer "
            "(same run, interleaved)",
            f"  {'':<44} {'now':>9} {'before':>9} {'now/before':>11} {'peer':>9}",
        ]
        rows = [
            ("cold: init CPU, ms", "cold", "init_cpu_ms", None),
            ("cold: init wall, ms", "cold", "init_wall_ms", None),
            ("cold: first invocation CPU, ms", "cold", "first_cpu_ms", None),
            ("cold: first invocation I/O wait, ms", "cold", "first_io_wait_ms", None),
            (f"cold: first answer at {mb} MB, ms", "cold", "modelled_ms", None),
            ("warm, conversation cached: CPU p50, ms", "warm", "cpu_ms", "p50"),
            ("warm, conversation cached: CPU p99, ms", "warm", "cpu_ms", "p99"),
            (f"warm, conversation cached: p50 at {mb} MB, ms", "warm", "modelled_ms", "p50"),
            ("warm, new conversation: CPU p50, ms", "new_conversation", "cpu_ms", "p50"),
            (f"warm, new conversation: p50 at {mb} MB, ms", "new_conversation", "modelled_ms", "p50"),
            (f"warm, new conversation: p99 at {mb} MB, ms", "new_conversation", "modelled_ms", "p99"),
        ]
        for label, section, key, sub in rows:
            if section in now and section in then:
                a, b = now[section][key], then[section][key]
                c = (peer.get(section) or {}).get(key, "-")
                a, b, c = (a[sub], b[sub], c[sub] if isinstance(c, dict) else c) if sub else (a, b, c)
                lines.append(f"  {label:<44} {a:>9} {b:>9} {f'{a / b:.3f}x' if b else '-':>11} {c:>9}")
    for row in result.get("replay_at_scale") or []:
        if not lines or not lines[-1].startswith("  scale"):
            lines += [
                "",
                "Replay at scale (Memory sandbox over HTTP, ledger on moto's DynamoDB, in-process queue)",
            ]
        lines.append(
            f"  scale {row['messages']:>7} messages / {row['profiles']} profiles: {row['seconds']} s, "
            f"{row['messages_per_second']} msg/s, {row['observation_posts']} posts "
            f"({row['posts_per_message']} a message), {row['memory_requests']} Memory requests, "
            f"{row['slices']} slice(s), left {row['left_on_queue']}"
        )
    return lines


def render_webhook(webhook: dict[str, Any]) -> list[str]:
    bridge, peer, r = webhook["apps"]["bridge"], webhook["apps"]["peer"], webhook["ratios"]
    mb = webhook["memory_mb"]

    def row(label: str, mine: str, theirs: str, ratio: str = "") -> str:
        return f"  {label:<52} {mine:>14} {theirs:>14} {ratio:>7}"

    lines = [
        "",
        f"The webhook as Lambda runs it, beside the simple peer (MemorySize {mb} MB from template.yaml: "
        f"CPU x {webhook['cpu_factor']}; Memory and Conversations answer each call in "
        f"{webhook['memory_latency_ms']:g} ms)",
        row("", "memory-bridge", "peer", "ratio"),
    ]
    if "cold" in bridge:
        b, p = bridge["cold"], peer["cold"]
        lines += [
            f"  cold: median of {webhook['cold_runs']} fresh processes each, interleaved",
            row(
                "init (import and set-up), wall at full speed",
                f"{b['init_wall_ms']} ms",
                f"{p['init_wall_ms']} ms",
                f"{r['cold_init_wall_ms']}x",
            ),
            row("init CPU", f"{b['init_cpu_ms']} ms", f"{p['init_cpu_ms']} ms", f"{r['cold_init_cpu_ms']}x"),
            row(
                "first invocation: CPU here",
                f"{b['first_cpu_ms']} ms",
                f"{p['first_cpu_ms']} ms",
                f"{r['cold_first_cpu_ms']}x",
            ),
            row("first invocation: I/O wait", f"{b['first_io_wait_ms']} ms", f"{p['first_io_wait_ms']} ms"),
            row(
                "init + first answer, this machine",
                f"{b['init_plus_first_here_ms']} ms",
                f"{p['init_plus_first_here_ms']} ms",
                f"{r['cold_init_plus_first_here_ms']}x",
            ),
            row(
                f"cold first answer, modelled at {mb} MB",
                f"{b['modelled_ms']} ms",
                f"{p['modelled_ms']} ms",
                f"{r['cold_modelled_ms']}x",
            ),
            row("first answers", _outcomes(b["outcomes"]), _outcomes(p["outcomes"])),
        ]
    if "warm" in bridge:
        b, p = bridge["warm"], peer["warm"]
        lines += [
            f"  warm: {webhook['webhooks']} webhooks each, {webhook['customers']} customers, in interleaved "
            "batches of one process each",
            row(
                "CPU p50 / p99",
                f"{b['cpu_ms']['p50']} / {b['cpu_ms']['p99']}",
                f"{p['cpu_ms']['p50']} / {p['cpu_ms']['p99']}",
                f"{r['warm_cpu_p50']}x",
            ),
            row(
                "wall here p50 / p99",
                f"{b['wall_here_ms']['p50']} / {b['wall_here_ms']['p99']}",
                f"{p['wall_here_ms']['p50']} / {p['wall_here_ms']['p99']}",
                f"{r['warm_wall_here_p50']}x",
            ),
            row(
                f"modelled at {mb} MB p50 / p99",
                f"{b['modelled_ms']['p50']} / {b['modelled_ms']['p99']}",
                f"{p['modelled_ms']['p50']} / {p['modelled_ms']['p99']}",
                f"{r['warm_modelled_p50']}x",
            ),
            row(
                f"... with DynamoDB answering in {webhook['dynamodb_latency_ms']:g} ms (moto: "
                f"{b['dynamodb_wall_per_call_ms']} ms)",
                _p50_p99(b["modelled_with_dynamodb_latency_ms"]),
                _p50_p99(p["modelled_with_dynamodb_latency_ms"]),
                f"{r['warm_modelled_with_dynamodb_latency_p50']}x",
            ),
            row(
                "participants reads per message (conversation cached)",
                f"{b['calls_per_message']['conversations']:g}",
                f"{p['calls_per_message']['conversations']:g}",
            ),
            row(
                "calls per message: Memory / DynamoDB / Secrets / SQS",
                _calls(b["calls_per_message"]),
                _calls(p["calls_per_message"]),
            ),
            row("answers", _outcomes(b["outcomes"]), _outcomes(p["outcomes"])),
            row(
                "peak RSS; growth over the second half",
                f"{b['peak_rss_mb']} MB; {b['rss_growth_pct_between_halves']} %",
                f"{p['peak_rss_mb']} MB; {p['rss_growth_pct_between_halves']} %",
            ),
        ]
    if "new_conversation" in bridge:
        b, p = bridge["new_conversation"], peer["new_conversation"]
        lines += [
            f"  warm, each the first message of a new conversation (the bridge reads its participants once): "
            f"{webhook['new_conversation_webhooks']} webhooks each, interleaved with the above",
            row(
                "CPU p50 / p99",
                _p50_p99(b["cpu_ms"]),
                _p50_p99(p["cpu_ms"]),
                f"{r['new_conversation_cpu_p50']}x",
            ),
            row("wall here p50 / p99", _p50_p99(b["wall_here_ms"]), _p50_p99(p["wall_here_ms"])),
            row(
                f"modelled at {mb} MB p50 / p99",
                _p50_p99(b["modelled_ms"]),
                _p50_p99(p["modelled_ms"]),
                f"{r['new_conversation_modelled_p50']}x",
            ),
            row(
                "participants read (GET …/Participants), wall per call",
                f"{b['participants_read_wall_per_call_ms']} ms",
                "-",
            ),
            row(
                "participants reads per message",
                f"{b['calls_per_message']['conversations']:g}",
                f"{p['calls_per_message']['conversations']:g}",
            ),
            row("answers", _outcomes(b["outcomes"]), _outcomes(p["outcomes"])),
        ]
    if "sizes" in bridge:
        lines += [
            "",
            f"What a million webhooks cost, modelled (Lambda arm64, us-east-1, prices of {PRICE_DATE}; "
            f"API Gateway REST adds ${REST_API_PRICE_PER_MILLION:.2f} at every size)",
            f"  {'MB':>5} {'warm p50':>9} {'warm p99':>9} {'cold 1st':>9} {'$ / 1M':>8}   |  peer: "
            f"{'p50':>7} {'p99':>7} {'cold 1st':>9} {'$ / 1M':>8}",
        ]
        for mine, theirs in zip(bridge["sizes"], peer["sizes"], strict=True):
            lines.append(
                f"  {mine['memory_mb']:>5} {mine['warm_p50_ms']:>9} {mine['warm_p99_ms']:>9} "
                f"{mine['cold_first_answer_ms']:>9} {mine['cost_per_million_usd']:>8.3f}   |        "
                f"{theirs['warm_p50_ms']:>7} {theirs['warm_p99_ms']:>7} {theirs['cold_first_answer_ms']:>9} "
                f"{theirs['cost_per_million_usd']:>8.3f}"
            )
    return lines


def _p50_p99(figures: dict[str, float]) -> str:
    return f"{figures['p50']} / {figures['p99']}"


def _outcomes(outcomes: dict[str, int]) -> str:
    return ", ".join(f"{count} x {name}" for name, count in sorted(outcomes.items()))


def _calls(calls: dict[str, float]) -> str:
    return " / ".join(f"{calls[k]:g}" for k in ("memory", "dynamodb", "secretsmanager", "sqs"))


if __name__ == "__main__":
    sys.exit(main())
