"""Edits and removals Memory could not take now (issue 22): parked, and finished by the replay.

An add Memory refuses is parked with its words, and the replay posts them: nothing is lost whatever
Twilio does next. An edit or a removal is the same: when Memory answers 429/5xx/nothing, or lists a
part it took only later, the change is parked as an envelope (stage `change_observations`, with its
ChangeRecord: an edit's DateUpdated or the removal's DateRemoved) and Twilio gets 200 `parked`. The
replay hands such an envelope to `ParkedChanges.finish`, which runs the webhook's own flow again
(webhook/edits.py, webhook/lifecycle.py) with the replay's time: the ledger's claim keeps the order of
edits and the tombstone, so a change finished late, twice, or after a newer one does nothing wrong.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, Protocol

from memory_bridge.deadlines import Deadline
from memory_bridge.domain.envelope import Envelope, FailureRecord, new_envelope
from memory_bridge.domain.envelope_records import ChangeRecord
from memory_bridge.domain.events import MessageAdded
from memory_bridge.domain.observations import Observation
from memory_bridge.domain.outcomes import Retryable
from memory_bridge.ports import DeadLetterSink, KeyedLogger, QueueUnavailable
from memory_bridge.webhook.answers import Answer, response
from memory_bridge.webhook.attempts import SETTLE_RESERVE_SECONDS
from memory_bridge.webhook.delivery import Prepared, Skipped
from memory_bridge.webhook.finding import Unfinished


class Uncounted:
    """Metrics for the replay's run of a parked change: the run's summary counts it instead."""

    def add_metric(self, name: str, unit: Any, value: float) -> None:  # noqa: ARG002
        return None


def park_change(
    dead_letters: DeadLetterSink,
    where: tuple[str, str],
    shape: Prepared,
    words: tuple[Observation, ...],
    change: ChangeRecord,
    reason: str,
    now: datetime,
    timeout: float,
) -> Answer | None:
    """Park the change; the answer for Twilio (200 parked, or 503 when the queue refused), or None when
    it cannot be parked (no customer known: Twilio's retry is all there is). `where`: the store and
    the profile's trait group."""
    message, (store_id, trait_group) = shape.message, where
    if shape.who is None or not shape.observations:
        return None
    observations = words or shape.observations[:1]
    envelope = new_envelope(
        kind="retryable",
        store_id=store_id,
        message_sid=message.message_sid,
        conversation_sid=message.conversation_sid,
        observations=observations,
        failure=FailureRecord.from_outcome("change_observations", Retryable(status=None, message=reason)),
        profile_id=None,
        identifier=shape.who,
        trait_group=trait_group,
        now=now,
        parts=range(len(observations)),
        speaker=shape.speaker,
        edited=change.at if change.kind == "edit" else None,
    )
    try:
        dead_letters.park(replace(envelope, change=replace(change, says_nothing=not words)), timeout=timeout)
    except QueueUnavailable:
        return response(503, "queue_unavailable")
    return response(200, "parked", change=change.kind, reason=reason)


@dataclass(frozen=True)
class Parking:
    """Where an edit or a removal Memory cannot take now is parked: the queue, the store, the
    profile's trait group, and the clock that dates the envelope."""

    dead_letters: DeadLetterSink
    store_id: str
    trait_group: str
    wall_clock: Callable[[], float]


def unfinished_answer(
    unfinished: Unfinished,
    change: ChangeRecord,
    shape: Prepared | None,
    words: tuple[Observation, ...],
    parking: Parking | None,
    deadline: Deadline,
    logger: KeyedLogger,
) -> Answer:
    """Memory failed (503): parked for the replay when it can be (a queue, the customer known), so that
    nothing rests on Twilio's retries; else, and for 409 (another delivery in flight), the status for
    Twilio to retry."""
    what = "edit" if change.kind == "edit" else "removal"
    if unfinished.status == 503 and parking is not None and shape is not None:
        now = datetime.fromtimestamp(parking.wall_clock(), UTC)
        timeout = max(deadline.remaining() - SETTLE_RESERVE_SECONDS, 0.05)
        where = (parking.store_id, parking.trait_group)
        parked = park_change(
            parking.dead_letters, where, shape, words, change, unfinished.reason, now, timeout
        )
        if parked is not None:
            logger.warning(f"{what} not finished; parked for the replay", extra={"reason": unfinished.reason})
            return parked
    logger.warning(f"{what} not finished; Twilio retries it", extra={"reason": unfinished.reason})
    return retry_later(unfinished.status, f"{what}_unfinished", unfinished.reason)


class EditFlow(Protocol):
    """webhook/edits.py's Edits, as ParkedChanges uses it."""

    def edit(
        self, prepared: Prepared | Skipped, shape: Prepared, owner: str, lease: float, deadline: Deadline
    ) -> Answer: ...


class RemovalFlow(Protocol):
    """webhook/lifecycle.py's Removals, as ParkedChanges uses it."""

    def remove(self, prepared: Prepared | Skipped, message: MessageAdded, deadline: Deadline) -> Answer: ...


@dataclass
class ParkedChanges:
    """The replay's side (ports.ChangeReplayer): finish a parked edit or removal, or say it is not done."""

    flows: Callable[[str], tuple[EditFlow, RemovalFlow]]  # for the envelope's store
    clock: Callable[[], float]
    target_store: str | None = None  # the function's own store (as the replay retargets adds)

    def finish(self, envelope: Envelope, owner: str, seconds: float) -> str | None:
        change = envelope.change
        if change is None or envelope.identifier is None:
            return "not a change with a customer"
        first = envelope.observations[0]
        message = MessageAdded(
            message_sid=envelope.message_sid,
            conversation_sid=envelope.conversation_sid,
            account_sid="",
            author=None,
            body="",
            date_created=datetime.fromisoformat(str(first.get("occurredAt")).replace("Z", "+00:00")),
            index=None,
            removed_at=change.at if change.kind == "remove" else None,
            edited_at=change.at if change.kind == "edit" else None,
        )
        speaker = envelope.speaker
        shape = Prepared(message, envelope.identifier, envelope.observations)
        if speaker is not None:
            shape = replace(shape, speaker=speaker)
        words: Prepared | Skipped = Skipped("empty") if change.says_nothing else shape
        deadline = Deadline(seconds, self.clock)
        edits, removals = self.flows(self.target_store or envelope.store_id)
        if change.kind == "edit":
            answer = edits.edit(words, shape, owner, seconds + 1.0, deadline)
        else:
            answer = removals.remove(words, message, deadline)
        if int(answer["statusCode"]) == 200:
            return None
        body = json.loads(str(answer.get("body") or "{}"))
        return str(body.get("reason") or body.get("outcome") or answer["statusCode"])[:120]


def retry_later(status: int, outcome: str, reason: str) -> Answer:
    answer = response(status, outcome, reason=reason)
    if status == 409:
        answer["headers"] = {"Content-Type": "application/json", "Retry-After": "2"}
    return answer
