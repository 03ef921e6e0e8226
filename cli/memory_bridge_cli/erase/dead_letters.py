"""`memory-bridge erase`'s dead-letter queue step: the customer's parked envelopes deleted, the
others released promptly."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from memory_bridge.domain.envelope import MalformedEnvelope, parse_envelope
from memory_bridge.domain.identifiers import Identifier
from memory_bridge.ports import QueuedMessage, QueueUnavailable
from memory_bridge_cli.erase.plan import (
    envelope_is_theirs,
)

if TYPE_CHECKING:
    pass

TRIES = 4
MAX_WAIT_SECONDS = 30.0
CALL_TIMEOUT_SECONDS = 15.0
MAX_OBSERVATION_PAGES = 200  # 50 each: far past Memory's 500 a profile
PAGE_SIZE = 50


# ---- the dead-letter queue --------------------------------------------------------------------


@dataclass
class Purge:
    read: int = 0
    deleted: list[dict[str, str]] = field(default_factory=list)  # {messageId, messageSid}
    malformed: int = 0
    failed: int = 0  # theirs, but SQS refused the delete
    complete: bool = True
    in_flight_at_start: int = 0
    stopped: str = ""


class PurgingQueue:
    """The queue as queue_scan reads it, with the customer's envelopes deleted as they are read; what
    it deleted is left out of the release at the end (their receipt handles are gone)."""

    def __init__(self, queue: Any):
        self.queue = queue
        self.deleted: set[str] = set()

    def receive(
        self, max_messages: int, visibility_timeout: int, wait_seconds: int = 0
    ) -> list[QueuedMessage]:
        received: list[QueuedMessage] = self.queue.receive(max_messages, visibility_timeout, wait_seconds)
        return received

    def release(self, messages: list[QueuedMessage]) -> None:
        self.queue.release([m for m in messages if m.message_id not in self.deleted])

    def depth(self) -> Any:
        return self.queue.depth()


def purge_dead_letters(
    queue: Any, subject: Sequence[Identifier], profile_ids: set[str], sids: set[str], dry_run: bool
) -> Purge:
    from memory_bridge_cli import queue_scan

    purge = Purge()
    purging = PurgingQueue(queue)

    def on_message(message: QueuedMessage) -> None:
        purge.read += 1
        try:
            envelope = parse_envelope(message.body)
        except MalformedEnvelope:
            purge.malformed += 1
            return
        if not envelope_is_theirs(envelope, subject, profile_ids, sids):
            return
        if not dry_run:
            try:
                queue.delete([message])
            except QueueUnavailable:
                purge.failed += 1
                return
            purging.deleted.add(message.message_id)
        purge.deleted.append({"messageId": message.message_id, "messageSid": envelope.message_sid})

    # Held only while the scan runs (it must tell a new message from one it read), released at its
    # end: a replay running meanwhile waits that long at most for the others' envelopes.
    hold = queue_scan.HoldPolicy(floor=10, ceiling=queue_scan.MAX_HOLD, safety=2.0, margin=10)
    report = queue_scan.scan(purging, on_message, limit=None, hold=hold, clock=time.monotonic)
    purge.complete = report.complete
    purge.in_flight_at_start = report.depth.in_flight
    purge.stopped = report.stopped
    return purge
