"""From a Conversations message to Memory observations. Pure.

A body longer than one observation allows is split on character boundaries into several
observations, in order; nothing is truncated away.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

from memory_bridge.domain.events import MessageAdded
from memory_bridge.domain.media import Attachment

# The contract allows 4096 characters; the product page says "up to 4KB". Staying within
# 4096 UTF-8 bytes satisfies both.
MAX_CONTENT_BYTES = 4096
MAX_OBSERVATIONS_PER_REQUEST = 10

Observation = dict[str, Any]
T = TypeVar("T")


def split_utf8(text: str, max_bytes: int = MAX_CONTENT_BYTES) -> list[str]:
    """Split `text` into pieces of at most `max_bytes` UTF-8 bytes, never inside a character."""
    if max_bytes < 4:
        raise ValueError("max_bytes must leave room for one 4-byte character")
    pieces: list[str] = []
    start = 0
    size = 0
    for position, char in enumerate(text):
        width = len(char.encode("utf-8", "surrogatepass"))  # a lone surrogate counts, never raises
        if size + width > max_bytes:
            pieces.append(text[start:position])
            start, size = position, 0
        size += width
    if start < len(text):
        pieces.append(text[start:])
    return pieces


def attachment_line(attachment: Attachment) -> str:
    described = " ".join(part for part in (attachment.content_type, attachment.filename) if part)
    return f"[attachment: {described or 'unknown type'}]"


def message_content(message: MessageAdded) -> str:
    """The body, then one short line per attachment."""
    lines = [message.body] if message.body.strip() else []
    lines.extend(attachment_line(a) for a in message.attachments)
    return "\n".join(lines)


def rfc3339(moment: datetime) -> str:
    utc = moment.astimezone(UTC)
    return utc.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def build_observations(
    message: MessageAdded,
    source: str,
    content: str | None = None,
    *,
    label: str = "",
    room: int = 0,
) -> list[Observation]:
    """Observations for one message (of `content`, its text once redacted, when given); empty when
    there is nothing to remember. `label` (who spoke, e.g. "Agent: ") starts every piece, so that
    each observation says who spoke on its own; `room` bytes are left free in each piece for a label
    added later (a message parked before its speaker was known)."""
    content = message_content(message) if content is None else content
    if not content:
        return []
    occurred_at = rfc3339(message.date_created)
    pieces = split_utf8(content, MAX_CONTENT_BYTES - len(label.encode("utf-8")) - room)
    return [{"content": label + piece, "source": source, "occurredAt": occurred_at} for piece in pieces]


def batches(items: Sequence[T], size: int = MAX_OBSERVATIONS_PER_REQUEST) -> Iterator[list[T]]:
    for start in range(0, len(items), size):
        yield list(items[start : start + size])


def observation_key(observation: Observation) -> tuple[str, str, str]:
    """What makes two observations the same words: content, moment (in UTC) and source. The replay's
    check and a removal's search (issue 22) both match Memory's listing on it."""
    text = str(observation.get("occurredAt", ""))
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        moment = None
    if moment is not None and moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    when = moment.astimezone(UTC).isoformat() if moment else text
    return str(observation.get("content")), when, str(observation.get("source"))


def observation_digest(observation: Observation) -> str:
    """A short fingerprint of observation_key, kept in the ledger per part once Memory took it: an edit
    (issue 22) carries only the new words, and this is how it tells the old ones in Memory's listing
    from another message said in the same second. 64 bits: a clash needs two messages of one
    customer in the same second; the words themselves never reach the ledger."""
    joined = "\x1f".join(observation_key(observation)).encode("utf-8", "surrogatepass")
    return hashlib.sha256(joined).hexdigest()[:16]
