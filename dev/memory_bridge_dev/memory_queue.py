"""An in-process queue with SQS's receive/visibility semantics, for the replay bench at scale (dev-only).

moto's ReceiveMessage scans every message in the queue (about 16 µs each here, even with
moto_speedups): at 100,000 messages one receive takes over a second, and the bench would measure
moto. This keeps visible messages in arrival order and in-flight ones in a heap by the time they
reappear, so a receive costs what it returns. It implements memory_bridge.ports.ReplayQueue, so
the engine under test is the same; Memory (the sandbox over HTTP) and the ledger (moto's DynamoDB)
stay real.
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections import OrderedDict
from collections.abc import Callable

from memory_bridge.domain.envelope import Envelope
from memory_bridge.ports import QueuedMessage


class InProcessQueue:
    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self._clock = clock
        self._bodies: dict[str, str] = {}
        self._visible: OrderedDict[str, None] = OrderedDict()
        self._in_flight: list[tuple[float, str, str]] = []  # (visible again at, id, receipt)
        self._receipts: dict[str, str] = {}
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self.calls = {"receive": 0, "delete": 0, "release": 0, "send": 0}

    def send(self, body: str) -> str:
        with self._lock:
            message_id = f"q-{next(self._ids)}"
            self._bodies[message_id] = body
            self._visible[message_id] = None
            self.calls["send"] += 1
            return message_id

    def park(self, envelope: Envelope, timeout: float | None = None) -> str:  # noqa: ARG002
        return self.send(envelope.to_json())

    def _expire(self, now: float) -> None:
        while self._in_flight and self._in_flight[0][0] <= now:
            _, message_id, receipt = heapq.heappop(self._in_flight)
            if self._receipts.get(message_id) == receipt:
                del self._receipts[message_id]
                self._visible[message_id] = None

    def receive(
        self,
        max_messages: int,
        visibility_timeout: int,
        wait_seconds: int = 0,  # noqa: ARG002 - nothing to wait for in-process
    ) -> list[QueuedMessage]:
        with self._lock:
            self.calls["receive"] += 1
            now = self._clock()
            self._expire(now)
            out: list[QueuedMessage] = []
            while self._visible and len(out) < max_messages:
                message_id, _ = self._visible.popitem(last=False)
                receipt = f"{message_id}@{next(self._ids)}"
                self._receipts[message_id] = receipt
                heapq.heappush(self._in_flight, (now + visibility_timeout, message_id, receipt))
                out.append(QueuedMessage(message_id, receipt, self._bodies[message_id], 0.0, 1, {}))
            return out

    def delete(self, messages: list[QueuedMessage]) -> None:
        with self._lock:
            self.calls["delete"] += 1
            for message in messages:
                if self._receipts.get(message.message_id) == message.receipt_handle:
                    del self._receipts[message.message_id]
                    del self._bodies[message.message_id]

    def release(self, messages: list[QueuedMessage]) -> None:
        with self._lock:
            self.calls["release"] += 1
            for message in messages:
                if self._receipts.get(message.message_id) == message.receipt_handle:
                    del self._receipts[message.message_id]
                    self._visible[message.message_id] = None

    def replace(self, old: QueuedMessage, envelope: Envelope) -> None:
        self.park(envelope)
        self.delete([old])

    def visible_count(self) -> int:
        with self._lock:
            self._expire(self._clock())
            return len(self._visible)

    def __len__(self) -> int:
        return len(self._bodies)
