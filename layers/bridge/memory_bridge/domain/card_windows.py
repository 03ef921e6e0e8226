"""Which windows of a run's digit groups hold a card number. Pure.

A run is digits joined by separators (memory_bridge.domain.sensitive_numbers); its groups are the
digit strings between them. Only windows of whole groups in a shape people write a card in are
tried, so that two phone numbers or two dates in a row are not taken for one card:
- **from any group:** one group of 13-19 digits; 4-4-4 then 1-4 digits (then 1-3 after a fourth 4:
  17-19 digits); Amex's 4-6-5 (and 4-6-4); 3-3-3-3-4;
- **groups of 1 or 2 digits** (speech-to-text's "41 11 11 …", "4 1 1 1 …"), all of one size (the last
  may be shorter: a 15-digit card in pairs ends in one digit). Such groups are also how lists of
  small numbers are written (lottery picks, seats, codes), and every window of a list of them
  would be tried 20 or more times: 7.7 % of generated lists lost a "card" when windows anchored at
  either end of a stretch of small groups were tried alone. So, without a card word near, only a
  whole stretch of small groups is tried (the card said alone); with one (CARD_WORDS, within
  reach), also the windows that start or end where the stretch does (a card then its CVV or expiry,
  a phone number then a card).
After "+", the first group starts an E.164 number (at most 15 digits): a window from it is tried
only when it is longer than that.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from itertools import accumulate

from memory_bridge.domain.number_checks import is_card_number

E164_MAX_DIGITS = 15
SMALL_GROUP = 2  # digits in a group of the small-group form
MIN_CARD, MAX_CARD = 13, 19

Window = tuple[int, int]  # (first group, last group), both included
Validity = Callable[[int, int], bool]  # whether a window (first, last) holds a card


def shaped_windows(lengths: list[int], first: int) -> Iterator[int]:
    """The last group of each card-shaped window starting at group `first`, shortest first."""
    count = len(lengths)
    here = lengths[first]
    if MIN_CARD <= here <= MAX_CARD:
        yield first
    if here == 3:
        if first + 4 < count and lengths[first + 1 : first + 4] == [3, 3, 3] and lengths[first + 4] == 4:
            yield first + 4
        return
    if here != 4 or first + 2 >= count:
        return
    if lengths[first + 1] == 6 and lengths[first + 2] in (4, 5):
        yield first + 2
    if lengths[first + 1] == 4 and lengths[first + 2] == 4 and first + 3 < count:
        fourth = lengths[first + 3]
        if 1 <= fourth <= 4:
            yield first + 3
        if fourth == 4 and first + 4 < count and 1 <= lengths[first + 4] <= 3:
            yield first + 4


def _small_stretches(lengths: list[int], offsets: list[int]) -> Iterator[tuple[int, int]]:
    """(first, last) of each stretch of 1- and 2-digit groups that holds enough digits for a card."""
    count, first = len(lengths), 0
    while first < count:
        if lengths[first] > SMALL_GROUP:
            first += 1
            continue
        last = first
        while last + 1 < count and lengths[last + 1] <= SMALL_GROUP:
            last += 1
        if offsets[last + 1] - offsets[first] >= MIN_CARD:
            yield first, last
        first = last + 1


def one_size(lengths: list[int], first: int, last: int) -> bool:
    """Groups `first`..`last` all of one size, but the last, which may be shorter."""
    size = lengths[first]
    return lengths[last] <= size and all(length == size for length in lengths[first:last])


def _small_group_windows(
    lengths: list[int], offsets: list[int], valid: Validity, card_word: bool
) -> list[Window]:
    """Valid windows of small groups of one size: each whole stretch of them, and with a card word
    near, the windows anchored at a stretch's start or its end."""
    found: list[Window] = []
    for first, last in _small_stretches(lengths, offsets):
        if not card_word:
            ends = [(first, last)]
        else:
            ends = [(first, end) for end in range(first, last + 1)]  # from the stretch's start
            ends += [(start, last) for start in range(last, first, -1)]  # to its end
        for start, end in ends:
            size = offsets[end + 1] - offsets[start]
            if MIN_CARD <= size <= MAX_CARD and one_size(lengths, start, end) and valid(start, end):
                found.append((start, end))
    return found


def _valid(number: str, first: int, after_plus: bool) -> bool:
    if after_plus and first == 0 and len(number) <= E164_MAX_DIGITS:
        return False
    return is_card_number(number)


def whole_card(digits: str, lengths: list[int], after_plus: bool = False) -> bool:
    """Whether a run's groups, all of them, are one card in a card's shape: the common case."""
    last = len(lengths) - 1
    if not MIN_CARD <= len(digits) <= MAX_CARD:
        return False
    if max(lengths) <= SMALL_GROUP:
        return one_size(lengths, 0, last) and _valid(digits, 0, after_plus)
    shaped = last in shaped_windows(lengths, 0)
    return shaped and _valid(digits, 0, after_plus)


def card_windows(
    digits: str, lengths: list[int], after_plus: bool = False, card_word: bool = False
) -> list[Window]:
    """The windows of groups that hold a card, overlapping ones merged into one (when a number just
    before a card forms a valid window with the card's first groups, neither the card's last group
    nor that number is left to guess from). `digits` is the groups' digits, joined; `card_word`
    whether a card word stands near the run."""
    offsets = list(accumulate(lengths, initial=0))

    def valid(first: int, last: int) -> bool:
        return _valid(digits[offsets[first] : offsets[last + 1]], first, after_plus)

    if whole_card(digits, lengths, after_plus):
        return [(0, len(lengths) - 1)]
    found: list[Window] = []
    if 4 in lengths or max(lengths) >= MIN_CARD:  # else no group can start a card-shaped window
        for first in range(len(lengths)):
            found += ((first, last) for last in shaped_windows(lengths, first) if valid(first, last))
    if min(lengths) <= SMALL_GROUP:
        found += _small_group_windows(lengths, offsets, valid, card_word)
    merged: list[list[int]] = []
    for first, last in sorted(found):
        if merged and first <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], last)
        else:
            merged.append([first, last])
    return [(first, last) for first, last in merged]
