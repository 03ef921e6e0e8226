"""The webhook's first step after reading a message: who spoke (the conversation's participants,
cached), counted; and, for an edit, where its words go whatever they say now."""

from __future__ import annotations

from dataclasses import replace

from memory_bridge.deadlines import Deadline
from memory_bridge.domain.events import MessageAdded
from memory_bridge.domain.outcomes import Failure
from memory_bridge.domain.speakers import Speaker
from memory_bridge.ports import KeyedLogger, MetricsSink
from memory_bridge.speaking import Said, Speakers
from memory_bridge.webhook.answers import SPEAKER_METRICS
from memory_bridge.webhook.delivery import RESERVE_SECONDS, DeliveryRules, Prepared, Skipped, prepare

# The claim's share of the budget, kept for after the participants read (webhook/service.py).
CLAIM_TIMEOUT_SECONDS = 0.8
# The Conversations API's participants read waits at most this long (all pages together): with the
# claim's 0.8 s after it, the Memory calls keep at least 1.5 s of a 4 s budget.
PARTICIPANTS_TIMEOUT_SECONDS = 1.2


def identify_speaker(
    speakers: Speakers, metrics: MetricsSink, logger: KeyedLogger, message: MessageAdded, deadline: Deadline
) -> Speaker | Failure:
    """Who spoke, from the conversation's participants (cached); the failure when they could not
    be read in time, for the message to be parked (never posted to a guessed profile)."""
    reads = speakers.reads
    left = deadline.remaining() - RESERVE_SECONDS - CLAIM_TIMEOUT_SECONDS
    speaker = speakers.identify(
        Said.of(message), timeout=lambda: max(min(PARTICIPANTS_TIMEOUT_SECONDS, left), 0.05)
    )
    if speakers.reads > reads:
        metrics.add_metric("ParticipantsRead", "Count", speakers.reads - reads)
    if isinstance(speaker, Speaker):
        metrics.add_metric(SPEAKER_METRICS[speaker.kind], "Count", 1)
    else:
        metrics.add_metric("SpeakerUnresolved", "Count", 1)
        logger.warning(
            "participants not read; the message is parked for the replay to classify",
            extra={"status": speaker.status, "reason": speaker.message[:120]},
        )
    return speaker


def shape_of(
    message: MessageAdded, rules: DeliveryRules, speaker: Speaker | Failure, prepared: Prepared | Skipped
) -> Prepared | Skipped:
    """Where an edit's words go, and their source and moment, even when they now say nothing (all
    redacted, or emptied): prepared from a stand-in body. Skipped when no words of this speaker go
    anywhere."""
    if isinstance(prepared, Prepared):
        return prepared
    if prepared.reason not in ("empty", "sensitive"):
        return prepared
    return prepare(replace(message, body="-", attachments=()), rules, speaker)
