"""A ledger item (DynamoDB's attribute values) read back as the domain's LedgerRecord."""

from __future__ import annotations

import json
from typing import Any

from memory_bridge.domain.ledger import LedgerRecord


def record_from_item(message_sid: str, item: dict[str, Any] | None) -> LedgerRecord | None:
    if not item:
        return None

    def number_set(name: str) -> frozenset[int]:
        return frozenset(int(v) for v in (item.get(name) or {}).get("NS", []))

    def text(name: str) -> str | None:
        value: str | None = (item.get(name) or {}).get("S")
        return value

    def by_part(prefix: str, kind: str = "S") -> dict[int, Any]:
        return {
            int(name[1:]): value[kind]
            for name, value in item.items()
            if name[:1] == prefix and name[1:].isdigit() and kind in value
        }

    outcome_text = text("outcome")
    return LedgerRecord(
        message_sid=message_sid,
        accepted=number_set("accepted"),
        unsure=number_set("unsure"),
        lease_owner=text("lease_owner"),
        lease_until=float((item.get("lease_until") or {}).get("N", 0)),
        outcome=json.loads(outcome_text) if outcome_text else None,
        version=int((item.get("version") or {}).get("N", 0)),
        removed=text("removed"),
        removal_done=bool((item.get("removal_done") or {}).get("BOOL", False)),
        keys=by_part("k"),
        ids=by_part("o"),
        pending={p: frozenset(d) for p, d in by_part("p", "SS").items()},
        edited=text("edited"),
        edit_done=text("edit_done"),
        posted_at=float((item.get("posted_at") or {}).get("N", 0)),
    )
