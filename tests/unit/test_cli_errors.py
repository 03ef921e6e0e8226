"""The CLI's answers to the failures people hit: each names the cause and the fix, never "unexpected".

No AWS credentials, an AWS endpoint that does not answer, a state file left by a stopped local stack,
Memory unreachable, and a reader that goes away (`dlq stats | head`).
"""

from __future__ import annotations

import io
import json
import socket
from typing import Any

import pytest

from memory_bridge_cli import main as cli

QUEUE = "https://sqs.us-east-1.amazonaws.com/123456789012/memory-bridge-dead-letters"


@pytest.fixture(autouse=True)
def no_aws(monkeypatch, tmp_path):
    for name in (
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_PROFILE",
        "AWS_ENDPOINT_URL",
        "DEAD_LETTER_QUEUE_URL",
        "MEMORY_BRIDGE_DEBUG",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("MEMORY_BRIDGE_LOCAL_STATE", str(tmp_path / "none.json"))


def run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = cli.main(list(argv), out=out, err=err)
    return code, out.getvalue(), err.getvalue()


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_no_aws_credentials_is_a_configuration_error_with_the_fix():
    code, _, err = run("dlq", "stats", "--queue-url", QUEUE, "--region", "us-east-1")
    assert code == 2
    assert "no AWS credentials" in err and "aws configure" in err
    assert "unexpected" not in err and "Traceback" not in err


def test_an_aws_endpoint_that_does_not_answer_is_named(monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "x")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "y")
    endpoint = f"http://127.0.0.1:{closed_port()}"
    code, _, err = run("dlq", "stats", "--queue-url", f"{endpoint}/123/q", "--endpoint-url", endpoint)
    assert code == 1
    assert f"could not reach the AWS endpoint {endpoint}" in err
    assert "unexpected" not in err


def test_a_state_file_left_by_a_stopped_stack_is_ignored_with_one_line(monkeypatch, tmp_path):
    port = closed_port()
    state = tmp_path / "stale.json"
    state.write_text(
        json.dumps(
            {
                "pid": 2**22 + 12345,  # above pid_max's default: no such process
                "queue_url": f"http://127.0.0.1:{port}/123/q",
                "moto_url": f"http://127.0.0.1:{port}",
                "webhook_url": f"http://127.0.0.1:{port}/webhooks/conversations",
            }
        )
    )
    monkeypatch.setenv("MEMORY_BRIDGE_LOCAL_STATE", str(state))
    code, _, err = run("dlq", "stats")
    assert code == 2
    assert f"ignored {state}" in err and "is not running" in err
    assert "no queue" in err
    assert "unexpected" not in err and "EndpointConnectionError" not in err


def test_memory_unreachable_says_what_to_check(monkeypatch):
    monkeypatch.setenv("TWILIO_ACCOUNT_SID", "AC" + "0" * 32)
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", "token")
    monkeypatch.setattr("memory_bridge_cli.stores.Backoff.attempts", 1, raising=False)
    code, _, err = run(
        "operations", "show", "mem_operation_x", "--memory-api-url", f"http://127.0.0.1:{closed_port()}"
    )
    assert code == 1
    assert "is Memory reachable? check --memory-api-url" in err
    assert "unexpected" not in err


class GoneReader(io.StringIO):
    def write(self, text: str) -> int:
        raise BrokenPipeError(32, "Broken pipe")

    def flush(self) -> None:
        raise BrokenPipeError(32, "Broken pipe")


def test_a_reader_that_goes_away_ends_quietly(monkeypatch):
    def handler(args: Any, console: Any) -> int:
        console.result({"depth": 1}, "depth 1\n" * 100)
        return 0

    parser = cli.build_parser()
    real_parse = parser.parse_args
    monkeypatch.setattr(cli, "build_parser", lambda: parser)
    monkeypatch.setattr(
        parser,
        "parse_args",
        lambda argv: real_parse(["stores", "list"]).__class__(handler=handler, json=False),
    )
    err = io.StringIO()
    code = cli.main(["stores", "list"], out=GoneReader(), err=err)
    assert code == 141
    assert err.getvalue() == ""


@pytest.mark.parametrize(
    "argv",
    [
        ("dlq", "replay", "--report", "/nonexistent/dir/report.json"),
        ("dlq", "export", "--out", "/nonexistent/dir/export.jsonl"),
        ("dlq", "export", "--out", "/"),  # a directory
    ],
)
def test_an_output_file_that_cannot_be_written_is_refused_before_any_work(argv):
    code, _, err = run(*argv, "--queue-url", QUEUE, "--region", "us-east-1")
    assert code == 2
    assert "--report" in err or "--out" in err
    assert "unexpected" not in err and "no AWS credentials" not in err  # refused before AWS was asked


def test_an_aws_endpoint_that_never_answers_is_given_up_on_and_named(monkeypatch):
    from botocore.config import Config

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "x")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "y")
    monkeypatch.setattr(
        "memory_bridge_cli.dlq.aws_client_config",
        lambda: Config(connect_timeout=1, read_timeout=0.5, retries={"max_attempts": 1}),
    )
    with socket.socket() as silent:  # accepts connections (the kernel's backlog), never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        endpoint = f"http://127.0.0.1:{silent.getsockname()[1]}"
        code, _, err = run("dlq", "stats", "--queue-url", f"{endpoint}/123/q", "--endpoint-url", endpoint)
    assert code == 1
    assert "did not answer in time" in err and "Ctrl-Z" in err
    assert "unexpected" not in err


def test_the_cli_gives_up_on_aws_within_about_half_a_minute():
    from memory_bridge_cli.common import aws_client_config

    config = aws_client_config()
    assert config.connect_timeout + config.read_timeout <= 20
    assert config.retries["max_attempts"] <= 2
