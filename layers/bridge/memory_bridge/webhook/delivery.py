"""Carry one message to Memory, or park it with the reason. Nothing lost, nothing doubled.

Pure decision logic over injected parts (Memory client, profile cache, dead-letter sink, clock):
  resolve the author's profile (cached) → POST the observations (≤10 a request) →
  Posted, or Parked(kind) after writing an envelope, or Skipped; Unparked when the queue refused.
The ledger's plan says which parts to post, which Memory may hold already (parked for the replay
to check, never posted blind) and which are done. The report says what this delivery learnt of
each part, for the ledger.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal

from memory_bridge.deadlines import Deadline
from memory_bridge.domain.envelope import FailureRecord, Stage, new_envelope
from memory_bridge.domain.ledger import PartsPlan
from memory_bridge.domain.observations import batches
from memory_bridge.domain.outcomes import Accepted, Failure, Moved, Outcome, Permanent, Retryable
from memory_bridge.ports import DeadLetterSink, ObservationWriter, QueueUnavailable
from memory_bridge.profiles import ProfileCache, resolve_profile
from memory_bridge.room import NoRoom, ProfileFull, Room
from memory_bridge.webhook.attempts import RESERVE_SECONDS, SETTLE_RESERVE_SECONDS, Attempts
from memory_bridge.webhook.preparing import DeliveryRules, Prepared, Skipped, prepare

# prepare, Prepared, Skipped and DeliveryRules live in preparing.py; the service imports them from here.
__all__ = [
    "RESERVE_SECONDS",
    "Delivery",
    "DeliveryRules",
    "Parked",
    "Posted",
    "Prepared",
    "Skipped",
    "Unparked",
    "deliver",
    "prepare",
]


@dataclass(frozen=True)
class Posted:
    observations: int
    requests: int


@dataclass(frozen=True)
class Parked:
    kind: Literal["retryable", "permanent"]
    stage: Stage
    status: int | None
    code: int | None


@dataclass(frozen=True)
class Unparked:
    """The envelope could not be written: the webhook answers 503 so that Twilio retries."""

    reason: str


DeliveryResult = Posted | Parked | Skipped | Unparked


@dataclass(frozen=True)
class Delivery:
    """The result, and what this delivery learnt of each part (for the ledger)."""

    result: DeliveryResult
    accepted: frozenset[int] = frozenset()  # Memory answered 202
    in_doubt: frozenset[int] = frozenset()  # may be in Memory: a timeout, a dropped connection
    profiles_created: int = 0
    # Memory's limit per profile (room.py): ObservationsEvicted, ProfileNearLimit, ProfilesFull.
    room_metrics: tuple[tuple[str, int], ...] = ()

    def metrics(self) -> list[tuple[str, int]]:
        return [(n, v) for n, v in (("ProfilesCreated", self.profiles_created), *self.room_metrics) if v]


def deliver(
    prepared: Prepared,
    *,
    rules: DeliveryRules,
    memory: ObservationWriter,
    profiles: ProfileCache,
    dead_letters: DeadLetterSink,
    deadline: Deadline,
    plan: PartsPlan | None = None,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
    sleep: Callable[[float], None] = time.sleep,
    room: Room | None = None,
) -> Delivery:
    plan = plan or PartsPlan(post=tuple(range(len(prepared.observations))))
    run = _Run(
        prepared, rules, memory, profiles, dead_letters, deadline, plan, now, Attempts(deadline, sleep), room
    )
    return run.deliver()


@dataclass
class _Run:
    """One delivery's parts and state: what it learnt of each part so far."""

    prepared: Prepared
    rules: DeliveryRules
    memory: ObservationWriter
    profiles: ProfileCache
    dead_letters: DeadLetterSink
    deadline: Deadline
    plan: PartsPlan
    now: Callable[[], datetime]
    attempts: Attempts
    room: Room | None = None
    accepted: set[int] = field(default_factory=set)
    metrics: dict[str, int] = field(default_factory=dict)  # Memory's limit: room.py's counts
    created: list[str] = field(default_factory=list)  # profiles this delivery made
    # An earlier delivery may have posted these: park, never post blind.
    in_doubt: set[int] = field(init=False)

    def __post_init__(self) -> None:
        self.in_doubt = set(self.plan.check)

    def deliver(self) -> Delivery:
        who, attempts = self.prepared.who, self.attempts
        to_post = list(self.plan.post)
        if self.prepared.unresolved is not None or who is None:
            unresolved = self.prepared.unresolved or Permanent(status=0, message="no speaker")
            return self.park("resolve_speaker", unresolved, to_post, None)
        profile_id = self.profiles.get(who)
        cached = profile_id is not None
        if profile_id is None and to_post:
            resolved = self.resolve()
            if isinstance(resolved, Retryable | Permanent):
                return self.park("resolve_profile", resolved, to_post, None)
            profile_id = resolved
        posted = 0
        for batch in batches(to_post):
            assert profile_id is not None
            outcome, profile_id = self.post_with_room(profile_id, batch)
            if cached and _vanished(outcome):
                # The cached profile was deleted since (`memory-bridge erase --whole-profile`): look
                # the customer up again, once, rather than park a message Memory would take.
                cached, fresh = False, self.resolve()
                if isinstance(fresh, Retryable | Permanent):
                    return self.park("resolve_profile", fresh, to_post[posted:], None)
                outcome, profile_id = self.post_with_room(fresh, batch)
            if isinstance(outcome, ProfileFull | NoRoom):
                stage: Stage = "profile_full" if isinstance(outcome, ProfileFull) else "make_room"
                return self.park(stage, outcome.failure, to_post[posted:], profile_id)
            if not isinstance(outcome, Accepted):
                failure = outcome if isinstance(outcome, Retryable | Permanent) else _unexpected(outcome)
                return self.park("post_observations", failure, to_post[posted:], profile_id, tried=batch)
            self.accepted.update(batch)
            posted += len(batch)
        if self.plan.check:
            doubt = Retryable(
                status=None,
                message="an earlier delivery may have posted these; the replay checks Memory first",
                ambiguous=True,
            )
            return self.park("post_observations", doubt, [], profile_id)
        return self.report(Posted(observations=posted, requests=attempts.calls))

    def resolve(self) -> str | Failure:
        """Lookup, else resolve-or-create; the profile id is cached for the container."""
        rules, who, attempts = self.rules, self.prepared.who, self.attempts
        assert who is not None
        resolved = attempts.run(
            lambda: resolve_profile(
                self.memory,
                rules.store_id,
                who,
                rules.trait_group,
                attempts.call_timeout,
                created=self.created,
            )
        )
        if isinstance(resolved, Retryable | Permanent):
            return resolved
        assert isinstance(resolved, str)
        self.profiles.put(who, resolved)
        return resolved

    def post_with_room(
        self, profile_id: str, batch: Sequence[int]
    ) -> tuple[Outcome | str | ProfileFull | NoRoom, str]:
        """Post the batch within Memory's limit per profile (room.py), when a limit is set."""
        if self.room is None:
            return self.post_following_merge(profile_id, batch)
        post = lambda: self.post_following_merge(profile_id, batch)  # noqa: E731
        store, timeout = self.rules.store_id, self.attempts.call_timeout
        return self.room.post_within(store, profile_id, len(batch), post, timeout, self.metrics)

    def post_following_merge(self, profile_id: str, batch: Sequence[int]) -> tuple[Outcome | str, str]:
        """POST one batch; on 308 + Canonical-Profile-Id follow the canonical profile once.

        Returns the outcome and the profile id it was posted to.
        """
        store_id, attempts = self.rules.store_id, self.attempts
        observations = [self.prepared.observations[p] for p in batch]
        outcome = attempts.run(
            lambda: self.memory.create_observations(
                store_id, profile_id, observations, attempts.call_timeout()
            )
        )
        if (
            isinstance(outcome, Moved)
            and outcome.canonical_profile_id
            and outcome.canonical_profile_id != profile_id
        ):
            canonical = outcome.canonical_profile_id
            assert self.prepared.who is not None
            self.profiles.put(self.prepared.who, canonical)
            followed = attempts.run(
                lambda: self.memory.create_observations(
                    store_id, canonical, observations, attempts.call_timeout()
                )
            )
            return followed, canonical
        return outcome, profile_id

    def report(self, result: DeliveryResult) -> Delivery:
        return Delivery(
            result,
            frozenset(self.accepted),
            frozenset(self.in_doubt),
            len(self.created),
            tuple(self.metrics.items()),
        )

    def park(
        self,
        stage: Stage,
        failure: Failure,
        unposted: Sequence[int],
        profile_id: str | None,
        tried: Sequence[int] = (),
    ) -> Delivery:
        kind: Literal["retryable", "permanent"] = (
            "permanent" if isinstance(failure, Permanent) else "retryable"
        )
        if isinstance(failure, Retryable) and failure.ambiguous:
            self.in_doubt.update(tried)  # the failed request may have reached Memory
        parts = sorted({*unposted, *self.plan.check})
        message, rules = self.prepared.message, self.rules
        envelope = new_envelope(
            kind=kind,
            store_id=rules.store_id,
            message_sid=message.message_sid,
            conversation_sid=message.conversation_sid,
            observations=[self.prepared.observations[p] for p in parts],
            failure=FailureRecord.from_outcome(stage, failure),
            profile_id=profile_id,
            identifier=self.prepared.who,
            trait_group=rules.trait_group,
            now=self.now(),
            parts=parts,
            speaker=self.prepared.speaker,
            edited=message.edited_at,
        )
        timeout = max(self.deadline.remaining() - SETTLE_RESERVE_SECONDS, 0.05)
        try:
            self.dead_letters.park(envelope, timeout=timeout)
        except QueueUnavailable as error:
            return self.report(Unparked(str(error)))
        return self.report(Parked(kind=kind, stage=stage, status=failure.status, code=failure.code))


def _vanished(outcome: object) -> bool:
    """404 Not Found (20404) on a post: the profile is gone (deleted, or never in this store)."""
    return isinstance(outcome, Permanent) and outcome.status == 404 and outcome.code == 20404


def _unexpected(outcome: Outcome | str) -> Permanent:
    status = getattr(outcome, "status", 0) or 0
    return Permanent(status=status, message=f"unexpected answer {type(outcome).__name__}")
