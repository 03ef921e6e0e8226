import base64

import pytest

from memory_bridge.events import (
    MalformedRequest,
    event_type,
    parse_message_added,
    read_webhook_request,
)
from memory_bridge.signature import is_valid_signature
from tests.support import DEV_AUTH_TOKEN, WEBHOOK_URL, message_params, signed_event


def verify(event, public_url=None):
    request = read_webhook_request(event, public_url)
    return is_valid_signature(
        urls=request.urls,
        params=request.params,
        raw_body=request.raw_body,
        signature=request.signature,
        auth_tokens=(DEV_AUTH_TOKEN,),
    )


@pytest.mark.parametrize("version", [1, 2])
@pytest.mark.parametrize("case", [str.lower, str.upper, str])
def test_rest_and_http_api_events_any_header_case_verify(version, case):
    event = signed_event(message_params(), version=version, header_case=case)
    assert verify(event)


def test_base64_body_of_a_rest_event_verifies():
    assert verify(signed_event(message_params(), base64_body=True))


def test_url_rebuilt_with_stage_and_raw_query():
    url = "https://abc123.execute-api.us-east-1.amazonaws.com/Prod/webhooks/conversations?tenant=a&x="
    for version in (1, 2):
        event = signed_event(message_params(), url=url, version=version)
        request = read_webhook_request(event, None)
        assert request.urls == (url,)
        assert verify(event)


def test_public_url_override_is_used_as_given():
    custom = "https://hooks.example.com/twilio/conversations"
    event = signed_event(message_params(), url=custom)
    # The event came through API Gateway's own host, so only the override verifies.
    event["headers"]["Host"] = "abc123.execute-api.us-east-1.amazonaws.com"
    event["requestContext"]["path"] = "/Prod/webhooks/conversations"
    assert not verify(event)
    assert verify(event, public_url=custom)


def test_malformed_bodies_are_reported():
    event = signed_event(message_params())
    event["isBase64Encoded"] = True
    event["body"] = "%%%not-base64"
    with pytest.raises(MalformedRequest, match="base64"):
        read_webhook_request(event, None)
    event["body"] = base64.b64encode(b"\xff\xfe=\xff").decode()
    with pytest.raises(MalformedRequest, match="UTF-8"):
        read_webhook_request(event, None)
    with pytest.raises(MalformedRequest):
        read_webhook_request(["not", "an", "event"], None)  # type: ignore[arg-type]


def test_message_fields_are_read():
    media = '[{"sid":"ME1","content_type":"image/jpeg","filename":"photo.jpg","size":123}]'
    request = read_webhook_request(signed_event(message_params(media=media)), None)
    assert event_type(request) == "onMessageAdded"
    message = parse_message_added(request)
    assert message.message_sid == "IM00000000000000000000000000000001"
    assert message.conversation_sid.startswith("CH")
    assert message.author == "+15555550100"
    assert message.index == 3
    assert message.date_created.isoformat() == "2026-11-21T10:00:00.123000+00:00"
    assert message.attachments[0].content_type == "image/jpeg"
    assert message.attachments[0].filename == "photo.jpg"


@pytest.mark.parametrize(
    ("drop", "reason"),
    [
        ("MessageSid", "MessageSid is missing"),
        ("ConversationSid", "ConversationSid is missing"),
        ("DateCreated", "DateCreated is missing"),
    ],
)
def test_missing_fields_are_named(drop, reason):
    params = [p for p in message_params() if p[0] != drop]
    with pytest.raises(MalformedRequest, match=reason):
        parse_message_added(read_webhook_request(signed_event(params), None))


def test_bad_timestamp_and_index_are_named():
    params = message_params(date_created="yesterday")
    with pytest.raises(MalformedRequest, match="DateCreated"):
        parse_message_added(read_webhook_request(signed_event(params), None))
    params = [(k, "x" if k == "Index" else v) for k, v in message_params()]
    with pytest.raises(MalformedRequest, match="Index"):
        parse_message_added(read_webhook_request(signed_event(params), None))


def test_missing_event_type_is_malformed():
    params = [p for p in message_params() if p[0] != "EventType"]
    with pytest.raises(MalformedRequest, match="EventType"):
        event_type(read_webhook_request(signed_event(params), None))


def test_media_is_read_tolerantly():
    for media, expected in [
        ('[{"contentType":"audio/ogg"}]', ("audio/ogg", None)),
        ('[{"unknown":1}]', (None, None)),
        ("not json", (None, None)),
        ('["ME1"]', (None, None)),
    ]:
        message = parse_message_added(read_webhook_request(signed_event(message_params(media=media)), None))
        assert len(message.attachments) == 1
        assert (message.attachments[0].content_type, message.attachments[0].filename) == expected


def test_signed_webhook_url_constant_matches_the_sample_event():
    import json

    from tests.support import ROOT

    event = json.loads((ROOT / "events" / "webhook-message-added.json").read_text())
    assert verify(event)
    assert read_webhook_request(event, None).urls == (WEBHOOK_URL,)
