"""Finding a message's observations in Memory (issue 22): creating one returns no id.

Each part is known by the ledger's id for it (once an edit or a removal learnt it), else by the
digest of its words (domain.observations.observation_digest: the ledger's, or the words a removal
carries), else, for a message posted before digests were kept, by its moment and source alone when
that is unambiguous. One List Observations walk (the bridge's source, createdAfter = the message's
time less a skew margin, oldest first) finds every part not known by id.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Set
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from memory_bridge.deadlines import Deadline
from memory_bridge.domain.identifiers import Identifier
from memory_bridge.domain.ledger import LedgerRecord
from memory_bridge.domain.observations import Observation, observation_digest, observation_key
from memory_bridge.domain.outcomes import Accepted, Outcome, Permanent, Retryable, describe
from memory_bridge.ports import ObservationEditor, ProfileDirectory
from memory_bridge.profiles import ProfileCache, lookup_profile
from memory_bridge.webhook.delivery import RESERVE_SECONDS

# Memory's createdAt is when it took the post: never before the message existed, but clocks differ.
CREATED_SKEW = timedelta(minutes=5)
# At most this many List pages (50 observations each) before giving up for now.
MAX_PAGES = 10
# Memory lists a write within seconds; a part it took and does not list after this long is gone
# (Memory dropped it: past its 500, or reconciled), not late.
LISTING_LAG = timedelta(minutes=10)


class Unfinished(Exception):
    """The change could not finish now; the answer says why (Twilio retries)."""

    def __init__(self, reason: str, status: int = 503):
        super().__init__(reason)
        self.reason, self.status = reason, status
        # The parts' observation ids found before it stopped: kept in the ledger, so that the retry
        # asks by id (and hears "gone" for one it deleted) rather than miss it in a listing.
        self.ids: dict[int, str] = {}


@dataclass
class Search:
    """What to look for: per part, the digests its words may have in Memory right now."""

    first: Observation  # any part as posted: its source and moment bound the List
    # Per part, best first: the ledger's digest (the words Memory took for this very message), then
    # that of the words given. Only the first is proof: another message said in the same moment may
    # hold the given words already, and must not be taken for this one while the ledger's is listed.
    wanted: dict[int, list[str]]
    ids: Mapping[int, str] = field(default_factory=dict)  # known already: no List needed
    keyless: Set[int] = frozenset()  # posted before the ledger kept digests

    @property
    def unknown(self) -> list[int]:
        return sorted(p for p in self.wanted if p not in self.ids)


def find_parts(
    editor: ObservationEditor, store_id: str, profile_id: str, search: Search, deadline: Deadline
) -> dict[int, str]:
    """The observation id of each part found (known ids included). Raises Unfinished."""
    found = dict(search.ids)
    unknown = search.unknown
    if not unknown:
        return found
    left = {p: list(search.wanted[p]) for p in unknown}
    moment_key = observation_key(search.first)[1:]
    bare: list[str] = []  # same moment and source, words unknown: for parts with no digest
    best: dict[int, str] = {}  # found by the first digest wanted: final
    fallback: dict[int, str] = {}  # found by a later one: taken only if the first is not listed
    for observation in _listed(editor, store_id, profile_id, search.first, deadline):
        digest, oid = observation_digest(observation), observation.get("id")
        if not oid:
            continue
        match = _match(left, digest, best, fallback)
        if match is not None:
            (best if left[match][:1] == [digest] else fallback)[match] = str(oid)
        elif observation_key(observation)[1:] == moment_key:
            bare.append(str(oid))
        if len(best) == len(left):
            break
    taken = set(best.values())
    for part, oid in sorted(fallback.items()):
        if part not in best and oid not in taken:
            best[part] = oid
            taken.add(oid)
    found.update(best)
    left = {p: d for p, d in left.items() if p not in best}
    blind = sorted(p for p in left if p in search.keyless)
    if blind and len(bare) == len(blind):  # posted before digests were kept, and unambiguous
        found.update(zip(blind, bare, strict=True))
    return found


def _match(
    left: dict[int, list[str]], digest: str, best: Mapping[int, str], fallback: Mapping[int, str]
) -> int | None:
    """The part a listed observation with this digest stands for: one still wanting it as its first
    digest, else one that could take it as a fallback; None if neither."""
    for part in sorted(left):
        if part not in best and left[part][:1] == [digest]:
            return part
    for part in sorted(left):
        if part not in best and part not in fallback and digest in left[part][1:]:
            return part
    return None


def _listed(
    editor: ObservationEditor, store_id: str, profile_id: str, first: Observation, deadline: Deadline
) -> Any:
    """Every listed observation of the bridge's source since the message (a generator)."""
    when = observation_key(first)[1]
    moment = datetime.fromisoformat(when) if first.get("occurredAt") else None
    after = (moment - CREATED_SKEW).isoformat().replace("+00:00", "Z") if moment else None
    token: str | None = None
    for _ in range(MAX_PAGES):
        page = editor.list_observations(
            store_id,
            profile_id,
            source=str(first.get("source")),
            created_after=after,
            order_by="ASC",
            page_token=token,
            timeout=time_for_call(deadline),
        )
        if not isinstance(page, Accepted):
            raise Unfinished(said(page))
        body: dict[str, Any] = page.body if isinstance(page.body, dict) else {}
        yield from body.get("observations") or []
        token = (body.get("meta") or {}).get("nextToken")
        if not token:
            return
    raise Unfinished("too many observations to look through")


def missing_is_gone(record: LedgerRecord, first: Observation, now: Callable[[], datetime]) -> bool:
    """A part Memory took and does not list: gone for good when it was posted longer ago than Memory
    lags (the ledger's posted_at; for a record from before it was kept, the message's own time)."""
    if record.posted_at:
        moment = datetime.fromtimestamp(record.posted_at, UTC)
    else:
        try:
            moment = datetime.fromisoformat(observation_key(first)[1])
        except ValueError:
            return False
    return now() - moment > LISTING_LAG


def search_for(
    parts: Set[int],
    observations: tuple[Observation, ...],
    keys: Mapping[int, str],
    ids: Mapping[int, str],
    pending: Mapping[int, Set[str]] | None = None,
) -> Search:
    """Per part: the ledger's digest, and that of the words given (a removal's words, an edit's new
    ones: what Memory holds if an earlier try of this edit got that far)."""
    wanted: dict[int, list[str]] = {}
    for part in parts:
        digests = [keys[part]] if part in keys else []
        # Words an earlier edit was writing when its settle was lost (LedgerRecord.pending).
        digests += sorted(d for d in (pending or {}).get(part, ()) if d not in digests)
        given = observation_digest(observations[part]) if part < len(observations) else None
        if given is not None and given not in digests:
            digests.append(given)
        wanted[part] = digests
    first = observations[0] if observations else {}
    return Search(
        first,
        wanted,
        {p: i for p, i in ids.items() if p in parts},
        frozenset(p for p in parts if p not in keys),
    )


def profile_of(
    who: Identifier | None, profiles: ProfileCache, directory: ProfileDirectory, store_id: str
) -> str | None:
    """The customer's profile for an edit or a removal (cached, else Lookup: never created); None when
    Memory has none (nothing of theirs to change). Raises Unfinished when it cannot be known now."""
    if who is None:
        raise Unfinished("participants not read: the customer's profile is unknown")
    profile_id = profiles.get(who) or lookup_profile(directory, store_id, who)
    if profile_id is not None and not isinstance(profile_id, str):
        raise Unfinished(said(profile_id))
    return profile_id


def said(outcome: Outcome) -> str:
    return describe(outcome) if isinstance(outcome, Retryable | Permanent) else "profile moved"


def time_for_call(deadline: Deadline) -> float:
    left = deadline.remaining() - RESERVE_SECONDS
    if left <= 0:
        raise Unfinished("out of time")
    return left
