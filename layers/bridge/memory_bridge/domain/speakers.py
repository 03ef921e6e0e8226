"""Who spoke, from the conversation's own participants: a customer, an agent, or the brand. Pure.

The rules (README, "Who is speaking"), in order:
  - author `system` or none → the brand;
  - the participant (by ParticipantSid, else by the author's address or identity):
      a messaging binding (SMS, WhatsApp, …) → a customer, at the binding's `address`;
      a chat identity → an agent when the conversation has a customer on a messaging channel, or
        when it matches the agent rules (identities, patterns, an attribute); else a customer (web chat);
  - no participant, or an author equal to a business number (a binding's `proxy_address` or
    `projected_address`) → the brand.
Twilio's own capture does the same: profiles only for CUSTOMER participants, the Twilio-owned
address as the brand. Nothing here ever turns an agent's or a business's address into an identifier.
"""

from __future__ import annotations

import fnmatch
import functools
import json
from dataclasses import dataclass
from typing import Literal

from memory_bridge.domain.identifiers import SYSTEM_AUTHOR, WHATSAPP_PREFIX, Identifier, identifier_for

SpeakerKind = Literal["customer", "agent", "brand"]
KINDS: tuple[SpeakerKind, ...] = ("customer", "agent", "brand")
AgentMessages = Literal["attribute", "skip"]
AGENT_MESSAGES: tuple[AgentMessages, ...] = ("attribute", "skip")


@dataclass(frozen=True)
class Participant:
    """What the bridge needs of one participant (GET …/Participants)."""

    sid: str
    identity: str | None = None
    address: str | None = None  # messaging_binding.address: the customer's own
    proxy_address: str | None = None  # the business's number
    projected_address: str | None = None  # the business's number in a group MMS
    attributes: tuple[tuple[str, str], ...] = ()  # top-level string values of `attributes`

    @property
    def has_binding(self) -> bool:
        return bool(self.address)

    @classmethod
    def from_json(cls, document: dict[str, object]) -> Participant:
        binding = document.get("messaging_binding")
        binding = binding if isinstance(binding, dict) else {}
        return cls(
            sid=str(document.get("sid") or ""),
            identity=_text(document.get("identity")),
            address=_text(binding.get("address")),
            proxy_address=_text(binding.get("proxy_address")),
            projected_address=_text(binding.get("projected_address")),
            attributes=_attributes(document.get("attributes")),
        )


@dataclass(frozen=True)
class Roster:
    """A conversation's participants, as read at one moment."""

    participants: tuple[Participant, ...]

    def by_sid(self, sid: str | None) -> Participant | None:
        return next((p for p in self.participants if sid and p.sid == sid), None)

    def by_author(self, author: str) -> Participant | None:
        """The participant whose address or identity the author is (Author is one or the other)."""
        wanted = _same(author)
        for participant in self.participants:
            if wanted in (_same(participant.address), _same(participant.identity)):
                return participant
        return None

    # Computed once per roster (the cached roster serves every message of the conversation): each
    # participant's check asks for both, so recomputing them made classify quadratic in the roster.
    @functools.cached_property
    def _business(self) -> frozenset[str]:
        found = set()
        for participant in self.participants:
            for address in (participant.proxy_address, participant.projected_address):
                if address:
                    found.update({_same(address), _same(_bare(address))})
        return frozenset(found)

    def business_addresses(self) -> frozenset[str]:
        return self._business

    @functools.cached_property
    def has_messaging_customer(self) -> bool:
        return any(p.has_binding for p in self.participants)


@dataclass(frozen=True)
class AgentRules:
    """Which chat identities are agents: named, matched by pattern (`*@company.com`), or carrying
    an attribute (`role=agent`). Names and patterns are compared case-insensitively."""

    identities: frozenset[str] = frozenset()
    patterns: tuple[str, ...] = ()
    attribute: tuple[str, str] | None = ("role", "agent")

    @classmethod
    def parse(cls, identities: str, attribute: str) -> AgentRules:
        """From AGENT_IDENTITIES (comma-separated; `*` or `?` makes an entry a pattern) and
        AGENT_ATTRIBUTE (`key=value`, or empty); raises ValueError naming the rule."""
        entries = [part.strip().lower() for part in identities.split(",") if part.strip()]
        rule: tuple[str, str] | None = None
        if attribute.strip():
            key, equals, value = attribute.strip().partition("=")
            if not equals or not key.strip() or not value.strip():
                raise ValueError(f"must be key=value (e.g. role=agent) or empty, got {attribute!r}")
            rule = (key.strip(), value.strip())
        return cls(
            identities=frozenset(e for e in entries if not _is_pattern(e)),
            patterns=tuple(e for e in entries if _is_pattern(e)),
            attribute=rule,
        )

    def match(self, participant: Participant | None, identity: str) -> bool:
        name = identity.strip().lower()
        if name in self.identities or any(fnmatch.fnmatchcase(name, p) for p in self.patterns):
            return True
        return bool(participant and self.attribute and self.attribute in participant.attributes)


@dataclass(frozen=True)
class Speaker:
    """Who spoke, and the conversation's customers (the profiles an agent's words may go on)."""

    kind: SpeakerKind
    participant_sid: str | None
    customers: tuple[Identifier, ...]
    # The speaker's own identifier: set for a customer only.
    identifier: Identifier | None = None


def classify(
    roster: Roster,
    *,
    author: str | None,
    participant_sid: str | None,
    client_identity: str | None,
    rules: AgentRules,
    chat_id_type: str,
) -> Speaker:
    """The speaker of one message, by the rules above."""
    customers = customers_of(roster, rules, chat_id_type)
    who = (author or "").strip()
    participant = roster.by_sid(participant_sid) or (
        roster.by_author(who or client_identity or "") if (who or client_identity) else None
    )
    sid = participant.sid if participant else participant_sid
    business = roster.business_addresses()
    if not who or who.lower() == SYSTEM_AUTHOR or participant is None or _same(_bare(who)) in business:
        return Speaker("brand", sid, customers)
    identifier = _customer_identifier(participant, roster, rules, chat_id_type)
    if identifier is None:
        return Speaker("agent", sid, customers)
    return Speaker("customer", sid, customers, identifier)


def customers_of(roster: Roster, rules: AgentRules, chat_id_type: str) -> tuple[Identifier, ...]:
    found: list[Identifier] = []
    for participant in roster.participants:
        identifier = _customer_identifier(participant, roster, rules, chat_id_type)
        if identifier is not None and identifier not in found:
            found.append(identifier)
    return tuple(found)


def _customer_identifier(
    participant: Participant, roster: Roster, rules: AgentRules, chat_id_type: str
) -> Identifier | None:
    """The participant's identifier when it is a customer; None for an agent or a business address."""
    # Compared bare: the business's number is the same number with or without `whatsapp:`.
    business = roster.business_addresses()
    if participant.address:
        address = participant.address
        # The agent rules name agents wherever they write: a number listed in AGENT_IDENTITIES (an
        # agent's own phone in a group MMS) or a participant with the agent attribute is no customer.
        if (
            _same(_bare(address)) in business
            or rules.match(participant, address)
            or rules.match(participant, _bare(address))
        ):
            return None
        return _identifier(address, chat_id_type)
    identity = participant.identity or ""
    if not identity or roster.has_messaging_customer or rules.match(participant, identity):
        return None
    if _same(_bare(identity)) in business:  # a chat identity written as the business's own number
        return None
    return _identifier(identity, chat_id_type)


def _identifier(value: str, chat_id_type: str) -> Identifier | None:
    found = identifier_for(value, chat_id_type=chat_id_type, agent_identities=frozenset())
    return found if isinstance(found, Identifier) else None


def author_of(identifier: Identifier) -> str:
    """The Author a message had, from the identifier the bridge made of it (for envelopes parked
    before speakers were known: WhatsApp identifiers drop the prefix that Author carries)."""
    if identifier.id_type == "whatsapp":
        return WHATSAPP_PREFIX + identifier.value
    return identifier.value


def _is_pattern(entry: str) -> bool:
    return any(char in entry for char in "*?[")


def _same(value: str | None) -> str:
    return (value or "").strip().lower()


def _bare(address: str) -> str:
    return address[len(WHATSAPP_PREFIX) :] if address.lower().startswith(WHATSAPP_PREFIX) else address


def _text(value: object) -> str | None:
    return value.strip() or None if isinstance(value, str) else None


def _attributes(raw: object) -> tuple[tuple[str, str], ...]:
    """Top-level string (and number/boolean) values of the attributes JSON; anything else is ignored."""
    try:
        document = json.loads(raw) if isinstance(raw, str) else raw
    except (ValueError, RecursionError):  # not JSON, or nested deeper than Python's parser goes
        return ()
    if not isinstance(document, dict):
        return ()
    pairs = []
    for key, value in document.items():
        if isinstance(value, str | int | float | bool):
            pairs.append((str(key), str(value).lower() if isinstance(value, bool) else str(value)))
    return tuple(pairs)
