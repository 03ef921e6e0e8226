"""`make run`: the whole bridge on one machine, no Docker, no AWS account.

  moto's server        Secrets Manager, SQS and DynamoDB, the resources created as template.yaml declares
  the Memory sandbox   with a store created through `stores create` (its async operation included)
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

import argparse
import contextlib
import io
import json
import logging
import os
import signal
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from memory_bridge_dev import scheduled_replay
from memory_bridge_dev.apigw import LocalLambdaContext, load_handler_module, rest_api_event
from memory_bridge_dev.aws_resources import (
    create_dead_letter_queue,
    create_idempotency_table,
    load_template,
    put_credentials_secret,
)
from memory_bridge_dev.sandbox import MemorySandbox

DEV_ACCOUNT_SID = "AC00000000000000000000000000000000"
DEV_AUTH_TOKEN = "dev-auth-token-0123456789abcdef"
WEBHOOK_PATH = "/webhooks/conversations"
SECRET_NAME = "memory-bridge/local"
QUEUE_NAME = "memory-bridge-dead-letters"
TABLE_NAME = "memory-bridge-idempotency"


def function_environment(template: dict[str, Any], values: dict[str, str]) -> dict[str, str]:
    """The template's Globals environment with its Refs resolved to the local stack's values.

    Parameters with defaults take them; `values` supplies resources and required parameters.
    """
    parameters = template.get("Parameters", {})
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


@dataclass
class LocalStack:
    front_port: int = 3000
    sandbox_port: int = 8787
    moto_port: int = 5000
    host: str = "127.0.0.1"
    provisioning_seconds: float = 1.5
    aws_fault_proxy: bool = False
    state_path: str | None = None
    servers: list[Any] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)

    def start(self, progress: Any = print) -> dict[str, Any]:
        from moto.server import ThreadedMotoServer

        from memory_bridge_dev import moto_speedups

        moto_speedups.apply()
        moto = ThreadedMotoServer(ip_address=self.host, port=self.moto_port, verbose=False)
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
        progress(f"• AWS (moto) on {moto_url}: creating the secret, queue and table from template.yaml")
        secret_arn = put_credentials_secret(
            boto3.client("secretsmanager"),
            SECRET_NAME,
            {"account_sid": DEV_ACCOUNT_SID, "auth_token": DEV_AUTH_TOKEN},
        )
        queue_url = create_dead_letter_queue(boto3.client("sqs"), QUEUE_NAME, template)
        table = create_idempotency_table(boto3.client("dynamodb"), TABLE_NAME, template)

        sandbox = MemorySandbox(
            credentials={DEV_ACCOUNT_SID: DEV_AUTH_TOKEN}, provisioning_seconds=self.provisioning_seconds
        )
        sandbox_url = sandbox.serve(self.host, self.sandbox_port)
        self.servers.append(sandbox)
        progress(f"• Memory sandbox on {sandbox_url}: creating a store through `memory-bridge stores create`")
        store_id = self._create_store(sandbox_url, progress)

        environment = function_environment(
            template,
            {
                "MemoryStoreId": store_id,
                "TwilioCredentialsSecret": SECRET_NAME,
                "DeadLetterQueue": queue_url,
                "IdempotencyTable": table,
                "MemoryApiBaseUrl": sandbox_url,
            },
        )
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
        front = LocalApiFront(self.host, self.front_port, proxies)
        front.start()
        self.servers.append(front)
        webhook_url = f"http://{self.host}:{self.front_port}{WEBHOOK_PATH}"
        self.info = {
            "webhook_url": webhook_url,
            "auth_token": DEV_AUTH_TOKEN,
            "account_sid": DEV_ACCOUNT_SID,
            "store_id": store_id,
            "sandbox_url": sandbox_url,
            "queue_url": queue_url,
            "moto_url": moto_url,
            "secret_arn": secret_arn,
            "idempotency_table": table,
            "control_url": f"http://{self.host}:{self.front_port}/__local",
            "aws_fault_proxy": sorted(proxies),
            "pid": os.getpid(),
        }
        self._write_state()
        return self.info

    def _create_store(self, sandbox_url: str, progress: Any) -> str:
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
                    "stores",
                    "create",
                    "--display-name",
                    "memory-bridge-local",
                    "--description",
                    "Local stack store",
                    "--memory-api-url",
                    sandbox_url,
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
        if code != 0:
            raise RuntimeError("the sandbox store could not be created")
        store_id: str = json.loads(out.getvalue())["storeId"]
        return store_id

    def _write_state(self) -> None:
        from memory_bridge_cli.common import local_state_path

        path = local_state_path() if self.state_path is None else Path(self.state_path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.info, indent=2))
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
            with contextlib.suppress(OSError):
                os.remove(state_file)


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


class LocalApiFront:
    """What `sam local start-api` does, without Docker: HTTP request → API Gateway event → handler."""

    API_GATEWAY_MAX_BODY = 10 * 1024 * 1024  # API Gateway's payload limit; larger is answered 413

    def __init__(self, host: str, port: int, aws_proxies: dict[str, Any] | None = None):
        self.host, self.port = host, port
        self.aws_proxies = aws_proxies or {}
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

        self._server = ThreadingHTTPServer((self.host, self.port), Handler)
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
        try:
            result = self.handler_module.lambda_handler(event, LocalLambdaContext())
        except Exception:  # noqa: BLE001 - API Gateway answers 502 when the function fails
            self._reply(
                request, 502, {"Content-Type": "application/json"}, b'{"message": "Internal server error"}'
            )
            return
        data = str(result.get("body") or "").encode()
        self._reply(request, int(result.get("statusCode", 200)), result.get("headers") or {}, data)

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
    return "\n".join(
        [
            "",
            "memory-bridge local stack is up (Ctrl-C stops it)",
            f"  webhook URL     {info['webhook_url']}",
            f"  dev auth token  {info['auth_token']}   (signs webhooks; local only)",
            f"  store id        {info['store_id']}",
            f"  Memory sandbox  {info['sandbox_url']}",
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="make run", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--front-port", type=int, default=int(os.environ.get("FRONT_PORT", 3000)))
    parser.add_argument("--sandbox-port", type=int, default=int(os.environ.get("SANDBOX_PORT", 8787)))
    parser.add_argument("--moto-port", type=int, default=int(os.environ.get("MOTO_PORT", 5000)))
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
    scheduled_replay.add_arguments(parser)
    args = parser.parse_args(argv)
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's per-request lines
    stack = LocalStack(
        front_port=args.front_port,
        sandbox_port=args.sandbox_port,
        moto_port=args.moto_port,
        provisioning_seconds=args.provisioning_seconds,
        aws_fault_proxy=args.aws_fault_proxy,
    )
    stopped = threading.Event()
    # Handled explicitly: a stack started in the background inherits SIGINT as ignored.
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    signal.signal(signal.SIGINT, lambda *_: stopped.set())
    schedule = None
    try:
        info = stack.start(progress=lambda line: print(line, flush=True))
        print(summary(info), flush=True)
        schedule = scheduled_replay.start_from_args(args, report=lambda line: print(line, flush=True))
        while not stopped.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    except OSError as error:
        print(
            f"make run: {error}. Is another stack running? Choose other ports with "
            "FRONT_PORT=3001 SANDBOX_PORT=8788 MOTO_PORT=5001 make run",
            file=sys.stderr,
        )
        return 2
    finally:
        if schedule is not None:
            schedule.stop()
        stack.stop()
        print("\nlocal stack stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
