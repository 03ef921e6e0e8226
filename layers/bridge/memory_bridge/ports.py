"""Every port the flows need, in one place: the Protocols, the values they pass and the errors they raise.

The flows (memory_bridge.webhook, memory_bridge.replay) depend on these and never on an adapter;
memory_bridge.adapters implements them against the outside systems, and tests/fakes.py holds an
in-memory fake of each, so that a flow's unit tests need no socket.

  port                  adapter (memory_bridge.adapters…)     fake (tests/fakes.py)
  ProfileDirectory      memory_api.MemoryApiClient             FakeMemory
  ObservationWriter     memory_api.MemoryApiClient             FakeMemory
  ReplayMemory          memory_api.MemoryApiClient             FakeMemory
  ObservationEditor     memory_api.MemoryApiClient             FakeMemory
  ParticipantDirectory  conversations_api.ConversationsApiClient  FakeConversations
  CredentialsSource     secrets.CachedCredentials              StaticCredentials (here: no I/O)
  DeadLetterSink        dead_letters.SqsDeadLetterQueue        FakeQueue
  ReplayQueue           dead_letters.DeadLetterQueue           FakeQueue
  DeliveryLedger        ledger_table.LedgerTable               FakeLedger
  ReplayLedger          ledger_table.LedgerTable               FakeLedger
  ChangeReplayer        webhook.changes.ParkedChanges          FakeChanges
  ProfileCounter        profile_counts.ProfileCountTable       FakeProfileCounter
  MetricsSink           Powertools' Metrics                    RecordingMetrics
  KeyedLogger           Powertools' Logger                     webhook.answers.stdlib_logger
  Clock, Sleep          time.monotonic, time.sleep             FakeClock
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from memory_bridge.domain.credentials import TwilioCredentials
from memory_bridge.domain.envelope import Envelope
from memory_bridge.domain.identifiers import Identifier
from memory_bridge.domain.ledger import ClaimResult, LedgerRecord, Settlement
from memory_bridge.domain.observations import Observation
from memory_bridge.domain.outcomes import Failure, Outcome
from memory_bridge.domain.speakers import Roster

Clock = Callable[[], float]  # monotonic seconds
Sleep = Callable[[float], None]


# ---- errors the ports raise -------------------------------------------------------------------


class QueueUnavailable(RuntimeError):
    """The envelope could not be written. The webhook answers 503 so that Twilio retries."""


class LedgerUnavailable(RuntimeError):
    """The ledger table could not be read or written in time. Carries no message content."""


# ---- Memory -----------------------------------------------------------------------------------


class ProfileDirectory(Protocol):
    """The two Memory calls that resolve a profile."""

    def lookup_profiles(
        self, store_id: str, identifier: Identifier, timeout: float | None = None
    ) -> Outcome: ...

    def create_profile(
        self, store_id: str, trait_group: str, identifier: Identifier, timeout: float | None = None
    ) -> Outcome: ...


class ObservationWriter(ProfileDirectory, Protocol):
    """What the webhook asks of Memory: resolve a profile, post its observations."""

    def create_observations(
        self,
        store_id: str,
        profile_id: str,
        observations: Sequence[Observation],
        timeout: float | None = None,
    ) -> Outcome: ...


class ReplayMemory(ObservationWriter, Protocol):
    """The webhook's Memory calls, plus List Observations to find what Memory already holds."""

    def list_observations(
        self,
        store_id: str,
        profile_id: str,
        *,
        page_size: int = 50,
        page_token: str | None = None,
        created_after: str | None = None,
    ) -> Outcome: ...


class ObservationEditor(Protocol):
    """After posting (issue 22): find an observation by List Observations' filters (creating one
    returns no id), change or remove it, erase a profile. Each answers 202 when accepted;
    domain.outcomes.observation_gone tells an observation Memory no longer holds."""

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
    ) -> Outcome: ...

    def update_observation(
        self,
        store_id: str,
        profile_id: str,
        observation_id: str,
        fields: Mapping[str, object],
        timeout: float | None = None,
    ) -> Outcome: ...

    def delete_observation(
        self, store_id: str, profile_id: str, observation_id: str, timeout: float | None = None
    ) -> Outcome: ...

    def delete_profile(self, store_id: str, profile_id: str, timeout: float | None = None) -> Outcome: ...


# ---- Conversations ----------------------------------------------------------------------------


class ParticipantDirectory(Protocol):
    """Who takes part in a conversation (the Conversations API), to tell customers from agents."""

    def participants(
        self, conversation_sid: str, timeout: float | None = None, service_sid: str | None = None
    ) -> Roster | Failure: ...


class CredentialsSource(Protocol):
    def get(self, timeout: float | None = None) -> TwilioCredentials: ...

    def refresh(
        self, min_interval: float | None = None, timeout: float | None = None
    ) -> TwilioCredentials | None: ...


class StaticCredentials:
    """Credentials that never change (the CLI with TWILIO_* variables, and tests)."""

    def __init__(self, credentials: TwilioCredentials):
        self._credentials = credentials

    def get(self, timeout: float | None = None) -> TwilioCredentials:  # noqa: ARG002
        return self._credentials

    def refresh(self, min_interval: float | None = None, timeout: float | None = None) -> None:  # noqa: ARG002
        return None


# ---- the dead-letter queue --------------------------------------------------------------------


@dataclass(frozen=True)
class QueuedMessage:
    message_id: str
    receipt_handle: str
    body: str
    sent_at: float  # epoch seconds
    receive_count: int
    attributes: dict[str, str]


@dataclass(frozen=True)
class QueueDepth:
    visible: int
    in_flight: int
    delayed: int


class DeadLetterSink(Protocol):
    """The webhook's one queue call. Raises QueueUnavailable."""

    def park(self, envelope: Envelope, timeout: float | None = None) -> str: ...


class ReplayQueue(Protocol):
    """The replay's queue calls. Each raises QueueUnavailable when the queue cannot be reached."""

    def receive(
        self, max_messages: int, visibility_timeout: int, wait_seconds: int = 0
    ) -> list[QueuedMessage]: ...

    def delete(self, messages: list[QueuedMessage]) -> None: ...

    def release(self, messages: list[QueuedMessage]) -> None: ...

    def replace(self, old: QueuedMessage, envelope: Envelope) -> None: ...

    def visible_count(self) -> int: ...


# ---- the ledger -------------------------------------------------------------------------------


class DeliveryLedger(Protocol):
    """The webhook's ledger calls: claim and settle for an add, tombstone and finish_removal for a
    removal, claim_edit, mark_unsure and forget_parts for an edit (issue 22). Each raises
    LedgerUnavailable."""

    def claim(
        self,
        message_sid: str,
        owner: str,
        parts: int,
        lease_until: float,
        now: float,
        timeout: float,
        keys: Mapping[int, str] | None = None,
    ) -> ClaimResult: ...

    def settle(self, settlement: Settlement, timeout: float) -> int | None: ...

    def tombstone(self, message_sid: str, removed_at: str, now: float, timeout: float) -> LedgerRecord: ...

    def finish_removal(self, message_sid: str, timeout: float) -> None: ...

    def claim_edit(
        self,
        message_sid: str,
        owner: str,
        edited_at: str,
        lease_until: float,
        now: float,
        timeout: float,
        pending: Mapping[int, str] | None = None,
    ) -> ClaimResult: ...

    def mark_unsure(
        self, message_sid: str, owner: str, parts: Sequence[int], keys: Mapping[int, str], timeout: float
    ) -> bool: ...

    def forget_parts(self, message_sid: str, parts: Sequence[int], timeout: float) -> None: ...

    def remember_ids(self, message_sid: str, ids: Mapping[int, str], timeout: float) -> None: ...


class ReplayLedger(Protocol):
    """The replay's ledger calls, batched. Each raises LedgerUnavailable."""

    def read_many(self, message_sids: Sequence[str], timeout: float) -> dict[str, LedgerRecord]: ...

    def claim_many(
        self,
        claims: Sequence[tuple[str, int | None, Sequence[int]]],
        owner: str,
        lease_until: float,
        now: float,
        timeout: float,
        keys: Mapping[str, Mapping[int, str]] | None = None,
    ) -> dict[str, int]: ...

    def settle_many(self, settlements: Sequence[Settlement], timeout: float) -> dict[str, int]: ...


class ProfileCounter(Protocol):
    """Observations the bridge wrote per profile (issue 22, Memory's 500 limit), kept in the ledger
    table. Raises LedgerUnavailable."""

    def add_observations(self, profile_id: str, count: int, timeout: float) -> int:
        """Add `count` (negative: give back, never below 0) and return the profile's count now."""
        ...


class ChangeReplayer(Protocol):
    """A parked edit or removal, handed over by the replay (issue 22, webhook/changes.py): None once
    finished (the envelope may go), else why not (it stays queued)."""

    def finish(self, envelope: Envelope, owner: str, seconds: float) -> str | None: ...


# ---- observability ----------------------------------------------------------------------------


class MetricsSink(Protocol):
    def add_metric(self, name: str, unit: Any, value: float) -> None: ...


class KeyedLogger(Protocol):
    """The part of Powertools' Logger (or a stdlib logger adapter) that the webhook uses."""

    def append_keys(self, **keys: Any) -> None: ...

    def info(self, msg: object, *args: Any, **kwargs: Any) -> None: ...

    def warning(self, msg: object, *args: Any, **kwargs: Any) -> None: ...

    def error(self, msg: object, *args: Any, **kwargs: Any) -> None: ...
