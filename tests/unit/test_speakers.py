"""Who spoke and where their words go (issue 19): memory_bridge.domain.speakers and .attribution. Pure.

One table runs every rule through `classify` and `target_for`; a property holds over random rosters
that nothing but a customer's own address or a web-chat customer's identity is ever a target.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from memory_bridge.domain.attribution import (
    LABEL_ROOM,
    LABELS,
    MAX_BASE_SOURCE,
    Nowhere,
    Target,
    relabelled,
    target_for,
)
from memory_bridge.domain.events import MessageAdded
from memory_bridge.domain.identifiers import Identifier, identifier_for
from memory_bridge.domain.observations import MAX_CONTENT_BYTES, build_observations
from memory_bridge.domain.speakers import AgentRules, Participant, Roster, author_of, classify

SOURCE = "twilio-conversations"
EXAMPLES = int(os.environ.get("HYPOTHESIS_EXAMPLES", "300"))
BUSINESS = "+15555550999"  # the business's Twilio number
ALICE = "+15555550100"  # customers
BOB = "+15555550102"


def sid(n: int) -> str:
    return f"MB{n:032x}"


def phone(value: str) -> Identifier:
    return Identifier("phone", value)


def chat(value: str) -> Identifier:
    return Identifier("chat_identity", value)


SMS_CUSTOMER = Participant(sid(1), address=ALICE, proxy_address=BUSINESS)
CHAT_AGENT = Participant(sid(2), identity="agent.smith")
WA_CUSTOMER = Participant(sid(3), address="whatsapp:" + ALICE, proxy_address="whatsapp:" + BUSINESS)
WEB_CUSTOMER = Participant(sid(4), identity="visitor-42")
PATTERN_AGENT = Participant(sid(5), identity="Dana@Company.com")
ATTRIBUTE_AGENT = Participant(sid(6), identity="erin", attributes=(("role", "agent"),))
NAMED_AGENT = Participant(sid(7), identity="Frank")
EMAIL_AGENT = Participant(sid(8), identity="gina@example.org")  # not in any rule
# A group MMS: each customer's own number; the agent writes through the group's (projected) number.
MMS_ALICE = Participant(sid(9), address=ALICE, projected_address=BUSINESS)
MMS_BOB = Participant(sid(10), address=BOB, projected_address=BUSINESS)
MMS_AGENT = Participant(sid(11), identity="agent.smith", projected_address=BUSINESS)
RULES = AgentRules.parse("frank, *@company.com", "role=agent")


@dataclass(frozen=True)
class Case:
    roster: tuple[Participant, ...]
    author: str | None
    participant_sid: str | None
    kind: str
    # Where the words go with AGENT_MESSAGES=attribute: (identifier, label, source), or a Nowhere reason.
    attribute: tuple[Identifier, str, str] | str
    skip: tuple[Identifier, str, str] | str
    client_identity: str | None = None
    rules: AgentRules = field(default=RULES)


def to_alice(label: str = "", suffix: str = "", identifier: Identifier | None = None) -> tuple:
    return (identifier or phone(ALICE), label, SOURCE + suffix)


AGENT_ON_ALICE = to_alice("Agent: ", "-agent")
BRAND_ON_ALICE = to_alice("Business: ", "-brand")

CASES = {
    "sms customer": Case((SMS_CUSTOMER, CHAT_AGENT), ALICE, sid(1), "customer", to_alice(), to_alice()),
    "chat agent with an sms customer": Case(
        (SMS_CUSTOMER, CHAT_AGENT), "agent.smith", sid(2), "agent", AGENT_ON_ALICE, "agent"
    ),
    "whatsapp customer": Case(
        (WA_CUSTOMER, CHAT_AGENT),
        "whatsapp:" + ALICE,
        sid(3),
        "customer",
        to_alice(identifier=Identifier("whatsapp", ALICE)),
        to_alice(identifier=Identifier("whatsapp", ALICE)),
    ),
    "agent on whatsapp": Case(
        (WA_CUSTOMER, CHAT_AGENT),
        "agent.smith",
        sid(2),
        "agent",
        (Identifier("whatsapp", ALICE), "Agent: ", SOURCE + "-agent"),
        "agent",
    ),
    "web-chat customer": Case(
        (WEB_CUSTOMER, NAMED_AGENT),
        "visitor-42",
        sid(4),
        "customer",
        to_alice(identifier=chat("visitor-42")),
        to_alice(identifier=chat("visitor-42")),
    ),
    "web-chat agent by pattern": Case(
        (WEB_CUSTOMER, PATTERN_AGENT),
        "Dana@Company.com",
        sid(5),
        "agent",
        (chat("visitor-42"), "Agent: ", SOURCE + "-agent"),
        "agent",
    ),
    "web-chat agent by attribute": Case(
        (WEB_CUSTOMER, ATTRIBUTE_AGENT),
        "erin",
        sid(6),
        "agent",
        (chat("visitor-42"), "Agent: ", SOURCE + "-agent"),
        "agent",
    ),
    "web-chat agent by name, any case": Case(
        (WEB_CUSTOMER, NAMED_AGENT),
        "Frank",
        sid(7),
        "agent",
        (chat("visitor-42"), "Agent: ", SOURCE + "-agent"),
        "agent",
    ),
    "attribute rule off: that identity is a second web-chat customer": Case(
        (WEB_CUSTOMER, ATTRIBUTE_AGENT),
        "erin",
        sid(6),
        "customer",
        to_alice(identifier=chat("erin")),
        to_alice(identifier=chat("erin")),
        rules=AgentRules.parse("", ""),
    ),
    "an email identity with a messaging customer is an agent": Case(
        (SMS_CUSTOMER, EMAIL_AGENT), "gina@example.org", sid(8), "agent", AGENT_ON_ALICE, "agent"
    ),
    "an email identity alone is a web-chat customer, by email": Case(
        (WEB_CUSTOMER, EMAIL_AGENT),
        "gina@example.org",
        sid(8),
        "customer",
        to_alice(identifier=Identifier("email", "gina@example.org")),
        to_alice(identifier=Identifier("email", "gina@example.org")),
    ),
    "group mms: each customer on their own": Case(
        (MMS_ALICE, MMS_BOB, MMS_AGENT),
        BOB,
        sid(10),
        "customer",
        to_alice(identifier=phone(BOB)),
        to_alice(identifier=phone(BOB)),
    ),
    "group mms: the agent goes nowhere": Case(
        (MMS_ALICE, MMS_BOB, MMS_AGENT), "agent.smith", sid(11), "agent", "several customers", "agent"
    ),
    "group mms: the group's number goes nowhere": Case(
        (MMS_ALICE, MMS_BOB, MMS_AGENT), BUSINESS, None, "brand", "several customers", "brand"
    ),
    "author is the business number": Case(
        (SMS_CUSTOMER, CHAT_AGENT), BUSINESS, None, "brand", BRAND_ON_ALICE, "brand"
    ),
    "author is the business's whatsapp number": Case(
        (WA_CUSTOMER,),
        "whatsapp:" + BUSINESS,
        None,
        "brand",
        (Identifier("whatsapp", ALICE), "Business: ", SOURCE + "-brand"),
        "brand",
    ),
    "author is the business's number without whatsapp:": Case(
        (WA_CUSTOMER,),
        BUSINESS,
        None,
        "brand",
        (Identifier("whatsapp", ALICE), "Business: ", SOURCE + "-brand"),
        "brand",
    ),
    "system": Case((SMS_CUSTOMER, CHAT_AGENT), "system", None, "brand", BRAND_ON_ALICE, "brand"),
    "no author": Case((SMS_CUSTOMER,), None, None, "brand", BRAND_ON_ALICE, "brand"),
    "an author who is no participant": Case(
        (SMS_CUSTOMER, CHAT_AGENT), "+15555550777", None, "brand", BRAND_ON_ALICE, "brand"
    ),
    "an unknown ParticipantSid, matched by author": Case(
        (SMS_CUSTOMER, CHAT_AGENT), ALICE, sid(99), "customer", to_alice(), to_alice()
    ),
    "an sdk message matched by its ClientIdentity": Case(
        (SMS_CUSTOMER, CHAT_AGENT),
        "agent.smith",
        None,
        "agent",
        AGENT_ON_ALICE,
        "agent",
        client_identity="agent.smith",
    ),
    "agents only: no customer": Case(
        (PATTERN_AGENT, NAMED_AGENT), "Frank", sid(7), "agent", "no customer", "agent"
    ),
    "a messaging participant at the business's own number is never a customer": Case(
        (SMS_CUSTOMER, Participant(sid(12), address=BUSINESS)),
        BUSINESS,
        sid(12),
        "brand",
        BRAND_ON_ALICE,
        "brand",
    ),
    # Found by the property below: a chat identity that is the group's own number (a group MMS whose
    # SMS customers have all left) was taken for a web-chat customer, and the brand's words went on a
    # profile keyed by the business's number.
    "a chat identity that is the business's number is never a customer": Case(
        (Participant(sid(13), identity=BUSINESS, projected_address=BUSINESS), WEB_CUSTOMER),
        BUSINESS,
        sid(13),
        "brand",
        (chat("visitor-42"), "Business: ", SOURCE + "-brand"),
        "brand",
    ),
    # The same number written with and without whatsapp: is the same business number.
    "a whatsapp address at the business's sms number is never a customer": Case(
        (SMS_CUSTOMER, Participant(sid(14), address="whatsapp:" + BUSINESS)),
        "agent.smith",
        None,
        "brand",
        BRAND_ON_ALICE,
        "brand",
    ),
}


@pytest.mark.parametrize("mode", ["attribute", "skip"])
@pytest.mark.parametrize("name", list(CASES))
def test_every_rule_gives_the_kind_and_the_target(name, mode):
    case = CASES[name]
    speaker = classify(
        Roster(case.roster),
        author=case.author,
        participant_sid=case.participant_sid,
        client_identity=case.client_identity,
        rules=case.rules,
        chat_id_type="chat_identity",
    )
    assert speaker.kind == case.kind
    expected = case.attribute if mode == "attribute" else case.skip
    found = target_for(speaker, mode=mode, source=SOURCE)
    if isinstance(expected, str):
        assert found == Nowhere(expected)
        return
    identifier, label, source = expected
    assert found == Target(identifier, label, source, speaker.kind)
    assert speaker.identifier == (identifier if speaker.kind == "customer" else None)
    assert identifier not in {phone(BUSINESS), Identifier("whatsapp", BUSINESS)}


# ---- the property: only customers are ever targets ------------------------------------------------

PHONES = [ALICE, BOB, "+15555550103", BUSINESS, "+15555550998"]
IDENTITIES = ["agent.smith", "Frank", "visitor-42", "Dana@Company.com", "gina@example.org", "system"]
addresses = st.sampled_from(PHONES).flatmap(lambda n: st.sampled_from([n, "whatsapp:" + n, "WhatsApp:" + n]))
maybe_address = st.one_of(st.none(), addresses)
attributes = st.sampled_from([(), (("role", "agent"),), (("role", "customer"),)])


@st.composite
def rosters(draw) -> Roster:
    found = []
    for n in range(draw(st.integers(0, 5))):
        if draw(st.booleans()):  # on a messaging channel
            participant = Participant(
                sid(n + 1),
                address=draw(addresses),
                proxy_address=draw(maybe_address),
                projected_address=draw(maybe_address),
            )
        else:  # a chat identity (an agent in a group MMS has the group's number)
            participant = Participant(
                sid(n + 1),
                identity=draw(st.sampled_from(IDENTITIES) | addresses),
                projected_address=draw(maybe_address),
                attributes=draw(attributes),
            )
        found.append(participant)
    return Roster(tuple(found))


def classify_value(value: str) -> Identifier | None:
    found = identifier_for(value, chat_id_type="chat_identity", agent_identities=frozenset())
    return found if isinstance(found, Identifier) else None


def business_identifiers(roster: Roster) -> set[Identifier]:
    """Every identifier a business number could be taken as: phone and WhatsApp alike."""
    numbers = set()
    for p in roster.participants:
        for address in (p.proxy_address, p.projected_address):
            if address:
                numbers.add(address.split(":", 1)[-1] if address.lower().startswith("whatsapp:") else address)
    return {phone(n) for n in numbers} | {Identifier("whatsapp", n) for n in numbers}


def customer_identifiers(roster: Roster, rules: AgentRules) -> set[Identifier]:
    """A messaging participant's own address; a chat identity that no rule makes an agent."""
    messaging = any(p.address for p in roster.participants)
    allowed = set()
    for p in roster.participants:
        if p.address:
            allowed.add(classify_value(p.address))
        elif p.identity and not messaging and not rules.match(p, p.identity):
            allowed.add(classify_value(p.identity))
    return allowed - business_identifiers(roster)


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    roster=rosters(),
    author=st.one_of(st.none(), st.sampled_from(IDENTITIES), addresses, st.text(max_size=12)),
    sid_number=st.one_of(st.none(), st.integers(1, 7)),
    client_identity=st.one_of(st.none(), st.sampled_from(IDENTITIES)),
    rules=st.sampled_from([RULES, AgentRules.parse("", ""), AgentRules()]),
    mode=st.sampled_from(["attribute", "skip"]),
)
def test_a_target_is_always_a_customers_own_address_or_a_web_chat_customers_identity(
    roster, author, sid_number, client_identity, rules, mode
):
    speaker = classify(
        roster,
        author=author,
        participant_sid=None if sid_number is None else sid(sid_number),
        client_identity=client_identity,
        rules=rules,
        chat_id_type="chat_identity",
    )
    allowed = customer_identifiers(roster, rules)
    assert set(speaker.customers) <= allowed
    found = target_for(speaker, mode=mode, source=SOURCE)
    if isinstance(found, Target):
        assert found.identifier in allowed
        assert found.identifier not in business_identifiers(roster)
        assert (found.label, found.source) == (
            LABELS[speaker.kind],
            SOURCE + {"customer": "", "agent": "-agent", "brand": "-brand"}[speaker.kind],
        )
        if speaker.kind != "customer":
            assert mode == "attribute" and speaker.customers == (found.identifier,)
    else:
        assert speaker.kind != "customer"


# ---- the agent rules ------------------------------------------------------------------------------


def test_agent_rules_are_parsed_names_and_patterns_apart_case_folded():
    rules = AgentRules.parse(" Frank , *@Company.com,, bot-?? ,[ab]gent", " team = support ")
    assert rules.identities == frozenset({"frank"})
    assert rules.patterns == ("*@company.com", "bot-??", "[ab]gent")
    assert rules.attribute == ("team", "support")
    assert AgentRules.parse("", "").attribute is None
    assert AgentRules.parse("", "role=agent") == AgentRules()  # the default


@pytest.mark.parametrize("attribute", ["role", "=agent", "role=", " = ", "role agent"])
def test_a_bad_attribute_rule_names_the_rule_and_the_value(attribute):
    with pytest.raises(ValueError, match=r"must be key=value \(e\.g\. role=agent\) or empty, got"):
        AgentRules.parse("", attribute)


@pytest.mark.parametrize(
    ("identity", "attributes", "agent"),
    [
        ("FRANK", (), True),  # a name, any case
        ("frankie", (), False),  # a name is not a prefix
        ("Dana@COMPANY.com", (), True),  # a pattern, any case
        ("dana@company.com.evil", (), False),
        ("bot-12", (), True),
        ("bot-123", (), False),
        ("agent", (), True),
        ("visitor", (("role", "agent"),), True),
        ("visitor", (("role", "Agent"),), False),  # attribute values are compared as written
        ("visitor", (("team", "agent"),), False),
    ],
)
def test_agent_rules_match_by_name_pattern_or_attribute(identity, attributes, agent):
    rules = AgentRules.parse("frank, *@company.com, bot-??, [ab]gent", "role=agent")
    participant = Participant(sid(1), identity=identity, attributes=attributes)
    assert rules.match(participant, identity) is agent


def test_a_participant_is_read_from_the_conversations_api_document():
    sms = Participant.from_json(
        {
            "sid": sid(1),
            "identity": None,
            "attributes": "{}",
            "messaging_binding": {"type": "sms", "address": ALICE, "proxy_address": BUSINESS},
        }
    )
    assert sms == Participant(sid(1), address=ALICE, proxy_address=BUSINESS)
    agent = Participant.from_json(
        {
            "sid": sid(2),
            "identity": " agent.smith ",
            "attributes": json.dumps({"role": "agent", "level": 2, "lead": True, "teams": ["a"]}),
            "messaging_binding": {"projected_address": BUSINESS},
        }
    )
    assert agent.identity == "agent.smith" and agent.projected_address == BUSINESS and not agent.has_binding
    assert agent.attributes == (("role", "agent"), ("level", "2"), ("lead", "true"))  # nested values ignored
    for attributes in ("not json", "[1]", None, 5):
        assert Participant.from_json({"sid": sid(3), "attributes": attributes}).attributes == ()


def test_author_of_gives_back_the_author_the_identifier_was_made_of():
    roster = Roster((WA_CUSTOMER, SMS_CUSTOMER))
    for identifier in (Identifier("whatsapp", ALICE), phone(ALICE), chat("visitor-42")):
        assert identifier_for(
            author_of(identifier), chat_id_type="chat_identity", agent_identities=frozenset()
        ) == (identifier)
    assert roster.by_author(author_of(Identifier("whatsapp", ALICE))) == WA_CUSTOMER


# ---- labels and room ------------------------------------------------------------------------------

TARGET = Target(phone(ALICE), "Business: ", SOURCE + "-brand", "brand")


def test_relabelled_adds_the_label_when_it_fits_and_sets_the_source():
    parked = ({"content": "hello", "source": SOURCE, "occurredAt": "2026-11-21T10:00:00.000Z"},)
    assert relabelled(parked, TARGET) == (
        {"content": "Business: hello", "source": SOURCE + "-brand", "occurredAt": "2026-11-21T10:00:00.000Z"},
    )
    assert relabelled(parked, Target(phone(ALICE), "", SOURCE, "customer")) == parked


def test_relabelled_keeps_a_full_piece_whole_and_lets_the_source_say_who():
    # Parked by a release before labels: a piece of 4,096 bytes has no room; its words are not cut.
    full = "é" * (MAX_CONTENT_BYTES // 2)
    exact_fit = "x" * (MAX_CONTENT_BYTES - len(TARGET.label))
    (kept, fitted) = relabelled([{"content": full, "source": SOURCE}, {"content": exact_fit}], TARGET)
    assert kept == {"content": full, "source": SOURCE + "-brand"}
    assert fitted == {"content": TARGET.label + exact_fit, "source": SOURCE + "-brand"}
    assert len(fitted["content"].encode()) == MAX_CONTENT_BYTES


def said(body: str) -> MessageAdded:
    return MessageAdded("IM1", "CH1", "AC1", ALICE, body, datetime(2026, 11, 21, tzinfo=UTC), 1)


characters = st.sampled_from(["a", "é", "€", "😀", " ", "\n"])


@settings(max_examples=EXAMPLES // 3, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    body=st.lists(characters, min_size=1, max_size=9000).map("".join).filter(str.strip),
    label=st.sampled_from(list(LABELS.values())),
)
def test_every_labelled_piece_fits_and_the_words_are_all_there(body, label):
    pieces = build_observations(said(body), SOURCE, label=label)
    assert all(len(p["content"].encode("utf-8")) <= MAX_CONTENT_BYTES for p in pieces)
    assert all(p["content"].startswith(label) for p in pieces)  # each says who spoke on its own
    assert "".join(p["content"][len(label) :] for p in pieces) == body


@settings(max_examples=EXAMPLES // 3, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    body=st.lists(characters, min_size=1, max_size=9000).map("".join).filter(str.strip),
    kind=st.sampled_from(["agent", "brand"]),
)
def test_pieces_parked_with_room_take_any_label_later(body, kind):
    parked = build_observations(said(body), SOURCE, room=LABEL_ROOM)
    target = Target(phone(ALICE), LABELS[kind], SOURCE + "-" + kind, kind)
    labelled = relabelled(parked, target)
    assert all(p["content"].startswith(target.label) for p in labelled)
    assert all(len(p["content"].encode("utf-8")) <= MAX_CONTENT_BYTES for p in labelled)
    assert "".join(p["content"][len(target.label) :] for p in labelled) == body


def test_the_base_source_leaves_room_for_the_longest_suffix():
    assert MAX_BASE_SOURCE + len("-agent") <= 100 and MAX_BASE_SOURCE + len("-brand") <= 100
    assert len("Business: ") == LABEL_ROOM
