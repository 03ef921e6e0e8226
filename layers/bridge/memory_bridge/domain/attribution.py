"""Where a speaker's words go: the customer's own profile, or the conversation's customer's profile
marked with who spoke, or nowhere. Pure.

  a customer              → their own profile, as they wrote it, with the configured source
  an agent or the brand   → AGENT_MESSAGES=attribute: the conversation's one customer's profile, each
                            observation starting "Agent: " / "Business: ", source "<source>-agent" /
                            "<source>-brand" (List Observations filters on it); skip: nowhere
  several customers       → agents' and the brand's words go nowhere: a reply seen by every customer
                            of a group cannot be put on one without misattributing it
  no customer             → nowhere (an agents-only conversation)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from memory_bridge.domain.identifiers import Identifier
from memory_bridge.domain.observations import MAX_CONTENT_BYTES, Observation
from memory_bridge.domain.speakers import AgentMessages, Speaker, SpeakerKind

LABELS: dict[SpeakerKind, str] = {"customer": "", "agent": "Agent: ", "brand": "Business: "}
SOURCE_SUFFIXES: dict[SpeakerKind, str] = {"customer": "", "agent": "-agent", "brand": "-brand"}
# Bytes kept free in each piece of a message parked before its speaker was known, so that the label
# the replay adds always fits.
LABEL_ROOM = max(len(label.encode("utf-8")) for label in LABELS.values())
# OBSERVATION_SOURCE's longest, so that the source with its suffix stays within Memory's 100.
MAX_BASE_SOURCE = 100 - max(len(suffix) for suffix in SOURCE_SUFFIXES.values())
NowhereReason = Literal["agent", "brand", "no customer", "several customers"]


@dataclass(frozen=True)
class Target:
    """The profile the words go on (by identifier), and how they are marked."""

    identifier: Identifier
    label: str
    source: str
    kind: SpeakerKind = "customer"  # who spoke


@dataclass(frozen=True)
class Nowhere:
    reason: NowhereReason


def target_for(speaker: Speaker, *, mode: AgentMessages, source: str) -> Target | Nowhere:
    if speaker.kind == "customer":
        assert speaker.identifier is not None
        return Target(speaker.identifier, "", source, "customer")
    if mode == "skip":
        return Nowhere(speaker.kind)
    if not speaker.customers:
        return Nowhere("no customer")
    if len(speaker.customers) > 1:
        return Nowhere("several customers")
    kind = speaker.kind
    return Target(speaker.customers[0], LABELS[kind], source + SOURCE_SUFFIXES[kind], kind)


def relabelled(observations: Sequence[Observation], target: Target) -> tuple[Observation, ...]:
    """Observations built before the speaker was known, marked for `target`. A piece with no room
    for the label (parked by a release before labels) keeps its words whole: the source says who."""
    marked = []
    for observation in observations:
        content = str(observation.get("content", ""))
        fits = len((target.label + content).encode("utf-8")) <= MAX_CONTENT_BYTES
        labelled = target.label + content if fits else content
        marked.append({**observation, "content": labelled, "source": target.source})
    return tuple(marked)
