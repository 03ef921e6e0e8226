"""What one replay run's steps share: its options, summary, clocks, pacer and the messages it holds."""

from __future__ import annotations

import math
import uuid
from collections import Counter
from collections.abc import Callable
from datetime import datetime

from memory_bridge.ports import Clock, QueuedMessage, Sleep
from memory_bridge.profiles import ProfileCache
from memory_bridge.replay.options import ReplayOptions
from memory_bridge.replay.pacer import Pacer
from memory_bridge.replay.summary import ReplayCounts, ReplaySummary

Progress = Callable[[ReplaySummary, int], None]


class RunContext:
    """One run's shared state. Each step (intake, check, posting, books) reads and updates it."""

    def __init__(
        self,
        options: ReplayOptions,
        *,
        clock: Clock,
        wall_clock: Clock,
        sleep: Sleep,
        now: Callable[[], datetime],
        profiles: ProfileCache,
        redaction_kinds: frozenset[str],
        target_store: str | None,
        progress: Progress,
    ):
        self.options = options
        self.summary = ReplaySummary(options)
        self.clock, self.wall_clock, self.now = clock, wall_clock, now
        self.profiles = profiles
        self.redaction_kinds = redaction_kinds
        self.target = options.store_id or target_store
        self.progress = progress
        self.started = clock()
        self.owner = f"replay-{uuid.uuid4().hex[:12]}"
        self.pacer = Pacer(options.rate, clock, sleep, self.time_left)
        self.held: list[QueuedMessage] = []  # released at the end: filtered, malformed, dry-run
        self.changes_left: Counter[str] = Counter()  # parked edits and removals not finished, by why
        # Let go mid-run, whole, because their hold ran short: a later slice may receive them again.
        self.returned: set[str] = set()
        # Received and not deleted yet: one that comes back after a release is not counted twice. A
        # deleted one leaves it, so that what a run keeps does not grow with the queue (or a history).
        self.seen: set[str] = set()
        self.consecutive_failures = 0
        # Wall time the posting step spent per request so far (claims, posts, settles, deletes):
        # how long the next slice's requests will take.
        self.request_seconds = 0.0
        self.timed_requests = 0

    @property
    def counts(self) -> ReplayCounts:
        return self.summary.counts

    @property
    def stopped(self) -> str | None:
        return self.summary.stopped

    def stop(self, reason: str) -> None:
        """Stop the run (the first reason stands)."""
        self.summary.stopped = self.summary.stopped or reason

    def time_left(self) -> float:
        if self.options.time_limit is None:
            return math.inf
        return self.options.time_limit - (self.clock() - self.started)

    def hold(self, message: QueuedMessage) -> None:
        """Leave a message untouched: it is released at the end of the run."""
        self.held.append(message)

    def failed_once(self) -> None:
        self.consecutive_failures += 1
        if self.consecutive_failures >= self.options.max_consecutive_failures:
            self.stop(f"{self.consecutive_failures} consecutive failures")

    def succeeded(self) -> None:
        self.consecutive_failures = 0
