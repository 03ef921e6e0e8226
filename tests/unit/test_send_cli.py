"""`memory-bridge send`: where the auth token comes from, against a loopback server that records the POST.

The token must not need to be in argv: TWILIO_AUTH_TOKEN, or a hidden prompt in a terminal; --auth-token
still works, with a warning. The local stack's dev token needs neither.
"""

from __future__ import annotations

import io
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl

import pytest

from memory_bridge.signature import compute_signature
from memory_bridge_cli import main as cli

REAL_TOKEN = "real-auth-token-not-for-argv-0123"
DEV_TOKEN = "dev-auth-token-0123456789abcdef"


class Recorder(BaseHTTPRequestHandler):
    received: list[dict[str, Any]]

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"])).decode()
        self.received.append({"signature": self.headers["X-Twilio-Signature"], "body": body})
        answer = json.dumps({"outcome": "posted", "observations": 1}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def webhook(monkeypatch, tmp_path) -> Iterator[dict[str, Any]]:
    received: list[dict[str, Any]] = []
    handler = type("Handler", (Recorder,), {"received": received})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    monkeypatch.setenv("MEMORY_BRIDGE_LOCAL_STATE", str(tmp_path / "none.json"))
    monkeypatch.delenv("TWILIO_AUTH_TOKEN", raising=False)
    monkeypatch.setattr("sys.stdin", io.StringIO())  # not a terminal unless a test says so

    def no_prompt(prompt: str = "") -> str:
        raise AssertionError("prompted for the token")

    monkeypatch.setattr("getpass.getpass", no_prompt)
    url = f"http://127.0.0.1:{server.server_address[1]}/webhooks/conversations"
    yield {"url": url, "received": received, "tmp": tmp_path}
    server.shutdown()
    server.server_close()


def send(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = cli.main(["send", "--from", "+15555550100", "--body", "hi", "--json", *argv], out=out, err=err)
    return code, out.getvalue(), err.getvalue()


def signed_with(webhook: dict[str, Any], url: str) -> str:
    [request] = webhook["received"]
    params = parse_qsl(request["body"], keep_blank_values=True)
    for token in (REAL_TOKEN, DEV_TOKEN, "typed-at-the-prompt"):
        if compute_signature(url, params, token) == request["signature"]:
            return token
    raise AssertionError("signed with none of the known tokens")


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_the_token_comes_from_the_environment(webhook, monkeypatch):
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", REAL_TOKEN)
    code, out, err = send("--url", webhook["url"])
    assert code == 0, err
    assert signed_with(webhook, webhook["url"]) == REAL_TOKEN
    assert err == "" and REAL_TOKEN not in out


def test_auth_token_flag_still_works_with_a_one_line_warning(webhook):
    code, out, err = send("--url", webhook["url"], "--auth-token", REAL_TOKEN)
    assert code == 0, err
    assert signed_with(webhook, webhook["url"]) == REAL_TOKEN
    [warning] = err.splitlines()
    assert "shell history" in warning and "TWILIO_AUTH_TOKEN" in warning
    assert REAL_TOKEN not in out + err


def test_no_token_and_no_terminal_is_a_usage_error_naming_the_variable(webhook):
    code, _, err = send("--url", webhook["url"])
    assert code == 2
    assert "TWILIO_AUTH_TOKEN" in err
    assert webhook["received"] == []


def test_in_a_terminal_it_asks_without_echoing(webhook, monkeypatch):
    prompts: list[str] = []

    def answer(prompt: str = "") -> str:
        prompts.append(prompt)
        return "typed-at-the-prompt"

    monkeypatch.setattr("sys.stdin", Terminal())
    monkeypatch.setattr("getpass.getpass", answer)
    code, out, err = send("--url", webhook["url"])
    assert code == 0, err
    assert len(prompts) == 1 and webhook["url"] in prompts[0]
    assert signed_with(webhook, webhook["url"]) == "typed-at-the-prompt"
    assert "typed-at-the-prompt" not in out + err


def test_an_empty_answer_is_a_usage_error(webhook, monkeypatch):
    monkeypatch.setattr("sys.stdin", Terminal())
    monkeypatch.setattr("getpass.getpass", lambda prompt="": "")
    code, _, err = send("--url", webhook["url"])
    assert code == 2 and "TWILIO_AUTH_TOKEN" in err
    assert webhook["received"] == []


def local_stack(webhook: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    state = webhook["tmp"] / "local-stack.json"
    state.write_text(
        json.dumps({"webhook_url": webhook["url"], "auth_token": DEV_TOKEN, "account_sid": "AC" + "0" * 32})
    )
    monkeypatch.setenv("MEMORY_BRIDGE_LOCAL_STATE", str(state))


def test_the_local_stack_needs_no_token_and_no_prompt(webhook, monkeypatch):
    local_stack(webhook, monkeypatch)
    monkeypatch.setattr("sys.stdin", Terminal())  # even in a terminal: no prompt
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", REAL_TOKEN)  # a real token exported for deploys is not used
    code, _, err = send()
    assert code == 0, err
    assert signed_with(webhook, webhook["url"]) == DEV_TOKEN
    assert err == ""


def test_another_url_with_the_local_stack_running_is_not_signed_with_the_dev_token(webhook, monkeypatch):
    local_stack(webhook, monkeypatch)
    other = webhook["url"].replace("/webhooks/conversations", "/other")
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", REAL_TOKEN)
    code, _, err = send("--url", other)
    assert code == 0, err
    assert signed_with(webhook, other) == REAL_TOKEN
