"""An in-memory fake of every port in memory_bridge.ports, for the socket-free unit tier.

FAKES maps each Protocol to its fake; tests/unit/test_layout.py holds that each fake has every
method its port declares. The fakes keep state (Memory's profiles and observations, the queue's
visibility, the ledger's records) so that a unit test asserts on what Memory holds afterwards,
as the integration tests do against the sandbox.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from memory_bridge.domain.envelope import Envelope
from memory_bridge.domain.identifiers import Identifier
from memory_bridge.domain.observations import Observation
from memory_bridge.domain.outcomes import OBSERVATION_NOT_FOUND, Accepted, Failure, Outcome, Permanent
from memory_bridge.domain.speakers import AgentMessages, AgentRules, Participant, Roster
from memory_bridge.ports import LedgerUnavailable, QueuedMessage, QueueUnavailable, StaticCredentials
from memory_bridge.speaking import RosterCache, SpeakerRules, Speakers
from tests.support import FakeClock, InMemoryLedger, ListSink, RecordingMetrics, ScriptedMemory


def _now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class FakeMemory:
    """Memory's profile and observation calls over dicts. `script` answers the next posts instead
    (one outcome each, e.g. a 503), and every call is counted by kind. Each observation held gets an
    id and createdAt/updatedAt (from `created_at`), as Memory gives them, so that the edits
    (ObservationEditor) can find it."""

    profiles: dict[Identifier, str] = field(default_factory=dict)
    observations: dict[str, list[Observation]] = field(default_factory=dict)
    script: list[Outcome] = field(default_factory=list)
    # The edits' counts ("update", "delete", "erase") appear once made: a test that holds the
    # webhook's and the replay's calls to exactly these four keeps holding.
    calls: dict[str, int] = field(
        default_factory=lambda: dict.fromkeys(("lookup", "create", "post", "list"), 0)
    )
    page_size_cap: int = 50
    created_at: Callable[[], str] = _now_iso
    _ids: Any = field(default_factory=lambda: itertools.count(1))

    def lookup_profiles(self, store_id: str, identifier: Identifier, timeout: float | None = None) -> Outcome:
        self.calls["lookup"] += 1
        found = self.profiles.get(identifier)
        return Accepted(200, {"profiles": [found] if found else []})

    def create_profile(
        self, store_id: str, trait_group: str, identifier: Identifier, timeout: float | None = None
    ) -> Outcome:
        self.calls["create"] += 1
        profile_id = self.profiles.setdefault(identifier, f"mem_profile_{next(self._ids):026d}")
        return Accepted(201, {"id": profile_id})

    def create_observations(
        self,
        store_id: str,
        profile_id: str,
        observations: Sequence[Observation],
        timeout: float | None = None,
    ) -> Outcome:
        self.calls["post"] += 1
        if self.script:
            return self.script.pop(0)
        now = self.created_at()
        self.observations.setdefault(profile_id, []).extend(
            {**o, "id": f"mem_observation_{next(self._ids):026d}", "createdAt": now, "updatedAt": now}
            for o in observations
        )
        return Accepted(202)

    def list_observations(
        self,
        store_id: str,
        profile_id: str,
        *,
        page_size: int = 50,
        page_token: str | None = None,
        source: str | None = None,
        created_after: str | None = None,
        created_before: str | None = None,
        order_by: str | None = None,
        timeout: float | None = None,
    ) -> Outcome:
        """As Memory lists: filtered (createdAfter inclusive, createdBefore exclusive), newest first
        unless `order_by` is ASC."""
        self.calls["list"] += 1
        held = [
            o
            for o in self.observations.get(profile_id, [])
            if (source is None or o.get("source") == source)
            and (created_after is None or _at(o) >= _parse(created_after))
            and (created_before is None or _at(o) < _parse(created_before))
        ]
        if order_by != "ASC":
            held.reverse()
        start = int(page_token or 0)
        size = min(page_size, self.page_size_cap)
        end = start + size
        token = str(end) if end < len(held) else None
        return Accepted(200, {"observations": held[start:end], "meta": {"nextToken": token}})

    def update_observation(
        self,
        store_id: str,
        profile_id: str,
        observation_id: str,
        fields: Mapping[str, object],
        timeout: float | None = None,
    ) -> Outcome:
        self.calls["update"] = self.calls.get("update", 0) + 1
        held = self.observations.get(profile_id, [])
        for index, observation in enumerate(held):
            if observation.get("id") == observation_id:
                held[index] = {**observation, **fields, "updatedAt": self.created_at()}
                return Accepted(202, {"message": "Observation update accepted"})
        return _observation_not_found()

    def delete_observation(
        self, store_id: str, profile_id: str, observation_id: str, timeout: float | None = None
    ) -> Outcome:
        self.calls["delete"] = self.calls.get("delete", 0) + 1
        held = self.observations.get(profile_id, [])
        kept = [o for o in held if o.get("id") != observation_id]
        if len(kept) == len(held):
            return _observation_not_found()
        self.observations[profile_id] = kept
        return Accepted(202, {"message": "Observation deletion accepted"})

    def delete_profile(self, store_id: str, profile_id: str, timeout: float | None = None) -> Outcome:
        self.calls["erase"] = self.calls.get("erase", 0) + 1
        if profile_id not in self.profiles.values():
            return Permanent(status=404, code=20404, message="Not Found")
        self.profiles = {who: held for who, held in self.profiles.items() if held != profile_id}
        self.observations.pop(profile_id, None)
        return Accepted(202, {"message": "Profile accepted for deletion."})

    def contents(self) -> list[str]:
        return [str(o["content"]) for held in self.observations.values() for o in held]


def _parse(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _at(observation: Observation) -> datetime:
    created = observation.get("createdAt")
    return _parse(created) if isinstance(created, str) else datetime.min.replace(tzinfo=UTC)


def _observation_not_found() -> Permanent:
    return Permanent(status=404, code=OBSERVATION_NOT_FOUND, message="Observation not found")


@dataclass
class _Stored:
    message_id: str
    body: str
    visible_at: float = 0.0
    receives: int = 0
    receipt: str = ""


class FakeQueue:
    """The dead-letter queue: park (the webhook's), receive/delete/release/replace (the replay's),
    with SQS's visibility timeout on an injected clock. `down` makes every call raise."""

    def __init__(self, clock: FakeClock | None = None):
        self.clock = clock or FakeClock()
        self.messages: dict[str, _Stored] = {}
        self.down = False
        self.receive_calls = 0
        self._ids = itertools.count(1)

    def _check(self) -> None:
        if self.down:
            raise QueueUnavailable("queue down (fake)")

    def park(self, envelope: Envelope, timeout: float | None = None) -> str:
        return self.send(envelope.to_json())

    def send(self, body: str) -> str:
        self._check()
        message_id = f"m-{next(self._ids)}"
        self.messages[message_id] = _Stored(message_id, body)
        return message_id

    def receive(
        self, max_messages: int, visibility_timeout: int, wait_seconds: int = 0
    ) -> list[QueuedMessage]:
        self._check()
        self.receive_calls += 1
        now = self.clock()
        out = []
        for stored in self.messages.values():
            if len(out) == max_messages:
                break
            if stored.visible_at <= now:
                stored.receives += 1
                stored.visible_at = now + visibility_timeout
                stored.receipt = f"{stored.message_id}#{stored.receives}"
                out.append(
                    QueuedMessage(stored.message_id, stored.receipt, stored.body, 0.0, stored.receives, {})
                )
        return out

    def _held(self, message: QueuedMessage) -> _Stored | None:
        stored = self.messages.get(message.message_id)
        return stored if stored is not None and stored.receipt == message.receipt_handle else None

    def delete(self, messages: list[QueuedMessage]) -> None:
        self._check()
        for message in messages:
            if self._held(message) is not None:
                del self.messages[message.message_id]

    def release(self, messages: list[QueuedMessage]) -> None:
        self._check()
        for message in messages:
            stored = self._held(message)
            if stored is not None:
                stored.visible_at = 0.0

    def replace(self, old: QueuedMessage, envelope: Envelope) -> None:
        self.park(envelope)
        self.delete([old])

    def visible_count(self) -> int:
        self._check()
        now = self.clock()
        return sum(1 for stored in self.messages.values() if stored.visible_at <= now)

    def bodies(self) -> list[str]:
        return [stored.body for stored in self.messages.values()]


FakeLedger = InMemoryLedger


@dataclass
class FakeProfileCounter:
    """The ledger's count per profile (ports.ProfileCounter): ADD, never below 0 on a give-back (a
    refused one leaves the count as it is, as the table's condition does). `down` raises; `calls`
    holds every (profile, count) added."""

    counts: dict[str, int] = field(default_factory=dict)
    calls: list[tuple[str, int]] = field(default_factory=list)
    down: bool = False

    def add_observations(self, profile_id: str, count: int, timeout: float) -> int:
        if self.down:
            raise LedgerUnavailable("ledger down (fake)")
        self.calls.append((profile_id, count))
        now = self.counts.get(profile_id, 0) + count
        if now < 0:
            return self.counts.get(profile_id, 0)
        self.counts[profile_id] = now
        return now


# port (memory_bridge.ports) → its fake
@dataclass
class FakeConversations:
    """The Conversations API's participants, per conversation; `fail` answers the next calls with the
    given failures (a 429, a 503, a timeout) before the participants. Counts calls per conversation."""

    rosters: dict[str, list[Participant]] = field(default_factory=dict)
    fail: list[Failure] = field(default_factory=list)
    calls: list[str] = field(default_factory=list)

    def add(self, conversation_sid: str, participant: Participant) -> Participant:
        self.rosters.setdefault(conversation_sid, []).append(participant)
        return participant

    def participants(
        self, conversation_sid: str, timeout: float | None = None, service_sid: str | None = None
    ) -> Roster | Failure:
        self.calls.append(conversation_sid)
        if self.fail:
            return self.fail.pop(0)
        if conversation_sid not in self.rosters:
            return Permanent(status=404, code=20404, message="The requested resource was not found")
        return Roster(tuple(self.rosters[conversation_sid]))


# The conversation and the participant tests.support.message_params sends: an SMS customer at the
# message's Author, writing to the business's number.
CONVERSATION = "CH00000000000000000000000000000001"
CUSTOMER = Participant(
    "MB00000000000000000000000000000001", address="+15555550100", proxy_address="+15555550999"
)


def customer_conversations(
    *participants: Participant, conversation_sid: str = CONVERSATION
) -> FakeConversations:
    """A FakeConversations whose one conversation has the SMS customer (and any others given)."""
    return FakeConversations({conversation_sid: [CUSTOMER, *participants]})


def fake_speakers(
    conversations: FakeConversations | None = None,
    *,
    agent_messages: AgentMessages = "attribute",
    agents: AgentRules | None = None,
    chat_id_type: str = "chat_identity",
    ttl: float = 300.0,
    clock: FakeClock | None = None,
) -> Speakers:
    """The webhook's Speakers over FakeConversations (by default: customer_conversations())."""
    cache = RosterCache(ttl, clock=clock) if clock is not None else RosterCache(ttl)
    return Speakers(
        conversations if conversations is not None else customer_conversations(),
        cache,
        SpeakerRules(agents or AgentRules(), agent_messages, chat_id_type),
    )


class FakeChanges:
    """ports.ChangeReplayer: finishes the parked changes it is told to, records each hand-off."""

    def __init__(self, finishes: bool = True) -> None:
        self.finishes = finishes
        self.handed: list[tuple[str, str, float]] = []

    def finish(self, envelope: Envelope, owner: str, seconds: float) -> str | None:
        self.handed.append((envelope.message_sid, owner, seconds))
        return None if self.finishes else "Memory still failing (fake)"


FAKES: dict[str, type] = {
    "ChangeReplayer": FakeChanges,
    "ParticipantDirectory": FakeConversations,
    "ProfileDirectory": FakeMemory,
    "ObservationWriter": FakeMemory,
    "ReplayMemory": FakeMemory,
    "ObservationEditor": FakeMemory,
    "CredentialsSource": StaticCredentials,
    "DeadLetterSink": FakeQueue,
    "ReplayQueue": FakeQueue,
    "DeliveryLedger": FakeLedger,
    "ReplayLedger": FakeLedger,
    "ProfileCounter": FakeProfileCounter,
    "MetricsSink": RecordingMetrics,
    "KeyedLogger": type(None),  # filled below: the stdlib adapter is the fake (no I/O but a log line)
}

__all__ = [
    "CONVERSATION",
    "CUSTOMER",
    "FAKES",
    "FakeChanges",
    "FakeClock",
    "FakeConversations",
    "FakeLedger",
    "FakeMemory",
    "FakeProfileCounter",
    "FakeQueue",
    "ListSink",
    "RecordingMetrics",
    "ScriptedMemory",
    "customer_conversations",
    "fake_speakers",
]


def _keyed_logger_fake() -> type:
    from memory_bridge.webhook import stdlib_logger

    return type(stdlib_logger("fakes"))


FAKES["KeyedLogger"] = _keyed_logger_fake()
