"""Sensitive numbers never reach Memory: card numbers, IBANs and US SSNs are replaced. Pure.

Memory "is not PCI compliant" and "not intended for use with sensitive information about
individuals", yet customers type their card number into a chat. This runs once per message, on the
text before it becomes observations, so nothing after it (Memory, the dead-letter envelope, `dlq
peek`/`export`, the logs) sees the original. Each find is replaced by a marker that names the kind
and keeps none of its digits.

What counts as a sensitive number, and how it is found: memory_bridge.domain.sensitive_numbers.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Literal, NamedTuple

from memory_bridge.domain.envelope import Envelope
from memory_bridge.domain.iban_scan import iban_spans
from memory_bridge.domain.number_checks import iban_valid, is_card_number, luhn_valid, ssn_valid
from memory_bridge.domain.observations import Observation, split_utf8
from memory_bridge.domain.sensitive_numbers import (
    LONG_RUN_MARKER,
    MARKERS,
    number_spans,
    scan_view,
    splice,
)

# Its own names, and the markers and checks that its importers take from here.
__all__ = [
    "KINDS",
    "LONG_RUN_MARKER",
    "MARKERS",
    "MIN_DIGITS",
    "MIN_IBAN_DIGITS",
    "NOTHING_FOUND",
    "Mode",
    "Redacted",
    "RedactionRules",
    "iban_valid",
    "is_card_number",
    "luhn_valid",
    "parse_kinds",
    "parse_mode",
    "redact",
    "redact_envelope",
    "redact_observations",
    "ssn_valid",
]

KINDS = ("cards", "iban", "ssn")
Mode = Literal["mask", "skip"]
# Fewer digits than this in the whole text: no SSN or card (9 and 13 digits) can be there.
MIN_DIGITS = 9
# An IBAN holds at least its two check digits (Gibraltar's may hold no other digit).
MIN_IBAN_DIGITS = 2
_ASCII_DIGITS = b"0123456789"


@dataclass(frozen=True)
class RedactionRules:
    kinds: frozenset[str] = frozenset(KINDS)
    mode: Mode = "mask"


# Nothing found: shared, and immutable so that sharing it is safe.
NOTHING_FOUND: Mapping[str, int] = MappingProxyType({})


class Redacted(NamedTuple):
    """A NamedTuple, not a dataclass: it is made for every message, and this is the cheapest."""

    text: str
    found: Mapping[str, int] = NOTHING_FOUND  # kind → how many were replaced


def parse_kinds(value: str) -> frozenset[str]:
    """`cards,iban,ssn` (any subset, any order) or `off`. Raises ValueError naming the rule."""
    words = [w.strip().lower() for w in value.split(",") if w.strip()]
    if words == ["off"]:
        return frozenset()
    unknown = [w for w in words if w not in KINDS]
    if unknown or not words:
        raise ValueError(f"must be 'off' or a comma-separated subset of {','.join(KINDS)}, got {value!r}")
    return frozenset(words)


def parse_mode(value: str) -> Mode:
    mode = value.strip().lower()
    if mode == "mask":
        return "mask"
    if mode == "skip":
        return "skip"
    raise ValueError(f"must be 'mask' or 'skip', got {value!r}")


def redact(text: str, kinds: Collection[str] = KINDS) -> Redacted:
    """Replace every sensitive number of the given kinds; count what was replaced, by kind."""
    if not kinds:
        return Redacted(text)
    # The scans read a view with look-alike digits, spaces and dashes as ASCII, at the same offsets:
    # what they find is cut out of the text itself, so what stays keeps its own characters.
    view = scan_view(text)
    # One C-level pass counts the digits: most chat messages stop here.
    data = view.encode("utf-8", "surrogatepass")
    digits = len(data) - len(data.translate(None, _ASCII_DIGITS))
    if digits < MIN_IBAN_DIGITS:
        return Redacted(text)
    wanted = kinds if isinstance(kinds, frozenset) else frozenset(kinds)
    found: Counter[str] = Counter()
    if "iban" in wanted:
        spans = iban_spans(view, data, MARKERS["iban"], found)
        if spans:  # the markers hold no digit: the number scan reads the view with them in place
            same = view is text
            text = splice(text, spans)
            view = text if same else splice(view, spans)
    if digits >= MIN_DIGITS and wanted & {"ssn", "cards"}:
        text = splice(text, number_spans(view, wanted, found))
    return Redacted(text, +found) if found else Redacted(text)


def redact_observations(
    observations: Iterable[Observation], kinds: Iterable[str] = KINDS
) -> tuple[tuple[Observation, ...], Counter[str]]:
    """The same observations with their content redacted (envelopes parked before this step
    existed). A marker may be longer than what it replaced: content stays within Memory's limit."""
    wanted = frozenset(kinds)
    found: Counter[str] = Counter()
    out = []
    for observation in observations:
        content = observation.get("content")
        if isinstance(content, str):
            redacted = redact(content, wanted)
            if redacted.found:
                found.update(redacted.found)
                observation = {**observation, "content": split_utf8(redacted.text)[0]}
        out.append(observation)
    return tuple(out), found


def redact_envelope(envelope: Envelope, kinds: Iterable[str] = KINDS) -> tuple[Envelope, Counter[str]]:
    """The envelope as it is posted now: one parked before this step existed goes through it."""
    observations, found = redact_observations(envelope.observations, kinds)
    return (dataclasses.replace(envelope, observations=observations) if found else envelope), found
