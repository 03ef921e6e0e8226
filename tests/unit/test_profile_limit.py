"""Memory's limit per profile (issue 22): the decisions, on fakes (no sockets). room.py reserves on the
profile's count, makes room (keep-latest) or refuses (park), and settles the reservation by Memory's answer."""

from datetime import UTC, datetime, timedelta

import pytest

from memory_bridge.config import ConfigError, Settings
from memory_bridge.domain.envelope import FailureRecord, new_envelope
from memory_bridge.domain.identifiers import Identifier
from memory_bridge.domain.outcomes import Accepted, Retryable
from memory_bridge.domain.profile_limit import ProfileLimit, bridge_sources
from memory_bridge.replay import ReplayEngine, ReplayOptions
from memory_bridge.room import NoRoom, ProfileFull, Reserved, Room
from tests.fakes import FakeClock, FakeLedger, FakeMemory, FakeProfileCounter, FakeQueue

STORE = "mem_store_01kpttrksqe08rhv122gzq52ax"
SOURCES = bridge_sources("twilio-conversations")
ENV = {
    "MEMORY_STORE_ID": STORE,
    "TWILIO_CREDENTIALS_SECRET": "s",
    "DEAD_LETTER_QUEUE_URL": "https://q",
    "IDEMPOTENCY_TABLE": "t",
}
LATER = lambda: 1.0  # noqa: E731


def holding(*sources: str) -> tuple[FakeMemory, str]:
    memory = FakeMemory()
    profile = "mem_profile_01kpttrksqe08rhv122gzq52ax"
    memory.observations[profile] = [
        {"id": f"obs{n}", "content": f"word {n}", "source": source, "createdAt": f"2026-11-21T10:00:{n:02d}Z"}
        for n, source in enumerate(sources)
    ]
    return memory, profile


def room(memory, counter, limit=3, policy="keep-latest") -> Room:
    return Room(ProfileLimit(limit, policy), counter, memory, SOURCES)


def test_the_settings_default_to_500_keep_latest_and_name_the_rule_when_wrong():
    assert Settings.from_env(ENV).profile_limit == ProfileLimit(500, "keep-latest")
    assert Settings.from_env({**ENV, "PROFILE_OBSERVATION_LIMIT": "0"}).profile_limit.on is False
    with pytest.raises(ConfigError, match="PROFILE_OBSERVATION_LIMIT must be a whole number from 0"):
        Settings.from_env({**ENV, "PROFILE_OBSERVATION_LIMIT": "4.5"})
    with pytest.raises(ConfigError, match="PROFILE_FULL_POLICY must be one of keep-latest, park"):
        Settings.from_env({**ENV, "PROFILE_FULL_POLICY": "drop"})


def test_racing_posts_past_the_limit_each_delete_a_different_one():
    limit = ProfileLimit(500)
    assert limit.eviction(500, 1) == (0, 0)
    assert limit.eviction(501, 1) == (0, 1)  # the oldest
    assert limit.eviction(502, 1) == (1, 1)  # a second post at once: the second oldest
    assert limit.eviction(505, 10) == (0, 5)  # ten more on a profile at 495: five make room
    assert ProfileLimit(0).eviction(10_000, 1) == (0, 0)


def test_keep_latest_deletes_only_the_bridges_oldest_never_another_writers():
    memory, profile = holding("crm", "twilio-conversations", "crm", "twilio-conversations-agent")
    counter = FakeProfileCounter({profile: 2})

    reserved = room(memory, counter, limit=2).reserve(STORE, profile, 1, LATER)

    assert reserved == Reserved(profile, 1, evicted=1, near=True)
    assert [o["content"] for o in memory.observations[profile]] == ["word 0", "word 2", "word 3"]
    assert counter.counts[profile] == 2  # +1 reserved, -1 deleted


def test_park_gives_the_reservation_back_and_says_profile_full():
    memory, profile = holding("twilio-conversations", "twilio-conversations")
    counter = FakeProfileCounter({profile: 2})

    reserved = room(memory, counter, limit=2, policy="park").reserve(STORE, profile, 1, LATER)

    assert isinstance(reserved, ProfileFull) and reserved.failure.message == "profile full"
    assert counter.counts[profile] == 2
    assert len(memory.observations[profile]) == 2


def test_room_that_cannot_be_made_in_time_is_no_room_and_gives_everything_back():
    memory, profile = holding("twilio-conversations", "twilio-conversations", "twilio-conversations")
    counter = FakeProfileCounter({profile: 3})

    class Throttled(FakeMemory):
        def delete_observation(self, *args, **kwargs):
            return Retryable(status=429, message="slow down", retry_after=5)

    slow = Throttled(observations=memory.observations)
    reserved = room(slow, counter, limit=3).reserve(STORE, profile, 1, LATER)

    assert isinstance(reserved, NoRoom) and reserved.failure.status == 429
    assert counter.counts[profile] == 3
    assert len(slow.observations[profile]) == 3  # nothing deleted, nothing to be posted past the limit


def test_a_count_that_cannot_be_written_is_no_room():
    counter = FakeProfileCounter(down=True)
    reserved = room(FakeMemory(), counter).reserve(STORE, "p", 1, LATER)
    assert isinstance(reserved, NoRoom) and isinstance(reserved.failure, Retryable)


@pytest.mark.parametrize(
    ("answer", "kept"),
    [
        (Accepted(202), 1),
        (Retryable(status=None, message="read timeout", ambiguous=True), 1),  # may be in Memory
        (Retryable(status=503, message="down"), 0),
    ],
)
def test_a_clean_refusal_gives_the_reservation_back_a_post_in_doubt_keeps_it(answer, kept):
    counter = FakeProfileCounter()
    limits = room(FakeMemory(), counter)
    reserved = limits.reserve(STORE, "p", 1, LATER)
    assert isinstance(reserved, Reserved)

    limits.settle(reserved, answer, LATER)

    assert counter.counts["p"] == kept


def test_no_limit_means_no_count_call():
    counter = FakeProfileCounter()
    assert room(FakeMemory(), counter, limit=0).reserve(STORE, "p", 1, LATER) == Reserved("p", 0)
    assert counter.calls == []


def test_the_scheduled_replay_never_hands_a_full_profiles_message_to_people():
    """It is re-parked on each re-check (no attempt limit, no page; ProfilesFull alarmed once) and
    the run goes on: a full profile says nothing of Memory's health."""
    clock = FakeClock()
    queue, memory = FakeQueue(clock), FakeMemory()
    profile = "mem_profile_01kpttrksqe08rhv122gzq52ax"
    memory.profiles[Identifier("phone", "+15555550100")] = profile
    long_ago = datetime.now(UTC) - timedelta(hours=1)
    for n in range(8):
        envelope = new_envelope(
            kind="retryable",
            store_id=STORE,
            message_sid=f"IM{n:032d}",
            conversation_sid="CH" + "0" * 32,
            observations=[{"content": f"word {n}", "source": "twilio-conversations"}],
            failure=FailureRecord("profile_full", None, None, "profile full"),
            profile_id=profile,
            identifier=Identifier("phone", "+15555550100"),
            trait_group="Contact",
            now=long_ago,
            parts=[0],
        )
        queue.park(envelope)
    counter = FakeProfileCounter({profile: 2})
    engine = ReplayEngine(
        queue,
        memory,
        ledger=FakeLedger(),
        clock=clock,
        sleep=clock.sleep,
        room=room(memory, counter, 2, "park"),
    )

    summary = engine.run(ReplayOptions(max_attempts=1, min_age=timedelta(minutes=3), rate=1000))

    counts = summary.counts
    assert (counts.failed, counts.needs_attention, counts.left_for_people, counts.profile_full) == (
        8,
        0,
        0,
        0,
    )
    assert summary.stopped is None
    assert memory.calls["post"] == 0
    assert counter.counts[profile] == 2
