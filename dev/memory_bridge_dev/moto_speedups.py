"""Make moto's server usable at volume (dev-only; never deployed).

moto's SQS recomputes every message's visibility, through a slow datetime-based clock, many times per
ReceiveMessage: with 2,000 messages a single receive takes about 0.65 s (moto notes "This can become
very inefficient if a large number of messages are in-flight"). The same clock, read from time.time(),
gives the same answers about 20 times faster. Applied to the in-process moto servers of the tests and
the local stack; it changes moto's speed, not what the bridge sends or receives.

The clock also takes an offset, for tests that need time to pass without waiting: `advance(900)`
moves moto's SQS clock (and only it) 900 s ahead, so messages received with a 900 s visibility
timeout are visible again at once; `reset()` puts it back to the real time. Every SQS clock read
goes through `now()`: moto's `unix_time`/`unix_time_millis` in its SQS models (sent and first
receive timestamps, `Message.change_visibility` and so `mark_received`, delays, `visible`/`delayed`,
long polling, retention, ChangeMessageVisibility) and the queue scans patched below. The offset is
process-wide: it moves every queue of the in-process server. Moving it back (`reset()`) leaves the
messages received meanwhile invisible for the time it was ahead; tests use a queue of their own.

One fix of faithfulness, not speed: DynamoDB applies each conditional write to an item atomically,
moto's threaded server does not (two concurrent `UpdateItem ... attribute_not_exists(id)` both
succeeded in 2-3 of 100 tries). The delivery ledger rests on that atomicity, so its writes are
serialized here, as AWS serializes them per item.
"""

from __future__ import annotations

import datetime
import threading
import time
from typing import Any

_EPOCH = datetime.datetime(1970, 1, 1)
# Seconds moto's SQS clock runs ahead of time.time(); see advance().
_offset = 0.0


def now() -> float:
    """moto's SQS clock: epoch seconds, `offset()` ahead of the real time."""
    return time.time() + _offset


def offset() -> float:
    return _offset


def advance(seconds: float) -> None:
    """Move moto's SQS clock `seconds` ahead (in this process), e.g. past a visibility timeout."""
    global _offset
    if seconds < 0:
        raise ValueError("moto's SQS clock only moves forward; reset() puts it back")
    _offset += seconds


def reset() -> None:
    """Back to the real time."""
    global _offset
    _offset = 0.0


def _unix_time(dt: datetime.datetime | None = None) -> float:
    return now() if dt is None else (dt - _EPOCH).total_seconds()


def _unix_time_millis(dt: datetime.datetime | None = None) -> float:
    return _unix_time(dt) * 1000.0


# DynamoDB's writes, one at a time (see the module's docstring).
_DYNAMODB_WRITES = ("put_item", "update_item", "delete_item", "transact_write_items", "batch_write_item")
_dynamodb_lock = threading.RLock()


def _serialize_dynamodb_writes() -> None:
    from moto.dynamodb.responses import DynamoHandler

    for name in _DYNAMODB_WRITES:
        original = getattr(DynamoHandler, name)
        if getattr(original, "_serialized", False):
            continue  # apply() ran before

        def locked(self: Any, *args: Any, _original: Any = original, **kwargs: Any) -> Any:
            with _dynamodb_lock:
                return _original(self, *args, **kwargs)

        locked._serialized = True  # type: ignore[attr-defined]
        setattr(DynamoHandler, name, locked)


def apply() -> None:
    _serialize_dynamodb_writes()
    from moto.sqs import models
    from moto.sqs.exceptions import ReceiptHandleIsInvalid

    models.unix_time = _unix_time  # type: ignore[attr-defined]
    models.unix_time_millis = _unix_time_millis  # type: ignore[attr-defined]
    queue: Any = models.Queue

    # The same filters as moto's, reading the clock once per scan instead of twice per message.
    def messages(self: Any) -> list[Any]:
        millis = now() * 1000
        return [m for m in self._messages if millis > m.visible_at and not millis < m.delayed_until]

    def delayed(self: Any) -> int:
        millis = now() * 1000
        return sum(1 for m in self._messages if millis < m.delayed_until)

    def not_visible(self: Any) -> int:
        millis = now() * 1000
        return sum(1 for m in self._messages if not millis > m.visible_at)

    # werkzeug answers HTTP/1.0 by default, so every boto3 call opened a new TCP connection;
    # AWS keeps connections alive, and so does this.
    from werkzeug.serving import WSGIRequestHandler

    WSGIRequestHandler.protocol_version = "HTTP/1.1"

    # moto's delete walks every message twice and rebuilds the list; one walk that stops at the
    # message holding the receipt handle does the same.
    def delete_message(self: Any, receipt_handle: str) -> None:
        if receipt_handle in self.deleted_messages:
            return  # already deleted: SQS accepts that
        for index, message in enumerate(self._messages):
            if message.had_receipt_handle(receipt_handle):
                self.pending_messages.discard(message)
                self.deleted_messages.update(message.all_receipt_handles)
                del self._messages[index]
                return
        raise ReceiptHandleIsInvalid()

    queue.delete_message = delete_message
    queue.messages = property(messages)
    queue.approximate_number_of_messages_delayed = property(delayed)
    queue.approximate_number_of_messages_not_visible = property(not_visible)
