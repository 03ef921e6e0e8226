"""Who wrote a message, as a Memory identifier, and the per-container cache of resolved profiles.

`identifier_for` and `ProfileCache` are pure; `resolve_profile` drives an injected Memory client.
"""

from __future__ import annotations

import re
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, Protocol

from memory_bridge.outcomes import Accepted, Failure, Moved, Outcome, Permanent, Retryable

E164 = re.compile(r"^\+[1-9][0-9]{6,14}$")
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
WHATSAPP_PREFIX = "whatsapp:"
SYSTEM_AUTHOR = "system"


@dataclass(frozen=True)
class Identifier:
    id_type: str
    value: str

    def to_json(self) -> dict[str, str]:
        return {"idType": self.id_type, "value": self.value}


@dataclass(frozen=True)
class NotACustomer:
    """The author is not a customer: a system message, or an identity configured as an agent."""

    reason: Literal["system", "agent"]


def identifier_for(
    author: str | None, *, chat_id_type: str, agent_identities: frozenset[str]
) -> Identifier | NotACustomer:
    """Pick the idType from the author's address: E.164 → phone, whatsapp:+… → whatsapp, email → email."""
    value = (author or "").strip()
    if not value or value.lower() == SYSTEM_AUTHOR:
        return NotACustomer("system")
    if value.lower() in agent_identities:
        return NotACustomer("agent")
    if value.lower().startswith(WHATSAPP_PREFIX):
        # Sent as the bare E.164 number; the store's whatsapp identifier trims it.
        return Identifier("whatsapp", value[len(WHATSAPP_PREFIX) :].strip())
    if E164.match(value):
        return Identifier("phone", value)
    if EMAIL.match(value):
        return Identifier("email", value)
    return Identifier(chat_id_type, value)


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


class ProfileDirectory(Protocol):
    """The two Memory calls that resolve a profile (implemented by memory_api.MemoryApiClient)."""

    def lookup_profiles(
        self, store_id: str, identifier: Identifier, timeout: float | None = None
    ) -> Outcome: ...

    def create_profile(
        self, store_id: str, trait_group: str, identifier: Identifier, timeout: float | None = None
    ) -> Outcome: ...


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
) -> str | Failure:
    """Lookup first; on no match (200 with no profiles, or 404) resolve-or-create. Twilio's own order."""
    looked_up = directory.lookup_profiles(store_id, identifier, timeout=timeout())
    if isinstance(looked_up, Accepted):
        found = _first_profile(looked_up)
        if found:
            return found
    elif isinstance(looked_up, Permanent) and looked_up.status == 404 and looked_up.code != 520041:
        pass  # no match, as a 404 (520041 is "store missing", which creating won't fix)
    elif isinstance(looked_up, Retryable | Permanent):
        return looked_up
    created = directory.create_profile(store_id, trait_group, identifier, timeout=timeout())
    if isinstance(created, Accepted) and isinstance(created.body, dict) and created.body.get("id"):
        return str(created.body["id"])
    if isinstance(created, Retryable | Permanent):
        return created
    if isinstance(created, Moved) and created.canonical_profile_id:
        return created.canonical_profile_id
    return Permanent(status=getattr(created, "status", 0), message="create profile returned no id")
