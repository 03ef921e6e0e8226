"""Sensitive numbers never reach Memory, the queue, the CLI's output or the logs.

The real handler with real API Gateway events, on moto's server and the Memory sandbox.
"""

from __future__ import annotations

import io
import json
import time
from datetime import UTC, datetime

import pytest

from memory_bridge.adapters.dead_letters import DeadLetterQueue
from memory_bridge.domain.envelope import FailureRecord, new_envelope
from memory_bridge.domain.identifiers import Identifier
from memory_bridge.domain.outcomes import Retryable
from memory_bridge.domain.redaction import MARKERS
from memory_bridge.runtime import logger
from memory_bridge_dev.sandbox import Fault
from tests.integration.conftest import new_container, outcome
from tests.support import message_params

pytestmark = pytest.mark.integration

CARD, IBAN = MARKERS["cards"], MARKERS["iban"]
BODY = (
    "Hi! My card 4111 1111 1111 1111 was charged twice, and so was 5555-5555-5555-4444. "
    "Refund to DE89 3704 0044 0532 0130 00 please, or call +1 555 555 0100."
)
SECRETS = ("4111", "5555-5555", "5555555555554444", "3704", "DE89", "0532")
EXPECTED = (
    f"Hi! My card {CARD} was charged twice, and so was {CARD}. "
    f"Refund to {IBAN} please, or call +1 555 555 0100."
)


@pytest.fixture
def logs(monkeypatch) -> io.StringIO:
    """The function's own log lines (Powertools' handler writes to a stream of its own)."""
    captured = io.StringIO()
    monkeypatch.setattr(logger.registered_handler, "stream", captured)
    return captured


def wait_until_visible(bridge, seconds: float = 5.0) -> None:
    """peek and export hold what they read for a moment, then release it."""
    ends = time.monotonic() + seconds
    while bridge.queue_depth() == 0 and time.monotonic() < ends:
        time.sleep(0.1)


def assert_nothing_sensitive(text: str) -> None:
    leaked = [s for s in SECRETS if s in text]
    assert not leaked, f"{leaked} in {text[:300]!r}"


def test_two_cards_and_an_iban_land_in_memory_as_three_markers(bridge, capfd, logs):
    response = bridge.send(message_params(message_sid="IMpci1", body=BODY))
    assert outcome(response) == "posted"
    [observation] = bridge.observations()
    assert observation["content"] == EXPECTED
    output = capfd.readouterr().out  # the metrics (EMF)
    metrics = [json.loads(line) for line in output.splitlines() if '"_aws"' in line]
    assert metrics[-1]["RedactedCardNumbers"] == [2.0] and metrics[-1]["RedactedIbans"] == [1.0]
    assert_nothing_sensitive(output + logs.getvalue())
    lines = logs.getvalue().splitlines()
    [log] = [json.loads(line) for line in lines if "sensitive numbers redacted" in line]
    assert log["redacted"] == {"cards": 2, "iban": 1}  # kinds and counts, never values


def test_with_memory_failing_the_message_is_parked_without_them(oncall, tmp_path):
    oncall.sandbox.add_fault(Fault(status=503, match="/Observations"))
    assert outcome(oncall.send(message_params(message_sid="IMpci2", body=BODY))) == "parked"
    oncall.sandbox.clear_faults()
    [envelope] = oncall.parked()
    assert envelope.observations[0]["content"] == EXPECTED
    raw = oncall.sqs.receive_message(QueueUrl=oncall.queue_url, VisibilityTimeout=0)["Messages"][0]["Body"]
    assert_nothing_sensitive(raw)
    # What an operator sees: peek with content, and the export file.
    code, out, _ = oncall.run("dlq", "peek", "--show-content", "--json")
    assert code == 0 and CARD in out
    assert_nothing_sensitive(out)
    target = tmp_path / "dlq.jsonl"
    code, _, _ = oncall.run("dlq", "export", "--out", str(target))
    assert code == 0
    assert_nothing_sensitive(target.read_text())
    wait_until_visible(oncall)
    code, out, _ = oncall.run("dlq", "replay", "--json")
    assert code == 0, out
    assert [o["content"] for o in oncall.observations()] == [EXPECTED]


def test_an_old_envelope_holding_a_card_is_redacted_on_peek_export_and_replay(oncall, tmp_path):
    """Parked before redaction existed: the same step runs on what the CLI shows and posts."""
    old = new_envelope(
        kind="retryable",
        store_id=oncall.store_id,
        message_sid="IMold1",
        conversation_sid="CH00000000000000000000000000000001",
        observations=[
            {"content": BODY, "source": "twilio-conversations", "occurredAt": "2026-11-01T10:00:00.000Z"}
        ],
        failure=FailureRecord.from_outcome("post_observations", Retryable(status=503)),
        profile_id=None,
        identifier=Identifier("phone", "+15555550100"),
        trait_group="Contact",
        now=datetime(2026, 11, 1, 10, tzinfo=UTC),
    )
    DeadLetterQueue(oncall.queue_url).park(old)
    code, out, _ = oncall.run("dlq", "peek", "--show-content", "--json")
    assert code == 0 and CARD in out
    assert_nothing_sensitive(out)
    target = tmp_path / "old.jsonl"
    assert oncall.run("dlq", "export", "--out", str(target))[0] == 0
    assert_nothing_sensitive(target.read_text())
    wait_until_visible(oncall)
    code, out, _ = oncall.run("dlq", "replay", "--json")
    assert code == 0, out
    assert json.loads(out)["counts"]["redacted"] == 3, out
    assert [o["content"] for o in oncall.observations()] == [EXPECTED]


def test_skip_mode_acknowledges_and_counts_but_posts_and_parks_nothing(bridge, monkeypatch, capfd, logs):
    monkeypatch.setenv("REDACT_MODE", "skip")
    new_container()
    response = bridge.send(message_params(message_sid="IMpci3", body=BODY))
    assert response["statusCode"] == 200
    assert json.loads(response["body"]) == {"outcome": "skipped", "reason": "sensitive"}
    assert bridge.observations() == [] and bridge.parked() == []
    output = capfd.readouterr().out
    assert_nothing_sensitive(output + logs.getvalue())
    assert '"MessagesSkippedSensitive":[1.0]' in output.replace(" ", "")
    assert "sensitive numbers skipped the message" in logs.getvalue()
    # A message without any goes through as usual.
    assert outcome(bridge.send(message_params(message_sid="IMpci4", body="where is my parcel?"))) == "posted"


def test_a_bad_setting_answers_500_naming_the_variable(bridge, monkeypatch):
    monkeypatch.setenv("REDACT_SENSITIVE_NUMBERS", "cards,phones")
    new_container()
    response = bridge.send(message_params(message_sid="IMpci5", body=BODY))
    assert response["statusCode"] == 500
    assert bridge.observations() == [] and bridge.parked() == []
