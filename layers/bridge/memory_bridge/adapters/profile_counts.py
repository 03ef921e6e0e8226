"""Adapter: how many observations the bridge wrote per profile (ports.ProfileCounter), on the ledger's
DynamoDB table (issue 22, Memory's 500 limit).

One item per profile, keyed `profile#<profile_id>` in the table's `id`, with a number `count` and the
ledger's TTL attribute `expiration`, refreshed by every write. One UpdateItem per call (ADD), on the
ledger's own client and deadline. A give-back never takes the count below 0: it is conditional on the
count covering it, and a refused one leaves the count as it is (high is the safe side).
"""

from __future__ import annotations

import time
from typing import Any

from memory_bridge.adapters.ledger_table import LedgerTable

KEY_PREFIX = "profile#"


class ProfileCountTable:
    def __init__(self, ledger: LedgerTable, clock: Any = time.time):
        self.ledger = ledger
        self._clock = clock

    def add_observations(self, profile_id: str, count: int, timeout: float) -> int:
        ledger = self.ledger
        client = ledger.client
        request: dict[str, Any] = {
            "TableName": ledger.table_name,
            "Key": {"id": {"S": KEY_PREFIX + profile_id}},
            "UpdateExpression": "ADD #count :n SET #exp = :exp",
            "ExpressionAttributeNames": {"#count": "count", "#exp": "expiration"},
            "ExpressionAttributeValues": {
                ":n": {"N": str(count)},
                ":exp": {"N": str(int(self._clock()) + ledger.expires_after)},
            },
            "ReturnValues": "UPDATED_NEW",
        }
        if count < 0:
            request["ConditionExpression"] = "#count >= :back"
            request["ExpressionAttributeValues"][":back"] = {"N": str(-count)}

        def call() -> int:
            try:
                answer = client.update_item(**request)
            except client.exceptions.ConditionalCheckFailedException:
                return -1  # not counted (expired, or fewer than given back): left as it is
            return int(answer["Attributes"]["count"]["N"])

        result: int = ledger.guarded(timeout, "profile count", call)
        return max(result, 0)
