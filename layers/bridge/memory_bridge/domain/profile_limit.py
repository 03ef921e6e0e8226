"""Memory's limit of observations per profile, and what the bridge does before Memory would. Pure.

Twilio's limits page says a profile holds 500 observations; what Memory does past that is not
published (it may refuse the write, or drop the oldest without a word). So the bridge counts what it
wrote per profile (the ledger's `profile#<id>` item) and acts first:

  keep-latest  delete the oldest observations the bridge wrote on that profile, exactly the
               overflow, then post: Memory keeps the most recent words
  park         post nothing past the limit: the message is parked with reason "profile full"

Only the bridge's own observations are ever deleted (its three sources); another writer's on the
same profile are not counted and never touched, so the limit must leave them room.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from memory_bridge.domain.attribution import SOURCE_SUFFIXES

Policy = Literal["keep-latest", "park"]
POLICIES: tuple[Policy, ...] = ("keep-latest", "park")
DEFAULT_LIMIT = 500
MAX_LIMIT = 10_000
# A profile at 90 % of its limit or more is "near" (the ProfileNearLimit metric).
NEAR_PERCENT = 90
PROFILE_FULL = "profile full"


@dataclass(frozen=True)
class ProfileLimit:
    limit: int = DEFAULT_LIMIT  # 0: no limit (nothing counted, no extra call)
    policy: Policy = "keep-latest"

    @property
    def on(self) -> bool:
        return self.limit > 0

    def near(self, count: int) -> bool:
        return self.on and count * 100 >= self.limit * NEAR_PERCENT

    def eviction(self, count: int, adding: int) -> tuple[int, int]:
        """After reserving `adding` took the count to `count`: (skip, take), the bridge's oldest
        observations to leave and then to delete so that Memory holds no more than the limit.

        `take` is never more than this post adds: two posts racing past the limit (counts 501 and
        502 with a limit of 500) each delete one, and `skip` sends them to different ones (the oldest,
        the second oldest) rather than both to the oldest, which would delete one in all."""
        over = count - self.limit
        if not self.on or over <= 0:
            return 0, 0
        take = min(adding, over)
        return over - take, take


def parse_limit(value: str) -> int:
    """PROFILE_OBSERVATION_LIMIT: a whole number, 0 for no limit."""
    if not value.strip().isdigit() or int(value) > MAX_LIMIT:
        raise ValueError(f"must be a whole number from 0 (no limit) to {MAX_LIMIT}, got {value!r}")
    return int(value)


def parse_policy(value: str) -> Policy:
    """PROFILE_FULL_POLICY: keep-latest or park."""
    for policy in POLICIES:
        if value.strip() == policy:
            return policy
    raise ValueError(f"must be one of {', '.join(POLICIES)}, got {value!r}")


def bridge_sources(source: str) -> frozenset[str]:
    """The sources the bridge writes with (OBSERVATION_SOURCE, and its -agent/-brand): the only
    observations it may delete to make room."""
    return frozenset(source + suffix for suffix in SOURCE_SUFFIXES.values())
