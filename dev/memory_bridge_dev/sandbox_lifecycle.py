"""The Memory sandbox after a write (issue 22, dev-only): an observation changed (PATCH, keeping its
revisions), removed (DELETE), a profile erased (DELETE), List Observations' filters and ordering, and
two behaviours Twilio has not published, each chosen at run time:

- past the per-profile limit (500 on Twilio's limits page), `profile_full` = "refuse" answers a write
  that would pass it 400 (the status is the only 4xx CreateProfileObservation lists for a bad request;
  the code, 400, is the YAML's BadRequest example: both are guesses), "evict" drops the oldest
  observations silently, and None (the default) keeps no limit, as the sandbox always did;
- `list_lag` seconds during which a write made while it is set does not show in List Observations
  (Twilio: "never assume writes are immediately readable"): a new observation is missing, an edited
  one shows its old content, a removed one is still listed. 0, the default, lists what is held at once
  (setting it back to 0 shows every write). Fetch by id and Revisions are not delayed.

Both are set by MemorySandbox's constructor or over HTTP: GET/POST/DELETE `/__sandbox/observation-rules`
with {"profileFull": "refuse" | "evict" | null, "limit": 5, "listLag": 0.5} (POST changes the fields it
names; DELETE puts back the constructor's).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

from memory_bridge_dev.sandbox_common import (
    CONVERSATION_ID,
    OBSERVATION_ID,
    SOURCE_PATTERN,
    ApiError,
    check_observation,
    now_iso,
    paging,
    parse_time,
    schema_error,
)

if TYPE_CHECKING:
    from memory_bridge_dev.sandbox import MemorySandbox

PROFILE_FULL = (None, "refuse", "evict")
ADMIN_NAMES = {"profileFull": "profile_full", "limit": "limit", "listLag": "list_lag"}
Key = tuple[str, str]  # (store id, profile id)
Answer = tuple[int, Any, dict[str, str]]
Routed = tuple[str, int, Any, dict[str, str]]
# An observation's life: (monotonic time it shows in List Observations from, its state from then on,
# None once removed or evicted).
Life = list[tuple[float, dict[str, Any] | None]]


@dataclass
class ObservationRules:
    profile_full: str | None = None  # None (no limit), "refuse" or "evict"
    limit: int = 500  # observations a profile holds (Twilio's limits page); tests use a few
    list_lag: float = 0.0  # seconds before a write shows in List Observations

    def __post_init__(self) -> None:
        if self.profile_full not in PROFILE_FULL:
            raise ValueError(f"profileFull must be 'refuse', 'evict' or null, not {self.profile_full!r}")
        if not isinstance(self.limit, int) or isinstance(self.limit, bool) or self.limit < 1:
            raise ValueError("limit must be an integer >= 1")
        if not isinstance(self.list_lag, int | float) or isinstance(self.list_lag, bool) or self.list_lag < 0:
            raise ValueError("listLag must be a number of seconds >= 0")

    def to_json(self) -> dict[str, Any]:
        return {"profileFull": self.profile_full, "limit": self.limit, "listLag": self.list_lag}


def operation_for(method: str, parts: list[str]) -> str:
    """The operation a /v1/Stores/{store}/Profiles/{profile}/… path names, for the routes this module
    answers; "" for any other."""
    if parts[:2] != ["v1", "Stores"] or len(parts) < 5 or parts[3] != "Profiles" or parts[4] == "Lookup":
        return ""
    if len(parts) == 5:
        return {"DELETE": "DeleteProfile"}.get(method, "")
    if len(parts) == 6 and parts[5] == "Identifiers":
        return "ListProfileIdentifiers" if method == "GET" else ""
    if len(parts) == 7 and parts[5] == "Observations":
        names = {
            "GET": "FetchProfileObservation",
            "PATCH": "PatchProfileObservation",
            "DELETE": "DeleteProfileObservation",
        }
        return names.get(method, "")
    if len(parts) == 8 and parts[5] == "Observations" and parts[7] == "Revisions":
        return "ListObservationRevisions" if method == "GET" else ""
    return ""


class Lifecycle:
    """The sandbox's observations after they are written. Called under the sandbox's lock."""

    def __init__(self, sandbox: MemorySandbox, rules: ObservationRules):
        self.sandbox = sandbox
        self.rules, self.defaults = rules, replace(rules)
        self.lives: dict[Key, dict[str, Life]] = {}  # per profile, in the order they were created

    def reset(self) -> None:
        self.lives.clear()
        self.rules = replace(self.defaults)

    # ---- the rules, over HTTP -------------------------------------------------------------

    def admin(self, method: str, body: dict[str, Any]) -> Answer | None:
        """/__sandbox/observation-rules; None for a method it does not take. Raises ValueError."""
        if method == "POST":
            unknown = set(body) - set(ADMIN_NAMES)
            if unknown:
                raise ValueError(f"unknown rule(s): {sorted(unknown)}; known: {sorted(ADMIN_NAMES)}")
            self.rules = replace(self.rules, **{ADMIN_NAMES[name]: value for name, value in body.items()})
        elif method == "DELETE":
            self.rules = replace(self.defaults)
        elif method != "GET":
            return None
        return 200, self.rules.to_json(), {}

    # ---- writes the sandbox's create makes --------------------------------------------------

    def make_room(self, held: list[dict[str, Any]], adding: int) -> None:
        """Before `adding` observations join `held`: refuse them when the profile would pass its limit."""
        if self.rules.profile_full == "refuse" and len(held) + adding > self.rules.limit:
            raise ApiError(
                400, 400, f"Profile observation limit exceeded: a profile holds at most {self.rules.limit}"
            )

    def created(self, key: Key, held: list[dict[str, Any]], new: list[dict[str, Any]]) -> None:
        """After `new` joined `held` (at its end): note them, and evict the oldest past the limit."""
        shows_from = time.monotonic() + self.rules.list_lag
        lives = self.lives.setdefault(key, {})
        for observation in new:
            lives[observation["id"]] = [(shows_from, observation)]
        if self.rules.profile_full == "evict" and len(held) > self.rules.limit:
            evicted = held[: len(held) - self.rules.limit]
            del held[: len(evicted)]
            for observation in evicted:
                self._note(key, observation["id"], None)

    def _note(self, key: Key, observation_id: str, state: dict[str, Any] | None) -> None:
        shows_from = time.monotonic() + self.rules.list_lag
        self.lives.setdefault(key, {}).setdefault(observation_id, []).append((shows_from, state))

    # ---- the routes --------------------------------------------------------------------------

    def route(
        self,
        method: str,
        parts: list[str],
        query: dict[str, list[str]],
        body: Any,
        profile: Callable[[bool], str],
    ) -> Routed | None:
        """/v1/Stores/{store}/Profiles/{profile}[/Observations/{id}[/Revisions]]; `profile(write)`
        resolves the profile id as the sandbox does (400, 404, or 301/308 for a merged one)."""
        operation = operation_for(method, parts)
        if not operation:
            return None
        key = (parts[2], profile(method != "GET"))
        if operation == "DeleteProfile":
            return operation, *self.delete_profile(key)
        if operation == "ListProfileIdentifiers":
            return operation, *self.identifiers_of(key)
        if not OBSERVATION_ID.match(parts[6]):
            raise schema_error("observationId must match ^mem_observation_[0-7][0-9a-z]{25}$")
        held = self.sandbox.observations.get(key, [])
        index = next((i for i, o in enumerate(held) if o["id"] == parts[6]), None)
        if index is None:
            raise ApiError(404, 520003, "Observation not found")
        handlers: dict[str, Callable[[], Answer]] = {
            "FetchProfileObservation": lambda: (200, held[index], {}),
            "PatchProfileObservation": lambda: self.patch(key, held, index, body),
            "DeleteProfileObservation": lambda: self.delete(key, held, index),
            "ListObservationRevisions": lambda: self.revisions(key, held[index], query),
        }
        return operation, *handlers[operation]()

    def patch(self, key: Key, held: list[dict[str, Any]], index: int, body: Any) -> Answer:
        check_observation(body, whole=False)  # no field is required (since 2026-05-01)
        changed = {**held[index], **body, "updatedAt": now_iso()}
        held[index] = changed
        self._note(key, changed["id"], changed)
        return 202, {"message": "Observation update accepted"}, {}

    def delete(self, key: Key, held: list[dict[str, Any]], index: int) -> Answer:
        gone = held.pop(index)
        self._note(key, gone["id"], None)
        return 202, {"message": "Observation deletion accepted"}, {}

    def revisions(self, key: Key, current: dict[str, Any], query: dict[str, list[str]]) -> Answer:
        """Every state the observation has had, newest first (the current one included, as the
        contract's example shows)."""
        size, start = paging(query, maximum=1000)
        size = min(size, 50)
        life = self.lives.get(key, {}).get(current["id"]) or [(0.0, current)]
        states = [state for _, state in reversed(life) if state is not None]
        meta: dict[str, Any] = {"key": "revisions", "pageSize": size}
        if start + size < len(states):
            meta["nextToken"] = str(start + size)
        if start > 0:
            meta["previousToken"] = str(max(start - size, 0))
        return 200, {"revisions": states[start : start + size], "meta": meta}, {}

    def delete_profile(self, key: Key) -> Answer:
        """The profile, its identifiers, its observations; profiles merged into it go too. Memory
        deletes asynchronously; the sandbox at once (the bridge never reads a profile back after)."""
        sandbox, (store_id, profile_id) = self.sandbox, key
        aliases = {merged for merged, canonical in sandbox.merged.items() if canonical == profile_id}
        for gone in {profile_id} | aliases:
            sandbox.profiles.pop(gone, None)
            sandbox.merged.pop(gone, None)
            sandbox.observations.pop((store_id, gone), None)
            self.lives.pop((store_id, gone), None)
        for identifier, owner in list(sandbox.identifiers.items()):
            if owner == profile_id or owner in aliases:
                del sandbox.identifiers[identifier]
        return 202, {"message": "Profile accepted for deletion."}, {}

    def identifiers_of(self, key: Key) -> Answer:
        """The profile's identifiers, one IdentifierSet per idType, values in the order they were
        added (what `memory-bridge erase --profile-id` reads to find the customer's conversations)."""
        store_id, profile_id = key
        sets: dict[str, list[str]] = {}
        for (store, id_type, value), owner in self.sandbox.identifiers.items():
            if store == store_id and self.sandbox.merged.get(owner, owner) == profile_id:
                sets.setdefault(id_type, []).append(value)
        found = [{"idType": id_type, "values": values[:100]} for id_type, values in sets.items()]
        return 200, {"identifiers": found[:50]}, {}

    # ---- List Observations -----------------------------------------------------------------

    def listed(self, key: Key, query: dict[str, list[str]]) -> list[dict[str, Any]]:
        """What List Observations shows of a profile: filtered by `source`, `createdAfter`
        (inclusive), `createdBefore` (exclusive) and `conversationId`, ordered by `orderBy` (creation
        time, DESC by default); with a list lag, without the writes not yet shown."""
        wanted = _filters(query)
        held = self.sandbox.observations.get(key, [])
        items = self._as_of(key, held, time.monotonic()) if self.rules.list_lag else held
        items = [o for o in items if all(keep(o) for keep in wanted)]
        if query.get("orderBy", ["DESC"])[0] == "DESC":
            items.reverse()
        return items

    def _as_of(self, key: Key, held: list[dict[str, Any]], moment: float) -> list[dict[str, Any]]:
        lives = self.lives.get(key, {})
        then = []
        for life in lives.values():
            states = [state for at, state in life if at <= moment]
            if states and states[-1] is not None:
                then.append(states[-1])
        # Observations put straight into `sandbox.observations` (seeded by a test) have no life: listed.
        then += [o for o in held if o["id"] not in lives]
        return sorted(then, key=lambda o: parse_time(o.get("createdAt")) or datetime.min)


def _filters(query: dict[str, list[str]]) -> list[Callable[[dict[str, Any]], bool]]:
    """The query's filters, each checked as the contract's parameters say (400 otherwise)."""
    order = query.get("orderBy", ["DESC"])[0]
    if order not in ("ASC", "DESC"):
        raise schema_error("orderBy must be ASC or DESC")
    wanted: list[Callable[[dict[str, Any]], bool]] = []
    source = query.get("source", [None])[0]
    if source is not None:
        if not 1 <= len(source) <= 100 or not SOURCE_PATTERN.match(source):
            raise schema_error("source must match ^[a-zA-Z0-9 _./-]+$ (1..100)")
        wanted.append(lambda o: o.get("source") == source)
    bounds = {name: query.get(name, [None])[0] for name in ("createdAfter", "createdBefore")}
    for name, text in bounds.items():
        if text is None:
            continue
        moment = parse_time(text)
        if moment is None:
            raise schema_error(f"{name} must be an RFC 3339 date-time")
        wanted.append(_created_bound(moment, after=name == "createdAfter"))
    conversation = query.get("conversationId", [None])[0]
    if conversation is not None:
        if not CONVERSATION_ID.match(conversation):
            raise schema_error("conversationId must be a conv_conversation_ id")
        wanted.append(lambda o: conversation in (o.get("conversationIds") or []))
    return wanted


def _created_bound(moment: datetime, *, after: bool) -> Callable[[dict[str, Any]], bool]:
    def keep(observation: dict[str, Any]) -> bool:
        created = parse_time(observation.get("createdAt"))
        if created is None:
            return False
        return created >= moment if after else created < moment

    return keep
