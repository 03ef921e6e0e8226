"""From a Conversations history to what the webhook would have posted: one envelope per message, with
the customer's identifier, who spoke, and the parts 0..n-1, made by the webhook's own `prepare` (the
same speakers, labels, redaction and split). `occurredAt` is the message's date_created.

The feed is lazy: a conversation's messages are read page by page as the replay engine asks for more.
It keeps, per conversation it has started and not finished, which messages are still owed (`Tally`),
so that a checkpoint is written once everything up to an index is handled.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime

from memory_bridge.domain.envelope import Envelope, FailureRecord, new_envelope
from memory_bridge.domain.events import MessageAdded
from memory_bridge.domain.outcomes import Permanent, Retryable
from memory_bridge.speaking import Said, Speakers
from memory_bridge.webhook.preparing import DeliveryRules, Skipped, prepare
from memory_bridge_cli.backfill.checkpoints import Checkpoints
from memory_bridge_cli.backfill.history import ConversationRef, History, Selection, Unreadable, message_added

# The stand-in failure of an envelope that has not been tried yet (the engine reads envelopes only).
NOT_TRIED = FailureRecord("post_observations", None, None, "backfill: not posted yet")


@dataclass
class Tally:
    """One conversation in progress: the indexes seen, and those not handled yet."""

    ref: ConversationRef
    last_seen: int = -1
    unhandled: set[int] = field(default_factory=set)
    owed: int = 0  # messages handed to the engine and not yet settled
    read_all: bool = False
    failed: str | None = None

    def through(self) -> int:
        return (min(self.unhandled) - 1) if self.unhandled else self.last_seen

    @property
    def settled(self) -> bool:
        return self.read_all and self.owed == 0


@dataclass
class FeedCounts:
    conversations: int = 0
    conversations_done_before: int = 0  # closed and finished by an earlier run: not read
    conversations_finished: int = 0
    messages: int = 0
    before_checkpoint: int = 0  # handled by an earlier run (its checkpoint)
    outside_window: int = 0  # before --since or after --until
    skipped: Counter[str] = field(default_factory=Counter)  # by reason (as the webhook's)
    unreadable: int = 0
    customers: set[str] = field(default_factory=set)


class Feed:
    def __init__(
        self,
        history: History,
        selection: Selection,
        speakers: Speakers,
        rules: DeliveryRules,
        checkpoints: Checkpoints | None,
        now: Callable[[], datetime],
    ):
        self.history, self.selection, self.speakers = history, selection, speakers
        self.rules, self.checkpoints, self.now = rules, checkpoints, now
        self.counts = FeedCounts()
        self.tallies: dict[str, Tally] = {}
        self.left: list[dict[str, str]] = []  # conversations left for the next run, and why
        self.listing_failed: str | None = None
        self.exhausted = False
        self.writes_checkpoints = checkpoints is not None  # off in a dry run: it changes nothing
        self.current_date: datetime | None = None  # the conversation being read was created then

    def envelopes(self) -> Iterator[tuple[Envelope, int]]:
        """(envelope, index) for each message to post, conversation after conversation."""
        try:
            for ref in self.history.conversations(self.selection):
                yield from self._conversation(ref)
        except Unreadable as error:
            self.listing_failed = str(error)
        self.exhausted = True

    def _conversation(self, ref: ConversationRef) -> Iterator[tuple[Envelope, int]]:
        self.counts.conversations += 1
        self.current_date = ref.date_created
        checkpoint = self.checkpoints.get(ref.sid) if self.checkpoints else None
        if checkpoint is not None and checkpoint.done:
            self.counts.conversations_done_before += 1
            return
        through = checkpoint.through if checkpoint and checkpoint.through is not None else -1
        tally = self.tallies[ref.sid] = Tally(ref)
        try:
            for item in self.history.messages(ref):
                message = message_added(item, ref)
                if message is None or message.index is None:
                    self.counts.unreadable += 1
                    continue
                index = message.index
                self.counts.messages += 1
                tally.last_seen = index
                if index <= through:
                    self.counts.before_checkpoint += 1
                    continue
                if not self.selection.covers(message.date_created):
                    self.counts.outside_window += 1
                    tally.unhandled.add(index)
                    continue
                envelope = self._envelope(message, ref)
                if envelope is None:
                    continue
                tally.unhandled.add(index)
                tally.owed += 1
                yield envelope, index
        except Unreadable as error:
            self.leave(tally, str(error))
        tally.read_all = True
        self.settle_if_done(tally)

    def _envelope(self, message: MessageAdded, ref: ConversationRef) -> Envelope | None:
        speaker = self.speakers.identify(Said.of(message), timeout=lambda: 15.0)
        if isinstance(speaker, Retryable | Permanent):
            raise Unreadable(f"participants of {ref.sid}", speaker)
        prepared = prepare(message, self.rules, speaker)
        if isinstance(prepared, Skipped):
            self.counts.skipped[prepared.reason] += 1
            return None
        assert prepared.who is not None
        self.counts.customers.add(f"{prepared.who.id_type}:{prepared.who.value}")
        parts = range(len(prepared.observations))
        return new_envelope(
            kind="retryable",
            store_id=self.rules.store_id,
            message_sid=message.message_sid,
            conversation_sid=message.conversation_sid,
            observations=prepared.observations,
            failure=NOT_TRIED,
            profile_id=None,
            identifier=prepared.who,
            trait_group=self.rules.trait_group,
            now=self.now(),
            parts=parts,
            speaker=prepared.speaker,
        )

    def leave(self, tally: Tally, reason: str) -> None:
        tally.failed = tally.failed or reason
        self.left.append({"conversationSid": tally.ref.sid, "reason": reason})

    def handled(self, conversation_sid: str, index: int) -> None:
        tally = self.tallies.get(conversation_sid)
        if tally is None:
            return
        tally.unhandled.discard(index)
        tally.owed -= 1
        self.settle_if_done(tally)

    def settle_if_done(self, tally: Tally) -> None:
        if not tally.settled:
            return
        del self.tallies[tally.ref.sid]
        if tally.failed is None:
            self.counts.conversations_finished += 1
        self.write_checkpoint(tally)

    def write_checkpoint(self, tally: Tally) -> None:
        if self.checkpoints is None or not self.writes_checkpoints or tally.through() < 0:
            return
        done = tally.ref.state == "closed" and not tally.unhandled and tally.failed is None and tally.read_all
        self.checkpoints.put(tally.ref.sid, tally.through(), done)

    def close(self) -> None:
        """The end of a run: what it started and did not finish keeps its progress so far."""
        for tally in list(self.tallies.values()):
            self.write_checkpoint(tally)
