"""Each fault class, and where the message ended up: posted once, or parked with its reason."""

import json
import socket
import threading
import time

import pytest

from memory_bridge_dev.sandbox import Fault
from tests.integration.conftest import new_container, outcome
from tests.support import message_params, signed_event

pytestmark = pytest.mark.integration
OBSERVATIONS = "/Observations"


def parked_one(bridge):
    [envelope] = bridge.parked()
    assert envelope.message_sid == "IM00000000000000000000000000000001"
    assert envelope.store_id == bridge.store_id
    assert envelope.observations[0]["content"] == "Hello from the customer"
    assert envelope.attempts == 1
    return envelope


def test_429_with_short_retry_after_is_retried_within_the_webhook(bridge):
    bridge.sandbox.add_fault(Fault(status=429, retry_after=1, times=1, match=OBSERVATIONS))
    started = time.monotonic()
    response = bridge.send(message_params())
    assert outcome(response) == "posted"
    assert 1.0 <= time.monotonic() - started < 4.0
    assert len(bridge.observations()) == 1
    assert bridge.queue_depth() == 0


def test_429_with_long_retry_after_is_parked_retryable(bridge):
    bridge.sandbox.add_fault(Fault(status=429, retry_after=30, match=OBSERVATIONS))
    response = bridge.send(message_params())
    assert response["statusCode"] == 200
    assert json.loads(response["body"])["kind"] == "retryable"
    envelope = parked_one(bridge)
    assert (envelope.kind, envelope.failure.status, envelope.failure.code) == ("retryable", 429, 20429)
    assert envelope.failure.retry_after == 30
    assert envelope.profile_id is not None
    assert bridge.observations() == []


@pytest.mark.parametrize("status", [500, 503])
def test_5xx_is_retried_once_then_parked_retryable(bridge, status):
    bridge.sandbox.add_fault(Fault(status=status, match=OBSERVATIONS))
    assert outcome(bridge.send(message_params())) == "parked"
    envelope = parked_one(bridge)
    assert (envelope.kind, envelope.failure.status) == ("retryable", status)
    assert len(bridge.sandbox.requests_to("CreateProfileObservation")) == 2  # the one retry
    assert bridge.observations() == []


def test_timeout_is_parked_as_ambiguous_and_answered_in_time(bridge):
    bridge.sandbox.add_fault(Fault(latency=3.0, times=1, match=OBSERVATIONS))
    started = time.monotonic()
    response = bridge.send(message_params())
    elapsed = time.monotonic() - started
    assert response["statusCode"] == 200
    assert elapsed < 4.5  # inside Twilio's 5 s, the queue write included
    envelope = parked_one(bridge)
    assert envelope.failure.status is None
    assert envelope.failure.ambiguous is True  # the sandbox may still accept it: replay must check first
    assert len(bridge.sandbox.requests_to("CreateProfileObservation")) <= 1


def test_slow_memory_never_pushes_the_answer_past_the_budget(bridge, monkeypatch):
    monkeypatch.setenv("MEMORY_API_READ_TIMEOUT", "10")
    new_container()
    bridge.sandbox.add_fault(Fault(latency=6.0, times=1, match=OBSERVATIONS))
    started = time.monotonic()
    response = bridge.send(message_params())
    assert time.monotonic() - started < 4.6
    assert outcome(response) == "parked"
    parked_one(bridge)


def test_connection_dropped_before_reading_is_parked(bridge):
    bridge.sandbox.add_fault(Fault(drop="before", match=OBSERVATIONS))
    assert outcome(bridge.send(message_params())) == "parked"
    envelope = parked_one(bridge)
    assert envelope.failure.status is None
    assert "connection" in envelope.failure.message
    assert bridge.observations() == []


def test_connection_dropped_after_acceptance_is_parked_as_ambiguous(bridge):
    bridge.sandbox.add_fault(Fault(drop="after", times=1, match=OBSERVATIONS))
    assert outcome(bridge.send(message_params())) == "parked"
    envelope = parked_one(bridge)
    assert envelope.failure.ambiguous is True
    # Memory did take it: the envelope says so, and replay must look before posting again.
    assert len(bridge.observations()) == 1


def test_memory_unreachable_is_parked_with_the_unresolved_author(bridge, monkeypatch):
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    monkeypatch.setenv("MEMORY_API_BASE_URL", f"http://127.0.0.1:{port}")
    new_container()
    assert outcome(bridge.send(message_params())) == "parked"
    envelope = parked_one(bridge)
    assert envelope.failure.stage == "resolve_profile"
    assert envelope.failure.ambiguous is False
    assert envelope.profile_id is None
    assert envelope.identifier.to_json() == {"idType": "phone", "value": "+15555550100"}


def test_permanent_4xx_is_parked_permanent(bridge, monkeypatch):
    monkeypatch.setenv("CHAT_ID_TYPE", "unknown_type")  # not in the store's identity settings → 400
    new_container()
    response = bridge.send(message_params(author="dave"))
    assert json.loads(response["body"])["kind"] == "permanent"
    [envelope] = bridge.parked()
    assert (envelope.kind, envelope.failure.status, envelope.failure.code) == ("permanent", 400, 520046)
    assert envelope.failure.stage == "resolve_profile"


def test_store_not_active_is_parked_permanent(bridge, monkeypatch):
    store = bridge.sandbox.stores[bridge.store_id]
    store.created, store.provisioning_seconds = time.monotonic(), 60.0
    response = bridge.send(message_params())
    assert json.loads(response["body"])["code"] == 520042
    assert bridge.parked()[0].kind == "permanent"


def test_merged_profile_308_is_followed(bridge):
    bridge.send(message_params(message_sid="IM1"))
    merged = bridge.observations()[0]["profileId"]
    bridge.sandbox.create_profile(
        bridge.sandbox.stores[bridge.store_id], {"traits": {"Contact": {"email": "c@x.io"}}}
    )
    canonical = bridge.sandbox.profile_for(bridge.store_id, "email", "c@x.io")
    bridge.sandbox.merge_profiles(merged, canonical)
    assert outcome(bridge.send(message_params(message_sid="IM2"))) == "posted"
    statuses = [r.status for r in bridge.sandbox.requests_to("CreateProfileObservation")]
    assert statuses == [202, 308, 202]
    assert [o["profileId"] for o in bridge.observations()].count(canonical) == 1


def test_queue_unreachable_is_503_and_the_retry_is_delivered(bridge, monkeypatch):
    missing = bridge.queue_url + "-not-created-yet"
    monkeypatch.setenv("DEAD_LETTER_QUEUE_URL", missing)
    new_container()
    bridge.sandbox.add_fault(Fault(status=503, match=OBSERVATIONS))
    first = bridge.send(message_params())
    assert first["statusCode"] == 503
    (record,) = bridge.idempotency_records()
    # Lease released and no answer recorded, so Twilio's retry is delivered afresh; nothing in doubt
    # (Memory refused with 503), so the retry may post every part.
    assert record["lease_until"] == {"N": "0"} and "outcome" not in record and "unsure" not in record
    bridge.sqs.create_queue(QueueName=missing.rsplit("/", 1)[1])
    retry = bridge.send(message_params())
    assert outcome(retry) == "parked"
    assert (
        bridge.sqs.get_queue_attributes(QueueUrl=missing, AttributeNames=["ApproximateNumberOfMessages"])[
            "Attributes"
        ]["ApproximateNumberOfMessages"]
        == "1"
    )


def test_401_rereads_the_secret_once_and_succeeds(bridge):
    assert outcome(bridge.send(message_params(message_sid="IM1"))) == "posted"
    # Rotation: Memory now accepts only the new token; the secret gets it, the old one kept as previous.
    bridge.sandbox.credentials = {"AC00000000000000000000000000000000": "rotated-token"}
    bridge.rotate_secret(
        {
            "account_sid": "AC00000000000000000000000000000000",
            "auth_token": "rotated-token",
            "previous_auth_token": "dev-auth-token-0123456789abcdef",
        }
    )
    # Twilio may still sign with the old token for a while: the previous token verifies it.
    response = bridge.send(message_params(message_sid="IM2"))
    assert outcome(response) == "posted"
    statuses = [r.status for r in bridge.sandbox.requests_to("CreateProfileObservation")]
    assert statuses == [202, 401, 202]
    # And with the new token once Twilio signs with it.
    assert outcome(bridge.send(message_params(message_sid="IM3"), token="rotated-token")) == "posted"
    assert len(bridge.observations()) == 3


def test_401_that_persists_is_parked_permanent(bridge):
    bridge.sandbox.credentials = {"AC00000000000000000000000000000000": "someone-else"}
    response = bridge.send(message_params())
    assert json.loads(response["body"])["status"] == 401
    assert bridge.parked()[0].kind == "permanent"


def test_signature_with_a_rotated_token_rereads_the_secret(bridge):
    assert outcome(bridge.send(message_params(message_sid="IM1"))) == "posted"
    bridge.rotate_secret(
        {
            "account_sid": "AC00000000000000000000000000000000",
            "auth_token": "dev-auth-token-0123456789abcdef",
            "previous_auth_token": "x",
        }
    )
    bridge.rotate_secret({"account_sid": "AC00000000000000000000000000000000", "auth_token": "brand-new"})
    bridge.sandbox.credentials = None
    assert outcome(bridge.send(message_params(message_sid="IM2"), token="brand-new")) == "posted"


def test_duplicate_delivery_is_posted_once(bridge):
    event = signed_event(message_params())
    first, second = bridge.invoke(event), bridge.invoke(event)
    assert outcome(first) == "posted"
    assert json.loads(second["body"]) == {"outcome": "duplicate", "first": "posted"}
    assert len(bridge.observations()) == 1


def test_duplicate_of_a_parked_message_is_not_parked_twice(bridge):
    bridge.sandbox.add_fault(Fault(status=503, match=OBSERVATIONS))
    event = signed_event(message_params())
    assert outcome(bridge.invoke(event)) == "parked"
    assert json.loads(bridge.invoke(event)["body"]) == {"outcome": "duplicate", "first": "parked"}
    assert len(bridge.parked()) == 1


def test_concurrent_duplicates_post_once(bridge):
    bridge.sandbox.add_fault(Fault(latency=0.8, times=1, match=OBSERVATIONS))
    event = signed_event(message_params())
    barrier = threading.Barrier(2)
    responses = []

    def deliver():
        barrier.wait()
        responses.append(bridge.invoke(event))

    threads = [threading.Thread(target=deliver) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(r["statusCode"] for r in responses) == [200, 409]
    busy = next(r for r in responses if r["statusCode"] == 409)
    assert busy["headers"]["Retry-After"] == "2"
    # Twilio's retry of the 409 finds the finished delivery.
    assert outcome(bridge.invoke(event)) == "duplicate"
    assert len(bridge.observations()) == 1
    assert bridge.queue_depth() == 0
