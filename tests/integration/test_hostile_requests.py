"""Requests an attacker would send, through the real handler, moto's server and the Memory sandbox:
forged bodies of any size, captured webhooks re-split into new messages, another account's webhook,
a deeply nested Media value (issue 18, items 1, 3 and 6)."""

from __future__ import annotations

import base64
import json
import time
import tracemalloc
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

import pytest

from memory_bridge.domain.events import MAX_BODY_BYTES, MAX_FORM_FIELDS
from memory_bridge.domain.signature import compute_signature
from tests.integration.conftest import new_container, outcome
from tests.support import DEV_AUTH_TOKEN, WEBHOOK_URL, message_params, signed_event

pytestmark = pytest.mark.integration

# A query string on the URL makes the bridge try up to 64 candidate URLs: the most a forger can
# make one signature check cost (memory_bridge.domain.webhook_urls).
QUERY = "?b=2&a=1&b=3&c&a=4&d=%2F"


def measured(call: Callable[[], dict[str, Any]]) -> tuple[dict[str, Any], float, int]:
    """The answer, the CPU seconds of this thread, and the peak of what Python allocated meanwhile.
    The CPU is taken on a run of its own, without tracemalloc (which slows every allocation)."""
    call()  # warm: the first call of a kind may import or build something once per container
    started = time.thread_time()
    answer = call()
    cpu = time.thread_time() - started
    tracemalloc.start()
    try:
        call()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return answer, cpu, peak


def forged(body: str, *, base64_body: bool = False, query: str = "") -> dict[str, Any]:
    """A POST with `body` and a signature that is not Twilio's."""
    event = signed_event(message_params(), url=WEBHOOK_URL + query, signature="bm90IGEgc2lnbmF0dXJl")
    event["body"] = base64.b64encode(body.encode()).decode() if base64_body else body
    event["isBase64Encoded"] = base64_body
    return event


def assert_nothing_happened(bridge: Any) -> None:
    assert bridge.sandbox.requests == []
    assert bridge.queue_depth() == 0
    assert bridge.idempotency_records() == []


# ---- item 1: an unsigned request costs almost nothing -------------------------------------------


@pytest.mark.parametrize("base64_body", [False, True], ids=["plain", "base64"])
def test_a_forged_body_larger_than_any_webhook_is_413_at_once_with_flat_memory(bridge, base64_body):
    # The review's request: 5.5 MiB of empty fields (2.9 million of them), with a bogus signature.
    # It was answered 403 after 2.29 s of CPU and a 275 MiB peak, parsed before the signature.
    body = "a=&" * (5_500_000 // 3)
    event = forged(body, base64_body=base64_body)
    answer, cpu, peak = measured(lambda: bridge.invoke(event))
    assert answer["statusCode"] == 413
    assert json.loads(answer["body"]) == {"outcome": "too_large", "error": "request too large"}
    # Refused on the body's length: nothing of it is copied, decoded or split. Measured here it
    # costs about 0.2 ms and 11 KiB (the handler's own logging and metrics).
    assert cpu < 0.02, f"{cpu * 1000:.1f} ms of CPU"
    assert peak < 1024 * 1024, f"{peak / 1024:.0f} KiB allocated at the peak"
    assert_nothing_happened(bridge)


def test_too_many_fields_is_413_before_any_is_read(bridge):
    body = "&".join(["a="] * (MAX_FORM_FIELDS + 1))  # small, but more fields than any webhook carries
    assert len(body) < 1000
    answer = bridge.invoke(forged(body))
    assert answer["statusCode"] == 413
    assert_nothing_happened(bridge)


def test_the_costliest_forged_body_under_the_limit_is_403_with_bounded_cpu_and_memory(bridge, monkeypatch):
    # As deployed, a mismatch reads the secret again at most every few seconds; the fixture's 0 would
    # put moto's in-process server (and its allocations) inside every measured call.
    monkeypatch.setenv("SECRET_REFRESH_INTERVAL_SECONDS", "300")
    new_container()
    # Just under the limit and the field cap, every byte percent-encoded (the slowest to decode),
    # on a URL with a query string (the most candidate URLs to check): the worst a forger can make
    # one request cost. About 30 ms of CPU and 1 MiB here; the bounds leave room for a loaded machine.
    value = "%E2" * ((MAX_BODY_BYTES // MAX_FORM_FIELDS - 8) // 3)
    body = "&".join(f"F{i:02d}={value}" for i in range(MAX_FORM_FIELDS))
    assert MAX_BODY_BYTES - 1000 < len(body) <= MAX_BODY_BYTES
    event = forged(body, query=QUERY)
    answer, cpu, peak = measured(lambda: bridge.invoke(event))
    assert answer["statusCode"] == 403
    assert cpu < 0.3, f"{cpu * 1000:.0f} ms of CPU"
    assert peak < 16 * MAX_BODY_BYTES, f"{peak / 1024 / 1024:.1f} MiB allocated at the peak"
    assert_nothing_happened(bridge)


def test_the_largest_real_webhook_fits_under_the_limit(bridge):
    # Twilio's limits: Body 32 KB inbound, Attributes 4 KB. Both at their size in characters that
    # take three UTF-8 bytes each, every byte sent as %XX: the largest a real webhook gets.
    body = "€" * (32 * 1024 // 3)
    attributes = json.dumps({"note": "€" * (4 * 1024 // 3 - 6)}, ensure_ascii=False)
    media = json.dumps(
        [{"sid": f"ME{i:032x}", "content_type": "image/png", "filename": "x.png"} for i in range(10)]
    )
    params = [
        (name, attributes if name == "Attributes" else value)
        for name, value in message_params(body=body, media=media)
    ]
    assert len(urlencode(params)) < MAX_BODY_BYTES / 2
    assert outcome(bridge.send(params)) == "posted"
    posted = [
        o["content"]
        for r in bridge.sandbox.requests_to("CreateProfileObservation")
        for o in r.body["observations"]
    ]
    assert "".join(posted) == body + "\n[attachment: image/png x.png]" * 10


# ---- item 3: a captured signed webhook cannot be re-split into a new message ------------------


def fold(params: list[tuple[str, str]], name: str) -> list[tuple[str, str]]:
    """The field after `name` (in the order Twilio signs: sorted) folded into its value and dropped.
    Twilio signs names and values with nothing between them, so the signature still matches."""
    ordered = sorted(params)
    at = next(i for i, (key, _) in enumerate(ordered) if key == name)
    (key, value), (next_key, next_value) = ordered[at], ordered[at + 1]
    return [*ordered[:at], (key, value + next_key + next_value), *ordered[at + 2 :]]


CAPTURED = message_params(
    body="Please refund order 4417",
    extra=[("MessagingServiceSid", "MG" + "1" * 32), ("ClientIdentity", "customer-1")],
)
WITHOUT_MESSAGING_SERVICE = [(k, v) for k, v in CAPTURED if k != "MessagingServiceSid"]


@pytest.mark.parametrize(
    ("captured", "folds"),
    [
        pytest.param(CAPTURED, ["MessageSid"], id="MessagingServiceSid-into-MessageSid"),
        pytest.param(WITHOUT_MESSAGING_SERVICE, ["MessageSid"], id="ParticipantSid-into-MessageSid"),
        pytest.param(CAPTURED, ["MessageSid", "Body"], id="and-ChatServiceSid-into-Body"),
        pytest.param(CAPTURED, ["ConversationSid"], id="DateCreated-into-ConversationSid"),
        # Not the secret's account any more: refused as another account's, before the format is read.
        pytest.param(CAPTURED, ["AccountSid"], id="Attributes-into-AccountSid"),
        pytest.param(CAPTURED, ["ChatServiceSid"], id="ClientIdentity-into-ChatServiceSid"),
        pytest.param(CAPTURED, ["ParticipantSid"], id="RetryCount-into-ParticipantSid"),
    ],
)
def test_a_captured_webhook_re_split_into_a_new_message_is_refused(bridge, captured, folds):
    # The review's replay: MessageSid=IM…MessagingServiceSidMG… verified and was posted as a new
    # message; with Body folded too, a new message with altered content.
    signature = compute_signature(WEBHOOK_URL, captured, DEV_AUTH_TOKEN)
    assert outcome(bridge.invoke(signed_event(captured, signature=signature))) == "posted"
    replayed = captured
    for name in folds:
        replayed = fold(replayed, name)
    assert compute_signature(WEBHOOK_URL, replayed, DEV_AUTH_TOKEN) == signature  # it still verifies
    answer = bridge.invoke(signed_event(replayed, signature=signature))
    if folds == ["AccountSid"]:
        assert (answer["statusCode"], json.loads(answer["body"])["error"]) == (403, "wrong account")
    else:
        assert answer["statusCode"] == 400
        assert json.loads(answer["body"])["error"].endswith("is not a valid SID")
    assert [o["content"] for o in bridge.observations()] == ["Please refund order 4417"]
    assert len(bridge.idempotency_records()) == 1
    assert bridge.queue_depth() == 0


def test_a_webhook_for_another_account_is_refused(bridge):
    # Signed with the secret's token, but naming another account: a secret mixed up between
    # accounts, or fields shifted into AccountSid. Counted with the rejected signatures.
    params = [(k, "AC" + "9" * 32 if k == "AccountSid" else v) for k, v in message_params()]
    answer = bridge.send(params)
    assert answer["statusCode"] == 403
    assert json.loads(answer["body"]) == {"outcome": "forbidden", "error": "wrong account"}
    assert_nothing_happened(bridge)


# ---- item 6: a deeply nested Media value is malformed, not an outage --------------------------


def test_a_deeply_nested_media_value_is_read_as_an_unknown_attachment_not_a_503(bridge):
    # json.loads raised RecursionError at this depth, answered 503 on every Twilio retry.
    media = "[" * 30_000 + "]" * 30_000
    answer = bridge.send(message_params(body="see attached", media=media))
    assert answer["statusCode"] == 200
    assert outcome(answer) == "posted"
    [observation] = bridge.observations()
    assert observation["content"] == "see attached\n[attachment: unknown type]"
    assert bridge.queue_depth() == 0
