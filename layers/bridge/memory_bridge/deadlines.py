"""Wall-clock deadlines for outbound calls.

Socket timeouts bound each read, not the call: a peer that trickles its answer one byte at a time,
or a hung DNS-free connection that keeps sending keep-alives, outlasts any per-read timeout. Two
tools close that gap:

- `SocketWatchdog` shuts a socket down when its deadline passes, so a blocked read returns at once.
  The Memory client (urllib3) arms it around every request: the deadline is exact and the
  connection is not leaked.
- `call_within` runs a call on a worker thread and stops waiting when its deadline passes. The AWS
  clients (boto3) keep their sockets to themselves, so their calls are abandoned rather than cut;
  their own short timeouts end the abandoned call soon after.
"""

from __future__ import annotations

import contextlib
import contextvars
import heapq
import itertools
import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from typing import TypeVar

T = TypeVar("T")


class DeadlineExceeded(Exception):
    """The call did not finish before its wall-clock deadline."""


class SocketWatchdog:
    """One daemon thread that shuts down sockets whose deadline (time.monotonic) has passed."""

    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self._clock = clock
        self._heap: list[tuple[float, int]] = []
        self._armed: dict[int, socket.socket] = {}
        self._fired: set[int] = set()
        self._ids = itertools.count(1)
        self._wake = threading.Condition()
        self._thread: threading.Thread | None = None

    def arm(self, deadline: float, sock: socket.socket) -> int:
        token = next(self._ids)
        with self._wake:
            self._armed[token] = sock
            heapq.heappush(self._heap, (deadline, token))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="socket-watchdog", daemon=True)
                self._thread.start()
            if self._heap[0][1] == token:
                self._wake.notify()
        return token

    def disarm(self, token: int) -> bool:
        """Stop watching; True when the deadline had already fired for this token."""
        with self._wake:
            self._armed.pop(token, None)
            if token in self._fired:
                self._fired.discard(token)
                return True
            return False

    def _run(self) -> None:
        with self._wake:
            while True:
                while self._heap and self._heap[0][1] not in self._armed:
                    heapq.heappop(self._heap)  # disarmed before its deadline
                if not self._heap:
                    self._wake.wait()
                    continue
                deadline, token = self._heap[0]
                wait = deadline - self._clock()
                if wait > 0:
                    self._wake.wait(wait)
                    continue
                heapq.heappop(self._heap)
                sock = self._armed.pop(token)
                self._fired.add(token)
                with contextlib.suppress(OSError):  # already closed: nothing to cut
                    sock.shutdown(socket.SHUT_RDWR)


# One pool for the process: threads are made once, not per call. Four workers cover a webhook's
# sequential calls plus a few abandoned ones still finishing on their own short timeouts.
_workers = ThreadPoolExecutor(max_workers=4, thread_name_prefix="aws-call")


def call_within(seconds: float, call: Callable[[], T]) -> T:
    """Run `call`, raising DeadlineExceeded when it has not returned after `seconds`."""
    if seconds <= 0:
        raise DeadlineExceeded("no time left for the call")
    future = _workers.submit(call)
    try:
        return future.result(timeout=seconds)
    except FutureTimeout:
        if future.done():
            raise  # the call itself timed out (a socket timeout): its own error says more
        future.cancel()
        raise DeadlineExceeded(f"no answer within {seconds:.2f}s") from None


_watchdog = SocketWatchdog()


@dataclass
class RequestGuard:
    """The deadline of the request in progress on this thread, and the sockets armed for it.

    The Memory client's connections and the lean AWS client arm it around each request.
    """

    deadline: float
    tokens: list[int] = field(default_factory=list)
    sockets: set[int] = field(default_factory=set)

    def watch(self, sock: socket.socket | None) -> None:
        if sock is not None and id(sock) not in self.sockets:
            self.sockets.add(id(sock))
            self.tokens.append(_watchdog.arm(self.deadline, sock))

    def release(self) -> bool:
        """Disarm; True when the deadline cut a socket during the request."""
        fired = [_watchdog.disarm(token) for token in self.tokens]
        return any(fired)


active_guard: contextvars.ContextVar[RequestGuard | None] = contextvars.ContextVar(
    "memory_bridge_request_guard", default=None
)


class Deadline:
    """Seconds left of the webhook's budget, from an injectable monotonic clock."""

    def __init__(self, budget: float, clock: Callable[[], float] = time.monotonic):
        self._clock = clock
        self._ends = clock() + budget

    def remaining(self) -> float:
        return self._ends - self._clock()
