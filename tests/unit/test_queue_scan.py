"""The dead-letter readers (stats sample, peek, export) against an in-memory queue that behaves like SQS:
visibility timeouts on a fake clock, oldest visible first, at most ten per receive, only the newest receipt
handle valid. They must finish on 100,000 messages, in a bounded number of receives, and leave nothing
hidden behind them."""

from __future__ import annotations

import heapq
import math
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest

from memory_bridge.domain.envelope import FailureRecord, new_envelope
from memory_bridge.domain.outcomes import Permanent, Retryable
from memory_bridge.ports import QueueDepth, QueuedMessage
from memory_bridge_cli.queue_scan import (
    EXPORT_HOLD,
    MAX_HOLD,
    SHORT_HOLD,
    ScanReport,
    export,
    peek,
    sample,
)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class Stored:
    seq: int
    message_id: str
    body: str
    sent_at: float
    visible_at: float = 0.0
    handle: str = ""
    receives: int = 0
    deleted: bool = False
    queued: bool = True  # in the visible heap


class FakeSqs:
    """SQS as the readers see it. Each receive costs `latency` seconds of the fake clock; a long poll that
    finds nothing costs its wait."""

    def __init__(self, clock: FakeClock, latency: float = 0.02) -> None:
        self.clock = clock
        self.latency = latency
        self.stored: list[Stored] = []
        self.by_id: dict[str, Stored] = {}
        self.visible: list[int] = []  # heap of seq: the oldest visible first
        self.in_flight: list[tuple[float, int, str]] = []  # heap of (visible again at, seq, handle)
        self.calls: Counter[str] = Counter()
        self.holds: list[int] = []
        self.waits: list[int] = []
        self.release_failures = 0
        self.depth_override: QueueDepth | None = None
        self.after_receive: Callable[[], None] | None = None

    def add(self, count: int, body: Callable[[int], str] = lambda i: f"body {i}") -> None:
        for _ in range(count):
            seq = len(self.stored)
            message = Stored(seq, f"m-{seq:07d}", body(seq), sent_at=self.clock() - 3600 + seq * 0.001)
            self.stored.append(message)
            self.by_id[message.message_id] = message
            heapq.heappush(self.visible, seq)

    def _promote(self) -> None:
        now = self.clock()
        while self.in_flight and self.in_flight[0][0] <= now:
            at, seq, handle = heapq.heappop(self.in_flight)
            message = self.stored[seq]
            current = message.handle == handle and message.visible_at == at
            if current and not message.deleted and not message.queued:
                message.queued = True
                heapq.heappush(self.visible, seq)

    def receive(
        self, max_messages: int, visibility_timeout: int, wait_seconds: int = 0
    ) -> list[QueuedMessage]:
        assert 1 <= max_messages <= 10
        assert isinstance(visibility_timeout, int) and 0 <= visibility_timeout <= MAX_HOLD
        self.calls["receive"] += 1
        self.holds.append(visibility_timeout)
        self.waits.append(wait_seconds)
        self.clock.advance(self.latency)
        self._promote()
        now = self.clock()
        out: list[QueuedMessage] = []
        while self.visible and len(out) < max_messages:
            message = self.stored[heapq.heappop(self.visible)]
            message.queued = False
            if message.deleted:
                continue
            message.receives += 1
            message.handle = f"{message.message_id}#{message.receives}"
            message.visible_at = now + visibility_timeout
            heapq.heappush(self.in_flight, (message.visible_at, message.seq, message.handle))
            out.append(
                QueuedMessage(
                    message.message_id, message.handle, message.body, message.sent_at, message.receives, {}
                )
            )
        if not out and wait_seconds:
            self.clock.advance(wait_seconds)
        if self.after_receive is not None:
            self.after_receive()
        return out

    def release(self, messages: list[QueuedMessage]) -> None:
        self.calls["release"] += math.ceil(len(messages) / 10)
        now = self.clock()
        for item in messages:
            message = self.by_id[item.message_id]
            if message.deleted or message.handle != item.receipt_handle or message.visible_at <= now:
                self.release_failures += 1  # SQS: a stale receipt handle, or not in flight
                continue
            message.visible_at = now
            if not message.queued:
                message.queued = True
                heapq.heappush(self.visible, message.seq)

    def depth(self) -> QueueDepth:
        self.calls["depth"] += 1
        if self.depth_override is not None:
            depth, self.depth_override = self.depth_override, None
            return depth
        now = self.clock()
        live = [m for m in self.stored if not m.deleted]
        hidden = sum(1 for m in live if m.visible_at > now)
        return QueueDepth(visible=len(live) - hidden, in_flight=hidden, delayed=0)

    def consume_oldest(self, count: int) -> None:
        """What a replay does to the messages it gets: receive and delete."""
        for message in self.receive(count, 120):
            self.by_id[message.message_id].deleted = True


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def nothing_hidden(queue: FakeSqs, total: int) -> None:
    assert queue.depth() == QueueDepth(visible=total, in_flight=0, delayed=0)
    assert queue.release_failures == 0


# ---- 100,000 messages ----------------------------------------------------------------------------


def test_export_of_100000_reads_each_once_in_a_bounded_number_of_receives(clock):
    queue = FakeSqs(clock)
    queue.add(100_000)
    seen: Counter[str] = Counter()
    progress: list[tuple[str, int]] = []
    report = export(
        queue,
        lambda m: seen.update([m.message_id]),
        clock=clock,
        progress=lambda r: progress.append((r.phase, r.read)),
    )
    assert report.read == 100_000 and len(seen) == 100_000 and set(seen.values()) == {1}
    assert report.complete and report.stopped == "read all waiting"
    assert queue.calls["receive"] == 10_000  # ten a receive, none wasted
    assert report.repeats == 0  # the hold covered the whole export
    assert report.depth.visible == 100_000
    assert report.released == 100_000
    nothing_hidden(queue, 100_000)
    # Progress every few (fake) seconds while reading, increasing; then while releasing.
    reading = [count for phase, count in progress if phase == "read"]
    assert len(reading) >= 30 and reading == sorted(reading)
    # The hold is sized from the depth and the measured rate: long at the start, short at the end,
    # and never beyond twice the rest of the export plus the margin.
    assert queue.holds[0] >= report.seconds
    assert queue.holds[-1] <= EXPORT_HOLD.floor + 1
    assert max(queue.holds) <= MAX_HOLD


def test_stats_sample_of_100000_reads_a_thousand_with_a_short_hold(clock):
    queue = FakeSqs(clock)
    queue.add(100_000)
    breakdown, report = sample(queue, 1000, clock=clock)
    assert breakdown.count == 1000 and report.read == 1000
    assert report.depth.visible == 100_000 and report.wanted == 1000 and report.complete
    assert report.stopped == "read as many as asked"
    assert queue.calls["receive"] == 100
    assert max(queue.holds) <= SHORT_HOLD.ceiling and min(queue.holds) >= SHORT_HOLD.floor
    assert report.seconds < 5  # fake seconds: hidden for no longer than this
    nothing_hidden(queue, 100_000)


def test_peek_returns_n_oldest_first_and_releases_them(clock):
    queue = FakeSqs(clock)
    queue.add(100_000)
    found, report = peek(queue, 7, clock=clock)
    assert [m.message_id for m in found] == [f"m-{i:07d}" for i in range(7)]
    assert queue.calls["receive"] == 1 and queue.waits == [0]
    assert max(queue.holds) <= SHORT_HOLD.ceiling
    assert report.read == 7
    nothing_hidden(queue, 100_000)
    found, _ = peek(queue, 25, clock=clock)
    assert len({m.message_id for m in found}) == 25


# ---- empty, small, stale counts ------------------------------------------------------------------


@pytest.mark.parametrize("reader", ["stats", "peek", "export"])
def test_an_empty_queue_costs_one_count_and_one_receive_that_does_not_wait(clock, reader):
    queue = FakeSqs(clock)
    run = {
        "stats": lambda: sample(queue, 1000, clock=clock)[1],
        "peek": lambda: peek(queue, 10, clock=clock)[1],
        "export": lambda: export(queue, lambda m: None, clock=clock),
    }[reader]
    report: ScanReport = run()
    assert report.read == 0 and report.stopped == "queue empty"
    assert queue.calls == Counter(depth=1, receive=1)
    assert queue.waits == [0]
    assert report.seconds < 0.1


def test_a_small_queue_is_read_whole_and_the_sample_says_so(clock):
    queue = FakeSqs(clock)
    queue.add(42)
    breakdown, report = sample(queue, 1000, clock=clock)
    assert breakdown.count == 42 and report.complete and report.stopped == "read all waiting"
    assert queue.calls["receive"] == 5  # 10+10+10+10+2, then the count says it is done
    assert queue.waits == [0] * 5
    nothing_hidden(queue, 42)


def test_a_count_that_lags_at_zero_does_not_hide_messages_from_the_readers(clock):
    queue = FakeSqs(clock)
    queue.add(25)
    queue.depth_override = QueueDepth(0, 0, 0)  # SQS's counts are approximate and can lag
    found, _ = peek(queue, 5, clock=clock)
    assert len(found) == 5
    queue.depth_override = QueueDepth(0, 0, 0)
    seen: list[str] = []
    report = export(queue, lambda m: seen.append(m.message_id), clock=clock)
    assert sorted(seen) == [f"m-{i:07d}" for i in range(25)]
    assert report.read == 25
    nothing_hidden(queue, 25)


# ---- holds that run out, a replay running at the same time, errors --------------------------------


def test_holds_that_run_out_slow_it_down_but_do_not_stop_it(clock):
    """One second per receive where ten were guessed: the first holds run out, the oldest messages
    come back first (as on moto), and the export holds longer from then on and still gets everything."""
    queue = FakeSqs(clock, latency=1.0)
    queue.add(3000)
    seen: Counter[str] = Counter()
    report = export(queue, lambda m: seen.update([m.message_id]), clock=clock)
    assert len(seen) == 3000 and set(seen.values()) == {1}
    assert report.repeats > 0  # it did happen
    assert queue.calls["receive"] <= 300 + report.repeats // 10 + 5
    nothing_hidden(queue, 3000)  # released with the newest receipt handles


def test_a_rate_measured_far_too_fast_still_ends_with_everything(clock):
    """The reader's clock sees receives 500 times faster than the queue's: every hold is too short.
    Holds that run out make it hold longer and longer, and it still reads all 100,000, within budget."""
    queue = FakeSqs(clock)
    queue.add(100_000)
    seen: set[str] = set()
    report = export(queue, lambda m: seen.add(m.message_id), clock=lambda: clock() / 500)
    assert len(seen) == report.read == 100_000 and report.repeats > 0
    assert queue.calls["receive"] <= 3 * 10_000 + 12
    nothing_hidden(queue, 100_000)


def test_a_replay_running_at_the_same_time_ends_the_export_instead_of_stalling_it(clock):
    queue = FakeSqs(clock)
    queue.add(5000)
    queue.after_receive = lambda: queue.consume_oldest(10) if queue.calls["receive"] % 2 else None
    seen: list[str] = []
    report = export(queue, lambda m: seen.append(m.message_id), clock=clock)
    queue.after_receive = None
    assert 0 < report.read < 5000 and len(set(seen)) == report.read
    assert report.stopped == "nothing visible left" and not report.complete
    assert queue.calls["receive"] < 700
    assert queue.release_failures == 0
    left = queue.depth()
    assert left.in_flight == 0 and left.visible == report.read


def test_short_readers_stop_when_going_round_the_same_messages(clock):
    """Receives far slower than the short hold: peek stops after a bounded number of receives."""
    queue = FakeSqs(clock, latency=3.0)
    queue.add(500)
    found, report = peek(queue, 400, clock=clock)
    assert len({m.message_id for m in found}) == len(found) == report.read
    assert queue.calls["receive"] <= 3 * 40 + 12
    nothing_hidden(queue, 500)


def test_the_stats_sample_stops_after_its_time_budget(clock):
    queue = FakeSqs(clock, latency=0.5)
    queue.add(5000)
    breakdown, report = sample(queue, 1000, clock=clock)
    assert report.stopped.startswith("time budget") and 0 < breakdown.count < 1000
    assert report.seconds <= 11
    nothing_hidden(queue, 5000)


def test_everything_read_is_released_when_writing_fails(clock):
    queue = FakeSqs(clock)
    queue.add(300)
    written = []

    def write(message: QueuedMessage) -> None:
        if len(written) == 150:
            raise KeyboardInterrupt
        written.append(message)

    with pytest.raises(KeyboardInterrupt):
        export(queue, write, clock=clock)
    nothing_hidden(queue, 300)


def test_a_release_that_fails_is_counted_not_raised(clock):
    queue = FakeSqs(clock)
    queue.add(30)

    def broken(messages: list[QueuedMessage]) -> None:
        raise ConnectionError("gone")

    queue.release = broken  # type: ignore[method-assign]
    report = export(queue, lambda m: None, clock=clock, limit=20)
    assert report.read == 20 and report.release_failed == 20 and report.released == 0


def test_export_max(clock):
    queue = FakeSqs(clock)
    queue.add(1000)
    report = export(queue, lambda m: None, limit=95, clock=clock)
    assert report.read == 95 and report.stopped == "read as many as asked"
    assert queue.calls["receive"] == 10
    nothing_hidden(queue, 1000)


# ---- the breakdown -------------------------------------------------------------------------------


def envelope_body(kind: str, status: int, code: int, attempts: int = 1, left_for_people: bool = False) -> str:
    now = datetime(2026, 11, 21, tzinfo=UTC)
    failure = (
        FailureRecord.from_outcome("post_observations", Retryable(status, code, "down"))
        if kind == "retryable"
        else FailureRecord.from_outcome("resolve_profile", Permanent(status, code, "bad"))
    )
    envelope = new_envelope(
        kind="retryable" if kind == "retryable" else "permanent",
        store_id="mem_store_01h00000000000000000000000",
        message_sid="IM1",
        conversation_sid="CH1",
        observations=[{"content": "x", "source": "s", "occurredAt": "2026-11-21T10:00:00.000Z"}],
        failure=failure,
        profile_id="mem_profile_0" + "0" * 25,
        identifier=None,
        trait_group="Contact",
        now=now,
    )
    for _ in range(attempts - 1):
        envelope = envelope.failed_again(failure, envelope.kind, now)
    if left_for_people:
        envelope = envelope.left_for_people(now)
    return envelope.to_json()


def test_breakdown_counts_kinds_statuses_codes_and_what_needs_attention(clock):
    bodies = [
        envelope_body("retryable", 503, 20503),
        envelope_body("retryable", 503, 20503, attempts=3),  # still retried by the schedule
        envelope_body("retryable", 503, 20503, attempts=5, left_for_people=True),
        envelope_body("permanent", 400, 520046),
        "not an envelope",
    ]
    queue = FakeSqs(clock)
    queue.add(5, body=lambda i: bodies[i])
    breakdown, report = sample(queue, 1000, clock=clock)
    assert breakdown.kinds == {"retryable": 3, "permanent": 1, "malformed": 1}
    assert breakdown.statuses == {"503": 3, "400": 1}
    assert breakdown.codes == {"20503": 3, "520046": 1}
    assert breakdown.attention == {"leftForPeople": 1, "permanent": 1, "malformed": 1}
    assert breakdown.attention_messages == 3
    assert breakdown.oldest_sent_at == queue.stored[0].sent_at
