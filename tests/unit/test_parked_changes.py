"""Parked edits and removals in the replay engine (issue 22), on fakes: handed to the ChangeReplayer
port, deleted once it finishes them, left queued (and counted) while it cannot, shown apart in a dry
run; the posting path never sees them."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

from memory_bridge.domain.envelope import FailureRecord, new_envelope
from memory_bridge.domain.envelope_records import ChangeRecord
from memory_bridge.domain.identifiers import Identifier
from memory_bridge.domain.outcomes import Retryable
from memory_bridge.replay import ReplayEngine, ReplayOptions
from tests.fakes import FakeChanges, FakeClock, FakeLedger, FakeMemory, FakeQueue

STORE = "mem_store_01aaaaaaaaaaaaaaaaaaaaaaaa"
NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def park_change(queue: FakeQueue, sid: str, kind: str = "edit") -> None:
    envelope = new_envelope(
        kind="retryable",
        store_id=STORE,
        message_sid=sid,
        conversation_sid="CH1",
        observations=[
            {"content": "new words", "source": "twilio-conversations", "occurredAt": "2026-11-30T10:00:00Z"}
        ],
        failure=FailureRecord.from_outcome("change_observations", Retryable(503, 20503, "down")),
        profile_id=None,
        identifier=Identifier("phone", "+15550000001"),
        trait_group="Contact",
        now=NOW,
        parts=[0],
        edited="2026-11-30T10:05:00.000Z" if kind == "edit" else None,
    )
    queue.send(replace(envelope, change=ChangeRecord(kind, "2026-11-30T10:05:00.000Z")).to_json())  # type: ignore[arg-type]


def engine(queue: FakeQueue, memory: FakeMemory, changes: FakeChanges | None) -> ReplayEngine:
    clock = FakeClock()
    return ReplayEngine(
        queue,
        memory,
        ledger=FakeLedger(),
        clock=clock,
        wall_clock=clock,
        sleep=clock.sleep,
        now=lambda: NOW,
        changes=changes,
    )


def test_a_parked_change_is_handed_over_and_deleted_once_finished():
    queue, memory, changes = FakeQueue(), FakeMemory(), FakeChanges(finishes=True)
    park_change(queue, "IM1")
    park_change(queue, "IM2", kind="remove")

    summary = engine(queue, memory, changes).run(ReplayOptions())

    assert sorted(sid for sid, _, _ in changes.handed) == ["IM1", "IM2"]
    assert all(0 < seconds <= 20 for _, _, seconds in changes.handed)
    assert (summary.counts.changes, summary.counts.replayed, summary.counts.left) == (2, 0, 0)
    assert queue.visible_count() == 0
    assert memory.calls["post"] == 0 and memory.observations == {}  # never posted as words


def test_a_change_that_cannot_finish_stays_queued_and_counted_left():
    queue, changes = FakeQueue(), FakeChanges(finishes=False)
    park_change(queue, "IM1")

    summary = engine(queue, FakeMemory(), changes).run(ReplayOptions())

    assert (summary.counts.changes, summary.counts.left) == (0, 1)
    assert len(changes.handed) == 1  # tried once per run, not in a loop
    assert queue.visible_count() == 1


def test_without_a_change_replayer_a_change_is_left_queued():
    queue = FakeQueue()
    park_change(queue, "IM1")

    summary = engine(queue, FakeMemory(), None).run(ReplayOptions())

    assert (summary.counts.changes, summary.counts.left) == (0, 1)
    assert queue.visible_count() == 1


def test_a_dry_run_shows_changes_apart_from_posts():
    queue, changes = FakeQueue(), FakeChanges()
    park_change(queue, "IM1")

    summary = engine(queue, FakeMemory(), changes).run(ReplayOptions(dry_run=True))

    (row,) = summary.plan
    assert (row["profile"], row["messages"]) == ("edits and removals", 1)
    assert changes.handed == []
