"""Replay parked messages from the dead-letter queue: nothing lost, nothing posted twice.

A run works in slices sized to finish inside the messages' hold (slicing.py). For each slice it:
  1. receives the envelopes the options select (intake.py);
  2. reads their ledger records in one batched call and sorts each envelope's parts (pending.py):
     parts Memory holds are dropped (a message with nothing left is deleted: "already posted"),
     parts that may be in Memory are looked for first (check.py), the rest are to post;
  3. classifies who spoke where the webhook could not (classify.py), and resolves the customers'
     profiles it could not (resolving.py);
  4. posts each profile's messages, at most ten observations a request (packing.py, posting.py),
     each request claimed in the ledger before and settled after, and a message deleted only
     once the ledger holds all of it (books.py).
A crash at any point leaves either the message on the queue with its parts unsure (the next run
checks), or the parts accepted (the next run deletes). Malformed and filtered-out messages are
reported and left in place. The run never holds a message past its visibility timeout, never sleeps
past its time limit, and paces itself (pacer.py). The dry run (plan.py) receives, reads the
ledger and counts, and changes nothing.

The same engine serves `memory-bridge dlq replay` and the ReplayFunction, built for both by
memory_bridge.runtime.build_replay_engine.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from types import TracebackType

from memory_bridge.config import DEFAULT_OBSERVATION_SOURCE
from memory_bridge.domain.redaction import KINDS
from memory_bridge.ports import (
    ChangeReplayer,
    Clock,
    LedgerUnavailable,
    ReplayLedger,
    ReplayMemory,
    ReplayQueue,
    Sleep,
)
from memory_bridge.profiles import ProfileCache
from memory_bridge.replay.books import Books
from memory_bridge.replay.check import MemoryCheck
from memory_bridge.replay.classify import Classifier
from memory_bridge.replay.context import Progress, RunContext
from memory_bridge.replay.intake import Intake
from memory_bridge.replay.options import ReplayOptions
from memory_bridge.replay.pacer import OutOfTime
from memory_bridge.replay.pending import Pending, sort_parts
from memory_bridge.replay.plan import more_than_one_slice, plan
from memory_bridge.replay.posting import Poster
from memory_bridge.replay.resolving import Resolver
from memory_bridge.replay.slicing import MAX_SLICE, SliceBudget
from memory_bridge.replay.summary import ReplaySummary
from memory_bridge.room import Room
from memory_bridge.speaking import Speakers

# The time one parked edit or removal gets (a Lookup, a List page, a PATCH or DELETE per part).
CHANGE_SECONDS = 20.0


class ReplayEngine:
    """The ports a replay needs, and the clocks; `run` makes one Run per call."""

    def __init__(
        self,
        queue: ReplayQueue,
        memory: ReplayMemory,
        *,
        ledger: ReplayLedger,
        target_store: str | None = None,
        profiles: ProfileCache | None = None,
        clock: Clock = time.monotonic,
        wall_clock: Clock = time.time,
        sleep: Sleep = time.sleep,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        progress: Progress | None = None,
        max_slice: int = MAX_SLICE,
        redaction_kinds: Iterable[str] = KINDS,
        speakers: Speakers | None = None,
        source: str = DEFAULT_OBSERVATION_SOURCE,
        room: Room | None = None,
        changes: ChangeReplayer | None = None,
    ):
        self.queue, self.memory, self.ledger = queue, memory, ledger
        self.target_store = target_store
        self.profiles = profiles or ProfileCache(ttl=3600)
        self.clock, self.wall_clock, self.sleep, self.now = clock, wall_clock, sleep, now
        self.progress: Progress = progress or (lambda _summary, _remaining: None)
        self.max_slice = max_slice
        self.redaction_kinds = frozenset(redaction_kinds)
        # Who spoke, for envelopes parked before it was known (classify.py); `source` is the
        # functions' OBSERVATION_SOURCE, which agents' and the brand's sources extend.
        self.speakers, self.source = speakers, source
        self.room = room  # Memory's limit per profile (memory_bridge/room.py); None: no limit
        self.changes = changes  # parked edits and removals (webhook/changes.py); None: left queued

    def run(self, options: ReplayOptions) -> ReplaySummary:
        with Run(self, options) as run:
            run.go()
        return run.summary


class Run:
    """One replay run. Entering builds its steps; leaving releases what it still holds, however
    the run ended (as Powertools' BasePartialProcessor cleans up in __exit__)."""

    def __init__(self, engine: ReplayEngine, options: ReplayOptions):
        self.engine = engine
        self.context = run = RunContext(
            options,
            clock=engine.clock,
            wall_clock=engine.wall_clock,
            sleep=engine.sleep,
            now=engine.now,
            profiles=engine.profiles,
            redaction_kinds=engine.redaction_kinds,
            target_store=engine.target_store,
            progress=engine.progress,
        )
        self.books = Books(run, engine.queue, engine.ledger)
        self.resolver = Resolver(run, engine.memory)
        self.classifier = Classifier(run, engine.speakers, self.books, engine.source)
        self.intake = Intake(run, engine.queue, self.books, self.resolver)
        self.check = MemoryCheck(run, engine.memory, self.books)
        self.poster = Poster(run, engine.memory, self.books, self.resolver, engine.room)
        self.slice_items: list[Pending] = []  # the slice in progress

    @property
    def summary(self) -> ReplaySummary:
        return self.context.summary

    def __enter__(self) -> Run:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.summary.reached_end = self.intake.queue_empty
        left = self.context.changes_left
        if left:
            reasons = "; ".join(f"{why} ({count})" for why, count in left.most_common(5))
            self.summary.notes.append(
                f"{sum(left.values())} parked edit(s)/removal(s) not finished: {reasons}"
            )
        self.books.release_held()
        self.summary.seconds = self.context.clock() - self.context.started

    def go(self) -> None:
        try:
            if self.context.options.dry_run:
                self.dry_run()
            else:
                self.replay()
        except OutOfTime:
            self.context.stop("time limit")
            # What the slice still carries goes back untouched (and is counted as left).
            self.books.leave(self.slice_items)

    def dry_run(self) -> None:
        run = self.context
        pending = self.intake.collect(run.options.max_messages)
        try:
            records = self.books.read(pending)
        except LedgerUnavailable as error:
            run.summary.notes.append(f"ledger not read ({error}); counts assume nothing was posted")
            records = {}
        run.summary.plan, twins = plan(pending, records)
        note = more_than_one_slice(run, run.summary.plan)
        if note:
            run.summary.notes.append(note)
        if twins:
            run.summary.notes.append(f"{twins} copy(ies) of a message already counted: deleted, not posted")
        run.held.extend(p.message for p in pending)

    def replay(self) -> None:
        run, taken = self.context, 0
        max_messages = run.options.max_messages
        while not run.stopped and not self.intake.scan_limit_reached:
            if self.intake.queue_empty:
                if not run.returned:
                    break
                self.intake.queue_empty = False  # what this run let go is visible again
            limit = (
                self.engine.max_slice
                if max_messages is None
                else min(self.engine.max_slice, max_messages - taken)
            )
            if limit <= 0:
                break
            batch = self.slice_items = self.intake.collect(limit, SliceBudget(run, limit))
            taken += len(batch)
            if not batch:
                break
            run.counts.slices += 1
            done_before = self._finished()
            self.replay_slice(batch)
            if self._finished() == done_before and run.returned:
                # Not one request fitted in the messages' hold: another slice would do the same.
                run.stop("the hold ran out before any request; raise the visibility timeout or lower --rate")

    def finish_changes(self, items: list[Pending]) -> None:
        """Parked edits and removals: the webhook's own flow runs them again (webhook/changes.py)."""
        run, changes = self.context, self.engine.changes
        for item in items:
            seconds = min(CHANGE_SECONDS, max(run.time_left() - 1.0, 0.0))
            why = "no time left" if run.stopped or seconds <= 1.0 else "no change replayer"
            if changes is not None and why == "no change replayer":
                why = changes.finish(item.envelope, run.owner, seconds) or ""
                if not why:
                    self.books.delete([item], changed=True)
                    continue
            run.counts.left += 1  # Memory still failing (or no time): a later run tries again
            run.changes_left[why] += 1
            run.hold(item.message)

    def _finished(self) -> int:
        counts = self.context.counts
        return (
            counts.replayed
            + counts.already_posted
            + counts.removed
            + counts.changes
            + counts.failed
            + counts.observations_posted
        )

    def replay_slice(self, items: list[Pending]) -> None:
        # Twins (one MessageSid on the queue twice) go in later rounds, after the ledger knows more.
        rounds: list[list[Pending]] = []
        copies: Counter[str] = Counter()
        for item in items:
            seen = copies[item.message_sid]
            copies[item.message_sid] += 1
            if len(rounds) <= seen:
                rounds.append([])
            rounds[seen].append(item)
        for index, round_items in enumerate(rounds):
            if self.context.stopped:
                for later in rounds[index:]:
                    self.books.leave(later)
                return
            self.replay_round(round_items)

    def replay_round(self, items: list[Pending]) -> None:
        run = self.context
        try:
            records = self.books.read(items)
        except LedgerUnavailable as error:
            run.stop(f"ledger unavailable ({error})")
            self.books.leave(items)
            return
        live: list[Pending] = []
        done: list[Pending] = []
        removed: list[Pending] = []
        now = run.wall_clock()
        for item in (i for i in items if i.envelope.change is None):
            record = records.get(item.message_sid)
            if record is not None and record.leased_to_another(run.owner, now):
                run.counts.busy += 1
                run.hold(item.message)
                continue
            sort_parts(item, record)
            # Removed in Twilio since it was parked: the tombstone drops this copy (issue 22).
            (live if item.parts else removed if record and record.removed else done).append(item)
        self.books.delete(done, already_posted=True)
        self.books.delete(removed, removed=True)
        live = self.classifier.classify_all(live)
        self.resolver.resolve_all(live, self.books)
        groups: dict[tuple[str, str], list[Pending]] = {}
        for item in live:
            if item.profile_id is not None and item.parts:
                groups.setdefault((item.envelope.store_id, item.profile_id), []).append(item)
        for (store_id, profile_id), group in groups.items():
            if run.stopped:
                self.books.leave(group)
                continue
            fresh = self.check.drop_already_posted(store_id, profile_id, group)
            self.poster.post_group(store_id, fresh)
        # Edits and removals last: an add of the same message in this round has settled its doubt.
        self.finish_changes([i for i in items if i.envelope.change is not None])
