"""The replay engine's queue port over a Conversations history (the backfill's one adapter to it).

`memory-bridge backfill` hands the history to the same engine that replays the dead-letter queue, so
that grouping per customer, pacing, Retry-After, the ledger's claims and settles, checks in Memory
for parts in doubt, and crash safety are the replay's, already tested:

  receive(n)     the next envelopes, in conversation order, read as they are asked for
  delete(ms)     Memory holds them (or the ledger says it did already): handled
  release(ms)    again later in this run (the engine let them go whole)
  replace(m, e)  it failed: `e` is parked on the real dead-letter queue, as the webhook parks it
                 (a retryable or permanent envelope with the failure, attempts 1), and it is handled
  visible_count  what is ready to hand out now

The run holds only the envelopes handed out and not yet settled (the engine's slice) and the page
being read, so memory stays flat however long the history.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterator
from dataclasses import replace

from memory_bridge.domain.envelope import Envelope
from memory_bridge.ports import DeadLetterSink, QueuedMessage
from memory_bridge_cli.backfill.feed import NOT_TRIED, Feed


class HistoryQueue:
    def __init__(self, feed: Feed, dead_letters: DeadLetterSink | None):
        self.feed, self.dead_letters = feed, dead_letters
        self._source: Iterator[tuple[Envelope, int]] = feed.envelopes()
        self._ready: deque[QueuedMessage] = deque()
        self._where: dict[str, tuple[str, int]] = {}  # message id → (conversation, index)
        self.parked = 0

    def receive(
        self,
        max_messages: int,
        visibility_timeout: int,  # noqa: ARG002 - nothing else reads this stream
        wait_seconds: int = 0,  # noqa: ARG002
    ) -> list[QueuedMessage]:
        batch: list[QueuedMessage] = []
        while len(batch) < max_messages and self._ready:
            batch.append(self._ready.popleft())
        while len(batch) < max_messages:
            following = next(self._source, None)
            if following is None:
                break
            envelope, index = following
            message_id = envelope.message_sid
            self._where[message_id] = (envelope.conversation_sid, index)
            batch.append(QueuedMessage(message_id, message_id, envelope.to_json(), time.time(), 1, {}))
        return batch

    def delete(self, messages: list[QueuedMessage]) -> None:
        for message in messages:
            self._handled(message)

    def release(self, messages: list[QueuedMessage]) -> None:
        self._ready.extend(m for m in messages if m.message_id in self._where)

    def replace(self, old: QueuedMessage, envelope: Envelope) -> None:
        """Parked as the webhook parks: its first failure, not a replay's second (QueueUnavailable
        propagates: the engine then holds the message, and it is left for the next run)."""
        if envelope.failure == NOT_TRIED:
            # Not a failure: the engine leaves the rest of a message it will not finish (part posted,
            # or its profile resolved). It stays unhandled: the next run reads it again, and the
            # ledger says which parts Memory holds.
            self._where.pop(old.message_id, None)
            return
        if self.dead_letters is None:
            raise AssertionError("a dry run parks nothing")
        parked = replace(envelope, attempts=1, history=(), first_failed_at=envelope.last_failed_at)
        self.dead_letters.park(parked, timeout=10.0)
        self.parked += 1
        self._handled(old)

    def visible_count(self) -> int:
        return len(self._ready)

    def _handled(self, message: QueuedMessage) -> None:
        where = self._where.pop(message.message_id, None)
        if where is not None:
            self.feed.handled(*where)
