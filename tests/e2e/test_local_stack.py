"""End to end: `make run`'s stack as a subprocess, driven only over HTTP (and the CLI, which uses HTTP)."""

from __future__ import annotations

import io
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
import urllib3

from memory_bridge.domain.envelope import parse_envelope
from memory_bridge.domain.signature import compute_signature
from memory_bridge_cli import main as cli
from tests.conftest import free_port
from tests.e2e.conftest import local_stack_process
from tests.support import ROOT

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    with local_stack_process(tmp_path_factory.mktemp("stack")) as info:
        yield info


def run_cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    saved = {
        k: os.environ.pop(k, None)
        for k in ("TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN", "MEMORY_API_BASE_URL", "MEMORY_STORE_ID")
    }
    try:
        code = cli.main(list(argv), out=out, err=err)
    finally:
        os.environ.update({k: v for k, v in saved.items() if v is not None})
    return code, out.getvalue(), err.getvalue()


def sandbox(stack: dict[str, Any], method: str, path: str, body: Any = None) -> Any:
    response = urllib3.request(method, stack["sandbox_url"] + path, json=body)
    return response.json()


def test_signed_message_becomes_an_observation(stack):
    code, out, err = run_cli("send", "--from", "+15555550177", "--body", "e2e hello", "--json")
    assert code == 0, err
    assert json.loads(out)["answer"] == {"outcome": "posted", "observations": 1}
    code, out, err = run_cli("observations", "list", "--address", "+15555550177", "--json")
    assert code == 0, err
    assert [o["content"] for o in json.loads(out)["observations"]] == ["e2e hello"]


def test_bad_signature_is_403(stack):
    body = (
        b"EventType=onMessageAdded&MessageSid=IMx&ConversationSid=CHx&DateCreated=2026-01-01T00:00:00Z&Body=x"
    )
    response = urllib3.request(
        "POST",
        stack["webhook_url"],
        body=body,
        headers={"Content-Type": "application/x-www-form-urlencoded", "X-Twilio-Signature": "d3Jvbmc="},
    )
    assert response.status == 403
    unsigned = urllib3.request(
        "POST", stack["webhook_url"], body=body, headers={"Content-Type": "application/x-www-form-urlencoded"}
    )
    assert unsigned.status == 403


def test_a_fault_parks_an_envelope_on_the_queue(stack):
    sandbox(stack, "POST", "/__sandbox/faults", {"status": 503, "match": "/Observations"})
    try:
        code, out, err = run_cli("send", "--from", "+15555550188", "--body", "parked one", "--json")
    finally:
        sandbox(stack, "DELETE", "/__sandbox/faults")
    assert code == 0, err
    sent = json.loads(out)
    assert sent["answer"]["outcome"] == "parked"
    sqs = boto3.client(
        "sqs",
        endpoint_url=stack["moto_url"],
        region_name="us-east-1",
        aws_access_key_id="local",
        aws_secret_access_key="local",
    )
    messages = sqs.receive_message(QueueUrl=stack["queue_url"], MaxNumberOfMessages=10, VisibilityTimeout=0)[
        "Messages"
    ]
    envelopes = [parse_envelope(m["Body"]) for m in messages]
    assert sent["messageSid"] in [e.message_sid for e in envelopes]
    parked = next(e for e in envelopes if e.message_sid == sent["messageSid"])
    assert (parked.kind, parked.failure.status) == ("retryable", 503)


def test_signature_matches_the_url_twilio_would_call(stack):
    params = [("EventType", "onConversationAdded"), ("ConversationSid", "CH1")]
    signature = compute_signature(stack["webhook_url"], params, stack["auth_token"])
    response = urllib3.request(
        "POST",
        stack["webhook_url"],
        fields=None,
        body="EventType=onConversationAdded&ConversationSid=CH1",
        headers={"Content-Type": "application/x-www-form-urlencoded", "X-Twilio-Signature": signature},
    )
    assert response.status == 200
    assert response.json()["outcome"] == "ignored"


def test_unknown_route_answers_like_api_gateway(stack):
    response = urllib3.request("GET", stack["webhook_url"].replace("/webhooks/conversations", "/nope"))
    assert response.status == 403


def local_stack_command(ports: dict[str, int]) -> list[str]:
    command = [sys.executable, "-m", "memory_bridge_dev.local_stack", "--provisioning-seconds", "0.5"]
    for flag, port in ports.items():
        command += [flag, str(port)]
    return command


def test_a_second_stack_on_the_same_ports_says_which_and_exits_at_once(stack):
    ports = {
        "--front-port": int(stack["webhook_url"].split(":")[2].split("/")[0]),
        "--sandbox-port": int(stack["sandbox_url"].rsplit(":", 1)[1]),
        "--moto-port": int(stack["moto_url"].rsplit(":", 1)[1]),
    }
    env = {**os.environ, "MEMORY_BRIDGE_LOCAL_STATE": str(stack["state"])}
    started = time.monotonic()
    second = subprocess.run(
        local_stack_command(ports), cwd=ROOT, env=env, capture_output=True, text=True, timeout=30
    )
    assert second.returncode == 2
    assert time.monotonic() - started < 10
    assert f"Another local stack is running (pid {stack['pid']}" in second.stderr
    assert "already in use" in second.stderr and "FRONT_PORT=" in second.stderr
    assert "Traceback" not in second.stdout + second.stderr
    assert json.loads(Path(stack["state"]).read_text())["pid"] == stack["pid"]  # the first one's, still


def test_a_second_stack_with_the_first_ones_state_file_is_refused(stack):
    ports = {"--front-port": free_port(), "--sandbox-port": free_port(), "--moto-port": free_port()}
    env = {**os.environ, "MEMORY_BRIDGE_LOCAL_STATE": str(stack["state"])}
    second = subprocess.run(
        local_stack_command(ports), cwd=ROOT, env=env, capture_output=True, text=True, timeout=30
    )
    assert second.returncode == 2
    assert f"the local stack of pid {stack['pid']} keeps its state in" in second.stderr
    assert "MEMORY_BRIDGE_LOCAL_STATE=" in second.stderr
    assert json.loads(Path(stack["state"]).read_text())["pid"] == stack["pid"]


@pytest.mark.parametrize(
    ("env_extra", "argv", "says"),
    [
        ({"FRONT_PORT": "abc"}, [], "must be a port number"),
        ({}, ["--moto-port", "70000"], "must be a port number from 1 to 65535"),
        ({}, ["--front-port", "3999", "--sandbox-port", "3999"], "must all differ"),
    ],
)
def test_bad_ports_are_refused_naming_the_rule(tmp_path, env_extra, argv, says):
    env = {**os.environ, "MEMORY_BRIDGE_LOCAL_STATE": str(tmp_path / "state.json"), **env_extra}
    result = subprocess.run(
        [sys.executable, "-m", "memory_bridge_dev.local_stack", *argv],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert says in result.stderr
    assert "Traceback" not in result.stderr


def test_two_stacks_started_at_the_same_moment_neither_hangs(tmp_path):
    ports = {"--front-port": free_port(), "--sandbox-port": free_port(), "--moto-port": free_port()}
    processes = [
        subprocess.Popen(
            local_stack_command(ports),
            cwd=ROOT,
            env={**os.environ, "MEMORY_BRIDGE_LOCAL_STATE": str(tmp_path / f"state{i}.json")},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for i in range(2)
    ]
    try:
        deadline = time.monotonic() + 40
        while time.monotonic() < deadline and all(p.poll() is None for p in processes):
            time.sleep(0.2)
        loser = next((p for p in processes if p.poll() is not None), None)
        assert loser is not None, "both still running: one of them hangs"
        assert loser.returncode == 2
    finally:
        for process in processes:
            if process.poll() is None:
                process.send_signal(signal.SIGINT)
                process.wait(timeout=20)
    outputs = [p.stdout.read() if p.stdout else "" for p in processes]
    assert not any("Traceback" in output for output in outputs), outputs


@pytest.mark.parametrize("after", [0.3, 1.5, 3.0])
def test_ctrl_c_during_start_up_stops_it_quietly(tmp_path, after):
    ports = {"--front-port": free_port(), "--sandbox-port": free_port(), "--moto-port": free_port()}
    env = {**os.environ, "MEMORY_BRIDGE_LOCAL_STATE": str(tmp_path / "state.json")}
    env.pop("AWS_ENDPOINT_URL", None)
    process = subprocess.Popen(
        local_stack_command(ports),
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    time.sleep(after)
    process.send_signal(signal.SIGINT)
    output, _ = process.communicate(timeout=20)
    assert process.returncode in (0, 130), output
    assert "Traceback" not in output
    assert not (tmp_path / "state.json").exists()


def test_ctrl_c_stops_everything_cleanly(stack):
    process = stack["process"]
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=20) == 0
    # The terminal showed one readable line per webhook, not the function's JSON logs and metrics.
    output = Path(stack["log"]).read_text()
    assert re.search(r"\d\d:\d\d:\d\d  200 posted +\d+ ms  IM", output), output[-2000:]
    assert re.search(r"403 forbidden", output)
    assert '"_aws"' not in output and '"level": "INFO"' not in output and '"level":"INFO"' not in output
    assert not Path(stack["state"]).exists()
    with pytest.raises(urllib3.exceptions.HTTPError):
        urllib3.request("GET", stack["sandbox_url"] + "/__sandbox/health", retries=False, timeout=2)


def test_make_demo_walks_through_and_ends_with_everything_once(tmp_path):
    ports = [str(free_port()) for _ in range(3)]
    env = {k: v for k, v in os.environ.items() if k not in ("AWS_ENDPOINT_URL", "MEMORY_BRIDGE_LOCAL_STATE")}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "memory_bridge_dev.demo",
            "--front-port",
            ports[0],
            "--sandbox-port",
            ports[1],
            "--moto-port",
            ports[2],
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "messages sent 5 · in Memory once each 5 · duplicates 0 · left on the queue 0" in result.stdout
    # Step 5: the agent's reply is labelled on the customer's profile, never on a profile of its own.
    assert "twilio-conversations-agent   Agent: Your parcel arrives tomorrow before noon." in result.stdout
    assert "OK: the agent's reply is on Ada's profile once" in result.stdout
    assert "Traceback" not in result.stdout + result.stderr
