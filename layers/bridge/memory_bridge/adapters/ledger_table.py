"""Adapter: the delivery ledger (memory_bridge.domain.ledger) on the stack's DynamoDB table.

One item per MessageSid, keyed `message#<MessageSid>` in the table's `id` attribute, expiring
through the table's TTL attribute `expiration`. Every call runs under a wall-clock deadline taken
from the caller's time left; a table that is slow, refuses or hangs raises LedgerUnavailable.

Calls per message: the webhook makes two (claim, settle); a replay makes one batched read per
100 messages, then a claim and a settle per message it posts.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from memory_bridge.adapters.ledger_lifecycle import LedgerLifecycle
from memory_bridge.adapters.ledger_records import record_from_item
from memory_bridge.adapters.ledger_updates import (
    accepted_update,
    claim_update,
    replay_claim_update,
    settle_update,
    version_of,
)
from memory_bridge.deadlines import DeadlineExceeded, call_within
from memory_bridge.domain.ledger import Busy, Claimed, ClaimResult, Finished, LedgerRecord, Settlement
from memory_bridge.ports import LedgerUnavailable

KEY_PREFIX = "message#"


def default_dynamodb_client() -> Any:
    import boto3
    from botocore.config import Config

    # Short timeouts and two tries, so that even an abandoned call ends soon on its own; the
    # caller's deadline (call_within) is what bounds the wait.
    config = Config(
        connect_timeout=0.5,
        read_timeout=1.0,
        retries={"total_max_attempts": 2, "mode": "standard"},
        parameter_validation=False,
    )
    return boto3.client("dynamodb", config=config)


def replay_dynamodb_client() -> Any:
    """The replay's: no Twilio waits on it, so a slow transaction gets the ledger's own 5 s
    (replay/books.py) rather than the webhook's 1 s, which stopped a 100,000-message bench run."""
    import boto3
    from botocore.config import Config

    config = Config(
        connect_timeout=1.0,
        read_timeout=5.0,
        retries={"total_max_attempts": 2, "mode": "standard"},
        parameter_validation=False,
    )
    return boto3.client("dynamodb", config=config)


class LedgerTable(LedgerLifecycle):
    def __init__(
        self,
        table_name: str,
        expires_after_seconds: int,
        client_factory: Callable[[], Any] = default_dynamodb_client,
    ):
        self.table_name = table_name
        self._expires_after = expires_after_seconds
        self._client_factory = client_factory
        self._client: Any = None
        self.calls = 0

    @property
    def expires_after(self) -> int:
        return self._expires_after

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = self._client_factory()
        return self._client

    def _key(self, message_sid: str) -> dict[str, Any]:
        return {"id": {"S": KEY_PREFIX + message_sid}}

    def _call(self, seconds: float, what: str, call: Callable[[], Any]) -> Any:
        self.calls += 1
        # The lean client (memory_bridge.adapters.aws_json) keeps the deadline on this thread by cutting its
        # socket; boto3's calls are run on a worker thread and abandoned at the deadline.
        within = getattr(self.client, "within", None)
        try:
            if within is not None:
                if seconds <= 0:
                    raise DeadlineExceeded("no time left for the call")
                with within(seconds):
                    return call()
            return call_within(seconds, call)
        except DeadlineExceeded:
            raise LedgerUnavailable(f"ledger {what}: no answer in time") from None

    # ---- the webhook -----------------------------------------------------------------

    def claim(
        self,
        message_sid: str,
        owner: str,
        parts: int,
        lease_until: float,
        now: float,
        timeout: float,
        keys: Mapping[int, str] | None = None,
    ) -> ClaimResult:
        """Take the lease unless the message finished or is leased; mark every part unsure (with the
        digests of its words, `keys`)."""
        update = claim_update(owner, parts, lease_until, now, int(now) + self._expires_after, keys)

        def finished(record: LedgerRecord) -> bool:
            return record.outcome is not None or record.removed is not None  # this add posts nothing

        return self.conditional_claim(message_sid, update, owner, lease_until, finished, timeout)

    def conditional_claim(
        self,
        message_sid: str,
        update: dict[str, Any],
        owner: str,
        lease_until: float,
        finished: Callable[[LedgerRecord], bool],
        timeout: float,
    ) -> ClaimResult:
        """One claim's UpdateItem (an add's or an edit's): Claimed with the record as it was; when its
        condition refused it, Finished for a record `finished` says is done with, else Busy."""
        client = self.client

        def call() -> ClaimResult:
            try:
                answer = client.update_item(
                    TableName=self.table_name,
                    Key=self._key(message_sid),
                    **update,
                    ReturnValues="ALL_OLD",
                    ReturnValuesOnConditionCheckFailure="ALL_OLD",
                )
            except client.exceptions.ConditionalCheckFailedException as refused:
                record = record_from_item(message_sid, refused.response.get("Item"))
                if record is None:  # raced with a TTL delete: nothing to protect any more
                    return Claimed(None)
                if finished(record):
                    return Finished(record)
                if record.lease_owner == owner and record.lease_until == float(f"{lease_until:.3f}"):
                    # boto3 retried a claim whose first attempt landed: the lease is ours. What came
                    # before is lost, so every part not accepted counts as in doubt (checked, not posted).
                    return Claimed(record)
                return Busy(record)
            return Claimed(record_from_item(message_sid, answer.get("Attributes")))

        result: ClaimResult = self._guarded(timeout, "claim", call)
        return result

    def settle(self, settlement: Settlement, timeout: float) -> int | None:
        """Write what a delivery learnt and give up its lease (and record its answer, if any).

        Returns the record's version after the write (None if nothing was written)."""
        where = {"TableName": self.table_name, "Key": self._key(settlement.message_sid)}
        request = {**where, **settle_update(settlement)}
        client = self.client

        def call() -> int | None:
            try:
                answer = client.update_item(**request, ReturnValues="UPDATED_NEW")
            except client.exceptions.ConditionalCheckFailedException:
                # Someone claimed it since: keep their doubt, add only what Memory surely holds.
                if not settlement.accepted:
                    return None
                answer = client.update_item(
                    **where, **accepted_update(settlement), ReturnValues="UPDATED_NEW"
                )
            return version_of(answer)

        version: int | None = self._guarded(timeout, "settle", call)
        return version

    # ---- the replay ------------------------------------------------------------------

    def read_many(self, message_sids: Sequence[str], timeout: float) -> dict[str, LedgerRecord]:
        """Records for these MessageSids (absent ones are left out), 100 keys per call."""
        found: dict[str, LedgerRecord] = {}
        unique = list(dict.fromkeys(message_sids))
        client = self.client
        for start in range(0, len(unique), 100):
            keys = [self._key(sid) for sid in unique[start : start + 100]]
            for _ in range(5):  # UnprocessedKeys: DynamoDB's own back-pressure
                request: dict[str, Any] = {self.table_name: {"Keys": keys, "ConsistentRead": True}}

                def read(r: dict[str, Any] = request) -> Any:
                    return client.batch_get_item(RequestItems=r)

                answer = self._guarded(timeout, "read", read)
                for item in answer.get("Responses", {}).get(self.table_name, []):
                    sid = item["id"]["S"][len(KEY_PREFIX) :]
                    record = record_from_item(sid, item)
                    if record is not None:
                        found[sid] = record
                keys = (answer.get("UnprocessedKeys") or {}).get(self.table_name, {}).get("Keys") or []
                if not keys:
                    break
            if keys:
                raise LedgerUnavailable("ledger read: keys left unprocessed")
        return found

    def claim_many(
        self,
        claims: Sequence[tuple[str, int | None, Sequence[int]]],
        owner: str,
        lease_until: float,
        now: float,
        timeout: float,
        keys: Mapping[str, Mapping[int, str]] | None = None,
    ) -> dict[str, int]:
        """Mark parts unsure and take the lease on several messages, one conditional update each
        (`keys`: per MessageSid, the digests of the parts' words, written with them).

        Each claim is (MessageSid, the version read before, parts); it holds only if the record is
        unchanged since, or if it is this very claim (same owner, same lease end) that boto3 retried
        after its first attempt landed. Returns the claimed MessageSids with their version now; the
        others changed under us (nothing was written for them). One call per message rather than
        one transaction: a claim that fails leaves the others standing, which is what the replay wants.
        """
        claimed: dict[str, int] = {}
        client = self.client
        for sid, version, parts in claims:
            request = {
                "TableName": self.table_name,
                "Key": self._key(sid),
                **replay_claim_update(
                    version, parts, owner, lease_until, int(now) + self._expires_after, (keys or {}).get(sid)
                ),
                "ReturnValues": "UPDATED_NEW",
            }

            def call(r: dict[str, Any] = request) -> int | None:
                try:
                    return version_of(client.update_item(**r))
                except client.exceptions.ConditionalCheckFailedException:
                    return None

            now_version = self._guarded(timeout, "claim", call)
            if now_version is not None:
                claimed[sid] = now_version
        return claimed

    def settle_many(self, settlements: Sequence[Settlement], timeout: float) -> dict[str, int]:
        """Settle each; returns the versions after the writes that were made."""
        versions: dict[str, int] = {}
        for settlement in settlements:
            version = self.settle(settlement, timeout)
            if version is not None:
                versions[settlement.message_sid] = version
        return versions

    # ---- shared ----------------------------------------------------------------------

    def guarded(self, timeout: float, what: str, call: Callable[[], Any]) -> Any:
        """Run `call` (on this table's client) under the deadline; LedgerUnavailable on any failure."""
        return self._guarded(timeout, what, call)

    def _guarded(self, timeout: float, what: str, call: Callable[[], Any]) -> Any:
        try:
            return self._call(timeout, what, call)
        except LedgerUnavailable:
            raise
        except Exception as error:  # noqa: BLE001 - botocore raises many types; all mean "not written"
            raise LedgerUnavailable(f"ledger {what} failed: {type(error).__name__}") from None
