"""Adapter for the SQS dead-letter queue where failed posts are parked for replay.

The boto3 client is created on first use: the happy path never touches the queue, so a cold
start does not pay for it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from memory_bridge.envelope import Envelope

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient


class QueueUnavailable(RuntimeError):
    """The envelope could not be written. The webhook answers 503 so that Twilio retries."""


def default_sqs_client() -> SQSClient:
    import boto3
    from botocore.config import Config

    # Short timeouts and two tries: the webhook must still answer Twilio inside 5 s.
    config = Config(connect_timeout=1, read_timeout=2, retries={"max_attempts": 2, "mode": "standard"})
    return boto3.client("sqs", config=config)


class SqsDeadLetterQueue:
    def __init__(self, queue_url: str, client_factory: Callable[[], Any] = default_sqs_client):
        self.queue_url = queue_url
        self._client_factory = client_factory
        self._client: Any = None
        self.sent = 0

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = self._client_factory()
        return self._client

    def park(self, envelope: Envelope) -> str:
        """Send the envelope; returns the SQS message id, raises QueueUnavailable on any failure."""
        attributes = {
            name: {"DataType": "String", "StringValue": value}
            for name, value in envelope.message_attributes().items()
        }
        try:
            answer = self.client.send_message(
                QueueUrl=self.queue_url, MessageBody=envelope.to_json(), MessageAttributes=attributes
            )
        except Exception as error:  # noqa: BLE001 - botocore raises many types; all mean "not parked"
            raise QueueUnavailable(
                f"could not write to the dead-letter queue: {type(error).__name__}"
            ) from None
        self.sent += 1
        return str(answer.get("MessageId", ""))
