"""The lean AWS client (memory_bridge.adapters.aws_json) against a stand-in on loopback: its errors are the
ones the ledger and the queue adapters expect, it retries what botocore's standard mode retries
(once), and its deadline holds on the calling thread."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

import pytest

from memory_bridge.adapters.aws_errors import AwsError, ConditionalCheckFailedException
from memory_bridge.adapters.aws_json import AwsJsonClient, LeanDynamoDb
from memory_bridge.adapters.aws_sigv4 import AwsCredentials
from memory_bridge.deadlines import DeadlineExceeded


class _Aws(BaseHTTPRequestHandler):
    answers: ClassVar[list[tuple[int, dict[str, Any], float]]] = []
    seen: ClassVar[list[dict[str, Any]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).seen.append({"target": self.headers["X-Amz-Target"], "body": json.loads(body)})
        status, document, delay = type(self).answers.pop(0)
        time.sleep(delay)
        data = json.dumps(document).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/x-amz-json-1.0")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        with contextlib.suppress(BrokenPipeError):  # the client's deadline cut the connection first
            self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def aws():
    _Aws.answers, _Aws.seen = [], []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Aws)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    client = AwsJsonClient(
        signing_name="dynamodb",
        target_prefix="DynamoDB_20120810",
        json_version="1.0",
        endpoint_url=f"http://127.0.0.1:{server.server_address[1]}",
        region="us-east-1",
        credentials=lambda: AwsCredentials("AKID", "SECRET"),
        sleep=lambda _: None,
    )
    yield client
    server.shutdown()
    server.server_close()


def test_a_refused_condition_raises_with_the_item_as_boto3_would(aws):
    item = {"id": {"S": "message#IM1"}, "outcome": {"S": "{}"}}
    _Aws.answers.append(
        (400, {"__type": "com.amazonaws.dynamodb.v20120810#ConditionalCheckFailedException", "Item": item}, 0)
    )
    dynamodb = LeanDynamoDb(aws)
    with pytest.raises(dynamodb.exceptions.ConditionalCheckFailedException) as refused:
        dynamodb.update_item(TableName="t", Key={"id": {"S": "message#IM1"}})
    assert refused.value.response["Item"] == item
    assert _Aws.seen == [
        {
            "target": "DynamoDB_20120810.UpdateItem",
            "body": {"TableName": "t", "Key": {"id": {"S": "message#IM1"}}},
        }
    ]


def test_a_throttled_or_failing_call_is_tried_once_more_and_other_errors_are_not(aws):
    _Aws.answers += [(400, {"__type": "x#ThrottlingException"}, 0), (200, {"Attributes": {}}, 0)]
    assert aws.call("UpdateItem", {}) == {"Attributes": {}}
    _Aws.answers += [(500, {}, 0), (500, {}, 0)]
    with pytest.raises(AwsError) as failed:
        aws.call("UpdateItem", {})
    assert failed.value.status == 500
    _Aws.answers += [(400, {"__type": "x#ResourceNotFoundException", "message": "no table"}, 0)]
    with pytest.raises(AwsError) as missing:
        aws.call("UpdateItem", {})
    assert missing.value.code == "ResourceNotFoundException"
    assert not isinstance(missing.value, ConditionalCheckFailedException)
    assert len(_Aws.seen) == 5


def test_the_deadline_cuts_a_slow_answer_on_the_calling_thread(aws):
    _Aws.answers.append((200, {}, 0.9))
    started = time.monotonic()
    with pytest.raises(DeadlineExceeded), aws.within(0.2):
        aws.call("UpdateItem", {})
    assert time.monotonic() - started < 0.5
