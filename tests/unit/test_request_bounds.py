"""The bounds on what a webhook request may hold (issue 18): the body's size and fields, checked
before anything is read; Twilio's SID formats and the account; Media's length and nesting."""

from __future__ import annotations

import base64
import time

import pytest

from memory_bridge.domain.credentials import TwilioCredentials
from memory_bridge.domain.events import (
    MAX_BODY_BYTES,
    MAX_FORM_FIELDS,
    MalformedRequest,
    RequestTooLarge,
    parse_message_added,
    read_webhook_request,
)
from memory_bridge.domain.media import (
    MAX_MEDIA_CHARS,
    MAX_MEDIA_DEPTH,
    MAX_MEDIA_ITEMS,
    UNKNOWN_ATTACHMENT,
    nesting_exceeds,
    parse_media,
)
from memory_bridge.ports import StaticCredentials
from memory_bridge.profiles import ProfileCache
from memory_bridge.webhook import WebhookService, stdlib_logger
from memory_bridge.webhook.delivery import DeliveryRules
from tests.fakes import fake_speakers
from tests.support import (
    DEV_ACCOUNT_SID,
    DEV_AUTH_TOKEN,
    InMemoryLedger,
    ListSink,
    RecordingMetrics,
    ScriptedMemory,
    message_params,
    signed_event,
)


def event_with_body(body: str, *, base64_body: bool = False) -> dict:
    event = signed_event(message_params(), signature="bm90IGEgc2lnbmF0dXJl")
    event["body"] = base64.b64encode(body.encode("latin-1")).decode() if base64_body else body
    event["isBase64Encoded"] = base64_body
    return event


# ---- the body's size and fields ---------------------------------------------------------------


@pytest.mark.parametrize("base64_body", [False, True])
def test_a_body_at_the_limit_is_read_and_one_byte_more_is_too_large(base64_body):
    at_limit = "a=" + "b" * (MAX_BODY_BYTES - 2)
    assert len(read_webhook_request(event_with_body(at_limit, base64_body=base64_body), None).raw_body) == (
        MAX_BODY_BYTES
    )
    with pytest.raises(RequestTooLarge):
        read_webhook_request(event_with_body(at_limit + "c", base64_body=base64_body), None)


def test_an_oversized_body_is_refused_on_its_length_before_it_is_decoded():
    # Not valid base64: decoding it would have said "malformed"; its length alone says too large.
    event = event_with_body("")
    event["body"], event["isBase64Encoded"] = "!" * (MAX_BODY_BYTES * 2), True
    with pytest.raises(RequestTooLarge):
        read_webhook_request(event, None)
    # Fewer characters than the limit, more bytes once encoded.
    with pytest.raises(RequestTooLarge):
        read_webhook_request(event_with_body("é" * (MAX_BODY_BYTES // 2 + 1)), None)


def test_more_fields_than_the_cap_is_too_large_and_the_cap_itself_is_read():
    assert len(read_webhook_request(event_with_body("&".join(["a="] * MAX_FORM_FIELDS)), None).params) == (
        MAX_FORM_FIELDS
    )
    with pytest.raises(RequestTooLarge, match="fields"):
        read_webhook_request(event_with_body("&".join(["a="] * (MAX_FORM_FIELDS + 1))), None)


class Unreadable:
    """A secret that must not be read: the request was to be refused before its signature."""

    def get(self, timeout=None):
        raise AssertionError("the secret was read")

    def refresh(self, min_interval=None, timeout=None):
        raise AssertionError("the secret was read")


def service(credentials) -> tuple[WebhookService, ScriptedMemory, RecordingMetrics]:
    memory, metrics = ScriptedMemory(), RecordingMetrics()
    webhook = WebhookService(
        rules=DeliveryRules("mem_store_01kpttrksqe08rhv122gzq52ax", "s", "Contact", "chat_identity"),
        public_webhook_url=None,
        budget_seconds=4.0,
        credentials=credentials,
        memory=memory,
        profiles=ProfileCache(ttl=60),
        dead_letters=ListSink(),
        ledger=InMemoryLedger(),
        metrics=metrics,
        logger=stdlib_logger(),
        speakers=fake_speakers(),
    )
    return webhook, memory, metrics


def test_the_webhook_answers_413_without_reading_the_secret(caplog):
    webhook, memory, metrics = service(Unreadable())
    answer = webhook.handle(event_with_body("Body=" + "x" * MAX_BODY_BYTES))
    assert answer["statusCode"] == 413
    assert metrics.counts == {"WebhooksTooLarge": 1}
    assert memory.calls == [] and webhook.speakers.directory.calls == []
    assert "xxxx" not in caplog.text  # the reason names the limit, never what was sent


# ---- SIDs and the account -----------------------------------------------------------------------


def parsed(params):
    return parse_message_added(read_webhook_request(signed_event(params), None))


def replaced(name: str, value: str | None) -> list[tuple[str, str]]:
    params = [(k, v) for k, v in message_params() if k != name]
    return params if value is None else [*params, (name, value)]


GOOD = "0123456789abcdefABCDEF0123456789"


@pytest.mark.parametrize(
    ("name", "prefix"),
    [
        ("MessageSid", "IM"),
        ("ConversationSid", "CH"),
        ("AccountSid", "AC"),
        ("ChatServiceSid", "IS"),
        ("ParticipantSid", "MB"),
    ],
)
def test_every_sid_has_twilios_format(name, prefix):
    assert parsed(replaced(name, prefix + GOOD))  # upper- and lower-case hex
    for bad in [
        prefix + GOOD + "MessagingServiceSidMG" + "1" * 32,  # the next field folded in
        prefix + GOOD[:-1],
        prefix + GOOD[:-1] + "g",
        ("MG" if prefix != "MG" else "IM") + GOOD,
        prefix.lower() + GOOD,
        prefix + GOOD + "\n",
        prefix + "\u0660" * 32,  # Arabic-Indic zeros: digits to Python's \d, not hex
    ]:
        with pytest.raises(MalformedRequest, match=f"^{name} is not a valid SID$"):
            parsed(replaced(name, bad))


@pytest.mark.parametrize("name", ["MessageSid", "ConversationSid", "AccountSid"])
def test_the_message_account_and_conversation_sids_are_required(name):
    with pytest.raises(MalformedRequest, match=f"^{name} is missing$"):
        parsed(replaced(name, None))


@pytest.mark.parametrize("name", ["ChatServiceSid", "ParticipantSid"])
def test_the_service_and_participant_sids_may_be_absent_or_empty(name):
    assert parsed(replaced(name, None))
    assert parsed(replaced(name, ""))


def test_a_signed_webhook_for_another_account_is_403_and_goes_nowhere():
    webhook, memory, metrics = service(StaticCredentials(TwilioCredentials("AC" + "9" * 32, DEV_AUTH_TOKEN)))
    answer = webhook.handle(signed_event(message_params()))
    assert answer["statusCode"] == 403
    # Not counted as received: the signature alarm pages when rejections outnumber accepted webhooks.
    assert metrics.counts == {"SignatureRejected": 1}
    assert memory.calls == [] and webhook.speakers.directory.calls == []
    # The same webhook for the secret's own account (written in capitals there) goes through.
    webhook, memory, _ = service(
        StaticCredentials(TwilioCredentials(DEV_ACCOUNT_SID.upper(), DEV_AUTH_TOKEN))
    )
    assert webhook.handle(signed_event(message_params()))["statusCode"] != 403


# ---- Media ------------------------------------------------------------------------------------


def test_media_nested_deeper_than_the_bound_is_one_unknown_attachment():
    nested = (
        '[{"content_type": "image/png", "x": '
        + "[" * (MAX_MEDIA_DEPTH - 2)
        + "]" * (MAX_MEDIA_DEPTH - 2)
        + "}]"
    )
    assert parse_media(nested)[0].content_type == "image/png"  # at the bound: read
    too_deep = "[" * (MAX_MEDIA_DEPTH + 1) + "]" * (MAX_MEDIA_DEPTH + 1)
    assert parse_media(too_deep) == (UNKNOWN_ATTACHMENT,)
    # What json.loads could not parse without RecursionError.
    assert parse_media("[" * 100_000 + "]" * 100_000) == (UNKNOWN_ATTACHMENT,)
    assert parse_media('{"a":' * 50_000 + "1" + "}" * 50_000) == (UNKNOWN_ATTACHMENT,)


def test_brackets_inside_strings_do_not_count_as_nesting():
    media = '[{"content_type": "image/png", "filename": "[[[[[[[[[[[[ \\" {{{{{{{{{{.png"}]'
    [attachment] = parse_media(media)
    assert attachment.filename == '[[[[[[[[[[[[ " {{{{{{{{{{.png'


def test_media_longer_than_the_bound_or_with_too_many_items_is_one_unknown_attachment():
    items = ",".join('{"content_type":"image/png"}' for _ in range(MAX_MEDIA_ITEMS))
    assert len(parse_media(f"[{items}]")) == MAX_MEDIA_ITEMS
    assert parse_media(f"[{items},{{}}]") == (UNKNOWN_ATTACHMENT,)
    long = '[{"content_type":"image/png","filename":"' + "a" * MAX_MEDIA_CHARS + '"}]'
    assert parse_media(long) == (UNKNOWN_ATTACHMENT,)


@pytest.mark.parametrize(
    "text",
    [
        '"' + '\\"' * (MAX_MEDIA_CHARS // 2 - 1),  # one unterminated string of escaped quotes
        '"[' * (MAX_MEDIA_CHARS // 2),  # strings that open brackets, every other one unterminated
        "[]" * (MAX_MEDIA_CHARS // 2),  # as many brackets as fit, none nested
    ],
)
def test_measuring_the_nesting_is_linear_in_the_length(text):
    started = time.thread_time()
    nesting_exceeds(text, MAX_MEDIA_DEPTH)
    parse_media(text[:MAX_MEDIA_CHARS])
    # A few milliseconds here; a quadratic scan of 64 KiB would take seconds.
    assert time.thread_time() - started < 0.2
