"""onMessageRemoved (issue 22): Memory no longer holds the message, exactly once, safe under faults.

1. the message is prepared as its add was (speaker, redaction, label): the observations Memory holds
2. tombstone the MessageSid in the ledger before Memory is touched: from then on no add, replay or
   backfill of it posts (the webhook's claim refuses it, the replay drops the envelope)
3. the removal done already → 200 duplicate, no Memory call
4. an add of it in flight (its lease held) → 409 with Retry-After: its post may land after our look
5. the parts posted or in doubt → Lookup the profile (never create one), List Observations (the
   bridge's source, createdAfter = occurredAt less a skew margin, oldest first), match each part on
   content, occurredAt and source (domain.observations.observation_key, as the replay's check),
   DELETE each match (a 520003 "not found" is done)
6. an accepted part not listed yet (the listing lags), or 429/5xx/timeout → 503 for Twilio to retry;
   the tombstone stays, so nothing comes back, and the retry deletes what is left
7. finish_removal → 200 removed
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from memory_bridge.deadlines import Deadline
from memory_bridge.domain.events import MessageAdded
from memory_bridge.domain.ledger import LedgerRecord
from memory_bridge.domain.observations import observation_key
from memory_bridge.domain.outcomes import Accepted, Outcome, Permanent, Retryable, describe, observation_gone
from memory_bridge.ports import (
    DeliveryLedger,
    KeyedLogger,
    LedgerUnavailable,
    MetricsSink,
    ObservationEditor,
    ProfileDirectory,
)
from memory_bridge.profiles import ProfileCache, lookup_profile
from memory_bridge.room import Room
from memory_bridge.webhook.answers import Answer, response
from memory_bridge.webhook.delivery import RESERVE_SECONDS, Prepared, Skipped

# Memory's createdAt is when it took the post: never before the message existed, but clocks differ.
CREATED_SKEW = timedelta(minutes=5)
# At most this many List pages per removal (50 observations each) before answering 503.
MAX_PAGES = 10


class Unfinished(Exception):
    """The removal could not finish now; the answer says why (Twilio retries)."""

    def __init__(self, reason: str, status: int = 503):
        super().__init__(reason)
        self.reason, self.status = reason, status


@dataclass
class Removals:
    """The ports a removal uses; `remove` handles one onMessageRemoved."""

    store_id: str
    directory: ProfileDirectory
    editor: ObservationEditor
    profiles: ProfileCache
    ledger: DeliveryLedger
    metrics: MetricsSink
    logger: KeyedLogger
    wall_clock: Callable[[], float]
    room: Room | None = None  # Memory's limit per profile: what a removal deletes is given back

    def remove(self, prepared: Prepared | Skipped, message: MessageAdded, deadline: Deadline) -> Answer:
        metrics, logger, sid = self.metrics, self.logger, message.message_sid
        try:
            record = self.ledger.tombstone(
                sid,
                message.removed_at or "unknown",
                now=self.wall_clock(),
                timeout=max(deadline.remaining() - RESERVE_SECONDS, 0.05),
            )
        except LedgerUnavailable as error:
            metrics.add_metric("LedgerUnavailable", "Count", 1)
            logger.error(
                "ledger unavailable; removal not started, answering 503", extra={"reason": str(error)}
            )
            return response(503, "ledger_unavailable")
        if record.removal_done:
            metrics.add_metric("Duplicates", "Count", 1)
            return response(200, "duplicate", first="removed")
        try:
            deleted = _delete_parts(
                prepared,
                record,
                self.store_id,
                self.directory,
                self.editor,
                self.profiles,
                deadline,
                self.wall_clock,
                self.room,
            )
            self.ledger.finish_removal(sid, timeout=max(deadline.remaining(), 0.05))
        except Unfinished as unfinished:
            metrics.add_metric("RemovalsUnfinished", "Count", 1)
            logger.warning("removal not finished; Twilio retries it", extra={"reason": unfinished.reason})
            answer = response(unfinished.status, "removal_unfinished", reason=unfinished.reason)
            if unfinished.status == 409:
                answer["headers"] = {"Content-Type": "application/json", "Retry-After": "2"}
            return answer
        except LedgerUnavailable as error:
            # Memory holds nothing of it now; the record says "not done", so a retry looks once more.
            metrics.add_metric("LedgerWriteFailed", "Count", 1)
            logger.error("ledger not updated after a removal", extra={"reason": str(error)})
            return response(503, "ledger_unavailable")
        metrics.add_metric("MessagesRemoved", "Count", 1)
        if deleted:
            metrics.add_metric("ObservationsDeleted", "Count", deleted)
        return response(200, "removed", deleted=deleted)


def _delete_parts(
    prepared: Prepared | Skipped,
    record: LedgerRecord,
    store_id: str,
    directory: ProfileDirectory,
    editor: ObservationEditor,
    profiles: ProfileCache,
    deadline: Deadline,
    wall_clock: Callable[[], float],
    room: Room | None = None,
) -> int:
    """Delete what Memory holds of the message; the number of observations deleted. Raises Unfinished."""
    if record.leased_to_another("", wall_clock()):
        raise Unfinished("an add of this message is in flight", status=409)
    parts = sorted(record.maybe_in_memory)
    if not parts:
        return 0  # never posted: the tombstone is all there is to do
    if isinstance(prepared, Skipped):
        # Posted, yet it goes nowhere by today's rules (the author left the conversation, the rules
        # changed): never "done" with Memory still holding it.
        raise Unfinished(f"posted, but it reads as {prepared.reason} now")
    if prepared.who is None:
        raise Unfinished("participants not read: the customer's profile is unknown")
    profile_id = profiles.get(prepared.who) or lookup_profile(directory, store_id, prepared.who)
    if profile_id is None:
        return 0  # no profile: Memory holds nothing of theirs
    if not isinstance(profile_id, str):
        raise Unfinished(describe(profile_id))
    wanted = Counter(observation_key(prepared.observations[p]) for p in parts)
    found = _find(editor, store_id, profile_id, prepared, wanted, deadline)
    accepted = len([p for p in parts if p in record.accepted])
    _delete_found(editor, store_id, profile_id, found, deadline, room)
    missing = accepted - len(found)
    if missing > 0:
        # Memory took them but does not list them yet: look again later rather than leave them.
        raise Unfinished(f"{missing} accepted part(s) not listed yet")
    # Parts only in doubt and not listed: the post that left them in doubt never landed.
    return len(found)


def _delete_found(
    editor: ObservationEditor,
    store_id: str,
    profile_id: str,
    found: list[str],
    deadline: Deadline,
    room: Room | None,
) -> None:
    """DELETE each; what Memory accepted is given back to the profile's count (Memory's limit)."""
    deleted = 0
    try:
        for observation_id in found:
            gone = editor.delete_observation(store_id, profile_id, observation_id, timeout=_timeout(deadline))
            if not (isinstance(gone, Accepted) or observation_gone(gone)):
                raise Unfinished(_said(gone))
            deleted += isinstance(gone, Accepted)  # one already gone was given back by whoever deleted it
    finally:
        if room is not None:
            room.give_back(profile_id, deleted, lambda: min(deadline.remaining(), 0.5))


def _find(
    editor: ObservationEditor,
    store_id: str,
    profile_id: str,
    prepared: Prepared,
    wanted: Counter[tuple[str, str, str]],
    deadline: Deadline,
) -> list[str]:
    """The ids of the listed observations that are the message's parts, one per part (copies counted).
    Only the words identify them: matching on the instant alone would take another message said in the
    same millisecond while this one is not listed yet."""
    first = prepared.observations[0]
    moment = datetime.fromisoformat(observation_key(first)[1]) if first.get("occurredAt") else None
    after = (moment - CREATED_SKEW).isoformat().replace("+00:00", "Z") if moment else None
    left = Counter(wanted)
    found: list[str] = []
    token: str | None = None
    for _ in range(MAX_PAGES):
        page = editor.list_observations(
            store_id,
            profile_id,
            source=str(first.get("source")),
            created_after=after,
            order_by="ASC",
            page_token=token,
            timeout=_timeout(deadline),
        )
        if not isinstance(page, Accepted):
            raise Unfinished(_said(page))
        body: dict[str, Any] = page.body if isinstance(page.body, dict) else {}
        for observation in body.get("observations") or []:
            key = observation_key(observation)
            if left[key] > 0 and observation.get("id"):
                left[key] -= 1
                found.append(str(observation["id"]))
        token = (body.get("meta") or {}).get("nextToken")
        if not token or not +left:
            return found
    raise Unfinished("too many observations to look through")


def _said(outcome: Outcome) -> str:
    return describe(outcome) if isinstance(outcome, Retryable | Permanent) else "profile moved"


def _timeout(deadline: Deadline) -> float:
    left = deadline.remaining() - RESERVE_SECONDS
    if left <= 0:
        raise Unfinished("out of time")
    return left
