"""The replay's bookkeeping: every ledger write and every queue change of a run, in one place.

The order these calls keep is what makes a crash harmless (memory_bridge.domain.ledger):
  claim   the request's parts are written unsure and leased before the POST starts;
  settle  after the answer, accepted parts are recorded and the lease given up;
  delete  a message leaves the queue only once the ledger says Memory holds all of it;
  put back / leave   what failed goes back with its failure recorded; what the run will not
          finish goes back untouched (or as the rest, when part of it was accepted).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Literal

from memory_bridge.domain.envelope import Envelope, FailureRecord, Stage
from memory_bridge.domain.ledger import LedgerRecord, Settlement
from memory_bridge.domain.outcomes import Failure, Permanent
from memory_bridge.ports import LedgerUnavailable, QueuedMessage, QueueUnavailable, ReplayLedger, ReplayQueue
from memory_bridge.replay.context import RunContext
from memory_bridge.replay.packing import Request
from memory_bridge.replay.pending import Pending
from memory_bridge.replay.summary import failure_row

# Waits on the ledger table.
LEDGER_TIMEOUT_SECONDS = 5.0
# A lease ends this long before the messages reappear, so whoever receives them next may proceed.
LEASE_MARGIN_SECONDS = 10.0


class Books:
    def __init__(self, run: RunContext, queue: ReplayQueue, ledger: ReplayLedger):
        self.run, self.queue, self.ledger = run, queue, ledger
        # MessageSids left for people: a marked envelope goes back on the queue as a new message,
        # and this run may receive it again.
        self.for_people: set[str] = set()

    def _ledger_timeout(self) -> float:
        return min(LEDGER_TIMEOUT_SECONDS, self.run.time_left())

    # ---- the ledger ---------------------------------------------------------------------------

    def read(self, items: list[Pending]) -> dict[str, LedgerRecord]:
        """The items' ledger records. Raises LedgerUnavailable."""
        return self.ledger.read_many([i.message_sid for i in items], timeout=self._ledger_timeout())

    def claim(self, request: Request) -> Request:
        """Write the request's parts as unsure and take their leases; drop what changed under us."""
        run = self.run
        wall = run.wall_clock()
        hold_left = min(i.hold_until for i in request.items) - run.clock()
        claims = [(i.message_sid, i.version, parts) for i, parts in request.pairs()]
        keys = {i.message_sid: i.digests(parts) for i, parts in request.pairs()}
        try:
            claimed = self.ledger.claim_many(
                claims,
                owner=run.owner,
                lease_until=wall + hold_left - LEASE_MARGIN_SECONDS,
                now=wall,
                timeout=self._ledger_timeout(),
                keys=keys,
            )
        except LedgerUnavailable as error:
            run.stop(f"ledger unavailable ({error})")
            return Request([], [])
        kept = Request([], [])
        for item, parts in request.pairs():
            if item.message_sid not in claimed:
                # Another run or a webhook moved it since we read it: leave it for the next run.
                run.counts.busy += 1
                run.hold(item.message)
                item.parts = []
                continue
            item.version = claimed[item.message_sid]
            kept.items.append(item)
            kept.parts.append(parts)
        return kept

    def settle(self, settled: list[tuple[Pending, Settlement]]) -> None:
        if not settled:
            return
        run = self.run
        try:
            versions = self.ledger.settle_many(
                [s for _, s in settled], timeout=min(LEDGER_TIMEOUT_SECONDS, max(run.time_left(), 1.0))
            )
        except LedgerUnavailable as error:
            # The parts stay "unsure" in the ledger: a later run looks in Memory before posting. The
            # versions we hold are now stale, so a later claim of ours fails and leaves the message.
            run.summary.notes.append(f"ledger not updated after a request ({error})")
            return
        # Each settle raised the record's version: a later claim of ours (the next chunk of a long
        # message) is conditional on it, so keep ours in step.
        for item, settlement in settled:
            item.version = versions.get(settlement.message_sid, item.version)

    def release_leases(self, request: Request, *, keep_unsure: bool = False) -> None:
        """Give up the request's leases; its parts stay unsure when Memory may have taken them."""
        owner = self.run.owner
        self.settle(
            [
                (
                    i,
                    Settlement(
                        i.message_sid, cleared=frozenset() if keep_unsure else frozenset(p), owner=owner
                    ),
                )
                for i, p in request.pairs()
            ]
        )

    def accepted(self, request: Request) -> None:
        """Memory answered 202: record the parts, then delete the messages with nothing left."""
        run = self.run
        run.counts.observations_posted += sum(len(p) for p in request.parts)
        owner = run.owner
        self.settle(
            [
                (
                    i,
                    Settlement(
                        i.message_sid,
                        accepted=frozenset(p),
                        cleared=frozenset(p),
                        owner=owner,
                        keys=i.digests(p),
                        at=run.wall_clock(),
                    ),
                )
                for i, p in request.pairs()
            ]
        )
        finished = []
        for item, parts in request.pairs():
            item.parts = [p for p in item.parts if p not in parts]
            if not item.parts:
                finished.append(item)
        self.delete(finished)

    def found_in_memory(self, found: list[tuple[Pending, list[int]]]) -> None:
        """List Observations showed these parts in Memory: record them as accepted (no lease)."""
        self.settle(
            [
                (
                    item,
                    Settlement(
                        item.message_sid,
                        accepted=frozenset(parts),
                        cleared=frozenset(parts),
                        keys=item.digests(parts),
                        at=self.run.wall_clock(),
                    ),
                )
                for item, parts in found
                if parts
            ]
        )

    # ---- the queue ----------------------------------------------------------------------------

    def delete(
        self,
        items: list[Pending],
        already_posted: bool = False,
        skipped: bool = False,
        removed: bool = False,
        changed: bool = False,
    ) -> None:
        """The one place a replayed message leaves the queue: after the ledger holds all of it."""
        if not items:
            return
        run = self.run
        for item in items:
            run.seen.discard(item.message.message_id)
        try:
            self.queue.delete([i.message for i in items])
        except QueueUnavailable as error:
            # They come back after their hold; the ledger then says they are in Memory.
            run.summary.notes.append(f"{len(items)} message(s) not deleted ({error}); a later run drops them")
        if changed:
            run.counts.changes += len(items)
        elif skipped:
            run.counts.skipped += len(items)
        elif removed:
            run.counts.removed += len(items)
        elif already_posted:
            run.counts.already_posted += len(items)
        else:
            run.counts.replayed += len(items)

    def leave(self, items: list[Pending]) -> None:
        """Put back untouched what this run will not finish (only the rest, if part was accepted)."""
        for item in items:
            if not item.parts:
                continue
            self.run.counts.left += 1
            rest = _changed_rest(item)
            if rest is not None:
                self._replace_or_hold(item.message, rest)
            else:
                self.run.hold(item.message)
            item.parts = []

    def let_go(self, items: list[Pending]) -> None:
        """Their hold runs short before their request could start: visible again now, whole (or as
        the rest, when part was accepted), for a later slice of this run or the next run."""
        whole = []
        for item in items:
            if not item.parts:
                continue
            rest = _changed_rest(item)
            if rest is not None:
                # Parked again as the rest: a new message, for the next run (as `leave` does).
                self._replace_or_hold(item.message, rest)
                self.run.counts.left += 1
            else:
                whole.append(item.message)
            item.parts = []
        if not whole:
            return
        try:
            self.queue.release(whole)
        except QueueUnavailable:
            self.run.held.extend(whole)  # they come back when their hold ends, for the next run
            self.run.counts.left += len(whole)
            return
        self.run.returned.update(m.message_id for m in whole)

    def put_back(self, item: Pending, stage: Stage, failure: Failure) -> None:
        """It failed again: back on the queue with the failure recorded (and, in a scheduled run, left
        for people when it is permanent or has failed max_attempts times)."""
        run = self.run
        kind: Literal["retryable", "permanent"] = (
            "permanent" if isinstance(failure, Permanent) else "retryable"
        )
        rest = _rest(item)
        again = rest.failed_again(FailureRecord.from_outcome(stage, failure), kind, run.now())
        max_attempts = run.options.max_attempts
        # A full profile (park) is never handed over: ProfilesFull raises its one alarm (issue 22).
        gives_up = kind == "permanent" or (
            again.failed_replays >= (max_attempts or 0) and stage != "profile_full"
        )
        if max_attempts is not None and gives_up:
            if kind != "permanent":
                again = again.left_for_people(run.now())
            run.counts.left_for_people += 1
            self.needs_people(again)
        self._replace_or_hold(item.message, again)
        item.parts = []
        run.counts.failed += 1
        run.summary.failures.append(failure_row(item.envelope, stage, failure.status, failure.code, kind))

    def mark_for_people(self, message: QueuedMessage, envelope: Envelope) -> None:
        """A scheduled run gives up on an envelope: marked, it stays on the queue for people."""
        self._replace_or_hold(message, envelope.left_for_people(self.run.now()))
        self.run.counts.left_for_people += 1
        self.needs_people(envelope)

    def needs_people(self, envelope: Envelope) -> None:
        self.for_people.add(envelope.message_sid)
        self.run.counts.needs_attention = len(self.for_people)

    def _replace_or_hold(self, message: QueuedMessage, envelope: Envelope) -> None:
        try:
            self.queue.replace(message, envelope)
        except QueueUnavailable:
            self.run.hold(message)  # whole, as it was: the ledger covers what was posted

    def release_held(self) -> None:
        """At the end of the run: what it held and did not finish becomes visible again at once."""
        run = self.run
        run.counts.left += len(run.returned)  # let go and not received again: the next run's
        run.returned.clear()
        if not run.held:
            return
        try:
            self.queue.release(run.held)
        except Exception:  # noqa: BLE001 - they come back by themselves when their hold ends
            run.summary.notes.append(f"{len(run.held)} message(s) could not be released early")


def _rest(item: Pending) -> Envelope:
    """The envelope as what is still to post: its parts left, and the profile resolved meanwhile."""
    return replace(item.envelope.with_parts(set(item.parts)), profile_id=item.profile_id)


def _changed_rest(item: Pending) -> Envelope | None:
    """The rest when it differs from the envelope on the queue (part accepted, or author resolved),
    else None: the message can go back as it is."""
    envelope = item.envelope
    if set(item.parts) == set(envelope.part_numbers) and item.profile_id == envelope.profile_id:
        return None
    return _rest(item)
