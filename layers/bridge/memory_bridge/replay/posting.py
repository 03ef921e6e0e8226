"""Posting a profile's messages: up to ten observations a request, each claimed first, settled after.

One request's life: wait for the pacer → claim (books) → POST → on 202, record and delete (books);
a merged profile is followed once, a vanished one resolved again once, a 429 honoured and retried
slower; any other failure puts the request's messages back with the failure recorded.

Memory's limit per profile (issue 22, memory_bridge/room.py): before each request its observations are
reserved on the profile's count, the bridge's oldest deleted to make room (keep-latest), or the
messages put back with "profile full" (park); the reservation is given back when Memory refused cleanly.
"""

from __future__ import annotations

from typing import Literal

from memory_bridge.domain.envelope import Stage
from memory_bridge.domain.outcomes import Accepted, Failure, Moved, Outcome, Permanent, Retryable
from memory_bridge.ports import ReplayMemory
from memory_bridge.replay.books import Books
from memory_bridge.replay.context import RunContext
from memory_bridge.replay.packing import Request, pack
from memory_bridge.replay.pending import Pending
from memory_bridge.replay.resolving import Resolver
from memory_bridge.replay.slicing import HOLD_MARGIN_SECONDS
from memory_bridge.room import ProfileFull, Reserved, Room

Result = Literal["done", "failed", "stop"]


class Poster:
    def __init__(
        self,
        run: RunContext,
        memory: ReplayMemory,
        books: Books,
        resolver: Resolver,
        room: Room | None = None,
    ):
        self.run, self.memory, self.books, self.resolver, self.room = run, memory, books, resolver, room
        # The last answer a request ended on: what settles its reservation on the profile's count.
        self.last: Outcome = Accepted(202)

    def post_group(self, store_id: str, items: list[Pending]) -> None:
        """Post one profile's messages; what the run does not finish goes back untouched."""
        run = self.run
        for request in pack(items):
            if run.stopped:
                break
            if run.time_left() < 1.0:
                run.stop("time limit")
                break
            if min(i.hold_until for i in request.items) - run.clock() < HOLD_MARGIN_SECONDS:
                # The messages would become visible to others mid-request: let them go, whole,
                # and receive them again in a later slice.
                self.books.let_go(request.items)
                continue
            started = run.clock()
            claimed = self.books.claim(request)
            result = self.post_within_room(store_id, claimed) if claimed.items else "done"
            run.request_seconds += run.clock() - started
            run.timed_requests += 1
            run.progress(run.summary, sum(1 for i in items if i.parts))
            if result == "stop" or run.consecutive_failures >= run.options.max_consecutive_failures:
                run.stop(f"{run.consecutive_failures} consecutive failures")
                break
        self.books.leave(items)  # only those with parts left: the rest are done or back on the queue

    def post_within_room(self, store_id: str, request: Request) -> Result:
        """Reserve room on the profile (room.py), post, settle the reservation by the last answer."""
        profile_id = request.items[0].profile_id
        if self.room is None or profile_id is None:
            return self.post(store_id, request)
        counts = self.run.counts
        reserved = self.room.reserve(store_id, profile_id, len(request.observations), lambda: None)
        if not isinstance(reserved, Reserved):
            stage: Stage = "profile_full" if isinstance(reserved, ProfileFull) else "make_room"
            if stage == "profile_full":
                counts.profile_full += sum(1 for i in request.items if i.envelope.failure.stage != stage)
            return self._failed(request, reserved.failure, stage)
        counts.evicted += reserved.evicted
        counts.near_limit += int(reserved.near)
        result = self.post(store_id, request)
        moved_to = request.items[0].profile_id
        if moved_to is not None and moved_to != profile_id:
            self.room.moved(reserved, moved_to, self.last, lambda: None)
        else:
            self.room.settle(reserved, self.last, lambda: None)
        return result

    def post(self, store_id: str, request: Request) -> Result:
        profile_id = request.items[0].profile_id
        assert profile_id is not None
        followed = reresolved = False
        throttled = 0
        while True:
            self.run.pacer.wait()
            self.run.counts.requests += 1
            self.run.counts.posts += 1
            outcome = self.last = self.memory.create_observations(store_id, profile_id, request.observations)
            if isinstance(outcome, Accepted):
                self.run.pacer.succeeded()
                self.run.succeeded()
                self.books.accepted(request)
                return "done"
            if isinstance(outcome, Moved) and outcome.canonical_profile_id and not followed:
                followed, profile_id = True, self._move(request, outcome.canonical_profile_id)
                continue
            if _vanished(outcome) and not reresolved and request.items[0].envelope.identifier:
                # The profile is gone (deleted, or never existed in this store): resolve the author again.
                reresolved = True
                resolved = self.resolver.resolve_one(request.items[0], fresh=True)
                if isinstance(resolved, str):
                    profile_id = self._move(request, resolved)
                    continue
                outcome = resolved
            if isinstance(outcome, Retryable) and outcome.status == 429:
                throttled += 1
                self.run.pacer.slow_down(outcome.retry_after)
                fits = self._hold_outlasts(request)
                if fits and throttled < self.run.options.max_consecutive_failures:
                    continue  # honour Retry-After and try the same request again, slower
                # Waiting past the messages' hold would outlast their lease too: another run could
                # post them while this one waits. So leave them, untouched, and stop.
                self.run.stop(
                    f"Memory kept answering 429 ({throttled} times)"
                    if fits
                    else "Memory asked to wait (429 Retry-After) longer than the messages' hold"
                )
                self.books.release_leases(request)
                self.books.leave(request.items)
                return "stop"
            return self._failed(request, outcome)

    def _failed(self, request: Request, outcome: Outcome, stage: Stage = "post_observations") -> Result:
        failure: Failure = (
            outcome
            if isinstance(outcome, Retryable | Permanent)
            else Permanent(status=getattr(outcome, "status", 0), message="unexpected answer")
        )
        # Give up the lease either way; parts the request may have delivered stay unsure.
        self.books.release_leases(request, keep_unsure=isinstance(failure, Retryable) and failure.ambiguous)
        for item in request.items:
            self.books.put_back(item, stage, failure)
        if stage != "profile_full":  # a full profile says nothing of Memory's health: the run goes on
            self.run.failed_once()
        return "failed"

    def _hold_outlasts(self, request: Request) -> bool:
        """The messages' hold still has the margin left once the pacer's wait is over."""
        hold_left = min(i.hold_until for i in request.items) - self.run.clock()
        return hold_left - self.run.pacer.delay() >= HOLD_MARGIN_SECONDS

    @staticmethod
    def _move(request: Request, profile_id: str) -> str:
        for item in request.items:
            item.profile_id = profile_id
        return profile_id


def _vanished(outcome: Outcome) -> bool:
    return isinstance(outcome, Permanent) and outcome.status == 404 and outcome.code == 20404
