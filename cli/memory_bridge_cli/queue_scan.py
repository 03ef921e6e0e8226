"""Read the dead-letter queue without consuming it, and always finish. Pure: a queue and a clock come in.

SQS has no peek that leaves a message where it is. To read a message one must receive it, and a received
message is hidden from every other consumer, a running replay included, until it is released or its
visibility timeout (its "hold" here) runs out. A message whose hold runs out comes back, and SQS (moto
even more) tends to hand out the oldest visible messages first: a reader that waits for "nothing left"
while its own holds run out receives the same messages again and again, and never ends.

So every reader here is bounded. It stops at the first of:
  * it has as many distinct messages as it wants: a sample size, `-n`, `--max`, or the number of visible
    messages GetQueueAttributes reported at the start (SQS's approximate count);
  * a receive comes back empty and the queue reports nothing visible; or K receives in a row bring
    nothing new (K empty ones; or, once its own holds ran out, a whole round through what it holds);
  * a budget of receives (about three per ten messages wanted), or for a sample a time budget, is spent.
An empty queue costs one GetQueueAttributes and one receive that does not wait.

The short readers (the stats sample and peek) hold for a few seconds and release everything the moment
they are done. Export must hold what it has read until it ends (that is how it tells a new message from
one it has seen), so its hold is sized from the depth and the measured receive rate, and it releases
everything in batches at the end. Every reader releases on the way out, on an error or Ctrl-C too.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Protocol

from memory_bridge.domain.envelope import MalformedEnvelope, parse_envelope
from memory_bridge.ports import QueueDepth, QueuedMessage

MAX_BATCH = 10  # SQS returns at most ten messages per receive
MAX_HOLD = 43_200  # SQS's longest visibility timeout: 12 hours
STALE_RECEIVES = 3  # K: this many receives in a row with nothing new end a read
SAMPLE_SIZE = 1_000
SAMPLE_SECONDS = 10.0  # the stats sample stops after this long: it only describes the queue
RELEASE_CHUNK = 100  # messages per release call (the queue splits them into batches of ten)
# Seconds per receive assumed until a few have been measured: SQS from an operator's laptop, pessimistic.
INITIAL_RECEIVE_SECONDS = 0.1
MEASURED_AFTER = 3  # receives


class ScanQueue(Protocol):
    """What the readers need of the queue (DeadLetterQueue has it)."""

    def receive(
        self, max_messages: int, visibility_timeout: int, wait_seconds: int = 0
    ) -> list[QueuedMessage]: ...

    def release(self, messages: list[QueuedMessage]) -> None: ...

    def depth(self) -> QueueDepth: ...


Clock = Callable[[], float]


@dataclass(frozen=True)
class HoldPolicy:
    """How long each receive hides what it reads: long enough to cover the rest of the read, estimated
    from what is left and the seconds per receive measured so far, times `safety`, plus `margin`;
    never under `floor` nor over `ceiling` seconds."""

    floor: int
    ceiling: int
    safety: float
    margin: float

    def seconds(self, receives_left: int, seconds_per_receive: float, boost: int = 1) -> int:
        """`boost` multiplies the whole estimate: it grows when holds turned out too short, which a
        wrong rate alone (a slowdown, a throttled link) could otherwise keep short."""
        estimate = boost * (self.safety * receives_left * seconds_per_receive + self.margin)
        return int(min(self.ceiling, max(self.floor, math.ceil(estimate))))


# A few seconds: a running replay waits no longer than that for what stats or peek looked at.
SHORT_HOLD = HoldPolicy(floor=5, ceiling=15, safety=1.5, margin=2)
# Until the end of the export: whatever it has read must not come back while it reads the rest.
EXPORT_HOLD = HoldPolicy(floor=30, ceiling=MAX_HOLD, safety=2.0, margin=30)


@dataclass
class ScanReport:
    """What a read did; `depth` is SQS's approximate count at the start."""

    depth: QueueDepth
    limit: int | None
    wanted: int  # how many distinct messages it set out to read
    phase: str = "read"  # "read", then "release"
    read: int = 0  # distinct messages
    receives: int = 0
    repeats: int = 0  # messages received again because a hold ran out
    stopped: str = ""
    seconds: float = 0.0
    longest_hold: int = 0
    released: int = 0
    release_failed: int = 0

    @property
    def complete(self) -> bool:
        """It read everything it set out to read (the depth being approximate, this is too)."""
        return self.read >= self.wanted

    @property
    def rate(self) -> float:
        return self.read / self.seconds if self.seconds > 0 else 0.0


Progress = Callable[[ScanReport], None]


def _slim(message: QueuedMessage) -> QueuedMessage:
    """What a release needs (the id and the newest receipt handle), without the body."""
    return replace(message, body="", attributes={})


def scan(
    queue: ScanQueue,
    on_message: Callable[[QueuedMessage], None],
    *,
    limit: int | None,
    hold: HoldPolicy,
    clock: Clock,
    time_budget: float | None = None,
    progress: Progress | None = None,
    progress_every: float = 5.0,
    stale_receives: int = STALE_RECEIVES,
) -> ScanReport:
    """Receive distinct messages, hand each to `on_message` once, as it arrives; release them all.

    Stops as the module docstring says. Keeps only slim copies (id and receipt handle) itself.
    """
    reader = _Reader(
        queue, on_message, limit, hold, clock, time_budget, progress, progress_every, stale_receives
    )
    try:
        reader.read()
    finally:
        reader.release()
    return reader.report


class _Reader:
    def __init__(
        self,
        queue: ScanQueue,
        on_message: Callable[[QueuedMessage], None],
        limit: int | None,
        hold: HoldPolicy,
        clock: Clock,
        time_budget: float | None,
        progress: Progress | None,
        progress_every: float,
        stale_receives: int,
    ):
        self.queue, self.on_message, self.hold, self.clock = queue, on_message, hold, clock
        self.time_budget, self.progress, self.progress_every = time_budget, progress, progress_every
        self.stale_receives, self.limit = stale_receives, limit
        self.started = clock()
        depth = queue.depth()
        self.report = ScanReport(depth=depth, limit=limit, wanted=self._cap(depth.visible))
        self.held: dict[str, QueuedMessage] = {}
        self.last_progress = self.started
        self.boost = 1  # doubles each time its holds turn out too short
        # Receives in a row that brought nothing, or only messages it had read; the next receive's wait.
        self.empty_streak = self.repeat_streak = 0
        self.wait = 0

    def _cap(self, count: int) -> int:
        return count if self.limit is None else min(self.limit, count)

    def _room(self) -> int:
        """How many more it may read."""
        report = self.report
        if report.wanted:
            return report.wanted - report.read
        return MAX_BATCH if self.limit is None else self.limit - report.read

    def _elapsed(self) -> float:
        return self.clock() - self.started

    def _hold_seconds(self, left: int) -> int:
        report = self.report
        # Seconds per receive so far, the time to write what was read included; a guess before that.
        measured = report.receives >= MEASURED_AFTER
        per_receive = self._elapsed() / report.receives if measured else INITIAL_RECEIVE_SECONDS
        seconds = self.hold.seconds(math.ceil(left / MAX_BATCH), per_receive, self.boost)
        report.longest_hold = max(report.longest_hold, seconds)
        return seconds

    def _tick(self) -> None:
        if self.progress is not None and self.clock() - self.last_progress >= self.progress_every:
            self.last_progress = self.clock()
            self.report.seconds = self._elapsed()
            self.progress(self.report)

    def read(self) -> None:
        """Receive until one of the stop rules holds; `report.stopped` says which."""
        self.empty_streak = self.repeat_streak = 0
        self.wait = 0
        while True:
            stopped = self._stop_before_receive()
            if stopped is None:
                stopped = self._receive_once()
            if stopped is not None:
                self.report.stopped = stopped
                return

    def _stop_before_receive(self) -> str | None:
        """Why it must not receive again (enough read, a budget spent), or None."""
        report = self.report
        # Before the first receive, wanted 0 means the queue reported itself empty: one receive
        # that does not wait checks that (the count is approximate and may lag).
        if report.receives and self._room() <= 0:
            asked = self.limit is not None and report.read >= self.limit
            return "read as many as asked" if asked else "read all waiting"
        # While the count says 0 but receives find messages, the budget grows with what they find.
        budget = _receive_budget(report.wanted or report.read + MAX_BATCH)
        if report.receives >= budget:
            return f"receive budget spent ({budget} receives)"
        if self.time_budget is not None and self._elapsed() >= self.time_budget:
            return f"time budget spent ({self.time_budget:g} s)"
        return None

    def _receive_once(self) -> str | None:
        """One receive: hand over what is new, then say why to stop, or None to go on."""
        report = self.report
        left = self._room()
        batch = self.queue.receive(min(MAX_BATCH, left), self._hold_seconds(left), self.wait)
        report.receives += 1
        fresh = [m for m in batch if m.message_id not in self.held]
        report.repeats += len(batch) - len(fresh)
        # All of the batch first, so that it is released even if handing one over fails; a release
        # needs the newest receipt handle.
        self.held.update((m.message_id, _slim(m)) for m in batch)
        new = self._hand_over(fresh)
        self._tick()
        if new:
            self._found_new()
            return None
        if batch:  # only messages it had read: their holds ran out, so hold longer from now on
            return self._found_only_repeats()
        return self._found_nothing()

    def _hand_over(self, fresh: list[QueuedMessage]) -> int:
        """Give `on_message` the fresh messages it still has room for; how many it gave."""
        new = 0
        for message in fresh:
            if self._room() > 0:
                new += 1
                self.report.read += 1
                self.on_message(message)
        return new

    def _found_new(self) -> None:
        report = self.report
        self.empty_streak = self.repeat_streak = 0
        self.wait = 0
        if report.wanted == 0:  # the queue said empty, but was not: ask again how many wait
            visible = self.queue.depth().visible
            report.wanted = self._cap(report.read + visible) if visible else 0

    def _found_only_repeats(self) -> str | None:
        self.repeat_streak += 1
        if self.repeat_streak == 1:
            self.boost = min(self.boost * 2, 64)
        if self.repeat_streak >= self.stale_receives + math.ceil(len(self.held) / MAX_BATCH):
            return "went round everything it holds without finding a new message"
        return None

    def _found_nothing(self) -> str | None:
        self.empty_streak += 1
        if self.report.wanted == 0 or self.queue.depth().visible == 0:
            return "queue empty" if not self.held else "nothing visible left"
        if self.empty_streak >= self.stale_receives:
            return f"{self.stale_receives} receives in a row brought nothing new"
        self.wait = 1  # a long poll asks every SQS server, where a short one asks a sample of them
        return None

    def release(self) -> None:
        report = self.report
        report.seconds = self._elapsed()
        report.phase = "release"
        _release(self.queue, self.held, report, self.clock, self.progress, self.progress_every)
        report.seconds = self._elapsed()


def _receive_budget(wanted: int) -> int:
    """Enough for every message to come back once more, plus the stop rules' own receives."""
    return 3 * math.ceil(max(wanted, 1) / MAX_BATCH) + 4 * STALE_RECEIVES


def _release(
    queue: ScanQueue,
    held: dict[str, QueuedMessage],
    report: ScanReport,
    clock: Clock,
    progress: Progress | None,
    progress_every: float,
) -> None:
    """Make everything it read visible again, the longest-held first. A release that fails is counted,
    not raised: those messages come back by themselves when their hold runs out."""
    messages = list(held.values())
    last_progress = clock()
    for start in range(0, len(messages), RELEASE_CHUNK):
        chunk = messages[start : start + RELEASE_CHUNK]
        try:
            queue.release(chunk)
        except Exception:  # noqa: BLE001 - reported in the summary; the holds run out by themselves
            report.release_failed += len(chunk)
        else:
            report.released += len(chunk)
        if progress is not None and clock() - last_progress >= progress_every:
            last_progress = clock()
            progress(report)


# ---- the three readers ---------------------------------------------------------------------------


@dataclass
class Breakdown:
    """Counts over the messages sampled."""

    count: int = 0
    kinds: Counter[str] = field(default_factory=Counter)
    statuses: Counter[str] = field(default_factory=Counter)
    codes: Counter[str] = field(default_factory=Counter)
    # What the scheduled replay leaves for people: permanent failures (fix the cause first, then
    # --kind permanent), malformed messages (never replayed), and retryable ones it gave up on after
    # its automatic attempts (marked in the envelope). Retryable ones still being retried are not here.
    attention: Counter[str] = field(default_factory=Counter)
    attention_messages: int = 0
    oldest_sent_at: float | None = None

    def add(self, message: QueuedMessage) -> None:
        self.count += 1
        if message.sent_at and (self.oldest_sent_at is None or message.sent_at < self.oldest_sent_at):
            self.oldest_sent_at = message.sent_at
        reasons = []
        try:
            envelope = parse_envelope(message.body)
        except MalformedEnvelope:
            self.kinds["malformed"] += 1
            reasons.append("malformed")
        else:
            self.kinds[envelope.kind] += 1
            self.statuses[str(envelope.failure.status or "no-response")] += 1
            if envelope.failure.code is not None:
                self.codes[str(envelope.failure.code)] += 1
            if envelope.kind == "permanent":
                reasons.append("permanent")
            if envelope.needs_attention:
                reasons.append("leftForPeople")
        if reasons:
            self.attention_messages += 1
            self.attention.update(reasons)


def sample(
    queue: ScanQueue,
    size: int = SAMPLE_SIZE,
    *,
    clock: Clock,
    time_budget: float | None = SAMPLE_SECONDS,
) -> tuple[Breakdown, ScanReport]:
    """`dlq stats`: the breakdown of at most `size` messages, read with a short hold and released."""
    breakdown = Breakdown()
    report = scan(queue, breakdown.add, limit=size, hold=SHORT_HOLD, clock=clock, time_budget=time_budget)
    return breakdown, report


def peek(queue: ScanQueue, n: int, *, clock: Clock) -> tuple[list[QueuedMessage], ScanReport]:
    """`dlq peek -n N`: at most `n` distinct messages, oldest first, read with a short hold and released."""
    found: list[QueuedMessage] = []
    report = scan(queue, found.append, limit=n, hold=SHORT_HOLD, clock=clock)
    return sorted(found, key=lambda m: m.sent_at), report


def export(
    queue: ScanQueue,
    write: Callable[[QueuedMessage], None],
    *,
    limit: int | None = None,
    clock: Clock,
    progress: Progress | None = None,
    progress_every: float = 5.0,
) -> ScanReport:
    """`dlq export`: every waiting message (or `limit`), each handed to `write` as it is read.

    What it has read stays hidden until it ends (see the module docstring), then is released.
    """
    return scan(
        queue,
        write,
        limit=limit,
        hold=EXPORT_HOLD,
        clock=clock,
        progress=progress,
        progress_every=progress_every,
    )


# ---- words for the command line ------------------------------------------------------------------


def sample_note(report: ScanReport) -> str:
    """ "sampled N of ≈M waiting", or that it read them all; with the reason when it stopped short."""
    waiting = report.depth.visible
    if report.read == 0 and waiting == 0:
        return "nothing waiting"
    if report.read >= waiting:
        return f"read all {report.read} waiting"
    note = f"sampled {report.read} of ≈{waiting} waiting"
    if report.limit is None or report.read < report.limit:
        note += f" (stopped: {report.stopped})"
    return note


def release_warning(report: ScanReport) -> str | None:
    if not report.release_failed:
        return None
    return (
        f"warning: {report.release_failed} message(s) could not be put back at once; they become "
        f"visible again by themselves within {report.longest_hold} s"
    )
