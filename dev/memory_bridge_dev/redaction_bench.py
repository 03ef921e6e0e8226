"""Figures for memory_bridge.domain.redaction (dev-only): cost per KB, adversarial bodies, false positives.

    .venv/bin/python -m memory_bridge_dev.redaction_bench          (also a section of `make bench`)

- **Cost per KB** on two generated chat corpora: a realistic one (most messages hold no long
  number; some a phone number, an order number, a date or an amount; one in twenty a card or an
  IBAN) and a dense one where every message holds numbers.
- **Adversarial 32 KB bodies:** long digit runs, alternating separators, many card-shaped or
  IBAN-shaped candidates. Best of several runs, in milliseconds.
- **False positives:** how many phone numbers (E.164 and national forms) and plausible order and
  tracking numbers are wrongly redacted.
Measured on this machine's CPU; Lambda at 256 MB runs the handler at about 0.145 of a vCPU.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from collections.abc import Callable
from typing import Any

from memory_bridge.domain.redaction import luhn_valid, redact

KB = 1024
WORDS = [
    "hi",
    "hello",
    "my",
    "order",
    "parcel",
    "is",
    "late",
    "where",
    "can",
    "you",
    "please",
    "call",
    "me",
    "back",
    "thanks",
    "refund",
    "the",
    "delivery",
    "was",
    "charged",
    "twice",
    "tomorrow",
    "morning",
    "address",
    "changed",
    "slot",
    "agent",
    "help",
    "account",
    "number",
    "payment",
]


def _luhn_complete(stem: str) -> str:
    return next(stem + d for d in "0123456789" if luhn_valid(stem + d))


def _digits(rng: random.Random, n: int) -> str:
    return "".join(rng.choice("0123456789") for _ in range(n))


def phone_number(rng: random.Random) -> str:
    form = rng.randrange(6)
    if form == 0:
        return "+" + rng.choice("123456789") + _digits(rng, rng.randint(7, 14))  # E.164
    if form == 1:
        return f"+{rng.randint(1, 99)} {_digits(rng, 3)} {_digits(rng, 3)} {_digits(rng, 4)}"
    if form == 2:
        return f"({_digits(rng, 3)}) {_digits(rng, 3)}-{_digits(rng, 4)}"  # US national
    if form == 3:
        return f"{_digits(rng, 3)}-{_digits(rng, 3)}-{_digits(rng, 4)}"
    if form == 4:
        return "0" + _digits(rng, rng.randint(2, 4)) + " " + _digits(rng, rng.randint(6, 8))  # EU national
    return "0" + _digits(rng, 10)


def order_number(rng: random.Random) -> str:
    """Order references and tracking numbers as shops and carriers print them."""
    form = rng.randrange(6)
    if form == 0:
        return _digits(rng, rng.randint(10, 20))  # a plain reference
    if form == 1:
        digits = _digits(rng, rng.choice([12, 16, 20]))
        return " ".join(digits[i : i + 4] for i in range(0, len(digits), 4))
    if form == 2:
        return f"{_digits(rng, 3)}-{_digits(rng, 7)}-{_digits(rng, 7)}"  # marketplace order
    if form == 3:
        return "94" + _digits(rng, 20)  # postal tracking, 22 digits
    if form == 4:
        return _digits(rng, 12)  # courier tracking
    return "1Z" + "".join(rng.choice("0123456789ABCDEFGHJKLMNPRSTUVWXYZ") for _ in range(16))


def phone_number_written(rng: random.Random) -> str:
    """Phone numbers in the forms issue 18's separators let join into runs: dots, pairs, slashes,
    spaced dashes, no-break spaces."""
    form = rng.randrange(7)
    if form == 0:
        return f"{_digits(rng, 3)}.{_digits(rng, 3)}.{_digits(rng, 4)}"  # US, dotted
    if form == 1:  # French, in pairs, spaced or dotted
        return rng.choice([" ", "."]).join(
            ["0" + rng.choice("123456789")] + [_digits(rng, 2) for _ in range(4)]
        )
    if form == 2:
        return "+33 " + rng.choice("67") + " " + " ".join(_digits(rng, 2) for _ in range(4))
    if form == 3:
        return "0" + _digits(rng, 3) + "/" + _digits(rng, rng.randint(6, 8))  # German, slashed
    if form == 4:
        return f"{_digits(rng, 3)} - {_digits(rng, 3)} - {_digits(rng, 4)}"
    if form == 5:
        return "+44\u00a0" + _digits(rng, 2) + "\u00a0" + _digits(rng, 4) + "\u00a0" + _digits(rng, 4)
    return f"{_digits(rng, 3)}\t{_digits(rng, 3)}\t{_digits(rng, 4)}"


def order_number_written(rng: random.Random) -> str:
    """Order, invoice and account references in those forms, and nine-digit ones (an SSN's length)."""
    form = rng.randrange(6)
    if form == 0:
        return _digits(rng, 9)  # nine digits, no word for an SSN near: must survive
    if form == 1:
        return f"{rng.randint(2020, 2030)}/{_digits(rng, 4)}/{_digits(rng, 4)}"
    if form == 2:
        return ".".join(_digits(rng, 4) for _ in range(rng.choice([3, 4, 5])))
    if form == 3:
        return f"{_digits(rng, 3)}.{_digits(rng, 3)}.{_digits(rng, 3)}"
    if form == 4:
        return "  ".join(_digits(rng, 4) for _ in range(rng.choice([3, 4, 5])))
    return f"{_digits(rng, 2)}-{_digits(rng, 4)}-{_digits(rng, 4)}-{_digits(rng, 2)}"


def number_list(rng: random.Random) -> str:
    """Small numbers in a row (lottery picks, seat numbers, codes): groups of 1-2 digits."""
    return " ".join(str(rng.randint(1, 49)).zfill(rng.choice([1, 2])) for _ in range(rng.randint(6, 12)))


def alphanumeric_reference(rng: random.Random) -> str:
    """Booking codes and tokens, sometimes glued to a word: where an IBAN-shaped stretch can hide."""
    token = "".join(rng.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789") for _ in range(rng.randint(12, 34)))
    return rng.choice(["", "REF", "booking"]) + token


def chat_message(rng: random.Random, dense: bool) -> str:
    words = " ".join(rng.choice(WORDS) for _ in range(rng.randint(5, 40)))
    roll = rng.random()
    if dense or roll < 0.25:
        extra = rng.choice(
            [
                f"call me on {phone_number(rng)}",
                f"order {order_number(rng)}",
                f"on {rng.randint(2020, 2030)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d} "
                f"at {rng.randint(0, 23)}:{rng.randint(0, 59):02d}",
                f"it was ${rng.randint(1, 9999)}.{rng.randint(0, 99):02d}",
            ]
        )
        words = f"{words} {extra}"
    if dense or roll > 0.95:
        card = _luhn_complete("4" + _digits(rng, 14))
        words += rng.choice([f" my card {card}", " pay to DE89 3704 0044 0532 0130 00"])
    return words


def per_kb(texts: list[str], repeats: int = 5) -> float:
    """Best of `repeats` passes over the corpus: milliseconds per KB of text."""
    size = sum(len(t.encode()) for t in texts) / KB
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        for text in texts:
            redact(text)
        best = min(best, time.perf_counter() - started)
    return round(best * 1000 / size, 4)


def _utf8_prefix(text: str, size: int) -> str:
    """The longest prefix of `text` that is at most `size` bytes in UTF-8 (a body's limit is in bytes)."""
    return text.encode()[:size].decode("utf-8", "ignore")


ADVERSARIAL: dict[str, Callable[[], str]] = {
    "one 32 KB digit run": lambda: "4" * 32 * KB,
    "digits and single spaces": lambda: "4 " * 16 * KB,
    "digits and single dashes": lambda: "4-" * 16 * KB,
    "separators alternating": lambda: ("4 4-4\n" * 7000)[: 32 * KB],
    "card-shaped runs": lambda: ("4111 1111 1111 1111 x " * 2000)[: 32 * KB],
    "short runs (8 digits)": lambda: ("4111 1111 x " * 3000)[: 32 * KB],
    "19-digit candidates": lambda: ("4111111111111111123x" * 2000)[: 32 * KB],
    "IBAN-shaped": lambda: ("DE00 " * 7000)[: 32 * KB],
    "IBAN-shaped, valid check digits": lambda: ("DE89 " * 7000)[: 32 * KB],
    "SSN-shaped": lambda: ("123-45-6789 x " * 3000)[: 32 * KB],
    # The formats of issue 18.
    "digits and dots": lambda: "4." * 16 * KB,
    "64-digit runs of single digits": lambda: ((" ".join("4" * 64) + "x") * 300)[: 32 * KB],
    "64-digit runs of pairs": lambda: (("41 " * 32 + "x ") * 400)[: 32 * KB],
    "card-shaped runs, spaced dashes": lambda: ("4111 - 1111 - 1111 - 1111 x " * 2000)[: 32 * KB],
    "card-shaped runs, 3-3-3-3-4": lambda: ("411 111 111 111 1111 x " * 2000)[: 32 * KB],
    "card-shaped runs, full-width": lambda: _utf8_prefix(
        ("\uff14\uff11\uff11\uff11 " * 4 + "x ") * 700, 32 * KB
    ),
    "nine digits beside 'ssn'": lambda: ("ssn 123456789 " * 3000)[: 32 * KB],
    "IBAN-shaped, dashes": lambda: ("DE89-" * 7000)[: 32 * KB],
    "9-digit runs between non-separators": lambda: ("4 4 4 4 4 4 4 4 4 . " * 2000)[: 32 * KB],
}


def adversarial(repeats: int = 7) -> dict[str, float]:
    out = {}
    for name, make in ADVERSARIAL.items():
        text = make()
        best = float("inf")
        for _ in range(repeats):
            started = time.perf_counter()
            redact(text)
            best = min(best, time.perf_counter() - started)
        out[name] = round(best * 1000, 2)
    return out


def false_positives(count: int, rng: random.Random) -> dict[str, Any]:
    def rate(make: Callable[[random.Random], str]) -> dict[str, Any]:
        wrong = [s for s in (make(rng) for _ in range(count)) if redact(f"ref {s} thanks").found]
        return {"tried": count, "redacted": len(wrong), "rate_pct": round(100 * len(wrong) / count, 3)}

    # The first two as before issue 18 (comparable across versions); the others in its new formats.
    return {
        "phone_numbers": rate(phone_number),
        "order_and_tracking_numbers": rate(order_number),
        "phone_numbers_new_formats": rate(phone_number_written),
        "order_numbers_new_formats": rate(order_number_written),
        "number_lists": rate(number_list),
        "alphanumeric_references": rate(alphanumeric_reference),
    }


def run(seed: int = 7, corpus_messages: int = 3000, false_positive_count: int = 20_000) -> dict[str, Any]:
    rng = random.Random(seed)
    realistic = [chat_message(rng, dense=False) for _ in range(corpus_messages)]
    dense = [chat_message(rng, dense=True) for _ in range(corpus_messages)]
    # The same realistic text as bodies of about 1 KB: the fixed cost of a call is spread thinner.
    bodies, body = [], ""
    for line in realistic:
        body += line + "\n"
        if len(body) >= KB:
            bodies.append(body)
            body = ""
    per_message_us = per_kb(realistic) * (sum(len(t) for t in realistic) / KB) / len(realistic) * 1000
    return {
        "ms_per_kb": {
            "realistic_chat": per_kb(realistic),
            "realistic_1kb_bodies": per_kb(bodies),
            "every_message_with_numbers": per_kb(dense),
        },
        "us_per_realistic_message": round(per_message_us, 1),
        "corpus_kb": {
            "realistic_chat": round(sum(len(t) for t in realistic) / KB),
            "every_message_with_numbers": round(sum(len(t) for t in dense) / KB),
        },
        "adversarial_32kb_ms": adversarial(),
        "false_positives": false_positives(false_positive_count, rng),
    }


def render(result: dict[str, Any]) -> str:
    per = result["ms_per_kb"]
    fp = result["false_positives"]
    lines = [
        "Redaction (cards, IBANs, SSNs; best of several passes)",
        f"  realistic chat             {per['realistic_chat']:.4f} ms/KB "
        f"({result['corpus_kb']['realistic_chat']} KB; {result['us_per_realistic_message']} µs a message)",
        f"  the same as ~1 KB bodies   {per['realistic_1kb_bodies']:.4f} ms/KB",
        f"  every message with numbers {per['every_message_with_numbers']:.4f} ms/KB",
        "  32 KB adversarial bodies: "
        + ", ".join(f"{name} {ms} ms" for name, ms in result["adversarial_32kb_ms"].items()),
        "  false positives: "
        + ", ".join(f"{name} {f['redacted']}/{f['tried']} ({f['rate_pct']} %)" for name, f in fp.items()),
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="redaction_bench", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    result = run(args.seed)
    print(json.dumps(result, indent=2) if args.json else render(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
