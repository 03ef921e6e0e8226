"""Who spoke, as the webhook learns it (issue 19): the participants cache, Speakers.identify, and the
webhook service over FakeConversations (a 429, a 503, a timeout), its envelopes and its metrics."""

from __future__ import annotations

import json

import pytest

from memory_bridge.domain.credentials import TwilioCredentials
from memory_bridge.domain.envelope import SpeakerRecord, parse_envelope
from memory_bridge.domain.identifiers import Identifier
from memory_bridge.domain.observations import MAX_CONTENT_BYTES
from memory_bridge.domain.outcomes import Permanent, Retryable
from memory_bridge.domain.redaction import MARKERS
from memory_bridge.domain.speakers import Participant, Roster, Speaker
from memory_bridge.ports import StaticCredentials
from memory_bridge.profiles import ProfileCache
from memory_bridge.speaking import RosterCache, Said
from memory_bridge.webhook import WebhookService, stdlib_logger
from memory_bridge.webhook.delivery import DeliveryRules
from tests.fakes import (
    CONVERSATION,
    CUSTOMER,
    FakeClock,
    FakeConversations,
    FakeLedger,
    FakeMemory,
    FakeQueue,
    RecordingMetrics,
    customer_conversations,
    fake_speakers,
)
from tests.support import (
    CHAT_SERVICE_SID,
    DEV_ACCOUNT_SID,
    DEV_AUTH_TOKEN,
    body_of,
    message_params,
    signed_event,
)

OTHER = "CH00000000000000000000000000000002"
AGENT = Participant("MB00000000000000000000000000000002", identity="agent.smith")
NEWCOMER = Participant("MB00000000000000000000000000000003", identity="agent.jones")
ROSTER = Roster((CUSTOMER,))
SOON = lambda: 1.0  # noqa: E731 - the participants read's timeout


# ---- the cache ------------------------------------------------------------------------------------


def test_a_roster_is_kept_for_its_ttl_on_the_injected_clock():
    clock = FakeClock()
    cache = RosterCache(ttl=300, clock=clock)
    assert cache.get(CONVERSATION) is None
    cache.put(CONVERSATION, ROSTER)
    clock.now += 299.9
    assert cache.get(CONVERSATION) == ROSTER
    clock.now += 0.1
    assert cache.get(CONVERSATION) is None  # expired at the TTL, and dropped
    assert cache.get(CONVERSATION) is None


def test_a_ttl_of_zero_keeps_nothing():
    cache = RosterCache(ttl=0, clock=FakeClock())
    cache.put(CONVERSATION, ROSTER)
    assert cache.get(CONVERSATION) is None


def test_the_cache_is_bounded_and_drops_the_least_recently_used():
    cache = RosterCache(ttl=300, max_entries=2, clock=FakeClock())
    cache.put("CHa", ROSTER)
    cache.put("CHb", ROSTER)
    assert cache.get("CHa") == ROSTER  # used: CHb is now the oldest
    cache.put("CHc", ROSTER)
    assert (cache.get("CHa"), cache.get("CHb"), cache.get("CHc")) == (ROSTER, None, ROSTER)
    for n in range(100):
        cache.put(f"CH{n}", ROSTER)
    assert sum(cache.get(f"CH{n}") is not None for n in range(100)) == 2


# ---- Speakers.identify ------------------------------------------------------------------------------


def said(author="+15555550100", participant_sid=CUSTOMER.sid, conversation=CONVERSATION, identity=None):
    return Said(conversation, author, participant_sid, identity)


def test_one_read_per_conversation_while_it_is_cached_and_again_after_the_ttl():
    clock = FakeClock()
    conversations = customer_conversations(AGENT)
    conversations.rosters[OTHER] = [CUSTOMER]
    speakers = fake_speakers(conversations, clock=clock)
    for _ in range(3):
        assert speakers.identify(said(), SOON).kind == "customer"
        assert speakers.identify(said("agent.smith", AGENT.sid), SOON).kind == "agent"
    assert conversations.calls == [CONVERSATION] and speakers.reads == 1
    speakers.identify(said(conversation=OTHER), SOON)
    assert conversations.calls == [CONVERSATION, OTHER]
    clock.now += 301
    speakers.identify(said(), SOON)
    assert conversations.calls == [CONVERSATION, OTHER, CONVERSATION] and speakers.reads == 3


def test_an_unknown_participant_sid_reads_the_participants_again_once():
    conversations = customer_conversations()
    speakers = fake_speakers(conversations)
    speakers.identify(said(), SOON)
    conversations.add(CONVERSATION, NEWCOMER)  # joined since the list was read
    found = speakers.identify(said("agent.jones", NEWCOMER.sid), SOON)
    assert found == Speaker("agent", NEWCOMER.sid, (Identifier("phone", "+15555550100"),))
    assert len(conversations.calls) == 2
    speakers.identify(said("agent.jones", NEWCOMER.sid), SOON)  # now in the cached list
    assert len(conversations.calls) == 2


def test_a_participant_sid_missing_from_a_fresh_read_is_not_read_twice():
    conversations = customer_conversations()
    speakers = fake_speakers(conversations)
    # Not in the list just read: classified by its author (Alice), with no second call.
    found = speakers.identify(said(participant_sid="MB000000000000000000000000000000ff"), SOON)
    assert found.kind == "customer" and found.identifier == Identifier("phone", "+15555550100")
    assert len(conversations.calls) == 1


def test_a_participant_who_left_costs_one_read_not_one_per_message():
    """Their SID was missing from a fresh read: later messages (Twilio's retries, a replay of many)
    read no more, since a SID is never reused; another unknown SID still reads again."""
    conversations = customer_conversations()
    speakers = fake_speakers(conversations)
    speakers.identify(said(), SOON)
    left = said("agent.gone", "MB000000000000000000000000000000ee")
    for _ in range(5):
        assert speakers.identify(left, SOON).kind == "brand"
    assert len(conversations.calls) == 2
    conversations.add(CONVERSATION, NEWCOMER)
    assert speakers.identify(said("agent.jones", NEWCOMER.sid), SOON).kind == "agent"
    assert len(conversations.calls) == 3


@pytest.mark.parametrize("author", ["system", "System", "", None])
def test_a_system_message_in_skip_mode_needs_no_read(author):
    conversations = customer_conversations()
    speakers = fake_speakers(conversations, agent_messages="skip")
    assert speakers.identify(said(author, None), SOON).kind == "brand"
    assert conversations.calls == [] and speakers.reads == 0


def test_a_system_message_in_attribute_mode_reads_whose_profile_it_goes_on():
    conversations = customer_conversations()
    speakers = fake_speakers(conversations)
    found = speakers.identify(said("system", None), SOON)
    assert found == Speaker("brand", None, (Identifier("phone", "+15555550100"),))
    assert conversations.calls == [CONVERSATION]


@pytest.mark.parametrize(
    "failure",
    [
        Retryable(429, 20429, "Too Many Requests", retry_after=2.0),
        Retryable(503, None, "Service Unavailable"),
        Retryable(None, message="read timed out", ambiguous=True),
        Permanent(403, 20003, "Authenticate"),
    ],
)
def test_a_failed_read_is_returned_never_guessed_and_not_cached(failure):
    conversations = customer_conversations()
    conversations.fail.append(failure)
    speakers = fake_speakers(conversations)
    assert speakers.identify(said(), SOON) is failure
    assert speakers.identify(said(), SOON).kind == "customer"  # the next message reads again
    assert len(conversations.calls) == 2


def test_a_conversation_that_is_gone_is_a_permanent_failure():
    speakers = fake_speakers(FakeConversations())
    found = speakers.identify(said(), SOON)
    assert isinstance(found, Permanent) and found.status == 404


# ---- the webhook ----------------------------------------------------------------------------------

STORE = "mem_store_01kpttrksqe08rhv122gzq52ax"


def webhook(conversations=None, agent_messages="attribute", memory=None):
    clock = FakeClock()
    return WebhookService(
        rules=DeliveryRules(STORE, "twilio-conversations", "Contact", "chat_identity", agent_messages),
        public_webhook_url=None,
        budget_seconds=4.0,
        credentials=StaticCredentials(TwilioCredentials(DEV_ACCOUNT_SID, DEV_AUTH_TOKEN)),
        memory=memory if memory is not None else FakeMemory(),
        profiles=ProfileCache(ttl=60),
        dead_letters=FakeQueue(clock),
        ledger=FakeLedger(),
        metrics=RecordingMetrics(),
        logger=stdlib_logger(),
        speakers=fake_speakers(
            conversations if conversations is not None else customer_conversations(AGENT),
            agent_messages=agent_messages,
        ),
        clock=clock,
        sleep=clock.sleep,
    )


def post(service, *, message="IM1", author="+15555550100", participant=CUSTOMER.sid, body="Hello"):
    params = [
        (k, v)
        for k, v in message_params(message_sid=message, author=author, body=body)
        if k != "ParticipantSid"
    ]
    if participant:
        params.append(("ParticipantSid", participant))
    return body_of(service.handle(signed_event(params)))


@pytest.mark.parametrize(
    "failure",
    [
        Retryable(429, 20429, "Too Many Requests", retry_after=2.0),
        Retryable(503, 20503, "Service Unavailable"),
        Retryable(None, message="read timed out", ambiguous=True),
    ],
    ids=["429", "503", "timeout"],
)
def test_participants_that_cannot_be_read_park_the_message_for_the_replay_to_classify(failure):
    service = webhook()
    service.speakers.directory.fail.append(failure)
    answer = post(service, body="x" * 5000)
    assert answer == {
        "outcome": "parked",
        "kind": "retryable",
        "stage": "resolve_speaker",
        "status": failure.status,
        "code": failure.code,
    }
    assert sum(service.memory.calls.values()) == 0  # never posted to a guessed profile
    (envelope,) = [parse_envelope(body) for body in service.dead_letters.bodies()]
    assert envelope.failure.stage == "resolve_speaker" and envelope.kind == "retryable"
    assert envelope.speaker == SpeakerRecord(None, "+15555550100", CUSTOMER.sid, None, CHAT_SERVICE_SID)
    assert envelope.identifier is None and envelope.profile_id is None and envelope.speaker_unknown
    # Unlabelled, with room for the label the replay may add.
    assert "".join(o["content"] for o in envelope.observations) == "x" * 5000
    assert all(
        len(o["content"].encode()) <= MAX_CONTENT_BYTES - len("Business: ") for o in envelope.observations
    )
    assert service.metrics.counts["SpeakerUnresolved"] == 1
    assert service.metrics.counts["ParticipantsRead"] == 1
    assert service.metrics.counts["MessagesParkedRetryable"] == 1
    assert not {"MessagesFromCustomers", "MessagesFromAgents", "MessagesFromBrand"} & set(
        service.metrics.counts
    )


def test_participants_refused_park_the_message_as_permanent():
    service = webhook(FakeConversations())  # the conversation is not there: 404
    answer = post(service)
    assert (answer["outcome"], answer["kind"], answer["stage"]) == ("parked", "permanent", "resolve_speaker")
    (body,) = service.dead_letters.bodies()
    assert json.loads(body)["speaker"]["kind"] is None


def test_each_speaker_is_counted_and_participants_and_profiles_are_counted_once():
    service = webhook()
    assert post(service, message="IM1")["outcome"] == "posted"
    assert post(service, message="IM2")["outcome"] == "posted"
    assert post(service, message="IM3", author="agent.smith", participant=AGENT.sid)["outcome"] == "posted"
    assert post(service, message="IM4", author="system", participant=None)["outcome"] == "posted"
    counts = service.metrics.counts
    assert counts["ParticipantsRead"] == 1  # one conversation, cached
    assert counts["ProfilesCreated"] == 1  # Alice's, once
    assert (counts["MessagesFromCustomers"], counts["MessagesFromAgents"], counts["MessagesFromBrand"]) == (
        2,
        1,
        1,
    )
    assert "SpeakerUnresolved" not in counts
    (profile,) = service.memory.observations
    assert service.memory.profiles == {Identifier("phone", "+15555550100"): profile}
    assert [(o["content"], o["source"]) for o in service.memory.observations[profile]] == [
        ("Hello", "twilio-conversations"),
        ("Hello", "twilio-conversations"),
        ("Agent: Hello", "twilio-conversations-agent"),
        ("Business: Hello", "twilio-conversations-brand"),
    ]


def test_in_skip_mode_agents_and_the_brand_are_counted_and_go_nowhere():
    service = webhook(agent_messages="skip")
    assert post(service, message="IM3", author="agent.smith", participant=AGENT.sid) == {
        "outcome": "skipped",
        "reason": "agent",
    }
    assert post(service, message="IM4", author="system", participant=None) == {
        "outcome": "skipped",
        "reason": "brand",
    }
    counts = service.metrics.counts
    assert (counts["MessagesFromAgents"], counts["MessagesFromBrand"]) == (1, 1)
    assert (counts["MessagesSkippedAgent"], counts["MessagesSkippedBrand"]) == (1, 1)
    assert counts["ParticipantsRead"] == 1  # the agent's; the system message needed none
    assert sum(service.memory.calls.values()) == 0 and service.dead_letters.bodies() == []


def test_a_group_mms_agent_is_skipped_as_several_customers():
    bob = Participant("MB00000000000000000000000000000004", address="+15555550102")
    service = webhook(customer_conversations(AGENT, bob))
    answer = post(service, author="agent.smith", participant=AGENT.sid)
    assert answer == {"outcome": "skipped", "reason": "several customers"}
    assert service.metrics.counts["MessagesSkippedSeveralCustomers"] == 1
    assert sum(service.memory.calls.values()) == 0


def test_a_known_speaker_parked_by_memory_carries_its_kind():
    memory = FakeMemory(script=[Retryable(503, 20503, "down"), Retryable(503, 20503, "down")])
    service = webhook(memory=memory)
    answer = post(service, author="agent.smith", participant=AGENT.sid)
    assert (answer["outcome"], answer["stage"]) == ("parked", "post_observations")
    (envelope,) = [parse_envelope(body) for body in service.dead_letters.bodies()]
    assert envelope.speaker == SpeakerRecord("agent", "agent.smith", AGENT.sid, None, CHAT_SERVICE_SID)
    assert envelope.identifier == Identifier("phone", "+15555550100")  # the customer's, never the agent's
    assert envelope.observations[0]["content"] == "Agent: Hello"
    assert not envelope.speaker_unknown


def test_a_message_parked_before_its_speaker_is_known_is_redacted_all_the_same():
    service = webhook()
    service.speakers.directory.fail.append(Retryable(503, 20503, "Service Unavailable"))
    post(service, body="my card 4111 1111 1111 1111 was charged twice")
    (body,) = service.dead_letters.bodies()
    assert "4111" not in body and MARKERS["cards"] in parse_envelope(body).observations[0]["content"]
