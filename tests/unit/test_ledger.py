"""The delivery ledger's decisions, the pacer, and envelopes that always fit SQS (no sockets)."""

from datetime import UTC, datetime

from memory_bridge.domain.envelope import MAX_ENVELOPE_BYTES, FailureRecord, new_envelope, parse_envelope
from memory_bridge.domain.identifiers import Identifier
from memory_bridge.domain.ledger import LedgerRecord, PartsPlan, plan_parts
from memory_bridge.domain.outcomes import Retryable
from memory_bridge.replay import MAX_INTERVAL_SECONDS, OutOfTime, Pacer
from tests.support import FakeClock


def test_no_record_posts_everything_unless_the_envelope_says_ambiguous():
    assert plan_parts(range(3), None) == PartsPlan(post=(0, 1, 2))
    assert plan_parts(range(3), None, ambiguous=True) == PartsPlan(check=(0, 1, 2))


def test_accepted_parts_are_done_and_unsure_ones_checked():
    record = LedgerRecord("IM1", accepted=frozenset({0, 1}), unsure=frozenset({1, 2}))
    assert plan_parts(range(4), record) == PartsPlan(done=(0, 1), check=(2,), post=(3,))


def test_a_lease_belongs_to_its_owner_until_it_ends():
    record = LedgerRecord("IM1", lease_owner="run-a", lease_until=100.0)
    assert record.leased_to_another("run-b", now=99.0)
    assert not record.leased_to_another("run-a", now=99.0)
    assert not record.leased_to_another("run-b", now=100.5)


def test_the_pacer_recovers_its_rate_after_successes():
    clock = FakeClock()
    pacer = Pacer(10.0, clock, clock.sleep)
    for _ in range(10):  # ten isolated 429s
        pacer.slow_down(None)
    assert pacer.interval == MAX_INTERVAL_SECONDS  # capped: never 51 s per request
    for _ in range(12):
        pacer.succeeded()
    assert pacer.interval == 0.1  # back to the asked rate


def test_the_pacer_never_sleeps_past_the_time_limit():
    clock = FakeClock()
    pacer = Pacer(None, clock, clock.sleep, limit=lambda: 2.0)
    pacer.slow_down(retry_after=30)
    try:
        pacer.wait()
    except OutOfTime:
        assert clock.slept == []
    else:
        raise AssertionError("waited past the limit")


def envelope_of(contents):
    return new_envelope(
        kind="retryable",
        store_id="mem_store_01kpttrksqe08rhv122gzq52ax",
        message_sid="IM1",
        conversation_sid="CH1",
        observations=[{"content": c, "source": "s", "occurredAt": "2026-11-21T10:00:00Z"} for c in contents],
        failure=FailureRecord.from_outcome("post_observations", Retryable(503)),
        profile_id=None,
        identifier=Identifier("phone", "+15555550100"),
        trait_group="Contact",
        now=datetime(2026, 11, 21, tzinfo=UTC),
        parts=range(len(contents)),
    )


def test_characters_sqs_refuses_are_escaped_and_read_back_unchanged():
    text = "a\ufffeb\uffffc"
    body = envelope_of([text]).to_json()
    assert "\ufffe" not in body and "\uffff" not in body
    assert parse_envelope(body).observations[0]["content"] == text


def test_an_envelope_too_big_for_sqs_is_split_keeping_its_part_numbers():
    # Control characters cost six bytes each in JSON: 40 parts of 4,096 of them is about 1 MB.
    contents = ["\x01" * 4096 for _ in range(40)]
    pieces = envelope_of(contents).fitted_for_queue()
    assert len(pieces) > 1
    assert all(len(p.to_json().encode()) <= MAX_ENVELOPE_BYTES for p in pieces)
    assert [n for p in pieces for n in p.part_numbers] == list(range(40))


def test_the_largest_conversations_message_fits_one_envelope():
    # Conversations bodies are at most 32 KiB (1,600 characters for SMS); worst case every byte escaped.
    contents = ["\x01" * 4096 for _ in range(8)] + ["[attachment: image/jpeg photo.jpg]"] * 10
    assert len(envelope_of(contents).fitted_for_queue()) == 1
