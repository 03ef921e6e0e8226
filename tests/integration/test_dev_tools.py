"""The dev tools themselves: the fault proxy in front of moto's server with a real boto3 client, the
Memory sandbox's trickle/hang faults and List Observations faults, and malformed HTTP answered 400
(not dropped) by the sandbox and the local API front."""

from __future__ import annotations

import base64
import gzip
import http.client
import json
import socket
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError, ConnectionClosedError, ReadTimeoutError

from memory_bridge_dev.fault_proxy import FaultProxy
from memory_bridge_dev.local_stack import WEBHOOK_PATH, LocalApiFront
from memory_bridge_dev.sandbox import Fault, MemorySandbox
from tests.support import DEV_ACCOUNT_SID, DEV_AUTH_TOKEN

pytestmark = pytest.mark.integration
AUTH = "Basic " + base64.b64encode(f"{DEV_ACCOUNT_SID}:{DEV_AUTH_TOKEN}".encode()).decode()
OBSERVATION = {"content": "hello", "source": "sms", "occurredAt": "2026-11-21T10:00:00Z"}


# ---- raw HTTP ---------------------------------------------------------------------------------


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def read_answer(sock: socket.socket) -> Answer:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"closed without an answer (after {data!r})")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    length = int(headers.get("content-length", "0"))
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed in the middle of the body")
        body += chunk
    return Answer(int(lines[0].split()[1]), headers, body[:length])


def request_bytes(
    method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None, length: bool = True
) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    if length:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def exchange(port: int, data: bytes, timeout: float = 2.0, close_wait: float = 0.3) -> tuple[Answer, bool]:
    """Send raw bytes; the answer, and whether the server closed the connection within `close_wait`."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        answer = read_answer(sock)
        sock.settimeout(close_wait)
        try:
            closed = sock.recv(1) == b""
        except TimeoutError:
            closed = False
    return answer, closed


def port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


# ---- the fault proxy in front of moto: one AWS service misbehaves -------------------------------


@pytest.fixture
def sqs_proxy(aws_env: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[FaultProxy]:
    """SQS through the proxy (AWS_ENDPOINT_URL_SQS), every other service straight to moto."""
    with FaultProxy(upstream=aws_env) as proxy:
        monkeypatch.setenv("AWS_ENDPOINT_URL_SQS", proxy.base_url)
        yield proxy


def impatient_sqs(retries: dict[str, Any] | None = None) -> Any:
    # botocore's `max_attempts` counts retries (1 → two attempts); `total_max_attempts` counts all.
    retries = retries or {"total_max_attempts": 1}
    return boto3.client("sqs", config=Config(connect_timeout=1, read_timeout=1, retries=retries))


def queue_bodies(sqs: Any, queue_url: str) -> list[str]:
    answer = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, VisibilityTimeout=0)
    return [message["Body"] for message in answer.get("Messages", [])]


def test_normal_calls_go_through_the_proxy_on_one_connection(sqs_proxy, aws_env):
    sqs = impatient_sqs()
    assert sqs.meta.endpoint_url == sqs_proxy.base_url
    assert boto3.client("dynamodb").meta.endpoint_url == aws_env  # only SQS is diverted
    queue_url = sqs.create_queue(QueueName=f"proxy-{uuid.uuid4().hex[:8]}")["QueueUrl"]
    sqs.send_message(QueueUrl=queue_url, MessageBody="through the proxy")
    assert queue_bodies(sqs, queue_url) == ["through the proxy"]
    counters = sqs_proxy.settled_counters(answered=3)
    assert counters["seen"] == counters["forwarded"] == counters["answered"] == 3
    assert counters["connections"] == 1  # keep-alive
    assert [r.operation for r in sqs_proxy.requests] == ["CreateQueue", "SendMessage", "ReceiveMessage"]


def test_hang_makes_a_call_time_out_on_the_read_timeout(sqs_proxy):
    sqs = impatient_sqs()
    queue_url = sqs.create_queue(QueueName=f"hang-{uuid.uuid4().hex[:8]}")["QueueUrl"]
    sqs_proxy.set_fault("hang", times=1)
    started = time.monotonic()
    with pytest.raises(ReadTimeoutError):
        sqs.send_message(QueueUrl=queue_url, MessageBody="never forwarded")
    assert 0.9 <= time.monotonic() - started < 2.5
    sqs_proxy.clear()
    assert queue_bodies(sqs, queue_url) == []  # held, not forwarded


def test_hang_with_max_attempts_1_costs_two_read_timeouts(sqs_proxy):
    sqs = impatient_sqs({"max_attempts": 1})
    queue_url = sqs.create_queue(QueueName=f"hang-{uuid.uuid4().hex[:8]}")["QueueUrl"]
    sqs_proxy.set_fault("hang")
    started = time.monotonic()
    with pytest.raises(ReadTimeoutError):
        sqs.send_message(QueueUrl=queue_url, MessageBody="never forwarded")
    assert 1.9 <= time.monotonic() - started < 4.0
    assert [r.fault for r in sqs_proxy.requests[-2:]] == ["hang", "hang"]  # the retry hung too


def test_forward_then_drop_stores_the_message_but_loses_the_answer(sqs_proxy, aws_env):
    sqs = impatient_sqs()
    queue_url = sqs.create_queue(QueueName=f"drop-{uuid.uuid4().hex[:8]}")["QueueUrl"]
    sqs_proxy.set_fault("forward_then_drop", times=1, operation="SendMessage")
    with pytest.raises(ConnectionClosedError):
        sqs.send_message(QueueUrl=queue_url, MessageBody="stored, answer lost")
    direct = boto3.client("sqs", endpoint_url=aws_env)
    assert queue_bodies(direct, queue_url) == ["stored, answer lost"]
    assert sqs_proxy.requests[-1].upstream_status == 200


def test_status_fault_reaches_boto3_as_an_aws_error(sqs_proxy):
    sqs = impatient_sqs()
    queue_url = sqs.create_queue(QueueName=f"status-{uuid.uuid4().hex[:8]}")["QueueUrl"]
    sqs_proxy.set_fault("status", status=500, operation="SendMessage")
    with pytest.raises(ClientError) as raised:
        sqs.send_message(QueueUrl=queue_url, MessageBody="refused")
    assert raised.value.response["ResponseMetadata"]["HTTPStatusCode"] == 500
    assert raised.value.response["Error"]["Code"] == "InternalFailure"
    assert queue_bodies(sqs, queue_url) == []  # other operations still pass


# ---- the sandbox: List Observations faults ------------------------------------------------------


@pytest.fixture
def profile(sandbox: MemorySandbox) -> tuple[str, str]:
    store_id = sandbox.seed_store()
    created = sandbox.create_profile(
        sandbox.stores[store_id], {"traits": {"Contact": {"phone": "+15555550100"}}}
    )
    return store_id, created[1]["id"]


def memory_call(
    sandbox: MemorySandbox, method: str, path: str, body: Any = None, timeout: float = 2.0
) -> tuple[int, dict[str, str], Any]:
    conn = http.client.HTTPConnection("127.0.0.1", port_of(sandbox.base_url), timeout=timeout)
    data = json.dumps(body).encode() if body is not None else None
    headers = {"Authorization": AUTH, "Content-Type": "application/json"}
    conn.request(method, path, body=data, headers=headers)
    response = conn.getresponse()
    raw = response.read()
    conn.close()
    return response.status, {k.lower(): v for k, v in response.getheaders()}, json.loads(raw) if raw else None


def observations_path(profile: tuple[str, str]) -> str:
    return f"/v1/Stores/{profile[0]}/Profiles/{profile[1]}/Observations"


@pytest.mark.parametrize(
    ("status", "retry_after", "code"), [(429, 2, 20429), (500, None, 20500), (503, None, 20503)]
)
def test_list_observations_faults(sandbox, profile, status, retry_after, code):
    path = observations_path(profile)
    sandbox.add_fault(Fault(status=status, retry_after=retry_after, match="/Observations", method="GET"))
    listed_status, headers, body = memory_call(sandbox, "GET", path + "?pageSize=10")
    assert (listed_status, body["code"], body["status"]) == (status, code, status)
    assert headers.get("retry-after") == (str(retry_after) if retry_after else None)
    posted_status, _, _ = memory_call(sandbox, "POST", path, {"observations": [OBSERVATION]})
    assert posted_status == 202  # the fault is on List only
    assert len(sandbox.all_observations()) == 1
    sandbox.clear_faults()
    assert memory_call(sandbox, "GET", path)[0] == 200


def test_list_observations_of_a_merged_profile_answers_301(sandbox, profile):
    store_id, merged = profile
    canonical = sandbox.create_profile(
        sandbox.stores[store_id], {"traits": {"Contact": {"email": "c@x.io"}}}
    )[1]["id"]
    sandbox.merge_profiles(merged, canonical)
    status, headers, body = memory_call(sandbox, "GET", observations_path(profile))
    assert status == 301
    assert headers["canonical-profile-id"] == canonical
    assert headers["location"].endswith(f"/Profiles/{canonical}")
    assert body["uri"] == headers["location"]
    assert memory_call(sandbox, "POST", observations_path(profile), {"observations": [OBSERVATION]})[0] == 308


# ---- the sandbox: trickle and hang -------------------------------------------------------------


def post_observation_bytes(profile: tuple[str, str]) -> bytes:
    body = json.dumps({"observations": [OBSERVATION]}).encode()
    return request_bytes("POST", observations_path(profile), body, {"Authorization": AUTH})


def test_trickle_processes_the_request_and_answers_a_byte_at_a_time(sandbox, profile):
    sandbox.add_fault(Fault(trickle=0.004, match="/Observations", times=1))
    with socket.create_connection(("127.0.0.1", port_of(sandbox.base_url)), timeout=0.2) as sock:
        started = time.monotonic()
        sock.sendall(post_observation_bytes(profile))
        data, reads = sock.recv(65536), 1  # the first byte at once, then one per pause
        assert b"HTTP/1.1 202".startswith(data)
        assert len(sandbox.all_observations()) == 1  # stored before the answer is out
        while not data.endswith(b"}"):  # every read well inside the 0.2 s per-read timeout
            data, reads = data + sock.recv(65536), reads + 1
        elapsed = time.monotonic() - started
        assert b"Observations accepted" in data
        assert reads > 10
        assert elapsed > 0.5
        sock.sendall(post_observation_bytes(profile))  # times=1: keep-alive, normal speed again
        assert read_answer(sock).status == 202


def test_trickle_set_over_http_with_bigger_writes(sandbox, profile):
    status, _, fault = memory_call(
        sandbox, "POST", "/__sandbox/faults", {"trickle": 0.01, "trickle_bytes": 16, "match": "/Observations"}
    )
    assert (status, fault["trickle"], fault["trickle_bytes"]) == (201, 0.01, 16)
    started = time.monotonic()
    assert memory_call(sandbox, "POST", observations_path(profile), {"observations": [OBSERVATION]})[0] == 202
    assert 0.05 < time.monotonic() - started < 2.0


def test_hang_after_processes_and_holds_the_connection_until_cleared(sandbox, profile):
    status, _, _ = memory_call(
        sandbox, "POST", "/__sandbox/faults", {"hang": "after", "match": "/Observations", "method": "POST"}
    )
    assert status == 201
    with socket.create_connection(("127.0.0.1", port_of(sandbox.base_url)), timeout=0.5) as sock:
        sock.sendall(post_observation_bytes(profile))
        with pytest.raises(TimeoutError):
            sock.recv(1)
        assert len(sandbox.all_observations()) == 1  # processed: a slow server that did the work
        assert sandbox.requests_to("CreateProfileObservation")[-1].status == 202
        assert memory_call(sandbox, "DELETE", "/__sandbox/faults")[0] == 200
        sock.settimeout(2)
        started = time.monotonic()
        assert sock.recv(1) == b""  # let go: closed without an answer
        assert time.monotonic() - started < 1.0


def test_hang_before_leaves_the_request_unprocessed_and_close_lets_go(sandbox, profile):
    sandbox.add_fault(Fault(hang="before", match="/Observations"))
    with socket.create_connection(("127.0.0.1", port_of(sandbox.base_url)), timeout=0.5) as sock:
        sock.sendall(post_observation_bytes(profile))
        with pytest.raises(TimeoutError):
            sock.recv(1)
        assert sandbox.all_observations() == []
        [record] = sandbox.requests_to("CreateProfileObservation")
        assert record.status is None  # seen, never processed
        assert record.body == {"observations": [OBSERVATION]}
        started = time.monotonic()
        sandbox.close()  # does not wait for the held request; lets it go
        sock.settimeout(2)
        assert sock.recv(1) == b""
        assert time.monotonic() - started < 1.5


def test_hang_lets_go_after_hang_seconds(sandbox, profile):
    sandbox.add_fault(Fault(hang="before", hang_seconds=0.3, match="/Observations"))
    with socket.create_connection(("127.0.0.1", port_of(sandbox.base_url)), timeout=2) as sock:
        started = time.monotonic()
        sock.sendall(post_observation_bytes(profile))
        assert sock.recv(1) == b""
        assert 0.25 < time.monotonic() - started < 1.5


def test_fault_fields_are_checked(sandbox):
    with pytest.raises(ValueError, match="hang"):
        Fault(hang="sometimes")
    with pytest.raises(ValueError, match="trickle"):
        Fault(trickle=-1)
    status, _, body = memory_call(sandbox, "POST", "/__sandbox/faults", {"drop": "later"})
    assert status == 400
    assert "drop" in body["message"]
    assert sandbox.faults == []


# ---- the sandbox: malformed HTTP is answered 400 ------------------------------------------------


@pytest.mark.parametrize("length", ["abc", "-1", "1, 2", "+2", "0x10", ""])
def test_sandbox_answers_a_bad_content_length_400_and_closes(sandbox, length):
    started = time.monotonic()
    data = request_bytes("POST", "/v1/ControlPlane/Stores", b"{}", {"Content-Length": length}, length=False)
    answer, closed = exchange(port_of(sandbox.base_url), data)
    assert time.monotonic() - started < 1.0  # never waits for a body it cannot frame
    assert answer.status == 400
    assert answer.json()["code"] == 520046
    assert answer.headers["connection"] == "close"
    assert closed
    assert sandbox.requests_to("CreateStore")[-1].status == 400


def test_sandbox_answers_413_to_a_huge_content_length_without_reading(sandbox):
    data = request_bytes(
        "POST", "/v1/ControlPlane/Stores", headers={"Content-Length": "99999999999"}, length=False
    )
    answer, closed = exchange(port_of(sandbox.base_url), data)
    assert (answer.status, closed) == (413, True)


def test_sandbox_answers_a_non_utf8_body_400_and_keeps_the_connection(sandbox, profile):
    conn = http.client.HTTPConnection("127.0.0.1", port_of(sandbox.base_url), timeout=2)
    conn.request(
        "POST",
        observations_path(profile),
        body=b'{"observations": ["\xff\xfe"]}',
        headers={"Authorization": AUTH},
    )
    response = conn.getresponse()
    assert response.status == 400
    assert json.loads(response.read())["code"] == 520046
    conn.request("GET", observations_path(profile), headers={"Authorization": AUTH})  # same connection
    assert conn.getresponse().status == 200


@pytest.mark.parametrize(
    "body", [b"not gzip at all", gzip.compress(b'{"observations": []}')[:-6], b"\x1f\x8b\x08\x00garbage"]
)
def test_sandbox_answers_broken_gzip_400(sandbox, profile, body):
    data = request_bytes(
        "POST", observations_path(profile), body, {"Authorization": AUTH, "Content-Encoding": "gzip"}
    )
    answer, _ = exchange(port_of(sandbox.base_url), data, close_wait=0.01)
    assert answer.status == 400
    assert answer.json()["code"] == 520046


def test_sandbox_still_takes_gzip_and_chunked_bodies(sandbox, profile):
    payload = json.dumps({"observations": [OBSERVATION]}).encode()
    gzipped = request_bytes(
        "POST",
        observations_path(profile),
        gzip.compress(payload),
        {"Authorization": AUTH, "Content-Encoding": "gzip"},
    )
    assert exchange(port_of(sandbox.base_url), gzipped, close_wait=0.01)[0].status == 202
    chunks = (
        b"".join(b"%x\r\n%s\r\n" % (len(part), part) for part in (payload[:10], payload[10:])) + b"0\r\n\r\n"
    )
    chunked = request_bytes(
        "POST",
        observations_path(profile),
        chunks,
        {"Authorization": AUTH, "Transfer-Encoding": "chunked"},
        length=False,
    )
    assert exchange(port_of(sandbox.base_url), chunked, close_wait=0.01)[0].status == 202
    assert len(sandbox.all_observations()) == 2
    broken = request_bytes(
        "POST",
        observations_path(profile),
        b"zz\r\n{}\r\n0\r\n\r\n",
        {"Transfer-Encoding": "chunked"},
        length=False,
    )
    answer, closed = exchange(port_of(sandbox.base_url), broken)
    assert (answer.status, closed) == (400, True)


@pytest.mark.parametrize(
    "query", ["pageSize=abc", "pageSize=1.5", "pageSize=0", "pageToken=abc", "pageToken=-3"]
)
def test_sandbox_answers_bad_paging_on_list_endpoints_400(sandbox, profile, query):
    for path in ("/v1/ControlPlane/Stores", observations_path(profile)):
        status, _, body = memory_call(sandbox, "GET", f"{path}?{query}")
        assert (status, body["code"]) == (400, 520046), path
    assert memory_call(sandbox, "GET", "/v1/ControlPlane/Stores?pageSize=101")[0] == 400  # 1..100 there
    assert memory_call(sandbox, "GET", f"{observations_path(profile)}?pageSize=1000")[0] == 200


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/__sandbox/faults", b"{not json"),
        ("/__sandbox/faults", b'{"statuss": 503}'),
        ("/__sandbox/faults", b"[1, 2]"),
        ("/__sandbox/faults", b'{"status": "\xff"}'),
        ("/__sandbox/merge", b'{"merged": "mem_profile_x"}'),
        ("/__sandbox/stores", b'{"displayName": 7}'),
    ],
)
def test_sandbox_admin_answers_bad_bodies_400(sandbox, path, body):
    answer, closed = exchange(port_of(sandbox.base_url), request_bytes("POST", path, body))
    assert answer.status == 400
    assert set(answer.json()) == {"message"}
    assert not closed  # the body was framed well: the connection stays usable
    assert sandbox.faults == []


def test_sandbox_admin_answers_a_bad_content_length_400(sandbox):
    data = request_bytes("POST", "/__sandbox/faults", b"{}", {"Content-Length": "-1"}, length=False)
    answer, closed = exchange(port_of(sandbox.base_url), data)
    assert (answer.status, closed) == (400, True)
    assert "Content-Length" in answer.json()["message"]


# ---- the local API front (`make run`): malformed HTTP is answered 400 ----------------------------


@pytest.fixture(scope="module")
def front() -> Iterator[int]:
    api = LocalApiFront("127.0.0.1", 0)
    api.start()
    assert api._server is not None
    yield api._server.server_address[1]
    api.stop()


@pytest.mark.parametrize("length", ["abc", "-1", "1, 2", ""])
def test_front_answers_a_bad_content_length_400_and_closes(front, length):
    started = time.monotonic()
    data = request_bytes("POST", WEBHOOK_PATH, b"x=1", {"Content-Length": length}, length=False)
    answer, closed = exchange(front, data)
    assert time.monotonic() - started < 1.0
    assert answer.status == 400
    assert "Content-Length" in answer.json()["message"]
    assert closed


def test_front_answers_413_over_api_gateways_payload_limit(front):
    data = request_bytes(
        "POST", WEBHOOK_PATH, headers={"Content-Length": str(11 * 1024 * 1024)}, length=False
    )
    answer, closed = exchange(front, data)
    assert (answer.status, closed) == (413, True)


@pytest.mark.parametrize(
    ("body", "headers"),
    [
        (b"Body=\xff\xfe", {}),
        (gzip.compress(b"Body=hi")[:-3], {"Content-Encoding": "gzip"}),  # API Gateway passes it on as is
    ],
)
def test_front_answers_a_non_utf8_body_400(front, body, headers):
    data = request_bytes(
        "POST", WEBHOOK_PATH, body, {"Content-Type": "application/x-www-form-urlencoded", **headers}
    )
    answer, closed = exchange(front, data)
    assert answer.status == 400
    assert "UTF-8" in answer.json()["message"]
    assert not closed


def test_front_reads_the_body_of_an_unknown_route_so_keep_alive_holds(front):
    conn = http.client.HTTPConnection("127.0.0.1", front, timeout=2)
    conn.request("POST", "/elsewhere", body=b"GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n")
    first = conn.getresponse()
    assert (first.status, json.loads(first.read())) == (403, {"message": "Missing Authentication Token"})
    conn.request("GET", "/again")
    second = conn.getresponse()
    assert second.status == 403
    second.read()


# ---- moto, as faithful as the ledger needs ----------------------------------------------------


def test_concurrent_conditional_writes_to_one_item_have_one_winner(aws_env):
    """DynamoDB applies a conditional write atomically; moto_speedups makes moto's server do so too
    (without it, 2-3 of 100 simultaneous pairs both won). The ledger's claim rests on this."""
    import threading

    from memory_bridge_dev.aws_resources import create_idempotency_table

    clients = [boto3.client("dynamodb") for _ in range(2)]
    table = create_idempotency_table(clients[0], f"race-{uuid.uuid4().hex[:10]}")
    double_winners = 0
    for _ in range(60):
        key = {"id": {"S": uuid.uuid4().hex}}
        barrier, wins = threading.Barrier(2), []

        def claim(
            client: Any, key: dict[str, Any] = key, barrier: Any = barrier, wins: list[int] = wins
        ) -> None:
            barrier.wait()
            try:
                client.update_item(
                    TableName=table,
                    Key=key,
                    UpdateExpression="SET lease_owner = :me",
                    ConditionExpression="attribute_not_exists(id)",
                    ExpressionAttributeValues={":me": {"S": "x"}},
                )
                wins.append(1)
            except client.exceptions.ConditionalCheckFailedException:
                pass

        threads = [threading.Thread(target=claim, args=(c,)) for c in clients]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert wins, "nobody won"
        double_winners += len(wins) > 1
    assert double_winners == 0


# ---- the local front's dev-only controls -------------------------------------------------------


def test_front_sqs_clock_control_lets_held_messages_come_back(aws_env, sqs_clock):
    import urllib3

    api = LocalApiFront("127.0.0.1", 0)
    api.start()
    assert api._server is not None
    control = f"http://127.0.0.1:{api._server.server_address[1]}/__local"
    try:
        sqs = boto3.client("sqs")
        url = sqs.create_queue(QueueName=f"front-clock-{uuid.uuid4().hex[:8]}")["QueueUrl"]
        sqs.send_message(QueueUrl=url, MessageBody="held")
        assert len(sqs.receive_message(QueueUrl=url, VisibilityTimeout=900).get("Messages", [])) == 1
        assert sqs.receive_message(QueueUrl=url).get("Messages", []) == []
        answer = urllib3.request("POST", f"{control}/sqs-clock", json={"advance": 901})
        assert answer.status == 200 and answer.json()["offset"] == 901
        [back] = sqs.receive_message(QueueUrl=url)["Messages"]
        assert back["Body"] == "held"
        assert urllib3.request("POST", f"{control}/sqs-clock", json={"advance": -1}).status == 400
        assert urllib3.request("POST", f"{control}/sqs-clock", body=b"[1]").status == 400
        assert urllib3.request("GET", f"{control}/nothing").status == 404
    finally:
        api.stop()


def test_front_aws_fault_controls_drive_the_proxies_and_name_the_services(aws_env):
    import urllib3

    with FaultProxy(aws_env) as proxy:
        api = LocalApiFront("127.0.0.1", 0, {"dynamodb": proxy})
        api.start()
        assert api._server is not None
        control = f"http://127.0.0.1:{api._server.server_address[1]}/__local/aws-faults"
        try:
            fault = {"service": "dynamodb", "mode": "status", "status": 500, "operation": "UpdateItem"}
            answer = urllib3.request("POST", control, json=fault)
            assert answer.status == 200 and proxy.fault is not None and proxy.fault.operation == "UpdateItem"
            unknown = urllib3.request("POST", control, json={"service": "sqs", "mode": "hang"})
            assert unknown.status == 400 and "dynamodb" in unknown.json()["error"]
            bad_mode = urllib3.request("POST", control, json={"service": "dynamodb", "mode": "explode"})
            assert bad_mode.status == 400 and "mode must be one of" in bad_mode.json()["error"]
            assert urllib3.request("DELETE", control).json() == {"cleared": ["dynamodb"]}
            assert proxy.fault is None
        finally:
            api.stop()


# ---- the customers' conversations that make soak and make bench send (memory_bridge_dev.customer_chats)


@pytest.mark.parametrize("over", ["rest", "in process"])
def test_a_customer_chat_seeded_for_the_dev_tools_is_read_by_the_bridge_as_twilio_s(bridge, over):
    """make soak seeds over the sandbox's REST API, make bench in process: either way, the webhooks the
    tools send for a customer and their agent land on the customer's profile, the agent's labelled, and
    the participants are read once for both (the second message finds them cached)."""
    from memory_bridge_dev.customer_chats import InProcessSeeder, RestSeeder, message_params
    from tests.support import signed_event

    bridge.seed_authors = False  # the tools make the participants themselves
    seeder = (
        RestSeeder(bridge.conversations.base_url, DEV_ACCOUNT_SID, DEV_AUTH_TOKEN)
        if over == "rest"
        else InProcessSeeder(bridge.conversations)
    )
    chat = seeder.sms_conversation("+15555550142", agent="agent3@example.com")
    roster = bridge.conversations.participants(chat.conversation_sid)
    assert {(p.sid, p.address, p.proxy_address) for p in roster if p.address} == {
        (chat.customer_participant, "+15555550142", "+15555550000")
    }
    assert chat.service_sid == bridge.conversations.store.default_service

    for index, (sid, by_agent) in enumerate([("IM" + "a" * 32, False), ("IM" + "b" * 32, True)]):
        params = message_params(
            chat,
            account_sid=DEV_ACCOUNT_SID,
            message_sid=sid,
            body=f"said {index}",
            index=index,
            by_agent=by_agent,
        )
        answer = bridge.invoke(signed_event(params))
        assert json.loads(answer["body"])["outcome"] == "posted", answer

    landed = {(o["content"], o["source"]) for o in bridge.observations()}
    assert landed == {("said 0", "twilio-conversations"), ("Agent: said 1", "twilio-conversations-agent")}
    assert len({o["profileId"] for o in bridge.observations()}) == 1
    assert bridge.conversations.calls("ListServiceConversationParticipant") == 1
    assert "agent3@example.com" not in json.dumps([r.body for r in bridge.sandbox.requests])
