"""Where sensitive numbers stand in a text, and the markers that replace them. Pure.

What counts, and what does not (the checks themselves are in memory_bridge.domain.number_checks):
- **A run** is digits joined by separators: one or two spaces or tabs, a dash with or without a
  space on either side, a dot, a slash, or a line break (LF or CRLF, spaces around it). People and
  speech-to-text write "4111.1111.1111.1111", "4111 - 1111 - …", "4111/1111/…", "41 11 11 …".
- **Card numbers:** 13-19 digits with a known issuer prefix and a length that issuer uses, Luhn-valid,
  in a window of a run's groups of a card's shape (memory_bridge.domain.card_windows), so a card next
  to an expiry date, a CVV, a quantity or a phone number is found, while two phone numbers or two
  dates in a row are not taken for one.
- **IBANs:** memory_bridge.domain.iban_scan.
- **US SSNs** in the valid ranges (no area 000, 666 or 9xx, no group 00, no serial 0000), as three
  groups of 3, 2 and 4 digits with any separators ("123-45-6789", "123 45 6789", "123.45.6789"); and,
  only with "ssn", "ss#", "social" or "soc sec" within WORD_REACH (60) characters of the run, nine
  digits written together ("123456789") or as a run of nine digits in any groups ("1 2 3 4 5 6 7 8 9").
  Without the word, a nine-digit number is an order, account or tracking number, which are far more
  common in a support chat than an SSN written without its dashes. Groups glued to the candidate by a
  dash, dot or slash make it part of a longer reference ("1123-45-6789", "123-45-6789-1"): not an SSN.
A digit run longer than MAX_RUN_DIGITS is not text a person reads (a pasted dump, or an attack on
this check's time): it is replaced whole, because checking every window of it would cost more than
the rest of the webhook, and letting it through unchecked could let a card through.

**The scan view:** the scans read a copy of the text in which look-alike characters stand as their
ASCII counterparts, one character for one (scan_view), so an offset in the view is the same offset in
the text and what is not replaced keeps its own characters: full-width, Arabic-Indic and Persian
digits, full-width letters and punctuation, no-break and other Unicode spaces, zero-width spaces,
Unicode dashes and the minus sign. Digits of other scripts are left as they are.

Speed: the scans are compiled regular expressions with bounded repetition (no nested quantifiers,
so no catastrophic backtracking); Python only looks at runs that already have 9 digits or more.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Iterator
from itertools import accumulate

from memory_bridge.domain.card_windows import card_windows, whole_card
from memory_bridge.domain.number_checks import ssn_valid

MARKERS: dict[str, str] = {
    "cards": "[redacted card number]",
    "iban": "[redacted IBAN]",
    "ssn": "[redacted SSN]",
}
LONG_RUN_MARKER = "[redacted long number]"
MAX_RUN_DIGITS = 64
WORD_REACH = 60  # how near a word must stand to a number to speak of it

Span = tuple[int, int, str]


def _view_table() -> dict[int, str]:
    table: dict[int, str] = {}
    for zero in (0xFF10, 0x0660, 0x06F0):  # full-width, Arabic-Indic, Persian digits
        table.update({zero + value: str(value) for value in range(10)})
    table.update({0xFF21 + i: chr(ord("A") + i) for i in range(26)})  # full-width letters
    table.update({0xFF41 + i: chr(ord("a") + i) for i in range(26)})
    spaces = [0x00A0, 0x1680, *range(0x2000, 0x200C), 0x202F, 0x205F, 0x2060, 0x3000, 0xFEFF]
    table.update(dict.fromkeys(spaces, " "))  # no-break, thin, ideographic, zero-width spaces
    dashes = [0x00AD, *range(0x2010, 0x2016), 0x2212, 0xFE58, 0xFE63, 0xFF0D]
    table.update(dict.fromkeys(dashes, "-"))  # hyphens, en and em dashes, minus signs
    table.update({0xFF0B: "+", 0xFF0E: ".", 0xFF0F: "/", 0x2028: "\n", 0x2029: "\n"})
    return table


_VIEW = str.maketrans(_view_table())


def scan_view(text: str) -> str:
    """`text` with look-alikes as ASCII, character for character (the same length, the same offsets)."""
    return text if text.isascii() else text.translate(_VIEW)


def splice(text: str, replacements: Iterable[Span]) -> str:
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


def _separators() -> frozenset[str]:
    """Every separator that joins two digit groups into one run: a finite set, at most 7 characters."""
    spaces = ["", " ", "\t", "  ", " \t", "\t ", "\t\t"]
    one = ["", " ", "\t"]
    found = {s for s in spaces if s} | {".", "/"} | {a + "-" + b for a in one for b in one}
    found |= {
        a + dash + line + b for a in spaces for dash in ("", "-") for line in ("\n", "\r\n") for b in spaces
    }
    return frozenset(found)


SEPARATORS = _separators()
# A stretch of at least 9 digits (an SSN's count; a card needs 13) joined by up to 7 separator
# characters, then cut where the characters between two groups are not a separator (three spaces,
# " . ", a blank line). One character class, bounded and disjoint from the digits: the engine's work is
# linear, and a class is several times faster than an alternation of the separators themselves.
_CANDIDATE = re.compile(r"\d(?:[ \t\-./\r\n]{0,7}\d){8,}", re.ASCII)
_GAP = re.compile(r"[ \t\-./\r\n]+")
_GAP_SPLIT = re.compile(r"([ \t\-./\r\n]+)")
_GROUP = re.compile(r"\d+", re.ASCII)
_GLUE = re.compile(r"[-./]")  # a separator that makes two groups one reference, unlike whitespace
# Matched against lower-cased text: re.IGNORECASE would cost the engine its first-character
# shortcut, twenty times slower here.
_SSN_WORD = re.compile(r"(?<![a-z])(?:ssns?|ss ?#|social|soc\.? ?sec)", re.ASCII)
_CARD_WORD = re.compile(
    r"(?<![a-z])(?:cards?|visa|master ?card|amex|american express|discover|diners|jcb|maestro|unionpay"
    r"|credit|debit|cc|cvv|cvc)(?![a-z])",
    re.ASCII,
)

Window = tuple[int, int, str]  # (first group, last group, marker)


def number_spans(view: str, wanted: frozenset[str], found: Counter[str]) -> list[Span]:
    """The SSNs and cards (as `wanted`) in the scan view, as (start, end, marker), counted in `found`."""
    spans: list[Span] = []
    for match in _CANDIDATE.finditer(view):
        start, run = match.start(), match.group()
        gaps = _GAP.findall(run)
        if SEPARATORS.issuperset(gaps):  # the usual case: one run
            spans += _run_spans(view, start, run, gaps, wanted, found)
        else:
            for at, part, part_gaps in _runs_in(run):
                spans += _run_spans(view, start + at, part, part_gaps, wanted, found)
    return spans


def _runs_in(candidate: str) -> Iterator[tuple[int, str, list[str]]]:
    """(offset, run, its gaps) of each run of 9 digits or more in a candidate, cut where a gap is no
    separator. `split` with a captured pattern hands digits and gaps over in one C-level call."""
    pieces = _GAP_SPLIT.split(candidate)  # digits, gap, digits, gap, …, digits
    first, begin, at, digits = 0, 0, 0, 0  # the run's first piece, its offset; where we are; its digits
    for index in range(0, len(pieces) - 1, 2):
        digits += len(pieces[index])
        at += len(pieces[index])
        gap = pieces[index + 1]
        if gap not in SEPARATORS:
            if digits >= 9:
                yield begin, candidate[begin:at], pieces[first + 1 : index : 2]
            first, begin, digits = index + 2, at + len(gap), 0
        at += len(gap)
    if digits + len(pieces[-1]) >= 9:
        yield begin, candidate[begin:], pieces[first + 1 : len(pieces) - 1 : 2]


def _run_spans(
    view: str, start: int, run: str, gaps: list[str], wanted: frozenset[str], found: Counter[str]
) -> list[Span]:
    """The spans to replace in one run; `gaps` are the separators between its groups."""
    digits = len(run) - sum(map(len, gaps))
    cards = "cards" in wanted
    if cards and digits > MAX_RUN_DIGITS:
        found["cards"] += 1
        return [(start, start + len(run), LONG_RUN_MARKER)]
    after_plus = start > 0 and view[start - 1] == "+"
    groups = [run] if not gaps else _GROUP.findall(run)
    kind = _whole_run(view, start, run, groups, wanted, after_plus)
    if kind:
        found[kind] += 1
        return [(start, start + len(run), MARKERS[kind])]
    if not gaps or digits == 9:  # one group, or nine digits: nothing else can be in it
        return []
    windows: list[Window] = []
    if "ssn" in wanted:
        windows += _ssn_windows(view, start, run, groups, gaps)
        found["ssn"] += len(windows)
    if cards and digits >= 13:
        # A card word is looked for only where groups of 1-2 digits could hold a card.
        card_word = min(map(len, groups)) <= 2 and _word_near(_CARD_WORD, view, start, start + len(run))
        windows += _card_windows_around(groups, windows, after_plus, card_word, found)
    if not windows:
        return []
    # Each group's start in the run: the lengths of the groups and gaps before it.
    starts = list(accumulate((len(g) + len(p) for g, p in zip(groups, gaps, strict=False)), initial=0))
    windows.sort()
    return [
        (start + starts[first], start + starts[last] + len(groups[last]), marker)
        for first, last, marker in windows
    ]


def _whole_run(
    view: str, start: int, run: str, groups: list[str], wanted: frozenset[str], after_plus: bool
) -> str | None:
    """The kind when the whole run is one card or one SSN (the common cases, looked at first)."""
    digits = sum(map(len, groups))
    if "cards" in wanted and 13 <= digits <= 19:
        number = "".join(groups)
        return "cards" if whole_card(number, list(map(len, groups)), after_plus) else None
    if "ssn" not in wanted or digits != 9 or not ssn_valid("".join(groups)):
        return None
    if list(map(len, groups)) == [3, 2, 4] or _word_near(_SSN_WORD, view, start, start + len(run)):
        return "ssn"
    return None


def _word_near(word: re.Pattern[str], view: str, start: int, end: int) -> bool:
    """Whether `word` stands within WORD_REACH characters of view[start:end]."""
    return word.search(view[max(0, start - WORD_REACH) : end + WORD_REACH].lower()) is not None


def _alone(gaps: list[str], first: int, last: int) -> bool:
    """Not glued to a neighbouring group by a dash, dot or slash (part of a longer reference)."""
    if first > 0 and _GLUE.search(gaps[first - 1]):
        return False
    return last >= len(gaps) or not _GLUE.search(gaps[last])


def _ssn_windows(view: str, start: int, run: str, groups: list[str], gaps: list[str]) -> list[Window]:
    """Each SSN in a run of several groups and more than nine digits: 3-2-4, and with the keyword
    near, a group of nine."""
    lengths = list(map(len, groups))
    if 3 not in lengths and 9 not in lengths:
        return []
    near: bool | None = None  # the keyword, looked for once, when a run needs it
    found: list[Window] = []
    after = 0  # the first group not yet in an SSN
    for index in [i for i, size in enumerate(lengths) if size in (3, 9)]:
        last = index + 2 if lengths[index : index + 3] == [3, 2, 4] else index if lengths[index] == 9 else -1
        if index < after or last < 0 or not _alone(gaps, index, last):
            continue
        if not ssn_valid("".join(groups[index : last + 1])):
            continue
        if last == index and near is None:
            near = _word_near(_SSN_WORD, view, start, start + len(run))
        if last > index or near:
            found.append((index, last, MARKERS["ssn"]))
            after = last + 1
    return found


def _card_windows_around(
    groups: list[str], ssns: list[Window], after_plus: bool, card_word: bool, found: Counter[str]
) -> list[Window]:
    """Card windows in what the SSNs leave of the run, each part looked at as a run of its own."""
    parts, begin = [], 0
    for first, last, _ in ssns:
        parts.append((begin, first))
        begin = last + 1
    parts.append((begin, len(groups)))
    windows: list[Window] = []
    for begin, stop in parts:
        lengths = list(map(len, groups[begin:stop]))
        if sum(lengths) < 13:
            continue
        here = card_windows("".join(groups[begin:stop]), lengths, after_plus and begin == 0, card_word)
        found["cards"] += len(here)
        windows += ((begin + first, begin + last, MARKERS["cards"]) for first, last in here)
    return windows
