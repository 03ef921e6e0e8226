"""The real handler, real API Gateway events, moto's server and the Memory sandbox over loopback."""

import json

import pytest

from tests.integration.conftest import new_container, outcome
from tests.support import DEV_AUTH_TOKEN, ROOT, message_params, signed_event

pytestmark = pytest.mark.integration


def test_signed_message_becomes_one_observation_on_the_authors_profile(bridge):
    response = bridge.send(message_params(body="Where is my order?"))
    assert response["statusCode"] == 200
    assert outcome(response) == "posted"
    [observation] = bridge.observations()
    assert observation["content"] == "Where is my order?"
    assert observation["source"] == "twilio-conversations"
    assert observation["occurredAt"] == "2026-11-21T10:00:00.123Z"
    assert observation["profileId"] == bridge.sandbox.profile_for(bridge.store_id, "phone", "+15555550100")
    assert bridge.queue_depth() == 0
    assert len(bridge.idempotency_records()) == 1


def test_second_message_uses_the_cached_profile_one_http_call(bridge):
    bridge.send(message_params(message_sid="IM1"))
    before = len(bridge.sandbox.requests)
    bridge.send(message_params(message_sid="IM2"))
    assert [r.operation for r in bridge.sandbox.requests[before:]] == ["CreateProfileObservation"]


def test_sample_event_file_is_accepted(bridge):
    event = json.loads((ROOT / "events" / "webhook-message-added.json").read_text())
    assert outcome(bridge.invoke(event)) == "posted"


@pytest.mark.parametrize("version", [1, 2])
def test_rest_and_http_api_payloads_both_work(bridge, version):
    response = bridge.send(message_params(), version=version)
    assert outcome(response) == "posted"


def test_authors_pick_their_id_type(bridge):
    # Each in a conversation of their own: beside a WhatsApp customer, a chat identity is an agent.
    for sid, author in [("IM1", "whatsapp:+15555550101"), ("IM2", "dana@example.com"), ("IM3", "dave")]:
        params = message_params(message_sid=sid, author=author, conversation_sid="CH" + sid)
        assert outcome(bridge.send(params)) == "posted"
    sandbox = bridge.sandbox
    assert sandbox.profile_for(bridge.store_id, "whatsapp", "+15555550101")
    assert sandbox.profile_for(bridge.store_id, "email", "dana@example.com")
    assert sandbox.profile_for(bridge.store_id, "chat_identity", "dave")


def test_lookup_miss_as_404_also_creates_the_profile(bridge):
    bridge.sandbox.lookup_miss = "404"
    assert outcome(bridge.send(message_params())) == "posted"
    assert len(bridge.observations()) == 1


def test_media_and_a_long_body_are_carried_whole(bridge):
    body = "ü" * 5000  # 10,000 UTF-8 bytes → three observations, one request
    media = '[{"sid":"ME1","content_type":"image/png","filename":"receipt.png","size":10}]'
    response = bridge.send(message_params(body=body, media=media))
    assert json.loads(response["body"]) == {"outcome": "posted", "observations": 3}
    contents = [o["content"] for o in sorted(bridge.observations(), key=lambda o: o["id"])]
    posts = bridge.sandbox.requests_to("CreateProfileObservation")
    assert len(posts) == 1
    assert (
        "".join(o["content"] for o in posts[0].body["observations"])
        == body + "\n[attachment: image/png receipt.png]"
    )
    assert len(contents) == 3


def test_system_agent_and_empty_messages_are_acknowledged_and_skipped(bridge):
    """In a conversation with no customer, the brand's and an agent's words go nowhere; an empty
    message says nothing. (tests/integration/test_speakers.py has where they go beside a customer.)"""
    bridge.conversations.add_conversation(message_params()[2][1])
    for sid, author, body in [
        ("IM1", "system", "joined"),
        ("IM2", "agent-ana", "Hi!"),
        ("IM3", "+15555550100", ""),
    ]:
        response = bridge.send(message_params(message_sid=sid, author=author, body=body))
        assert response["statusCode"] == 200
        assert outcome(response) == "skipped"
    assert bridge.sandbox.requests == []
    assert bridge.queue_depth() == 0


def test_other_event_types_are_ignored(bridge):
    response = bridge.send(message_params(event_type="onParticipantAdded"))
    assert response["statusCode"] == 200
    assert outcome(response) == "ignored"
    assert bridge.sandbox.requests == []
    assert bridge.idempotency_records() == []


@pytest.mark.parametrize(
    "mutation",
    ["missing", "wrong-token", "tampered-body", "other-url", "not-base64"],
)
def test_bad_or_missing_signature_is_403_and_nothing_else_happens(bridge, mutation):
    params = message_params()
    if mutation == "missing":
        event = signed_event(params, signature=None)
    elif mutation == "wrong-token":
        event = signed_event(params, token="not-the-token")
    elif mutation == "tampered-body":
        event = signed_event(params)
        event["body"] = event["body"].replace("Hello", "Hullo")
    elif mutation == "other-url":
        event = signed_event(params, url="https://evil.example.com/Prod/webhooks/conversations")
        event["headers"]["Host"] = "abc123.execute-api.us-east-1.amazonaws.com"
        event["requestContext"]["path"] = "/Prod/webhooks/conversations"
    else:
        event = signed_event(params)
        event["isBase64Encoded"] = True
    response = bridge.invoke(event)
    assert response["statusCode"] == 403
    assert json.loads(response["body"]) == {"outcome": "forbidden", "error": "invalid signature"}
    assert bridge.sandbox.requests == []
    assert bridge.queue_depth() == 0
    assert bridge.idempotency_records() == []


@pytest.mark.parametrize(
    ("params", "reason"),
    [
        ([p for p in message_params() if p[0] != "MessageSid"], "MessageSid is missing"),
        ([p for p in message_params() if p[0] != "EventType"], "EventType is missing"),
        (message_params(date_created="not-a-date"), "DateCreated is not an ISO 8601 timestamp"),
    ],
)
def test_signed_but_malformed_is_400_with_a_short_reason(bridge, params, reason):
    response = bridge.send(params)
    assert response["statusCode"] == 400
    assert json.loads(response["body"])["error"] == reason
    assert bridge.sandbox.requests == []
    assert bridge.idempotency_records() == []


def test_public_webhook_url_override(bridge, monkeypatch):

    custom = "https://hooks.example.com/twilio/conversations?tenant=7"
    monkeypatch.setenv("PUBLIC_WEBHOOK_URL", custom)
    new_container()
    event = signed_event(message_params(), url=custom)
    event["headers"]["Host"] = "abc123.execute-api.us-east-1.amazonaws.com"
    assert outcome(bridge.invoke(event)) == "posted"
    assert bridge.invoke(signed_event(message_params(message_sid="IM9")))["statusCode"] == 403


def test_bad_configuration_answers_500_and_names_the_variable(bridge, monkeypatch, caplog):

    monkeypatch.setenv("MEMORY_STORE_ID", "not-a-store")
    new_container()
    response = bridge.send(message_params())
    assert response["statusCode"] == 500
    reasons = [str(getattr(record, "reason", "")) for record in caplog.records]
    assert any(reason.startswith("MEMORY_STORE_ID must look like") for reason in reasons)
    assert DEV_AUTH_TOKEN not in response["body"]
