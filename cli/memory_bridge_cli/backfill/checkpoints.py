"""Where each conversation's backfill got to, in the ledger table: one item per conversation, keyed
`backfill#<CH…>` beside the ledger's `message#<IM…>` items, never expiring.

  through   every message up to this index was handled (posted, found posted, parked, or skipped)
  done      the conversation is closed and every message was handled: a later run does not read it

A checkpoint is written once a conversation's messages are all settled, and at the end of a run for
those it did not finish. It only saves reading: the ledger (per MessageSid) is what keeps a message
from being posted twice, so a checkpoint lost to a kill -9 costs a re-read, never a second copy.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

KEY_PREFIX = "backfill#"


@dataclass(frozen=True)
class Checkpoint:
    through: int | None = None
    done: bool = False


class Checkpoints:
    def __init__(self, client: Any, table: str):
        self.client, self.table = client, table
        self.writes = 0

    def _key(self, conversation_sid: str) -> dict[str, Any]:
        return {"id": {"S": KEY_PREFIX + conversation_sid}}

    def get(self, conversation_sid: str) -> Checkpoint:
        item = self.client.get_item(
            TableName=self.table, Key=self._key(conversation_sid), ConsistentRead=True
        ).get("Item")
        if not item:
            return Checkpoint()
        through = item.get("through", {}).get("N")
        return Checkpoint(
            int(through) if through is not None else None, bool(item.get("done", {}).get("BOOL"))
        )

    def put(self, conversation_sid: str, through: int, done: bool) -> None:
        """Move the checkpoint forward (never back: a slower run finishing late keeps a faster one's)."""
        self.writes += 1
        with contextlib.suppress(self.client.exceptions.ConditionalCheckFailedException):
            self.client.update_item(
                TableName=self.table,
                Key=self._key(conversation_sid),
                UpdateExpression="SET through = :t, done = :d, updatedAt = :at",
                ConditionExpression="attribute_not_exists(through) OR through <= :t",
                ExpressionAttributeValues={
                    ":t": {"N": str(through)},
                    ":d": {"BOOL": done},
                    ":at": {"S": datetime.now(UTC).isoformat(timespec="seconds")},
                },
            )
