"""The replay engine on in-memory fakes of its ports (tests/fakes.py): no sockets, fake clocks.

What Memory holds afterwards is asserted as the integration tests assert it against the sandbox:
every message once, on its profile, and nothing left on the queue but what the run says it left.
"""

from __future__ import annotations

import itertools
from collections import Counter
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from memory_bridge.domain.envelope import FailureRecord, new_envelope
from memory_bridge.domain.identifiers import Identifier
from memory_bridge.domain.observations import MAX_OBSERVATIONS_PER_REQUEST
from memory_bridge.domain.outcomes import Accepted, Outcome, Retryable
from memory_bridge.replay import ReplayEngine, ReplayOptions, plan_requests, request_count
from memory_bridge.replay.slicing import HOLD_MARGIN_SECONDS
from tests.fakes import FakeClock, FakeLedger, FakeMemory, FakeQueue

STORE = "mem_store_01aaaaaaaaaaaaaaaaaaaaaaaa"
NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def park(queue: FakeQueue, count: int, profiles: int, *, parts: int = 1, resolved: bool = True) -> None:
    """`count` messages round-robin over `profiles` customers, each of `parts` observations."""
    failure = FailureRecord.from_outcome("post_observations", Retryable(503, 20503, "down"))
    for i in range(count):
        who = i % profiles
        queue.send(
            new_envelope(
                kind="retryable",
                store_id=STORE,
                message_sid=f"IM{i:032x}",
                conversation_sid="CH1",
                observations=[
                    {
                        "content": f"m{i} p{p}",
                        "source": "twilio-conversations",
                        "occurredAt": "2026-11-30T10:00:00Z",
                    }
                    for p in range(parts)
                ],
                failure=failure,
                profile_id=f"mem_profile_{who:026d}" if resolved else None,
                identifier=None if resolved else Identifier("phone", f"+1555{who:07d}"),
                trait_group="Contact",
                now=NOW,
                parts=list(range(parts)),
            ).to_json()
        )


class SlowMemory(FakeMemory):
    """Each post takes `seconds` on the shared fake clock."""

    def __init__(self, clock: FakeClock, seconds: float):
        super().__init__()
        self.clock, self.seconds = clock, seconds

    def create_observations(self, *args, **kwargs) -> Outcome:  # type: ignore[no-untyped-def]
        self.clock.now += self.seconds
        return super().create_observations(*args, **kwargs)


class LostAnswers(FakeMemory):
    """Memory takes the next `lost` posts but the answers never arrive (a read timeout)."""

    def __init__(self, lost: int):
        super().__init__()
        self.lost = lost

    def create_observations(self, store_id, profile_id, observations, timeout=None):  # type: ignore[no-untyped-def]
        outcome = super().create_observations(store_id, profile_id, observations, timeout)
        if self.lost and isinstance(outcome, Accepted):
            self.lost -= 1
            return Retryable(None, message="read timeout", ambiguous=True)
        return outcome


class WatchedQueue(FakeQueue):
    """Records every delete or replace of a message whose hold had already ended."""

    def __init__(self, clock: FakeClock):
        super().__init__(clock)
        self.late: list[str] = []

    def delete(self, messages):  # type: ignore[no-untyped-def]
        now = self.clock()
        self.late.extend(
            m.message_id for m in messages if self._held(m) and self.messages[m.message_id].visible_at < now
        )
        super().delete(messages)


def engine(
    queue: FakeQueue, memory: FakeMemory, ledger: FakeLedger, clock: FakeClock, **kwargs
) -> ReplayEngine:
    return ReplayEngine(
        queue,
        memory,
        ledger=ledger,
        clock=clock,
        wall_clock=clock,
        sleep=clock.sleep,
        now=lambda: NOW,
        **kwargs,
    )


def each_once(memory: FakeMemory, count: int, parts: int = 1) -> None:
    held = Counter(memory.contents())
    assert len(held) == count * parts
    assert set(held.values()) == {1}


def test_twenty_thousand_messages_over_a_thousand_profiles_group_across_the_queue():
    clock = FakeClock()
    queue, memory, ledger = FakeQueue(clock), FakeMemory(), FakeLedger()
    park(queue, 20_000, 1_000)

    summary = engine(queue, memory, ledger, clock).run(ReplayOptions(rate=50))

    assert summary.complete, summary.to_json()
    assert summary.counts.replayed == 20_000
    posts_per_message = memory.calls["post"] / 20_000
    assert posts_per_message <= 0.11, posts_per_message
    assert summary.counts.posts == memory.calls["post"]
    each_once(memory, 20_000)
    assert queue.messages == {}


def test_a_fixed_slice_of_a_thousand_groups_nothing_over_a_thousand_profiles():
    """Why the slice is sized from the hold: one message per profile per slice is one post each."""
    clock = FakeClock()
    queue, memory, ledger = FakeQueue(clock), FakeMemory(), FakeLedger()
    park(queue, 3_000, 1_000)

    summary = engine(queue, memory, ledger, clock, max_slice=1_000).run(ReplayOptions())

    assert summary.counts.replayed == 3_000
    assert memory.calls["post"] == 3_000
    each_once(memory, 3_000)


def test_no_message_is_held_past_its_visibility_timeout_when_memory_is_slow():
    """500 profiles, 1 message each, at 1 s a post is 500 s of work; the hold is 120 s. The slice stops
    receiving at what fits, and what still runs short is let go before its request starts."""
    clock = FakeClock()
    queue, ledger = WatchedQueue(clock), FakeLedger()
    memory = SlowMemory(clock, seconds=1.0)
    park(queue, 500, 500)

    summary = engine(queue, memory, ledger, clock).run(ReplayOptions(visibility_timeout=120))

    assert queue.late == []
    assert summary.counts.replayed == 500
    assert summary.counts.slices > 1
    each_once(memory, 500)


def test_the_slice_budget_counts_the_hold_margin():
    clock = FakeClock()
    queue, ledger = WatchedQueue(clock), FakeLedger()
    memory = SlowMemory(clock, seconds=HOLD_MARGIN_SECONDS / 3)
    park(queue, 40, 40)

    summary = engine(queue, memory, ledger, clock).run(ReplayOptions(visibility_timeout=120))

    assert queue.late == []
    assert summary.counts.replayed == 40
    each_once(memory, 40)


def test_lost_answers_are_looked_for_not_posted_twice():
    clock = FakeClock()
    queue, ledger = FakeQueue(clock), FakeLedger()
    memory = LostAnswers(lost=3)
    park(queue, 100, 10)

    first = engine(queue, memory, ledger, clock).run(ReplayOptions())
    clock.now += 1_000  # the put-back messages' hold is long over
    second = engine(queue, memory, ledger, clock).run(ReplayOptions())

    assert first.counts.failed == 3 * 10  # three requests of ten messages each went back, unsure
    assert second.counts.already_posted == 30
    assert memory.calls["list"] >= 3
    each_once(memory, 100)
    assert queue.messages == {}


def test_a_failed_post_goes_back_with_its_failure_and_a_later_run_posts_it_once():
    clock = FakeClock()
    queue, ledger, memory = FakeQueue(clock), FakeLedger(), FakeMemory()
    memory.script = [Retryable(503, 20503, "down")]
    park(queue, 20, 2)

    first = engine(queue, memory, ledger, clock).run(ReplayOptions())
    clock.now += 1_000
    second = engine(queue, memory, ledger, clock).run(ReplayOptions())

    assert first.counts.failed == 10 and first.counts.replayed == 10
    assert second.counts.replayed == 10
    each_once(memory, 20)


def test_unresolved_authors_are_looked_up_once_per_customer_and_grouped():
    clock = FakeClock()
    queue, ledger, memory = FakeQueue(clock), FakeLedger(), FakeMemory()
    park(queue, 200, 20, resolved=False)

    summary = engine(queue, memory, ledger, clock).run(ReplayOptions())

    assert summary.counts.replayed == 200
    assert memory.calls["lookup"] == 20 and memory.calls["create"] == 20
    assert memory.calls["post"] == 20
    each_once(memory, 200)


def test_the_dry_run_counts_the_requests_the_run_makes_and_changes_nothing():
    clock = FakeClock()
    queue, ledger, memory = FakeQueue(clock), FakeLedger(), FakeMemory()
    park(queue, 120, 7, parts=3)

    dry = engine(queue, memory, ledger, clock).run(ReplayOptions(dry_run=True))
    assert memory.calls == {"lookup": 0, "create": 0, "post": 0, "list": 0}
    assert len(queue.messages) == 120
    planned = sum(row["requests"] for row in dry.plan)

    real = engine(queue, memory, ledger, clock).run(ReplayOptions())
    assert real.counts.requests == planned
    each_once(memory, 120, parts=3)


def test_a_second_run_posts_nothing():
    clock = FakeClock()
    queue, ledger, memory = FakeQueue(clock), FakeLedger(), FakeMemory()
    park(queue, 50, 5)
    engine(queue, memory, ledger, clock).run(ReplayOptions())
    posts = memory.calls["post"]

    again = engine(queue, memory, ledger, clock).run(ReplayOptions())

    assert again.counts.received == 0 and memory.calls["post"] == posts


def test_a_queue_that_goes_down_mid_run_loses_nothing():
    clock = FakeClock()
    queue, ledger, memory = FakeQueue(clock), FakeLedger(), FakeMemory()
    park(queue, 30, 3)

    class Failing(FakeMemory):
        def create_observations(self, *args, **kwargs):  # type: ignore[no-untyped-def]
            queue.down = True  # deletes after this post fail: the ledger knows it was accepted
            return memory.create_observations(*args, **kwargs)

    engine(queue, Failing(), ledger, clock).run(ReplayOptions())
    queue.down = False
    clock.now += 1_000
    again = engine(queue, memory, ledger, clock).run(ReplayOptions())

    assert again.counts.already_posted + again.counts.replayed == 30
    each_once(memory, 30)


@given(st.lists(st.integers(min_value=1, max_value=35), max_size=40))
def test_packing_carries_every_part_once_and_at_most_ten_a_request(sizes):
    requests = plan_requests(sizes)
    taken: Counter[int] = Counter()
    for request in requests:
        assert sum(take for _, take in request) <= MAX_OBSERVATIONS_PER_REQUEST
        for index, take in request:
            taken[index] += take
    for index, size in enumerate(sizes):
        # a large envelope's chunks take ten each; the last takes what is left
        assert taken[index] >= size and taken[index] - size < MAX_OBSERVATIONS_PER_REQUEST
    assert request_count(sizes) == len(requests)


@pytest.mark.parametrize(
    ("sizes", "expected"), [([], 0), ([1] * 10, 1), ([1] * 11, 2), ([25], 3), ([3, 25, 3], 5)]
)
def test_request_counts(sizes, expected):
    assert request_count(sizes) == expected


# ---- found by trying to break it ------------------------------------------------------------------


class SlowLookups(FakeMemory):
    def __init__(self, clock: FakeClock, seconds: float):
        super().__init__()
        self.clock, self.seconds = clock, seconds

    def lookup_profiles(self, *args, **kwargs) -> Outcome:  # type: ignore[no-untyped-def]
        self.clock.now += self.seconds
        return super().lookup_profiles(*args, **kwargs)


class Throttling(FakeMemory):
    """Answers the first post 429 with Retry-After `after`; records when each post starts."""

    def __init__(self, clock: FakeClock, after: float):
        super().__init__()
        self.clock, self.after, self.post_times = clock, after, []

    def create_observations(self, store_id, profile_id, observations, timeout=None):  # type: ignore[no-untyped-def]
        self.post_times.append(self.clock())
        if self.after is not None:
            self.after, after = None, self.after
            return Retryable(429, 20429, "slow down", retry_after=after)
        return super().create_observations(store_id, profile_id, observations, timeout)


def test_a_message_let_go_as_its_rest_is_counted_left():
    """A Lookup that eats the hold: the author was resolved, so the message goes back as a new
    (resolved) envelope; the run must not call itself complete."""
    clock = FakeClock()
    queue, ledger = FakeQueue(clock), FakeLedger()
    park(queue, 1, 1, resolved=False)

    summary = engine(queue, SlowLookups(clock, 100.0), ledger, clock).run(
        ReplayOptions(visibility_timeout=120)
    )

    assert len(queue.messages) == 1
    assert summary.counts.left == 1 and not summary.complete


def test_a_partly_posted_long_message_let_go_is_counted_left():
    clock = FakeClock()
    queue, ledger = FakeQueue(clock), FakeLedger()
    park(queue, 1, 1, parts=25)  # three requests of ten, five, and each takes 50 s of a 120 s hold

    summary = engine(queue, SlowMemory(clock, 50.0), ledger, clock).run(ReplayOptions(visibility_timeout=120))

    assert len(queue.messages) == 1 and summary.counts.left == 1 and not summary.complete


def test_a_retry_after_longer_than_the_hold_is_not_waited_out():
    clock = FakeClock()
    queue, ledger = FakeQueue(clock), FakeLedger()
    memory = Throttling(clock, after=100.0)
    park(queue, 1, 1)
    received_at = clock()

    summary = engine(queue, memory, ledger, clock).run(ReplayOptions(visibility_timeout=120))

    assert all(t <= received_at + 120 - HOLD_MARGIN_SECONDS for t in memory.post_times), memory.post_times
    assert "longer than the messages' hold" in (summary.stopped or "")
    assert summary.counts.left == 1 and len(queue.messages) == 1


def test_a_second_run_during_a_long_retry_after_does_not_double_the_message():
    clock = FakeClock()
    queue, ledger = FakeQueue(clock), FakeLedger()
    memory = Throttling(clock, after=150.0)
    park(queue, 1, 1)
    second = {}

    def sleep(seconds: float) -> None:  # the first run waits; meanwhile the schedule runs a second
        clock.now += 125.0
        plain = FakeMemory()
        plain.observations = memory.observations
        second["run"] = engine(queue, plain, ledger, clock).run(ReplayOptions(visibility_timeout=120))
        clock.now += max(seconds - 125.0, 0)

    ReplayEngine(
        queue, memory, ledger=ledger, clock=clock, wall_clock=clock, sleep=sleep, now=lambda: NOW
    ).run(ReplayOptions(visibility_timeout=120))
    clock.now += 1_000
    engine(queue, FakeMemory(observations=memory.observations), ledger, clock).run(ReplayOptions())

    assert Counter(memory.contents()) == {"m0 p0": 1}


def test_running_out_of_time_mid_group_counts_what_it_leaves():
    clock = FakeClock()
    queue, ledger = FakeQueue(clock), FakeLedger()
    park(queue, 30, 1)

    summary = engine(queue, Throttling(clock, after=200.0), ledger, clock).run(ReplayOptions(time_limit=100))

    assert summary.stopped and summary.counts.replayed == 0
    assert summary.counts.left == len(queue.messages) == 30


def test_the_dry_run_with_a_profile_filter_creates_no_profile():
    clock = FakeClock()
    queue, ledger, memory = FakeQueue(clock), FakeLedger(), FakeMemory()
    park(queue, 3, 3, resolved=False)

    engine(queue, memory, ledger, clock).run(ReplayOptions(dry_run=True, profile_id=f"mem_profile_{99:026d}"))

    assert memory.calls["create"] == 0 and memory.profiles == {}


def test_a_dry_run_that_needs_more_than_one_slice_says_so():
    """At 1 request a second, 2,000 posts do not fit a 900 s hold: the count is not a promise."""
    clock = FakeClock()
    queue, ledger, memory = FakeQueue(clock), FakeLedger(), FakeMemory()
    park(queue, 20_000, 1_000)

    dry = engine(queue, memory, ledger, clock).run(ReplayOptions(dry_run=True, rate=1))

    assert any("several slices" in note for note in dry.notes), dry.notes


def test_a_429_never_makes_the_pacer_faster_than_the_rate():
    from memory_bridge.replay import Pacer

    clock = FakeClock()
    pacer = Pacer(0.1, clock, clock.sleep)  # one request every 10 s
    starts = []
    for i in range(4):
        pacer.wait()
        starts.append(clock())
        if i == 1:
            pacer.slow_down(None)
    assert min(b - a for a, b in itertools.pairwise(starts)) >= 10.0
