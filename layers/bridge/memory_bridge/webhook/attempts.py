"""The webhook's calls to Memory: each with a deadline from the time left, at most one retry in all."""

from __future__ import annotations

from collections.abc import Callable

from memory_bridge.deadlines import Deadline
from memory_bridge.domain.outcomes import Outcome, Retryable

# Seconds kept back for writing the envelope to the queue if the post fails, and for the ledger's
# closing write: Memory calls get what is left.
PARK_RESERVE_SECONDS = 0.6
SETTLE_RESERVE_SECONDS = 0.3
RESERVE_SECONDS = PARK_RESERVE_SECONDS + SETTLE_RESERVE_SECONDS
# A call is not started with less than this left: park instead of risking Twilio's timeout.
MIN_CALL_SECONDS = 0.25
# Backoff before the single retry when the answer carried no Retry-After.
DEFAULT_BACKOFF_SECONDS = 0.2


class Attempts:
    """Calls with a deadline and at most one retry for the whole webhook."""

    def __init__(self, deadline: Deadline, sleep: Callable[[float], None]):
        self._deadline = deadline
        self._sleep = sleep
        self.retries_left = 1
        self.calls = 0

    def call_timeout(self) -> float | None:
        return max(self._deadline.remaining() - RESERVE_SECONDS, MIN_CALL_SECONDS)

    def has_time(self) -> bool:
        return self._deadline.remaining() - RESERVE_SECONDS >= MIN_CALL_SECONDS

    def run(self, call: Callable[[], Outcome | str]) -> Outcome | str:
        if not self.has_time():
            return Retryable(status=None, message="webhook time budget exhausted before the call")
        self.calls += 1
        outcome = call()
        if not isinstance(outcome, Retryable) or outcome.ambiguous or self.retries_left == 0:
            return outcome
        wait = outcome.retry_after if outcome.retry_after is not None else DEFAULT_BACKOFF_SECONDS
        if wait + MIN_CALL_SECONDS > self._deadline.remaining() - RESERVE_SECONDS:
            return outcome  # the retry would not fit: park now, replay later
        self.retries_left -= 1
        self._sleep(wait)
        self.calls += 1
        return call()
