"""From an API Gateway proxy event to a signed request, and from signed form fields to a message.

Both REST API (payload v1) and HTTP API (payload v2) events are accepted, plain or base64 bodies,
headers in any case. Pure: values in, values out. The URL(s) Twilio may have signed are rebuilt
in memory_bridge.domain.webhook_urls.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

from memory_bridge.domain.webhook_urls import reconstructed_urls

MESSAGE_ADDED = "onMessageAdded"
# The post-event webhook filters `memory-bridge setup` subscribes the bridge to: the events the
# webhook handles. Add onMessageUpdated / onMessageRemoved here once the flow handles them.
WEBHOOK_FILTERS: tuple[str, ...] = (MESSAGE_ADDED,)


class MalformedRequest(ValueError):
    """The request cannot be read. The message is short and safe to return to the caller."""


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

    def first(self, name: str) -> str | None:
        for key, value in self.params:
            if key == name:
                return value
        return None


@dataclass(frozen=True)
class Attachment:
    content_type: str | None
    filename: str | None


@dataclass(frozen=True)
class MessageAdded:
    message_sid: str
    conversation_sid: str
    account_sid: str | None
    author: str | None
    body: str
    date_created: datetime
    index: int | None
    attachments: tuple[Attachment, ...] = field(default=())


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
    body = event.get("body")
    if body is None:
        return b""
    if not isinstance(body, str):
        raise MalformedRequest("body is not a string")
    if event.get("isBase64Encoded"):
        try:
            return base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError):
            raise MalformedRequest("body is not valid base64") from None
    return body.encode("utf-8")


def _form_params(raw: bytes, headers: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    content_type = headers.get("content-type", "application/x-www-form-urlencoded").lower()
    if "application/json" in content_type:
        return ()  # JSON webhooks sign the body's hash instead of fields
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise MalformedRequest("body is not UTF-8") from None
    return tuple(parse_qsl(text, keep_blank_values=True))


def read_webhook_request(event: Mapping[str, Any], public_url: str | None) -> WebhookRequest:
    """Read an API Gateway proxy event; raises MalformedRequest when it has no readable body."""
    if not isinstance(event, Mapping):
        raise MalformedRequest("event is not an object")
    headers = _lower_headers(event)
    raw = _raw_body(event)
    params = _form_params(raw, headers)
    urls = (public_url,) if public_url else reconstructed_urls(event, headers)
    return WebhookRequest(urls=urls, headers=headers, params=params, raw_body=raw)


def _parse_timestamp(value: str) -> datetime:
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise MalformedRequest("DateCreated is not an ISO 8601 timestamp") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    try:  # 0001-01-01T00:00:00+01:00 parses but has no UTC equivalent
        return parsed.astimezone(UTC)
    except (OverflowError, ValueError):
        raise MalformedRequest("DateCreated is out of range") from None


def _parse_media(raw: str | None) -> tuple[Attachment, ...]:
    """Media is a JSON array whose keys are not documented; read them tolerantly."""
    if not raw:
        return ()
    try:
        items = json.loads(raw)
    except ValueError:
        items = None
    if not isinstance(items, list):
        # Keep a trace that something was attached rather than dropping it silently.
        return (Attachment(content_type=None, filename=None),)
    attachments = []
    for item in items:
        if not isinstance(item, Mapping):
            attachments.append(Attachment(None, None))
            continue
        content_type = item.get("content_type") or item.get("contentType") or item.get("ContentType")
        filename = item.get("filename") or item.get("Filename") or item.get("file_name")
        attachments.append(
            Attachment(
                content_type=str(content_type) if content_type else None,
                filename=str(filename) if filename else None,
            )
        )
    return tuple(attachments)


def _required(request: WebhookRequest, name: str) -> str:
    value = request.first(name)
    if not value:
        raise MalformedRequest(f"{name} is missing")
    return value


def event_type(request: WebhookRequest) -> str:
    return _required(request, "EventType")


def parse_message_added(request: WebhookRequest) -> MessageAdded:
    """Read an onMessageAdded webhook's fields; raises MalformedRequest naming the bad field."""
    index_raw = request.first("Index")
    try:
        index = int(index_raw) if index_raw not in (None, "") else None
    except ValueError:
        raise MalformedRequest("Index is not an integer") from None
    return MessageAdded(
        message_sid=_required(request, "MessageSid"),
        conversation_sid=_required(request, "ConversationSid"),
        account_sid=request.first("AccountSid"),
        author=request.first("Author") or None,
        body=request.first("Body") or "",
        date_created=_parse_timestamp(_required(request, "DateCreated")),
        index=index,
        attachments=_parse_media(request.first("Media")),
    )
