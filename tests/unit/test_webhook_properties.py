"""Property-based: whatever arrives, bad input never yields a 5xx, a wrong signature always yields 403,
and nothing reaches Memory or the queue without a valid signature. (`make soak` runs more examples.)"""

from __future__ import annotations

import base64
import os
from urllib.parse import urlencode

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from memory_bridge.adapters.secrets import CachedCredentials
from memory_bridge.domain.credentials import TwilioCredentials
from memory_bridge.domain.outcomes import Accepted
from memory_bridge.domain.signature import compute_signature
from memory_bridge.profiles import ProfileCache
from memory_bridge.webhook import WebhookService, stdlib_logger
from memory_bridge.webhook.delivery import DeliveryRules
from tests.fakes import fake_speakers
from tests.support import (
    DEV_ACCOUNT_SID,
    DEV_AUTH_TOKEN,
    WEBHOOK_URL,
    InMemoryLedger,
    ListSink,
    RecordingMetrics,
    ScriptedMemory,
    message_params,
    signed_event,
)

EXAMPLES = int(os.environ.get("HYPOTHESIS_EXAMPLES", "300"))
PROPERTY_SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


class CountingMemory(ScriptedMemory):
    def __init__(self) -> None:
        super().__init__()

    def lookup_profiles(self, *args, **kwargs):
        self.calls.append(("lookup", None))
        return Accepted(200, {"profiles": ["mem_profile_01kpttrksqe08rhv122gzq52ax"]})

    def create_observations(self, *args, **kwargs):
        self.calls.append(("post", None))
        return Accepted(202, {"message": "ok"})


def service() -> tuple[WebhookService, CountingMemory, ListSink, InMemoryLedger]:
    memory, sink, idempotency = CountingMemory(), ListSink(), InMemoryLedger()
    credentials = CachedCredentials(lambda: TwilioCredentials(DEV_ACCOUNT_SID, DEV_AUTH_TOKEN))
    return (
        WebhookService(
            rules=DeliveryRules("mem_store_01kpttrksqe08rhv122gzq52ax", "s", "Contact", "chat_identity"),
            public_webhook_url=None,
            budget_seconds=4.0,
            credentials=credentials,
            memory=memory,
            profiles=ProfileCache(ttl=60),
            dead_letters=sink,
            ledger=idempotency,
            metrics=RecordingMetrics(),
            logger=stdlib_logger(),
            speakers=fake_speakers(),
        ),
        memory,
        sink,
        idempotency,
    )


header_names = st.sampled_from(
    ["X-Twilio-Signature", "x-twilio-signature", "Content-Type", "Host", "X-Other"]
)
text = st.text(max_size=200)
events = st.fixed_dictionaries(
    {},
    optional={
        "body": st.one_of(
            st.none(),
            text,
            st.binary(max_size=200).map(lambda b: b.decode("latin-1")),
            st.integers(),
            st.lists(st.integers(), max_size=3),
        ),
        "isBase64Encoded": st.booleans(),
        "headers": st.one_of(st.none(), st.dictionaries(header_names, text, max_size=4)),
        "multiValueHeaders": st.one_of(
            st.none(), st.dictionaries(header_names, st.lists(text, max_size=2), max_size=2)
        ),
        "requestContext": st.one_of(
            st.none(), st.fixed_dictionaries({}, optional={"path": text, "stage": text})
        ),
        "rawPath": text,
        "rawQueryString": text,
        "path": text,
    },
)


@PROPERTY_SETTINGS
@given(event=events)
def test_arbitrary_events_never_5xx_and_never_reach_memory_or_the_queue(event):
    webhook, memory, sink, idempotency = service()
    response = webhook.handle(event)
    assert response["statusCode"] in (200, 400, 403, 409)
    assert response["statusCode"] == 403  # none of these carries a valid signature
    assert memory.calls == [] and sink.parked == [] and idempotency.records == {}
    assert webhook.speakers.directory.calls == []  # nor the Conversations API


form_values = st.lists(
    st.tuples(
        st.sampled_from(
            [
                "EventType",
                "MessageSid",
                "Body",
                "Author",
                "DateCreated",
                "ConversationSid",
                "Media",
                "Index",
                "X",
            ]
        ),
        text,
    ),
    max_size=12,
)


@PROPERTY_SETTINGS
@given(params=form_values, signature=st.text(max_size=40), version=st.sampled_from([1, 2]))
def test_wrong_signatures_always_403(params, signature, version):
    webhook, memory, sink, idempotency = service()
    if signature == compute_signature(WEBHOOK_URL, params, DEV_AUTH_TOKEN):
        return
    response = webhook.handle(signed_event(params, signature=signature, version=version))
    assert response["statusCode"] == 403
    assert memory.calls == [] and sink.parked == [] and idempotency.records == {}
    assert webhook.speakers.directory.calls == []


@PROPERTY_SETTINGS
@given(params=form_values, version=st.sampled_from([1, 2]), base64_body=st.booleans())
def test_signed_garbage_is_answered_without_5xx(params, version, base64_body):
    webhook, _, _, _ = service()
    response = webhook.handle(signed_event(params, version=version, base64_body=base64_body))
    assert response["statusCode"] in (200, 400)


@PROPERTY_SETTINGS
@given(
    body=st.text(min_size=0, max_size=12000),
    author=st.sampled_from(["+15555550100", "whatsapp:+15555550100", "a@b.co", "dave", "system", ""]),
    media=st.one_of(st.none(), text),
)
def test_signed_messages_are_posted_skipped_or_refused_cleanly(body, author, media):
    webhook, memory, sink, _ = service()
    response = webhook.handle(signed_event(message_params(body=body, author=author, media=media)))
    assert response["statusCode"] in (200, 400)
    posts = [c for c in memory.calls if c[0] == "post"]
    assert len(posts) <= 2 and sink.parked == []


def test_base64_garbage_with_a_signature_header_is_403():
    webhook, memory, _, _ = service()
    event = signed_event(message_params())
    event["isBase64Encoded"] = True
    event["body"] = base64.b64encode(b"\xff\xfe" + urlencode(message_params()).encode()).decode()
    assert webhook.handle(event)["statusCode"] == 403
    assert memory.calls == [] and webhook.speakers.directory.calls == []
