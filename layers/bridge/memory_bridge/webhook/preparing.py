"""From a webhook's message and its speaker to what the delivery posts: the customer's profile (by
identifier), the observations, redacted and marked with who spoke; or Skipped. Pure."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Literal

from memory_bridge.domain.attribution import LABEL_ROOM, Nowhere, NowhereReason, Target, target_for
from memory_bridge.domain.envelope import SpeakerRecord
from memory_bridge.domain.events import MessageAdded
from memory_bridge.domain.identifiers import Identifier
from memory_bridge.domain.observations import (
    Observation,
    build_observations,
    message_content,
    observation_digest,
)
from memory_bridge.domain.outcomes import Failure, Permanent, Retryable
from memory_bridge.domain.redaction import NOTHING_FOUND, RedactionRules, redact
from memory_bridge.domain.speakers import AgentMessages, Speaker


@dataclass(frozen=True)
class Skipped:
    reason: Literal["empty", "sensitive"] | NowhereReason
    redacted: Mapping[str, int] = field(default_factory=lambda: NOTHING_FOUND)  # "sensitive": by kind


@dataclass(frozen=True)
class Prepared:
    """A message ready to deliver: the customer whose profile it goes on and its observations (parts
    0..n-1). With `unresolved`, the participants could not be read: `who` is None and it is parked
    for the replay to classify, never posted to a guessed profile."""

    message: MessageAdded
    who: Identifier | None
    observations: tuple[Observation, ...]
    redacted: Mapping[str, int] = field(default_factory=lambda: NOTHING_FOUND)  # replaced, by kind
    speaker: SpeakerRecord = field(default_factory=lambda: SpeakerRecord(None))
    unresolved: Failure | None = None

    @cached_property
    def digests(self) -> dict[int, str]:
        """Each part's digest (domain.observations.observation_digest): its claim writes them, its
        settle keeps them for the parts Memory took; computed once."""
        return {p: observation_digest(o) for p, o in enumerate(self.observations)}


@dataclass(frozen=True)
class DeliveryRules:
    store_id: str
    source: str
    trait_group: str
    chat_id_type: str
    agent_messages: AgentMessages = "attribute"
    redaction: RedactionRules = field(default_factory=RedactionRules)


def prepare(message: MessageAdded, rules: DeliveryRules, speaker: Speaker | Failure) -> Prepared | Skipped:
    """Where the message goes and what to remember; Skipped when it goes nowhere or says nothing."""
    said = SpeakerRecord(
        None if isinstance(speaker, Retryable | Permanent) else speaker.kind,
        message.author,
        message.participant_sid,
        message.client_identity,
        message.chat_service_sid,
    )
    target: Target | None = None
    if not isinstance(speaker, Retryable | Permanent):
        found = target_for(speaker, mode=rules.agent_messages, source=rules.source)
        if isinstance(found, Nowhere):
            return Skipped(found.reason)
        target = found
    # The one redaction step: nothing after it (Memory, the envelope, the logs) sees the original.
    redacted = redact(message_content(message), rules.redaction.kinds)
    if redacted.found and rules.redaction.mode == "skip":
        return Skipped("sensitive", redacted.found)
    if target is None:  # parked for the replay to label once it knows who spoke: leave it room
        observations = build_observations(message, rules.source, redacted.text, room=LABEL_ROOM)
    else:
        observations = build_observations(message, target.source, redacted.text, label=target.label)
    if not observations:
        return Skipped("empty")
    failure = speaker if isinstance(speaker, Retryable | Permanent) else None
    who = target.identifier if target else None
    return Prepared(message, who, tuple(observations), redacted.found, said, failure)
