"""Whose words: the table of speakers, against moto, the Memory sandbox and the Conversations sandbox.

Each case seeds a conversation's participants in the Conversations sandbox (as Twilio holds them),
sends its messages as signed webhooks through the real handler, replays what was parked, and then
asserts what each Memory profile holds, and that no Lookup or profile creation ever carried an
identifier other than a customer's.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

import pytest

from memory_bridge_dev.conversations_sandbox import Fault
from tests.conversations_seed import BUSINESS_NUMBER
from tests.integration.conftest import Bridge, new_container
from tests.support import body_of, message_params, participant_sid_of, twilio_sid

CUSTOMER = "twilio-conversations"
AGENT = "twilio-conversations-agent"
BRAND = "twilio-conversations-brand"
# The webhook carries its ChatServiceSid, so the bridge reads participants under the service.
PARTICIPANTS_LIST = "ListServiceConversationParticipant"


@dataclass(frozen=True)
class Member:
    """A participant as Twilio holds it: a chat identity, or a messaging binding."""

    author: str  # what the webhook's Author is for their messages
    identity: str | None = None
    address: str | None = None
    proxy_address: str | None = None
    projected_address: str | None = None
    attributes: dict[str, str] | None = None

    def seed(self, bridge: Bridge, conversation: str) -> None:
        bridge.conversations.add_participant(
            conversation,
            sid=participant_sid_of(self.author),
            identity=self.identity,
            address=self.address,
            proxy_address=self.proxy_address,
            projected_address=self.projected_address,
            attributes=self.attributes,
        )


def sms(number: str) -> Member:
    return Member(number, address=number, proxy_address=BUSINESS_NUMBER)


def chat(identity: str, **attributes: str) -> Member:
    return Member(identity, identity=identity, attributes=attributes or None)


@dataclass(frozen=True)
class Line:
    """One message: who sent it and what; `participant` False for an author who is no participant (a
    bot posting through the REST API with X-Twilio-Webhook-Enabled: Source API, no ParticipantSid)."""

    author: str
    body: str
    participant: bool = True


@dataclass(frozen=True)
class Case:
    members: tuple[Member, ...]
    lines: tuple[Line, ...]
    # Profile (idType, value) → what it holds afterwards: (content, source), in order.
    holds: dict[tuple[str, str], list[tuple[str, str]]]
    env: dict[str, str] = field(default_factory=dict)
    joins_later: Member | None = None  # joins after the first message: an unknown ParticipantSid
    fault: dict[str, Any] | None = None  # the Conversations API's answer to the first participants read
    participant_reads: int | None = None


SMS_CUSTOMER = sms("+15550100001")
WHATSAPP = Member(
    "whatsapp:+15550100002", address="whatsapp:+15550100002", proxy_address="whatsapp:" + BUSINESS_NUMBER
)
FLEX_AGENT = chat("flex_agent_7", role="agent")

CASES: dict[str, Case] = {
    "sms customer, flex agent": Case(
        (SMS_CUSTOMER, FLEX_AGENT),
        (Line("+15550100001", "I need a refund"), Line("flex_agent_7", "Refund approved, it arrives Friday")),
        {
            ("phone", "+15550100001"): [
                ("I need a refund", CUSTOMER),
                ("Agent: Refund approved, it arrives Friday", AGENT),
            ]
        },
        participant_reads=1,
    ),
    "whatsapp customer, bot through the API": Case(
        (WHATSAPP,),
        (
            Line("whatsapp:+15550100002", "Where is my parcel?"),
            Line("whatsapp:" + BUSINESS_NUMBER, "Your parcel ships today", participant=False),
        ),
        {
            ("whatsapp", "+15550100002"): [
                ("Where is my parcel?", CUSTOMER),
                ("Business: Your parcel ships today", BRAND),
            ]
        },
    ),
    "web chat customer, agent by pattern": Case(
        (chat("visitor-42"), chat("bob@company.com")),
        (Line("visitor-42", "My login fails"), Line("bob@company.com", "Reset sent to your inbox")),
        {
            ("chat_identity", "visitor-42"): [
                ("My login fails", CUSTOMER),
                ("Agent: Reset sent to your inbox", AGENT),
            ]
        },
        env={"AGENT_IDENTITIES": "agent-ana,*@company.com"},
    ),
    "agent whose identity is an email address": Case(
        (sms("+15550100003"), chat("carol@example.org")),
        (Line("carol@example.org", "Hi, Carol here"), Line("+15550100003", "Hi Carol")),
        {("phone", "+15550100003"): [("Agent: Hi, Carol here", AGENT), ("Hi Carol", CUSTOMER)]},
    ),
    "group mms, two customers": Case(
        (
            Member("+15550100004", address="+15550100004", projected_address=BUSINESS_NUMBER),
            Member("+15550100005", address="+15550100005", projected_address=BUSINESS_NUMBER),
            FLEX_AGENT,
        ),
        (
            Line("+15550100004", "Table for two?"),
            Line("+15550100005", "Make it three"),
            Line("flex_agent_7", "Booked for three at 8"),
        ),
        {
            ("phone", "+15550100004"): [("Table for two?", CUSTOMER)],
            ("phone", "+15550100005"): [("Make it three", CUSTOMER)],
        },
    ),
    "unknown participant, then refreshed": Case(
        (sms("+15550100006"),),
        (Line("+15550100006", "Is anyone there?"), Line("late_agent", "I am, sorry for the wait")),
        {
            ("phone", "+15550100006"): [
                ("Is anyone there?", CUSTOMER),
                ("Agent: I am, sorry for the wait", AGENT),
            ]
        },
        joins_later=chat("late_agent"),
        participant_reads=2,
    ),
    "conversations answers 429": Case(
        (SMS_CUSTOMER, FLEX_AGENT),
        (Line("flex_agent_7", "We shipped it"),),
        {("phone", "+15550100001"): [("Agent: We shipped it", AGENT)]},
        fault={"status": 429, "retry_after": 1},
    ),
    "conversations answers 503": Case(
        (SMS_CUSTOMER, FLEX_AGENT),
        (Line("+15550100001", "Thanks!"),),
        {("phone", "+15550100001"): [("Thanks!", CUSTOMER)]},
        fault={"status": 503},
    ),
    "conversations hangs": Case(
        (SMS_CUSTOMER, FLEX_AGENT),
        (Line("flex_agent_7", "Anything else?"),),
        {("phone", "+15550100001"): [("Agent: Anything else?", AGENT)]},
        fault={"hang": "before", "hang_seconds": 20},
    ),
    "skip mode": Case(
        (SMS_CUSTOMER, FLEX_AGENT),
        (Line("+15550100001", "Cancel my order"), Line("flex_agent_7", "Cancelled")),
        {("phone", "+15550100001"): [("Cancel my order", CUSTOMER)]},
        env={"AGENT_MESSAGES": "skip"},
    ),
}


def send(bridge: Bridge, conversation: str, line: Line, number: int) -> dict[str, Any]:
    params = message_params(
        message_sid=f"IM{conversation[-8:]}{number:04d}",
        author=line.author,
        body=line.body,
        conversation_sid=conversation,
        date_created=f"2026-12-04T10:00:{number:02d}.000Z",
    )
    if not line.participant:
        params = [(k, "API" if k == "Source" else v) for k, v in params if k != "ParticipantSid"]
    return bridge.send(params)


def profiles_hold(bridge: Bridge, holds: dict[tuple[str, str], list[tuple[str, str]]]) -> dict[Any, Any]:
    """What each expected profile holds, by (idType, value), in the order of occurredAt."""
    found: dict[Any, Any] = {}
    observations = bridge.observations()
    for id_type, value in holds:
        profile = bridge.sandbox.profile_for(bridge.store_id, id_type, value)
        mine = sorted((o for o in observations if o["profileId"] == profile), key=lambda o: o["occurredAt"])
        found[(id_type, value)] = [(o["content"], o["source"]) for o in mine]
    return found


def identifiers_sent(bridge: Bridge) -> set[tuple[str, str]]:
    """Every identifier a Lookup or a profile creation carried."""
    sent = {(r.body["idType"], r.body["value"]) for r in bridge.sandbox.requests_to("CreateProfilesLookup")}
    for request in bridge.sandbox.requests_to("CreateProfile"):
        for traits in request.body["traits"].values():
            sent.update(traits.items())
    return sent


@pytest.mark.parametrize("name", list(CASES))
def test_whose_words_land_where(name: str, oncall: Bridge, monkeypatch: pytest.MonkeyPatch) -> None:
    case = CASES[name]
    for variable, value in case.env.items():
        monkeypatch.setenv(variable, value)
        oncall.env[variable] = value
    new_container()
    oncall.seed_authors = False
    conversation = twilio_sid("CH" + name.replace(" ", "").replace(",", "")[:20])
    for member in case.members:
        member.seed(oncall, conversation)
    if case.fault:
        oncall.conversations.add_fault(Fault(**case.fault, times=1, operation=PARTICIPANTS_LIST))

    for number, line in enumerate(case.lines):
        if number == 1 and case.joins_later:
            case.joins_later.seed(oncall, conversation)
        started = time.monotonic()
        answer = send(oncall, conversation, line, number)
        assert time.monotonic() - started < 4.5, "every answer inside Twilio's 5 s"
        assert answer["statusCode"] == 200, answer
        if case.fault and number == 0:
            body = body_of(answer)
            assert (body["outcome"], body["stage"], body["kind"]) == (
                "parked",
                "resolve_speaker",
                "retryable",
            )
            envelope = oncall.parked()[0]
            assert (
                envelope.identifier is None and envelope.speaker is not None and envelope.speaker.kind is None
            )

    if case.fault:
        oncall.conversations.clear_faults()
        code, out, err = oncall.run("dlq", "replay", "--json")
        assert code == 0, (out, err)
        assert json.loads(out)["counts"]["replayed"] == 1
        assert oncall.queue_depth() == 0

    assert profiles_hold(oncall, case.holds) == case.holds
    every_held = sum(len(v) for v in case.holds.values())
    assert len(oncall.observations()) == every_held, "nothing on any other profile"
    assert identifiers_sent(oncall) <= set(case.holds), "a Lookup or create carried a non-customer"
    if case.participant_reads is not None:
        assert oncall.conversations.calls(PARTICIPANTS_LIST) == case.participant_reads


def test_a_parked_message_of_an_earlier_release_is_classified_at_replay(oncall: Bridge) -> None:
    """A version-1 envelope (parked before speakers) whose author is an agent: the replay reads the
    participants and puts the agent's words on the customer's profile, labelled; never on the
    agent's own profile."""
    conversation = twilio_sid("CHlegacy1")
    for member in (sms("+15550100009"), chat("agent-old")):
        member.seed(oncall, conversation)
    legacy = {
        "version": 1,
        "kind": "retryable",
        "storeId": oncall.store_id,
        "profileId": None,
        "identifier": {"idType": "chat_identity", "value": "agent-old"},
        "traitGroup": "Contact",
        "messageSid": twilio_sid("IMlegacy1"),
        "conversationSid": conversation,
        "observations": [
            {
                "content": "Your refund is approved",
                "source": CUSTOMER,
                "occurredAt": "2026-12-01T09:00:00.000Z",
            }
        ],
        "failure": {
            "stage": "post_observations",
            "status": 503,
            "code": None,
            "message": "",
            "ambiguous": False,
        },
        "attempts": 1,
        "firstFailedAt": "2026-12-01T09:00:01Z",
        "lastFailedAt": "2026-12-01T09:00:01Z",
        "history": [],
        "parts": [0],
    }
    oncall.sqs.send_message(QueueUrl=oncall.queue_url, MessageBody=json.dumps(legacy))
    code, out, err = oncall.run("dlq", "replay", "--json")
    assert code == 0, (out, err)
    holds = {("phone", "+15550100009"): [("Agent: Your refund is approved", AGENT)]}
    assert profiles_hold(oncall, holds) == holds
    assert identifiers_sent(oncall) == {("phone", "+15550100009")}
