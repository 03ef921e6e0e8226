"""The ledger's after-posting calls (issue 22), mixed into LedgerTable: a removal's tombstone, an
edit's claim, the parts an edit posts anew or Memory no longer holds."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from memory_bridge.adapters.ledger_records import record_from_item
from memory_bridge.adapters.ledger_updates import (
    edit_claim_update,
    forget_parts_update,
    ids_update,
    mark_unsure_update,
    removal_done_update,
    tombstone_update,
)
from memory_bridge.domain.ledger import ClaimResult, LedgerRecord


class LedgerLifecycle:
    """Needs LedgerTable's table_name, client, _key, _guarded and _expires_after."""

    table_name: str
    _expires_after: int

    @property
    def client(self) -> Any:
        raise NotImplementedError

    def _key(self, message_sid: str) -> dict[str, Any]:
        raise NotImplementedError

    def _guarded(self, timeout: float, what: str, call: Callable[[], Any]) -> Any:
        raise NotImplementedError

    def conditional_claim(
        self,
        message_sid: str,
        update: dict[str, Any],
        owner: str,
        lease_until: float,
        finished: Callable[[LedgerRecord], bool],
        timeout: float,
    ) -> ClaimResult:
        raise NotImplementedError

    def tombstone(
        self, message_sid: str, removed_at: str, now: float, timeout: float, keep_seconds: int | None = None
    ) -> LedgerRecord:
        """Mark the message removed (before Memory is touched); the record as it is now. `keep_seconds`
        (an erasure): the record then expires that long from now, whatever its expiry was."""
        expires = int(now) + (keep_seconds if keep_seconds is not None else self._expires_after)
        request = tombstone_update(removed_at, expires, extend=keep_seconds is not None)
        client = self.client

        def call() -> Any:
            return client.update_item(
                TableName=self.table_name, Key=self._key(message_sid), **request, ReturnValues="ALL_NEW"
            )

        record = record_from_item(message_sid, self._guarded(timeout, "tombstone", call).get("Attributes"))
        return record or LedgerRecord(message_sid, removed=removed_at)

    def finish_removal(self, message_sid: str, timeout: float) -> None:
        request = {"TableName": self.table_name, "Key": self._key(message_sid), **removal_done_update()}
        client = self.client
        self._guarded(timeout, "removal", lambda: client.update_item(**request))

    # ---- edits (issue 22) -------------------------------------------------------------

    def claim_edit(
        self,
        message_sid: str,
        owner: str,
        edited_at: str,
        lease_until: float,
        now: float,
        timeout: float,
        pending: Mapping[int, str] | None = None,
    ) -> ClaimResult:
        """The lease for an edit: Claimed(the record before), Busy (leased), or Finished (removed,
        this edit done, or a newer one seen: the record says which)."""
        update = edit_claim_update(
            owner, edited_at, lease_until, now, int(now) + self._expires_after, pending or {}
        )

        def finished(record: LedgerRecord) -> bool:
            stale = record.edited is not None and record.edited > edited_at
            return record.removed is not None or stale or record.edit_done == edited_at

        return self.conditional_claim(message_sid, update, owner, lease_until, finished, timeout)

    def mark_unsure(
        self, message_sid: str, owner: str, parts: Sequence[int], keys: Mapping[int, str], timeout: float
    ) -> bool:
        """Parts about to be posted by an edit, with their digests; False if the lease is lost."""
        request = {
            "TableName": self.table_name,
            "Key": self._key(message_sid),
            **mark_unsure_update(owner, parts, keys),
        }
        client = self.client

        def call() -> bool:
            try:
                client.update_item(**request)
            except client.exceptions.ConditionalCheckFailedException:
                return False
            return True

        marked: bool = self._guarded(timeout, "mark", call)
        return marked

    def remember_ids(self, message_sid: str, ids: Mapping[int, str], timeout: float) -> None:
        """The observation ids found for these parts (nothing else changes)."""
        request = {"TableName": self.table_name, "Key": self._key(message_sid), **ids_update(ids)}
        client = self.client
        self._guarded(timeout, "ids", lambda: client.update_item(**request))

    def forget_parts(self, message_sid: str, parts: Sequence[int], timeout: float) -> None:
        request = {"TableName": self.table_name, "Key": self._key(message_sid), **forget_parts_update(parts)}
        client = self.client
        self._guarded(timeout, "forget", lambda: client.update_item(**request))
