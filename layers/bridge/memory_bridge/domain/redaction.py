"""Sensitive numbers never reach Memory: card numbers, IBANs and US SSNs are replaced. Pure.

Memory "is not PCI compliant" and "not intended for use with sensitive information about
individuals", yet customers type their card number into a chat. This runs once per message, on the
text before it becomes observations, so nothing after it (Memory, the dead-letter envelope, `dlq
peek`/`export`, the logs) sees the original. Each find is replaced by a marker that names the kind
and keeps none of its digits.

What counts, and what does not:
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

import dataclasses
import re
from collections import Counter
from collections.abc import Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Literal, NamedTuple

from memory_bridge.domain.envelope import Envelope
from memory_bridge.domain.observations import Observation, split_utf8

KINDS = ("cards", "iban", "ssn")
Mode = Literal["mask", "skip"]
MARKERS: dict[str, str] = {
    "cards": "[redacted card number]",
    "iban": "[redacted IBAN]",
    "ssn": "[redacted SSN]",
}
LONG_RUN_MARKER = "[redacted long number]"
MAX_RUN_DIGITS = 64

# (prefixes, lengths) per issuer. Prefix ranges are written out as the leading digits they allow.
_ISSUERS: tuple[tuple[tuple[str, ...], frozenset[int]], ...] = (
    (("4",), frozenset({13, 16, 19})),  # Visa
    (("51", "52", "53", "54", "55"), frozenset({16})),  # Mastercard
    (("34", "37"), frozenset({15})),  # American Express
    (("6011", "644", "645", "646", "647", "648", "649", "65"), frozenset(range(16, 20))),  # Discover
    (
        ("300", "301", "302", "303", "304", "305", "3095", "36", "38", "39"),
        frozenset(range(14, 20)),
    ),  # Diners
    (("62",), frozenset(range(16, 20))),  # UnionPay
    (
        ("5018", "5020", "5038", "5893", "6304", "6759", "6761", "6762", "6763"),
        frozenset(range(13, 20)),
    ),  # Maestro
)
_LENGTHS_BY_PREFIX: dict[str, frozenset[int]] = {}
for _prefixes, _lengths in _ISSUERS:
    for _prefix in _prefixes:
        _LENGTHS_BY_PREFIX[_prefix] = _LENGTHS_BY_PREFIX.get(_prefix, frozenset()) | _lengths
_PREFIX_SIZES = sorted({len(p) for p in _LENGTHS_BY_PREFIX}, reverse=True)
# Issuers whose prefixes are a range of four-digit numbers: (low, high, lengths).
_PREFIX_RANGES = (
    (2221, 2720, frozenset({16})),  # Mastercard 2-series
    (3528, 3589, frozenset(range(16, 20))),  # JCB
)

# IBAN length per country (SWIFT's IBAN registry).
IBAN_LENGTHS: dict[str, int] = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22, "BI": 27,
    "BR": 29, "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DJ": 27, "DK": 18, "DO": 28,
    "EE": 20, "EG": 29, "ES": 24, "FI": 18, "FK": 18, "FO": 18, "FR": 27, "GB": 22, "GE": 22, "GI": 23,
    "GL": 18, "GR": 27, "GT": 28, "HR": 21, "HU": 28, "IE": 22, "IL": 23, "IQ": 23, "IS": 26, "IT": 27,
    "JO": 30, "KW": 30, "KZ": 20, "LB": 28, "LC": 32, "LI": 21, "LT": 20, "LU": 20, "LV": 21, "LY": 25,
    "MC": 27, "MD": 24, "ME": 22, "MK": 19, "MN": 20, "MR": 27, "MT": 31, "MU": 30, "NI": 28, "NL": 18,
    "NO": 15, "OM": 23, "PK": 24, "PL": 28, "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22, "RU": 33,
    "SA": 24, "SC": 31, "SD": 18, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "SO": 23, "ST": 25, "SV": 28,
    "TL": 23, "TN": 24, "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20, "YE": 30,
}  # fmt: skip

# A run of at least 9 digits (an SSN's count; a card needs 13), with single spaces, dashes or line
# breaks between them. Each repetition consumes one digit, so the engine's work is linear in the run;
# everything else is looked at only inside such runs. (A lookbehind in front would save restarts inside
# short runs but costs more on ordinary text: the engine can no longer skip ahead to a digit.)
_NUMBER_RUN = re.compile(r"\d(?:[ \-\n]?\d){8,}", re.ASCII)
_CARD_RUN = re.compile(r"\d(?:[ \-\n]?\d){12,}", re.ASCII)
_NOT_DIGITS = str.maketrans("", "", " -\n")
# Fewer digits than this in the whole text: no SSN or card (9 and 13 digits) can be there.
MIN_DIGITS = 9
# An IBAN holds at least its two check digits (Gibraltar's may hold no other digit).
MIN_IBAN_DIGITS = 2
_SEPARATOR = re.compile(r"[ \-\n]")
_SSN = re.compile(r"(?<![\d-])(?!000|666|9\d\d)\d{3}-(?!00)\d{2}-(?!0000)\d{4}(?!-?\d)", re.ASCII)
_ASCII_DIGITS = b"0123456789"
# Every ASCII letter → "a", every digit → "0"; other bytes keep their value (never "a" or "0").
_SHAPES = bytes.maketrans(
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789", b"a" * 52 + b"0" * 10
)
# ASCII digit → its value, and → the digit sum of twice its value (Luhn's doubled digits).
_DIGIT_VALUES = bytes.maketrans(b"0123456789", bytes(range(10)))
_DOUBLED_VALUES = bytes.maketrans(b"0123456789", bytes((0, 2, 4, 6, 8, 1, 3, 5, 7, 9)))


def luhn_valid(digits: str) -> bool:
    """The Luhn check, with byte tables (C) instead of a Python loop: four times faster."""
    data = digits.encode("ascii")
    plain = sum(data[-1::-2].translate(_DIGIT_VALUES))
    doubled = sum(data[-2::-2].translate(_DOUBLED_VALUES))
    return (plain + doubled) % 10 == 0


def issuer_allows(digits: str) -> bool:
    """A known issuer prefix, with a length that issuer uses."""
    for size in _PREFIX_SIZES:
        lengths = _LENGTHS_BY_PREFIX.get(digits[:size])
        if lengths is not None and len(digits) in lengths:
            return True
    if digits[0] in "23":
        first_four = int(digits[:4])
        return any(
            low <= first_four <= high and len(digits) in lengths for low, high, lengths in _PREFIX_RANGES
        )
    return False


def is_card_number(digits: str) -> bool:
    return 13 <= len(digits) <= 19 and issuer_allows(digits) and luhn_valid(digits)


# A=10 … Z=35, as ISO 13616 turns letters into digits.
_LETTERS_AS_NUMBERS = str.maketrans({chr(ord("A") + i): str(10 + i) for i in range(26)})


def iban_valid(text: str) -> bool:
    """ISO 13616: the country's length, check digits 02-98, then mod 97 of the rearranged number is 1."""
    compact = text.replace(" ", "").upper()
    if IBAN_LENGTHS.get(compact[:2]) != len(compact) or not compact[2:4].isdigit():
        return False
    if not 2 <= int(compact[2:4]) <= 98 or not compact.isalnum() or not compact.isascii():
        return False
    number = (compact[4:] + compact[:4]).translate(_LETTERS_AS_NUMBERS)
    return int(number) % 97 == 1


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
    # One C-level pass counts the digits: most chat messages stop here.
    data = text.encode("utf-8", "surrogatepass")
    digits = len(data) - len(data.translate(None, _ASCII_DIGITS))
    if digits < MIN_IBAN_DIGITS:
        return Redacted(text)
    wanted = kinds if isinstance(kinds, frozenset) else frozenset(kinds)
    found: Counter[str] = Counter()
    if "iban" in wanted:
        text = _replace_ibans(text, data, found)
    if digits >= MIN_DIGITS and wanted & {"ssn", "cards"}:
        text = _replace_number_runs(text, wanted, found)
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


def _replace_ibans(text: str, data: bytes, found: Counter[str]) -> str:
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


def _replace_number_runs(text: str, wanted: frozenset[str], found: Counter[str]) -> str:
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
