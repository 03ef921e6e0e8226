"""Crash test: kill the replay CLI (SIGKILL) at random points, many times; every message ends up in
Memory exactly once and the queue empty.

The replay runs in a subprocess (memory_bridge_dev.crash_points) against moto's server and the
Memory sandbox of this process. Some runs are killed by a hook at a named step (the n-th time the
replay reaches it: after the claim, after Memory's 202, after the settle, between the chunks of a
long message, …), others from outside at a random time after the engine started, while the sandbox
slows "/Observations" down so that the time lands inside requests. Between runs, time passes
without waiting: moto's SQS clock moves past the visibility timeout, and the killed run's ledger
leases are expired. Fresh waves are parked when the queue runs low, so that every run has work.

MEMORY_BRIDGE_CRASH_SEED=<int> replays one sequence; MEMORY_BRIDGE_CRASH_ITERATIONS sets the number
of killed runs (default 12). Run with -s to see the seed, the runs and the accounting line.
"""

from __future__ import annotations

import json
import os
import random
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import boto3
import pytest

from memory_bridge.adapters.dead_letters import DeadLetterQueue
from memory_bridge.domain.envelope import parse_envelope
from memory_bridge.domain.observations import split_utf8
from memory_bridge.replay import ReplayOptions
from memory_bridge_dev import crash_points
from memory_bridge_dev.sandbox import Fault
from tests.integration.conftest import outcome
from tests.support import DEV_ACCOUNT_SID, DEV_AUTH_TOKEN, ROOT, message_params, twilio_sid

pytestmark = pytest.mark.integration

SEED_ENV = "MEMORY_BRIDGE_CRASH_SEED"
ITERATIONS_ENV = "MEMORY_BRIDGE_CRASH_ITERATIONS"
# The replay CLI holds what it receives this long (no flag changes it): the clock jumps past it.
VISIBILITY = ReplayOptions().visibility_timeout
RUN_TIMEOUT = 30.0  # seconds, for one replay subprocess
AUTHORS = [f"+1555555{n:04d}" for n in range(6)]


def _receive(sqs: Any, url: str, visibility: int, wait: int = 0) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = sqs.receive_message(
        QueueUrl=url,
        MaxNumberOfMessages=10,
        VisibilityTimeout=visibility,
        WaitTimeSeconds=wait,
        AttributeNames=["ApproximateReceiveCount"],
    ).get("Messages", [])
    return messages


def _depth(sqs: Any, url: str) -> dict[str, int]:
    names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    names.append("ApproximateNumberOfMessagesDelayed")
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=names)["Attributes"]
    return {
        name.removeprefix("ApproximateNumberOfMessages") or "Visible": int(attributes[name]) for name in names
    }


def test_sqs_clock_offset_lets_visibility_timeouts_and_delays_run_out(aws_env, sqs_clock):
    sqs = boto3.client("sqs")
    url = sqs.create_queue(QueueName=f"clock-{uuid.uuid4().hex[:10]}")["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody="held")
    sqs.send_message(QueueUrl=url, MessageBody="delayed", DelaySeconds=900)  # the most SQS allows
    [held] = _receive(sqs, url, VISIBILITY)
    assert held["Body"] == "held"
    assert _depth(sqs, url) == {"Visible": 0, "NotVisible": 1, "Delayed": 1}
    assert _receive(sqs, url, VISIBILITY) == []

    sqs_clock.advance(VISIBILITY - 5)  # not yet
    assert _receive(sqs, url, VISIBILITY) == []
    assert _depth(sqs, url) == {"Visible": 0, "NotVisible": 1, "Delayed": 1}
    sqs_clock.advance(6)  # past the visibility timeout and the delay
    again = {m["Body"]: m for m in _receive(sqs, url, 300)}
    assert set(again) == {"held", "delayed"}
    assert again["held"]["Attributes"]["ApproximateReceiveCount"] == "2"

    # ChangeMessageVisibility reads the same clock, before and after a jump.
    sqs.change_message_visibility(
        QueueUrl=url, ReceiptHandle=again["held"]["ReceiptHandle"], VisibilityTimeout=60
    )
    sqs_clock.advance(59)
    started = time.monotonic()
    assert _receive(sqs, url, 300, wait=1) == []  # a long poll still ends after its second
    assert time.monotonic() - started < 5
    sqs_clock.advance(2)
    [back] = _receive(sqs, url, 0)
    assert back["Body"] == "held"
    assert _depth(sqs, url)["NotVisible"] == 1  # "delayed", received with 300 s

    assert sqs_clock.offset() == VISIBILITY - 5 + 6 + 59 + 2
    with pytest.raises(ValueError, match="forward"):
        sqs_clock.advance(-1)
    sqs_clock.reset()
    assert sqs_clock.offset() == 0
    assert abs(sqs_clock.now() - time.time()) < 1


# ---- the crash test ----------------------------------------------------------------------------


@dataclass
class Spec:
    sid: str
    author: str
    parts: int

    @property
    def body(self) -> str:
        if self.parts == 1:
            return f"crash {self.sid}"
        # Each piece exactly 4096 ASCII bytes, each naming its message and part: all contents distinct.
        return "".join(f"crash {self.sid} part {k:02d} ".ljust(4096, "-") for k in range(self.parts))

    @property
    def contents(self) -> list[str]:
        return split_utf8(self.body)


@dataclass
class Run:
    index: int
    mode: str  # a crash_points step, "time", or "final"
    n: int = 0  # the step's n-th occurrence, or the milliseconds after the engine started
    faults: list[str] = field(default_factory=list)
    parked: int = 0
    code: int | None = None
    killed: str | None = None  # "hook" / "time" / None (it finished first)
    seconds: float = 0.0
    stdout: str = ""
    stderr: str = ""
    requests: Counter[str] = field(default_factory=Counter)

    def line(self) -> str:
        what = f"{self.mode}:{self.n}" if self.mode != "final" else "final"
        tail = " ".join(self.stderr.strip().splitlines()[-2:])[-200:]
        return (
            f"  run {self.index:2d} {what:<13} faults={','.join(self.faults) or '-':<18} parked+{self.parked:<2} "
            f"exit={self.code} killed={self.killed or 'no'} {self.seconds:.2f}s "
            f"requests={dict(self.requests)} | {tail}"
        )


class CrashHarness:
    def __init__(self, bridge: Any, tmp_path: Any, rng: random.Random):
        self.bridge, self.rng = bridge, rng
        self.expected: Counter[str] = Counter()
        self.specs: list[Spec] = []
        self.runs: list[Run] = []
        self.env = {
            **os.environ,
            "TWILIO_ACCOUNT_SID": DEV_ACCOUNT_SID,
            "TWILIO_AUTH_TOKEN": DEV_AUTH_TOKEN,
            "MEMORY_BRIDGE_LOCAL_STATE": str(tmp_path / "none.json"),
            "PYTHONUNBUFFERED": "1",
        }
        self.env.pop(crash_points.ENV, None)
        self.waves = 0

    # ---- parking ----

    def park_wave(self, specs: list[Spec]) -> None:
        """Park through the webhook with Memory refusing (503), as a real outage does."""
        sandbox = self.bridge.sandbox
        sandbox.add_fault(Fault(status=503, match="/Observations"))
        try:
            for spec in specs:
                response = self.bridge.send(
                    message_params(message_sid=spec.sid, author=spec.author, body=spec.body)
                )
                assert outcome(response) == "parked", response
                self.specs.append(spec)
                self.expected.update(spec.contents)
        finally:
            sandbox.clear_faults()
        self.waves += 1

    def new_wave(self, size: int, long_message: bool) -> list[Spec]:
        wave = self.waves
        specs = []
        for i in range(size):
            parts = self.rng.choice([1, 1, 1, 2, 3])
            specs.append(Spec(f"IMcrash{wave:02d}n{i:03d}", AUTHORS[(wave + i) % len(AUTHORS)], parts))
        if long_message:
            specs.append(Spec(f"IMcrash{wave:02d}long", AUTHORS[wave % len(AUTHORS)], 12))
        return specs

    def park_twin(self, sid: str) -> None:
        """Put a parked envelope on the queue a second time (as a crash inside a replace leaves it)."""
        sqs, url = self.bridge.sqs, self.bridge.queue_url
        held: list[dict[str, Any]] = []
        try:
            while batch := _receive(sqs, url, 60):
                held.extend(batch)
                for message in batch:
                    envelope = parse_envelope(message["Body"])
                    if envelope.message_sid == twilio_sid(sid):
                        DeadLetterQueue(url, client_factory=lambda: sqs).park(envelope)
                        return
            raise AssertionError(f"{sid} not found on the queue")
        finally:
            for start in range(0, len(held), 10):
                sqs.change_message_visibility_batch(
                    QueueUrl=url,
                    Entries=[
                        {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"], "VisibilityTimeout": 0}
                        for i, m in enumerate(held[start : start + 10])
                    ],
                )

    # ---- time passing ----

    def let_time_pass(self, clock: Any) -> None:
        """What 15 minutes do: the killed run's leases end, then the messages it held reappear."""
        crash_points.expire_leases(self.bridge.dynamodb, self.bridge.table)
        clock.advance(VISIBILITY + 1)

    # ---- one replay run ----

    def replay(self, run: Run) -> Run:
        bridge = self.bridge
        argv = ["dlq", "replay", "--queue-url", bridge.queue_url, "--memory-api-url", bridge.sandbox.base_url]
        argv += ["--table", bridge.table, "--json"]
        before = len(bridge.sandbox.requests)
        ended = crash_points.run_replay(
            argv,
            self.env,
            step=(run.mode, run.n) if run.mode not in ("time", "final") else None,
            kill_after_ms=run.n if run.mode == "time" else None,
            timeout=RUN_TIMEOUT,
            cwd=ROOT,
        )
        run.code, run.killed, run.seconds = ended.code, ended.killed, ended.seconds
        run.stdout, run.stderr = ended.stdout, ended.stderr
        assert run.code != -9 or run.killed, f"killed by nobody?\n{run.line()}"
        assert run.code in (0, 1, -9), f"the replay failed:\n{run.line()}\n{run.stderr}"
        run.requests = Counter(r.operation for r in bridge.sandbox.requests[before:])
        self.runs.append(run)
        return run

    # ---- what Memory holds ----

    def copies(self) -> Counter[str]:
        return Counter(o["content"] for o in self.bridge.observations())

    def doubled(self) -> dict[str, int]:
        return {content[:60]: count for content, count in self.copies().items() if count > 1}

    def log(self) -> str:
        return "\n".join(run.line() for run in self.runs)


def test_replay_killed_at_random_points_posts_everything_exactly_once(bridge, tmp_path, sqs_clock):
    seed = int(os.environ.get(SEED_ENV) or random.SystemRandom().randrange(2**31))
    iterations = int(os.environ.get(ITERATIONS_ENV) or 12)
    rng = random.Random(seed)
    print(f"\ncrash-replay seed={seed} (rerun with {SEED_ENV}={seed})")
    started = time.monotonic()
    harness = CrashHarness(bridge, tmp_path, rng)
    _park_first_wave(harness)

    plan = _kill_plan(rng, iterations)
    for index, mode in enumerate(plan, start=1):
        run = Run(index, mode)
        _prepare_run(harness, rng, run, may_park=index < len(plan) - 1)
        harness.replay(run)
        bridge.sandbox.clear_faults()
        print(run.line())
        doubled = harness.doubled()
        assert not doubled, f"seed {seed}: posted twice after run {index}: {doubled}\n{harness.log()}"
        harness.let_time_pass(sqs_clock)

    # The last run, left alone, finishes the job.
    final = harness.replay(Run(len(harness.runs) + 1, "final"))
    print(final.line())
    report = json.loads(final.stdout)
    sqs_clock.advance(VISIBILITY + 1)
    depth = _depth(bridge.sqs, bridge.queue_url)
    copies = harness.copies()
    lost = sorted(content[:40] for content in harness.expected if content not in copies)
    extra = sorted(content[:40] for content in copies if content not in harness.expected)
    doubled = harness.doubled()
    print(_accounting_line(seed, harness, copies, len(doubled), len(lost), started))
    context = f"seed {seed}\n{harness.log()}\nfinal report: {json.dumps(report.get('counts'))}"
    assert not doubled, f"posted twice: {doubled}\n{context}"
    assert not lost, f"lost: {lost}\n{context}"
    assert not extra, f"unexpected: {extra}\n{context}"
    assert copies == harness.expected, context
    assert final.code == 0 and report["complete"], context
    assert depth == {"Visible": 0, "NotVisible": 0, "Delayed": 0}, f"left on the queue: {depth}\n{context}"


def _park_first_wave(harness: CrashHarness) -> None:
    """30 messages over six customers, one of 12 observations (two requests: 10 + 2), and two
    envelopes on the queue twice: the long one and a short one."""
    first = harness.new_wave(29, long_message=True)
    harness.park_wave(first)
    harness.park_twin(first[-1].sid)
    harness.park_twin(first[0].sid)
    assert len(harness.expected) == sum(harness.expected.values()), "contents must be distinct"
    assert harness.bridge.observations() == []


def _kill_plan(rng: random.Random, iterations: int) -> list[str]:
    """Every named step at least once (the chunk step early, while there are long messages), the
    rest killed from outside at a random time."""
    steps = [s for s in crash_points.STEPS if s != "chunk"]
    plan = steps + ["time"] * max(iterations - len(steps) - 1, 0)
    rng.shuffle(plan)
    plan.insert(rng.randrange(0, 3), "chunk")
    return plan


def _prepare_run(harness: CrashHarness, rng: random.Random, run: Run, *, may_park: bool) -> None:
    """Park a fresh wave if the queue runs low, set Memory's faults, and choose where to kill."""
    bridge, sandbox, mode = harness.bridge, harness.bridge.sandbox, run.mode
    depth = _depth(bridge.sqs, bridge.queue_url)["Visible"]
    if depth < 12 and may_park:
        wave = harness.new_wave(5, long_message=mode in ("chunk", "time") or rng.random() < 0.3)
        harness.park_wave(wave)
        run.parked = len(wave)
    # Slow "/Observations" so that kills from outside land inside requests; sometimes a request
    # that Memory takes but never answers (ambiguous), or a clean 503: both put the message back
    # through a replace (park the changed envelope, delete the old one).
    if mode == "replaced" or rng.random() < 0.3:
        sandbox.add_fault(Fault(drop="after", times=1, match="/Observations", method="POST"))
        run.faults.append("drop-after")
    elif rng.random() < 0.2:
        sandbox.add_fault(Fault(status=503, times=1, match="/Observations", method="POST"))
        run.faults.append("503")
    latency = rng.uniform(0.05, 0.2)
    sandbox.add_fault(Fault(latency=latency, match="/Observations"))
    run.faults.append(f"lat{latency * 1000:.0f}ms")
    if mode == "time":
        run.n = rng.randrange(0, 1500)  # ms after the engine started
    elif mode in ("chunk", "replaced"):
        run.n = 1
    else:
        run.n = rng.randint(1, 3)


def _accounting_line(
    seed: int, harness: CrashHarness, copies: Counter[str], doubled: int, lost: int, started: float
) -> str:
    runs = harness.runs
    hook_kills = Counter(r.mode for r in runs if r.killed == "hook")
    time_runs = [r for r in runs if r.mode == "time"]
    missed = sorted(r.mode for r in runs if r.mode not in ("time", "final") and not r.killed)
    requests = sum((r.requests for r in runs), Counter())
    return (
        f"crash-replay seed={seed} runs={len(runs)} (killed {sum(1 for r in runs if r.killed)}: "
        f"hook {dict(sorted(hook_kills.items()))}, hook-not-reached {missed}, "
        f"time {sum(1 for r in time_runs if r.killed)}/{len(time_runs)}) "
        f"messages={len(harness.specs)}+2 twins in {harness.waves} waves; "
        f"replay requests POST={requests['CreateProfileObservation']} List={requests['ListProfileObservations']}; "
        f"observations {sum(copies.values())}/{sum(harness.expected.values())} "
        f"doubled={doubled} lost={lost}; {time.monotonic() - started:.1f}s"
    )


@pytest.mark.parametrize("crash", [None, "posted:1"], ids=["clean", "killed-after-first-202"])
def test_a_message_needing_two_requests_is_replayed_in_one_run(bridge, tmp_path, sqs_clock, crash):
    """12 observations: two requests (10 + 2). A run, clean or after a crash that left the first ten
    unsure (List Observations finds them), posts the rest and deletes the message; nothing is left
    "busy" behind by the run's own ledger writes."""
    harness = CrashHarness(bridge, tmp_path, random.Random(0))
    harness.park_wave([Spec("IMtwolong", AUTHORS[0], 12)])
    if crash:
        assert harness.replay(Run(1, crash.split(":")[0], int(crash.split(":")[1]))).killed == "hook"
        assert sum(harness.copies().values()) == 10
        harness.let_time_pass(sqs_clock)
    run = harness.replay(Run(len(harness.runs) + 1, "final"))
    report = json.loads(run.stdout)
    assert report["counts"]["busy"] == 0, f"held back after its own ledger writes: {report['counts']}"
    assert run.code == 0 and report["complete"], report["counts"]
    assert harness.copies() == harness.expected, harness.log()
    sqs_clock.advance(VISIBILITY + 1)
    assert _depth(bridge.sqs, bridge.queue_url) == {"Visible": 0, "NotVisible": 0, "Delayed": 0}
