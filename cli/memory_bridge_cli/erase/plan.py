"""What `memory-bridge erase` deletes and tombstones, decided without I/O (unit-tested with values).

the subject      --address → one identifier (the webhook's rules, domain/identifiers.py);
                 --profile-id → the identifiers Memory lists for the profile
the sources      the bridge's own: OBSERVATION_SOURCE and its -agent / -brand variants; what any
                 other writer put on the profile is never touched
the tombstones   each MessageSid that lands (or would land) on the customer's profile: every message
                 of a conversation whose one customer they are; in a group with other customers,
                 only the messages they wrote (the rules of domain/speakers.py, as the webhook reads them)
the envelopes    parked for this customer: their MessageSid tombstoned, their identifier or profile ours
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from memory_bridge.domain.attribution import SOURCE_SUFFIXES
from memory_bridge.domain.envelope import Envelope
from memory_bridge.domain.identifiers import Identifier, NotACustomer, identifier_for
from memory_bridge.domain.speakers import AgentRules, Roster, author_of, classify, customers_of

# An erasure's tombstones outlive the ledger's 15 days: a backfill run a year on must still skip them.
# They hold a MessageSid and a time, no content and no identifier.
TOMBSTONE_KEEP_DAYS = 3650


class NotAnAddress(ValueError):
    """The address is no customer's (empty, `system`): the message names the rule."""


def subject_identifier(address: str, chat_id_type: str) -> Identifier:
    """The identifier the webhook would give this customer. Raises NotAnAddress."""
    found = identifier_for(address, chat_id_type=chat_id_type, agent_identities=frozenset())
    if isinstance(found, NotACustomer):
        raise NotAnAddress(
            f"--address {address!r} is no customer's address: pass a phone (+1555…), whatsapp:+1…, "
            "an email or a chat identity"
        )
    return found


def identifiers_from_sets(sets: Iterable[Any]) -> list[Identifier]:
    """Memory's IdentifierSets ({idType, values}) as identifiers; anything malformed is left out."""
    found: list[Identifier] = []
    for item in sets:
        if not isinstance(item, dict) or not isinstance(item.get("idType"), str):
            continue
        for value in item.get("values") or ():
            if isinstance(value, str) and value and Identifier(item["idType"], value) not in found:
                found.append(Identifier(item["idType"], value))
    return found


def participant_queries(identifier: Identifier) -> list[tuple[str, str]]:
    """ParticipantConversations' filters that find this customer: a messaging binding's Address
    (phone, whatsapp:+…) or a chat Identity (email-shaped or not; an email binding's Address too)."""
    if identifier.id_type in ("phone", "whatsapp"):
        return [("Address", author_of(identifier))]
    if identifier.id_type == "email":
        return [("Identity", identifier.value), ("Address", identifier.value)]
    return [("Identity", identifier.value)]


def bridge_sources(source: str) -> frozenset[str]:
    """Every `source` the bridge writes with: the customer's own and the marked agent's and brand's."""
    return frozenset(source + suffix for suffix in SOURCE_SUFFIXES.values())


@dataclass(frozen=True)
class SpeakerRulesView:
    agents: AgentRules
    chat_id_type: str


def sids_to_tombstone(
    roster: Roster, messages: Sequence[dict[str, Any]], subject: Sequence[Identifier], rules: SpeakerRulesView
) -> list[str]:
    """The MessageSids of one conversation that land (or would land) on the subject's profile."""
    customers = customers_of(roster, rules.agents, rules.chat_id_type)
    ours = [c for c in customers if c in subject]
    if not ours:
        return []  # they are no customer here (an agent's own number, say): nothing lands on them
    whole = len(customers) == len(ours)  # every customer of the conversation is the subject
    found = []
    for message in messages:
        sid = message.get("sid")
        if not isinstance(sid, str):
            continue
        if whole:
            found.append(sid)
            continue
        author = message.get("author") if isinstance(message.get("author"), str) else None
        participant = message.get("participant_sid")
        speaker = classify(
            roster,
            author=author,
            participant_sid=participant if isinstance(participant, str) else None,
            client_identity=None,
            rules=rules.agents,
            chat_id_type=rules.chat_id_type,
        )
        if speaker.kind == "customer" and speaker.identifier in subject:
            found.append(sid)
    return found


def envelope_is_theirs(
    envelope: Envelope,
    subject: Sequence[Identifier],
    profile_ids: Iterable[str],
    sids: Iterable[str] | set[str],
) -> bool:
    """Parked for this customer: one of their messages, or their identifier or profile."""
    return (
        envelope.message_sid in sids
        or (envelope.identifier is not None and envelope.identifier in subject)
        or (envelope.profile_id is not None and envelope.profile_id in profile_ids)
    )


@dataclass
class ObservationPlan:
    """The profile's observations, sorted into the bridge's (to delete) and everyone else's (kept)."""

    delete: list[str] = field(default_factory=list)
    by_source: Counter[str] = field(default_factory=Counter)
    kept: int = 0

    def add(self, observations: Iterable[Any], sources: frozenset[str]) -> None:
        for observation in observations:
            if not isinstance(observation, dict) or not observation.get("id"):
                continue
            source = str(observation.get("source") or "")
            if source in sources:
                self.delete.append(str(observation["id"]))
                self.by_source[source] += 1
            else:
                self.kept += 1
