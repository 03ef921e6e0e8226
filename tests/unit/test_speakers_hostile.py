"""Issue 19, found by trying to break it: what classify costs on a big roster, an agent named in
AGENT_IDENTITIES who writes by SMS, and a Twilio retry of a message parked before its speaker was known."""

from __future__ import annotations

import time

from memory_bridge.domain.credentials import TwilioCredentials
from memory_bridge.domain.outcomes import Retryable
from memory_bridge.domain.speakers import AgentRules, Participant, Roster, classify
from memory_bridge.ports import StaticCredentials
from memory_bridge.profiles import ProfileCache
from memory_bridge.webhook import WebhookService, stdlib_logger
from memory_bridge.webhook.delivery import DeliveryRules
from tests.fakes import (
    CUSTOMER,
    FakeClock,
    FakeLedger,
    FakeMemory,
    FakeQueue,
    RecordingMetrics,
    customer_conversations,
    fake_speakers,
)
from tests.support import DEV_ACCOUNT_SID, DEV_AUTH_TOKEN, body_of, message_params, signed_event

RULES = AgentRules.parse("*@company.com", "role=agent")


def roster_of(size: int) -> Roster:
    agents = [Participant(f"MB{n:032d}", identity=f"agent{n}") for n in range(1, size)]
    return Roster((CUSTOMER, *agents))


def cpu_per_classify(roster: Roster, times: int) -> float:
    speaker_sid = roster.participants[1].sid
    started = time.thread_time()
    for _ in range(times):
        classify(
            roster,
            author="agent1",
            participant_sid=speaker_sid,
            client_identity=None,
            rules=RULES,
            chat_id_type="chat_identity",
        )
    return (time.thread_time() - started) / times


def test_classify_costs_cpu_in_proportion_to_the_roster_not_its_square():
    """The warm path classifies every message against the cached roster. Each participant's check
    rebuilt the business numbers and re-scanned for a messaging customer over the whole roster:
    500 participants (MAX_PAGES pages) cost ~34 ms of CPU per message here, 100 x what 50 cost."""
    small, big = roster_of(50), roster_of(500)
    cpu_per_classify(small, 20)  # warm the regex and fnmatch caches
    ratio = cpu_per_classify(big, 20) / cpu_per_classify(small, 200)
    assert ratio < 30, f"10x the participants cost {ratio:.0f}x the CPU"  # linear: ~10, square: ~100


def test_a_number_named_in_agent_identities_never_gets_a_profile():
    rules = AgentRules.parse("+15555550177", "role=agent")
    agent_phone = Participant(
        "MB00000000000000000000000000000077", address="+15555550177", projected_address="+15555550999"
    )
    roster = Roster((CUSTOMER, agent_phone))
    speaker = classify(
        roster,
        author="+15555550177",
        participant_sid=agent_phone.sid,
        client_identity=None,
        rules=rules,
        chat_id_type="chat_identity",
    )
    assert speaker.kind != "customer" and speaker.identifier is None


STORE = "mem_store_01kpttrksqe08rhv122gzq52ax"
AGENT = Participant("MB00000000000000000000000000000002", identity="agent.smith")


def test_in_skip_mode_a_retry_of_a_message_parked_at_resolve_speaker_is_acknowledged_and_not_doubled():
    """The speaker is read before the ledger's claim (a skipped message writes nothing to the ledger),
    so Twilio's retry of an agent's message parked at resolve_speaker answers 200 "skipped" rather
    than "duplicate": chosen, since nothing is posted either way and the replay deletes the parked one
    (AGENT_MESSAGES=skip sends agents' words nowhere)."""
    clock = FakeClock()
    service = WebhookService(
        rules=DeliveryRules(STORE, "twilio-conversations", "Contact", "chat_identity", "skip"),
        public_webhook_url=None,
        budget_seconds=4.0,
        credentials=StaticCredentials(TwilioCredentials(DEV_ACCOUNT_SID, DEV_AUTH_TOKEN)),
        memory=FakeMemory(),
        profiles=ProfileCache(ttl=60),
        dead_letters=FakeQueue(clock),
        ledger=FakeLedger(),
        metrics=RecordingMetrics(),
        logger=stdlib_logger(),
        speakers=fake_speakers(customer_conversations(AGENT), agent_messages="skip"),
        clock=clock,
        sleep=clock.sleep,
    )
    service.speakers.directory.fail.append(Retryable(429, 20429, "Too Many Requests"))
    params = [
        (k, AGENT.sid if k == "ParticipantSid" else v)
        for k, v in message_params(message_sid="IM1", author="agent.smith", body="Refund approved")
    ]
    first = body_of(service.handle(signed_event(params)))
    assert (first["outcome"], first["stage"]) == ("parked", "resolve_speaker")
    retry = service.handle(signed_event(params))  # Twilio's retry of the same MessageSid
    assert retry["statusCode"] == 200 and body_of(retry)["outcome"] == "skipped", retry
    assert service.memory.observations == {} and len(service.dead_letters.messages) == 1
