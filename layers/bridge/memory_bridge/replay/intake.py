"""Receiving parked messages: read each envelope, redact it, and keep only what this run should replay.

What it does not keep stays on the queue untouched (released at the end of the run): malformed
envelopes, those that do not match the run's filters, those that failed too recently, and, in a
scheduled run, those left for people.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from memory_bridge.domain.envelope import Envelope, MalformedEnvelope, parse_envelope
from memory_bridge.domain.redaction import redact_envelope
from memory_bridge.ports import QueuedMessage, ReplayQueue
from memory_bridge.replay.books import Books
from memory_bridge.replay.context import RunContext
from memory_bridge.replay.options import parse_time
from memory_bridge.replay.pacer import OutOfTime
from memory_bridge.replay.pending import Pending
from memory_bridge.replay.resolving import Resolver
from memory_bridge.replay.slicing import SliceBudget
from memory_bridge.replay.summary import failure_row

RECEIVE_BATCH = 10  # SQS's most per ReceiveMessage
# How often a scheduled run looks again at a message parked because its profile was full (park).
PROFILE_FULL_RECHECK = timedelta(minutes=20)


class Intake:
    def __init__(self, run: RunContext, queue: ReplayQueue, books: Books, resolver: Resolver):
        self.run, self.queue, self.books, self.resolver = run, queue, books, resolver
        self.queue_empty = False
        self.scan_limit_reached = False

    @property
    def seen(self) -> set[str]:
        """The messages received so far and not yet deleted (the run's, shared with its books)."""
        return self.run.seen

    def collect(self, limit: int | None, budget: SliceBudget | None = None) -> list[Pending]:
        """Receive up to `limit` envelopes that match the options (None: all there are), and no more
        than the budget, when there is one, wants."""
        pending: list[Pending] = []
        while True:
            want = RECEIVE_BATCH if limit is None else min(RECEIVE_BATCH, limit - len(pending))
            if budget is not None:
                want = min(want, budget.wants())
            batch = self._receive(want) if want > 0 else []
            if not batch:
                return pending
            hold_until = self.run.clock() + self.run.options.visibility_timeout
            for message in batch:
                if message.message_id in self.run.returned:
                    self.run.returned.discard(message.message_id)  # let go earlier in this run: counted
                elif message.message_id in self.seen:
                    continue  # came back after a release; already counted
                else:
                    self.seen.add(message.message_id)
                    self.run.counts.received += 1
                item = self.accept(message, hold_until)
                if item is not None:
                    pending.append(item)
                    if budget is not None:
                        budget.add(item)

    def _receive(self, want: int) -> list[QueuedMessage]:
        run = self.run
        if run.time_left() < 1.0:
            raise OutOfTime
        if run.options.max_received is not None:
            want = min(want, run.options.max_received - run.counts.received)
            if want <= 0:
                self.scan_limit_reached = True
                return []
        visibility = run.options.visibility_timeout
        batch = self.queue.receive(want, visibility, wait_seconds=0)
        if not batch:
            # A short poll may miss messages on some SQS servers: ask the count, then long-poll once.
            if self.queue.visible_count() == 0:
                self.queue_empty = True
                return []
            batch = self.queue.receive(want, visibility, wait_seconds=1)
            if not batch:
                self.queue_empty = True
        return batch

    def accept(self, message: QueuedMessage, hold_until: float) -> Pending | None:
        run = self.run
        try:
            envelope = parse_envelope(message.body)
        except MalformedEnvelope as error:
            run.counts.malformed += 1
            run.summary.malformed.append({"messageId": message.message_id, "reason": str(error)})
            run.hold(message)
            return None
        # Envelopes parked before redaction existed go through the same step as the webhook's.
        envelope, found = redact_envelope(envelope, run.redaction_kinds)
        run.counts.redacted += sum(found.values())
        if run.options.max_attempts is not None and self.hand_over(message, envelope):
            return None
        if not self.keep(message, envelope):
            return None
        if run.target and envelope.store_id != run.target:
            if envelope.identifier is None and not envelope.speaker_unknown:
                run.counts.left += 1
                run.summary.failures.append(
                    failure_row(envelope, "retarget", None, None, "no identifier to resolve in the new store")
                )
                run.hold(message)
                return None
            # A profile id belongs to its store: resolve the author again in the target store.
            envelope = replace(envelope, store_id=run.target, profile_id=None)
            run.counts.retargeted += 1
        return Pending(message, envelope, hold_until, envelope.profile_id, list(envelope.part_numbers))

    def keep(self, message: QueuedMessage, envelope: Envelope) -> bool:
        """Matches the run's filters and failed long enough ago; else held, untouched."""
        run = self.run
        if not self.matches(envelope):
            run.counts.filtered += 1
            if envelope.kind == "permanent" and run.options.kind == "retryable":
                run.counts.filtered_permanent += 1
            run.hold(message)
            return False
        if self.too_recent(envelope):
            run.counts.too_recent += 1
            run.hold(message)
            return False
        return True

    def hand_over(self, message: QueuedMessage, envelope: Envelope) -> bool:
        """The scheduled policy: permanent and given-up envelopes stay for people; one whose failed
        replays reached max_attempts without being marked (a replay by hand failed, or the limit was
        lowered) is marked now. True when the envelope is not this run's to replay."""
        options = self.run.options
        assert options.max_attempts is not None
        if envelope.kind == "retryable" and not envelope.needs_attention:
            if envelope.failure.stage == "profile_full" or envelope.failed_replays < options.max_attempts:
                # A full profile is not a failure to hand over: ProfilesFull has raised its one alarm,
                # and the re-checks (every PROFILE_FULL_RECHECK) post it once there is room.
                return False
            if not options.dry_run:
                self.books.mark_for_people(message, envelope)
                return True
        self.books.needs_people(envelope)
        self.run.hold(message)
        return True

    def too_recent(self, envelope: Envelope) -> bool:
        """Failed less than min_age ago: Memory gets that long to recover before it is tried again."""
        min_age = self.run.options.min_age
        if min_age is None:
            return False
        if envelope.failure.stage == "profile_full":
            # Re-checked less often (no Memory call, two ledger writes and a re-park each), yet often
            # enough that a re-park keeps it younger than DeadLetterAgeAlarm's hour.
            min_age = max(min_age, PROFILE_FULL_RECHECK)
        failed_at = parse_time(envelope.last_failed_at or envelope.first_failed_at)
        return failed_at is not None and self.run.now() - failed_at < min_age

    def matches(self, envelope: Envelope) -> bool:
        options = self.run.options
        if options.kind != "all" and envelope.kind != options.kind:
            return False
        if options.profile_id and not self.same_customer(envelope, options.profile_id):
            return False
        if options.since:
            failed_at = parse_time(envelope.last_failed_at or envelope.first_failed_at)
            if failed_at is None or failed_at < options.since:
                return False
        return True

    def same_customer(self, envelope: Envelope, profile_id: str) -> bool:
        """Parked with that profile, or its author resolves to it now (unresolved, or since merged)."""
        if envelope.profile_id == profile_id:
            return True
        if envelope.identifier is None:
            return False
        return self.resolver.existing_profile(envelope.store_id, envelope.identifier) == profile_id
