"""Who spoke, for envelopes parked before it was known: classified at replay as the webhook would have.

Two kinds need it:
  - parked with stage resolve_speaker: the participants could not be read when the webhook ran; the
    envelope keeps what the message said (author, ParticipantSid, ClientIdentity), and its
    observations were built with room for a label;
  - parked by a release before speakers (envelope version 1): the author is read back from the
    identifier the bridge made of it.
Each is classified from the conversation's participants (cached per run), then labelled and aimed
at the customer's profile (memory_bridge.domain.attribution), deleted when its words go nowhere, or
put back when the participants cannot be read (never posted to a guessed profile).
"""

from __future__ import annotations

from dataclasses import replace

from memory_bridge.domain.attribution import Nowhere, Target, relabelled, target_for
from memory_bridge.domain.envelope import Envelope, SpeakerRecord
from memory_bridge.domain.outcomes import Failure, Permanent
from memory_bridge.domain.speakers import Speaker, author_of
from memory_bridge.replay.books import Books
from memory_bridge.replay.context import RunContext
from memory_bridge.replay.pending import Pending
from memory_bridge.speaking import Said, Speakers

# A replay is not in a hurry: the participants read gets what a Memory call gets, within the time left.
CALL_TIMEOUT_SECONDS = 10.0


class Classifier:
    def __init__(self, run: RunContext, speakers: Speakers | None, books: Books, source: str):
        self.run, self.speakers, self.books, self.source = run, speakers, books, source

    def classify_all(self, items: list[Pending]) -> list[Pending]:
        """The items to go on resolving and posting; the others are deleted (their words go nowhere)
        or put back (the participants could not be read)."""
        keep: list[Pending] = []
        nowhere: list[Pending] = []
        for item in items:
            if not item.envelope.speaker_unknown:
                keep.append(item)
                continue
            if self.run.stopped:
                self.books.leave([item])
                continue
            found = self.classify(item.envelope)
            if isinstance(found, Nowhere):
                nowhere.append(item)
            elif isinstance(found, Target | Envelope):
                self.aim(item, found)
                keep.append(item)
            else:
                self.books.put_back(item, "resolve_speaker", found)
                self.run.failed_once()
        self.books.delete(nowhere, skipped=True)
        return keep

    def classify(self, envelope: Envelope) -> Target | Nowhere | Envelope | Failure:
        """Where the envelope's words go; the envelope itself when it stays as parked (a version 1
        envelope whose conversation is gone: posted as the release that parked it would have)."""
        if self.speakers is None:
            if envelope.speaker is None:
                return envelope  # no Conversations API here (unit tests of older envelopes)
            return Permanent(status=0, message="no Conversations API configured to classify the speaker")
        said = _said(envelope)
        if said is None:
            return envelope
        self.run.pacer.wait()
        speaker = self.speakers.identify(
            said, timeout=lambda: max(min(CALL_TIMEOUT_SECONDS, self.run.time_left()), 0.05)
        )
        if isinstance(speaker, Speaker):
            self.run.succeeded()
            return target_for(speaker, mode=self.speakers.rules.agent_messages, source=self.source)
        if envelope.speaker is None and isinstance(speaker, Permanent) and speaker.status == 404:
            # The conversation is gone (or in a service a version-1 envelope did not record): posted
            # as the release that parked it would have, unless today's agent rules name its author,
            # whose words then have no customer to go on.
            if self.speakers.rules.agents.match(None, said.author or ""):
                return Nowhere("no customer")
            return envelope
        return speaker

    def aim(self, item: Pending, found: Target | Envelope) -> None:
        envelope = item.envelope
        if isinstance(found, Envelope):
            item.envelope = replace(envelope, speaker=SpeakerRecord("customer"))
            return
        said = envelope.speaker or SpeakerRecord(None)
        if found.identifier != envelope.identifier:
            item.profile_id = None  # resolved for another author (a release before speakers)
        item.envelope = replace(
            envelope,
            observations=relabelled(envelope.observations, found) if found.label else envelope.observations,
            identifier=found.identifier,
            profile_id=item.profile_id,
            speaker=replace(said, kind=found.kind),
        )


def _said(envelope: Envelope) -> Said | None:
    if envelope.speaker is not None:
        speaker = envelope.speaker
        return Said(
            envelope.conversation_sid,
            speaker.author,
            speaker.participant_sid,
            speaker.client_identity,
            speaker.service_sid,
        )
    if envelope.identifier is None:
        return None
    return Said(envelope.conversation_sid, author_of(envelope.identifier), None)
