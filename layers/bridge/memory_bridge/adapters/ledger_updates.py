"""The ledger table's UpdateItem parameters (memory_bridge.adapters.ledger_table), without the table
and the key: what each write sets, adds and deletes, and the condition it holds under.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
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
    "#edited": "edited",
    "#edone": "edit_done",
    "#pat": "posted_at",
}


def part_names(prefix: str, parts: Iterable[int]) -> dict[str, str]:
    """One top-level attribute per part (`k0`, `o1`, …): a message has a handful, and a nested map
    would need to exist before any of its entries could be set."""
    return {f"#{prefix}{p}": f"{prefix}{p}" for p in parts}


def _set_parts(
    prefix: str, values: Mapping[int, str], sets: list[str], names: dict[str, str], bound: dict[str, Any]
) -> None:
    for part, value in sorted(values.items()):
        sets.append(f"#{prefix}{part} = :{prefix}{part}")
        names[f"#{prefix}{part}"] = f"{prefix}{part}"
        bound[f":{prefix}{part}"] = {"S": value}


def numbers(parts: Iterable[int]) -> dict[str, list[str]]:
    return {"NS": [str(p) for p in sorted(set(parts))]}


def used_names(*names: str) -> dict[str, str]:
    return {name: NAMES[name] for name in names}


def claim_update(
    owner: str,
    parts: int,
    lease_until: float,
    now: float,
    expires_at: int,
    keys: Mapping[int, str] | None = None,
) -> dict[str, Any]:
    """The webhook's claim: the lease unless the message finished or is leased; every part unsure, with
    the digest of its words (an edit finds a part in doubt by it, even when the settle never came)."""
    values: dict[str, Any] = {
        ":owner": {"S": owner},
        ":until": {"N": f"{lease_until:.3f}"},
        ":now": {"N": f"{now:.3f}"},
        ":zero": {"N": "0"},
        ":one": {"N": "1"},
        ":exp": {"N": str(expires_at)},
    }
    sets = ["#owner = :owner", "#until = :until", "#ver = if_not_exists(#ver, :zero) + :one", "#exp = :exp"]
    names = used_names("#owner", "#until", "#ver", "#exp", "#out", "#rem")
    _set_parts("k", keys or {}, sets, names, values)
    update = "SET " + ", ".join(sets)
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
    version: int | None,
    parts: Iterable[int],
    owner: str,
    lease_until: float,
    expires_at: int,
    keys: Mapping[int, str] | None = None,
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
    sets = ["#owner = :owner", "#until = :until", "#ver = if_not_exists(#ver, :zero) + :one", "#exp = :exp"]
    names = used_names("#owner", "#until", "#ver", "#exp", "#uns")
    _set_parts("k", keys or {}, sets, names, values)
    return {
        "UpdateExpression": "SET " + ", ".join(sets) + " ADD #uns :parts",
        "ConditionExpression": condition,
        "ExpressionAttributeNames": names,
        "ExpressionAttributeValues": values,
    }


def settle_update(settlement: Settlement) -> dict[str, Any]:
    """What a delivery learnt, its answer if any, and its lease given up (while the lease is its own)."""
    values: dict[str, Any] = {":zero": {"N": "0"}, ":one": {"N": "1"}}
    sets = ["#until = :zero", "#ver = if_not_exists(#ver, :zero) + :one"]
    names = ["#until", "#ver"]
    clauses = []
    if settlement.outcome is not None:
        # Kept as first written: an edit finishing after its add does not change the add's answer.
        sets.append("#out = if_not_exists(#out, :out)")
        names.append("#out")
        values[":out"] = {"S": json.dumps(settlement.outcome, separators=(",", ":"))}
    if settlement.edit_done is not None:
        sets.append("#edone = :edone")
        names.append("#edone")
        values[":edone"] = {"S": settlement.edit_done}
    if settlement.accepted and settlement.at:
        sets.append("#pat = :pat")
        names.append("#pat")
        values[":pat"] = {"N": f"{settlement.at:.3f}"}
    part_attrs: dict[str, str] = {}
    _set_parts("k", settlement.keys, sets, part_attrs, values)
    _set_parts("o", settlement.ids, sets, part_attrs, values)
    clauses.append("SET " + ", ".join(sets))
    if settlement.settled_pending:  # the edit's words are its keys now: its pending digests go
        part_attrs.update(pending := part_names("p", settlement.settled_pending))
        clauses.append("REMOVE " + ", ".join(sorted(pending)))
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
        "ExpressionAttributeNames": {**used_names(*names), **part_attrs},
        "ExpressionAttributeValues": values,
    }
    if settlement.owner is not None:
        update["ConditionExpression"] = "#owner = :me"
        update["ExpressionAttributeNames"]["#owner"] = NAMES["#owner"]
        values[":me"] = {"S": settlement.owner}
    return update


def accepted_update(settlement: Settlement) -> dict[str, Any]:
    """Only what Memory surely holds: for a settle whose lease was taken since."""
    values: dict[str, Any] = {":zero": {"N": "0"}, ":one": {"N": "1"}, ":acc": numbers(settlement.accepted)}
    sets = ["#ver = if_not_exists(#ver, :zero) + :one"]
    part_attrs: dict[str, str] = {}
    _set_parts(
        "k", {p: k for p, k in settlement.keys.items() if p in settlement.accepted}, sets, part_attrs, values
    )
    return {
        "UpdateExpression": "SET " + ", ".join(sets) + " ADD #acc :acc",
        "ExpressionAttributeNames": {**used_names("#ver", "#acc"), **part_attrs},
        "ExpressionAttributeValues": values,
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


def edit_claim_update(
    owner: str, edited_at: str, lease_until: float, now: float, expires_at: int, pending: Mapping[int, str]
) -> dict[str, Any]:
    """onMessageUpdated's claim (issue 22): the lease and the newest edit's time, unless the message
    was removed, is leased, or this edit (or a newer one) was seen. Unlike an add's claim it holds
    after the add answered: an edit changes what an earlier delivery posted. No part is marked
    unsure here: an edit changes observations in place; what it posts anew is marked before.
    `pending`: per part, the digest of the words it will write (a lost settle leaves only these)."""
    adds = "".join(f", #p{p} :p{p}" for p in sorted(pending))
    return {
        "UpdateExpression": "SET #owner = :owner, #until = :until, #edited = :at, "
        "#ver = if_not_exists(#ver, :zero) + :one, #exp = if_not_exists(#exp, :exp)"
        + (" ADD" + adds[1:] if adds else ""),
        "ConditionExpression": "(attribute_not_exists(id) OR (attribute_not_exists(#rem) AND #until < :now)) "
        "AND (attribute_not_exists(#edited) OR #edited <= :at) "
        "AND (attribute_not_exists(#edone) OR #edone < :at)",
        "ExpressionAttributeNames": {
            **used_names("#owner", "#until", "#edited", "#ver", "#exp", "#rem", "#edone"),
            **part_names("p", pending),
        },
        "ExpressionAttributeValues": {
            **{f":p{p}": {"SS": [digest]} for p, digest in pending.items()},
            ":owner": {"S": owner},
            ":until": {"N": f"{lease_until:.3f}"},
            ":now": {"N": f"{now:.3f}"},
            ":at": {"S": edited_at},
            ":zero": {"N": "0"},
            ":one": {"N": "1"},
            ":exp": {"N": str(expires_at)},
        },
    }


def mark_unsure_update(owner: str, parts: Iterable[int], keys: Mapping[int, str]) -> dict[str, Any]:
    """Before an edit posts parts anew: unsure, with the digests of their words (so that a crash
    after the post leaves them findable), while the lease is the edit's."""
    values: dict[str, Any] = {
        ":parts": numbers(parts),
        ":me": {"S": owner},
        ":zero": {"N": "0"},
        ":one": {"N": "1"},
    }
    sets = ["#ver = if_not_exists(#ver, :zero) + :one"]
    part_attrs: dict[str, str] = {}
    _set_parts("k", keys, sets, part_attrs, values)
    return {
        "UpdateExpression": "SET " + ", ".join(sets) + " ADD #uns :parts",
        "ConditionExpression": "#owner = :me",
        "ExpressionAttributeNames": {**used_names("#ver", "#uns", "#owner"), **part_attrs},
        "ExpressionAttributeValues": values,
    }


def ids_update(ids: Mapping[int, str]) -> dict[str, Any]:
    sets: list[str] = []
    names: dict[str, str] = {}
    values: dict[str, Any] = {}
    _set_parts("o", ids, sets, names, values)
    return {
        "UpdateExpression": "SET " + ", ".join(sets),
        "ExpressionAttributeNames": names,
        "ExpressionAttributeValues": values,
    }


def forget_parts_update(parts: Iterable[int]) -> dict[str, Any]:
    """Parts Memory no longer holds (an edit shortened it, Memory dropped them): all forgotten."""
    chosen = sorted(set(parts))
    attrs = {**part_names("k", chosen), **part_names("o", chosen), **part_names("p", chosen)}
    return {
        "UpdateExpression": "SET #ver = if_not_exists(#ver, :zero) + :one REMOVE "
        + ", ".join(sorted(attrs))
        + " DELETE #acc :gone, #uns :gone",
        "ExpressionAttributeNames": {**used_names("#ver", "#acc", "#uns"), **attrs},
        "ExpressionAttributeValues": {":gone": numbers(chosen), ":zero": {"N": "0"}, ":one": {"N": "1"}},
    }
