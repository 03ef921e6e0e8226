"""Where sensitive numbers stand in a text, and the markers that replace them. Pure.

What counts, and what does not (the checks themselves are in memory_bridge.domain.number_checks):
- **Card numbers:** 13-19 digits, alone or in groups split by single spaces, dashes or line breaks
  (4-4-4-4, Amex's 4-6-5, none), with a known issuer prefix and a length that issuer uses, and Luhn-valid.
  Digits joined by single separators form a run; in it, every card-shaped window of whole groups
  is tried (one group, 4-4-4-x, Amex's 4-6-5), so a card next to an expiry date, a CVV, a quantity or
  a phone number is found, while two phone numbers or two dates in a row are not taken for one. The
  first group of a run right after "+" is a phone number (E.164).
- **IBANs:** a country's code, two check digits and its account part, of that country's length,
  with or without spaces, valid under ISO 13616's mod-97 check.
- **US SSNs,** dashed only (AAA-GG-SSSS), in the valid ranges: no area 000, 666 or 9xx, no group 00,
  no serial 0000.
A digit run longer than MAX_RUN_DIGITS is not text a person reads (a pasted dump, or an attack on
this check's time): it is replaced whole, because checking every window of it would cost more than
the rest of the webhook, and letting it through unchecked could let a card through.

Digits are ASCII digits (the patterns are compiled with re.ASCII): numbers typed in other
scripts' digits are left as they are.

Speed: the scans are compiled regular expressions with bounded repetition (no nested quantifiers,
so no catastrophic backtracking); Python only looks at runs that already have 13 digits or more.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Iterator

from memory_bridge.domain.number_checks import IBAN_LENGTHS, iban_valid, is_card_number

MARKERS: dict[str, str] = {
    "cards": "[redacted card number]",
    "iban": "[redacted IBAN]",
    "ssn": "[redacted SSN]",
}
LONG_RUN_MARKER = "[redacted long number]"
MAX_RUN_DIGITS = 64

# A run of at least 9 digits (an SSN's count; a card needs 13), with single spaces, dashes or line
# breaks between them. Each repetition consumes one digit, so the engine's work is linear in the run;
# everything else is looked at only inside such runs. (A lookbehind in front would save restarts inside
# short runs but costs more on ordinary text: the engine can no longer skip ahead to a digit.)
_NUMBER_RUN = re.compile(r"\d(?:[ \-\n]?\d){8,}", re.ASCII)
_CARD_RUN = re.compile(r"\d(?:[ \-\n]?\d){12,}", re.ASCII)
_NOT_DIGITS = str.maketrans("", "", " -\n")
_SEPARATOR = re.compile(r"[ \-\n]")
_SSN = re.compile(r"(?<![\d-])(?!000|666|9\d\d)\d{3}-(?!00)\d{2}-(?!0000)\d{4}(?!-?\d)", re.ASCII)
# Every ASCII letter → "a", every digit → "0"; other bytes keep their value (never "a" or "0").
_SHAPES = bytes.maketrans(
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789", b"a" * 52 + b"0" * 10
)


def _splice(text: str, replacements: Iterable[tuple[int, int, str]]) -> str:
    """`text` with each (start, end, new) span replaced; spans in order, not overlapping."""
    pieces: list[str] = []
    last = 0
    for start, end, new in replacements:
        pieces += (text[last:start], new)
        last = end
    if not pieces:
        return text
    pieces.append(text[last:])
    return "".join(pieces)


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


def _word_char(char: str) -> bool:
    """An ASCII letter or digit: what an IBAN may not be glued to (other scripts' letters may)."""
    return char.isascii() and char.isalnum()


def _iban_at(text: str, start: int) -> int:
    """Where a valid IBAN starting at `start` ends, or 0: the country's length, spaces only between
    its characters, mod 97, and no ASCII letter or digit glued to either end. Cheapest checks first:
    string methods on a slice (C), the walk over the text only for one that is valid."""
    length = IBAN_LENGTHS.get(text[start : start + 2].upper(), 0)
    if not length or (start > 0 and _word_char(text[start - 1])):
        return 0
    compact = text[start : start + 2 * length].replace(" ", "")[:length]
    if len(compact) < length or not (compact.isascii() and compact.isalnum()) or not iban_valid(compact):
        return 0
    end, kept = start, 0
    while kept < length:  # where those characters end in the text, spaces included
        kept += text[end] != " "
        end += 1
    return 0 if end < len(text) and _word_char(text[end]) else end


def replace_ibans(text: str, data: bytes, found: Counter[str]) -> str:
    """`text` with each valid IBAN replaced by its marker, counted in `found`; `data` is `text` encoded."""
    replacements: list[tuple[int, int, str]] = []
    last = 0
    starts = list(_iban_starts(text, data))
    for index, start in enumerate(starts):
        if start < last:
            continue  # inside one already replaced
        end = _iban_at(text, start)
        if not end:
            continue
        # A look-alike just before a real IBAN can end in the middle of it: replace both whole.
        for later in starts[index + 1 :]:
            if later >= end:
                break
            end = max(end, _iban_at(text, later))
        replacements.append((start, end, MARKERS["iban"]))
        last = end
        found["iban"] += 1
    return _splice(text, replacements)


def replace_number_runs(text: str, wanted: frozenset[str], found: Counter[str]) -> str:
    """`text` with the SSNs and card numbers (as `wanted`) replaced by their markers, counted in `found`."""
    replacements: list[tuple[int, int, str]] = []
    cards = "cards" in wanted
    for match in _NUMBER_RUN.finditer(text):
        run = match.group()
        digits = len(run.translate(_NOT_DIGITS))
        if cards and digits > MAX_RUN_DIGITS:
            replaced = LONG_RUN_MARKER
            found["cards"] += 1
        else:
            replaced = run
            if "ssn" in wanted and "-" in run:
                replaced, count = _SSN.subn(MARKERS["ssn"], replaced)
                found["ssn"] += count
            if cards and digits >= 13:
                after_plus = match.start() > 0 and text[match.start() - 1] == "+"
                if replaced is run and digits == len(run):  # one group: a card only if all of it is one
                    if not after_plus and digits <= 19 and is_card_number(run):
                        replaced = MARKERS["cards"]
                        found["cards"] += 1
                elif replaced is run:
                    # Right after "+", the first group is an E.164 number: only what follows may be a card.
                    replaced = _mask_spans(run, _card_spans(run, after_plus), found)
                else:  # SSN markers split it: look again at what is left between them
                    replaced = _replace_cards(replaced, found, after_plus)
        if replaced is not run:
            replacements.append((match.start(), match.end(), replaced))
    return _splice(text, replacements)


def _replace_cards(run_text: str, found: Counter[str], after_plus: bool = False) -> str:
    replacements: list[tuple[int, int, str]] = []
    for run in _CARD_RUN.finditer(run_text):
        spans = _card_spans(run.group(), after_plus and run.start() == 0)
        masked = _mask_spans(run.group(), spans, found)
        if masked is not run.group():
            replacements.append((run.start(), run.end(), masked))
    return _splice(run_text, replacements)


def _mask_spans(run: str, spans: list[tuple[int, int]] | None, found: Counter[str]) -> str:
    """`run` with each span replaced by the card marker (the whole run for None: too long to read)."""
    if spans is None:
        found["cards"] += 1
        return LONG_RUN_MARKER
    found["cards"] += len(spans)
    return _splice(run, ((start, end, MARKERS["cards"]) for start, end in spans))


def _card_windows(lengths: list[int], first: int) -> Iterator[int]:
    """The last group of each card-shaped window starting at group `first`, shortest first: one group
    of 13-19 digits, 4-4-4 then 1-4 (then 1-3 after a fourth 4: 17-19 digits), or Amex's 4-6-5/4-6-4."""
    count = len(lengths)
    if 13 <= lengths[first] <= 19:
        yield first
    if lengths[first] != 4 or first + 2 >= count:
        return
    if lengths[first + 1] == 6 and lengths[first + 2] in (4, 5):
        yield first + 2
    if lengths[first + 1] == 4 and lengths[first + 2] == 4 and first + 3 < count:
        fourth = lengths[first + 3]
        if 1 <= fourth <= 4:
            yield first + 3
        if fourth == 4 and first + 4 < count and 1 <= lengths[first + 4] <= 3:
            yield first + 4


def _card_spans(run: str, after_plus: bool = False) -> list[tuple[int, int]] | None:
    """Card numbers in a run of digit groups, as (start, end) in the run; None for a run too long.

    Card-shaped windows of the run's groups (the whole run, or a card next to an expiry date, a CVV,
    a phone number or another card), the longest valid one from each group start, left to right.
    Windows of other shapes are not tried: two phone numbers or two dates in a row are not a card."""
    lengths = [len(part) for part in _SEPARATOR.split(run)]
    if sum(lengths) > MAX_RUN_DIGITS:
        return None
    if 4 not in lengths and max(lengths) < 13:
        return []  # no group can start a card-shaped window
    if not after_plus and len(lengths) - 1 in _card_windows(lengths, 0):
        whole = run.translate(_NOT_DIGITS)
        if is_card_number(whole):
            return [(0, len(run))]  # the whole run is one card: the common case
    # Separators are one character each, so each group's place follows from the lengths.
    groups, offset = [], 0
    for length in lengths:
        groups.append((offset, offset + length))
        offset += length + 1
    # Every valid window, as (first group, last group); overlapping ones are replaced as one: when
    # a number just before a card forms a valid window with the card's first groups, neither the
    # card's last group nor that number is left to guess from.
    windows: list[list[int]] = []
    for first in range(1 if after_plus else 0, len(groups)):
        for last in _card_windows(lengths, first):
            if is_card_number("".join(run[start:end] for start, end in groups[first : last + 1])):
                if windows and first <= windows[-1][1]:
                    windows[-1][1] = max(windows[-1][1], last)
                else:
                    windows.append([first, last])
    return [(groups[first][0], groups[last][1]) for first, last in windows]
