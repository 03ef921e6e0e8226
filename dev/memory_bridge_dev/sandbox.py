"""A loopback stand-in for Twilio's Memory API v1, for tests and the local stack (dev-only).

It implements the endpoints the bridge uses as `twilio-memory-v1.yaml` describes them: request
validation with TwilioError bodies, Basic auth, profiles with identity resolution (lookup,
resolve-or-create, merges answered with 308), observations (create, list with paging and filters;
fetch, change with revisions, delete, and profile deletion in memory_bridge_dev.sandbox_lifecycle,
with the per-profile limit and the list lag chosen at run time: `/__sandbox/observation-rules`), stores
with their asynchronous operation (QUEUED → PROVISIONING → ACTIVE over a configurable time), and each
store's identity-resolution settings (read, and changed by an asynchronous operation). A new store
knows only the contract's example idTypes (email, whatsapp, phone; memory_bridge_dev.identity_settings):
a Lookup or profile creation with another idType is refused with 400, as Memory refuses it.

Faults can be set while it runs, from Python or over HTTP (`/__sandbox/faults`): a status with
`Retry-After`, latency, a dropped connection before or after the request was processed, an answer
trickled out a byte at a time (`trickle`), or no answer at all on a connection held open (`hang`).

Malformed HTTP (a garbage or negative Content-Length, a broken chunked or gzip body, a body that is
not UTF-8 JSON, a non-numeric paging parameter) is answered 400 with a TwilioError body; the admin
endpoints answer 400 with a plain `{"message": ...}`.
"""

from __future__ import annotations

import base64
import contextlib
import io
import json
import random
import re
import signal
import threading
import time
import zlib
from dataclasses import asdict, dataclass, field
from email.message import Message
from http.server import ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from memory_bridge_dev.identity_settings import (
    DEFAULT_ID_TYPES,
    IdentitySettings,
    normalize,
    parse_settings,
)
from memory_bridge_dev.quiet_server import HANG_CAP_SECONDS, FaultingHandler, QuietHTTPServer
from memory_bridge_dev.sandbox_common import (
    ApiError,
    check_observation,
    now_iso,
    paging,
    schema_error,
    ttid,
)
from memory_bridge_dev.sandbox_lifecycle import Lifecycle, ObservationRules, operation_for

STORE_ID = re.compile(r"^mem_(store|service)_[0-7][0-9a-z]{25}$")
PROFILE_ID = re.compile(r"^mem_profile_[0-7][0-9a-z]{25}$")
DISPLAY_NAME = re.compile(r"^[a-zA-Z0-9-]+$")
ADMIN_PREFIX = "/__sandbox"
MAX_BODY_BYTES = 8 * 1024 * 1024  # larger request bodies are answered 413 without being read
# What MemorySandbox.dispatch answers: (operation name, status, JSON body, headers).
Routed = tuple[str, int, Any, dict[str, str]]


# ---- HTTP framing, shared with the local API front and the fault proxy --------------------


class BodyError(Exception):
    """A request body that cannot be read as framed: answer `status`, then close the connection
    (after a framing error the next request on it cannot be found)."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message


def body_length(headers: Message, limit: int = MAX_BODY_BYTES) -> int | None:
    """The request body's length from its headers, or None when it comes chunked.

    Raises BodyError for a Content-Length that is not a plain decimal number (negative, garbage,
    several that disagree), for both Transfer-Encoding and Content-Length, for a transfer coding
    other than chunked, and (413) for a length over `limit`. Nothing is read from the socket.
    """
    encodings = headers.get_all("Transfer-Encoding") or []
    lengths = headers.get_all("Content-Length") or []
    if encodings:
        codings = [c.strip().lower() for value in encodings for c in value.split(",") if c.strip()]
        if codings != ["chunked"]:
            raise BodyError(501, f"Transfer-Encoding {', '.join(codings) or '(empty)'} is not supported")
        if lengths:
            raise BodyError(400, "a request cannot have both Transfer-Encoding and Content-Length")
        return None
    if not lengths:
        return 0
    values = {v.strip() for value in lengths for v in value.split(",")}
    if len(values) != 1 or not re.fullmatch(r"[0-9]{1,19}", next(iter(values))):
        raise BodyError(400, "Content-Length must be one non-negative decimal number")
    length = int(values.pop())
    if length > limit:
        raise BodyError(413, f"the body is larger than {limit} bytes")
    return length


def read_body(rfile: io.BufferedIOBase, length: int | None, limit: int = MAX_BODY_BYTES) -> bytes:
    """Read a body framed as `body_length` said: `length` bytes, or chunked when None."""
    if length is None:
        return _read_chunked(rfile, limit)
    data = rfile.read(length) if length else b""
    if len(data) < length:
        raise BodyError(400, "the body ended before Content-Length bytes arrived")
    return data


def _read_chunked(rfile: io.BufferedIOBase, limit: int) -> bytes:
    parts: list[bytes] = []
    total = 0
    while True:
        line = rfile.readline(1024)
        size_text = line.split(b";", 1)[0].strip()
        if not line.endswith(b"\n") or not re.fullmatch(rb"[0-9a-fA-F]{1,8}", size_text):
            raise BodyError(400, "malformed chunk size line")
        size = int(size_text, 16)
        if size == 0:
            break
        total += size
        if total > limit:
            raise BodyError(413, f"the body is larger than {limit} bytes")
        chunk = rfile.read(size)
        if len(chunk) < size or rfile.readline(3) not in (b"\r\n", b"\n"):
            raise BodyError(400, "malformed chunk")
        parts.append(chunk)
    for _ in range(100):  # trailer fields, ignored, up to the empty line
        line = rfile.readline(8192)
        if line in (b"\r\n", b"\n"):
            return b"".join(parts)
        if not line.endswith(b"\n"):
            break
    raise BodyError(400, "malformed chunked trailer")


BEFORE_OR_AFTER = (None, "before", "after")


@dataclass
class Fault:
    """One injected failure. `times` None means until cleared; `match` filters on the path.

    `drop`: "before" closes without reading the request (nothing processed); "after" processes it,
    then closes without an answer.
    `hang`: "before" reads the request and does not process it, "after" processes it; either way
    no answer is sent and the connection is held open until the faults are cleared (`clear_faults`,
    `reset`, `DELETE /__sandbox/faults`), the sandbox closes, or `hang_seconds` (capped at 120 s)
    pass; then it is closed. Hung requests are recorded, "before" ones with status None.
    `trickle`: the answer (status line, headers and body) goes out `trickle_bytes` bytes at a time
    with `trickle` seconds between writes; the request is processed as usual.
    """

    status: int | None = None
    retry_after: int | None = None
    latency: float = 0.0
    drop: str | None = None  # "before" (nothing processed) or "after" (processed, then no answer)
    times: int | None = None
    match: str = "/v1/"
    method: str | None = None
    probability: float = 1.0
    hang: str | None = None  # "before" (read, not processed) or "after" (processed); never answered
    hang_seconds: float = HANG_CAP_SECONDS
    trickle: float = 0.0  # seconds between writes of the answer; 0 sends it at once
    trickle_bytes: int = 1

    def __post_init__(self) -> None:
        if self.drop not in BEFORE_OR_AFTER:
            raise ValueError(f"drop must be 'before' or 'after', not {self.drop!r}")
        if self.hang not in BEFORE_OR_AFTER:
            raise ValueError(f"hang must be 'before' or 'after', not {self.hang!r}")
        if not isinstance(self.trickle, int | float) or self.trickle < 0:
            raise ValueError("trickle must be a number of seconds >= 0")
        if not isinstance(self.trickle_bytes, int) or self.trickle_bytes < 1:
            raise ValueError("trickle_bytes must be an integer >= 1")
        if not isinstance(self.hang_seconds, int | float) or self.hang_seconds <= 0:
            raise ValueError("hang_seconds must be a number of seconds > 0")

    def applies(self, method: str, path: str) -> bool:
        if self.match not in path or (self.method and self.method.upper() != method):
            return False
        return self.probability >= 1.0 or random.random() < self.probability


@dataclass
class RecordedRequest:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: Any
    status: int | None = None
    response_body: Any = None
    response_headers: dict[str, str] = field(default_factory=dict)
    operation: str = ""
    received_at: float = field(default_factory=time.time)  # epoch seconds


@dataclass
class Store:
    id: str
    displayName: str
    description: str | None
    created: float
    provisioning_seconds: float
    fail: dict[str, Any] | None = None
    version: int = 1
    identity: IdentitySettings = field(default_factory=lambda: IdentitySettings.of(DEFAULT_ID_TYPES))
    # An accepted settings change: (monotonic time it takes effect, the new settings).
    pending_identity: tuple[float, IdentitySettings] | None = None

    def identity_at(self, now: float) -> IdentitySettings:
        """The settings in effect: an accepted change applies once its operation has run."""
        if self.pending_identity is not None and now >= self.pending_identity[0]:
            self.identity, self.pending_identity = self.pending_identity[1], None
        return self.identity

    def normalized(self, id_type: str, value: str, now: float) -> str:
        return normalize(self.identity_at(now).normalization(id_type), value)

    def status(self, now: float) -> str:
        elapsed = now - self.created
        if elapsed < self.provisioning_seconds / 3:
            return "QUEUED"
        if elapsed < self.provisioning_seconds:
            return "PROVISIONING"
        return "FAILED" if self.fail else "ACTIVE"

    def to_json(self, now: float) -> dict[str, Any]:
        document: dict[str, Any] = {
            "id": self.id,
            "displayName": self.displayName,
            "status": self.status(now),
            "intelligenceServiceId": None,
            "version": self.version,
        }
        if self.description is not None:
            document["description"] = self.description
        return document


@dataclass
class Operation:
    operation_id: str
    store_id: str
    created_at: str
    created: float
    duration: float
    kind: str = "store"  # "store" (creation) or "identity" (an identity-resolution settings change)

    def to_json(self, store: Store, now: float, base_url: str) -> dict[str, Any]:
        elapsed = now - self.created
        document: dict[str, Any] = {
            "operationId": self.operation_id,
            "createdAt": self.created_at,
            "statusUrl": f"{base_url}/v1/ControlPlane/Operations/{self.operation_id}",
        }
        if elapsed < self.duration / 3:
            document["status"] = "PENDING"
        elif elapsed < self.duration:
            document["status"] = "RUNNING"
        elif store.fail and self.kind == "store":
            document["status"] = "FAILED"
            document["completedAt"] = now_iso()
            document["error"] = store.fail
        else:
            document["status"] = "COMPLETED"
            document["completedAt"] = now_iso()
            document["result"] = {"type": "RESOURCE_ID", "id": store.id}
        return document


class MemorySandbox:
    """State and rules; `serve()` puts it on loopback."""

    def __init__(
        self,
        *,
        credentials: dict[str, str] | None = None,
        # The idTypes (→ normalization) a new store's identity-resolution settings start with.
        id_types: dict[str, str] | None = None,
        lookup_miss: str = "empty",  # "empty" → 200 with no profiles, "404" → 404 NotFound
        provisioning_seconds: float = 0.6,
        store_limit: int = 5,
        retry_after_seconds: int = 1,
        identity_seconds: float = 0.3,  # how long a settings change's operation runs
        # Unpublished behaviours (memory_bridge_dev.sandbox_lifecycle): past `observation_limit` per
        # profile, "refuse" or "evict" (None: no limit); seconds before a write is listed.
        profile_full: str | None = None,
        observation_limit: int = 500,
        list_lag: float = 0.0,
    ):
        # user → password accepted for Basic auth; None accepts any Basic credentials.
        self.credentials = credentials
        self.id_types = dict(DEFAULT_ID_TYPES if id_types is None else id_types)
        self.lookup_miss = lookup_miss
        self.provisioning_seconds = provisioning_seconds
        self.store_limit = store_limit
        self.retry_after_seconds = retry_after_seconds
        self.identity_seconds = identity_seconds
        self.lock = threading.RLock()
        self.stores: dict[str, Store] = {}
        self.operations: dict[str, Operation] = {}
        self.profiles: dict[str, dict[str, Any]] = {}  # profile id → {"store", "traits"}
        self.identifiers: dict[tuple[str, str, str], str] = {}  # (store, idType, value) → profile
        self.merged: dict[str, str] = {}  # merged profile → canonical
        self.observations: dict[tuple[str, str], list[dict[str, Any]]] = {}
        self.life = Lifecycle(self, ObservationRules(profile_full, observation_limit, list_lag))
        self.faults: list[Fault] = []
        self.requests: list[RecordedRequest] = []
        self.fail_next_store: dict[str, Any] | None = None
        self.base_url = ""
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        # Hung requests wait on the release event current when they took their fault; clearing the
        # faults (or closing) sets it and puts a fresh one in its place.
        self._release = threading.Event()
        self._closing = threading.Event()

    # ---- running it -------------------------------------------------------------------

    def serve(self, host: str = "127.0.0.1", port: int = 0) -> str:
        sandbox = self

        class Handler(_Handler):
            pass

        Handler.sandbox = sandbox
        self._closing = threading.Event()
        self._server = QuietHTTPServer((host, port), Handler)
        self._server.daemon_threads = True
        self.base_url = f"http://{host}:{self._server.server_address[1]}"
        # A short poll interval: close() (shutdown) waits up to one interval; every test pays it.
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="memory-sandbox",
            daemon=True,
        )
        self._thread.start()
        return self.base_url

    def close(self) -> None:
        self._closing.set()  # trickled answers stop, hung requests are let go
        self._release_hung()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    # ---- test helpers -------------------------------------------------------------------

    def seed_store(
        self,
        display_name: str = "seeded",
        store_id: str | None = None,
        id_types: dict[str, str] | list[str] | None = None,
    ) -> str:
        """An ACTIVE store at once; its identity-resolution settings know `id_types` (default: what a
        new store knows). To seed one the bridge can use, pass memory_bridge's
        `identifier_types(chat_id_type)`, or call `configure_identifiers` after."""
        with self.lock:
            store = Store(store_id or ttid("mem_store_"), display_name, None, time.monotonic() - 3600, 0.0)
            store.identity = IdentitySettings.of(self.id_types if id_types is None else id_types)
            self.stores[store.id] = store
            return store.id

    def configure_identifiers(self, store_id: str, id_types: dict[str, str] | list[str]) -> None:
        """Add idTypes to a store's settings at once (as a completed settings change would)."""
        with self.lock:
            self.stores[store_id].identity_at(time.monotonic()).add(id_types)

    def identity_settings(self, store_id: str) -> dict[str, Any]:
        with self.lock:
            return self.stores[store_id].identity_at(time.monotonic()).to_json()

    def add_fault(self, fault: Fault) -> Fault:
        with self.lock:
            self.faults.append(fault)
        return fault

    def clear_faults(self) -> None:
        """Remove every fault and let go of the requests that `hang` faults hold."""
        with self.lock:
            self.faults.clear()
            self._release_hung()

    def _release_hung(self) -> None:
        with self.lock:
            self._release.set()
            self._release = threading.Event()

    def merge_profiles(self, merged: str, canonical: str) -> None:
        with self.lock:
            self.merged[merged] = canonical

    def all_observations(self, store_id: str | None = None) -> list[dict[str, Any]]:
        with self.lock:
            return [
                {**o, "profileId": profile}
                for (store, profile), items in self.observations.items()
                if store_id in (None, store)
                for o in items
            ]

    def profile_for(self, store_id: str, id_type: str, value: str) -> str | None:
        with self.lock:
            normalized = self.stores[store_id].normalized(id_type, value, time.monotonic())
            return self.identifiers.get((store_id, id_type, normalized))

    def requests_to(self, operation: str) -> list[RecordedRequest]:
        with self.lock:
            return [r for r in self.requests if r.operation == operation]

    def reset(self) -> None:
        with self.lock:
            self.faults.clear()
            self._release_hung()
            self.requests.clear()
            self.profiles.clear()
            self.identifiers.clear()
            self.merged.clear()
            self.observations.clear()
            self.life.reset()

    def take_fault(self, method: str, path: str) -> Fault | None:
        with self.lock:
            for fault in list(self.faults):
                if fault.applies(method, path):
                    if fault.times is not None:
                        fault.times -= 1
                        if fault.times <= 0:
                            self.faults.remove(fault)
                    return fault
        return None

    def _take_fault(self, method: str, path: str) -> tuple[Fault | None, threading.Event]:
        """The fault for this request and the event that lets go of it if it hangs (one step, so a
        `clear_faults` cannot slip in between)."""
        with self.lock:
            return self.take_fault(method, path), self._release

    # ---- the API ----------------------------------------------------------------------

    def authorize(self, header: str | None) -> None:
        if not header or not header.startswith("Basic "):
            raise ApiError(401, 20003, "Failed to complete request due to lack of authentication credentials")
        if self.credentials is None:
            return
        try:
            user, _, password = base64.b64decode(header[6:]).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            raise ApiError(401, 20003, "Authentication failed") from None
        if self.credentials.get(user) != password:
            raise ApiError(401, 20003, "Authentication failed")

    def dispatch(
        self,
        method: str,
        path: str,
        query: dict[str, list[str]],
        body: Any,
        headers: dict[str, str] | None = None,
    ) -> Routed:
        """Route one request: (operation name, status, JSON body, headers). `headers` are the
        request's, with lower-case names."""
        parts = [p for p in path.split("/") if p]
        with self.lock:
            routed = self._dispatch_control_plane(method, parts, query, body)
            if routed is None and parts[:3] == ["v1", "ControlPlane", "Stores"] and len(parts) == 5:
                routed = self._dispatch_identity(method, parts, body, headers or {})
            if (
                routed is None
                and parts[:2] == ["v1", "Stores"]
                and len(parts) >= 4
                and parts[3] == "Profiles"
            ):
                routed = self._dispatch_profiles(method, parts, query, body)
        if routed is None:
            raise ApiError(404, 20404, "Not Found")
        return routed

    def _dispatch_control_plane(
        self, method: str, parts: list[str], query: dict[str, list[str]], body: Any
    ) -> Routed | None:
        """/v1/ControlPlane/Stores and /v1/ControlPlane/Operations; None for any other request."""
        if parts[:3] == ["v1", "ControlPlane", "Stores"]:
            if len(parts) == 3 and method == "POST":
                return ("CreateStore", *self.create_store(body))
            if len(parts) == 3 and method == "GET":
                return ("ListStores", *self.list_stores(query))
            if len(parts) == 4 and method == "GET":
                return ("FetchStore", 200, self._store(parts[3]).to_json(time.monotonic()), {})
        if parts[:3] == ["v1", "ControlPlane", "Operations"] and len(parts) == 4 and method == "GET":
            return ("FetchOperation", *self.fetch_operation(parts[3]))
        return None

    def _dispatch_identity(
        self, method: str, parts: list[str], body: Any, headers: dict[str, str]
    ) -> Routed | None:
        """/v1/ControlPlane/Stores/{store}/IdentityResolutionSettings: GET, and PUT (asynchronous)."""
        if parts[4] != "IdentityResolutionSettings":
            return None
        store = self._store(parts[3])
        current = store.identity_at(time.monotonic())
        if method == "GET":
            return ("FetchIdentityResolutionSettings", 200, current.to_json(), {"ETag": current.etag()})
        if method == "PUT":
            return ("UpdateIdentityResolutionSettings", *self.update_identity(store, body, headers))
        return None

    def update_identity(
        self, store: Store, body: Any, headers: dict[str, str]
    ) -> tuple[int, Any, dict[str, str]]:
        if store.status(time.monotonic()) != "ACTIVE":
            raise ApiError(400, 520042, "Memory store is not active")
        try:
            settings = parse_settings(body)
        except ValueError as error:
            raise schema_error(str(error)) from None
        current = store.identity_at(time.monotonic())
        if_match = headers.get("if-match")
        if if_match is not None and if_match.strip('"') != current.etag():
            raise ApiError(412, 20412, "Precondition Failed")
        settings.version = current.version + 1
        operation = Operation(
            ttid("proc_job_"), store.id, now_iso(), time.monotonic(), self.identity_seconds, kind="identity"
        )
        self.operations[operation.operation_id] = operation
        store.pending_identity = (operation.created + operation.duration, settings)
        status_path = f"/v1/ControlPlane/Operations/{operation.operation_id}"
        answer = {"Operation-Id": operation.operation_id, "Location": self.base_url + status_path}
        if self.identity_seconds >= 1:  # optional; only a whole number of seconds can be said
            answer["Retry-After"] = str(int(self.identity_seconds))
        message = "Identity Resolution Settings accepted for processing."
        return 202, {"message": message, "statusUrl": status_path}, answer

    def _dispatch_profiles(
        self, method: str, parts: list[str], query: dict[str, list[str]], body: Any
    ) -> Routed | None:
        """/v1/Stores/{store}/Profiles...: the store must be active; None for an unknown route."""
        store = self._active_store(parts[2])
        if len(parts) == 5 and parts[4] == "Lookup" and method == "POST":
            return ("CreateProfilesLookup", *self.lookup(store, body))
        if len(parts) == 4 and method == "POST":
            return ("CreateProfile", *self.create_profile(store, body))
        if len(parts) == 6 and parts[5] == "Observations":
            if method == "POST":
                return ("CreateProfileObservation", *self.create_observations(store, parts[4], body))
            if method == "GET":
                return ("ListProfileObservations", *self.list_observations(store, parts[4], query))
        # Edits, removals, erasure: memory_bridge_dev.sandbox_lifecycle.
        return self.life.route(
            method, parts, query, body, lambda write: self._profile(store, parts[4], write)
        )

    def _store(self, store_id: str) -> Store:
        if not STORE_ID.match(store_id):
            raise ApiError(400, 520049, "Malformed store id")
        store = self.stores.get(store_id)
        if store is None:
            raise ApiError(404, 520041, "Memory store not found")
        return store

    def _active_store(self, store_id: str) -> Store:
        store = self._store(store_id)
        if store.status(time.monotonic()) != "ACTIVE":
            raise ApiError(400, 520042, "Memory store is not active")
        return store

    def create_store(self, body: Any) -> tuple[int, Any, dict[str, str]]:
        if not isinstance(body, dict) or set(body) - {"displayName", "description"}:
            raise schema_error("body must be an object with displayName and optional description")
        name = body.get("displayName")
        if not isinstance(name, str) or not name or len(name) > 64 or not DISPLAY_NAME.match(name):
            raise schema_error("displayName must match ^[a-zA-Z0-9-]+$ and be at most 64 characters")
        description = body.get("description")
        if description is not None and (not isinstance(description, str) or not 1 <= len(description) <= 128):
            raise schema_error("description must be 1..128 characters")
        if len(self.stores) >= self.store_limit:
            raise ApiError(400, 520044, "Memory store limit exceeded")
        store = Store(ttid("mem_store_"), name, description, time.monotonic(), self.provisioning_seconds)
        store.identity = IdentitySettings.of(self.id_types)
        store.fail, self.fail_next_store = self.fail_next_store, None
        self.stores[store.id] = store
        operation = Operation(
            ttid("proc_job_"), store.id, now_iso(), time.monotonic(), self.provisioning_seconds
        )
        self.operations[operation.operation_id] = operation
        status_path = f"/v1/ControlPlane/Operations/{operation.operation_id}"
        headers = {
            "Operation-Id": operation.operation_id,
            "Location": self.base_url + status_path,
            "Retry-After": str(self.retry_after_seconds),
        }
        return (
            202,
            {"message": "Memory Store creation accepted for processing.", "statusUrl": status_path},
            headers,
        )

    def list_stores(self, query: dict[str, list[str]]) -> tuple[int, Any, dict[str, str]]:
        size, start = paging(query, maximum=100)  # the spec's ControlPlanePageSize: 1..100
        ids = sorted(self.stores)
        page = ids[start : start + size]
        meta: dict[str, Any] = {"key": "stores", "pageSize": size}
        if start + size < len(ids):
            meta["nextToken"] = str(start + size)
        return 200, {"stores": page, "meta": meta}, {}

    def fetch_operation(self, operation_id: str) -> tuple[int, Any, dict[str, str]]:
        if not operation_id or len(operation_id) > 512:
            raise ApiError(400, 520051, "Malformed operation id")
        operation = self.operations.get(operation_id)
        if operation is None:
            raise ApiError(404, 520052, "Operation not found")
        store = self.stores[operation.store_id]
        document = operation.to_json(store, time.monotonic(), self.base_url)
        headers = {} if document["status"] in ("COMPLETED", "FAILED") else {"Retry-After": "1"}
        return 200, document, headers

    def lookup(self, store: Store, body: Any) -> tuple[int, Any, dict[str, str]]:
        if not isinstance(body, dict) or set(body) != {"idType", "value"}:
            raise schema_error("Identifier needs exactly idType and value")
        id_type, value = body["idType"], body["value"]
        if not isinstance(id_type, str) or not 2 <= len(id_type) <= 30:
            raise schema_error("idType must be 2..30 characters")
        if not isinstance(value, str) or len(value) > 255:
            raise schema_error("value must be a string of at most 255 characters")
        if not store.identity_at(time.monotonic()).knows(id_type):
            raise schema_error(f"idType {id_type!r} is not configured in identity resolution settings")
        normalized = store.normalized(id_type, value, time.monotonic())
        found = self.identifiers.get((store.id, id_type, normalized))
        if found is None and self.lookup_miss == "404":
            raise ApiError(404, 20404, "Not Found")
        profiles = [self.merged.get(found, found)] if found else []
        return 200, {"normalizedValue": normalized, "profiles": profiles}, {}

    def create_profile(self, store: Store, body: Any) -> tuple[int, Any, dict[str, str]]:
        if not isinstance(body, dict) or set(body) - {"traits"} or not isinstance(body.get("traits"), dict):
            raise schema_error("ProfileData needs traits")
        identifiers = []
        settings = store.identity_at(time.monotonic())
        for group, traits in body["traits"].items():
            if not isinstance(traits, dict) or len(traits) > 99:
                raise schema_error(f"trait group {group!r} must be an object")
            for name, value in traits.items():
                # Only traits of a configured idType become identifiers (as in Memory).
                if settings.knows(name) and isinstance(value, str):
                    identifiers.append((name, normalize(settings.normalization(name), value)))
        if not identifiers:
            raise schema_error("at least one trait must be promoted to an identifier")
        existing = next(
            (self.identifiers[(store.id, *i)] for i in identifiers if (store.id, *i) in self.identifiers),
            None,
        )
        profile_id = existing or ttid("mem_profile_")
        if existing is None:
            self.profiles[profile_id] = {"store": store.id, "traits": body["traits"]}
        for id_type, value in identifiers:
            self.identifiers.setdefault((store.id, id_type, value), profile_id)
        return 202, {"message": "Profile resolved and accepted for processing.", "id": profile_id}, {}

    def _profile(self, store: Store, profile_id: str, write: bool) -> str:
        if not PROFILE_ID.match(profile_id):
            raise ApiError(400, 520046, "Malformed profile id")
        canonical = self.merged.get(profile_id)
        if canonical:
            location = f"{self.base_url}/v1/Stores/{store.id}/Profiles/{canonical}"
            raise ApiError(
                308 if write else 301,
                0,
                "This resource has moved.",
                {"Canonical-Profile-Id": canonical, "Location": location, "X-Moved-Uri": location},
            )
        if profile_id not in self.profiles:
            raise ApiError(404, 20404, "Not Found")
        return profile_id

    def create_observations(
        self, store: Store, profile_id: str, body: Any
    ) -> tuple[int, Any, dict[str, str]]:
        profile_id = self._profile(store, profile_id, write=True)
        if not isinstance(body, dict) or set(body) != {"observations"}:
            raise schema_error("CreateObservationsRequest needs exactly 'observations'")
        items = body["observations"]
        if not isinstance(items, list) or not 1 <= len(items) <= 10:
            raise schema_error("observations must hold 1..10 items")
        for item in items:
            check_observation(item, whole=True)
        key = (store.id, profile_id)
        stored = self.observations.setdefault(key, [])
        self.life.make_room(stored, len(items))
        created = now_iso()
        new = [
            {"id": ttid("mem_observation_"), **item, "createdAt": created, "updatedAt": created}
            for item in items
        ]
        stored.extend(new)
        self.life.created(key, stored, new)
        return 202, {"message": "Observations accepted for processing."}, {}

    def list_observations(
        self, store: Store, profile_id: str, query: dict[str, list[str]]
    ) -> tuple[int, Any, dict[str, str]]:
        profile_id = self._profile(store, profile_id, write=False)
        size, start = paging(query, maximum=1000)
        size = min(size, 50)
        items = self.life.listed((store.id, profile_id), query)
        page = items[start : start + size]
        meta: dict[str, Any] = {"key": "observations", "pageSize": size}
        if start + size < len(items):
            meta["nextToken"] = str(start + size)
        if start > 0:
            meta["previousToken"] = str(max(start - size, 0))
        return 200, {"observations": page, "meta": meta}, {}


class _Handler(FaultingHandler):
    sandbox: MemorySandbox
    protocol_version = "HTTP/1.1"  # keep-alive, as the real API offers
    # Headers and body go out as separate writes; without TCP_NODELAY, Nagle's algorithm and the
    # client's delayed ACK add about 40 ms to every answer on loopback.
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:  # noqa: ARG002 - quiet by default
        return

    def _decoded(self, raw: bytes) -> bytes:
        encoding = (self.headers.get("Content-Encoding") or "").strip().lower()
        if encoding in ("", "identity") or not raw:
            return raw
        if encoding not in ("gzip", "deflate"):
            raise BodyError(400, f"Content-Encoding {encoding} is not supported by the sandbox")
        try:
            if encoding == "gzip":
                return _inflate(raw, 16 + zlib.MAX_WBITS)
            try:
                return _inflate(raw, zlib.MAX_WBITS)  # deflate as HTTP means it: zlib-wrapped...
            except zlib.error:
                return _inflate(raw, -zlib.MAX_WBITS)  # ...or, as some clients send it, raw
        except zlib.error:
            raise BodyError(400, f"the body is not valid {encoding} data") from None

    def _answer(
        self, status: int, body: Any, headers: dict[str, str] | None = None, *, trickle: Fault | None = None
    ) -> None:
        data = json.dumps(body).encode() if body is not None else b""
        socket_writer = self.wfile
        if trickle is not None:
            self.wfile = io.BytesIO()  # collect the whole answer, then let it out slowly
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)
        finally:
            collected, self.wfile = self.wfile, socket_writer
        if trickle is not None and isinstance(collected, io.BytesIO):
            self._trickle(collected.getvalue(), trickle)

    def _trickle(self, answer: bytes, fault: Fault) -> None:
        step = fault.trickle_bytes
        for offset in range(0, len(answer), step):
            if offset and self.sandbox._closing.wait(fault.trickle):
                self._drop()
                return
            try:
                self.wfile.write(answer[offset : offset + step])
            except OSError:  # the client gave up
                self.close_connection = True
                return

    def _record(self, record: RecordedRequest) -> None:
        with self.sandbox.lock:
            self.sandbox.requests.append(record)

    def _handle(self) -> None:
        url = urlsplit(self.path)
        if url.path.startswith(ADMIN_PREFIX):
            self._admin(url.path[len(ADMIN_PREFIX) :], parse_qs(url.query))
            return
        record = RecordedRequest(
            method=self.command,
            path=url.path,
            query=parse_qs(url.query),
            headers={k.lower(): v for k, v in self.headers.items() if k.lower() != "authorization"},
            body=None,
            operation=_operation_for(self.command, url.path),
        )
        try:
            length = body_length(self.headers)
        except BodyError as error:  # checked first: a malformed request uses up no fault
            self._reject(record, error)
            return
        fault, release = self.sandbox._take_fault(self.command, url.path)
        if fault and fault.drop == "before":
            self._drop()
            return
        if fault and fault.latency:
            time.sleep(fault.latency)
        try:
            raw = read_body(self.rfile, length)
        except BodyError as error:
            self._reject(record, error)
            return
        if fault and fault.hang == "before":
            with contextlib.suppress(BodyError, ValueError):
                record.body = json.loads(self._decoded(raw)) if raw else None
            self._record(record)  # seen, never processed: status None
            self._hang(fault, release)
            return
        status, body, headers = self._process(record, raw, fault)
        record.status, record.response_body, record.response_headers = status, body, headers
        self._record(record)
        self._deliver(status, body, headers, fault, release)

    def _process(
        self, record: RecordedRequest, raw: bytes, fault: Fault | None
    ) -> tuple[int, Any, dict[str, str]]:
        """Parse the body into `record`, apply a status fault, authorize and dispatch: (status, JSON
        body, headers), an API error's included."""
        sandbox = self.sandbox
        try:
            if raw:
                record.body = self._json_body(raw)
            if fault and fault.status:
                raise _injected_error(fault.status, fault.retry_after)
            sandbox.authorize(self.headers.get("Authorization"))
            record.operation, status, body, headers = sandbox.dispatch(
                self.command, record.path, record.query, record.body, record.headers
            )
        except ApiError as error:
            status, headers = error.status, error.headers
            moved = headers.pop("X-Moved-Uri", None)
            body = {"message": error.message, "uri": moved} if moved else error.body()
        return status, body, headers

    def _json_body(self, raw: bytes) -> Any:
        """The request body, decoded and parsed; an ApiError when it is not UTF-8 JSON."""
        try:
            text = self._decoded(raw).decode("utf-8")
        except BodyError as error:
            raise ApiError(error.status, _body_error_code(error.status), error.message) from None
        except UnicodeDecodeError:
            raise schema_error("body is not UTF-8") from None
        try:
            return json.loads(text)
        except ValueError:
            raise schema_error("body is not JSON") from None

    def _deliver(
        self,
        status: int,
        body: Any,
        headers: dict[str, str],
        fault: Fault | None,
        release: threading.Event,
    ) -> None:
        """Send the answer, unless a fault drops the connection or holds it without one."""
        if fault and fault.drop == "after":
            self._drop()
            return
        if fault and fault.hang == "after":
            self._hang(fault, release)
            return
        self._answer(status, body, headers, trickle=fault if fault and fault.trickle else None)

    def _reject(self, record: RecordedRequest, error: BodyError) -> None:
        """Answer a request whose body could not be framed, and close: the rest of the stream is
        not a request anyone can find."""
        api_error = ApiError(error.status, _body_error_code(error.status), f"Bad request: {error.message}")
        record.status, record.response_body = error.status, api_error.body()
        self._record(record)
        self._answer_and_close(error.status, record.response_body)

    def _answer_and_close(self, status: int, body: Any) -> None:
        self.close_connection = True
        with contextlib.suppress(OSError):
            self._answer(status, body, {"Connection": "close"})

    def _admin(self, path: str, query: dict[str, list[str]]) -> None:
        try:
            raw = read_body(self.rfile, body_length(self.headers))
        except BodyError as error:
            self._answer_and_close(error.status, {"message": error.message})
            return
        try:
            body = json.loads(self._decoded(raw).decode("utf-8")) if raw else {}
        except (BodyError, ValueError) as error:  # UnicodeDecodeError is a ValueError
            self._answer(400, {"message": f"the body is not UTF-8 JSON: {error}"})
            return
        if not isinstance(body, dict):
            self._answer(400, {"message": "the body must be a JSON object"})
            return
        try:
            self._admin_route(path, query, body)
        except _AdminError as error:
            self._answer(400, {"message": str(error)})

    def _admin_route(self, path: str, query: dict[str, list[str]], body: dict[str, Any]) -> None:
        command = self.command
        if path == "/faults":
            self._admin_faults(body)
        elif command == "GET" and path in ("/observations", "/requests"):
            self._admin_read(path, query)
        elif command == "POST" and path in ("/merge", "/stores", "/fail-next-store"):
            self._admin_change(path, body)
        elif path == "/observation-rules":
            self._admin_rules(body)
        elif path == "/health":
            self._answer(200, {"ok": True})
        else:
            self._admin_unknown()

    def _admin_unknown(self) -> None:
        self._answer(404, {"message": "unknown sandbox admin path"})

    def _admin_faults(self, body: dict[str, Any]) -> None:
        """/faults: POST adds one, DELETE clears them, GET lists them."""
        sandbox = self.sandbox
        if self.command == "POST":
            try:
                fault = Fault(**body)
            except (TypeError, ValueError) as error:
                raise _AdminError(f"not a fault: {error}") from None
            sandbox.add_fault(fault)
            self._answer(201, asdict(fault))
        elif self.command == "DELETE":
            sandbox.clear_faults()
            self._answer(200, {"faults": []})
        elif self.command == "GET":
            with sandbox.lock:
                faults = [asdict(f) for f in sandbox.faults]
            self._answer(200, {"faults": faults})
        else:
            self._admin_unknown()

    def _admin_rules(self, body: dict[str, Any]) -> None:
        """/observation-rules: GET shows, POST changes, DELETE resets the limit and the list lag."""
        with self.sandbox.lock:
            try:
                answer = self.sandbox.life.admin(self.command, body)
            except (TypeError, ValueError) as error:
                raise _AdminError(f"not observation rules: {error}") from None
        if answer is None:
            self._admin_unknown()
        else:
            self._answer(*answer)

    def _admin_read(self, path: str, query: dict[str, list[str]]) -> None:
        """GET /observations or /requests."""
        sandbox = self.sandbox
        if path == "/observations":
            self._answer(200, {"observations": sandbox.all_observations(query.get("storeId", [None])[0])})
            return
        self._answer(
            200,
            {
                "requests": [
                    {"method": r.method, "path": r.path, "status": r.status, "operation": r.operation}
                    # ?bodies=1: what each request carried too (a test's or the soak's own data)
                    | ({"body": r.body, "receivedAt": r.received_at} if query.get("bodies") else {})
                    for r in sandbox.requests
                ]
            },
        )

    def _admin_change(self, path: str, body: dict[str, Any]) -> None:
        """POST /merge, /stores or /fail-next-store."""
        sandbox = self.sandbox
        if path == "/merge":
            merged, canonical = body.get("merged"), body.get("canonical")
            if not isinstance(merged, str) or not isinstance(canonical, str):
                raise _AdminError("merge needs 'merged' and 'canonical' profile ids")
            sandbox.merge_profiles(merged, canonical)
            self._answer(200, body)
        elif path == "/stores":
            display_name, id_types = body.get("displayName", "seeded"), body.get("idTypes")
            if not isinstance(display_name, str):
                raise _AdminError("displayName must be a string")
            if id_types is not None and not (
                isinstance(id_types, list) and all(isinstance(t, str) for t in id_types)
            ):
                raise _AdminError("idTypes must be a list of idType names")
            self._answer(201, {"id": sandbox.seed_store(display_name, id_types=id_types)})
        else:
            sandbox.fail_next_store = {
                "type": "PROVISIONING",
                "title": body.get("title", "Provisioning failed"),
                "code": body.get("code", 520050),
                "detail": body.get("detail", "injected"),
            }
            self._answer(200, sandbox.fail_next_store)

    do_GET = do_POST = do_DELETE = do_PATCH = do_PUT = _handle


class _AdminError(Exception):
    """A well-formed admin request that asks for something impossible: 400 with the message."""


def _injected_error(status: int, retry_after: int | None) -> ApiError:
    """The error a status fault answers with, `Retry-After` included when the fault sets one."""
    headers = {"Retry-After": str(retry_after)} if retry_after is not None else {}
    codes = {429: 20429, 500: 20500, 503: 20503}
    return ApiError(status, codes.get(status, status), "Injected fault", headers)


def _body_error_code(status: int) -> int:
    return 520046 if status == 400 else 20000 + status


def _inflate(raw: bytes, wbits: int, limit: int = MAX_BODY_BYTES) -> bytes:
    """Decompress with a bound on the output; gzip may hold several members, as gzip.decompress
    accepts."""
    data = bytearray()
    while True:
        inflater = zlib.decompressobj(wbits)
        data += inflater.decompress(raw, limit + 1 - len(data))
        if len(data) > limit:
            raise BodyError(413, f"the decompressed body is larger than {limit} bytes")
        if not inflater.eof:
            raise zlib.error("the compressed body is truncated")
        raw = inflater.unused_data
        if not raw or wbits <= zlib.MAX_WBITS:  # only gzip members come concatenated
            return bytes(data)


def _operation_for(method: str, path: str) -> str:
    lifecycle = operation_for(method, [p for p in path.split("/") if p])
    if lifecycle:
        return lifecycle
    if path.endswith("/Observations"):
        return "CreateProfileObservation" if method == "POST" else "ListProfileObservations"
    if path.endswith("/Lookup"):
        return "CreateProfilesLookup"
    if path.endswith("/Profiles"):
        return "CreateProfile"
    if "/ControlPlane/Operations/" in path:
        return "FetchOperation"
    if path.endswith("/IdentityResolutionSettings"):
        return "UpdateIdentityResolutionSettings" if method == "PUT" else "FetchIdentityResolutionSettings"
    if path.endswith("/ControlPlane/Stores"):
        return "CreateStore" if method == "POST" else "ListStores"
    if "/ControlPlane/Stores/" in path:
        return "FetchStore"
    return ""


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(description="Run the Memory API sandbox on loopback.")
    parser.add_argument("--port", type=int, default=8787)
    parser.add_argument("--user", help="accepted Basic-auth user (default: any)")
    parser.add_argument("--password", help="accepted Basic-auth password")
    parser.add_argument("--profile-full", choices=["refuse", "evict"], help="past --observation-limit")
    parser.add_argument("--observation-limit", type=int, default=500)
    parser.add_argument("--list-lag", type=float, default=0.0, help="seconds before a write is listed")
    args = parser.parse_args(argv)
    credentials = {args.user: args.password or ""} if args.user else None
    sandbox = MemorySandbox(
        credentials=credentials,
        profile_full=args.profile_full,
        observation_limit=args.observation_limit,
        list_lag=args.list_lag,
    )
    url = sandbox.serve(port=args.port)
    print(f"Memory sandbox on {url} (Ctrl-C stops it)", flush=True)
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    with contextlib.suppress(KeyboardInterrupt):
        stopped.wait()
    sandbox.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
