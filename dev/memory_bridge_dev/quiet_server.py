"""The dev servers' HTTP server: a client that goes away mid-answer is normal here, not an error.

The webhook gives up on a slow sandbox at its deadline; the sandbox then writes its late answer to a
closed socket. socketserver would print that BrokenPipeError's traceback into the `make run` terminal.
"""

from __future__ import annotations

import sys
from http.server import ThreadingHTTPServer
from typing import Any


class QuietHTTPServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], OSError):  # a client that went away: nothing to report
            return
        super().handle_error(request, client_address)
