"""Room on a profile before a post (issue 22, Memory's 500 limit), for the webhook and the replay alike.

  reserve   one UpdateItem `ADD count :n` on the profile's count (ports.ProfileCounter) → the new count
            within the limit                → Reserved: post
            past it, policy park            → give the reservation back → ProfileFull (parked, "profile full")
            past it, policy keep-latest     → List Observations oldest first, keep the bridge's own
                                              (its three sources), DELETE exactly the overflow (a 520003
                                              "not found" is done), ADD -deleted → Reserved: post
            making room did not finish      → give back the reservation and what was deleted → NoRoom
                                              (429/5xx/timeout: parked retryable, stage make_room; never
                                              posted past the limit)
  settle    after the post: Memory refused it cleanly → give the reservation back; accepted or in
            doubt (a timeout) → keep it (counting high is the safe side)

The count is only the bridge's: another writer's observations on the profile are neither counted nor
deleted, so PROFILE_OBSERVATION_LIMIT must be set lower when others write to the same profiles.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from memory_bridge.domain.outcomes import Accepted, Failure, Outcome, Permanent, Retryable, observation_gone
from memory_bridge.domain.profile_limit import PROFILE_FULL, ProfileLimit
from memory_bridge.ports import LedgerUnavailable, ObservationEditor, ProfileCounter

# List Observations pages (50 each) looked through for the oldest: the whole of a 500-limit profile.
MAX_PAGES = 10
PAGE_SIZE = 50


@dataclass(frozen=True)
class Reserved:
    profile_id: str
    count: int  # observations reserved (0: no limit, nothing to settle)
    evicted: int = 0  # the bridge's oldest deleted to make room
    near: bool = False  # the count is at 90 % of the limit or more


@dataclass(frozen=True)
class ProfileFull:
    """Policy park, and the profile has no room: nothing posted, the reservation given back."""

    failure: Retryable


@dataclass(frozen=True)
class NoRoom:
    """Making room did not finish (the count could not be written, or Memory would not list or delete)."""

    failure: Failure


RoomResult = Reserved | ProfileFull | NoRoom
# What post_within counts, for the webhook's metrics (the replay reports the same names).
ROOM_METRICS = ("ObservationsEvicted", "ProfileNearLimit", "ProfilesFull")
Timeout = Callable[[], float | None]  # seconds for the next call (Memory's; the count's at most 0.5)
# The count's UpdateItem waits at most this long, like the webhook's claim (DynamoDB answers in ms).
COUNT_TIMEOUT_SECONDS = 0.5


class Room:
    def __init__(
        self,
        limit: ProfileLimit,
        counter: ProfileCounter | None,
        editor: ObservationEditor | None,
        sources: frozenset[str],
    ):
        self.limit, self.counter, self.editor, self.sources = limit, counter, editor, sources

    @property
    def on(self) -> bool:
        return self.limit.on and self.counter is not None

    def reserve(self, store_id: str, profile_id: str, adding: int, timeout: Timeout) -> RoomResult:
        if not self.on or adding <= 0:
            return Reserved(profile_id, 0)
        assert self.counter is not None
        try:
            count = self.counter.add_observations(profile_id, adding, _count_timeout(timeout))
        except LedgerUnavailable as error:
            return NoRoom(Retryable(status=None, message=f"profile count not reserved: {error}"))
        skip, take = self.limit.eviction(count, adding)
        if not take:
            return Reserved(profile_id, adding, near=self.limit.near(count))
        if self.limit.policy == "park" or self.editor is None:
            self.give_back(profile_id, adding, timeout)
            return ProfileFull(Retryable(status=None, message=PROFILE_FULL))
        deleted, failure = self._evict(store_id, profile_id, skip, take, timeout)
        if failure is not None:
            self.give_back(profile_id, adding + deleted, timeout)
            return NoRoom(failure)
        # What could not be found to delete was counted but is not held (a post in doubt that never
        # landed): given back too, so the count comes down to the limit.
        self.give_back(profile_id, take, timeout)
        return Reserved(profile_id, adding, evicted=deleted, near=self.limit.near(count - take))

    def post_within(
        self,
        store_id: str,
        profile_id: str,
        adding: int,
        post: Callable[[], tuple[Outcome | str, str]],
        timeout: Timeout,
        metrics: dict[str, int],
    ) -> tuple[Outcome | str | ProfileFull | NoRoom, str]:
        """Reserve, post (`post` returns the answer and the profile it went to, a merge followed), settle;
        `metrics` gains ObservationsEvicted, ProfileNearLimit and ProfilesFull."""
        reserved = self.reserve(store_id, profile_id, adding, timeout)
        if not isinstance(reserved, Reserved):
            if isinstance(reserved, ProfileFull):
                _count(metrics, "ProfilesFull", 1)
            return reserved, profile_id
        _count(metrics, "ObservationsEvicted", reserved.evicted)
        _count(metrics, "ProfileNearLimit", int(reserved.near))
        outcome, posted_to = post()
        if posted_to != profile_id:
            self.moved(reserved, posted_to, outcome, timeout)
        else:
            self.settle(reserved, outcome, timeout)
        return outcome, posted_to

    def settle(self, reserved: Reserved, outcome: Outcome | str, timeout: Timeout) -> None:
        """After the post: a clean refusal gives the reservation back; accepted or in doubt keeps it."""
        if reserved.count and not _maybe_written(outcome):
            self.give_back(reserved.profile_id, reserved.count, timeout)

    def moved(self, reserved: Reserved, posted_to: str, outcome: Outcome | str, timeout: Timeout) -> None:
        """The post followed a merge to another profile: the count moves with what was written there
        (without making room: a merge is rare, and the next post on it makes room)."""
        if not reserved.count:
            return
        self.give_back(reserved.profile_id, reserved.count, timeout)
        if _maybe_written(outcome) and self.counter is not None:
            # Not counted on the merged profile if this fails: its next posts count from there.
            with contextlib.suppress(LedgerUnavailable):
                self.counter.add_observations(posted_to, reserved.count, _count_timeout(timeout))

    def give_back(self, profile_id: str, count: int, timeout: Timeout) -> None:
        """ADD -count; a failure leaves the count high, which only makes room a little early."""
        if not count or self.counter is None or not self.limit.on:
            return
        with contextlib.suppress(LedgerUnavailable):
            self.counter.add_observations(profile_id, -count, _count_timeout(timeout))

    def _evict(
        self, store_id: str, profile_id: str, skip: int, take: int, timeout: Timeout
    ) -> tuple[int, Failure | None]:
        """Delete the bridge's `take` oldest observations after the `skip` oldest; (deleted, failure)."""
        assert self.editor is not None
        found = self._oldest(store_id, profile_id, skip + take, timeout)
        if not isinstance(found, list):
            return 0, found
        deleted = 0
        for observation_id in found[skip:]:
            gone = self.editor.delete_observation(store_id, profile_id, observation_id, timeout())
            if not (isinstance(gone, Accepted) or observation_gone(gone)):
                return deleted, _failure(gone)
            deleted += 1
        return deleted, None

    def _oldest(self, store_id: str, profile_id: str, wanted: int, timeout: Timeout) -> list[str] | Failure:
        """The ids of the bridge's `wanted` oldest observations on the profile (fewer if it holds fewer)."""
        assert self.editor is not None
        ids: list[str] = []
        token: str | None = None
        for _ in range(MAX_PAGES):
            page = self.editor.list_observations(
                store_id,
                profile_id,
                page_size=PAGE_SIZE,
                page_token=token,
                order_by="ASC",
                timeout=timeout(),
            )
            if not isinstance(page, Accepted):
                return _failure(page)
            body: dict[str, Any] = page.body if isinstance(page.body, dict) else {}
            for observation in body.get("observations") or []:
                # Only the bridge's: another writer's are never deleted.
                if observation.get("source") in self.sources and observation.get("id"):
                    ids.append(str(observation["id"]))
            token = (body.get("meta") or {}).get("nextToken")
            if len(ids) >= wanted or not token:
                return ids[:wanted]
        return Retryable(status=None, message="making room: too many observations to look through")


def _count_timeout(timeout: Timeout) -> float:
    left = timeout()
    return COUNT_TIMEOUT_SECONDS if left is None else max(min(COUNT_TIMEOUT_SECONDS, left), 0.05)


def _count(metrics: dict[str, int], name: str, value: int) -> None:
    if value:
        metrics[name] = metrics.get(name, 0) + value


def _maybe_written(outcome: Outcome | str) -> bool:
    return isinstance(outcome, Accepted | str) or (isinstance(outcome, Retryable) and outcome.ambiguous)


def _failure(outcome: Outcome) -> Failure:
    if isinstance(outcome, Retryable | Permanent):
        return outcome
    return Permanent(status=getattr(outcome, "status", 0) or 0, message="making room: unexpected answer")
