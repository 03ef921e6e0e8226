"""A webhook's `Media` field: a JSON array of attachments, read tolerantly and within bounds. Pure.

Twilio sends a short list of flat objects (sid, content_type, filename, size). The value is signed, so
it comes from Twilio; but json.loads recurses once per level of nesting, and a value nested a few
thousand levels deep raised RecursionError, which the webhook answered 503 on every retry. Whatever
is outside the bounds below is read as one attachment of unknown type, as any other value that is not
the documented shape: the customer's text still goes through, with a trace that something was attached.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass

# Twilio's list is a few hundred characters per attachment; 64 KiB is far beyond any real one and
# costs well under a millisecond to parse.
MAX_MEDIA_CHARS = 64 * 1024
# The documented shape is two levels deep (a list of objects); 8 leaves room for nested metadata.
MAX_MEDIA_DEPTH = 8
# Each attachment becomes a line of the observation: a list longer than this is not Twilio's.
MAX_MEDIA_ITEMS = 50

# A JSON string (whose brackets do not nest), or a bracket outside one. The closing quote is optional
# so that an unterminated string matches to the end at once: with it required, each later quote would
# start a new scan to the end (quadratic on a value of escaped quotes).
_STRING_OR_BRACKET = re.compile(r'"(?:[^"\\]|\\.)*"?|[\[\]{}]')


@dataclass(frozen=True)
class Attachment:
    content_type: str | None
    filename: str | None


UNKNOWN_ATTACHMENT = Attachment(content_type=None, filename=None)


def nesting_exceeds(text: str, limit: int) -> bool:
    """True when the JSON text opens more than `limit` arrays or objects inside each other."""
    if text.count("[") + text.count("{") <= limit:  # the usual case: too few brackets to nest deeper
        return False
    depth = 0
    for match in _STRING_OR_BRACKET.finditer(text):
        piece = match.group()
        if piece in ("[", "{"):
            depth += 1
            if depth > limit:
                return True
        elif piece in ("]", "}"):
            depth -= 1
    return False


def _attachment(item: object) -> Attachment:
    if not isinstance(item, Mapping):
        return UNKNOWN_ATTACHMENT
    content_type = item.get("content_type") or item.get("contentType") or item.get("ContentType")
    filename = item.get("filename") or item.get("Filename") or item.get("file_name")
    return Attachment(
        content_type=str(content_type) if content_type else None,
        filename=str(filename) if filename else None,
    )


def parse_media(raw: str | None) -> tuple[Attachment, ...]:
    """Media's attachments; its keys are not documented, so several spellings are read."""
    if not raw:
        return ()
    # Bounds first: the length before anything, the depth before json.loads recurses.
    if len(raw) > MAX_MEDIA_CHARS or nesting_exceeds(raw, MAX_MEDIA_DEPTH):
        return (UNKNOWN_ATTACHMENT,)
    try:
        items = json.loads(raw)
    except (ValueError, RecursionError):  # RecursionError cannot happen within the depth bound
        items = None
    if not isinstance(items, list) or len(items) > MAX_MEDIA_ITEMS:
        # Keep a trace that something was attached rather than dropping it silently.
        return (UNKNOWN_ATTACHMENT,)
    return tuple(_attachment(item) for item in items)
