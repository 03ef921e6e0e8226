"""The fault proxy against a dummy upstream on loopback ("unit" in name: real sockets, all fast)."""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from memory_bridge_dev.fault_proxy import FaultProxy, aws_operation


@dataclass
class Upstream:
    url: str
    port: int
    hits: list[dict[str, Any]] = field(default_factory=list)


class EchoHandler(BaseHTTPRequestHandler):
    """Answers every request with what it received, as JSON."""

    protocol_version = "HTTP/1.1"
    hits: list[dict[str, Any]]

    def log_message(self, format: str, *args: Any) -> None:
        return

    def _echo(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        hit = {
            "method": self.command,
            "path": self.path,
            "headers": list(self.headers.items()),
            "body": body.decode("latin-1"),
        }
        self.hits.append(hit)
        if self.path.startswith("/no-content"):
            self.send_response(204)
            self.end_headers()
            return
        data = json.dumps(hit).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("X-Upstream", "echo")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _echo


@pytest.fixture
def upstream() -> Iterator[Upstream]:
    hits: list[dict[str, Any]] = []

    class Handler(EchoHandler):
        pass

    Handler.hits = hits
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    port = server.server_address[1]
    yield Upstream(f"http://127.0.0.1:{port}", port, hits)
    server.shutdown()
    server.server_close()


@pytest.fixture
def proxy(upstream: Upstream) -> Iterator[FaultProxy]:
    with FaultProxy(upstream=upstream.url) as running:
        yield running


def port_of(proxy: FaultProxy) -> int:
    return int(proxy.base_url.rsplit(":", 1)[1])


def raw_request(target: str = "SendMessage", body: bytes = b"{}") -> bytes:
    return (
        b"POST / HTTP/1.1\r\nHost: sqs.us-east-1.amazonaws.com\r\n"
        + f"X-Amz-Target: AmazonSQS.{target}\r\n".encode()
        + b"Content-Type: application/x-amz-json-1.0\r\n"
        + f"Content-Length: {len(body)}\r\n\r\n".encode()
        + body
    )


def connect(proxy: FaultProxy, timeout: float = 2.0) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port_of(proxy)), timeout=timeout)


def read_all(sock: socket.socket) -> bytes:
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


def complete(answer: bytes) -> bool:
    head, found, body = answer.partition(b"\r\n\r\n")
    if not found:
        return False
    lengths = [
        line.split(b":")[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")
    ]
    return len(body) >= int(lengths[0])


def test_forwards_method_path_query_headers_and_body_as_they_came(proxy, upstream):
    body = "Grüße, \x00 und so".encode()
    conn = http.client.HTTPConnection("127.0.0.1", port_of(proxy), timeout=2)
    conn.putrequest("PUT", "/queue/a%20b?Action=Send&x=1&x=2", skip_host=True, skip_accept_encoding=True)
    conn.putheader("Host", "sqs.us-east-1.amazonaws.com")
    conn.putheader("Authorization", "AWS4-HMAC-SHA256 Credential=testing/20261121/us-east-1/sqs/aws4_request")
    conn.putheader("X-Amz-Date", "20261121T100000Z")
    conn.putheader("X-Repeated", "one")
    conn.putheader("X-Repeated", "two")
    conn.putheader("Content-Length", str(len(body)))
    conn.endheaders(body)
    response = conn.getresponse()
    echoed = json.loads(response.read())
    assert response.status == 200
    assert response.getheader("X-Upstream") == "echo"
    assert echoed["method"] == "PUT"
    assert echoed["path"] == "/queue/a%20b?Action=Send&x=1&x=2"
    assert echoed["body"].encode("latin-1") == body
    headers = echoed["headers"]
    assert ["Host", "sqs.us-east-1.amazonaws.com"] in headers  # not rewritten to the upstream's
    assert ["X-Amz-Date", "20261121T100000Z"] in headers
    assert [v for k, v in headers if k == "X-Repeated"] == ["one", "two"]
    assert any(k == "Authorization" and v.startswith("AWS4-HMAC-SHA256") for k, v in headers)
    assert proxy.counters()["forwarded"] == 1


def test_keep_alive_carries_several_requests_on_one_connection(proxy, upstream):
    conn = http.client.HTTPConnection("127.0.0.1", port_of(proxy), timeout=2)
    for i in range(3):
        conn.request("POST", f"/n/{i}", body=b"{}", headers={"X-Amz-Target": "AmazonSQS.SendMessage"})
        response = conn.getresponse()
        assert json.loads(response.read())["path"] == f"/n/{i}"
    conn.request("HEAD", "/head")  # an answer without a body must not desynchronise the connection
    head = conn.getresponse()
    assert (head.status, head.read()) == (200, b"")
    conn.request("GET", "/no-content")
    no_content = conn.getresponse()
    assert (no_content.status, no_content.read()) == (204, b"")
    conn.request("GET", "/last")
    assert json.loads(conn.getresponse().read())["path"] == "/last"
    counters = proxy.settled_counters(answered=6)
    assert counters["connections"] == 1
    assert counters["seen"] == counters["forwarded"] == counters["answered"] == 6
    assert [r.operation for r in proxy.requests[:3]] == ["SendMessage"] * 3


def test_status_answers_an_aws_error_without_forwarding(proxy, upstream):
    proxy.set_fault("status", status=503, times=1)
    conn = http.client.HTTPConnection("127.0.0.1", port_of(proxy), timeout=2)
    conn.request("POST", "/", body=b"{}", headers={"X-Amz-Target": "AmazonSQS.SendMessage"})
    response = conn.getresponse()
    assert response.status == 503
    assert json.loads(response.read()) == {"__type": "ServiceUnavailable", "message": "injected"}
    assert upstream.hits == []
    conn.request("POST", "/", body=b"{}")  # times=1: the next one goes through, same connection
    assert conn.getresponse().status == 200
    assert len(upstream.hits) == 1
    assert proxy.fault is None


def test_status_answers_xml_to_a_query_protocol_client(proxy, upstream):
    proxy.set_fault("status", status=500)
    conn = http.client.HTTPConnection("127.0.0.1", port_of(proxy), timeout=2)
    conn.request(
        "POST",
        "/",
        body=b"Action=SendMessage&Version=2012-11-05",
        headers={"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"},
    )
    response = conn.getresponse()
    assert response.status == 500
    assert b"<Code>InternalFailure</Code>" in response.read()
    assert proxy.requests[-1].operation == "SendMessage"


def test_hang_reads_the_request_and_holds_the_connection_until_cleared(proxy, upstream):
    proxy.set_fault("hang")
    with connect(proxy, timeout=0.3) as sock:
        sock.sendall(raw_request())
        with pytest.raises(TimeoutError):
            sock.recv(1)
        assert proxy.counters()["hanging"] == 1
        assert upstream.hits == []
        proxy.clear()
        sock.settimeout(2)
        assert read_all(sock) == b""  # let go: closed, never answered
    assert proxy.counters()["answered"] == 0


def test_close_lets_go_of_a_hung_request_at_once(upstream):
    proxy = FaultProxy(upstream=upstream.url)
    proxy.serve()
    proxy.set_fault("hang")
    with connect(proxy) as sock:
        sock.sendall(raw_request())
        deadline = time.monotonic() + 2
        while proxy.counters()["hanging"] == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        started = time.monotonic()
        proxy.close()
        assert time.monotonic() - started < 1.0
        assert read_all(sock) == b""


def test_trickle_answers_a_byte_at_a_time(proxy, upstream):
    proxy.set_fault("trickle", delay=0.002)
    with connect(proxy, timeout=0.1) as sock:  # a per-read timeout far below the whole answer's time
        started = time.monotonic()
        sock.sendall(raw_request())
        data, reads = b"", 0
        while not complete(data):
            chunk = sock.recv(65536)
            assert chunk
            data, reads = data + chunk, reads + 1
        elapsed = time.monotonic() - started
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 ")
    assert json.loads(body)["path"] == "/"
    assert reads > 20
    assert elapsed >= (len(data) - 1) * 0.002 * 0.8
    assert len(upstream.hits) == 1


def test_refuse_closes_before_reading_anything(proxy, upstream):
    conn = http.client.HTTPConnection("127.0.0.1", port_of(proxy), timeout=2)
    conn.request("GET", "/before")
    conn.getresponse().read()
    proxy.set_fault("refuse", times=1)  # set while the keep-alive connection idles
    conn.request("GET", "/refused")
    with pytest.raises(http.client.RemoteDisconnected):
        conn.getresponse()
    with connect(proxy) as sock:  # used up: the next connection works
        sock.sendall(raw_request())
        assert sock.recv(12) == b"HTTP/1.1 200"
    assert [hit["path"] for hit in upstream.hits] == ["/before", "/"]
    assert proxy.requests[1].fault == "refuse"
    assert proxy.requests[1].method == ""  # never read


def test_reset_closes_with_a_tcp_reset(proxy, upstream):
    proxy.set_fault("reset")
    with connect(proxy) as sock:
        sock.sendall(raw_request())
        with pytest.raises(ConnectionResetError):
            read_all(sock)
    assert upstream.hits == []


def test_refuse_limited_to_an_operation_reads_the_request_first(proxy, upstream):
    proxy.set_fault("refuse", operation="SendMessage")
    with connect(proxy) as sock:
        sock.sendall(raw_request("ReceiveMessage"))
        assert sock.recv(12) == b"HTTP/1.1 200"
    with connect(proxy) as sock:
        sock.sendall(raw_request("SendMessage"))
        assert read_all(sock) == b""
    assert [r.operation for r in proxy.requests] == ["ReceiveMessage", "SendMessage"]
    assert len(upstream.hits) == 1


def test_forward_then_drop_forwards_and_loses_the_answer(proxy, upstream):
    proxy.set_fault("forward_then_drop", times=1, operation="SendMessage")
    with connect(proxy) as sock:
        sock.sendall(raw_request("SendMessage", b'{"MessageBody": "kept"}'))
        assert read_all(sock) == b""
    assert json.loads(upstream.hits[0]["body"]) == {"MessageBody": "kept"}
    assert proxy.requests[0].upstream_status == 200
    counters = proxy.counters()
    assert (counters["forwarded"], counters["answered"], counters["faulted"]) == (1, 0, 1)


def test_a_malformed_request_is_answered_400(proxy, upstream):
    for length in (b"-1", b"abc"):
        with connect(proxy) as sock:
            sock.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: " + length + b"\r\n\r\n{}")
            answer = read_all(sock)
        assert answer.startswith(b"HTTP/1.1 400 ")
        assert b"Connection: close" in answer
    assert upstream.hits == []


def test_an_unreachable_upstream_is_answered_502():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{probe.getsockname()[1]}"
    with FaultProxy(upstream=dead) as proxy:
        conn = http.client.HTTPConnection("127.0.0.1", port_of(proxy), timeout=2)
        conn.request("GET", "/")
        response = conn.getresponse()
        assert response.status == 502
        assert json.loads(response.read())["__type"] == "BadGateway"


def test_set_fault_checks_its_arguments(proxy):
    with pytest.raises(ValueError, match="mode"):
        proxy.set_fault("explode")
    with pytest.raises(ValueError, match="times"):
        proxy.set_fault("hang", times=0)
    with pytest.raises(ValueError, match="http"):
        FaultProxy(upstream="https://127.0.0.1:1")
    fault = proxy.set_fault("hang", hang_seconds=600)
    assert fault.hang_seconds == 120.0  # capped


def test_aws_operation_from_target_action_or_form_body():
    assert aws_operation({"X-Amz-Target": "DynamoDB_20120810.PutItem"}, "/", b"") == "PutItem"
    assert aws_operation({"X-Amz-Target": "secretsmanager.GetSecretValue"}, "/", b"") == "GetSecretValue"
    assert aws_operation({}, "/?Action=ListQueues&Version=1", b"") == "ListQueues"
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    assert aws_operation(form, "/", b"Action=SendMessage&MessageBody=x") == "SendMessage"
    assert aws_operation({}, "/", b"{}") == ""
