"""A fault-injecting HTTP/1.1 forwarding proxy on loopback, to put between boto3 and moto's server
so that a test can make ONE AWS service misbehave (dev-only, stdlib only).

boto3 honours per-service endpoint variables, so a test points one service at the proxy and leaves
the others on moto::

    proxy = FaultProxy(upstream=moto_endpoint)
    monkeypatch.setenv("AWS_ENDPOINT_URL_SQS", proxy.serve())
    proxy.set_fault("forward_then_drop", times=1, operation="SendMessage")

Without a fault every request is forwarded as it came (method, path, query, headers - Host and the
signature included - and body) and the answer relayed, on keep-alive connections. The modes:

  hang               read the request, never answer; hold the connection until `clear()`,
                     `set_fault()`, `close()` or `hang_seconds` (capped at 120 s), then close it
  trickle            forward, then send the upstream answer one byte per `delay` seconds (`clear()`
                     lets the rest out at once)
  refuse             close the connection (FIN) at once, before reading the request
  reset              close the connection with a TCP reset (SO_LINGER 0), before reading it
  status             answer `status` with an AWS-style error body, without forwarding
  forward_then_drop  forward (so the call takes effect), then close without answering

`operation` limits a fault to one AWS operation (X-Amz-Target, or Action= for query-protocol
services); `refuse` and `reset` with an operation have to read the request first to know it.
The proxy does not support pipelined requests (no AWS SDK pipelines).
"""

from __future__ import annotations

import contextlib
import http.client
import json
import socket
import struct
import threading
import time
import uuid
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from memory_bridge_dev.quiet_server import QuietHTTPServer
from memory_bridge_dev.sandbox import BodyError, body_length, read_body

MODES = ("hang", "trickle", "refuse", "reset", "status", "forward_then_drop")
HANG_CAP_SECONDS = 120.0
MAX_BODY_BYTES = 64 * 1024 * 1024
HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
}
NOT_FORWARDED = {"content-length", "expect"}  # the length is set anew; 100-continue is answered here
DEFAULT_ERROR_CODES = {429: "ThrottlingException", 503: "ServiceUnavailable"}


@dataclass
class ProxyFault:
    """The fault in force; `times` None means until cleared."""

    mode: str
    times: int | None = None
    delay: float = 0.1
    status: int = 500
    error_code: str = "InternalFailure"
    operation: str | None = None
    hang_seconds: float = HANG_CAP_SECONDS


@dataclass
class ProxiedRequest:
    """One request the proxy saw. Refused or reset before being read: method, path and operation
    are empty."""

    method: str
    path: str
    operation: str
    fault: str | None = None
    upstream_status: int | None = None


def aws_operation(headers: Any, path: str, body: bytes) -> str:
    """The AWS operation a request calls: X-Amz-Target's last part (JSON protocols), else the
    Action parameter (query protocol), else ""."""
    target = headers.get("X-Amz-Target")
    if target:
        return str(target).rsplit(".", 1)[-1]
    action = parse_qs(urlsplit(path).query).get("Action")
    if action:
        return action[0]
    if (headers.get("Content-Type") or "").startswith("application/x-www-form-urlencoded"):
        action = parse_qs(body.decode("latin-1")).get("Action")
        if action:
            return action[0]
    return ""


class FaultProxy:
    """`serve()` starts it and returns its base URL; `close()` stops it and lets go of everything
    it holds. Counters: `connections` accepted, requests `seen`, `forwarded` upstream, `answered`
    (an answer fully written to the client), `faulted`; `hanging` is how many it holds right now;
    `requests` lists what it saw."""

    def __init__(
        self,
        upstream: str,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        upstream_timeout: float = 60.0,
    ):
        url = urlsplit(upstream)
        if url.scheme != "http" or not url.hostname:
            raise ValueError(f"upstream must be an http:// URL, not {upstream!r}")
        self.upstream = upstream
        self.upstream_host = url.hostname
        self.upstream_port = url.port or 80
        self.upstream_prefix = url.path.rstrip("/")
        self.upstream_timeout = upstream_timeout
        self.host, self.port = host, port
        self.base_url = ""
        self.connections = self.seen = self.forwarded = self.answered = self.faulted = 0
        self.hanging = 0
        self.requests: list[ProxiedRequest] = []
        self._lock = threading.Lock()
        self._fault: ProxyFault | None = None
        self._release = threading.Event()  # set (and replaced) when the fault is cleared or changed
        self._closing = threading.Event()
        self._sockets: set[socket.socket] = set()
        self._server: ThreadingHTTPServer | None = None

    # ---- running it -------------------------------------------------------------------

    def serve(self) -> str:
        proxy = self

        class Handler(_ProxyHandler):
            pass

        Handler.proxy = proxy
        self._closing = threading.Event()
        self._server = QuietHTTPServer((self.host, self.port), Handler)
        self._server.daemon_threads = True
        self.base_url = f"http://{self.host}:{self._server.server_address[1]}"
        threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="fault-proxy", daemon=True
        ).start()
        return self.base_url

    def close(self) -> None:
        self._closing.set()
        self.clear()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        with self._lock:
            open_sockets = list(self._sockets)
        for sock in open_sockets:  # idle keep-alive connections: their threads wake up and end
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def __enter__(self) -> FaultProxy:
        if self._server is None:
            self.serve()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- faults -----------------------------------------------------------------------

    def set_fault(
        self,
        mode: str,
        *,
        times: int | None = None,
        delay: float = 0.1,
        status: int = 500,
        error_code: str | None = None,
        operation: str | None = None,
        hang_seconds: float = HANG_CAP_SECONDS,
    ) -> ProxyFault:
        """Replace the fault in force (letting go of requests held by the previous one).

        `times`: how many requests it applies to (None: until cleared). `delay`: seconds between
        bytes for `trickle`. `status` and `error_code` (default from the status: InternalFailure,
        ServiceUnavailable for 503, ThrottlingException for 429): the answer for `status`.
        `operation`: only requests to this AWS operation, e.g. "SendMessage". `hang_seconds`: the
        longest `hang` holds a request (capped at 120 s).
        """
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, not {mode!r}")
        if times is not None and times < 1:
            raise ValueError("times must be at least 1 (or None: until cleared)")
        if delay < 0 or hang_seconds <= 0:
            raise ValueError("delay must be >= 0 and hang_seconds > 0")
        if not 100 <= status <= 599:
            raise ValueError(f"status {status} is not an HTTP status")
        fault = ProxyFault(
            mode=mode,
            times=times,
            delay=delay,
            status=status,
            error_code=error_code or DEFAULT_ERROR_CODES.get(status, "InternalFailure"),
            operation=operation,
            hang_seconds=min(hang_seconds, HANG_CAP_SECONDS),
        )
        with self._lock:
            self._release_held()
            self._fault = fault
        return fault

    def clear(self) -> None:
        """No fault from now on; held (`hang`) requests are closed, trickles finish at once."""
        with self._lock:
            self._fault = None
            self._release_held()

    @property
    def fault(self) -> ProxyFault | None:
        with self._lock:
            return self._fault

    def settled_counters(self, answered: int, timeout: float = 2.0) -> dict[str, int]:
        """The counters once `answered` answers are counted: the proxy counts one after writing it,
        so the client may have read it a moment before (waits at most `timeout`)."""
        ends = time.monotonic() + timeout
        while self.counters()["answered"] < answered and time.monotonic() < ends:
            time.sleep(0.01)
        return self.counters()

    def counters(self) -> dict[str, int]:
        with self._lock:
            return {
                "connections": self.connections,
                "seen": self.seen,
                "forwarded": self.forwarded,
                "answered": self.answered,
                "faulted": self.faulted,
                "hanging": self.hanging,
            }

    # ---- for the handler --------------------------------------------------------------

    def _release_held(self) -> None:
        self._release.set()
        self._release = threading.Event()

    def _take(self, operation: str | None) -> tuple[ProxyFault | None, threading.Event]:
        """The fault for a request (operation None: not read yet, so only refuse/reset without an
        operation filter can apply), counted and used up; and the event that releases it."""
        with self._lock:
            fault, release = self._fault, self._release
            if fault is None:
                return None, release
            if operation is None and (fault.mode not in ("refuse", "reset") or fault.operation):
                return None, release
            if fault.operation is not None and fault.operation != operation:
                return None, release
            if fault.times is not None:
                fault.times -= 1
                if fault.times <= 0:
                    self._fault = None
            self.faulted += 1
            return fault, release

    def _count(self, name: str, delta: int = 1) -> None:
        with self._lock:
            setattr(self, name, getattr(self, name) + delta)

    def _record(self, record: ProxiedRequest) -> None:
        with self._lock:
            self.requests.append(record)

    def _track(self, sock: socket.socket, opened: bool) -> None:
        with self._lock:
            if opened:
                self._sockets.add(sock)
                self.connections += 1
            else:
                self._sockets.discard(sock)


class _ProxyHandler(BaseHTTPRequestHandler):
    proxy: FaultProxy
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # trickled bytes go out one by one, answers without a 40 ms stall

    def log_message(self, format: str, *args: Any) -> None:  # noqa: ARG002 - quiet
        return

    def setup(self) -> None:
        super().setup()
        self.proxy._track(self.connection, opened=True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.proxy._track(self.connection, opened=False)

    def handle_one_request(self) -> None:
        # Wait for the first byte of the next request without reading it, so refuse and reset can
        # act before anything is read (and a fault set while the connection idles still applies).
        try:
            first = self.connection.recv(1, socket.MSG_PEEK)
        except OSError:
            first = b""
        if not first or self.proxy._closing.is_set():
            self.close_connection = True
            return
        self.proxy._count("seen")
        fault, _ = self.proxy._take(None)
        if fault is not None:
            self.proxy._record(ProxiedRequest("", "", "", fault.mode))
            if fault.mode == "refuse":
                self._refuse()
            else:
                self._reset()
            return
        super().handle_one_request()

    # ---- the ways to end a connection ---------------------------------------------------

    def _refuse(self) -> None:
        """FIN now, without an answer; what the client sends is discarded so the close is clean."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_WR)
            self.connection.settimeout(1.0)
            while self.connection.recv(65536):
                pass

    def _reset(self) -> None:
        """Close with RST: SO_LINGER 0, and close now (the server's own close would FIN first)."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.rfile.close()  # the socket only really closes once its file objects are closed
            self.connection.close()

    def _drop(self) -> None:
        """Close without an answer (FIN), the request read."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    # ---- proxying ---------------------------------------------------------------------

    def _proxy(self) -> None:
        proxy = self.proxy
        try:
            body = read_body(self.rfile, body_length(self.headers, limit=MAX_BODY_BYTES))
        except BodyError as error:
            self.close_connection = True
            message = json.dumps({"__type": "BadRequest", "message": error.message}).encode()
            self._send(self._answer_bytes(error.status, [("Content-Type", "application/json")], message))
            return
        path = self._origin_path()
        record = ProxiedRequest(self.command, path, aws_operation(self.headers, path, body))
        fault, release = proxy._take(record.operation)
        record.fault = fault.mode if fault else None
        proxy._record(record)
        mode = fault.mode if fault else None
        if fault is not None and mode == "refuse":
            self._refuse()
        elif fault is not None and mode == "reset":
            self._reset()
        elif fault is not None and mode == "hang":
            proxy._count("hanging")
            try:
                release.wait(fault.hang_seconds)
            finally:
                proxy._count("hanging", -1)
            self._drop()
        elif fault is not None and mode == "status":
            self._send(self._error_answer(fault), count=True)
        else:
            answer = self._forward(path, body, record)
            if fault is not None and mode == "forward_then_drop":
                self._drop()
            elif fault is not None and mode == "trickle":
                self._trickle(answer, fault.delay, release)
            else:
                self._send(answer, count=True)

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = do_OPTIONS = _proxy

    def _origin_path(self) -> str:
        """The path and query; an absolute-form target (a client using us as an HTTP proxy) too."""
        if self.path.startswith(("http://", "https://")):
            url = urlsplit(self.path)
            return (url.path or "/") + (f"?{url.query}" if url.query else "")
        return self.path

    def _forward(self, path: str, body: bytes, record: ProxiedRequest) -> bytes:
        """Send the request upstream as it came; the upstream answer as bytes to relay (502 when
        upstream cannot be reached)."""
        proxy = self.proxy
        connection_tokens = {t.strip().lower() for t in (self.headers.get("Connection") or "").split(",")}
        upstream = http.client.HTTPConnection(
            proxy.upstream_host, proxy.upstream_port, timeout=proxy.upstream_timeout
        )
        try:
            upstream.putrequest(
                self.command, proxy.upstream_prefix + path, skip_host=True, skip_accept_encoding=True
            )
            for name, value in self.headers.items():
                lowered = name.lower()
                if lowered in HOP_BY_HOP or lowered in connection_tokens or lowered in NOT_FORWARDED:
                    continue
                upstream.putheader(name, value)
            if body or "Content-Length" in self.headers or "Transfer-Encoding" in self.headers:
                upstream.putheader("Content-Length", str(len(body)))
            upstream.putheader("Connection", "close")
            upstream.endheaders(body or None)
            proxy._count("forwarded")
            response = upstream.getresponse()
            data = response.read()
            record.upstream_status = response.status
            headers = [
                (name, value)
                for name, value in response.getheaders()
                if name.lower() not in HOP_BY_HOP and name.lower() != "content-length"
            ]
            no_body = self.command == "HEAD" or response.status in (204, 304) or response.status < 200
            if no_body:
                length = response.getheader("Content-Length")
                headers += [("Content-Length", length)] if length is not None else []
                return self._answer_bytes(response.status, headers, b"", reason=response.reason, length=False)
            return self._answer_bytes(response.status, headers, data, reason=response.reason)
        except (OSError, http.client.HTTPException) as error:
            message = json.dumps({"__type": "BadGateway", "message": f"upstream: {error}"}).encode()
            return self._answer_bytes(502, [("Content-Type", "application/json")], message)
        finally:
            upstream.close()

    def _error_answer(self, fault: ProxyFault) -> bytes:
        """An AWS-style error: JSON for the JSON protocols, XML for the query protocol."""
        request_id = str(uuid.uuid4())
        kind = "Sender" if fault.status < 500 else "Receiver"
        if (self.headers.get("Content-Type") or "").startswith("application/x-www-form-urlencoded"):
            body = (
                '<?xml version="1.0"?><ErrorResponse><Error>'
                f"<Type>{kind}</Type><Code>{fault.error_code}</Code><Message>injected</Message>"
                f"</Error><RequestId>{request_id}</RequestId></ErrorResponse>"
            ).encode()
            headers = [("Content-Type", "text/xml"), ("x-amzn-RequestId", request_id)]
        else:
            body = json.dumps({"__type": fault.error_code, "message": "injected"}).encode()
            headers = [
                ("Content-Type", "application/x-amz-json-1.0"),
                ("x-amzn-RequestId", request_id),
                ("x-amzn-ErrorType", fault.error_code),
            ]
        return self._answer_bytes(fault.status, headers, body)

    def _answer_bytes(
        self,
        status: int,
        headers: list[tuple[str, str]],
        body: bytes,
        *,
        reason: str | None = None,
        length: bool = True,
    ) -> bytes:
        if reason is None:
            try:
                reason = HTTPStatus(status).phrase
            except ValueError:
                reason = ""
        lines = [f"HTTP/1.1 {status} {reason}", *(f"{name}: {value}" for name, value in headers)]
        if length:
            lines.append(f"Content-Length: {len(body)}")
        if self.close_connection:
            lines.append("Connection: close")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body

    def _send(self, answer: bytes, *, count: bool = False) -> None:
        try:
            self.wfile.write(answer)
        except OSError:  # the client went away
            self.close_connection = True
            return
        if count:
            self.proxy._count("answered")

    def _trickle(self, answer: bytes, delay: float, release: threading.Event) -> None:
        for offset in range(len(answer)):
            if release.is_set():  # cleared: the rest at once
                self._send(answer[offset:], count=True)
                return
            if offset and self.proxy._closing.wait(delay):
                self._drop()
                return
            try:
                self.wfile.write(answer[offset : offset + 1])
            except OSError:
                self.close_connection = True
                return
        self.proxy._count("answered")
