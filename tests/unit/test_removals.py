"""onMessageRemoved against fakes (issue 22): the races the sandbox tests cannot time."""

from __future__ import annotations

import time
from dataclasses import replace

from memory_bridge.adapters.secrets import CachedCredentials
from memory_bridge.domain.credentials import TwilioCredentials
from memory_bridge.domain.ledger import Settlement
from memory_bridge.profiles import ProfileCache
from memory_bridge.webhook import WebhookService, stdlib_logger
from memory_bridge.webhook.delivery import DeliveryRules
from tests.fakes import FakeMemory, fake_speakers
from tests.support import (
    DEV_ACCOUNT_SID,
    DEV_AUTH_TOKEN,
    InMemoryLedger,
    ListSink,
    RecordingMetrics,
    body_of,
    message_params,
    signed_event,
    twilio_sid,
)

SID = twilio_sid("IM1")


def service() -> tuple[WebhookService, FakeMemory, InMemoryLedger]:
    memory, ledger = FakeMemory(), InMemoryLedger()
    credentials = CachedCredentials(lambda: TwilioCredentials(DEV_ACCOUNT_SID, DEV_AUTH_TOKEN))
    webhook = WebhookService(
        rules=DeliveryRules("mem_store_01kpttrksqe08rhv122gzq52ax", "s", "Contact", "chat_identity"),
        public_webhook_url=None,
        budget_seconds=4.0,
        credentials=credentials,
        memory=memory,
        profiles=ProfileCache(ttl=60),
        dead_letters=ListSink(),
        ledger=ledger,
        metrics=RecordingMetrics(),
        logger=stdlib_logger(),
        speakers=fake_speakers(),
        editor=memory,
    )
    return webhook, memory, ledger


def send(webhook: WebhookService, event_type: str) -> dict:
    extra = [("DateRemoved", "2026-11-21T10:05:00Z")] if event_type == "onMessageRemoved" else []
    return webhook.handle(signed_event(message_params(message_sid="IM1", event_type=event_type, extra=extra)))


def held(memory: FakeMemory) -> list[str]:
    return [o["content"] for items in memory.observations.values() for o in items]


def test_a_removal_while_its_add_is_in_flight_waits_for_the_add_and_then_deletes_it():
    webhook, memory, ledger = service()
    assert body_of(send(webhook, "onMessageAdded"))["outcome"] == "posted"
    # As if that add were still posting: its lease held by another invocation, its part unsure.
    ledger.records[SID] = replace(
        ledger.records[SID],
        lease_owner="other",
        lease_until=time.time() + 60,
        accepted=frozenset(),
        unsure={0},
    )

    early = send(webhook, "onMessageRemoved")

    assert (early["statusCode"], early["headers"]["Retry-After"]) == (409, "2")
    assert held(memory) == ["Hello from the customer"] and "delete" not in memory.calls
    assert ledger.records[SID].removed == "2026-11-21T10:05:00Z"  # the tombstone is down already
    ledger.settle(Settlement(SID, accepted=frozenset({0}), cleared=frozenset({0}), owner="other"), 1.0)

    retried = send(webhook, "onMessageRemoved")

    assert (retried["statusCode"], body_of(retried)["outcome"]) == (200, "removed")
    assert held(memory) == []


def test_a_removal_of_a_message_never_posted_asks_memory_nothing():
    webhook, memory, ledger = service()

    answer = send(webhook, "onMessageRemoved")

    assert (answer["statusCode"], body_of(answer)["deleted"]) == (200, 0)
    assert memory.calls == dict.fromkeys(("lookup", "create", "post", "list"), 0)
    assert ledger.records[SID].removal_done
    assert body_of(send(webhook, "onMessageAdded"))["outcome"] == "duplicate"
    assert held(memory) == []
