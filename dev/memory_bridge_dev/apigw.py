"""Build real API Gateway proxy events (REST payload v1 and HTTP API payload v2), as API Gateway
sends them to Lambda. Used by the local API front and the tests."""

from __future__ import annotations

import base64
import time
import uuid
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qs


def rest_api_event(
    *,
    method: str,
    path: str,
    headers: Mapping[str, str],
    body: bytes,
    query: str = "",
    stage: str = "Prod",
    host: str = "abc123.execute-api.us-east-1.amazonaws.com",
    resource: str = "/webhooks/conversations",
    base64_body: bool = False,
    context_path: str | None = None,
    scheme: str = "https",
) -> dict[str, Any]:
    """A REST API (v1) proxy event. `path` is without the stage, as API Gateway reports it;
    `context_path` is what the caller saw (stage included on execute-api hosts, as by default)."""
    multi_query = parse_qs(query, keep_blank_values=True) if query else None
    default_port = "443" if scheme == "https" else "80"
    port = host.rpartition(":")[2] if ":" in host else default_port
    all_headers = {"Host": host, "X-Forwarded-Proto": scheme, "X-Forwarded-Port": port, **headers}
    return {
        "resource": resource,
        "path": path,
        "httpMethod": method,
        "headers": dict(all_headers),
        "multiValueHeaders": {k: [v] for k, v in all_headers.items()},
        "queryStringParameters": {k: v[-1] for k, v in multi_query.items()} if multi_query else None,
        "multiValueQueryStringParameters": multi_query,
        "pathParameters": None,
        "stageVariables": None,
        "requestContext": {
            "resourcePath": resource,
            "httpMethod": method,
            "path": context_path if context_path is not None else f"/{stage}{path}",
            "stage": stage,
            "domainName": host,
            "requestId": str(uuid.uuid4()),
            "requestTimeEpoch": int(time.time() * 1000),
            "identity": {"sourceIp": "127.0.0.1", "userAgent": all_headers.get("User-Agent", "")},
            "apiId": host.split(".")[0],
            "protocol": "HTTP/1.1",
        },
        "body": base64.b64encode(body).decode() if base64_body else body.decode("utf-8"),
        "isBase64Encoded": base64_body,
    }


def http_api_event(
    *,
    method: str,
    path: str,
    headers: Mapping[str, str],
    body: bytes,
    query: str = "",
    stage: str = "$default",
    host: str = "abc123.execute-api.us-east-1.amazonaws.com",
) -> dict[str, Any]:
    """An HTTP API (v2) proxy event; form bodies arrive base64-encoded, as HTTP APIs send them."""
    raw_path = path if stage == "$default" else f"/{stage}{path}"
    lowered = {k.lower(): v for k, v in {"host": host, "x-forwarded-proto": "https", **headers}.items()}
    return {
        "version": "2.0",
        "routeKey": f"{method} {path}",
        "rawPath": raw_path,
        "rawQueryString": query,
        "headers": lowered,
        "requestContext": {
            "domainName": host,
            "http": {"method": method, "path": raw_path, "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1"},
            "requestId": str(uuid.uuid4()),
            "stage": stage,
            "timeEpoch": int(time.time() * 1000),
        },
        "body": base64.b64encode(body).decode(),
        "isBase64Encoded": True,
    }


class LocalLambdaContext:
    """The parts of Lambda's context object that the handler and Powertools read."""

    def __init__(
        self, function_name: str = "WebhookFunction", timeout_seconds: float = 10.0, memory_mb: int = 256
    ):
        self.function_name = function_name
        self.memory_limit_in_mb = memory_mb
        self.invoked_function_arn = f"arn:aws:lambda:us-east-1:123456789012:function:{function_name}"
        self.aws_request_id = str(uuid.uuid4())
        self.function_version = "$LATEST"
        self.log_group_name = f"/aws/lambda/{function_name}"
        self.log_stream_name = "local"
        self._deadline = time.monotonic() + timeout_seconds

    def get_remaining_time_in_millis(self) -> int:
        return max(int((self._deadline - time.monotonic()) * 1000), 0)


def load_handler_module(path: str = "functions/webhook/app.py", name: str = "webhook_app") -> Any:
    """A function's app.py, imported the way Lambda imports it (as a top-level module)."""
    import importlib.util
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    spec = importlib.util.spec_from_file_location(name, root / path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
