"""The dev servers' HTTP server: a client that goes away mid-answer is normal here, not an error.

The webhook gives up on a slow sandbox at its deadline; the sandbox then writes its late answer to a
closed socket. socketserver would print that BrokenPipeError's traceback into the `make run` terminal.
"""

from __future__ import annotations

import contextlib
import socket
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

HANG_CAP_SECONDS = 120.0  # a hung request is let go after this long even if nobody clears it


class QuietHTTPServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], OSError):  # a client that went away: nothing to report
            return
        super().handle_error(request, client_address)


class FaultingHandler(BaseHTTPRequestHandler):
    """The sandboxes' handlers: the two faults that are no answer at all."""

    def _drop(self) -> None:
        # Close without an answer: the client sees a dropped connection.
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    def _hang(self, fault: Any, release: threading.Event) -> None:
        # No answer; the connection stays open until released (or the cap), then it is closed.
        release.wait(min(fault.hang_seconds, HANG_CAP_SECONDS))
        self._drop()
