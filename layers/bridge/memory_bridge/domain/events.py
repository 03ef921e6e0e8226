"""From an API Gateway proxy event to a signed request, and from signed form fields to a message.

Both REST API (payload v1) and HTTP API (payload v2) events are accepted, plain or base64 bodies,
headers in any case. Pure: values in, values out. The URL(s) Twilio may have signed are rebuilt
in memory_bridge.domain.webhook_urls.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

from memory_bridge.domain.media import Attachment, parse_media
from memory_bridge.domain.signature import is_valid_signature
from memory_bridge.domain.webhook_urls import reconstructed_urls

MESSAGE_ADDED = "onMessageAdded"
MESSAGE_UPDATED = "onMessageUpdated"
MESSAGE_REMOVED = "onMessageRemoved"
# The post-event webhook filters `memory-bridge setup` subscribes the bridge to: the events the
# webhook handles.
WEBHOOK_FILTERS: tuple[str, ...] = (MESSAGE_ADDED, MESSAGE_UPDATED, MESSAGE_REMOVED)

# The largest body read. Twilio's Conversations limits: a message Body of 32 KB inbound (a size; the
# same table gives SMS and WhatsApp in characters) and 4 KB of Attributes. Form encoding writes each
# byte outside ASCII as %XX, so at worst 3 x 36 KiB = 108 KiB, plus Media, Author, the SIDs and the
# other fields (a few KiB): under 120 KiB. Twice that, rounded up. What a body under it costs to
# read before its signature is checked grows with its size (about 16 ms of CPU here for 256 KiB that
# is all %XX, under 1 ms for plain text); a body over it is refused on its length alone.
MAX_BODY_BYTES = 256 * 1024
# An onMessageAdded carries about 18 fields; five times that leaves room for fields Twilio adds.
MAX_FORM_FIELDS = 100

# Twilio's SID formats (twilio-conversations-v1.yaml): two letters, then 32 hex digits.
_SID_DIGITS = re.compile(r"[0-9a-fA-F]{32}")


class MalformedRequest(ValueError):
    """The request cannot be read. The message is short and safe to return to the caller."""


class RequestTooLarge(ValueError):
    """The body is larger than any Conversations webhook: refused before anything in it is read."""


@dataclass(frozen=True)
class WebhookRequest:
    """What the signature is checked against: the URL(s) Twilio may have called and every field."""

    urls: tuple[str, ...]
    headers: Mapping[str, str]  # lower-cased names
    params: tuple[tuple[str, str], ...]
    raw_body: bytes

    @property
    def signature(self) -> str | None:
        return self.headers.get("x-twilio-signature")

    def signed_by(self, tokens: tuple[str, ...]) -> bool:
        """True when one of `tokens` made the request's signature."""
        return is_valid_signature(
            urls=self.urls,
            params=self.params,
            raw_body=self.raw_body,
            signature=self.signature,
            auth_tokens=tokens,
        )

    def first(self, name: str) -> str | None:
        for key, value in self.params:
            if key == name:
                return value
        return None


@dataclass(frozen=True)
class MessageAdded:
    message_sid: str
    conversation_sid: str
    account_sid: str
    author: str | None
    body: str
    date_created: datetime
    index: int | None
    attachments: tuple[Attachment, ...] = field(default=())
    # Who sent it, as the webhook says: the participant (absent for system messages and for authors
    # who are no participant), the SDK's identity (SDK events only), and SDK or API.
    participant_sid: str | None = None
    client_identity: str | None = None
    # The Conversations service: participants are read under it (a conversation of a service other
    # than the account's default is not found at the un-scoped path).
    chat_service_sid: str | None = None
    # onMessageRemoved: when Twilio removed it (DateRemoved, as sent); None for onMessageAdded. A
    # removal carries the message's own fields, so that it is prepared exactly as its add was.
    removed_at: str | None = None
    # onMessageUpdated: DateUpdated in UTC to the millisecond (so that two compare as text); None
    # otherwise. The newest edit wins: an older one delivered late changes nothing.
    edited_at: str | None = None


def _lower_headers(event: Mapping[str, Any]) -> dict[str, str]:
    headers: dict[str, str] = {}
    for name, values in (event.get("multiValueHeaders") or {}).items():
        if values:
            headers[str(name).lower()] = str(values[-1])
    for name, value in (event.get("headers") or {}).items():
        if value is not None:
            headers[str(name).lower()] = str(value)
    return headers


def _raw_body(event: Mapping[str, Any]) -> bytes:
    """The body's bytes; its size is checked on the event's string first, so that an oversized body
    is refused without a copy of it (the string's length bounds the bytes it decodes to)."""
    body = event.get("body")
    if body is None:
        return b""
    if not isinstance(body, str):
        raise MalformedRequest("body is not a string")
    if event.get("isBase64Encoded"):
        if len(body) > (MAX_BODY_BYTES + 2) // 3 * 4:  # base64: 4 characters for every 3 bytes
            raise RequestTooLarge(f"body over {MAX_BODY_BYTES} bytes")
        try:
            raw = base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError):
            raise MalformedRequest("body is not valid base64") from None
    else:
        if len(body) > MAX_BODY_BYTES:  # each character is at least one byte
            raise RequestTooLarge(f"body over {MAX_BODY_BYTES} bytes")
        raw = body.encode("utf-8")
    if len(raw) > MAX_BODY_BYTES:
        raise RequestTooLarge(f"body over {MAX_BODY_BYTES} bytes")
    return raw


def _form_params(raw: bytes, headers: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    content_type = headers.get("content-type", "application/x-www-form-urlencoded").lower()
    if "application/json" in content_type:
        return ()  # JSON webhooks sign the body's hash instead of fields
    # Counted on the bytes, before a field is read (parse_qsl splits on "&" only).
    if raw.count(b"&") >= MAX_FORM_FIELDS:
        raise RequestTooLarge(f"more than {MAX_FORM_FIELDS} fields")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise MalformedRequest("body is not UTF-8") from None
    return tuple(parse_qsl(text, keep_blank_values=True))


def read_webhook_request(event: Mapping[str, Any], public_url: str | None) -> WebhookRequest:
    """Read an API Gateway proxy event; raises RequestTooLarge for a body larger than any webhook
    (before reading a field of it), MalformedRequest when it has no readable body."""
    if not isinstance(event, Mapping):
        raise MalformedRequest("event is not an object")
    headers = _lower_headers(event)
    raw = _raw_body(event)
    params = _form_params(raw, headers)
    urls = (public_url,) if public_url else reconstructed_urls(event, headers)
    return WebhookRequest(urls=urls, headers=headers, params=params, raw_body=raw)


def _parse_timestamp(value: str, name: str = "DateCreated") -> datetime:
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise MalformedRequest(f"{name} is not an ISO 8601 timestamp") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    try:  # 0001-01-01T00:00:00+01:00 parses but has no UTC equivalent
        return parsed.astimezone(UTC)
    except (OverflowError, ValueError):
        raise MalformedRequest(f"{name} is out of range") from None


def _required(request: WebhookRequest, name: str) -> str:
    value = request.first(name)
    if not value:
        raise MalformedRequest(f"{name} is missing")
    return value


def _checked_sid(value: str, name: str, prefix: str) -> str:
    """The value when it has the SID's format. Twilio signs names and values with nothing between
    them, so a captured webhook can be re-split (the next field folded into MessageSid, say) and
    still verify; the exact format refuses every such value."""
    if not (len(value) == 34 and value.startswith(prefix) and _SID_DIGITS.fullmatch(value, 2)):
        raise MalformedRequest(f"{name} is not a valid SID")
    return value


def _required_sid(request: WebhookRequest, name: str, prefix: str) -> str:
    return _checked_sid(_required(request, name), name, prefix)


def _check_optional_sid(request: WebhookRequest, name: str, prefix: str) -> None:
    value = request.first(name)
    if value:
        _checked_sid(value, name, prefix)


def event_type(request: WebhookRequest) -> str:
    return _required(request, "EventType")


def parse_message_added(request: WebhookRequest) -> MessageAdded:
    """Read an onMessageAdded webhook's fields; raises MalformedRequest naming the bad field."""
    index_raw = request.first("Index")
    try:
        index = int(index_raw) if index_raw not in (None, "") else None
    except ValueError:
        raise MalformedRequest("Index is not an integer") from None
    # Checked when present, so that neither can absorb the field after it. Not
    # required: a message posted through the REST API by an author who is no participant has none.
    _check_optional_sid(request, "ChatServiceSid", "IS")
    _check_optional_sid(request, "ParticipantSid", "MB")
    client_identity = (request.first("ClientIdentity") or "").strip() or None
    return MessageAdded(
        message_sid=_required_sid(request, "MessageSid", "IM"),
        conversation_sid=_required_sid(request, "ConversationSid", "CH"),
        account_sid=_required_sid(request, "AccountSid", "AC"),
        author=request.first("Author") or None,
        body=request.first("Body") or "",
        date_created=_parse_timestamp(_required(request, "DateCreated")),
        index=index,
        attachments=parse_media(request.first("Media")),
        participant_sid=request.first("ParticipantSid") or None,
        client_identity=client_identity,
        chat_service_sid=request.first("ChatServiceSid") or None,
        removed_at=_removed_at(request),
        edited_at=_edited_at(request),
    )


def _edited_at(request: WebhookRequest) -> str | None:
    if request.first("EventType") != MESSAGE_UPDATED:
        return None
    moment = _parse_timestamp(_required(request, "DateUpdated"), "DateUpdated")
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _removed_at(request: WebhookRequest) -> str | None:
    if request.first("EventType") != MESSAGE_REMOVED:
        return None
    removed = request.first("DateRemoved") or request.first("DateUpdated") or ""
    # Only for the tombstone's record (never compared): kept short, any text Twilio sends.
    return removed[:40] or "unknown"
