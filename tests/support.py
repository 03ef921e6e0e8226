"""Shared test helpers: building signed webhooks exactly as Twilio does, and in-memory fakes for
unit tests (integration tests use moto's server and the Memory sandbox instead)."""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

from memory_bridge.domain.envelope import Envelope
from memory_bridge.domain.ledger import Busy, Claimed, ClaimResult, Finished, LedgerRecord, Settlement
from memory_bridge.domain.outcomes import Outcome
from memory_bridge.domain.signature import compute_signature
from memory_bridge.ports import LedgerUnavailable
from memory_bridge_dev.apigw import http_api_event, rest_api_event

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
DEV_AUTH_TOKEN = "dev-auth-token-0123456789abcdef"
DEV_ACCOUNT_SID = "AC00000000000000000000000000000000"
CHAT_SERVICE_SID = "IS00000000000000000000000000000001"
WEBHOOK_URL = "https://abc123.execute-api.us-east-1.amazonaws.com/Prod/webhooks/conversations"


def twilio_sid(label: str) -> str:
    """A SID of Twilio's format (two letters, 32 hex digits) for a short label a test reads better:
    "IM1" → "IM000…001", "IMsnap1" → "IM" + the hex of "snap1", padded. A full SID is kept as it is;
    the same label always gives the same SID, and different labels different SIDs."""
    prefix, rest = label[:2], label[2:]
    if re.fullmatch(r"[0-9a-fA-F]{0,32}", rest):
        return prefix + rest.rjust(32, "0")
    digits = rest.encode().hex()
    if len(digits) > 31:
        digits = hashlib.sha256(rest.encode()).hexdigest()[:31]
    # "f" marks a hex-encoded label, so that it never meets a label that was already hex.
    return prefix + ("f" + digits).rjust(32, "0")


def message_added(body: str = "hi", attachments: Sequence[Any] = ()) -> Any:
    """A parsed onMessageAdded (memory_bridge.domain.events.MessageAdded) for the socket-free tests."""
    from datetime import UTC, datetime

    from memory_bridge.domain.events import MessageAdded

    return MessageAdded(
        message_sid="IM1",
        conversation_sid="CH1",
        account_sid="AC1",
        author="+15555550100",
        body=body,
        date_created=datetime(2026, 11, 21, 10, 0, 0, 123000, tzinfo=UTC),
        index=1,
        attachments=tuple(attachments),
    )


def participant_sid_of(author: str) -> str:
    """The ParticipantSid an author has in the tests' conversations: one per author."""
    return "MB" + hashlib.sha256(author.encode()).hexdigest()[:32]


def message_params(
    *,
    message_sid: str = "IM00000000000000000000000000000001",
    author: str = "+15555550100",
    body: str = "Hello from the customer",
    conversation_sid: str = "CH00000000000000000000000000000001",
    date_created: str = "2026-11-21T10:00:00.123Z",
    media: str | None = None,
    event_type: str = "onMessageAdded",
    extra: Sequence[tuple[str, str]] = (),
) -> list[tuple[str, str]]:
    params = [
        ("EventType", event_type),
        ("AccountSid", DEV_ACCOUNT_SID),
        ("ConversationSid", twilio_sid(conversation_sid)),
        ("MessageSid", twilio_sid(message_sid)),
        ("ChatServiceSid", CHAT_SERVICE_SID),
        ("Index", "3"),
        ("DateCreated", date_created),
        ("Body", body),
        ("Author", author),
        # Each author is one participant of the conversation, as in Twilio (system messages have none).
        *([] if author in ("", "system") else [("ParticipantSid", participant_sid_of(author))]),
        ("Attributes", "{}"),
        ("Source", "SDK"),
        ("RetryCount", "0"),
    ]
    if media is not None:
        params.append(("Media", media))
    params.extend(extra)
    return params


def signed_event(
    params: Sequence[tuple[str, str]],
    *,
    url: str = WEBHOOK_URL,
    token: str = DEV_AUTH_TOKEN,
    signature: str | None = "compute",
    version: int = 1,
    base64_body: bool = False,
    header_case: Callable[[str], str] = str,
    extra_headers: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """An API Gateway event for a webhook POSTed to `url`, signed with `token` (or as given)."""
    body = urlencode(list(params)).encode()
    parts = urlsplit(url)
    stage, _, path = parts.path.lstrip("/").partition("/")
    headers = {
        header_case("Content-Type"): "application/x-www-form-urlencoded; charset=utf-8",
        header_case("User-Agent"): "TwilioProxy/1.1",
        header_case("I-Twilio-Idempotency-Token"): "idem-token",
    }
    if signature == "compute":
        signature = compute_signature(url, params, token)
    if signature is not None:
        headers[header_case("X-Twilio-Signature")] = signature
    headers.update(extra_headers or {})
    host = parts.netloc
    if version == 2:
        return http_api_event(
            method="POST",
            path=f"/{path}",
            headers=headers,
            body=body,
            query=parts.query,
            stage=stage,
            host=host,
        )
    return rest_api_event(
        method="POST",
        path=f"/{path}",
        headers=headers,
        body=body,
        query=parts.query,
        stage=stage,
        host=host,
        base64_body=base64_body,
    )


def body_of(response: Mapping[str, Any]) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(response["body"])
    return document


class FakeContext:
    function_name = "WebhookFunction"
    memory_limit_in_mb = 256
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:WebhookFunction"
    function_version = "$LATEST"
    log_group_name = "/aws/lambda/WebhookFunction"
    log_stream_name = "stream"

    def __init__(self, remaining_ms: int = 10_000):
        self._remaining = remaining_ms
        # One per invocation, as Lambda's: the ledger tells deliveries apart by it.
        self.aws_request_id = f"req-{uuid.uuid4().hex[:12]}"

    def get_remaining_time_in_millis(self) -> int:
        return self._remaining


# ---- in-memory fakes for unit tests -------------------------------------------------------


class ScriptedMemory:
    """A Memory client that answers from scripts, one outcome per call, and records the calls."""

    def __init__(
        self,
        lookups: list[Outcome] | None = None,
        creates: list[Outcome] | None = None,
        posts: list[Outcome] | None = None,
    ):
        self.lookups = list(lookups or [])
        self.creates = list(creates or [])
        self.posts = list(posts or [])
        self.calls: list[tuple[str, Any]] = []

    def lookup_profiles(self, store_id: str, identifier: Any, timeout: float | None = None) -> Outcome:
        self.calls.append(("lookup", identifier))
        return self.lookups.pop(0)

    def create_profile(
        self, store_id: str, trait_group: str, identifier: Any, timeout: float | None = None
    ) -> Outcome:
        self.calls.append(("create_profile", (trait_group, identifier)))
        return self.creates.pop(0)

    def create_observations(
        self, store_id: str, profile_id: str, observations: Sequence[Any], timeout: float | None = None
    ) -> Outcome:
        self.calls.append(("post", (profile_id, list(observations))))
        return self.posts.pop(0)


class ListSink:
    def __init__(self, fail: bool = False):
        self.parked: list[Envelope] = []
        self.fail = fail

    def park(self, envelope: Envelope, timeout: float | None = None) -> str:
        from memory_bridge.ports import QueueUnavailable

        if self.fail:
            raise QueueUnavailable("queue down (fake)")
        self.parked.append(envelope)
        return f"msg-{len(self.parked)}"


class InMemoryLedger:
    """The ledger's contract (memory_bridge.adapters.ledger_table.LedgerTable) with a dict instead of DynamoDB."""

    def __init__(self) -> None:
        self.records: dict[str, LedgerRecord] = {}
        self.down = False

    def _check(self) -> None:
        if self.down:
            raise LedgerUnavailable("ledger down (fake)")

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
        self._check()
        record = self.records.get(message_sid)
        if record is not None and (record.outcome is not None or record.removed is not None):
            return Finished(record)
        if record is not None and record.lease_until >= now:
            return Busy(record)
        base = record or LedgerRecord(message_sid)
        self.records[message_sid] = replace(
            base,
            unsure=base.unsure | frozenset(range(parts)),
            lease_owner=owner,
            lease_until=lease_until,
            version=base.version + 1,
            keys={**base.keys, **(keys or {})},
        )
        return Claimed(record)

    def settle(self, settlement: Settlement, timeout: float) -> int | None:
        self._check()
        return self._apply(settlement)

    def _apply(self, settlement: Settlement) -> int | None:
        base = self.records.get(settlement.message_sid) or LedgerRecord(settlement.message_sid)
        if settlement.owner is not None and base.lease_owner != settlement.owner:
            if not settlement.accepted:
                return None  # claimed by another since: only what Memory accepted is written
            keys = {**base.keys, **{p: k for p, k in settlement.keys.items() if p in settlement.accepted}}
            updated = replace(
                base, accepted=base.accepted | settlement.accepted, keys=keys, version=base.version + 1
            )
        else:
            updated = replace(
                base,
                accepted=base.accepted | settlement.accepted,
                unsure=base.unsure - settlement.cleared,
                lease_until=0.0,
                outcome=base.outcome if base.outcome is not None else settlement.outcome,
                version=base.version + 1,
                keys={**base.keys, **settlement.keys},
                ids={**base.ids, **settlement.ids},
                edit_done=settlement.edit_done or base.edit_done,
                posted_at=settlement.at if settlement.accepted and settlement.at else base.posted_at,
            )
        self.records[settlement.message_sid] = updated
        return updated.version

    def tombstone(self, message_sid: str, removed_at: str, now: float, timeout: float) -> LedgerRecord:
        self._check()
        base = self.records.get(message_sid) or LedgerRecord(message_sid)
        record = replace(base, removed=base.removed or removed_at, version=base.version + 1)
        self.records[message_sid] = record
        return record

    def finish_removal(self, message_sid: str, timeout: float) -> None:
        self._check()
        base = self.records[message_sid]
        self.records[message_sid] = replace(base, removal_done=True, version=base.version + 1)

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
        self._check()
        record = self.records.get(message_sid)
        if record is not None:
            stale = record.edited is not None and record.edited > edited_at
            if record.removed is not None or stale or record.edit_done == edited_at:
                return Finished(record)
            if record.lease_until >= now:
                return Busy(record)
        base = record or LedgerRecord(message_sid)
        self.records[message_sid] = replace(
            base, lease_owner=owner, lease_until=lease_until, edited=edited_at, version=base.version + 1
        )
        return Claimed(record)

    def mark_unsure(
        self, message_sid: str, owner: str, parts: Sequence[int], keys: Mapping[int, str], timeout: float
    ) -> bool:
        self._check()
        base = self.records[message_sid]
        if base.lease_owner != owner:
            return False
        unsure = base.unsure | frozenset(parts)
        self.records[message_sid] = replace(
            base, unsure=unsure, keys={**base.keys, **keys}, version=base.version + 1
        )
        return True

    def remember_ids(self, message_sid: str, ids: Mapping[int, str], timeout: float) -> None:
        self._check()
        base = self.records.get(message_sid) or LedgerRecord(message_sid)
        self.records[message_sid] = replace(base, ids={**base.ids, **ids})

    def forget_parts(self, message_sid: str, parts: Sequence[int], timeout: float) -> None:
        self._check()
        base, gone = self.records[message_sid], frozenset(parts)
        self.records[message_sid] = replace(
            base,
            accepted=base.accepted - gone,
            unsure=base.unsure - gone,
            keys={p: k for p, k in base.keys.items() if p not in gone},
            ids={p: i for p, i in base.ids.items() if p not in gone},
            version=base.version + 1,
        )

    def read_many(self, message_sids: Sequence[str], timeout: float) -> dict[str, LedgerRecord]:
        self._check()
        return {sid: self.records[sid] for sid in message_sids if sid in self.records}

    def claim_many(
        self,
        claims: Sequence[tuple[str, int | None, Sequence[int]]],
        owner: str,
        lease_until: float,
        now: float,
        timeout: float,
        keys: Mapping[str, Mapping[int, str]] | None = None,
    ) -> dict[str, int]:
        self._check()
        claimed: dict[str, int] = {}
        for sid, version, parts in claims:
            if (self.records[sid].version if sid in self.records else None) != version:
                continue  # changed under us
            base = self.records.get(sid) or LedgerRecord(sid)
            self.records[sid] = replace(
                base,
                unsure=base.unsure | frozenset(parts),
                lease_owner=owner,
                lease_until=lease_until,
                version=base.version + 1,
                keys={**base.keys, **((keys or {}).get(sid) or {})},
            )
            claimed[sid] = base.version + 1
        return claimed

    def settle_many(self, settlements: Sequence[Settlement], timeout: float) -> dict[str, int]:
        self._check()
        versions = {}
        for settlement in settlements:
            version = self._apply(settlement)
            if version is not None:
                versions[settlement.message_sid] = version
        return versions


class RecordingMetrics:
    def __init__(self) -> None:
        self.counts: dict[str, float] = {}

    def add_metric(self, name: str, unit: Any, value: float) -> None:
        self.counts[name] = self.counts.get(name, 0) + value


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds
