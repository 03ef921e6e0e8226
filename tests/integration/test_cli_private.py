"""Issue 18, items 4 and 5: the CLI never sends real credentials to a local stack's URL, plain http goes
only to loopback, and what holds customer data is private.

A local-stack state file (any file at MEMORY_BRIDGE_LOCAL_STATE, which the README once put in /tmp) is
planted pointing at a loopback listener that records every request; the shell holds real-looking
Twilio credentials. The listener must never see them. The files the CLI writes (`dlq export`,
`dlq replay --report`) are 0600 and a symlink at their path is replaced, not followed.
"""

from __future__ import annotations

import base64
import io
import json
import os
import stat
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from memory_bridge_cli import main as cli
from memory_bridge_dev.parking import park_observations
from tests.support import DEV_ACCOUNT_SID, DEV_AUTH_TOKEN

pytestmark = pytest.mark.integration

REAL_SID = "AC" + "5f3a9c0e7b2d4618a0c9e1f2b3d4c5a6"
REAL_TOKEN = "9b1f0e2d3c4a5b6c7d8e9f0a1b2c3d4e"
STORE = "mem_store_01kpttrksqe08rhv122gzq52ax"
PROFILE = "mem_profile_0" + "1" * 25


class Recorder(BaseHTTPRequestHandler):
    """Answers 200 `{}` to anything and keeps what it was sent."""

    received: list[dict[str, Any]]

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode(errors="replace") if length else ""
        self.received.append(
            {"method": self.command, "path": self.path, "headers": dict(self.headers), "body": body}
        )
        answer = b"{}"
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _answer

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def listener() -> Iterator[dict[str, Any]]:
    received: list[dict[str, Any]] = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), type("Handler", (Recorder,), {"received": received}))
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield {
        "url": f"http://127.0.0.1:{server.server_address[1]}",
        "port": server.server_address[1],
        "received": received,
    }
    server.shutdown()
    server.server_close()


@pytest.fixture
def shell(monkeypatch, tmp_path) -> Path:
    """This shell: real-looking Twilio credentials exported, no Memory URL, a state file path of its own."""
    for name in ("MEMORY_API_BASE_URL", "TWILIO_API_KEY", "TWILIO_API_SECRET", "MEMORY_STORE_ID"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("TWILIO_ACCOUNT_SID", REAL_SID)
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", REAL_TOKEN)
    state = tmp_path / "local-stack.json"
    monkeypatch.setenv("MEMORY_BRIDGE_LOCAL_STATE", str(state))
    return state


def plant_state(path: Path, listener: dict[str, Any]) -> None:
    """A state file as `make run` writes it, every URL at the listener, naming a live pid (ours)."""
    url = listener["url"]
    path.write_text(
        json.dumps(
            {
                "webhook_url": f"{url}/webhooks/conversations",
                "auth_token": DEV_AUTH_TOKEN,
                "account_sid": DEV_ACCOUNT_SID,
                "store_id": STORE,
                "sandbox_url": url,
                "queue_url": f"{url}/123456789012/memory-bridge-dead-letters",
                "moto_url": url,
                "idempotency_table": "memory-bridge-idempotency",
                "pid": os.getpid(),
            }
        )
    )


def run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = cli.main(list(argv), out=out, err=err)
    return code, out.getvalue(), err.getvalue()


def leaked(received: list[dict[str, Any]]) -> list[str]:
    """Every place a request carried the real SID or token (the Basic header decoded)."""
    found = []
    for request in received:
        texts = [request["path"], request["body"], *request["headers"].values()]
        for value in request["headers"].values():
            if value.startswith("Basic "):
                texts.append(base64.b64decode(value[6:]).decode(errors="replace"))
        found += [text for text in texts if REAL_SID in text or REAL_TOKEN in text]
    return found


@pytest.mark.parametrize(
    "argv",
    [
        ["observations", "list", "--profile-id", PROFILE],
        ["stores", "list"],
        ["stores", "create", "--display-name", "x", "--no-wait"],
    ],
    ids=["observations-list", "stores-list", "stores-create"],
)
def test_a_planted_state_file_never_receives_the_real_credentials(shell, listener, argv):
    plant_state(shell, listener)
    code, out, err = run(*argv)
    assert leaked(listener["received"]) == []
    assert listener["received"] == []  # nothing at all: refused before any request
    assert code == 2, err
    assert "is used only with its own dev credentials" in err
    assert "unset TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN" in err
    assert "--memory-api-url https://memory.twilio.com" in err
    assert REAL_TOKEN not in out + err and "Traceback" not in err


def test_the_state_files_url_gets_its_own_dev_credentials(shell, listener, monkeypatch):
    """The local stack still works with no flags: its URL, its dev credentials."""
    plant_state(shell, listener)
    monkeypatch.delenv("TWILIO_ACCOUNT_SID")
    monkeypatch.delenv("TWILIO_AUTH_TOKEN")
    run("stores", "list")
    assert listener["received"], "the local stack's URL was not used"
    expected = "Basic " + base64.b64encode(f"{DEV_ACCOUNT_SID}:{DEV_AUTH_TOKEN}".encode()).decode()
    assert {r["headers"]["Authorization"] for r in listener["received"]} == {expected}


def test_send_to_the_local_stack_carries_its_account_not_the_real_one(shell, listener):
    plant_state(shell, listener)
    code, _, err = run("send", "--from", "+15555550100", "--body", "hi")
    assert code == 0, err
    assert leaked(listener["received"]) == []
    assert f"AccountSid={DEV_ACCOUNT_SID}" in listener["received"][0]["body"]


def test_a_state_file_others_may_write_or_a_symlink_is_not_believed(shell, listener, monkeypatch, tmp_path):
    monkeypatch.delenv("TWILIO_ACCOUNT_SID")
    monkeypatch.delenv("TWILIO_AUTH_TOKEN")
    plant_state(shell, listener)
    shell.chmod(0o666)
    code, _, err = run("stores", "list")
    assert code == 2 and listener["received"] == []
    assert "no Twilio credentials" in err and f"ignored {shell}: not a regular file of yours" in err
    elsewhere = tmp_path / "elsewhere.json"
    plant_state(elsewhere, listener)
    shell.unlink()
    shell.symlink_to(elsewhere)
    code, _, err = run("stores", "list")
    assert code == 2 and listener["received"] == []


def test_the_state_files_aws_endpoint_is_signed_with_dummy_keys_not_this_shells(shell, listener, monkeypatch):
    """SigV4 sends the access key id and a signature, not the secret; still, a planted endpoint gets
    moto's dummy keys, as its Memory URL gets the dev credentials."""
    plant_state(shell, listener)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAREALLOOKINGKEY01")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "real-looking-secret-0123456789abcdefghij")
    run("dlq", "stats")
    signed = [r["headers"].get("Authorization", "") for r in listener["received"]]
    assert signed, "the state file's queue was not read"
    assert all("Credential=local/" in header for header in signed), signed
    assert not [r for r in listener["received"] if "AKIAREALLOOKINGKEY01" in json.dumps(r)]


def test_dlq_replay_of_a_named_queue_never_posts_to_the_state_files_memory(
    oncall, listener, tmp_path, monkeypatch
):
    """The queue named by --queue-url holds customer messages: a planted state file's Memory URL (with
    its own dev credentials, or any) must not receive them. Memory comes from --memory-api-url /
    MEMORY_API_BASE_URL, else Twilio's, and the real credentials must be named."""
    park_observations(oncall.sqs, oncall.queue_url, oncall.store_id, [PROFILE], 3, "private")
    state = tmp_path / "planted.json"
    plant_state(state, listener)
    monkeypatch.setenv("MEMORY_BRIDGE_LOCAL_STATE", str(state))
    for name in ("TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN", "MEMORY_API_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    code, _, err = run("dlq", "replay", "--queue-url", oncall.queue_url, "--table", oncall.table)
    assert listener["received"] == []
    assert code == 2 and "no Twilio credentials" in err
    assert len(oncall.parked()) == 3


@pytest.mark.parametrize("where", ["--memory-api-url", "MEMORY_API_BASE_URL"])
def test_plain_http_to_anything_but_loopback_is_refused(shell, listener, monkeypatch, where):
    # 0.0.0.0 is not a loopback address, yet Linux connects it to this machine: the listener would
    # see the credentials if the rule did not hold.
    url = f"http://0.0.0.0:{listener['port']}"
    argv = ["stores", "list"]
    if where == "--memory-api-url":
        argv += ["--memory-api-url", url]
    else:
        monkeypatch.setenv("MEMORY_API_BASE_URL", url)
    code, _, err = run(*argv)
    assert listener["received"] == []
    assert code == 2
    assert f"{where} must be an absolute URL, https://, or http:// only to loopback" in err


# ---- files that hold customer data -----------------------------------------------------------


@pytest.fixture
def umask_022() -> Iterator[None]:
    previous = os.umask(0o022)  # the usual one, under which a plain open() makes 0644
    yield
    os.umask(previous)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def test_dlq_export_is_0600_and_replaces_an_existing_file(oncall, tmp_path, umask_022):
    park_observations(oncall.sqs, oncall.queue_url, oncall.store_id, [PROFILE], 3, "private")
    target = tmp_path / "export.jsonl"
    target.write_text("old\n")
    target.chmod(0o644)
    code, _, err = oncall.run("dlq", "export", "--out", str(target))
    assert code == 0, err
    assert mode(target) == 0o600 and stat.S_ISREG(target.lstat().st_mode)
    assert len(target.read_text().splitlines()) == 3
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".export")] == []  # no leftovers


def test_dlq_export_replaces_a_symlink_and_never_writes_through_it(oncall, tmp_path, umask_022):
    park_observations(oncall.sqs, oncall.queue_url, oncall.store_id, [PROFILE], 2, "private")
    victim = tmp_path / "victim.txt"
    victim.write_text("someone's file\n")
    link = tmp_path / "export.jsonl"
    link.symlink_to(victim)
    code, _, err = oncall.run("dlq", "export", "--out", str(link))
    assert code == 0, err
    assert victim.read_text() == "someone's file\n"
    assert not link.is_symlink() and mode(link) == 0o600
    assert len(link.read_text().splitlines()) == 2


def test_the_replay_report_is_0600_and_a_symlink_is_replaced(oncall, tmp_path, umask_022):
    park_observations(oncall.sqs, oncall.queue_url, oncall.store_id, [PROFILE], 1, "private")
    report = tmp_path / "report.json"
    code, _, err = oncall.run("dlq", "replay", "--dry-run", "--table", oncall.table, "--report", str(report))
    assert code == 0, err
    assert mode(report) == 0o600 and json.loads(report.read_text())["audit"]["what"] == "dlq replay --dry-run"
    victim = tmp_path / "victim.txt"
    victim.write_text("someone's file\n")
    report.unlink()
    report.symlink_to(victim)
    code, _, err = oncall.run("dlq", "replay", "--dry-run", "--table", oncall.table, "--report", str(report))
    assert code == 0, err
    assert victim.read_text() == "someone's file\n"
    assert not report.is_symlink() and mode(report) == 0o600
