"""End to end: `make run --replay-every N` heals by itself. Break Memory, send, heal, wait: every parked
message is posted once within the configured interval, and nobody ran a replay."""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import urllib3

from tests.e2e.conftest import local_stack_process
from tests.e2e.test_local_stack import run_cli

pytestmark = pytest.mark.e2e
EVERY = 2.0  # seconds between scheduled runs
MIN_AGE = 2.0  # the template waits minutes; the local stack may shorten it (--replay-min-age)


@pytest.fixture(scope="module")
def healing_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    folder = tmp_path_factory.mktemp("healing")
    with local_stack_process(
        folder, "--replay-min-age", str(MIN_AGE), env={"REPLAY_EVERY": str(EVERY)}
    ) as info:
        yield info


def sandbox(stack: dict[str, Any], method: str, path: str, body: Any = None) -> Any:
    return urllib3.request(method, stack["sandbox_url"] + path, json=body).json()


def posted(stack: dict[str, Any]) -> Counter[str]:
    observations = sandbox(stack, "GET", "/__sandbox/observations")
    rows = observations if isinstance(observations, list) else observations.get("observations", [])
    return Counter(str(o.get("content")) for o in rows)


def test_the_local_stack_heals_by_itself_within_the_interval(healing_stack):
    log: Path = healing_stack["log"]
    started = time.monotonic()  # the state file is written just before the schedule starts
    while f"scheduled replay every {EVERY:g} s" not in log.read_text():
        assert time.monotonic() - started < 10, log.read_text()
        time.sleep(0.1)
    bodies = [f"healing e2e {i}" for i in range(3)]
    sandbox(healing_stack, "POST", "/__sandbox/faults", {"status": 503})
    try:
        for i, body in enumerate(bodies):
            code, out, err = run_cli("send", "--from", f"+1555555077{i}", "--body", body, "--json")
            assert code == 0, err
            assert json.loads(out)["answer"]["outcome"] == "parked"
        # Memory stays down across at least one scheduled run: it tries, fails, puts them back.
        time.sleep(MIN_AGE + EVERY + 1)
        assert not set(bodies) & set(posted(healing_stack))
    finally:
        sandbox(healing_stack, "DELETE", "/__sandbox/faults")
    healed = time.monotonic()

    # A message that just failed waits MIN_AGE, then the next run (≤ EVERY later) posts it.
    budget = MIN_AGE + 2 * EVERY + 5
    while time.monotonic() - healed < budget:
        if all(posted(healing_stack)[b] for b in bodies):
            break
        time.sleep(0.2)
    took = time.monotonic() - healed
    counts = posted(healing_stack)
    assert {b: counts[b] for b in bodies} == dict.fromkeys(bodies, 1), log.read_text()[-3000:]
    print(f"\nhealed {took:.1f} s after Memory came back (budget {budget:.0f} s)")

    # Nothing is left, and later runs post nothing twice.
    time.sleep(EVERY * 2)
    assert {b: posted(healing_stack)[b] for b in bodies} == dict.fromkeys(bodies, 1)
    code, out, err = run_cli("dlq", "stats", "--json")
    assert code == 0, err
    assert json.loads(out)["visible"] == 0
    lines = [line for line in log.read_text().splitlines() if line.startswith("• scheduled replay ")]
    assert any("failed again" in line and "failed again 0" not in line for line in lines), lines
    assert any("replayed 3" in line or "replayed 1" in line or "replayed 2" in line for line in lines), lines
