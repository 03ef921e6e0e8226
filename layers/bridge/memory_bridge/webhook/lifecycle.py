"""onMessageRemoved (issue 22): Memory no longer holds the message, exactly once, safe under faults.

1. the message is prepared as its add was (speaker, redaction, label): the observations Memory holds
2. tombstone the MessageSid in the ledger before Memory is touched: from then on no add, replay or
   backfill of it posts (the webhook's claim refuses it, the replay drops the envelope)
3. the removal done already → 200 duplicate, no Memory call
4. an add of it in flight (its lease held) → 409 with Retry-After: its post may land after our look
5. the parts posted or in doubt → Lookup the profile (never create one), find each part
   (webhook/finding.py: the ledger's id for it, else its digest, the ledger's or of the words the
   removal carries, by List Observations), DELETE each (a 520003 "not found" is done)
6. an accepted part not listed yet (the listing lags), or 429/5xx/timeout → 503 for Twilio to retry;
   the tombstone stays, so nothing comes back, and the retry deletes what is left
7. finish_removal → 200 removed
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from datetime import UTC, datetime

from memory_bridge.deadlines import Deadline
from memory_bridge.domain.envelope_records import ChangeRecord
from memory_bridge.domain.events import MessageAdded
from memory_bridge.domain.ledger import LedgerRecord
from memory_bridge.domain.outcomes import Accepted, observation_gone
from memory_bridge.ports import (
    DeadLetterSink,
    DeliveryLedger,
    KeyedLogger,
    LedgerUnavailable,
    MetricsSink,
    ObservationEditor,
    ProfileDirectory,
)
from memory_bridge.profiles import ProfileCache
from memory_bridge.room import Room
from memory_bridge.webhook.answers import Answer, response
from memory_bridge.webhook.changes import Parking, unfinished_answer
from memory_bridge.webhook.delivery import RESERVE_SECONDS, Prepared, Skipped
from memory_bridge.webhook.finding import (
    Unfinished,
    find_parts,
    missing_is_gone,
    profile_of,
    said,
    search_for,
    time_for_call,
)


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
    # Where a removal Memory cannot take now is parked (webhook/changes.py), and the profile's trait
    # group; None: 503 for Twilio to retry (the replay finishing a parked one leaves it queued).
    dead_letters: DeadLetterSink | None = None
    trait_group: str = "Contact"

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
            return self._unfinished(unfinished, prepared, message, deadline)
        except LedgerUnavailable as error:
            # Memory holds nothing of it now; the record says "not done", so a retry looks once more.
            metrics.add_metric("LedgerWriteFailed", "Count", 1)
            logger.error("ledger not updated after a removal", extra={"reason": str(error)})
            return response(503, "ledger_unavailable")
        metrics.add_metric("MessagesRemoved", "Count", 1)
        if deleted:
            metrics.add_metric("ObservationsDeleted", "Count", deleted)
        return response(200, "removed", deleted=deleted)

    def _unfinished(
        self, unfinished: Unfinished, prepared: Prepared | Skipped, message: MessageAdded, deadline: Deadline
    ) -> Answer:
        """Parked for the replay when Memory failed and the customer is known; else 409/503 for
        Twilio to retry. The tombstone already keeps any add of it from posting."""
        self.metrics.add_metric("RemovalsUnfinished", "Count", 1)
        if unfinished.ids:
            with suppress(LedgerUnavailable):  # else the retry lists again
                self.ledger.remember_ids(
                    message.message_sid, unfinished.ids, timeout=min(deadline.remaining(), 0.5)
                )
        change = ChangeRecord("remove", message.removed_at or "unknown")
        shape = prepared if isinstance(prepared, Prepared) else None
        words = shape.observations if shape is not None else ()
        parking = None
        if self.dead_letters is not None:
            parking = Parking(self.dead_letters, self.store_id, self.trait_group, self.wall_clock)
        return unfinished_answer(unfinished, change, shape, words, parking, deadline, self.logger)


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
    profile_id = profile_of(prepared.who, profiles, directory, store_id)
    if profile_id is None:
        return 0  # no profile: Memory holds nothing of theirs
    search = search_for(set(parts), prepared.observations, record.keys, record.ids, record.pending)
    found = find_parts(editor, store_id, profile_id, search, deadline)
    try:
        _delete_found(editor, store_id, profile_id, list(found.values()), deadline, room)
    except Unfinished as unfinished:
        unfinished.ids = found
        raise
    missing = [p for p in parts if p in record.accepted and p not in found]
    if missing and not missing_is_gone(
        record, search.first, lambda: datetime.fromtimestamp(wall_clock(), UTC)
    ):
        # Memory took them but does not list them yet: look again later rather than leave them.
        raise Unfinished(f"{len(missing)} accepted part(s) not listed yet")
    # Parts only in doubt and not listed: the post that left them in doubt never landed. Parts Memory
    # took and has not listed for longer than it lags: it dropped them (past its 500, reconciled).
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
            gone = editor.delete_observation(
                store_id, profile_id, observation_id, timeout=time_for_call(deadline)
            )
            if not (isinstance(gone, Accepted) or observation_gone(gone)):
                raise Unfinished(said(gone))
            deleted += isinstance(gone, Accepted)  # one already gone was given back by whoever deleted it
    finally:
        if room is not None:
            room.give_back(profile_id, deleted, lambda: min(deadline.remaining(), 0.5))
