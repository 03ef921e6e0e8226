"""How many messages one slice of a replay receives: as many as the run can finish inside their hold.

A replay groups each profile's messages into requests of up to ten observations, but only among the
messages it holds at once. A fixed slice of 1,000 over 1,000 profiles held one message per profile,
and so cost one request per message. The slice is sized instead from:
  - the hold: every message received must be posted (or let go) before its visibility timeout,
    less HOLD_MARGIN_SECONDS, and before the run's own time limit;
  - the rate: the requests the slice will need, counted as it grows (a profile's observations
    need ceil(n / 10) posts, an unresolved author one Lookup more), take 1/rate seconds each, or
    what a request took so far in this run (claim, post, settle, delete), if that is longer;
  - the receive speed: the time spent receiving comes out of the same hold.
Receiving stops when the work held would fill the hold, or at `max_slice` messages (memory, and
SQS's 120,000 in-flight limit), whichever comes first. A message whose hold runs short anyway
(Memory slowed down) is let go whole before its request starts, and received again later.
"""

from __future__ import annotations

import math
from collections.abc import Hashable

from memory_bridge.domain.observations import MAX_OBSERVATIONS_PER_REQUEST
from memory_bridge.replay.context import RunContext
from memory_bridge.replay.pending import Pending

# A request is started only with this much of the messages' hold left: its own time and the delete.
HOLD_MARGIN_SECONDS = 30.0
# Until this run has timed its own requests: a Memory POST plus two ledger writes and a delete.
ASSUMED_REQUEST_SECONDS = 0.25
# The most messages one slice holds (~3 KB each in memory; SQS allows 120,000 in flight).
MAX_SLICE = 25_000
# Requests timed before their average replaces the assumption.
TIMED_REQUESTS_TRUSTED = 5


class SliceBudget:
    """The work a slice holds so far, in requests, and whether one more receive still fits."""

    def __init__(self, run: RunContext, limit: int):
        self.run = run
        self.limit = limit  # the most messages this slice may hold
        self.messages = 0
        self.requests = 0
        self.first_hold_until: float | None = None
        self._observations: dict[Hashable, int] = {}
        per_request = ASSUMED_REQUEST_SECONDS
        if run.timed_requests >= TIMED_REQUESTS_TRUSTED:
            per_request = run.request_seconds / run.timed_requests
        if run.options.rate:
            per_request = max(per_request, 1.0 / run.options.rate)
        self.seconds_per_request = per_request

    def add(self, item: Pending) -> None:
        """Count the requests one more message adds to its profile's (or author's) group."""
        self.messages += 1
        if self.first_hold_until is None:
            self.first_hold_until = item.hold_until
        envelope = item.envelope
        key: Hashable = (envelope.store_id, item.profile_id or envelope.identifier or envelope.message_sid)
        before = self._observations.get(key)
        after = (before or 0) + len(item.parts)
        self._observations[key] = after
        if before is None and item.profile_id is None:
            self.requests += 1  # the Lookup that resolves the author
        self.requests += _posts(after) - _posts(before or 0)

    def wants(self) -> int:
        """How many more messages to receive (0: the slice is full)."""
        room = self.limit - self.messages
        if room <= 0:
            return 0
        if self.first_hold_until is None:
            return room
        run = self.run
        work = self.requests * self.seconds_per_request
        hold_left = self.first_hold_until - run.clock() - HOLD_MARGIN_SECONDS
        if work >= hold_left or work >= run.time_left():
            return 0
        return room


def _posts(observations: int) -> int:
    return math.ceil(observations / MAX_OBSERVATIONS_PER_REQUEST)
