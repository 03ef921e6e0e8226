"""The outside calls `memory-bridge erase` makes, each bounded: Memory and Conversations calls carry
the clients' timeouts and are retried a few times (Retry-After honoured, capped), DynamoDB and SQS
calls go through the CLI's botocore config (about 30 s at most). Nothing here prints content or the
customer's identifier: the progress lines name counts and ids only."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from memory_bridge.domain.identifiers import Identifier
from memory_bridge.domain.outcomes import Accepted, Moved, Outcome, Permanent, Retryable, observation_gone
from memory_bridge.ports import LedgerUnavailable
from memory_bridge_cli.backfill.history import ConversationRef, History, Unreadable, parse_time
from memory_bridge_cli.erase.plan import (
    ObservationPlan,
    SpeakerRulesView,
    participant_queries,
    sids_to_tombstone,
)

if TYPE_CHECKING:
    from memory_bridge.adapters.memory_api import MemoryApiClient

TRIES = 4
MAX_WAIT_SECONDS = 30.0
CALL_TIMEOUT_SECONDS = 15.0
MAX_OBSERVATION_PAGES = 200  # 50 each: far past Memory's 500 a profile
PAGE_SIZE = 50


class Left(Exception):
    """A step could not finish now; the message says what (no content, no identifier)."""


def retried(what: str, call: Callable[[], Outcome], sleep: Callable[[float], None] = time.sleep) -> Outcome:
    """The call's outcome once it is not a Retryable, or after TRIES; a 429's Retry-After honoured."""
    wait = 0.5
    outcome = call()
    for _ in range(TRIES - 1):
        if not isinstance(outcome, Retryable):
            return outcome
        sleep(min(outcome.retry_after if outcome.retry_after is not None else wait, MAX_WAIT_SECONDS))
        wait *= 2
        outcome = call()
    if isinstance(outcome, Retryable):
        raise Left(f"{what}: HTTP {outcome.status or 'no answer'} after {TRIES} tries")
    return outcome


def _refused(what: str, outcome: Outcome) -> Left:
    status = getattr(outcome, "status", None)
    code = getattr(outcome, "code", None)
    return Left(f"{what}: HTTP {status or 'no answer'}" + (f", Twilio code {code}" if code else ""))


def _gone(outcome: Outcome) -> bool:
    """404: the profile (20404) or the observation (520003) is no longer there."""
    return isinstance(outcome, Permanent) and outcome.status == 404 and outcome.code != 520041


# ---- Memory -------------------------------------------------------------------------------------


def find_profile(memory: MemoryApiClient, store_id: str, identifier: Identifier) -> str | None:
    """Lookup only (never creates); None when Memory has no profile for it."""
    outcome = retried(
        "profile lookup", lambda: memory.lookup_profiles(store_id, identifier, CALL_TIMEOUT_SECONDS)
    )
    if _gone(outcome):
        return None
    if not isinstance(outcome, Accepted):
        raise _refused("profile lookup", outcome)
    profiles = (outcome.body or {}).get("profiles") or []
    return str(profiles[0]) if profiles else None


def profile_identifiers(memory: MemoryApiClient, store_id: str, profile_id: str) -> list[Any] | None:
    """The profile's IdentifierSets; None when the profile is gone."""
    outcome = retried(
        "list the profile's identifiers",
        lambda: memory.list_profile_identifiers(store_id, profile_id, CALL_TIMEOUT_SECONDS),
    )
    if _gone(outcome):
        return None
    if not isinstance(outcome, Accepted):
        raise _refused("list the profile's identifiers", outcome)
    return list((outcome.body or {}).get("identifiers") or [])


def plan_observations(
    memory: MemoryApiClient, store_id: str, profile_id: str, sources: frozenset[str]
) -> ObservationPlan:
    """Every observation on the profile, read before any delete (deleting while paging would shift
    the pages), sorted into the bridge's and other writers'."""
    plan = ObservationPlan()
    token: str | None = None
    for _ in range(MAX_OBSERVATION_PAGES):

        def page(t: str | None = token) -> Outcome:
            return memory.list_observations(
                store_id,
                profile_id,
                page_size=PAGE_SIZE,
                page_token=t,
                order_by="ASC",
                timeout=CALL_TIMEOUT_SECONDS,
            )

        outcome = retried("list observations", page)
        if _gone(outcome):
            return plan
        if not isinstance(outcome, Accepted):
            raise _refused("list observations", outcome)
        body = outcome.body if isinstance(outcome.body, dict) else {}
        plan.add(body.get("observations") or [], sources)
        token = (body.get("meta") or {}).get("nextToken")
        if not token:
            return plan
    raise Left(f"list observations: more than {MAX_OBSERVATION_PAGES} pages")


@dataclass
class Deleted:
    ids: list[str] = field(default_factory=list)
    already_gone: int = 0


def delete_observations(
    memory: MemoryApiClient, store_id: str, profile_id: str, ids: Sequence[str], done: Deleted
) -> None:
    """DELETE each; one Memory no longer holds counts as done. Raises Left at the first that fails
    (what was deleted so far is in `done`)."""
    for observation_id in ids:

        def call(o: str = observation_id) -> Outcome:
            return memory.delete_observation(store_id, profile_id, o, CALL_TIMEOUT_SECONDS)

        outcome = retried("delete an observation", call)
        if isinstance(outcome, Accepted):
            done.ids.append(observation_id)
        elif observation_gone(outcome) or _gone(outcome):
            done.already_gone += 1
        else:
            raise _refused("delete an observation", outcome)


def delete_profile(memory: MemoryApiClient, store_id: str, profile_id: str) -> bool:
    """DELETE the profile; False when it was gone already."""
    outcome = retried(
        "delete the profile", lambda: memory.delete_profile(store_id, profile_id, CALL_TIMEOUT_SECONDS)
    )
    if isinstance(outcome, Accepted):
        return True
    if _gone(outcome) or isinstance(outcome, Moved):
        return False
    raise _refused("delete the profile", outcome)


# ---- Conversations: the MessageSids to tombstone --------------------------------------------


@dataclass
class Found:
    conversations: int = 0
    sids: list[str] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)  # conversation SIDs (or "the listing")


def their_conversations(
    history: History, subject: Sequence[Identifier], service: str | None
) -> Iterator[ConversationRef]:
    from memory_bridge.adapters.conversations_api import scoped

    seen: set[str] = set()
    path = scoped("/ParticipantConversations", service)
    for identifier in subject:
        for name, value in participant_queries(identifier):
            query: dict[str, str | None] = {name: value, "PageSize": "50"}
            for item in history.items("the customer's conversations", path, query, "conversations"):
                sid = item.get("conversation_sid")
                if isinstance(sid, str) and sid not in seen:
                    seen.add(sid)
                    created = parse_time(item.get("conversation_date_created"))
                    yield ConversationRef(sid, item.get("chat_service_sid") or service, "active", created)


def messages_to_tombstone(
    history: History, subject: Sequence[Identifier], rules: SpeakerRulesView, service: str | None
) -> Found:
    found = Found()
    try:
        refs = list(their_conversations(history, subject, service))
    except Unreadable as error:
        found.unreadable.append(f"the customer's conversations ({error})")
        return found
    for ref in refs:
        found.conversations += 1
        try:
            roster = history.roster(ref)
            # Only what the rules need: sid, author, participant; never the body.
            listed = [
                {"sid": m.get("sid"), "author": m.get("author"), "participant_sid": m.get("participant_sid")}
                for m in history.messages(ref)
            ]
        except Unreadable as error:
            found.unreadable.append(f"{ref.sid} ({error})")
            continue
        for sid in sids_to_tombstone(roster, listed, subject, rules):
            if sid not in found.sids:
                found.sids.append(sid)
    return found


# ---- the ledger -------------------------------------------------------------------------------


@dataclass
class Tombstones:
    written: int = 0
    already: int = 0
    in_flight: int = 0  # an add of it held the lease when its tombstone went in: its post may land later


def tombstone(
    ledger: Any, sids: Sequence[str], removed_at: str, keep_seconds: int, dry_run: bool
) -> Tombstones:
    """Tombstone each MessageSid not tombstoned yet (read first: a second run writes nothing)."""
    counts = Tombstones()
    try:
        records = ledger.read_many(sids, timeout=CALL_TIMEOUT_SECONDS) if sids else {}
        for sid in sids:
            record = records.get(sid)
            if record is not None and record.removed is not None:
                counts.already += 1
                continue
            if dry_run:
                counts.written += 1
                continue
            now = time.time()
            after = ledger.tombstone(sid, removed_at, now, CALL_TIMEOUT_SECONDS, keep_seconds=keep_seconds)
            counts.written += 1
            if after.leased_to_another("", now):
                counts.in_flight += 1
    except LedgerUnavailable as error:
        raise Left(f"{error} ({counts.written} tombstone(s) written)") from None
    return counts
