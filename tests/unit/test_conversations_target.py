"""Where the CLI sends Conversations calls, and with which credentials (memory_bridge_cli.conversations)."""

from __future__ import annotations

import argparse

import pytest

from memory_bridge.config import DEFAULT_CONVERSATIONS_API_BASE_URL
from memory_bridge_cli.common import UsageError
from memory_bridge_cli.conversations import conversations_target

STATE = {
    "account_sid": "AC" + "0" * 32,
    "auth_token": "dev-token",
    "conversations_url": "http://127.0.0.1:4001",
}


def args(**kw: object) -> argparse.Namespace:
    return argparse.Namespace(**{"conversations_api_url": None, "secret": None, **kw})


@pytest.fixture(autouse=True)
def no_operator_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "TWILIO_ACCOUNT_SID",
        "TWILIO_AUTH_TOKEN",
        "TWILIO_API_KEY",
        "TWILIO_API_SECRET",
        "CONVERSATIONS_API_BASE_URL",
    ):
        monkeypatch.delenv(name, raising=False)


def test_the_local_stacks_url_gets_its_dev_credentials():
    url, credentials = conversations_target(args(), STATE)
    assert url == STATE["conversations_url"]
    assert (credentials.account_sid, credentials.auth_token) == (STATE["account_sid"], "dev-token")


def test_a_url_set_by_a_process_running_the_stack_itself_still_gets_the_dev_credentials(monkeypatch):
    # make demo runs the stack in its own process, which sets CONVERSATIONS_API_BASE_URL for the
    # functions; its `dlq replay` used to stop with "no Twilio credentials for Conversations".
    monkeypatch.setenv("CONVERSATIONS_API_BASE_URL", STATE["conversations_url"])
    url, credentials = conversations_target(args(), STATE)
    assert url == STATE["conversations_url"]
    assert credentials.auth_token == "dev-token"


def test_no_state_and_no_credentials_is_a_usage_error():
    with pytest.raises(UsageError, match="no Twilio credentials for Conversations"):
        conversations_target(args(), None)


def test_the_operators_credentials_go_to_twilio_when_no_stack_runs(monkeypatch):
    monkeypatch.setenv("TWILIO_ACCOUNT_SID", "AC" + "1" * 32)
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", "real-token")
    url, credentials = conversations_target(args(), None)
    assert (url, credentials.auth_token) == (DEFAULT_CONVERSATIONS_API_BASE_URL, "real-token")
