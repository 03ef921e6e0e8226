"""A loopback stand-in for Twilio's Conversations REST API (v1), for tests and the local stack (dev-only).

It answers what the bridge and its tools call, as `twilio-conversations-v1.yaml` describes it:
  GET/POST /v1/Configuration/Webhooks, /v1/Services/{IS}/Configuration/Webhooks   (conversations_webhooks)
  POST/GET /v1/Conversations, GET /v1/Conversations/{CH}                           (conversations_api)
  POST/GET /v1/Conversations/{CH}/Participants, GET …/Participants/{MB}
  POST/GET /v1/Conversations/{CH}/Messages, GET …/Messages/{IM}
  GET /v1/ParticipantConversations?Address=… (or Identity=…)
and the same under /v1/Services/{IS}/… (the un-scoped paths reach the default service only, as Twilio's).
Form-encoded requests, JSON answers, Twilio's error bodies (`{code, message, more_info, status}`), HTTP
Basic with the account SID and auth token or an API key (SK…) and its secret.

Tests and dev tools seed it in process (`add_conversation`, `add_participant`, `add_message`), inject
faults (`add_fault(Fault(operation="ListConversationParticipant", status=429, retry_after=2, times=1))`:
a status with Retry-After, latency, a dropped connection, a hang; as the Memory sandbox's, plus
`operation`), and count calls per operationId (`calls`). Over HTTP: `/__sandbox/faults` (POST a fault's
fields as JSON, DELETE to clear, GET to list) and `GET /__sandbox/calls`.
"""

from __future__ import annotations

import base64
import re
import secrets
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from memory_bridge_dev import sandbox as memory_sandbox
from memory_bridge_dev.conversations_api import ConversationsApi
from memory_bridge_dev.conversations_http import ConversationsHandler
from memory_bridge_dev.conversations_store import (
    Answer,
    ConversationsStore,
    Form,
    Participant,
    TwilioError,
)
from memory_bridge_dev.conversations_webhooks import WebhookConfiguration, apply_webhook_form
from memory_bridge_dev.quiet_server import QuietHTTPServer

SERVICE_SID = r"IS[0-9a-fA-F]{32}"
CONVERSATION, SID = r"(?P<conversation>[^/]+)", r"(?P<sid>[^/]+)"


@dataclass
class Fault(memory_sandbox.Fault):
    """The Memory sandbox's fault (status + retry_after, latency, drop, hang + hang_seconds, times,
    match, method), narrowed to one operationId when `operation` is set. No trickle here."""

    operation: str | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.trickle:
            raise ValueError("trickle is not supported by the Conversations sandbox")

    def applies_to(self, method: str, path: str, operation: str) -> bool:
        return self.operation in (None, operation) and self.applies(method, path)


@dataclass(frozen=True)
class Route:
    method: str
    pattern: re.Pattern[str]
    operation: str  # the contract's operationId
    handler: Callable[[re.Match[str], Form], Answer]


@dataclass
class Recorded:
    method: str
    path: str
    form: Form  # the form body
    query: Form = field(default_factory=list)
    operation: str = ""
    status: int | None = None  # None: never answered (a dropped or hung request)
    response_body: Any = None


class ConversationsSandbox:
    """State, routes and faults; `serve()` puts it on loopback."""

    def __init__(
        self,
        account_sid: str,
        auth_token: str,
        api_keys: dict[str, str] | None = None,
        default_service: str | None = None,
    ):
        self.account_sid = account_sid
        # user → password accepted for Basic auth: the account's token and any API key's secret.
        self.credentials = {account_sid: auth_token, **(api_keys or {})}
        self.base_url = ""
        self.account_webhook = WebhookConfiguration()
        self.services: dict[str, WebhookConfiguration] = {}
        self.requests: list[Recorded] = []
        self.faults: list[Fault] = []
        self.lock = threading.RLock()
        # The account's default service (its conversations are also at the un-scoped paths); tests
        # name it, so that the webhooks they sign carry it as ChatServiceSid.
        self.store = ConversationsStore(account_sid)
        if default_service:
            self.store.default_service = default_service
        self.services[self.store.default_service] = WebhookConfiguration()
        self.api = ConversationsApi(self.store, lambda: self.base_url, lambda sid: sid in self.services)
        self.routes = self._routes()
        self._release = threading.Event()  # set to let go of hung requests
        self._server: QuietHTTPServer | None = None

    @property
    def auth_token(self) -> str:
        return self.credentials[self.account_sid]

    @auth_token.setter
    def auth_token(self, token: str) -> None:
        with self.lock:
            self.credentials[self.account_sid] = token

    def _routes(self) -> list[Route]:
        hooks, service = "/Configuration/Webhooks", rf"/Services/(?P<service>{SERVICE_SID})"
        api, chat = self.api, f"/Conversations/{CONVERSATION}"
        plain = [
            ("GET", hooks, "FetchConfigurationWebhook", self.fetch_account),
            ("POST", hooks, "UpdateConfigurationWebhook", self.update_account),
            ("GET", service + hooks, "FetchServiceWebhookConfiguration", self.fetch_service),
            ("POST", service + hooks, "UpdateServiceWebhookConfiguration", self.update_service),
        ]
        scoped = [  # each also under /v1/Services/{IS}, as Create/List/Fetch + "Service" + the rest
            ("POST", "/Conversations", "CreateConversation", api.create_conversation),
            ("GET", "/Conversations", "ListConversation", api.list_conversations),
            ("GET", chat, "FetchConversation", api.fetch_conversation),
            ("POST", f"{chat}/Participants", "CreateConversationParticipant", api.create_participant),
            ("GET", f"{chat}/Participants", "ListConversationParticipant", api.list_participants),
            ("GET", f"{chat}/Participants/{SID}", "FetchConversationParticipant", api.fetch_participant),
            ("POST", f"{chat}/Messages", "CreateConversationMessage", api.create_message),
            ("GET", f"{chat}/Messages", "ListConversationMessage", api.list_messages),
            ("GET", f"{chat}/Messages/{SID}", "FetchConversationMessage", api.fetch_message),
            ("GET", "/ParticipantConversations", "ListParticipantConversation", api.by_participant),
        ]
        for method, suffix, operation, handler in scoped:
            plain.append((method, suffix, operation, handler))
            in_service = re.sub(r"^(Create|List|Fetch)", r"\1Service", operation)
            plain.append((method, service + suffix, in_service, handler))
        return [Route(m, re.compile(rf"^/v1{path}$"), op, handler) for m, path, op, handler in plain]

    # ---- running it ---------------------------------------------------------------------------

    def serve(self, host: str = "127.0.0.1", port: int = 0) -> str:
        handler = type("Handler", (ConversationsHandler,), {"sandbox": self})
        self._server = QuietHTTPServer((host, port), handler)
        self._server.daemon_threads = True
        self.base_url = f"http://{host}:{self._server.server_address[1]}"
        threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="conversations-sandbox",
            daemon=True,
        ).start()
        return self.base_url

    def close(self) -> None:
        self.clear_faults()  # hung requests are let go
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    # ---- seeding, faults and what was seen (for tests and dev tools) --------------------------

    def create_service(self) -> str:
        """A Conversations service of this account (a real one is made in the Console or by the API)."""
        sid = "IS" + secrets.token_hex(16)
        with self.lock:
            self.services[sid] = WebhookConfiguration()
        return sid

    def add_api_key(self, sid: str | None = None, secret: str | None = None) -> tuple[str, str]:
        """An API key (SK…) and its secret that Basic auth accepts from now on."""
        sid, secret = sid or "SK" + secrets.token_hex(16), secret or secrets.token_hex(16)
        with self.lock:
            self.credentials[sid] = secret
        return sid, secret

    def add_conversation(self, sid: str | None = None, service_sid: str | None = None, **kw: Any) -> str:
        with self.lock:
            return self.store.add_conversation(sid, service_sid, **kw)

    def add_participant(self, conversation_sid: str, **kw: Any) -> str:
        with self.lock:
            return self.store.add_participant(conversation_sid, **kw)

    def add_message(self, conversation_sid: str, author: str | None, body: str | None, **kw: Any) -> str:
        with self.lock:
            return self.store.add_message(conversation_sid, author, body, **kw)

    def participants(self, conversation_sid: str) -> list[Participant]:
        with self.lock:
            return self.store.participants(conversation_sid)

    def add_fault(self, fault: Fault) -> Fault:
        with self.lock:
            self.faults.append(fault)
        return fault

    def clear_faults(self) -> None:
        """Remove every fault and let go of the requests that `hang` faults hold."""
        with self.lock:
            self.faults.clear()
            self._release.set()
            self._release = threading.Event()

    def take_fault(self, method: str, path: str, operation: str) -> tuple[Fault | None, threading.Event]:
        with self.lock:
            for fault in list(self.faults):
                if fault.applies_to(method, path, operation):
                    if fault.times is not None:
                        fault.times -= 1
                        if fault.times <= 0:
                            self.faults.remove(fault)
                    return fault, self._release
            return None, self._release

    def requests_to(self, operation: str) -> list[Recorded]:
        with self.lock:
            return [r for r in self.requests if r.operation == operation]

    def calls(self, operation: str | None = None) -> Any:
        """How many requests reached `operation` (faulted, dropped and hung ones included); with no
        operation, a Counter of them all."""
        with self.lock:
            counted = Counter(r.operation for r in self.requests)
        return counted if operation is None else counted[operation]

    # ---- the API --------------------------------------------------------------------------------

    def authorize(self, header: str | None) -> None:
        try:
            user, _, password = base64.b64decode((header or "")[6:]).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            user, password = "", ""
        with self.lock:
            expected = self.credentials.get(user)
        if not (header or "").startswith("Basic ") or expected is None or password != expected:
            raise TwilioError(401, 20003, "Authenticate")

    def route_for(self, method: str, path: str) -> tuple[Route, re.Match[str]] | None:
        for route in self.routes:
            match = route.pattern.match(path)
            if match and route.method == method:
                return route, match
        return None

    def fetch_account(self, _match: re.Match[str], _form: Form) -> Answer:
        return 200, self._account_json()

    def update_account(self, _match: re.Match[str], form: Form) -> Answer:
        apply_webhook_form(self.account_webhook, form, account_level=True)
        return 200, self._account_json()

    def fetch_service(self, match: re.Match[str], _form: Form) -> Answer:
        return 200, self._service_json(match["service"])

    def update_service(self, match: re.Match[str], form: Form) -> Answer:
        sid = match["service"]
        self._service_json(sid)  # 404 when there is no such service
        apply_webhook_form(self.services[sid], form, account_level=False)
        return 200, self._service_json(sid)

    def _account_json(self) -> dict[str, Any]:
        config = self.account_webhook
        return {
            "account_sid": self.account_sid,
            "pre_webhook_url": config.pre_webhook_url,
            "post_webhook_url": config.post_webhook_url,
            "method": config.method,
            "filters": config.filters,
            "target": config.target,
            "url": f"{self.base_url}/v1/Configuration/Webhooks",
        }

    def _service_json(self, sid: str) -> dict[str, Any]:
        config = self.services.get(sid)
        if config is None:
            raise TwilioError(404, 20404, f"The requested resource /Services/{sid} was not found")
        return {
            "account_sid": self.account_sid,
            "chat_service_sid": sid,
            "pre_webhook_url": config.pre_webhook_url,
            "post_webhook_url": config.post_webhook_url,
            "filters": config.filters,
            "method": config.method,
            "url": f"{self.base_url}/v1/Services/{sid}/Configuration/Webhooks",
        }

    def answer(
        self, record: Recorded, header: str | None, fault: Fault | None
    ) -> tuple[int, Any, dict[str, str]]:
        """Status, JSON body and headers for one request (its fields parsed into `record`)."""
        try:
            if fault and fault.status:  # as Memory's sandbox: an injected status comes before auth
                headers = {"Retry-After": str(fault.retry_after)} if fault.retry_after is not None else {}
                raise TwilioError(fault.status, 20000 + fault.status, "Injected fault", headers)
            self.authorize(header)
            found = self.route_for(record.method, record.path)
            if found is None:
                raise TwilioError(404, 20404, f"The requested resource {record.path} was not found")
            route, match = found
            with self.lock:
                status, body = route.handler(match, record.form + record.query)
            return status, body, {}
        except TwilioError as error:
            return error.status, error.body(), error.headers
