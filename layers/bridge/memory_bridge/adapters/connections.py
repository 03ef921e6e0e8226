"""Kept-alive connections for the lean AWS client (memory_bridge.adapters.aws_json)."""

from __future__ import annotations

import http.client
import select
import ssl
import threading
from urllib.parse import urlsplit


class Connections:
    """Kept-alive http.client connections to one endpoint, one per caller at a time (two kept).

    http.client rather than urllib3: per call it costs about half the CPU (no pool manager, header
    dict, retry or response wrapper objects), which counts at 0.145 of a vCPU."""

    def __init__(self, endpoint_url: str, connect_timeout: float, keep: int = 2):
        parts = urlsplit(endpoint_url)
        self.https = parts.scheme == "https"
        self.host = parts.hostname or ""
        self.port = parts.port or (443 if self.https else 80)
        self.connect_timeout = connect_timeout
        self._keep = keep
        self._idle: list[http.client.HTTPConnection] = []
        self._lock = threading.Lock()
        self._tls = ssl.create_default_context() if self.https else None

    def get(self) -> http.client.HTTPConnection:
        with self._lock:
            while self._idle:
                connection = self._idle.pop()
                if not _dropped(connection):
                    return connection
                connection.close()
        if self._tls is not None:
            return http.client.HTTPSConnection(
                self.host, self.port, timeout=self.connect_timeout, context=self._tls
            )
        return http.client.HTTPConnection(self.host, self.port, timeout=self.connect_timeout)

    def put(self, connection: http.client.HTTPConnection) -> None:
        with self._lock:
            if len(self._idle) < self._keep:
                self._idle.append(connection)
                return
        connection.close()

    def clear(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for connection in idle:
            connection.close()

    def __len__(self) -> int:
        return len(self._idle)


def _dropped(connection: http.client.HTTPConnection) -> bool:
    """An idle kept-alive connection the server closed (or that has unread data) is not reused."""
    sock = connection.sock
    if sock is None:
        return False
    try:
        readable, _, _ = select.select([sock], [], [], 0)
    except (OSError, ValueError):
        return True
    return bool(readable)
