"""The ledger table's UpdateItem parameters (memory_bridge.adapters.ledger_table), without the table
and the key: what each write sets, adds and deletes, and the condition it holds under.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from memory_bridge.domain.ledger import Settlement

# Attribute names, always through ExpressionAttributeNames (several are DynamoDB reserved words).
NAMES = {
    "#acc": "accepted",
    "#uns": "unsure",
    "#owner": "lease_owner",
    "#until": "lease_until",
    "#out": "outcome",
    "#ver": "version",
    "#exp": "expiration",
    "#rem": "removed",
    "#remdone": "removal_done",
}


def numbers(parts: Iterable[int]) -> dict[str, list[str]]:
    return {"NS": [str(p) for p in sorted(set(parts))]}


def used_names(*names: str) -> dict[str, str]:
    return {name: NAMES[name] for name in names}


def claim_update(owner: str, parts: int, lease_until: float, now: float, expires_at: int) -> dict[str, Any]:
    """The webhook's claim: the lease unless the message finished or is leased; every part unsure."""
    values: dict[str, Any] = {
        ":owner": {"S": owner},
        ":until": {"N": f"{lease_until:.3f}"},
        ":now": {"N": f"{now:.3f}"},
        ":zero": {"N": "0"},
        ":one": {"N": "1"},
        ":exp": {"N": str(expires_at)},
    }
    update = "SET #owner = :owner, #until = :until, #ver = if_not_exists(#ver, :zero) + :one, #exp = :exp"
    names = used_names("#owner", "#until", "#ver", "#exp", "#out", "#rem")
    if parts:
        values[":parts"] = numbers(range(parts))
        update += " ADD #uns :parts"
        names["#uns"] = NAMES["#uns"]
    return {
        "UpdateExpression": update,
        "ConditionExpression": "attribute_not_exists(id) OR "
        "(attribute_not_exists(#out) AND attribute_not_exists(#rem) AND #until < :now)",
        "ExpressionAttributeNames": names,
        "ExpressionAttributeValues": values,
    }


def replay_claim_update(
    version: int | None, parts: Iterable[int], owner: str, lease_until: float, expires_at: int
) -> dict[str, Any]:
    """The replay's claim of one message: its parts unsure and the lease, if the record is unchanged
    since it was read at `version` (None: absent), or if this very claim landed already."""
    values: dict[str, Any] = {
        ":owner": {"S": owner},
        ":until": {"N": f"{lease_until:.3f}"},
        ":zero": {"N": "0"},
        ":one": {"N": "1"},
        ":exp": {"N": str(expires_at)},
        ":parts": numbers(parts),
    }
    if version is None:
        condition = "attribute_not_exists(id)"
    else:
        condition = "#ver = :seen"
        values[":seen"] = {"N": str(version)}
    condition = f"({condition}) OR (#owner = :owner AND #until = :until)"
    return {
        "UpdateExpression": "SET #owner = :owner, #until = :until, "
        "#ver = if_not_exists(#ver, :zero) + :one, #exp = :exp ADD #uns :parts",
        "ConditionExpression": condition,
        "ExpressionAttributeNames": used_names("#owner", "#until", "#ver", "#exp", "#uns"),
        "ExpressionAttributeValues": values,
    }


def settle_update(settlement: Settlement) -> dict[str, Any]:
    """What a delivery learnt, its answer if any, and its lease given up (while the lease is its own)."""
    values: dict[str, Any] = {":zero": {"N": "0"}, ":one": {"N": "1"}}
    sets = ["#until = :zero", "#ver = if_not_exists(#ver, :zero) + :one"]
    names = ["#until", "#ver"]
    clauses = []
    if settlement.outcome is not None:
        sets.append("#out = :out")
        names.append("#out")
        values[":out"] = {"S": json.dumps(settlement.outcome, separators=(",", ":"))}
    clauses.append("SET " + ", ".join(sets))
    if settlement.accepted:
        clauses.append("ADD #acc :acc")
        names.append("#acc")
        values[":acc"] = numbers(settlement.accepted)
    if settlement.cleared:
        clauses.append("DELETE #uns :cleared")
        names.append("#uns")
        values[":cleared"] = numbers(settlement.cleared)
    update: dict[str, Any] = {
        "UpdateExpression": " ".join(clauses),
        "ExpressionAttributeNames": used_names(*names),
        "ExpressionAttributeValues": values,
    }
    if settlement.owner is not None:
        update["ConditionExpression"] = "#owner = :me"
        update["ExpressionAttributeNames"]["#owner"] = NAMES["#owner"]
        values[":me"] = {"S": settlement.owner}
    return update


def accepted_update(settlement: Settlement) -> dict[str, Any]:
    """Only what Memory surely holds: for a settle whose lease was taken since."""
    return {
        "UpdateExpression": "SET #ver = if_not_exists(#ver, :zero) + :one ADD #acc :acc",
        "ExpressionAttributeNames": used_names("#ver", "#acc"),
        "ExpressionAttributeValues": {
            ":zero": {"N": "0"},
            ":one": {"N": "1"},
            ":acc": numbers(settlement.accepted),
        },
    }


def version_of(answer: Any) -> int:
    """The record's version in an UpdateItem answer (ReturnValues UPDATED_NEW), 0 when absent."""
    return int(((answer or {}).get("Attributes") or {}).get("version", {}).get("N", 0))


def tombstone_update(removed_at: str, expires_at: int, *, extend: bool = False) -> dict[str, Any]:
    """onMessageRemoved's tombstone: kept as first written, the version raised (so that a replay
    that read the record before fails its claim and reads it again), the expiry kept or set.
    `extend` (an erasure) sets the expiry whatever it was: the tombstone must outlive the record's
    usual life, or a backfill run after it would post the erased customer's past messages again."""
    expiry = "#exp = :exp" if extend else "#exp = if_not_exists(#exp, :exp)"
    return {
        "UpdateExpression": "SET #rem = if_not_exists(#rem, :at), #ver = if_not_exists(#ver, :zero) + :one, "
        + expiry,
        "ExpressionAttributeNames": used_names("#rem", "#ver", "#exp"),
        "ExpressionAttributeValues": {
            ":at": {"S": removed_at},
            ":zero": {"N": "0"},
            ":one": {"N": "1"},
            ":exp": {"N": str(expires_at)},
        },
    }


def removal_done_update() -> dict[str, Any]:
    return {
        "UpdateExpression": "SET #remdone = :yes, #ver = if_not_exists(#ver, :zero) + :one",
        "ExpressionAttributeNames": used_names("#remdone", "#ver"),
        "ExpressionAttributeValues": {":yes": {"BOOL": True}, ":zero": {"N": "0"}, ":one": {"N": "1"}},
    }
