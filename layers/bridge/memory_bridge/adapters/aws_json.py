"""A lean client for the AWS calls on the webhook's path: DynamoDB UpdateItem, Secrets Manager
GetSecretValue and SQS SendMessage, each one signed (SigV4) JSON POST over http.client.

Why not boto3 here: Lambda runs the handler at memory/1769 of a vCPU (0.145 at 256 MB), and boto3
spends most of a warm webhook's CPU on its own machinery (event hooks, the service model,
serialisers, header dicts) around two small UpdateItems; importing boto3 and building a client is
most of a cold start. These three calls need none of that: the request body is already in the
wire format (DynamoDB's attribute-value JSON, SQS's and Secrets Manager's JSON protocols), the
answer is JSON, and the signature is a few HMACs. The replay and the CLI keep boto3.

What botocore would have done and this does too: credentials from the environment (Lambda's), else
botocore's own chain (a profile, SSO, the container endpoint that SnapStart uses), refreshed by it;
the endpoint from AWS_ENDPOINT_URL_<SERVICE> / AWS_ENDPOINT_URL, else the regional one; one retry of
a throttled, 5xx or broken call (as botocore's standard mode with two attempts), a short jittered
pause between. What it does not: FIPS or dual-stack endpoints, clock-skew correction, CRC32 checks.

Its parts: the signature, credentials and endpoints in aws_sigv4, the errors in aws_errors, the
kept-alive connections in connections (all in memory_bridge.adapters).
"""

from __future__ import annotations

import contextlib
import contextvars
import datetime
import http.client
import json
import os
import random
import socket
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any
from urllib.parse import urlsplit

from memory_bridge.adapters.aws_errors import AwsError, ConditionalCheckFailedException
from memory_bridge.adapters.aws_sigv4 import (
    AwsCredentials,
    credentials_source,
    endpoint_for,
    region_from,
    sign,
)
from memory_bridge.adapters.connections import Connections
from memory_bridge.deadlines import DeadlineExceeded, RequestGuard

RETRYABLE_CODES = frozenset(
    {
        "ThrottlingException",
        "Throttling",
        "ProvisionedThroughputExceededException",
        "RequestLimitExceeded",
        "TransactionInProgressException",
        "InternalServerError",
        "ServiceUnavailable",
        "RequestThrottled",
    }
)


# The wall-clock deadline of the calls made inside `AwsJsonClient.within(seconds)` on this thread.
_deadline: contextvars.ContextVar[float | None] = contextvars.ContextVar("aws_json_deadline", default=None)


class AwsJsonClient:
    """One AWS service over its JSON protocol: `call("UpdateItem", {...})` → the answer's JSON.

    Inside `within(seconds)`, every call (retry included) ends by that wall-clock deadline on the
    calling thread: the socket is cut when it passes (memory_api's watchdog), and DeadlineExceeded
    is raised. No worker thread per call, as boto3 needs (deadlines.call_within).
    """

    def __init__(
        self,
        *,
        signing_name: str,
        target_prefix: str,
        json_version: str,
        endpoint_url: str,
        region: str,
        credentials: Callable[[], AwsCredentials],
        connect_timeout: float = 0.5,
        read_timeout: float = 1.0,
        attempts: int = 2,
        clock: Callable[[], datetime.datetime] = lambda: datetime.datetime.now(datetime.UTC),
        sleep: Callable[[float], None] = time.sleep,
    ):
        self.signing_name = signing_name
        self._target_prefix = target_prefix
        self._content_type = f"application/x-amz-json-{json_version}"
        self.endpoint_url = endpoint_url
        self._host = urlsplit(endpoint_url).netloc
        self.region = region
        self._credentials = credentials
        self._connect_timeout = connect_timeout
        self._read_timeout = read_timeout
        self._attempts = max(attempts, 1)
        # Keep-alive for the container's life; at a deadline the watchdog cuts the socket.
        self._pool = Connections(endpoint_url, connect_timeout)
        self._clock = clock
        self._sleep = sleep
        self.calls = 0

    def reset_connections(self) -> None:
        """Close every pooled connection (SnapStart: a restored snapshot's sockets are dead)."""
        self._pool.clear()

    @staticmethod
    @contextlib.contextmanager
    def within(seconds: float) -> Iterator[None]:
        """Calls inside end within `seconds` of now (DeadlineExceeded when they cannot)."""
        token = _deadline.set(time.monotonic() + seconds)
        try:
            yield
        finally:
            _deadline.reset(token)

    def call(self, operation: str, payload: Mapping[str, Any]) -> dict[str, Any]:
        body = json.dumps(payload, separators=(",", ":")).encode("utf-8")
        for attempt in range(1, self._attempts + 1):
            try:
                return self._guarded_send(operation, body)
            except AwsError as error:
                if attempt == self._attempts or not _retryable(error):
                    raise
            self._sleep(random.uniform(0.01, 0.05))  # noqa: S311 - jitter, not a secret
        raise AssertionError("unreachable")  # pragma: no cover

    def _guarded_send(self, operation: str, body: bytes) -> dict[str, Any]:
        deadline = _deadline.get()
        if deadline is None:
            return self._send(operation, body, None)
        left = deadline - time.monotonic()
        if left <= 0.005:
            raise DeadlineExceeded("no time left for the call")
        guard = RequestGuard(deadline=deadline)
        try:
            return self._send(operation, body, guard)
        except AwsError:
            if guard.release():
                raise DeadlineExceeded(f"{operation}: no answer before the deadline") from None
            raise
        finally:
            guard.release()

    def _send(self, operation: str, body: bytes, guard: Any) -> dict[str, Any]:
        headers = self._signed_headers(operation, body)
        self.calls += 1
        left = None if guard is None else guard.deadline - time.monotonic()
        connection = self._pool.get()
        try:
            fresh = connection.sock is None
            if fresh:
                connection.timeout = _shorter(self._connect_timeout, left)
                connection.connect()
            sock = connection.sock
            if fresh:  # as urllib3 and botocore do: no Nagle delay on a kept-alive exchange
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if guard is not None:
                guard.watch(sock)
            sock.settimeout(_shorter(self._read_timeout, left))
            connection.request("POST", "/", body=body, headers=headers)
            answer = connection.getresponse()
            data = answer.read()
        except (http.client.HTTPException, OSError) as error:
            connection.close()
            raise AwsError(f"transport:{type(error).__name__}", "no answer") from None
        if answer.will_close:
            connection.close()
        else:
            self._pool.put(connection)
        return _answer(answer.status, answer.headers.get("x-amzn-ErrorType"), data)

    def _signed_headers(self, operation: str, body: bytes) -> dict[str, str]:
        headers = {"Content-Type": self._content_type, "X-Amz-Target": f"{self._target_prefix}.{operation}"}
        headers.update(
            sign(
                host=self._host,
                body=body,
                headers=headers,
                region=self.region,
                service=self.signing_name,
                credentials=self._credentials(),
                now=self._clock(),
            )
        )
        headers["Host"] = self._host
        return headers


def _answer(status: int, error_type: str | None, data: bytes) -> dict[str, Any]:
    """The answer's JSON; an error answer raises AwsError (ConditionalCheckFailedException for that one)."""
    try:
        document = json.loads(data) if data else {}
    except ValueError:
        document = {}
    if 200 <= status < 300:
        return document if isinstance(document, dict) else {}
    error_type = error_type or str(
        (document.get("__type") if isinstance(document, dict) else None) or f"HTTP{status}"
    )
    code = error_type.split(":")[0].rsplit("#", 1)[-1]
    message = (
        str(document.get("message") or document.get("Message") or "") if isinstance(document, dict) else ""
    )
    kind = ConditionalCheckFailedException if code == "ConditionalCheckFailedException" else AwsError
    raise kind(code, message, status, document)


def _shorter(timeout: float, left: float | None) -> float:
    return timeout if left is None else max(min(timeout, left), 0.001)


def _retryable(error: AwsError) -> bool:
    return (
        error.code.startswith("transport:")
        or error.code in RETRYABLE_CODES
        or (error.status is not None and error.status >= 500)
    )


# ---- the three services, shaped as the adapters use boto3's clients -----------------------------


class _DynamoDbExceptions:
    ConditionalCheckFailedException = ConditionalCheckFailedException


class LeanDynamoDb:
    """`update_item(**params)` as boto3's, over AwsJsonClient; raises its ConditionalCheckFailedException."""

    exceptions = _DynamoDbExceptions

    def __init__(self, client: AwsJsonClient):
        self.json = client
        self.within = client.within

    def update_item(self, **params: Any) -> dict[str, Any]:
        return self.json.call("UpdateItem", params)


class LeanSqs:
    """`send_message(**params)` as boto3's (SQS's JSON protocol)."""

    def __init__(self, client: AwsJsonClient):
        self.json = client

    def send_message(self, **params: Any) -> dict[str, Any]:
        return self.json.call("SendMessage", params)


def lean_client(service: str, env: Mapping[str, str] | None = None, **options: Any) -> AwsJsonClient:
    """A client for "dynamodb", "secretsmanager" or "sqs", configured from the environment."""
    env = os.environ if env is None else env
    region = region_from(env)
    signing, prefix, version, env_suffix = {
        "dynamodb": ("dynamodb", "DynamoDB_20120810", "1.0", "DYNAMODB"),
        "secretsmanager": ("secretsmanager", "secretsmanager", "1.1", "SECRETS_MANAGER"),
        "sqs": ("sqs", "AmazonSQS", "1.0", "SQS"),
    }[service]
    return AwsJsonClient(
        signing_name=signing,
        target_prefix=prefix,
        json_version=version,
        endpoint_url=endpoint_for(service, env_suffix, region, env),
        region=region,
        credentials=credentials_source(env),
        **options,
    )


def lean_dynamodb_client() -> LeanDynamoDb:
    return LeanDynamoDb(lean_client("dynamodb"))


def lean_sqs_client() -> LeanSqs:
    return LeanSqs(lean_client("sqs"))
