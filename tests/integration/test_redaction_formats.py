"""Issue 18, item 2: the formats people type and speech-to-text writes never reach Memory, the
dead-letter queue or `dlq peek` verbatim.

Each row goes through the real handler with a real, signed API Gateway event, twice: once with Memory
up (what Memory holds), once with Memory answering 503 (what the queue holds, and what `memory-bridge
dlq peek --show-content --json` shows). moto's server and the Memory sandbox, over loopback.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Iterator
from typing import Any

import pytest

from memory_bridge_dev.sandbox import Fault
from tests.integration.conftest import outcome
from tests.support import message_params
from tests.unit.test_redaction import FORMATS

pytestmark = pytest.mark.integration

# The rule for nine digits written together: without a word for an SSN near, an order number.
ROWS = [*FORMATS, ("nine digits without a word for an SSN: an order number", "order 123456789", None)]


def digits(text: str) -> str:
    """The ASCII digits of `text`, full-width and other compatibility digits read as theirs."""
    return re.sub(r"[^0-9]", "", unicodedata.normalize("NFKC", text))


def strings(document: Any) -> Iterator[str]:
    if isinstance(document, str):
        yield document
    elif isinstance(document, dict):
        for value in document.values():
            yield from strings(value)
    elif isinstance(document, list):
        for value in document:
            yield from strings(value)


def leaks(secret: str, document: Any) -> list[str]:
    """Every string of a parsed JSON document in which the secret's digits stand, in any format:
    digit groups joined by up to three non-alphanumeric characters are read as one number."""
    found = []
    for value in strings(document):
        flat = unicodedata.normalize("NFKC", value)
        for run in re.findall(r"[0-9](?:[^0-9A-Za-z]{0,3}[0-9])*", flat):
            if secret in digits(run):
                found.append(value)
    return found


def assert_not_verbatim(text: str, expected: str, document: Any) -> None:
    survivors = digits(expected)  # digits the row leaves (a CVV, say): not part of the secret
    secret = digits(text).replace(survivors, "", 1) if survivors else digits(text)
    assert secret, text
    assert not leaks(secret, document)
    assert not [value for value in strings(document) if text in value]


@pytest.mark.parametrize(
    ("row", "text", "expected"), [(i, t, e) for i, (_, t, e) in enumerate(ROWS)], ids=[row[0] for row in ROWS]
)
def test_a_format_reaches_memory_the_queue_and_peek_only_redacted(oncall, row, text, expected):
    body = f"Hi, {text} thanks"
    want = f"Hi, {expected if expected is not None else text} thanks"
    sid = f"IM{row:030x}"  # IM and 32 hex digits with the suffixes below

    # Memory up: what Memory holds.
    assert outcome(oncall.send(message_params(message_sid=f"{sid}a1", body=body))) == "posted"
    held = oncall.observations()
    assert [o["content"] for o in held] == [want]

    # Memory down: what the queue holds, and what an operator sees.
    oncall.sandbox.add_fault(Fault(status=503, match="/Observations"))
    assert outcome(oncall.send(message_params(message_sid=f"{sid}b2", body=body))) == "parked"
    oncall.sandbox.clear_faults()
    raw = oncall.sqs.receive_message(QueueUrl=oncall.queue_url, VisibilityTimeout=0)["Messages"][0]["Body"]
    envelope = json.loads(raw)
    assert [o["content"] for o in envelope["observations"]] == [want]
    code, out, err = oncall.run("dlq", "peek", "--show-content", "--json")
    assert code == 0, err
    shown = json.loads(out)
    assert want in list(strings(shown))

    if expected is None:  # the order number: left as it is, everywhere
        assert text in raw and text in out
        return
    assert_not_verbatim(text, expected, held)
    assert_not_verbatim(text, expected, envelope)
    assert_not_verbatim(text, expected, shown)
