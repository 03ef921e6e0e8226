"""Who spoke, for both flows: the conversation's participants (cached per container), then the rules
of memory_bridge.domain.speakers.

Participants are read from the Conversations API once per conversation and kept for a TTL, so a
webhook whose conversation is cached makes no call. A ParticipantSid the cached list lacks (someone
joined since) reads the list again, once. Learning participants from onParticipantAdded webhooks was
the other way: it was not chosen, since Lambda containers share no memory (each would learn alone,
or need a table), and participants who joined before the deploy would never be known.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

from memory_bridge.domain.events import MessageAdded
from memory_bridge.domain.identifiers import SYSTEM_AUTHOR
from memory_bridge.domain.outcomes import Failure
from memory_bridge.domain.speakers import AgentMessages, AgentRules, Roster, Speaker, classify
from memory_bridge.ports import ParticipantDirectory

MAX_CLASSIFIED_CONVERSATIONS = 5_000
MAX_CLASSIFIED_PER_CONVERSATION = 64


class RosterCache:
    """conversation SID → its participants, per container, each for `ttl` seconds; bounded in size."""

    def __init__(self, ttl: float, max_entries: int = 5_000, clock: Callable[[], float] = time.monotonic):
        self._ttl = ttl
        self._max = max_entries
        self._clock = clock
        self._entries: OrderedDict[str, tuple[Roster, float]] = OrderedDict()
        self._gone: OrderedDict[tuple[str, str], float] = OrderedDict()  # (conversation, participant)

    def get(self, conversation_sid: str) -> Roster | None:
        entry = self._entries.get(conversation_sid)
        if entry is None:
            return None
        roster, expires = entry
        if self._clock() >= expires:
            del self._entries[conversation_sid]
            return None
        self._entries.move_to_end(conversation_sid)
        return roster

    def gone(self, conversation_sid: str, participant_sid: str) -> bool:
        """A fresh read lacked this participant within the TTL: they left the conversation."""
        expires = self._gone.get((conversation_sid, participant_sid))
        return expires is not None and self._clock() < expires

    def note_gone(self, conversation_sid: str, participant_sid: str) -> None:
        if self._ttl <= 0:
            return
        self._gone[(conversation_sid, participant_sid)] = self._clock() + self._ttl
        while len(self._gone) > self._max:
            self._gone.popitem(last=False)

    def put(self, conversation_sid: str, roster: Roster) -> None:
        if self._ttl <= 0:
            return
        self._entries[conversation_sid] = (roster, self._clock() + self._ttl)
        self._entries.move_to_end(conversation_sid)
        while len(self._entries) > self._max:
            self._entries.popitem(last=False)


@dataclass(frozen=True)
class SpeakerRules:
    agents: AgentRules
    agent_messages: AgentMessages
    chat_id_type: str


@dataclass(frozen=True)
class Said:
    """Who said one message, as far as the message itself tells."""

    conversation_sid: str
    author: str | None
    participant_sid: str | None
    client_identity: str | None = None
    service_sid: str | None = None

    @classmethod
    def of(cls, message: MessageAdded) -> Said:
        return cls(
            message.conversation_sid,
            message.author,
            message.participant_sid,
            message.client_identity,
            message.chat_service_sid,
        )


@dataclass
class Speakers:
    """The participants' port and the container's cache; `reads` counts the calls made."""

    directory: ParticipantDirectory
    cache: RosterCache
    rules: SpeakerRules
    reads: int = 0
    # The speakers classified in each conversation's current list: a conversation's messages come from
    # a few participants, so the rules run once per (participant, author) and list (bounded).
    _classified: OrderedDict[str, tuple[Roster, dict[tuple[str | None, ...], Speaker]]] = field(
        default_factory=OrderedDict
    )

    def identify(self, said: Said, timeout: Callable[[], float | None]) -> Speaker | Failure:
        """The speaker; the failure when the participants could not be read (never a guess)."""
        author = (said.author or "").strip()
        if self.rules.agent_messages == "skip" and (not author or author.lower() == SYSTEM_AUTHOR):
            return Speaker("brand", said.participant_sid, ())  # goes nowhere: no need to ask who else
        roster = self.cache.get(said.conversation_sid)
        sid = said.participant_sid
        # A ParticipantSid the cached list lacks: someone joined since, so read again, once. One that a
        # fresh read also lacked has left (a SID is never reused): no read for it again.
        if roster is None or (
            sid and roster.by_sid(sid) is None and not self.cache.gone(said.conversation_sid, sid)
        ):
            read = self._read(said, timeout)
            if not isinstance(read, Roster):
                return read
            roster = read
            if sid and roster.by_sid(sid) is None:
                self.cache.note_gone(said.conversation_sid, sid)
        return self._classify(said, roster)

    def _classify(self, said: Said, roster: Roster) -> Speaker:
        held = self._classified.get(said.conversation_sid)
        if held is None or held[0] is not roster:  # a new list: what was classified on the old one goes
            held = self._classified[said.conversation_sid] = (roster, {})
            while len(self._classified) > MAX_CLASSIFIED_CONVERSATIONS:
                self._classified.popitem(last=False)
        key = (said.participant_sid, said.author, said.client_identity)
        speaker = held[1].get(key)
        if speaker is None:
            speaker = classify(
                roster,
                author=said.author,
                participant_sid=said.participant_sid,
                client_identity=said.client_identity,
                rules=self.rules.agents,
                chat_id_type=self.rules.chat_id_type,
            )
            if len(held[1]) < MAX_CLASSIFIED_PER_CONVERSATION:
                held[1][key] = speaker
        return speaker

    def _read(self, said: Said, timeout: Callable[[], float | None]) -> Roster | Failure:
        self.reads += 1
        read = self.directory.participants(
            said.conversation_sid, timeout=timeout(), service_sid=said.service_sid
        )
        if isinstance(read, Roster):
            self.cache.put(said.conversation_sid, read)
        return read
