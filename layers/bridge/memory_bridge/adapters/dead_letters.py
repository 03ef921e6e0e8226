"""Adapter for the SQS dead-letter queue where failed posts are parked for replay.

The boto3 client is created on first use: the happy path never touches the queue, so a cold
start does not pay for it. A park runs under a wall-clock deadline taken from the webhook's time
left, so a slow or hanging queue turns into a 503 that Twilio retries, never into a late answer.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from memory_bridge.deadlines import DeadlineExceeded, call_within
from memory_bridge.domain.envelope import Envelope
from memory_bridge.ports import QueueDepth, QueuedMessage, QueueUnavailable

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient


def default_sqs_client() -> SQSClient:
    import boto3
    from botocore.config import Config

    # Short timeouts and two tries, so that even a call abandoned at its deadline ends soon.
    config = Config(
        connect_timeout=0.5, read_timeout=1.0, retries={"total_max_attempts": 2, "mode": "standard"}
    )
    return boto3.client("sqs", config=config)


def replay_sqs_client() -> SQSClient:
    """The replay's client: no Twilio waiting on it, so patient reads. A receive whose answer is
    lost to a read timeout leaves its messages invisible for the whole hold (15 minutes); a slow
    answer is better than that."""
    import boto3
    from botocore.config import Config

    config = Config(
        connect_timeout=2.0, read_timeout=10.0, retries={"total_max_attempts": 3, "mode": "standard"}
    )
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

    def park(self, envelope: Envelope, timeout: float | None = None) -> str:
        """Send the envelope (split when it would not fit SQS's size); returns the SQS message id.

        Raises QueueUnavailable on any failure, or when `timeout` seconds pass without an answer.
        """
        ids = []
        ends = time.monotonic() + timeout if timeout is not None else None
        for piece in envelope.fitted_for_queue():
            attributes = {
                name: {"DataType": "String", "StringValue": value}
                for name, value in piece.message_attributes().items()
            }

            def send(
                body: str = piece.to_json(),
                attributes: dict[str, Any] = attributes,
                client: Any = self.client,
            ) -> Any:
                return client.send_message(
                    QueueUrl=self.queue_url, MessageBody=body, MessageAttributes=attributes
                )

            try:
                answer = send() if ends is None else call_within(ends - time.monotonic(), send)
            except DeadlineExceeded:
                raise QueueUnavailable("the dead-letter queue did not answer in time") from None
            except Exception as error:  # noqa: BLE001 - botocore raises many types; all mean "not parked"
                raise QueueUnavailable(
                    f"could not write to the dead-letter queue: {type(error).__name__}"
                ) from None
            self.sent += 1
            ids.append(str(answer.get("MessageId", "")))
        return ",".join(ids)


class DeadLetterQueue(SqsDeadLetterQueue):
    """The replay's view of the queue: receive, delete, release, and put back with a new envelope."""

    def __init__(self, queue_url: str, client_factory: Callable[[], Any] = replay_sqs_client):
        super().__init__(queue_url, client_factory)

    def depth(self) -> QueueDepth:
        names = [
            "ApproximateNumberOfMessages",
            "ApproximateNumberOfMessagesNotVisible",
            "ApproximateNumberOfMessagesDelayed",
        ]
        attributes = self.client.get_queue_attributes(QueueUrl=self.queue_url, AttributeNames=names)[
            "Attributes"
        ]
        return QueueDepth(
            visible=int(attributes.get(names[0], 0)),
            in_flight=int(attributes.get(names[1], 0)),
            delayed=int(attributes.get(names[2], 0)),
        )

    def visible_count(self) -> int:
        attributes = self.client.get_queue_attributes(
            QueueUrl=self.queue_url, AttributeNames=["ApproximateNumberOfMessages"]
        )["Attributes"]
        return int(attributes.get("ApproximateNumberOfMessages", 0))

    def receive(
        self, max_messages: int, visibility_timeout: int, wait_seconds: int = 0
    ) -> list[QueuedMessage]:
        answer = self.client.receive_message(
            QueueUrl=self.queue_url,
            MaxNumberOfMessages=max(1, min(10, max_messages)),
            VisibilityTimeout=visibility_timeout,
            WaitTimeSeconds=wait_seconds,
            AttributeNames=["SentTimestamp", "ApproximateReceiveCount"],
            MessageAttributeNames=["All"],
        )
        received = []
        for message in answer.get("Messages", []):
            system = message.get("Attributes", {})
            attributes = {
                name: value.get("StringValue", "")
                for name, value in (message.get("MessageAttributes") or {}).items()
            }
            received.append(
                QueuedMessage(
                    message_id=message["MessageId"],
                    receipt_handle=message["ReceiptHandle"],
                    body=message.get("Body", ""),
                    sent_at=int(system.get("SentTimestamp", 0)) / 1000,
                    receive_count=int(system.get("ApproximateReceiveCount", 1)),
                    attributes=attributes,
                )
            )
        return received

    def delete(self, messages: list[QueuedMessage]) -> None:
        for start in range(0, len(messages), 10):
            chunk = messages[start : start + 10]
            try:
                answer = self.client.delete_message_batch(
                    QueueUrl=self.queue_url,
                    Entries=[{"Id": str(i), "ReceiptHandle": m.receipt_handle} for i, m in enumerate(chunk)],
                )
            except Exception as error:  # noqa: BLE001 - botocore raises many types; all mean "not deleted"
                raise QueueUnavailable(
                    f"the dead-letter queue refused the delete: {type(error).__name__}"
                ) from None
            if answer.get("Failed"):
                raise QueueUnavailable(f"{len(answer['Failed'])} message(s) could not be deleted")

    def release(self, messages: list[QueuedMessage]) -> None:
        """Make messages visible again at once: they are left as they were."""
        for start in range(0, len(messages), 10):
            chunk = messages[start : start + 10]
            self.client.change_message_visibility_batch(
                QueueUrl=self.queue_url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": m.receipt_handle, "VisibilityTimeout": 0}
                    for i, m in enumerate(chunk)
                ],
            )

    def replace(self, old: QueuedMessage, envelope: Envelope) -> None:
        """Park the updated envelope, then delete the old message.

        A crash in between keeps both, never neither; the replay's duplicate check covers the twin.
        """
        self.park(envelope)
        self.delete([old])
