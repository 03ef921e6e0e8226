"""Crash test: kill `memory-bridge backfill` (SIGKILL) at random points, many times, while live webhooks
post some of the same messages between runs; every message ends up in Memory exactly once.

The backfill runs in a subprocess (memory_bridge_dev.crash_points, which kills it at a named step of
the replay engine it drives, or from outside at a random time after the engine started). Between
runs the killed run's ledger leases are expired (what waiting out its hold does).

MEMORY_BRIDGE_CRASH_SEED=<int> replays one sequence; MEMORY_BRIDGE_CRASH_ITERATIONS sets the number
of killed runs (default 10). Run with -s to see the runs and the accounting line.
"""

from __future__ import annotations

import json
import os
import random
import time
from collections import Counter
from datetime import timedelta
from typing import Any

import pytest

from memory_bridge.domain.observations import split_utf8
from memory_bridge_dev import crash_points
from memory_bridge_dev.sandbox import Fault
from tests.integration.conftest import outcome
from tests.integration.test_backfill import START, seed_conversation
from tests.support import DEV_ACCOUNT_SID, DEV_AUTH_TOKEN, ROOT, message_params

pytestmark = pytest.mark.integration

SEED_ENV = "MEMORY_BRIDGE_CRASH_SEED"
ITERATIONS_ENV = "MEMORY_BRIDGE_CRASH_ITERATIONS"
RUN_TIMEOUT = 60.0


def _body(customer: int, conversation: int, index: int, long: bool) -> str:
    text = f"backfill c{customer} v{conversation} m{index:02d}"
    if long:  # three 4096-byte pieces, each naming its message and part
        return "".join(f"{text} part {k} ".ljust(4096, "-") for k in range(3))
    return text


def _seed(
    bridge: Any,
    rng: random.Random,
    expected: Counter[str],
    customer_messages: list[tuple[str, str, str, str]],
    wave: int,
    conversations: int,
) -> None:
    """Conversations of 6-10 messages over 4 customers, every fourth message an agent's, some customer
    messages 3 pieces long; adds to the expected contents and the customers' messages (sid,
    conversation, author, body)."""
    for number in range(conversations):
        customer, conversation = number % 4, wave * 100 + number
        address = f"+15555550{customer:03d}"
        bodies = []
        for index in range(rng.randint(6, 10)):
            who = "a" if index % 4 == 3 else "c"
            long = who == "c" and rng.random() < 0.15
            bodies.append((who, _body(customer, conversation, index, long)))
        sid, sids = seed_conversation(
            bridge.conversations, address, bodies, START + timedelta(hours=conversation)
        )
        for message_sid, (who, text) in zip(sids, bodies, strict=True):
            if who == "a":
                expected["Agent: " + text] += 1
            else:
                expected.update(split_utf8(text))
                customer_messages.append((message_sid, sid, address, text))


def test_backfill_killed_at_random_points_with_webhooks_between_posts_everything_once(bridge, tmp_path):
    seed = int(os.environ.get(SEED_ENV) or random.SystemRandom().randrange(2**31))
    iterations = int(os.environ.get(ITERATIONS_ENV) or 10)
    rng = random.Random(seed)
    print(f"\ncrash-backfill seed={seed} (rerun with {SEED_ENV}={seed})")
    started = time.monotonic()
    expected: Counter[str] = Counter()
    customer_messages: list[tuple[str, str, str, str]] = []
    _seed(bridge, rng, expected, customer_messages, 0, 12)
    env = {
        **os.environ,
        "TWILIO_ACCOUNT_SID": DEV_ACCOUNT_SID,
        "TWILIO_AUTH_TOKEN": DEV_AUTH_TOKEN,
        "MEMORY_BRIDGE_LOCAL_STATE": str(tmp_path / "none.json"),
        "PYTHONUNBUFFERED": "1",
    }
    env.pop(crash_points.ENV, None)
    argv = [
        "backfill",
        "--since",
        "2026-02-01",
        "--queue-url",
        bridge.queue_url,
        "--table",
        bridge.table,
        "--memory-api-url",
        bridge.sandbox.base_url,
        "--conversations-api-url",
        bridge.conversations.base_url,
        "--json",
    ]
    steps = [s for s in crash_points.STEPS if s not in ("replaced",)]
    plan = (steps + ["time"] * max(iterations - len(steps), 0))[: max(iterations, len(steps))]
    rng.shuffle(plan)
    lines, killed, webhooks = [], Counter(), 0
    for index, mode in enumerate(plan, start=1):
        _seed(bridge, rng, expected, customer_messages, index, 4)  # every run has work
        # A live webhook (Twilio retrying, or a late delivery) for a random customer message.
        message_sid, conversation, author, body = rng.choice(customer_messages)
        answered = outcome(
            bridge.send(
                message_params(
                    message_sid=message_sid, author=author, body=body, conversation_sid=conversation
                )
            )
        )
        assert answered in ("posted", "duplicate", "parked"), answered
        webhooks += 1
        bridge.sandbox.add_fault(Fault(latency=rng.uniform(0.05, 0.2), match="/Observations"))
        n = rng.randrange(0, 1500) if mode == "time" else rng.randint(1, 3)
        ended = crash_points.run_replay(
            argv,
            env,
            step=(mode, n) if mode != "time" else None,
            kill_after_ms=n if mode == "time" else None,
            timeout=RUN_TIMEOUT,
            cwd=ROOT,
        )
        bridge.sandbox.clear_faults()
        assert ended.code in (0, 1, -9), ended.stderr[-2000:]
        if ended.killed:
            killed[ended.killed] += 1
        lines.append(f"  run {index:2d} {mode}:{n} exit={ended.code} killed={ended.killed or 'no'}")
        print(lines[-1])
        copies = Counter(o["content"] for o in bridge.observations())
        doubled = {c[:50]: k for c, k in copies.items() if k > 1}
        assert not doubled, f"seed {seed}: posted twice after run {index}: {doubled}\n" + "\n".join(lines)
        crash_points.expire_leases(bridge.dynamodb, bridge.table)

    final = crash_points.run_replay(argv, env, step=None, kill_after_ms=None, timeout=RUN_TIMEOUT, cwd=ROOT)
    report = json.loads(final.stdout)
    copies = Counter(o["content"] for o in bridge.observations())
    lost = [c[:50] for c in expected if c not in copies]
    extra = [c[:50] for c in copies if c not in expected]
    print(
        f"crash-backfill seed={seed} runs={len(plan) + 1} killed={dict(killed)} webhooks={webhooks} "
        f"messages={sum(1 for _ in customer_messages)}+agents observations {sum(copies.values())}/"
        f"{sum(expected.values())} doubled={sum(1 for k in copies.values() if k > 1)} lost={len(lost)}; "
        f"final run: {report['messages']}; {time.monotonic() - started:.1f}s"
    )
    assert final.code == 0 and report["complete"], (report, final.stderr[-2000:])
    assert not lost and not extra, (lost, extra)
    assert copies == expected
