"""Where IBANs stand in a text. Pure.

An IBAN is a country's code, two check digits and its account part, of that country's length, valid
under ISO 13616's mod-97 check (memory_bridge.domain.number_checks). Between any two of its
characters may stand up to three of space, tab, dash and line break: "DE89 3704 …", "DE89-3704-…",
"DE89 - 3704", a group carried to the next line ("…0044\r\n0532…"). It may be glued to letters on
either side ("IBANDE89…", "…013000thanks": a customer's missing space), not to digits: a digit glued
to it makes it part of a longer number.

It reads the scan view (memory_bridge.domain.sensitive_numbers.scan_view): no-break spaces and en
dashes are spaces and dashes there, full-width letters and digits ASCII ones.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

from memory_bridge.domain.number_checks import IBAN_LENGTHS, iban_valid

Span = tuple[int, int, str]

GAPS = " \t-\r\n"
MAX_GAP = 3  # " - ", "\r\n ", a double space: the most that stands between two of its characters
# Every ASCII letter → "a", every digit → "0"; other bytes keep their value (never "a" or "0").
_SHAPES = bytes.maketrans(
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789", b"a" * 52 + b"0" * 10
)


def _iban_starts(text: str, data: bytes) -> Iterator[int]:
    """Where two letters then two digits stand, in order: the only places an IBAN can start.

    Found with C-level byte operations (a translation to letter/digit shapes, then `find`), which
    costs a fraction of a regular expression trying every letter of the text."""
    shape = data.translate(_SHAPES)
    ascii_only = len(data) == len(text)
    byte_at, char_at = 0, 0  # for non-ASCII text: the last offset converted, in bytes and characters
    at = shape.find(b"aa00")
    while at != -1:
        if ascii_only:
            yield at
        else:  # byte offsets to character offsets, decoding only what lies between two hits
            char_at += len(data[byte_at:at].decode("utf-8", "surrogatepass"))
            byte_at = at
            yield char_at
        at = shape.find(b"aa00", at + 1)


def _without_gaps(text: str) -> str:
    """`text` without GAPS: chained replace is C-level and several times faster than str.translate."""
    return text.replace(" ", "").replace("-", "").replace("\t", "").replace("\r", "").replace("\n", "")


def _ascii_digit(char: str) -> bool:
    return "0" <= char <= "9"


def _iban_at(text: str, start: int) -> int:
    """Where a valid IBAN starting at `start` ends, or 0. Cheapest checks first: string methods on a
    slice (C), the walk over the text only for one that is valid."""
    length = IBAN_LENGTHS.get(text[start : start + 2].upper(), 0)
    if not length or (start > 0 and _ascii_digit(text[start - 1])):
        return 0
    compact = text[start : start + 2 * length].replace(" ", "")[:length]  # the usual: spaces or none
    if len(compact) < length or not compact.isalnum():  # dashes, tabs, line breaks: the slower way
        compact = _without_gaps(text[start : start + (MAX_GAP + 1) * length])[:length]
    if len(compact) < length or not (compact.isascii() and compact.isalnum()) or not iban_valid(compact):
        return 0
    end, kept, gap = start, 0, 0
    while kept < length:  # where those characters end in the text, gaps included
        if text[end] in GAPS:
            gap += 1
            if gap > MAX_GAP:
                return 0
        else:
            kept, gap = kept + 1, 0
        end += 1
    return 0 if end < len(text) and _ascii_digit(text[end]) else end


def iban_spans(text: str, data: bytes, marker: str, found: Counter[str]) -> list[Span]:
    """Each valid IBAN in `text` as (start, end, marker), counted in `found`; `data` is `text` encoded."""
    spans: list[Span] = []
    last = 0
    starts = list(_iban_starts(text, data))
    for index, start in enumerate(starts):
        if start < last:
            continue  # inside one already found
        end = _iban_at(text, start)
        if not end:
            continue
        # A look-alike just before a real IBAN can end in the middle of it: replace both whole.
        for later in starts[index + 1 :]:
            if later >= end:
                break
            end = max(end, _iban_at(text, later))
        spans.append((start, end, marker))
        last = end
        found["iban"] += 1
    return spans
