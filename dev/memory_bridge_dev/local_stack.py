"""`make run`: the whole bridge on one machine, no Docker, no AWS account.

  moto's server        Secrets Manager, SQS and DynamoDB, the resources created as template.yaml declares
  the Memory sandbox   with a store made ready through `memory-bridge setup --skip-deploy`, as `make
                       deploy` makes one: created (its async operation included), its identity
                       resolution given every idType the bridge sends, the secret written
  a Conversations sandbox  (a free port) whose account-level post-event webhook that same setup points
                       at the local API front
  a local API front    POST /webhooks/conversations → a real API Gateway event → the real WebhookFunction

Dev-only controls on the front (never part of the deployed API):
  POST   /__local/sqs-clock   {"advance": 901}   moves moto's SQS clock ahead: held messages come back
  POST   /__local/aws-faults  {"service": "dynamodb", "mode": "status", "status": 500}
                              {"service": "sqs", "mode": "hang", "operation": "SendMessage"}
  DELETE /__local/aws-faults                     the webhook's AWS calls go through again
The AWS faults need `--aws-fault-proxy`: a fault proxy (memory_bridge_dev.fault_proxy) between the
webhook and moto, one for SQS and one for DynamoDB. The CLI still talks to moto directly.

Ctrl-C stops everything.
"""

from __future__ import annotations

import signal
import sys

if __name__ == "__main__":
    # Before the imports below (moto's take a second or two): Ctrl-C, or a SIGINT sent to a stack
    # started in the background (which inherits SIGINT as ignored), ends start-up quietly.
    def _leave(*_: object) -> None:
        raise SystemExit(130)

    signal.signal(signal.SIGINT, _leave)
    signal.signal(signal.SIGTERM, _leave)

import argparse
import contextlib
import io
import json
import logging
import os
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from memory_bridge.config import REPLAY_VARIABLES
from memory_bridge_dev import scheduled_replay
from memory_bridge_dev.apigw import LocalLambdaContext, load_handler_module, rest_api_event
from memory_bridge_dev.aws_resources import (
    create_dead_letter_queue,
    create_idempotency_table,
    load_template,
)
from memory_bridge_dev.conversations_sandbox import ConversationsSandbox
from memory_bridge_dev.quiet_server import QuietHTTPServer
from memory_bridge_dev.sandbox import MemorySandbox

DEV_ACCOUNT_SID = "AC00000000000000000000000000000000"
DEV_AUTH_TOKEN = "dev-auth-token-0123456789abcdef"
WEBHOOK_PATH = "/webhooks/conversations"
SECRET_NAME = "memory-bridge/local"
QUEUE_NAME = "memory-bridge-dead-letters"
TABLE_NAME = "memory-bridge-idempotency"
# What the template's AWS::StackName resolves to here: the functions' POWERTOOLS_SERVICE_NAME.
LOCAL_STACK_NAME = "memory-bridge-local"


def function_environment(template: dict[str, Any], values: dict[str, str]) -> dict[str, str]:
    """The template's Globals environment with its Refs resolved to the local stack's values.

    Parameters with defaults take them; `values` supplies resources and required parameters, and may
    name the stack (`AWS::StackName`, the metrics' `service` dimension), else LOCAL_STACK_NAME.
    """
    parameters = template.get("Parameters", {})
    values = {"AWS::StackName": LOCAL_STACK_NAME, **values}
    resolved: dict[str, str] = {}
    for name, value in template["Globals"]["Function"]["Environment"]["Variables"].items():
        result = _resolve(value, parameters, values)
        if result is not None:
            resolved[name] = result
    return resolved


def _resolve(value: Any, parameters: dict[str, Any], values: dict[str, str]) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and "Ref" in value:
        ref = value["Ref"]
        if ref == "AWS::NoValue":
            return None
        if ref in values:
            return values[ref]
        if ref in parameters and "Default" in parameters[ref]:
            return str(parameters[ref]["Default"])
        raise KeyError(f"the local stack has no value for {ref}")
    if isinstance(value, dict) and "Fn::If" in value:
        condition, when_true, when_false = value["Fn::If"]
        chosen = when_true if values.get(f"Condition:{condition}") == "true" else when_false
        return _resolve(chosen, parameters, values)
    raise ValueError(f"unsupported template value {value!r}")


def bindable_moto_server(host: str, port: int) -> Any:
    """moto's threaded server, except that a port taken between our check and its bind (two `make
    run`s at the same moment) raises OSError here: moto's own start() would wait for ever."""
    from moto.server import ThreadedMotoServer

    class Server(ThreadedMotoServer):
        failure: BaseException | None = None

        def _server_entry(self) -> None:
            try:
                super()._server_entry()
            except BaseException as error:  # noqa: BLE001 - werkzeug exits (SystemExit) on a taken port
                if not self._server_ready_event.is_set():
                    self.failure = error
                    self._server_ready_event.set()

        def start(self) -> None:
            super().start()
            if self.failure is not None:
                raise OSError(f"port {port} (moto) is already in use")

    return Server(ip_address=host, port=port, verbose=False)


@dataclass
class LocalStack:
    front_port: int = 3000
    sandbox_port: int = 8787
    moto_port: int = 5000
    host: str = "127.0.0.1"
    provisioning_seconds: float = 1.5
    aws_fault_proxy: bool = False
    state_path: str | None = None
    on_webhook: Any = None
    servers: list[Any] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)

    def start(self, progress: Any = print) -> dict[str, Any]:
        from memory_bridge_dev import moto_speedups

        moto_speedups.apply()
        moto = bindable_moto_server(self.host, self.moto_port)
        moto.start()
        self.servers.append(moto)
        moto_url = f"http://{self.host}:{self.moto_port}"
        os.environ.update(
            AWS_ENDPOINT_URL=moto_url,
            AWS_ACCESS_KEY_ID="local",
            AWS_SECRET_ACCESS_KEY="local",
            AWS_DEFAULT_REGION=os.environ.get("AWS_DEFAULT_REGION", "us-east-1"),
        )
        os.environ.pop("AWS_PROFILE", None)
        import boto3

        template = load_template()
        progress(f"• AWS (moto) on {moto_url}: creating the queue and table from template.yaml")
        queue_url = create_dead_letter_queue(boto3.client("sqs"), QUEUE_NAME, template)
        table = create_idempotency_table(boto3.client("dynamodb"), TABLE_NAME, template)

        sandbox = MemorySandbox(
            credentials={DEV_ACCOUNT_SID: DEV_AUTH_TOKEN}, provisioning_seconds=self.provisioning_seconds
        )
        sandbox_url = sandbox.serve(self.host, self.sandbox_port)
        self.servers.append(sandbox)
        conversations = ConversationsSandbox(DEV_ACCOUNT_SID, DEV_AUTH_TOKEN)
        conversations_url = conversations.serve(self.host)
        self.servers.append(conversations)
        webhook_url = f"http://{self.host}:{self.front_port}{WEBHOOK_PATH}"
        progress(
            f"• Memory sandbox on {sandbox_url}, Conversations sandbox on {conversations_url}: "
            "`memory-bridge setup --skip-deploy`, as `make deploy` runs it"
        )
        made = self._setup(sandbox_url, conversations_url, webhook_url, progress)
        store_id, secret_arn = made["storeId"], made["secretArn"]

        environment = function_environment(
            template,
            {
                "MemoryStoreId": store_id,
                "TwilioCredentialsSecret": SECRET_NAME,
                "DeadLetterQueue": queue_url,
                "IdempotencyTable": table,
                "MemoryApiBaseUrl": sandbox_url,
                "ConversationsApiBaseUrl": conversations_url,
            },
        )
        # The functions read each conversation's participants from the Conversations sandbox (set here
        # too, so that it holds whether or not this template maps the parameter to the variable).
        environment["CONVERSATIONS_API_BASE_URL"] = conversations_url
        # Memory's limit per profile from the shell, to meet the sandbox's small one
        # (POST /__sandbox/observation-rules {"profileFull": "refuse", "limit": 5}); else the template's.
        for name in ("PROFILE_OBSERVATION_LIMIT", "PROFILE_FULL_POLICY"):
            if os.environ.get(name):
                environment[name] = os.environ[name]
        os.environ.update(environment)
        os.environ.setdefault("AWS_LAMBDA_FUNCTION_NAME", "WebhookFunction")
        proxies: dict[str, Any] = {}
        if self.aws_fault_proxy:
            from memory_bridge_dev.fault_proxy import FaultProxy

            # Only the webhook (this process) goes through them: boto3's per-service endpoints.
            for service in ("sqs", "dynamodb"):
                proxy = FaultProxy(moto_url, host=self.host)
                os.environ[f"AWS_ENDPOINT_URL_{service.upper()}"] = proxy.serve()
                self.servers.append(proxy)
                proxies[service] = proxy
        front = LocalApiFront(self.host, self.front_port, proxies, on_webhook=self.on_webhook)
        front.start()
        self.servers.append(front)
        self.info = {
            "webhook_url": webhook_url,
            "auth_token": DEV_AUTH_TOKEN,
            "account_sid": DEV_ACCOUNT_SID,
            "store_id": store_id,
            "sandbox_url": sandbox_url,
            "conversations_url": conversations_url,
            "queue_url": queue_url,
            "moto_url": moto_url,
            "secret_arn": secret_arn,
            "idempotency_table": table,
            # What the CLI's replay must match (memory_bridge.config.ReplaySettings.for_operator).
            "replay_environment": {k: v for k, v in environment.items() if k in REPLAY_VARIABLES},
            "control_url": f"http://{self.host}:{self.front_port}/__local",
            "aws_fault_proxy": sorted(proxies),
            "pid": os.getpid(),
        }
        self.write_state()
        return self.info

    def _setup(
        self, sandbox_url: str, conversations_url: str, webhook_url: str, progress: Any
    ) -> dict[str, Any]:
        """`memory-bridge setup --skip-deploy` against the sandboxes and moto: the store, its identity
        resolution, the secret and the Conversations webhook, made as a deploy makes them."""
        from memory_bridge_cli import main as cli

        out = io.StringIO()
        previous = {
            k: os.environ.pop(k, None)
            for k in ("TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN", "TWILIO_API_KEY", "TWILIO_API_SECRET")
        }
        os.environ.update(TWILIO_ACCOUNT_SID=DEV_ACCOUNT_SID, TWILIO_AUTH_TOKEN=DEV_AUTH_TOKEN)
        try:
            code = cli.main(
                [
                    "setup",
                    "--skip-deploy",
                    "--display-name",
                    "memory-bridge-local",
                    "--description",
                    "Local stack store",
                    "--secret-name",
                    SECRET_NAME,
                    "--memory-api-url",
                    sandbox_url,
                    "--conversations-api-url",
                    conversations_url,
                    "--webhook-url",
                    webhook_url,
                    "--json",
                ],
                out=out,
                err=_Prefixed(progress),
            )
        finally:
            for name, value in previous.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value
        if code == 130:  # Ctrl-C while the store was being created: the CLI turned it into an exit code
            raise KeyboardInterrupt
        if code != 0:
            raise RuntimeError("the local stack's setup failed (see the lines above)")
        made: dict[str, Any] = json.loads(out.getvalue())
        return made

    def write_state(self) -> None:
        """The state file the CLI finds the stack by. It holds the dev credentials and the CLI
        believes it, so it is written 0600 as a new file that replaces what was there (a symlink
        planted at the path included: replaced, its target untouched)."""
        from memory_bridge_cli.common import local_state_path, write_private_file

        path = local_state_path() if self.state_path is None else Path(self.state_path)
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        write_private_file(path, json.dumps(self.info, indent=2))
        self.info["state_file"] = str(path)

    def stop(self) -> None:
        for server in reversed(self.servers):
            with contextlib.suppress(Exception):
                if hasattr(server, "stop"):
                    server.stop()
                else:
                    server.close()
        self.servers.clear()
        for service in self.info.get("aws_fault_proxy", []):
            os.environ.pop(f"AWS_ENDPOINT_URL_{service.upper()}", None)
        state_file = self.info.get("state_file")
        if state_file:
            with contextlib.suppress(OSError, ValueError):
                if json.loads(Path(state_file).read_text()).get("pid") == os.getpid():
                    os.remove(state_file)  # only ours: another stack may have written it since


class _Prefixed(io.StringIO):
    """A text stream that hands each line to `progress`, indented."""

    def __init__(self, progress: Any):
        super().__init__()
        self._progress = progress

    def write(self, text: str) -> int:
        for line in text.splitlines():
            if line.strip():
                self._progress(f"    {line.strip()}")
        return len(text)

    def flush(self) -> None:
        return


def _outcome(body: bytes) -> str:
    try:
        answer = json.loads(body)
    except ValueError:
        return "-"
    return str(answer.get("outcome", "-")) if isinstance(answer, dict) else "-"


class LocalApiFront:
    """What `sam local start-api` does, without Docker: HTTP request → API Gateway event → handler."""

    API_GATEWAY_MAX_BODY = 10 * 1024 * 1024  # API Gateway's payload limit; larger is answered 413

    def __init__(
        self,
        host: str,
        port: int,
        aws_proxies: dict[str, Any] | None = None,
        on_webhook: Any = None,
    ):
        self.host, self.port = host, port
        self.aws_proxies = aws_proxies or {}
        self.on_webhook = on_webhook  # (status, outcome, milliseconds, MessageSid) after each webhook
        self.handler_module = load_handler_module()
        self._server: ThreadingHTTPServer | None = None

    def start(self) -> None:
        front = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # no 40 ms Nagle/delayed-ACK stall per answer

            def log_message(self, format: str, *args: Any) -> None:  # noqa: ARG002 - handler logs
                return

            def do_POST(self) -> None:
                front.handle(self)

            def do_GET(self) -> None:
                front.handle(self)

            def do_DELETE(self) -> None:
                front.handle(self)

        self._server = QuietHTTPServer((self.host, self.port), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, name="api-front", daemon=True).start()

    def handle(self, request: BaseHTTPRequestHandler) -> None:
        from memory_bridge_dev.sandbox import BodyError, body_length, read_body

        path, _, query = request.path.partition("?")
        try:
            # Read (or reject) the body before routing: one left unread would be taken for the
            # next request on this keep-alive connection.
            body = read_body(request.rfile, body_length(request.headers, limit=self.API_GATEWAY_MAX_BODY))
        except BodyError as error:
            # API Gateway answers a request it cannot frame; nothing after it on the connection
            # can be trusted, so close it.
            message = (
                f"HTTP content length exceeded {self.API_GATEWAY_MAX_BODY} bytes."
                if error.status == 413
                else f"Bad request: {error.message}"
            )
            request.close_connection = True
            self._reply(
                request,
                error.status,
                {"Content-Type": "application/json", "Connection": "close"},
                json.dumps({"message": message}).encode(),
            )
            return
        if path.startswith("/__local/"):
            status, answer = self.control(request.command, path, body)
            self._reply(request, status, {"Content-Type": "application/json"}, json.dumps(answer).encode())
            return
        if path != WEBHOOK_PATH or request.command != "POST":
            # API Gateway's answer for a route that does not exist.
            self._reply(
                request,
                403,
                {"Content-Type": "application/json"},
                json.dumps({"message": "Missing Authentication Token"}).encode(),
            )
            return
        try:
            body.decode("utf-8")
        except UnicodeDecodeError:
            # A REST API without binary media types hands the function text; this front refuses
            # what cannot be text rather than drop the connection.
            self._reply(
                request,
                400,
                {"Content-Type": "application/json"},
                b'{"message": "Bad request: the body is not valid UTF-8"}',
            )
            return
        event = rest_api_event(
            method="POST",
            path=path,
            headers=dict(request.headers.items()),
            body=body,
            query=query,
            stage="Prod",
            host=request.headers.get("Host", f"{self.host}:{self.port}"),
            context_path=path,
            scheme="http",
        )
        started = time.perf_counter()
        try:
            result = self.handler_module.lambda_handler(event, LocalLambdaContext())
        except Exception:  # noqa: BLE001 - API Gateway answers 502 when the function fails
            self._reply(
                request, 502, {"Content-Type": "application/json"}, b'{"message": "Internal server error"}'
            )
            self._report(502, "function error", started, body)
            return
        data = str(result.get("body") or "").encode()
        status = int(result.get("statusCode", 200))
        self._reply(request, status, result.get("headers") or {}, data)
        self._report(status, _outcome(data), started, body)

    def _report(self, status: int, outcome: str, started: float, body: bytes) -> None:
        if self.on_webhook is not None:
            sid = dict(parse_qsl(body.decode("utf-8", "replace"))).get("MessageSid", "-")
            self.on_webhook(status, outcome, (time.perf_counter() - started) * 1000, sid[:40])

    def control(self, method: str, path: str, body: bytes) -> tuple[int, dict[str, Any]]:
        """The dev-only controls (see the module's docstring): (status, JSON answer)."""
        from memory_bridge_dev import moto_speedups

        try:
            asked = json.loads(body or b"{}")
            if not isinstance(asked, dict):
                raise ValueError("the body must be a JSON object")
            if path == "/__local/sqs-clock" and method == "POST":
                moto_speedups.advance(float(asked.get("advance", 0)))
                return 200, {"offset": moto_speedups.offset()}
            if path == "/__local/aws-faults" and method == "DELETE":
                for proxy in self.aws_proxies.values():
                    proxy.clear()
                return 200, {"cleared": sorted(self.aws_proxies)}
            if path == "/__local/aws-faults" and method == "POST":
                proxy = self.aws_proxies.get(str(asked.pop("service", "")))
                if proxy is None:
                    known = sorted(self.aws_proxies) or "none: start with --aws-fault-proxy"
                    return 400, {"error": f"service must be one of {known}"}
                fault = proxy.set_fault(str(asked.pop("mode", "")), **asked)
                return 200, {"mode": fault.mode, "operation": fault.operation}
        except (ValueError, TypeError) as error:
            return 400, {"error": str(error)}
        return 404, {"error": f"no control {method} {path}"}

    @staticmethod
    def _reply(request: BaseHTTPRequestHandler, status: int, headers: dict[str, str], data: bytes) -> None:
        request.send_response(status)
        for name, value in headers.items():
            request.send_header(name, value)
        request.send_header("Content-Length", str(len(data)))
        request.end_headers()
        request.wfile.write(data)

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()


@contextlib.contextmanager
def running_stack(**kwargs: Any) -> Iterator[LocalStack]:
    stack = LocalStack(**kwargs)
    try:
        stack.start(progress=lambda _line: None)
        yield stack
    finally:
        stack.stop()


def summary(info: dict[str, Any]) -> str:
    cli = ".venv/bin/memory-bridge"
    if os.environ.get("MEMORY_BRIDGE_LOCAL_STATE"):  # a second stack: the CLI must be told where it is
        cli = f"MEMORY_BRIDGE_LOCAL_STATE={os.environ['MEMORY_BRIDGE_LOCAL_STATE']} {cli}"
    return "\n".join(
        [
            "",
            "memory-bridge local stack is up (Ctrl-C stops it)",
            f"  webhook URL     {info['webhook_url']}",
            f"  dev auth token  {info['auth_token']}   (signs webhooks; local only)",
            f"  store id        {info['store_id']}",
            f"  Memory sandbox  {info['sandbox_url']}",
            f"  Conversations   {info.get('conversations_url')}   (sandbox; its webhook calls the URL above)",
            f"  dead letters    {info['queue_url']}",
            "",
            "Send a message:",
            f"  {cli} send --from +15555550100 --body 'Hi, where is my order?'",
            "See the result:",
            f"  {cli} observations list --address +15555550100",
            "Break Memory (every post answers 503) and heal it again:",
            f"  curl -s -X POST {info['sandbox_url']}/__sandbox/faults -d '{{\"status\": 503}}'",
            f"  curl -s -X DELETE {info['sandbox_url']}/__sandbox/faults",
            "",
        ]
    )


PORT_ROLES = {"front_port": "the local API front", "sandbox_port": "the Memory sandbox", "moto_port": "moto"}
PORT_VARIABLES = {"front_port": "FRONT_PORT", "sandbox_port": "SANDBOX_PORT", "moto_port": "MOTO_PORT"}


def busy_ports(host: str, ports: dict[str, int]) -> dict[str, int]:
    """The ports (by role) that something already listens on. Checked before anything starts: a
    busy moto port makes moto's server wait for ever for a start that never comes."""
    return {role: port for role, port in ports.items() if not _bindable(host, port)}


def _bindable(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the servers bind
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def free_ports_near(host: str, ports: dict[str, int]) -> dict[str, int]:
    """For the hint: the next free port above each one asked for."""
    chosen: dict[str, int] = {}
    for role, port in ports.items():
        candidate = port + 1
        while candidate < 65535 and (candidate in chosen.values() or not _bindable(host, candidate)):
            candidate += 1
        chosen[role] = candidate
    return chosen


def stack_ports(state: dict[str, Any] | None) -> set[int]:
    """The ports a running stack's state file says it holds."""
    ports = set()
    for key in ("webhook_url", "sandbox_url", "moto_url"):
        with contextlib.suppress(ValueError, TypeError):
            port = urlsplit(str((state or {}).get(key, ""))).port
            if port:
                ports.add(port)
    return ports


def ports_in_use_message(
    busy: dict[str, int], state: dict[str, Any] | None, state_path: Path, free: dict[str, int] | None = None
) -> str:
    taken = ", ".join(f"{port} ({PORT_ROLES[role]})" for role, port in busy.items())
    lines = [f"make run: port {taken} already in use."]
    pid = (state or {}).get("pid")
    if isinstance(pid, int) and is_local_stack(pid) and set(busy.values()) & stack_ports(state):
        lines.append(
            f"  Another local stack is running (pid {pid}, {state_path}); its webhook URL is "
            f"{(state or {}).get('webhook_url')}. Use it, or stop it with Ctrl-C in its terminal "
            f"(or `kill {pid}`)."
        )
    else:
        pattern = "|".join(str(p) for p in busy.values())
        lines.append(f"  Something else listens there; `ss -ltnp | grep -E ':({pattern})\\b'` shows what.")
    if free:
        settings = " ".join(f"{PORT_VARIABLES[role]}={port}" for role, port in free.items())
        lines.append(
            f"  Or run this one on free ports, with its own state file: {settings} "
            "MEMORY_BRIDGE_LOCAL_STATE=/tmp/second-stack.json make run"
        )
    return "\n".join(lines)


def is_local_stack(pid: int) -> bool:
    """A live process that runs the local stack (a test may run it in-process, as pytest)."""
    from memory_bridge_cli.common import process_alive

    if not process_alive(pid):
        return False
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return True  # no /proc here: trust the state file
    return b"memory_bridge_dev" in command or b"pytest" in command


def port_number(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a port number from 1 to 65535, got {text!r}") from None
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"must be a port number from 1 to 65535, got {port}")
    return port


class ReadableOutput(io.TextIOBase):
    """`make run`'s terminal: the function's one-line JSON logs and metrics are for CloudWatch, not
    for people. Warnings and errors keep one short line each; the rest goes unless --raw-logs."""

    def __init__(self, target: Any):
        self._target = target
        self._partial = ""
        self._lock = threading.Lock()  # webhook threads and the scheduled replay write at once

    def write(self, text: str) -> int:
        with self._lock:
            self._partial += text
            *lines, self._partial = self._partial.split("\n")
            for line in lines:
                shown = self._readable(line)
                if shown is not None:
                    self._target.write(shown + "\n")
            self._target.flush()
        return len(text)

    def flush(self) -> None:
        self._target.flush()

    @staticmethod
    def _readable(line: str) -> str | None:
        if not line.startswith("{"):
            return line
        try:
            record = json.loads(line)
        except ValueError:
            return line
        if not isinstance(record, dict) or "_aws" in record:
            return None  # a metrics (EMF) document
        level = str(record.get("level", "INFO"))
        if level in ("DEBUG", "INFO"):
            return None
        detail = record.get("reason") or record.get("error") or ""
        return f"{_clock()}  {level.lower():<8} {record.get('message', '')}" + (
            f" ({str(detail)[:120]})" if detail else ""
        )


def _clock() -> str:
    return time.strftime("%H:%M:%S")


def print_webhook(status: int, outcome: str, milliseconds: float, message_sid: str) -> None:
    # One write per line: print() writes the text and its newline apart, which other threads can split.
    sys.stdout.write(f"{_clock()}  {status} {outcome:<14} {milliseconds:6.0f} ms  {message_sid}\n")
    sys.stdout.flush()


def main(argv: list[str] | None = None) -> int:
    stopped = threading.Event()
    starting = threading.Event()
    starting.set()
    # Handled explicitly, and first: a stack started in the background inherits SIGINT as ignored.
    _handle_signals(stopped, starting)
    parser = _argument_parser()
    args = parser.parse_args(argv)
    from memory_bridge_cli.common import local_state_path

    state_path = local_state_path()
    ports = {"front_port": args.front_port, "sandbox_port": args.sandbox_port, "moto_port": args.moto_port}
    if len(set(ports.values())) < len(ports):
        parser.error("the front, sandbox and moto ports must all differ")
    refusal = _why_not_start(ports, state_path)
    if refusal is not None:
        print(refusal, file=sys.stderr)
        return 2
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's per-request lines
    if not args.raw_logs:
        sys.stdout = ReadableOutput(sys.stdout)
    stack = LocalStack(
        front_port=args.front_port,
        sandbox_port=args.sandbox_port,
        moto_port=args.moto_port,
        provisioning_seconds=args.provisioning_seconds,
        aws_fault_proxy=args.aws_fault_proxy,
        on_webhook=None if args.raw_logs else print_webhook,
    )
    return _run_until_stopped(stack, args, stopped, starting)


def _handle_signals(stopped: threading.Event, starting: threading.Event) -> None:
    """SIGTERM and SIGINT set `stopped`; while `starting` is set they also raise SystemExit(130)."""

    def on_signal(*_: Any) -> None:
        stopped.set()
        if starting.is_set():  # start-up blocks in calls that only an exception interrupts
            raise SystemExit(130)  # through main's `finally`, which stops what was started

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)


def _argument_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="make run", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    # String defaults go through `type` too, so a bad FRONT_PORT=abc is refused like --front-port abc.
    parser.add_argument(
        "--front-port", type=port_number, default=os.environ.get("FRONT_PORT", "3000"), help="or FRONT_PORT"
    )
    parser.add_argument(
        "--sandbox-port",
        type=port_number,
        default=os.environ.get("SANDBOX_PORT", "8787"),
        help="or SANDBOX_PORT",
    )
    parser.add_argument(
        "--moto-port", type=port_number, default=os.environ.get("MOTO_PORT", "5000"), help="or MOTO_PORT"
    )
    parser.add_argument(
        "--provisioning-seconds",
        type=float,
        default=1.5,
        help="how long the sandbox takes to make a store ACTIVE",
    )
    parser.add_argument(
        "--aws-fault-proxy",
        action="store_true",
        help="put a fault proxy between the webhook and moto (SQS, DynamoDB), driven by /__local/aws-faults",
    )
    parser.add_argument(
        "--raw-logs",
        action="store_true",
        default=os.environ.get("RAW_LOGS", "") not in ("", "0"),
        help="print the function's JSON logs and metrics as Lambda writes them (RAW_LOGS=1), instead of "
        "one line per webhook: time, status, outcome, milliseconds, MessageSid",
    )
    scheduled_replay.add_arguments(parser)
    return parser


def _why_not_start(ports: dict[str, int], state_path: Path) -> str | None:
    """What to tell the operator when a port is taken or the state file is another live stack's."""
    try:
        state = json.loads(state_path.read_text())
    except (OSError, ValueError):
        state = None
    busy = busy_ports("127.0.0.1", ports)
    if busy:
        free = free_ports_near("127.0.0.1", ports)
        return ports_in_use_message(busy, state, state_path, free)
    owner = (state or {}).get("pid")
    if isinstance(owner, int) and owner != os.getpid() and is_local_stack(owner):
        return (
            f"make run: the local stack of pid {owner} keeps its state in {state_path}, which the CLI reads "
            "to find it; give this one its own: MEMORY_BRIDGE_LOCAL_STATE=/tmp/second-stack.json make run"
        )
    return None


def _run_until_stopped(
    stack: LocalStack, args: argparse.Namespace, stopped: threading.Event, starting: threading.Event
) -> int:
    """Start the stack and its scheduled replay, serve until `stopped`, then stop both; the exit code."""
    schedule = None
    try:
        info = stack.start(progress=lambda line: print(line, flush=True))
        print(summary(info), flush=True)
        schedule = scheduled_replay.start_from_args(args, report=lambda line: print(line, flush=True))
        starting.clear()
        while not stopped.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    except OSError as error:
        print(
            f"make run: {error}. Is another stack running? Choose other ports, and a state file of its "
            "own: FRONT_PORT=3001 SANDBOX_PORT=8788 MOTO_PORT=5001 "
            "MEMORY_BRIDGE_LOCAL_STATE=/tmp/second-stack.json make run",
            file=sys.stderr,
        )
        return 2
    finally:
        starting.clear()
        if schedule is not None:
            schedule.stop()
        stack.stop()
        print("\nlocal stack stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
