"""`dlq stats | peek | export` on moto's server with thousands of parked messages: each finishes in a few
seconds, reads what it says, and leaves the queue as it found it (nothing consumed, nothing hidden)."""

from __future__ import annotations

import io
import json
import time
from collections import Counter

import pytest

from memory_bridge.adapters.dead_letters import DeadLetterQueue
from memory_bridge.ports import QueueDepth
from memory_bridge_cli import main as cli
from memory_bridge_cli import queue_scan
from memory_bridge_dev.parking import park_observations

pytestmark = pytest.mark.integration
PARKED = 3000
PROFILE = "mem_profile_0" + "1" * 25
# "A few seconds" each on a developer machine (about 10 s for the export here); generous because CI's
# CPU is shared, yet well under "never finishes" (the scan that went round forever).
SECONDS = 40


@pytest.fixture
def dlq(bridge, monkeypatch, tmp_path):
    monkeypatch.setenv("MEMORY_BRIDGE_LOCAL_STATE", str(tmp_path / "none.json"))

    def run(*argv: str) -> tuple[int, str, str, float]:
        out, err = io.StringIO(), io.StringIO()
        started = time.monotonic()
        code = cli.main(["dlq", *argv, "--queue-url", bridge.queue_url], out=out, err=err)
        seconds = time.monotonic() - started
        print(f"\n  dlq {' '.join(argv[:3])}: {seconds:.2f} s")
        return code, out.getvalue(), err.getvalue(), seconds

    def depth() -> QueueDepth:
        return DeadLetterQueue(bridge.queue_url, client_factory=lambda: bridge.sqs).depth()

    bridge.run, bridge.depth = run, depth
    return bridge


@pytest.fixture
def full(dlq):
    park_observations(dlq.sqs, dlq.queue_url, dlq.store_id, [PROFILE], PARKED, "scan")
    assert dlq.depth() == QueueDepth(visible=PARKED, in_flight=0, delayed=0)
    return dlq


def test_stats_counts_are_approximate_and_the_breakdown_is_a_sample(full):
    code, out, err, seconds = full.run("stats", "--json")
    assert code == 0, err
    stats = json.loads(out)
    assert stats["approximate"] is True
    assert (stats["visible"], stats["inFlight"], stats["delayed"]) == (PARKED, 0, 0)
    assert stats["scanned"] == 1000 and stats["sampleComplete"] is False
    assert stats["sample"] == f"sampled 1000 of ≈{PARKED} waiting"
    assert stats["byKind"] == {"retryable": 1000} and stats["byTwilioCode"] == {"20503": 1000}
    assert stats["needsAttention"] == {"messages": 0, "byReason": {}}
    assert stats["oldestAgeOf"] == "sample" and stats["oldestAgeSeconds"] is not None
    assert seconds < SECONDS
    assert full.depth() == QueueDepth(visible=PARKED, in_flight=0, delayed=0)

    code, out, _, _ = full.run("stats", "--sample", "50")
    assert code == 0
    assert f"waiting ≈{PARKED}" in out and f"sampled 50 of ≈{PARKED} waiting" in out
    assert "oldest in sample" in out and "retryable 50" in out
    assert full.depth() == QueueDepth(visible=PARKED, in_flight=0, delayed=0)


def test_peek_reads_n_and_puts_them_back_at_once(full):
    code, out, err, seconds = full.run("peek", "-n", "5", "--json")
    assert code == 0, err
    rows = json.loads(out)["messages"]
    assert len({row["messageId"] for row in rows}) == 5
    assert all(row["messageSid"].startswith("IMscan") for row in rows)
    assert "content" not in rows[0]
    assert seconds < SECONDS
    assert full.depth() == QueueDepth(visible=PARKED, in_flight=0, delayed=0)


def test_export_holds_every_message_once_and_consumes_nothing(full, tmp_path):
    target = tmp_path / "dlq.jsonl"
    code, out, err, seconds = full.run("export", "--out", str(target), "--json")
    assert code == 0, err
    report = json.loads(out)
    records = [json.loads(line) for line in target.read_text().splitlines()]
    assert len(records) == PARKED == report["messages"]
    assert len({r["messageId"] for r in records}) == PARKED
    sids = Counter(r["envelope"]["messageSid"] for r in records)
    assert len(sids) == PARKED and set(sids.values()) == {1}
    assert report["complete"] is True and report["putBack"] == PARKED and report["putBackFailed"] == 0
    assert seconds < SECONDS
    assert full.depth() == QueueDepth(visible=PARKED, in_flight=0, delayed=0)  # nothing consumed


def test_export_max_and_progress_on_stderr(full, tmp_path, monkeypatch):
    export = queue_scan.export  # a progress line after every receive instead of every few seconds
    monkeypatch.setattr(queue_scan, "export", lambda *a, **k: export(*a, **{**k, "progress_every": 0.0}))
    target = tmp_path / "some.jsonl"
    code, out, err, _ = full.run("export", "--out", str(target), "--max", "25")
    assert code == 0, err
    assert len(target.read_text().splitlines()) == 25
    assert "exported 25 message(s)" in out and "read as many as asked" in out
    lines = err.splitlines()
    assert "stays hidden from a replay until the export ends" in lines[0]
    assert [line.split()[1] for line in lines if line.startswith("  exported")] == ["10", "20", "25"]
    assert "/s, " in lines[1] and lines[-1] == "  put back 25 of 25"
    assert full.depth() == QueueDepth(visible=PARKED, in_flight=0, delayed=0)


@pytest.mark.parametrize("argv", [["stats"], ["peek"], ["export", "--out", "OUT"]])
def test_an_empty_queue_answers_at_once(dlq, tmp_path, argv):
    argv = [str(tmp_path / "empty.jsonl") if a == "OUT" else a for a in argv]
    code, out, err, seconds = dlq.run(*argv)
    assert code == 0, err
    assert seconds < 1.0  # no long polls waited out
    if argv[0] == "stats":
        assert "waiting ≈0" in out and "nothing waiting" in out
    if argv[0] == "export":
        assert (tmp_path / "empty.jsonl").read_text() == ""


def test_a_replay_is_not_kept_waiting_by_what_stats_and_peek_read(full):
    full.run("stats")
    full.run("peek", "-n", "20")
    answer = full.sqs.receive_message(QueueUrl=full.queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0)
    assert len(answer.get("Messages", [])) == 10  # the oldest are visible again at once
