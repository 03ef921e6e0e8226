"""A loopback stand-in for Twilio's Conversations REST API (v1), for tests and the local stack (dev-only).

It answers what the bridge's tools call, as `twilio-conversations-v1.yaml` describes it:
  GET/POST /v1/Configuration/Webhooks                      the account-level webhook configuration
  GET/POST /v1/Services/{IS}/Configuration/Webhooks        one service's (the service must exist)
Form-encoded requests, JSON answers, HTTP Basic checked against the dev credentials, Twilio's error
bodies (`{code, message, more_info, status}`). POST changes only the fields it carries, as Twilio does.

To add an endpoint (participants, messages, …): write a method `(match, form) -> (status, body)` and
add a `Route` for it to `ConversationsSandbox.routes`; requests are recorded with the route's
operationId, which the contract test holds against the YAML.
"""

from __future__ import annotations

import base64
import json
import re
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from memory_bridge_dev.quiet_server import QuietHTTPServer
from memory_bridge_dev.sandbox import BodyError, body_length, read_body

SERVICE_SID = r"IS[0-9a-fA-F]{32}"
# The filters the contract lists for webhook configurations (account-level and per service).
FILTERS = frozenset(
    {
        "onMessageAdded",
        "onMessageUpdated",
        "onMessageRemoved",
        "onMessageAdd",
        "onMessageUpdate",
        "onMessageRemove",
        "onConversationUpdated",
        "onConversationRemoved",
        "onConversationAdd",
        "onConversationAdded",
        "onConversationRemove",
        "onConversationUpdate",
        "onConversationStateUpdated",
        "onParticipantAdded",
        "onParticipantUpdated",
        "onParticipantRemoved",
        "onParticipantAdd",
        "onParticipantRemove",
        "onParticipantUpdate",
        "onDeliveryUpdated",
        "onUserAdded",
        "onUserUpdate",
        "onUserUpdated",
    }
)
Form = list[tuple[str, str]]
Answer = tuple[int, Any]


class TwilioError(Exception):
    def __init__(self, status: int, code: int, message: str):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message

    def body(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "message": self.message,
            "more_info": f"https://www.twilio.com/docs/errors/{self.code}",
            "status": self.status,
        }


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
    form: Form
    operation: str = ""
    status: int | None = None
    response_body: Any = None


@dataclass
class WebhookConfiguration:
    pre_webhook_url: str | None = None
    post_webhook_url: str | None = None
    method: str = "POST"
    filters: list[str] | None = None
    target: str = "webhook"  # account-level only


@dataclass
class ConversationsSandbox:
    account_sid: str
    auth_token: str
    base_url: str = ""
    account_webhook: WebhookConfiguration = field(default_factory=WebhookConfiguration)
    services: dict[str, WebhookConfiguration] = field(default_factory=dict)
    requests: list[Recorded] = field(default_factory=list)
    lock: threading.RLock = field(default_factory=threading.RLock)
    _server: ThreadingHTTPServer | None = field(default=None, init=False, repr=False)

    @property
    def routes(self) -> list[Route]:
        webhooks = "/Configuration/Webhooks"
        service = rf"^/v1/Services/(?P<service>{SERVICE_SID}){webhooks}$"
        return [
            Route("GET", re.compile(rf"^/v1{webhooks}$"), "FetchConfigurationWebhook", self.fetch_account),
            Route("POST", re.compile(rf"^/v1{webhooks}$"), "UpdateConfigurationWebhook", self.update_account),
            Route("GET", re.compile(service), "FetchServiceWebhookConfiguration", self.fetch_service),
            Route("POST", re.compile(service), "UpdateServiceWebhookConfiguration", self.update_service),
        ]

    # ---- running it ---------------------------------------------------------------------------

    def serve(self, host: str = "127.0.0.1", port: int = 0) -> str:
        sandbox = self

        class Handler(_Handler):
            pass

        Handler.sandbox = sandbox
        self._server = QuietHTTPServer((host, port), Handler)
        self.base_url = f"http://{host}:{self._server.server_address[1]}"
        threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="conversations-sandbox",
            daemon=True,
        ).start()
        return self.base_url

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    # ---- test helpers ---------------------------------------------------------------------------

    def create_service(self) -> str:
        """A Conversations service of this account (a real one is made in the Console or by the API)."""
        sid = "IS" + secrets.token_hex(16)
        with self.lock:
            self.services[sid] = WebhookConfiguration()
        return sid

    def requests_to(self, operation: str) -> list[Recorded]:
        with self.lock:
            return [r for r in self.requests if r.operation == operation]

    # ---- the API --------------------------------------------------------------------------------

    def authorize(self, header: str | None) -> None:
        try:
            user, _, password = base64.b64decode((header or "")[6:]).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            user, password = "", ""
        if not (header or "").startswith("Basic ") or (user, password) != (self.account_sid, self.auth_token):
            raise TwilioError(401, 20003, "Authenticate")

    def dispatch(self, method: str, path: str, form: Form) -> tuple[str, int, Any]:
        """(operationId, status, JSON body) for one authorized request."""
        for route in self.routes:
            match = route.pattern.match(path)
            if match and route.method == method:
                with self.lock:
                    return (route.operation, *route.handler(match, form))
        raise TwilioError(404, 20404, f"The requested resource {path} was not found")

    def fetch_account(self, _match: re.Match[str], _form: Form) -> Answer:
        return 200, self._account_json()

    def update_account(self, _match: re.Match[str], form: Form) -> Answer:
        _apply(self.account_webhook, form, account_level=True)
        return 200, self._account_json()

    def fetch_service(self, match: re.Match[str], _form: Form) -> Answer:
        return 200, self._service_json(match["service"])

    def update_service(self, match: re.Match[str], form: Form) -> Answer:
        sid = match["service"]
        self._service_json(sid)  # 404 when there is no such service
        _apply(self.services[sid], form, account_level=False)
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


def _apply(config: WebhookConfiguration, form: Form, *, account_level: bool) -> None:
    """Change what the form carries, after checking all of it (nothing changes on a 400)."""
    fields: dict[str, list[str]] = {}
    for name, value in form:
        fields.setdefault(name, []).append(value)
    known = {"PreWebhookUrl", "PostWebhookUrl", "Method", "Filters"} | (
        {"Target"} if account_level else set()
    )
    unknown = set(fields) - known
    if unknown:
        raise TwilioError(400, 20001, f"Unknown parameter {sorted(unknown)[0]}")
    urls = {name: fields[name][-1] for name in ("PreWebhookUrl", "PostWebhookUrl") if name in fields}
    for name, url in urls.items():
        if url and not re.match(r"^https?://[^\s/]+", url):
            raise TwilioError(400, 20001, f"{name} must be an absolute URL")
    method = fields.get("Method", [config.method])[-1].upper()
    if method not in ("GET", "POST"):
        raise TwilioError(400, 20001, "Method must be GET or POST")
    bad = [f for f in fields.get("Filters", []) if f not in FILTERS]
    if bad:
        raise TwilioError(400, 20001, f"Invalid filter {bad[0]}")
    target = fields.get("Target", [config.target])[-1]
    if target not in ("webhook", "flex"):
        raise TwilioError(400, 20001, "Target must be webhook or flex")
    config.pre_webhook_url = urls.get("PreWebhookUrl", config.pre_webhook_url) or None
    config.post_webhook_url = urls.get("PostWebhookUrl", config.post_webhook_url) or None
    config.method = method
    if "Filters" in fields:
        config.filters = list(dict.fromkeys(fields["Filters"]))
    config.target = target


class _Handler(BaseHTTPRequestHandler):
    sandbox: ConversationsSandbox
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:  # noqa: ARG002 - quiet
        return

    def _handle(self) -> None:
        url = urlsplit(self.path)
        record = Recorded(self.command, url.path, [])
        try:
            raw = read_body(self.rfile, body_length(self.headers))
        except BodyError as error:
            self.close_connection = True
            self._answer(error.status, TwilioError(error.status, 20000 + error.status, error.message).body())
            return
        try:
            record.form = parse_qsl(raw.decode("utf-8"), keep_blank_values=True, strict_parsing=bool(raw))
            record.form += parse_qsl(url.query, keep_blank_values=True)
        except (UnicodeDecodeError, ValueError):
            record.status, record.response_body = 400, TwilioError(400, 20001, "Malformed form body").body()
        else:
            try:
                self.sandbox.authorize(self.headers.get("Authorization"))
                record.operation, record.status, record.response_body = self.sandbox.dispatch(
                    self.command, url.path, record.form
                )
            except TwilioError as error:
                record.status, record.response_body = error.status, error.body()
        with self.sandbox.lock:
            self.sandbox.requests.append(record)
        self._answer(record.status or 500, record.response_body)

    def _answer(self, status: int, body: Any) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_DELETE = _handle
