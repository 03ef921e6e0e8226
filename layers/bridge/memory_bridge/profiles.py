"""Resolving a customer to a Memory profile: the per-container cache, and Lookup, else resolve-or-create.

`ProfileCache` is pure; `resolve_profile` drives an injected ProfileDirectory (memory_bridge.ports).
Both flows use them: the webhook for each message, the replay for authors the webhook could not resolve.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable

from memory_bridge.domain.identifiers import Identifier
from memory_bridge.domain.outcomes import Accepted, Failure, Moved, Permanent, Retryable
from memory_bridge.ports import ProfileDirectory


class ProfileCache:
    """identifier → profile id, per container, each entry for `ttl` seconds; bounded in size."""

    def __init__(self, ttl: float, max_entries: int = 10_000, clock: Callable[[], float] = time.monotonic):
        self._ttl = ttl
        self._max = max_entries
        self._clock = clock
        self._entries: OrderedDict[Identifier, tuple[str, float]] = OrderedDict()

    def get(self, identifier: Identifier) -> str | None:
        entry = self._entries.get(identifier)
        if entry is None:
            return None
        profile_id, expires = entry
        if self._clock() >= expires:
            del self._entries[identifier]
            return None
        self._entries.move_to_end(identifier)
        return profile_id

    def put(self, identifier: Identifier, profile_id: str) -> None:
        if self._ttl <= 0:
            return
        self._entries[identifier] = (profile_id, self._clock() + self._ttl)
        self._entries.move_to_end(identifier)
        while len(self._entries) > self._max:
            self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)


def lookup_profile(
    directory: ProfileDirectory, store_id: str, identifier: Identifier
) -> str | Failure | None:
    """Lookup only: the profile id, None when Memory has none for the identifier (never creates one)."""
    looked_up = directory.lookup_profiles(store_id, identifier)
    if isinstance(looked_up, Accepted):
        return _first_profile(looked_up)
    if isinstance(looked_up, Permanent) and looked_up.status == 404 and looked_up.code != 520041:
        return None
    if isinstance(looked_up, Retryable | Permanent):
        return looked_up
    return None


def _first_profile(outcome: Accepted) -> str | None:
    body = outcome.body if isinstance(outcome.body, dict) else {}
    profiles = body.get("profiles") or []
    return str(profiles[0]) if profiles else None


def resolve_profile(
    directory: ProfileDirectory,
    store_id: str,
    identifier: Identifier,
    trait_group: str,
    timeout: Callable[[], float | None] = lambda: None,
    created: list[str] | None = None,
) -> str | Failure:
    """Lookup first; on no match (200 with no profiles, or 404) resolve-or-create. Twilio's own order.
    A profile this call created is appended to `created` (for the ProfilesCreated metric)."""
    looked_up = directory.lookup_profiles(store_id, identifier, timeout=timeout())
    if isinstance(looked_up, Accepted):
        found = _first_profile(looked_up)
        if found:
            return found
    elif isinstance(looked_up, Permanent) and looked_up.status == 404 and looked_up.code != 520041:
        pass  # no match, as a 404 (520041 is "store missing", which creating won't fix)
    elif isinstance(looked_up, Retryable | Permanent):
        return looked_up
    made = directory.create_profile(store_id, trait_group, identifier, timeout=timeout())
    if isinstance(made, Retryable | Permanent):
        return made
    profile_id = None
    if isinstance(made, Accepted) and isinstance(made.body, dict) and made.body.get("id"):
        profile_id = str(made.body["id"])
    elif isinstance(made, Moved) and made.canonical_profile_id:
        profile_id = made.canonical_profile_id
    if profile_id is None:
        return Permanent(status=getattr(made, "status", 0), message="create profile returned no id")
    if created is not None:
        # Memory answers 202 whether it made the profile or resolved one made a moment ago (another
        # container's create): after a Lookup found none, a create is counted as one made.
        created.append(profile_id)
    return profile_id
