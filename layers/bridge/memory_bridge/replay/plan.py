"""The dry run: what a replay would post, per profile, and the Memory requests it would make."""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

from memory_bridge.domain.identifiers import Identifier
from memory_bridge.domain.ledger import LedgerRecord
from memory_bridge.replay.context import RunContext
from memory_bridge.replay.packing import request_count
from memory_bridge.replay.pending import Pending, sort_parts
from memory_bridge.replay.slicing import HOLD_MARGIN_SECONDS, SliceBudget

GroupKey = tuple[str, str, Identifier | None]


def plan(pending: list[Pending], records: dict[str, LedgerRecord]) -> tuple[list[dict[str, Any]], int]:
    """One row per profile (or per author still to resolve), and how many twins were left out."""
    # One group per profile, or per author still to resolve (one Lookup each, as the run makes).
    groups: OrderedDict[GroupKey, list[Pending]] = OrderedDict()
    planned: set[str] = set()
    twins = 0
    changes: list[Pending] = []
    for item in pending:
        if item.envelope.change is not None:
            changes.append(item)  # an edit or a removal: changed in place, not posted
            continue
        sort_parts(item, records.get(item.message_sid))
        if not item.parts:
            continue
        if item.message_sid in planned:
            # The same message on the queue twice (SQS delivers at least once; a send retried
            # after a lost answer): the run posts it once and deletes the copy.
            twins += 1
            continue
        planned.add(item.message_sid)
        identifier = None if item.profile_id else item.envelope.identifier
        who = item.profile_id or (f"unresolved {identifier.id_type}" if identifier else "unresolved")
        groups.setdefault((item.envelope.store_id, who, identifier), []).append(item)
    rows = [_row(key, items) for key, items in groups.items()]
    return rows + ([_changes_row(changes)] if changes else []), twins


def more_than_one_slice(run: RunContext, rows: list[dict[str, Any]]) -> str | None:
    """Counted as one slice; when its requests, at the rate, would outlast the messages' hold, the
    real run works in several and groups less across them: say so rather than promise the count."""
    requests = sum(row["requests"] for row in rows)
    seconds = requests * SliceBudget(run, 0).seconds_per_request
    hold = run.options.visibility_timeout - HOLD_MARGIN_SECONDS
    if seconds <= hold:
        return None
    return (
        f"the {requests} requests take about {seconds:.0f} s at this rate, longer than a slice's "
        f"hold ({hold:.0f} s): the run works in several slices and may make more requests than counted; "
        "a higher --rate (or a longer visibility timeout) keeps them together"
    )


def _row(key: GroupKey, items: list[Pending]) -> dict[str, Any]:
    store_id, who, identifier = key
    checks = 1 if any(i.check for i in items) else 0
    lookups = 1 if identifier is not None else 0
    return {
        "storeId": store_id,
        "profile": who,
        "messages": len(items),
        "observations": sum(len(i.parts) for i in items),
        # A Lookup for an author not yet resolved (one more to create a profile not found),
        # List Observations where Memory may hold some already, then the posts.
        "requests": request_count([len(i.parts) for i in items]) + checks + lookups,
        "checks": checks,
        "lookups": lookups,
        "messageSids": [i.message_sid for i in items],
        "ambiguous": sum(1 for i in items if i.check),
    }


def _changes_row(items: list[Pending]) -> dict[str, Any]:
    """Parked edits and removals: per message a Lookup, a List page and a PATCH or DELETE per part
    (fewer when the profile is cached or the ledger has the ids)."""
    parts = sum(len(i.envelope.observations) for i in items)
    return {
        "storeId": items[0].envelope.store_id,
        "profile": "edits and removals",
        "messages": len(items),
        "observations": parts,
        "requests": 2 * len(items) + parts,
        "checks": 0,
        "lookups": len(items),
        "messageSids": [i.message_sid for i in items],
        "ambiguous": 0,
    }
