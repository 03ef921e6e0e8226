"""onMessageUpdated (issue 22): Memory holds the edited words, exactly once, safe under faults.

1. the edit's claim: the lease, and the edit's DateUpdated as the newest seen. Refused when the
   message was removed (200 removed), when this edit finished or a newer one was seen (200
   duplicate / stale: edits may arrive out of order), or while another delivery holds it (409)
2. the new words are prepared as an add's are (speaker, redaction, label, split at 4096 bytes)
3. the parts Memory may hold are found (webhook/finding.py: the ledger's ids, else the digests of
   the words it holds, by List Observations); a part in doubt with no digest waits (503) for the
   replay to settle it
4. each part still said is PATCHed to its new words; a part the edit no longer has is DELETEd;
   Memory answering 404 means it dropped that part: it is not brought back
5. a part Memory does not hold (an update before its add, a parked add, an edit that grew) is
   marked unsure with its digest and posted as an add's parts are (parked when Memory refuses)
6. settle: the digests and ids learnt, edit_done; a later add of the message posts nothing, and a
   parked copy of older words is dropped by the replay
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from datetime import UTC, datetime

from memory_bridge.deadlines import Deadline
from memory_bridge.domain.envelope_records import ChangeRecord
from memory_bridge.domain.ledger import Busy, Finished, LedgerRecord, PartsPlan, Settlement
from memory_bridge.domain.observations import observation_digest
from memory_bridge.ports import (
    DeadLetterSink,
    DeliveryLedger,
    KeyedLogger,
    LedgerUnavailable,
    MetricsSink,
    ObservationEditor,
    ObservationWriter,
)
from memory_bridge.profiles import ProfileCache
from memory_bridge.room import Room
from memory_bridge.webhook.answers import Answer, response, result_json
from memory_bridge.webhook.changes import Parking, retry_later, unfinished_answer
from memory_bridge.webhook.delivery import (
    RESERVE_SECONDS,
    DeliveryRules,
    Prepared,
    Skipped,
    Unparked,
    deliver,
)
from memory_bridge.webhook.finding import (
    Unfinished,
    time_for_call,
)
from memory_bridge.webhook.rewriting import Change, Editor


@dataclass
class Edits:
    """The ports an edit uses; `edit` handles one onMessageUpdated."""

    rules: DeliveryRules
    memory: ObservationWriter
    editor: ObservationEditor
    profiles: ProfileCache
    dead_letters: DeadLetterSink
    ledger: DeliveryLedger
    metrics: MetricsSink
    logger: KeyedLogger
    wall_clock: Callable[[], float]
    sleep: Callable[[float], None]
    room: Room | None = None  # Memory's limit per profile: what an edit posts or deletes is counted
    # The webhook parks an edit Memory cannot take now (webhook/changes.py); the replay finishing a
    # parked one leaves it on the queue instead.
    park_unfinished: bool = True

    def edit(
        self, prepared: Prepared | Skipped, shape: Prepared, owner: str, lease: float, deadline: Deadline
    ) -> Answer:
        """`prepared`: the new words (Skipped: they say nothing now); `shape`: where they go."""
        message = shape.message
        at = message.edited_at or ""
        new = prepared.observations if isinstance(prepared, Prepared) else ()
        try:
            claim = self.ledger.claim_edit(
                message.message_sid,
                owner,
                at,
                lease_until=self.wall_clock() + lease,
                now=self.wall_clock(),
                timeout=max(deadline.remaining() - RESERVE_SECONDS, 0.05),
                pending=prepared.digests if isinstance(prepared, Prepared) else {},
            )
        except LedgerUnavailable as error:
            return self._unavailable(error, "edit not started")
        if isinstance(claim, Finished):
            return self._refused(claim.record, at)
        if isinstance(claim, Busy):
            self.metrics.add_metric("DuplicatesInProgress", "Count", 1)
            return retry_later(409, "in_progress", "another delivery of this message is in flight")
        editor = Editor(
            self.rules,
            self.memory,
            self.editor,
            self.profiles,
            lambda: datetime.fromtimestamp(self.wall_clock(), UTC),
        )
        try:
            change = editor.change(shape, new, claim.previous, deadline)
            self._post(change, prepared, owner, deadline)
            return self._settle(change, shape, owner, at, deadline)
        except Unfinished as unfinished:
            self._release(message.message_sid, owner, deadline)
            return self._unfinished(unfinished, prepared, shape, at, deadline)
        except LedgerUnavailable as error:
            return self._unavailable(error, "edit not recorded")

    def _post(self, change: Change, prepared: Prepared | Skipped, owner: str, deadline: Deadline) -> None:
        """Step 5: the parts Memory does not hold, marked unsure first, posted as an add's are."""
        if not change.post or not isinstance(prepared, Prepared):
            return
        sid = prepared.message.message_sid
        keys = {p: prepared.digests[p] for p in change.post}
        if not self.ledger.mark_unsure(sid, owner, change.post, keys, timeout=time_for_call(deadline)):
            raise Unfinished("the lease was lost", status=409)
        done = tuple(p for p in range(len(change.observations)) if p not in change.post)
        change.delivery = deliver(
            prepared,
            rules=self.rules,
            memory=self.memory,
            profiles=self.profiles,
            dead_letters=self.dead_letters,
            deadline=deadline,
            plan=PartsPlan(done=done, post=tuple(change.post)),
            sleep=self.sleep,
            room=self.room,
        )

    def _settle(self, change: Change, shape: Prepared, owner: str, at: str, deadline: Deadline) -> Answer:
        sid = shape.message.message_sid
        if change.gone:
            self.ledger.forget_parts(sid, change.gone, timeout=max(deadline.remaining(), 0.05))
        delivery = change.delivery
        unparked = delivery is not None and isinstance(delivery.result, Unparked)
        accepted = delivery.accepted if delivery else frozenset()
        in_memory = set(change.ids) | set(accepted)
        digests = {p: observation_digest(o) for p, o in enumerate(change.observations)}
        settlement = Settlement(
            sid,
            # A part in doubt that the edit found and changed is in Memory: no longer in doubt.
            accepted=accepted | frozenset(change.ids),
            cleared=(frozenset(change.post) - (delivery.in_doubt if delivery else frozenset()))
            | set(change.ids),
            outcome={"outcome": "edited"},  # kept only when the add never answered: it is then a duplicate
            owner=owner,
            keys={p: digests[p] for p in in_memory},
            ids=change.ids,
            edit_done=None if unparked else at,
            settled_pending=frozenset() if unparked else frozenset(range(len(change.observations))),
            at=self.wall_clock(),
        )
        self.ledger.settle(settlement, timeout=max(deadline.remaining(), 0.05))
        if self.room is not None and change.deleted and change.profile_id:
            self.room.give_back(
                change.profile_id, len(change.deleted), lambda: min(deadline.remaining(), 0.5)
            )
        if unparked:
            self.metrics.add_metric("DeadLetterQueueUnavailable", "Count", 1)
            return response(503, "queue_unavailable")
        result = result_json(delivery.result) if delivery else {}
        self.metrics.add_metric("MessagesEdited", "Count", 1)
        return response(
            200,
            "edited",
            changed=len(change.ids),
            deleted=len(change.deleted),
            dropped=len(change.dropped),
            posted=len(accepted),
            parked=result.get("outcome") == "parked",
        )

    def _unfinished(
        self,
        unfinished: Unfinished,
        prepared: Prepared | Skipped,
        shape: Prepared,
        at: str,
        deadline: Deadline,
    ) -> Answer:
        """Parked for the replay to finish when Memory failed (nothing left to Twilio's retries); else
        409/503 for Twilio to retry (another delivery in flight, the customer unknown)."""
        self.metrics.add_metric("EditsUnfinished", "Count", 1)
        words = prepared.observations if isinstance(prepared, Prepared) else ()
        parking = self.parking() if self.park_unfinished else None
        return unfinished_answer(
            unfinished, ChangeRecord("edit", at), shape, words, parking, deadline, self.logger
        )

    def parking(self) -> Parking:
        return Parking(self.dead_letters, self.rules.store_id, self.rules.trait_group, self.wall_clock)

    def _refused(self, record: LedgerRecord, at: str) -> Answer:
        if record.removed is not None:
            self.metrics.add_metric("EditsOfRemoved", "Count", 1)
            return response(200, "removed")
        self.metrics.add_metric("Duplicates", "Count", 1)
        return response(200, "duplicate" if record.edit_done == at else "stale", first="edited")

    def _release(self, sid: str, owner: str, deadline: Deadline) -> None:
        with suppress(LedgerUnavailable):  # else the lease ends on its own
            self.ledger.settle(Settlement(sid, owner=owner), timeout=max(deadline.remaining(), 0.05))

    def _unavailable(self, error: LedgerUnavailable, what: str) -> Answer:
        self.metrics.add_metric("LedgerUnavailable", "Count", 1)
        self.logger.error(f"ledger unavailable; {what}, answering 503", extra={"reason": str(error)})
        return response(503, "ledger_unavailable")
