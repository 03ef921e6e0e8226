"""A urllib3 pool whose requests honour a wall-clock deadline, for memory_bridge.adapters.memory_api.

urllib3's timeouts bound each socket read, so a server that trickles its answer would outlast them:
each connection hands its socket to the request's guard (memory_bridge.deadlines.active_guard), whose
watchdog cuts it when the deadline passes.
"""

from __future__ import annotations

from typing import Any

import urllib3
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from memory_bridge.deadlines import active_guard


def _arm(sock: Any) -> None:
    """Hand the socket to the deadline of the request in progress, if there is one."""
    guard = active_guard.get()
    if guard is not None:
        guard.watch(sock)


class _GuardedHTTPConnection(HTTPConnection):
    # A fresh connection is armed once connected; a kept-alive one as the request starts.
    def connect(self) -> None:
        super().connect()
        _arm(self.sock)

    def request(self, *args: Any, **kwargs: Any) -> None:
        _arm(self.sock)
        super().request(*args, **kwargs)


class _GuardedHTTPSConnection(HTTPSConnection):
    def connect(self) -> None:
        super().connect()
        _arm(self.sock)

    def request(self, *args: Any, **kwargs: Any) -> None:
        _arm(self.sock)
        super().request(*args, **kwargs)


class _GuardedHTTPPool(HTTPConnectionPool):
    ConnectionCls = _GuardedHTTPConnection


class _GuardedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _GuardedHTTPSConnection


def guarded_pool_manager(maxsize: int = 1) -> urllib3.PoolManager:
    """A keep-alive pool whose requests honour a wall-clock deadline (see `MemoryApiClient._send`)."""
    manager = urllib3.PoolManager(num_pools=2, maxsize=maxsize, block=False, retries=False)
    manager.pool_classes_by_scheme = {"http": _GuardedHTTPPool, "https": _GuardedHTTPSPool}
    return manager
