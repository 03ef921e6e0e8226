from __future__ import annotations

import io
import json
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import boto3
import pytest

from memory_bridge import runtime
from memory_bridge.domain.envelope import Envelope, parse_envelope
from memory_bridge.domain.identifiers import identifier_types
from memory_bridge_cli import main as cli
from memory_bridge_dev.apigw import load_handler_module
from memory_bridge_dev.aws_resources import (
    create_dead_letter_queue,
    create_idempotency_table,
    put_credentials_secret,
)
from memory_bridge_dev.conversations_sandbox import ConversationsSandbox
from memory_bridge_dev.sandbox import MemorySandbox
from tests.conversations_seed import seed_event_author
from tests.support import (
    CHAT_SERVICE_SID,
    DEV_ACCOUNT_SID,
    DEV_AUTH_TOKEN,
    FakeContext,
    signed_event,
)

HANDLER = load_handler_module()


@dataclass
class Bridge:
    """The real handler wired to moto's server and the sandbox, with ways to look at both."""

    sandbox: MemorySandbox
    conversations: ConversationsSandbox
    store_id: str
    queue_url: str
    table: str
    secret: str
    env: dict[str, str]
    sqs: Any = field(repr=False)
    dynamodb: Any = field(repr=False)
    secrets: Any = field(repr=False)
    # Each message's author is made a participant of its conversation first, as Twilio has it; a test
    # that builds its own roster (speakers) turns this off.
    seed_authors: bool = True

    def invoke(self, event: dict[str, Any], remaining_ms: int = 10_000) -> dict[str, Any]:
        if self.seed_authors:
            seed_event_author(self.conversations, event, agents=self.env["AGENT_IDENTITIES"].split(","))
        response: dict[str, Any] = HANDLER.lambda_handler(event, FakeContext(remaining_ms))
        return response

    def send(self, params: Sequence[tuple[str, str]], **kwargs: Any) -> dict[str, Any]:
        return self.invoke(signed_event(params, **kwargs))

    def parked(self) -> list[Envelope]:
        """Everything on the dead-letter queue (read and left there: visibility 0)."""
        seen: dict[str, Envelope] = {}
        for _ in range(5):
            answer = self.sqs.receive_message(
                QueueUrl=self.queue_url,
                MaxNumberOfMessages=10,
                VisibilityTimeout=0,
                MessageAttributeNames=["All"],
                WaitTimeSeconds=0,
            )
            for message in answer.get("Messages", []):
                seen[message["MessageId"]] = parse_envelope(message["Body"])
        return list(seen.values())

    def queue_depth(self) -> int:
        attributes = self.sqs.get_queue_attributes(
            QueueUrl=self.queue_url, AttributeNames=["ApproximateNumberOfMessages"]
        )["Attributes"]
        return int(attributes["ApproximateNumberOfMessages"])

    def observations(self) -> list[dict[str, Any]]:
        return self.sandbox.all_observations(self.store_id)

    def idempotency_records(self) -> list[dict[str, Any]]:
        """The table's items but the profiles' counts (Memory's limit, tests/integration/test_profile_limit.py)."""
        items: list[dict[str, Any]] = self.dynamodb.scan(TableName=self.table)["Items"]
        return [item for item in items if not item["id"]["S"].startswith("profile#")]

    def rotate_secret(self, value: dict[str, str]) -> None:
        put_credentials_secret(self.secrets, self.secret, value)


def new_container() -> None:
    """What a fresh Lambda container does at init, after a test changed the environment: build the
    service and read the secret (functions/webhook/app.py calls runtime.warm_up at import), outside
    the first invocation's budget, as Lambda runs it."""
    runtime.reset()
    runtime.warm_up()


@pytest.fixture
def sandbox() -> Iterator[MemorySandbox]:
    memory = MemorySandbox(credentials={DEV_ACCOUNT_SID: DEV_AUTH_TOKEN})
    memory.serve()
    yield memory
    memory.close()


@pytest.fixture
def conversations() -> Iterator[ConversationsSandbox]:
    # The default service is the one tests' webhooks name as ChatServiceSid (tests.support.message_params).
    twilio = ConversationsSandbox(DEV_ACCOUNT_SID, DEV_AUTH_TOKEN, default_service=CHAT_SERVICE_SID)
    twilio.serve()
    yield twilio
    twilio.close()


@pytest.fixture
def bridge(
    aws_env: str,
    sandbox: MemorySandbox,
    conversations: ConversationsSandbox,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Bridge]:
    suffix = uuid.uuid4().hex[:10]
    sqs = boto3.client("sqs")
    dynamodb = boto3.client("dynamodb")
    secrets = boto3.client("secretsmanager")
    secret = f"memory-bridge/test-{suffix}"
    put_credentials_secret(secrets, secret, {"account_sid": DEV_ACCOUNT_SID, "auth_token": DEV_AUTH_TOKEN})
    env = {
        # A store whose identity resolution knows every idType the bridge sends, as setup leaves it.
        "MEMORY_STORE_ID": sandbox.seed_store(id_types=identifier_types("chat_identity")),
        "TWILIO_CREDENTIALS_SECRET": secret,
        "DEAD_LETTER_QUEUE_URL": create_dead_letter_queue(sqs, f"dlq-{suffix}"),
        "IDEMPOTENCY_TABLE": create_idempotency_table(dynamodb, f"idem-{suffix}"),
        "MEMORY_API_BASE_URL": sandbox.base_url,
        "CONVERSATIONS_API_BASE_URL": conversations.base_url,
        "MEMORY_API_READ_TIMEOUT": "1.0",
        "SECRET_REFRESH_INTERVAL_SECONDS": "0",
        "AGENT_IDENTITIES": "agent-ana",
        "AWS_LAMBDA_FUNCTION_NAME": "WebhookFunction",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    new_container()
    yield Bridge(
        sandbox=sandbox,
        conversations=conversations,
        store_id=env["MEMORY_STORE_ID"],
        queue_url=env["DEAD_LETTER_QUEUE_URL"],
        table=env["IDEMPOTENCY_TABLE"],
        secret=secret,
        env=env,
        sqs=sqs,
        dynamodb=dynamodb,
        secrets=secrets,
    )
    runtime.reset()


@pytest.fixture
def oncall(bridge: Bridge, monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> Bridge:
    """The bridge, plus `run(*argv)`: the operator CLI in-process against its queue and sandbox."""
    monkeypatch.setenv("TWILIO_ACCOUNT_SID", DEV_ACCOUNT_SID)
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", DEV_AUTH_TOKEN)
    monkeypatch.setenv("MEMORY_BRIDGE_LOCAL_STATE", str(tmp_path / "none.json"))

    def run(*argv: str) -> tuple[int, str, str]:
        out, err = io.StringIO(), io.StringIO()
        try:
            code = cli.main(
                [
                    *argv,
                    "--queue-url",
                    bridge.queue_url,
                    *(
                        [
                            "--memory-api-url",
                            bridge.sandbox.base_url,
                            "--conversations-api-url",
                            bridge.conversations.base_url,
                        ]
                        if argv[:2] == ("dlq", "replay")
                        else []
                    ),
                ],
                out=out,
                err=err,
            )
        except SystemExit as exited:
            code = int(exited.code or 0)
        return code, out.getvalue(), err.getvalue()

    bridge.run = run
    return bridge


@pytest.fixture
def sqs_clock() -> Iterator[Any]:
    """moto's SQS clock (memory_bridge_dev.moto_speedups), at the real time again afterwards."""
    from memory_bridge_dev import moto_speedups

    moto_speedups.reset()
    yield moto_speedups
    moto_speedups.reset()


def outcome(response: dict[str, Any]) -> str:
    return str(json.loads(response["body"])["outcome"])
