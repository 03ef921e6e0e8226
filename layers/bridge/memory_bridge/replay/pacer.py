"""Pacing Memory requests: at or under the run's rate, slower after a 429, never past the time limit."""

from __future__ import annotations

import math
from collections.abc import Callable

# The pacer never waits longer than this between requests, however many 429s it saw.
MAX_INTERVAL_SECONDS = 5.0


class OutOfTime(Exception):
    """The run's time limit (or the messages' hold) would pass during the next wait or call."""


class Pacer:
    """Keeps requests at or under `rate` per second; slows down after a 429, recovers after successes.

    Never sleeps past `limit()` seconds from now: a wait that would is refused with OutOfTime.
    """

    def __init__(
        self,
        rate: float | None,
        clock: Callable[[], float],
        sleep: Callable[[float], None],
        limit: Callable[[], float] = lambda: math.inf,
    ):
        self.base_interval = 1.0 / rate if rate else 0.0
        self.interval = self.base_interval
        self._clock, self._sleep, self._limit = clock, sleep, limit
        self._next = clock()

    def wait(self) -> None:
        delay = self._next - self._clock()
        if delay > 0:
            if delay > self._limit():
                raise OutOfTime
            self._sleep(delay)
        self._next = max(self._clock(), self._next) + self.interval

    def delay(self) -> float:
        """Seconds the next wait() will sleep."""
        return max(self._next - self._clock(), 0.0)

    def slow_down(self, retry_after: float | None) -> None:
        # Never faster than the rate asked for, however long its own interval is.
        self.interval = min(max(self.interval * 2, 0.1), max(MAX_INTERVAL_SECONDS, self.base_interval))
        if retry_after:
            self._next = max(self._next, self._clock() + retry_after)

    def succeeded(self) -> None:
        """One success halves the extra spacing that 429s added."""
        self.interval = max(self.base_interval, (self.interval + self.base_interval) / 2)
        if self.interval - self.base_interval < 0.01:
            self.interval = self.base_interval
