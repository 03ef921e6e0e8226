"""The Conversations sandbox's HTTP side: one request read, its fault applied, recorded and answered; and
the dev-only admin paths under /__sandbox (dev-only)."""

from __future__ import annotations

import contextlib
import json
import time
from dataclasses import asdict
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlsplit

from memory_bridge_dev.conversations_store import TwilioError
from memory_bridge_dev.quiet_server import FaultingHandler
from memory_bridge_dev.sandbox import BodyError, body_length, read_body

if TYPE_CHECKING:
    from memory_bridge_dev.conversations_sandbox import ConversationsSandbox, Recorded

ADMIN_PREFIX = "/__sandbox"


class ConversationsHandler(FaultingHandler):
    sandbox: ConversationsSandbox
    protocol_version = "HTTP/1.1"
    # Headers and body go out as separate writes: without TCP_NODELAY, Nagle's algorithm and the
    # client's delayed ACK add about 40 ms to every answer on loopback.
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:  # noqa: ARG002 - quiet
        return

    def _handle(self) -> None:
        from memory_bridge_dev.conversations_sandbox import Recorded

        url = urlsplit(self.path)
        if url.path.startswith(ADMIN_PREFIX):
            self._admin(url.path[len(ADMIN_PREFIX) :])
            return
        sandbox = self.sandbox
        found = sandbox.route_for(self.command, url.path)
        record = Recorded(self.command, url.path, [], operation=found[0].operation if found else "")
        try:
            length = body_length(self.headers)  # checked first: a malformed request uses up no fault
        except BodyError as error:
            self._reject(record, error)
            return
        fault, release = sandbox.take_fault(self.command, url.path, record.operation)
        if fault and fault.drop == "before":
            self._record(record)  # counted as a call, never answered
            self._drop()
            return
        if fault and fault.latency:
            time.sleep(fault.latency)
        try:
            raw = read_body(self.rfile, length)
            record.form = parse_qsl(raw.decode("utf-8"), keep_blank_values=True, strict_parsing=bool(raw))
            record.query = parse_qsl(url.query, keep_blank_values=True)
        except BodyError as error:
            self._reject(record, error)
            return
        except (UnicodeDecodeError, ValueError):
            self._reject(record, BodyError(400, "Malformed form body"))
            return
        if fault and fault.hang == "before":
            self._record(record)
            self._hang(fault, release)
            return
        status, body, headers = sandbox.answer(record, self.headers.get("Authorization"), fault)
        record.status, record.response_body = status, body
        self._record(record)
        if fault and fault.drop == "after":
            self._drop()
        elif fault and fault.hang == "after":
            self._hang(fault, release)
        else:
            self._answer(status, body, headers)

    do_GET = do_POST = do_DELETE = _handle

    def _record(self, record: Recorded) -> None:
        with self.sandbox.lock:
            self.sandbox.requests.append(record)

    def _reject(self, record: Recorded, error: BodyError) -> None:
        """A body that cannot be framed or read: answered, and the connection closed."""
        record.status = error.status
        record.response_body = TwilioError(error.status, 20000 + error.status, error.message).body()
        self._record(record)
        self.close_connection = True
        self._answer(error.status, record.response_body)

    def _answer(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(body).encode()
        with contextlib.suppress(OSError):  # the client may have given up
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

    def _admin(self, path: str) -> None:
        """/faults: POST adds one (its fields as JSON), DELETE clears them, GET lists them.
        /calls: GET, the number of requests per operationId."""
        from memory_bridge_dev.conversations_sandbox import Fault

        sandbox = self.sandbox
        try:
            raw = read_body(self.rfile, body_length(self.headers))
        except BodyError as error:
            self.close_connection = True
            self._answer(error.status, {"message": error.message})
            return
        if path == "/faults" and self.command == "POST":
            try:
                fault = Fault(**json.loads(raw or b"{}"))
            except (TypeError, ValueError) as error:  # not JSON, not an object, or not a fault
                self._answer(400, {"message": f"not a fault: {error}"})
                return
            self._answer(201, asdict(sandbox.add_fault(fault)))
        elif path == "/faults" and self.command == "DELETE":
            sandbox.clear_faults()
            self._answer(200, {"faults": []})
        elif path == "/faults":
            with sandbox.lock:
                self._answer(200, {"faults": [asdict(f) for f in sandbox.faults]})
        elif path == "/calls" and self.command == "GET":
            self._answer(200, {"calls": dict(sandbox.calls())})
        else:
            self._answer(404, {"message": "unknown sandbox admin path"})
