"""What the Memory sandbox's modules share (dev-only): ids, times, the TwilioError it answers with,
paging, and the rules an observation's fields are held to (`twilio-memory-v1.yaml`'s ObservationBase).

Kept apart from memory_bridge_dev.sandbox so that memory_bridge_dev.sandbox_lifecycle (edits,
removals, the per-profile limit) can use them without importing the server back.
"""

from __future__ import annotations

import random
import re
from datetime import UTC, datetime
from typing import Any

TTID_ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyz"
# What Memory accepts as an observation's `source` today (twilio 9.13.0): letters, digits, spaces, `.`,
# `_`, `-` and `/`. The published YAML says `^[a-zA-Z0-9 _.-]+$`; the bridge sends only what both allow
# (memory_bridge.config.SOURCE_PATTERN), the sandbox answers as Memory does.
SOURCE_PATTERN = re.compile(r"^[a-zA-Z0-9 _./-]+$")
CONVERSATION_ID = re.compile(r"^conv_conversation_[0-7][0-9a-z]{25}$")
OBSERVATION_ID = re.compile(r"^mem_observation_[0-7][0-9a-z]{25}$")
OBSERVATION_KEYS = {"content", "source", "occurredAt", "conversationIds"}
RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")


def ttid(prefix: str) -> str:
    return prefix + random.choice("01234567") + "".join(random.choices(TTID_ALPHABET, k=25))


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class ApiError(Exception):
    def __init__(self, status: int, code: int, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "message": self.message,
            "more_info": f"https://www.twilio.com/docs/api/errors/{self.code}",
            "status": self.status,
        }


def schema_error(message: str) -> ApiError:
    return ApiError(400, 520046, f"Schema validation failed: {message}")


def parse_time(value: Any) -> datetime | None:
    """An RFC 3339 date-time as an aware datetime; None for anything else."""
    if not isinstance(value, str) or not RFC3339.match(value):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        return None


def is_rfc3339(value: Any) -> bool:
    return parse_time(value) is not None


def paging(query: dict[str, list[str]], maximum: int) -> tuple[int, int]:
    """pageSize (1..maximum, default 50) and the sandbox's numeric pageToken (default 0)."""
    size_text = query.get("pageSize", ["50"])[0]
    token_text = query.get("pageToken", ["0"])[0] or "0"
    if not re.fullmatch(r"-?[0-9]{1,9}", size_text) or not re.fullmatch(r"[0-9]{1,9}", token_text):
        raise schema_error("pageSize and pageToken must be numbers here")
    size = int(size_text)
    if not 1 <= size <= maximum:
        raise schema_error(f"pageSize must be 1..{maximum}")
    return size, int(token_text)


def check_observation(item: Any, *, whole: bool) -> None:
    """Raise the 400 Memory gives for an observation that breaks ObservationBase. `whole`: a new
    observation, which needs content, source and occurredAt; an update (PATCH) needs none of them
    (since 2026-05-01), but each field it does carry is held to the same rules, and null is no value."""
    if not isinstance(item, dict) or set(item) - OBSERVATION_KEYS:
        raise schema_error("observation has unknown properties")
    fields = (
        ("content", _content_ok, "content must be 1..4096 characters"),
        ("source", _source_ok, "source must match ^[a-zA-Z0-9 _./-]+$ (1..100)"),
        ("occurredAt", is_rfc3339, "occurredAt must be an RFC 3339 date-time"),
    )
    for name, valid, message in fields:
        if (whole or name in item) and not valid(item.get(name)):
            raise schema_error(message)
    ids = item.get("conversationIds")
    # A new observation may carry conversationIds null (as the sandbox always took it); an update that
    # sets it null would leave a stored value the contract's ObservationInfo refuses.
    if (not whole and "conversationIds" in item and ids is None) or (
        ids is not None
        and (
            not isinstance(ids, list)
            or len(ids) > 10
            or not all(isinstance(i, str) and CONVERSATION_ID.match(i) for i in ids)
        )
    ):
        raise schema_error("conversationIds must be up to 10 conv_conversation_ ids")


def _content_ok(value: Any) -> bool:
    return isinstance(value, str) and 1 <= len(value) <= 4096


def _source_ok(value: Any) -> bool:
    return isinstance(value, str) and 1 <= len(value) <= 100 and bool(SOURCE_PATTERN.match(value))
