"""make soak's accounting of where each message landed, and the webhooks the dev tools send for a
customer's conversation (memory_bridge_dev.soak, memory_bridge_dev.customer_chats). No sockets."""

from __future__ import annotations

import pytest

from memory_bridge_dev.customer_chats import Chat, message_params
from memory_bridge_dev.soak import SendPlan, misplaced_messages, non_customer_identifiers

CHAT = Chat(
    customer="+15553000001",
    conversation_sid="CH" + "1" * 32,
    service_sid="IS" + "2" * 32,
    customer_participant="MB" + "3" * 32,
    agent="agent1@example.com",
    agent_participant="MB" + "4" * 32,
)
MINE, THEIRS = "IM" + "0" * 31 + "1", "IM" + "0" * 31 + "2"
PLAN = SendPlan(
    sids=[MINE, THEIRS],
    customer_of={MINE: 1, THEIRS: 1},
    twice=[],
    simultaneous=set(),
    order=[],
    by_agent={THEIRS},
)
SOURCE = "twilio-conversations"


def test_a_customers_message_is_signed_as_twilio_sends_an_sms():
    fields = dict(message_params(CHAT, account_sid="AC1", message_sid=MINE, body="hi", index=3))
    assert fields["Author"] == "+15553000001" and fields["ParticipantSid"] == CHAT.customer_participant
    assert fields["ChatServiceSid"] == CHAT.service_sid and fields["ConversationSid"] == CHAT.conversation_sid
    assert fields["Source"] == "API" and "ClientIdentity" not in fields
    assert (fields["Index"], fields["Body"], fields["MessageSid"]) == ("3", "hi", MINE)


def test_an_agents_reply_is_signed_as_a_chat_participants():
    fields = dict(
        message_params(CHAT, account_sid="AC1", message_sid=THEIRS, body="ok", index=4, by_agent=True)
    )
    assert fields["Author"] == fields["ClientIdentity"] == "agent1@example.com"
    assert fields["ParticipantSid"] == CHAT.agent_participant and fields["Source"] == "SDK"


def test_a_reply_in_a_conversation_with_no_agent_is_refused():
    lonely = Chat("+15553000002", "CH" + "5" * 32, "IS" + "2" * 32, "MB" + "6" * 32)
    with pytest.raises(ValueError, match="no agent"):
        message_params(lonely, account_sid="AC1", message_sid=THEIRS, body="ok", index=0, by_agent=True)


def observation(content: str, source: str, profile: str = "mem_profile_ada") -> dict[str, str]:
    return {"content": content, "source": source, "profileId": profile}


def test_words_where_their_speaker_says_are_not_misplaced():
    landed = {
        MINE: [observation(f"soak {MINE}", SOURCE)],
        THEIRS: [observation(f"Agent: soak {THEIRS}", SOURCE + "-agent")],
    }
    assert misplaced_messages(PLAN, landed, {1: "mem_profile_ada"}, SOURCE) == set()


@pytest.mark.parametrize(
    "agents_observation",
    [
        observation(f"soak {THEIRS}", SOURCE),  # as if the customer had said it
        observation(f"Agent: soak {THEIRS}", SOURCE + "-agent", "mem_profile_agent"),  # a profile of its own
        observation(f"Agent: soak {THEIRS}", SOURCE),  # labelled, with the customer's source
    ],
)
def test_an_agents_reply_anywhere_else_is_misplaced(agents_observation):
    landed = {MINE: [observation(f"soak {MINE}", SOURCE)], THEIRS: [agents_observation]}
    assert misplaced_messages(PLAN, landed, {1: "mem_profile_ada"}, SOURCE) == {THEIRS}


def test_lookups_or_creations_carrying_an_agent_or_the_business_number_are_counted():
    log = [
        {"path": "/v1/Stores/s/Profiles/Lookup", "body": {"idType": "phone", "value": "+15553000001"}},
        {"path": "/v1/Stores/s/Profiles/Lookup", "body": {"idType": "email", "value": "agent1@example.com"}},
        {"path": "/v1/Stores/s/Profiles", "body": {"traits": {"Contact": {"phone": "+15555550000"}}}},
        {"path": "/v1/Stores/s/Profiles/p/Observations", "body": {"content": "agent1@example.com said"}},
    ]
    assert non_customer_identifiers(log) == 2
