"""`memory-bridge doctor` against the local stack as `make run` starts it (moto, the Memory and
Conversations sandboxes, the local API front): healthy, it passes every check but the alarms' (skipped);
broken one way at a time, exactly that check fails and names the cause and the fix."""

from __future__ import annotations

import contextlib
import io
import json
import os
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import boto3
import pytest

from memory_bridge.adapters.memory_api import MemoryApiClient
from memory_bridge.domain.credentials import TwilioCredentials
from memory_bridge.ports import StaticCredentials
from memory_bridge_cli import main as cli
from memory_bridge_cli.conversations import ConversationsClient
from memory_bridge_dev.aws_resources import create_dead_letter_queue, create_idempotency_table, load_template
from tests.e2e.conftest import local_stack_process

pytestmark = pytest.mark.integration

CHECKS = [
    "secret",
    "Memory",
    "store",
    "identity resolution",
    "Conversations",
    "webhook configuration",
    "signed request",
    "bad signature",
    "dead-letter queue",
    "idempotency table",
    "alarm destination",
]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    with local_stack_process(tmp_path_factory.mktemp("doctor")) as info:
        yield info


def doctor(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = cli.main(["doctor", *argv], out=out, err=err)
    return code, out.getvalue(), err.getvalue()


def statuses(stack: dict[str, Any]) -> tuple[int, dict[str, dict[str, Any]]]:
    code, out, err = doctor("--json")
    document = json.loads(out)
    assert [c["name"] for c in document["checks"]] == CHECKS, err
    return code, {c["name"]: c for c in document["checks"]}


def failing(checks: dict[str, dict[str, Any]]) -> set[str]:
    return {name for name, check in checks.items() if check["status"] == "fail"}


def aws(stack: dict[str, Any], service: str) -> Any:
    return boto3.client(
        service,
        endpoint_url=stack["moto_url"],
        region_name="us-east-1",
        aws_access_key_id="local",
        aws_secret_access_key="local",
    )


def dev_credentials(stack: dict[str, Any]) -> TwilioCredentials:
    return TwilioCredentials(stack["account_sid"], stack["auth_token"])


def test_a_healthy_local_stack_passes_every_check_and_skips_the_alarms(stack):
    code, out, err = doctor()
    assert code == 0, out + err
    lines = out.splitlines()
    assert lines[0].startswith("memory-bridge doctor: the local stack")
    marks = [line[0] for line in lines[1:-1]]
    assert marks == ["✓"] * 10 + ["\u2013"], out
    assert "alarm destination" in lines[-2] and "local stack has no alarms" in lines[-2]
    assert lines[-1] == "10 passed, 0 failed, 1 skipped"
    assert stack["auth_token"] not in out + err  # nothing secret printed

    code, checks = statuses(stack)
    assert code == 0 and failing(checks) == set()
    assert checks["alarm destination"]["status"] == "skip"
    assert "200 ignored" in checks["signed request"]["detail"]


@contextlib.contextmanager
def identity_settings_without(stack: dict[str, Any], id_type: str) -> Iterator[None]:
    """The store's settings without `id_type` (through Memory's API, as an operator would), then back."""
    memory = MemoryApiClient(stack["sandbox_url"], StaticCredentials(dev_credentials(stack)))
    store = stack["store_id"]
    original = memory.fetch_identity_settings(store).body
    kept = {
        "identifierConfigs": [c for c in original["identifierConfigs"] if c["idType"] != id_type],
        "matchingRules": [r for r in original["matchingRules"] if r != id_type],
    }
    settle(memory, memory.update_identity_settings(store, kept))
    try:
        yield
    finally:
        restored = {k: original[k] for k in ("identifierConfigs", "matchingRules")}
        settle(memory, memory.update_identity_settings(store, restored))


def settle(memory: MemoryApiClient, accepted: Any) -> None:
    operation = accepted.headers["operation-id"]
    deadline = time.monotonic() + 30
    while memory.fetch_operation(operation).body["status"] != "COMPLETED":
        assert time.monotonic() < deadline, "the identity settings change did not complete"
        time.sleep(0.1)


def test_a_missing_identifier_type_is_named_with_the_fix(stack):
    with identity_settings_without(stack, "chat_identity"):
        code, checks = statuses(stack)
        _, text, _ = doctor()
    assert code == 1 and failing(checks) == {"identity resolution"}
    detail = checks["identity resolution"]["detail"]
    assert "does not resolve chat_identity" in detail
    assert "identifierConfigs and matchingRules" in detail
    assert "make run" in checks["identity resolution"]["fix"]
    assert "✗ identity resolution" in text and "fix:" in text


def test_a_webhook_pointing_elsewhere_fails_its_check(stack):
    conversations = ConversationsClient(stack["conversations_url"], dev_credentials(stack))
    elsewhere = "https://elsewhere.example.com/hook"
    conversations.update_webhook(None, [("PostWebhookUrl", elsewhere)])
    try:
        code, checks = statuses(stack)
    finally:
        conversations.update_webhook(None, [("PostWebhookUrl", stack["webhook_url"])])
    assert code == 1 and failing(checks) == {"webhook configuration"}
    assert elsewhere in checks["webhook configuration"]["detail"]
    assert stack["webhook_url"] in checks["webhook configuration"]["detail"]


def test_a_missing_queue_or_table_fails_its_own_check(stack):
    sqs, dynamodb = aws(stack, "sqs"), aws(stack, "dynamodb")
    template = load_template()
    sqs.delete_queue(QueueUrl=stack["queue_url"])
    try:
        code, checks = statuses(stack)
    finally:
        assert create_dead_letter_queue(sqs, "memory-bridge-dead-letters", template) == stack["queue_url"]
    assert code == 1 and failing(checks) == {"dead-letter queue"}
    assert "NonExistentQueue" in checks["dead-letter queue"]["detail"]

    dynamodb.delete_table(TableName=stack["idempotency_table"])
    try:
        code, checks = statuses(stack)
    finally:
        create_idempotency_table(dynamodb, stack["idempotency_table"], template)
    assert code == 1 and failing(checks) == {"idempotency table"}
    assert "ResourceNotFoundException" in checks["idempotency table"]["detail"]


class _Yes(BaseHTTPRequestHandler):
    """A front that answers every POST 200 "ignored" without checking any signature."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        body = b'{"outcome": "ignored"}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_: Any) -> None:
        return


def test_a_front_that_does_not_refuse_a_bad_signature_fails_that_check(stack, tmp_path, monkeypatch):
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Yes)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        state = json.loads(Path(stack["state"]).read_text())
        state["webhook_url"] = f"http://127.0.0.1:{server.server_address[1]}/webhooks/conversations"
        state["pid"] = os.getpid()
        path = tmp_path / "state.json"
        path.write_text(json.dumps(state))
        path.chmod(0o600)
        monkeypatch.setenv("MEMORY_BRIDGE_LOCAL_STATE", str(path))
        code, checks = statuses(stack)
    finally:
        server.shutdown()
        server.server_close()
    assert code == 1
    assert checks["signed request"]["status"] == "pass"
    assert checks["bad signature"]["status"] == "fail"
    assert "not 403" in checks["bad signature"]["detail"]
    assert "does not check Twilio's signatures" in checks["bad signature"]["detail"]


def test_a_wrong_token_in_the_secret_fails_memory_and_conversations_and_says_so(stack):
    """Last of the stack's tests: the webhook may keep the wrong token a while after it is put back."""
    secrets = aws(stack, "secretsmanager")
    wrong = {"account_sid": stack["account_sid"], "auth_token": "not-the-account-token"}
    secrets.put_secret_value(SecretId=stack["secret_arn"], SecretString=json.dumps(wrong))
    try:
        code, checks = statuses(stack)
    finally:
        good = {"account_sid": stack["account_sid"], "auth_token": stack["auth_token"]}
        secrets.put_secret_value(SecretId=stack["secret_arn"], SecretString=json.dumps(good))
    assert code == 1
    # The webhook itself reads the secret again on its own schedule, so it may already agree with the
    # wrong token (then it accepts the probe) or not yet: Twilio, which signs with the right one, is what
    # the Conversations line stands for.
    assert failing(checks) - {"signed request"} == {"Memory", "Conversations"}
    for name in ("Memory", "Conversations"):
        assert checks[name]["detail"].startswith("wrong token") and "401" in checks[name]["detail"]
        assert "make run" in checks[name]["fix"]
    assert checks["store"]["status"] == checks["webhook configuration"]["status"] == "skip"
    _, out, err = doctor()
    assert "not-the-account-token" not in out + err


def test_nothing_to_check_is_a_usage_error(tmp_path, monkeypatch):
    monkeypatch.setenv("MEMORY_BRIDGE_LOCAL_STATE", str(tmp_path / "none.json"))
    code, out, err = doctor()
    assert code == 2 and out == ""
    assert "--stack-name" in err and "make run" in err
