import base64
import time
from datetime import timedelta
from urllib.parse import quote, urlencode

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from memory_bridge.domain.events import (
    MalformedRequest,
    event_type,
    parse_message_added,
    read_webhook_request,
)
from memory_bridge.domain.signature import compute_signature, is_valid_signature
from memory_bridge.domain.webhook_urls import MAX_URL_CANDIDATES
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
        # v2 keeps the raw query; v1 rebuilds it, the urlencode form first.
        assert request.urls[0] == url
        assert verify(event)
    assert read_webhook_request(signed_event(message_params(), url=url, version=2), None).urls == (url,)


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


@pytest.mark.parametrize(
    "stamp", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00", "0001-01-01T00:30:00+00:59"]
)
def test_timestamp_without_a_utc_equivalent_is_malformed(stamp):
    request = read_webhook_request(signed_event(message_params(date_created=stamp)), None)
    with pytest.raises(MalformedRequest, match="DateCreated is out of range"):
        parse_message_added(request)


def test_timestamp_is_returned_in_utc():
    for stamp, expected in [
        ("2026-11-21T11:00:00.5+01:00", "2026-11-21T10:00:00.500000+00:00"),
        ("2026-11-21T10:00:00", "2026-11-21T10:00:00+00:00"),
        ("0001-01-01T00:00:00Z", "0001-01-01T00:00:00+00:00"),
        ("9999-12-31T23:59:59+00:00", "9999-12-31T23:59:59+00:00"),
    ]:
        message = parse_message_added(
            read_webhook_request(signed_event(message_params(date_created=stamp)), None)
        )
        assert message.date_created.isoformat() == expected
        assert message.date_created.utcoffset() == timedelta(0)


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


# ---- query strings on REST API (v1) events --------------------------------------------------
# Twilio signs the URL exactly as configured; a v1 event hands over the query decoded and grouped
# per key, so the bridge tries a bounded set of forms of it (webhook_urls._query_candidates).

QUERY_URLS = [
    "?tenant=acme,eu",
    "?debug",
    "?debug=",
    "?a=1&b=2&a=3",
    "?x=1&y=2&x=3&y=4",
    "?b=2&a=1&b=3&c&a=4",
    "?q=a%20b",
    "?q=a+b",
    "?q=a%20b%2Fc",
    "?q=a%2Cb%3Bc",
    "?tenant=acme,eu&q=a+b&debug",
    "?next=/path?x=1&t=abc==",
    "?name=caf%C3%A9&plus=1%2B1",
    "?js=it's%20(ok)!%2C*",
    "?empty=&bare&k=v",
]


def tampered(event, key, value):
    event = dict(event)
    multi = {k: list(v) for k, v in event["multiValueQueryStringParameters"].items()}
    multi[key] = [value, *multi.get(key, [])[1:]]
    event["multiValueQueryStringParameters"] = multi
    event["queryStringParameters"] = {k: v[-1] for k, v in multi.items()}
    return event


@pytest.mark.parametrize("query", QUERY_URLS)
@pytest.mark.parametrize("version", [1, 2])
def test_signed_query_string_urls_verify_on_rest_and_http_events(query, version):
    url = WEBHOOK_URL + query
    event = signed_event(message_params(), url=url, version=version)
    request = read_webhook_request(event, None)  # no PUBLIC_WEBHOOK_URL
    assert url in request.urls
    assert len(request.urls) <= MAX_URL_CANDIDATES
    assert verify(event)


@pytest.mark.parametrize("query", QUERY_URLS)
def test_wrong_token_tampered_field_or_query_still_fail_for_every_form(query):
    url = WEBHOOK_URL + query
    assert not verify(signed_event(message_params(), url=url, token="not-the-token"))
    forged = [(k, "Hello from someone else" if k == "Body" else v) for k, v in message_params()]
    event = signed_event(message_params(), url=url)
    event["body"] = urlencode(forged)
    assert not verify(event)
    first_key = next(iter(event["multiValueQueryStringParameters"]))
    assert not verify(tampered(event, first_key, "other"))
    assert not verify(tampered(event, "added", "1"))


def test_rest_event_carries_the_query_decoded_as_api_gateway_does():
    # What API Gateway hands a proxy integration: decoded keys and values ("+" is a space), every
    # value per key in order, the last value in the single-value map, "" for a bare key.
    event = signed_event(message_params(), url=WEBHOOK_URL + "?tenant=acme,eu&debug&a=1&q=a+b%2Fc&a=3")
    assert event["multiValueQueryStringParameters"] == {
        "tenant": ["acme,eu"],
        "debug": [""],
        "a": ["1", "3"],
        "q": ["a b/c"],
    }
    assert event["queryStringParameters"] == {"tenant": "acme,eu", "debug": "", "a": "3", "q": "a b/c"}
    assert "rawQueryString" not in event


def test_hand_written_rest_event_verifies():
    # Built field by field, independent of the dev event builder.
    url = WEBHOOK_URL + "?tenant=acme,eu&debug"
    body = urlencode(message_params())
    event = {
        "resource": "/webhooks/conversations",
        "path": "/webhooks/conversations",
        "httpMethod": "POST",
        "headers": {
            "Content-Type": "application/x-www-form-urlencoded; charset=utf-8",
            "Host": "abc123.execute-api.us-east-1.amazonaws.com",
            "X-Forwarded-Proto": "https",
            "X-Twilio-Signature": compute_signature(url, message_params(), DEV_AUTH_TOKEN),
        },
        "queryStringParameters": {"tenant": "acme,eu", "debug": ""},
        "multiValueQueryStringParameters": {"tenant": ["acme,eu"], "debug": [""]},
        "requestContext": {"path": "/Prod/webhooks/conversations", "stage": "Prod"},
        "body": body,
        "isBase64Encoded": False,
    }
    assert verify(event)
    # Only the single-value map (an older or hand-made event) still works for unrepeated keys.
    del event["multiValueQueryStringParameters"]
    assert verify(event)


@pytest.mark.parametrize("query_fields", [None, {}])
def test_no_query_string_gives_exactly_one_candidate(query_fields):
    event = signed_event(message_params())
    event["queryStringParameters"] = query_fields
    event["multiValueQueryStringParameters"] = query_fields
    assert read_webhook_request(event, None).urls == (WEBHOOK_URL,)
    assert verify(event)


def test_public_url_is_the_only_candidate_even_with_a_query():
    custom = "https://hooks.example.com/twilio?tenant=acme,eu&a=1&a=2"
    request = read_webhook_request(signed_event(message_params(), url=custom), custom)
    assert request.urls == (custom,)


def test_candidates_are_bounded_and_the_grouped_form_comes_first():
    query = "&".join(f"{'abc'[i % 3]}={'x y,' if i % 2 else ''}{i}" for i in range(60))
    event = signed_event(message_params(), url=WEBHOOK_URL + "?" + query)
    urls = read_webhook_request(event, None).urls
    assert len(urls) == MAX_URL_CANDIDATES
    assert len(set(urls)) == len(urls)
    multi = event["multiValueQueryStringParameters"]
    assert urls[0] == WEBHOOK_URL + "?" + urlencode([(k, v) for k, vs in multi.items() for v in vs])


def test_a_long_forged_query_costs_bounded_work():
    query = "&".join(f"{'abcdefgh'[i % 8]}=v%20{i},&k{i}" for i in range(700))  # ~10 KB, 1400 pairs
    event = signed_event(message_params(), url=WEBHOOK_URL + "?" + query, token="forger")
    started = time.thread_time()  # this thread's CPU alone: a test run keeps server threads in-process
    request = read_webhook_request(event, None)
    assert not is_valid_signature(
        urls=request.urls,
        params=request.params,
        raw_body=request.raw_body,
        signature=request.signature,
        auth_tokens=(DEV_AUTH_TOKEN, "previous-token"),
    )
    assert len(request.urls) <= MAX_URL_CANDIDATES
    assert time.thread_time() - started < 1.0  # ~10 ms on a laptop core


# Property: a URL whose query is written in any one style, repeated keys in any order, verifies.
_TEXT = st.text(alphabet="ab Z09-._~,;:@!$'()*/?=&+%#é", max_size=6)
_LITERAL = ",;:@!$'()*/?"


def _styled_query(pairs, style):
    if style == "urlencode":
        return urlencode(pairs)
    if style == "quote":
        return urlencode(pairs, quote_via=quote)
    if style == "javascript":
        return "&".join(
            f"{quote(k, safe=chr(39) + '!()*')}={quote(v, safe=chr(39) + '!()*')}" for k, v in pairs
        )
    # literal: as typed by hand, bare keys for empty values
    return "&".join(
        quote(k, safe=_LITERAL) + (f"={quote(v, safe=_LITERAL + '=')}" if v else "") for k, v in pairs
    )


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    query=st.dictionaries(_TEXT.filter(bool), _TEXT, min_size=1, max_size=5),
    style=st.sampled_from(["urlencode", "quote", "literal", "javascript"]),
)
def test_property_query_written_in_any_style_verifies(query, style):
    url = WEBHOOK_URL + "?" + _styled_query(list(query.items()), style)
    event = signed_event(message_params(), url=url)
    assert verify(event)
    assert not verify(signed_event(message_params(), url=url, token="wrong"))


@settings(max_examples=150, deadline=None)
@given(
    pairs=st.lists(
        st.tuples(st.sampled_from(["a", "b", "c"]), st.sampled_from(["", "1", "2", "x"])),
        min_size=1,
        max_size=6,
    )
)
def test_property_repeated_keys_in_any_order_verify(pairs):
    url = WEBHOOK_URL + "?" + urlencode(pairs)
    assert verify(signed_event(message_params(), url=url))
    bare = WEBHOOK_URL + "?" + "&".join(k if not v else f"{k}={v}" for k, v in pairs)
    assert verify(signed_event(message_params(), url=bare))
