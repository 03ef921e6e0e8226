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

from memory_bridge.domain.signature import compute_signature
from memory_bridge_cli import main as cli
from memory_bridge_dev.conversations_sandbox import ConversationsSandbox

REAL_TOKEN = "real-auth-token-not-for-argv-0123"
DEV_TOKEN = "dev-auth-token-0123456789abcdef"
DEV_ACCOUNT = "AC" + "0" * 32


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


def local_stack(
    webhook: dict[str, Any], monkeypatch: pytest.MonkeyPatch, conversations_url: str | None = None
) -> None:
    state = webhook["tmp"] / "local-stack.json"
    fields = {"webhook_url": webhook["url"], "auth_token": DEV_TOKEN, "account_sid": DEV_ACCOUNT}
    if conversations_url:
        fields["conversations_url"] = conversations_url
    state.write_text(json.dumps(fields))
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


# ---- --event-file: the file's intent is kept --------------------------------------------------

EVENTS = __import__("pathlib").Path(__file__).resolve().parents[2] / "events"


def send_file(name: str, *argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = cli.main(["send", "--event-file", str(EVENTS / name), "--json", *argv], out=out, err=err)
    return code, out.getvalue(), err.getvalue()


def test_a_good_event_file_is_re_signed_for_the_target_and_says_so(webhook, monkeypatch):
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", DEV_TOKEN)  # the samples are signed with the dev token
    code, _, err = send_file("webhook-message-added.json", "--url", webhook["url"])
    assert code == 0
    assert signed_with(webhook, webhook["url"]) == DEV_TOKEN
    assert "re-signed for" in err


def test_the_bad_signature_sample_is_sent_with_its_own_signature(webhook, monkeypatch):
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", DEV_TOKEN)
    event = json.loads((EVENTS / "webhook-bad-signature.json").read_text())
    code, _, err = send_file("webhook-bad-signature.json", "--url", webhook["url"])
    [request] = webhook["received"]
    assert request["signature"] == event["headers"]["X-Twilio-Signature"]
    with pytest.raises(AssertionError, match="none of the known tokens"):
        signed_with(webhook, webhook["url"])
    assert "sent as it is (expect 403)" in err
    assert code == 0  # the recorder answers 200; the bridge would answer 403


def test_a_missing_event_file_says_not_found(webhook, monkeypatch):
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", DEV_TOKEN)
    code, _, err = send_file("no-such-event.json", "--url", webhook["url"])
    assert code == 2
    assert "not found" in err and "is not an API Gateway event" not in err
    assert webhook["received"] == []


# ---- addresses that start with + or whatsapp: are E.164 --------------------------------------


@pytest.mark.parametrize(
    "address",
    [
        "+1555555O100",
        "+1 555 555 0100",
        "+1555555010",
        "+15555550100123456",
        "whatsapp:+1555-555-0100",
        "+0123456",
        "WhatsApp:+1555",
        "WHATSAPP:+15555550100",
        "+15555550100\n",
    ],
)
def test_a_mistyped_phone_address_is_refused_naming_the_rule(webhook, monkeypatch, address):
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", REAL_TOKEN)
    out, err = io.StringIO(), io.StringIO()
    code = cli.main(["send", "--url", webhook["url"], "--from", address, "--body", "hi"], out=out, err=err)
    assert code == 2
    assert any(rule in err.getvalue() for rule in ("E.164", "10 digits after +1", "prefix is lowercase"))
    assert webhook["received"] == []  # nothing was posted


@pytest.mark.parametrize(
    "address", ["+15555550100", "whatsapp:+447700900123", "+4930123456", "ana@example.com", "ana-chat"]
)
def test_well_formed_addresses_are_sent(webhook, monkeypatch, address):
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", REAL_TOKEN)
    out, err = io.StringIO(), io.StringIO()
    code = cli.main(["send", "--url", webhook["url"], "--from", address, "--body", "hi"], out=out, err=err)
    assert code == 0, err.getvalue()
    assert len(webhook["received"]) == 1


def test_observations_list_refuses_a_mistyped_address_before_asking_memory(webhook):
    out, err = io.StringIO(), io.StringIO()
    code = cli.main(
        [
            "observations",
            "list",
            "--address",
            "+1 555 555 0100",
            "--store",
            "mem_store_" + "0" * 26,
            "--memory-api-url",
            "http://127.0.0.1:9",
        ],
        out=out,
        err=err,
    )
    assert code == 2 and "E.164" in err.getvalue()


# ---- --profile is the AWS profile everywhere; --profile-id the Memory one ----------------------


@pytest.mark.parametrize(
    "argv",
    [
        ["observations", "list", "--profile", "mem_profile_01h2xcejqtf2nbrexx3vqjhp41"],
        ["dlq", "replay", "--profile", "mem_profile_01h2xcejqtf2nbrexx3vqjhp41"],
        ["stores", "list", "--profile", "mem_profile_01h2xcejqtf2nbrexx3vqjhp41"],
    ],
)
def test_a_memory_profile_given_as_profile_points_to_profile_id(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(argv)
    assert exit_info.value.code == 2
    assert "pass the Memory one as --profile-id" in capsys.readouterr().err


def test_observations_list_takes_profile_id_and_the_aws_profile_as_profile():
    args = cli.build_parser().parse_args(
        ["observations", "list", "--profile-id", "mem_profile_x", "--profile", "ops"]
    )
    assert (args.profile_id, args.aws_profile) == ("mem_profile_x", "ops")


def test_observations_list_profile_id_must_be_a_profile_id(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["observations", "list", "--profile-id", "+15555550100"])
    assert exit_info.value.code == 2
    assert "use --address" in capsys.readouterr().err


def test_an_event_file_that_is_not_a_webhook_is_refused(webhook, monkeypatch):
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", DEV_TOKEN)
    code, _, err = send_file("replay.json", "--url", webhook["url"])
    assert code == 2 and "not a Conversations webhook" in err
    assert webhook["received"] == []


def test_a_memory_url_that_is_not_a_url_is_a_usage_error(monkeypatch):
    monkeypatch.setenv("TWILIO_ACCOUNT_SID", "AC" + "0" * 32)
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", "token")
    out, err = io.StringIO(), io.StringIO()
    code = cli.main(["stores", "list", "--memory-api-url", "notaurl"], out=out, err=err)
    assert code == 2 and "--memory-api-url must be an absolute URL, https://" in err.getvalue()


# ---- the local stack: a real conversation in its Conversations sandbox ------------------------


@pytest.fixture
def stack(webhook, monkeypatch) -> Iterator[dict[str, Any]]:
    """The recorder as the local stack's front, with a Conversations sandbox beside it."""
    sandbox = ConversationsSandbox(DEV_ACCOUNT, DEV_TOKEN)
    local_stack(webhook, monkeypatch, sandbox.serve())
    try:
        yield webhook | {"sandbox": sandbox}
    finally:
        sandbox.close()


def posted(stack: dict[str, Any], number: int = -1) -> dict[str, str]:
    fields = dict(parse_qsl(stack["received"][number]["body"], keep_blank_values=True))
    assert (
        compute_signature(stack["url"], list(fields.items()), DEV_TOKEN)
        == stack["received"][number]["signature"]
    )
    return fields


def run(*argv: str) -> tuple[int, dict[str, Any], str]:
    out, err = io.StringIO(), io.StringIO()
    code = cli.main(["send", "--json", *argv], out=out, err=err)
    return code, json.loads(out.getvalue()) if out.getvalue() else {}, err.getvalue()


def test_a_customer_message_is_a_real_message_of_a_real_conversation(stack):
    code, result, err = run("--from", "+15555550100", "--body", "Where is my order?")
    assert code == 0, err
    fields = posted(stack)
    sandbox = stack["sandbox"]
    customer, agent = sandbox.participants(fields["ConversationSid"])
    assert (customer.address, customer.proxy_address, customer.identity) == (
        "+15555550100",
        "+15555550000",
        None,
    )
    assert (agent.identity, json.loads(agent.attributes)) == ("agent@example.com", {"role": "agent"})
    [message] = sandbox.store.conversations[fields["ConversationSid"]].messages
    assert fields["MessageSid"] == message.sid and fields["ParticipantSid"] == customer.sid
    assert (fields["Author"], fields["Body"], fields["Source"]) == (
        "+15555550100",
        "Where is my order?",
        "API",
    )
    assert "ClientIdentity" not in fields and fields["ChatServiceSid"] == sandbox.store.default_service
    assert fields["DateCreated"].endswith(".000Z") and fields["Index"] == "0"
    assert result["conversationSid"] == fields["ConversationSid"] and result["as"] == "customer"
    assert result["participantSid"] == customer.sid


def test_the_agent_answers_in_the_same_conversation_from_chat(stack):
    run("--from", "+15555550100", "--body", "Where is my order?")
    code, result, err = run("--from", "+15555550100", "--as", "agent", "--body", "On its way")
    assert code == 0, err
    first, reply = posted(stack, 0), posted(stack, 1)
    assert reply["ConversationSid"] == first["ConversationSid"]
    agent = stack["sandbox"].participants(reply["ConversationSid"])[1]
    assert (reply["Author"], reply["Source"], reply["ClientIdentity"]) == (
        "agent@example.com",
        "SDK",
        "agent@example.com",
    )
    assert reply["ParticipantSid"] == agent.sid and reply["Index"] == "1"
    assert len(stack["sandbox"].participants(reply["ConversationSid"])) == 2  # nobody added twice
    assert result["as"] == "agent"


def test_new_conversation_starts_another_and_later_sends_continue_the_newest(stack):
    run("--from", "+15555550100", "--body", "one")
    run("--from", "+15555550100", "--body", "two", "--new-conversation")
    run("--from", "+15555550100", "--body", "three")
    first, second, third = (posted(stack, n)["ConversationSid"] for n in range(3))
    assert first != second == third
    assert stack["sandbox"].calls("ListParticipantConversation") == 2  # --new-conversation looks nothing up


def test_whatsapp_and_chat_customers(stack):
    run("--from", "whatsapp:+15555550101", "--body", "hola")
    fields = posted(stack)
    customer = stack["sandbox"].participants(fields["ConversationSid"])[0]
    assert (customer.address, customer.proxy_address) == ("whatsapp:+15555550101", "whatsapp:+15555550000")
    code, _, err = run("--from", "dana", "--channel", "chat", "--body", "hi from the web")
    assert code == 0, err
    fields = posted(stack)
    customer = stack["sandbox"].participants(fields["ConversationSid"])[0]
    assert (customer.identity, customer.address) == ("dana", None)
    assert (fields["Author"], fields["Source"], fields["ClientIdentity"]) == ("dana", "SDK", "dana")


def test_message_sid_sends_the_same_message_again(stack):
    run("--from", "+15555550100", "--body", "once")
    first = posted(stack)
    code, _, err = run("--from", "+15555550100", "--body", "ignored", "--message-sid", first["MessageSid"])
    assert code == 0, err
    again = posted(stack)
    assert {k: v for k, v in again.items() if k != "DateCreated"} == {
        k: v for k, v in first.items() if k != "DateCreated"
    }
    assert stack["sandbox"].calls("CreateConversationMessage") == 1


def test_a_conversations_sandbox_that_is_gone_is_named(stack):
    stack["sandbox"].close()
    code, _, err = run("--from", "+15555550100", "--body", "hi")
    assert code == 1 and "Conversations" in err and "make run" in err
    assert stack["received"] == []


@pytest.mark.parametrize(
    ("argv", "rule"),
    [
        (["--channel", "sms", "--from", "whatsapp:+15555550100"], "--channel sms needs --from +E.164"),
        (
            ["--channel", "whatsapp", "--from", "+15555550100"],
            "--channel whatsapp needs --from whatsapp:+E.164",
        ),
        (["--channel", "chat", "--from", "+15555550100"], "--channel chat needs --from a chat identity"),
        (["--from", "+15555550100", "--agent", "+15555550199"], "the agent is a chat identity"),
        (["--from", "+15555550100", "--business-number", "5555550000"], "--business-number"),
        (["--from", "+15555550100", "--business-number", "+1555"], "must be E.164"),
        (["--from", "+15555550100", "--new-conversation", "--conversation-sid", "CH1"], "contradict"),
    ],
)
def test_arguments_that_disagree_exit_2_naming_the_rule(stack, argv, rule):
    code, _, err = run(*argv, "--body", "hi")
    assert code == 2 and rule in err, err
    assert stack["received"] == [] and stack["sandbox"].requests == []


def test_unknown_choices_are_refused_by_argparse(stack, capsys):
    for argv in (["--as", "bot"], ["--channel", "fax"]):
        with pytest.raises(SystemExit) as exit_info:
            cli.main(["send", "--from", "+15555550100", "--body", "hi", *argv])
        assert exit_info.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


def test_help_explains_the_speakers_and_the_deployed_case(capsys):
    with pytest.raises(SystemExit):
        cli.main(["send", "--help"])
    text = capsys.readouterr().out
    for words in ("--as", "--channel", "--new-conversation", "proxy_address", "deployed bridge reads"):
        assert words in " ".join(text.split()), words


def test_a_deployed_stack_gets_the_agent_as_author_and_sdk_as_source(webhook, monkeypatch):
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", REAL_TOKEN)
    code, _, err = send("--url", webhook["url"], "--as", "agent", "--conversation-sid", "CH" + "1" * 32)
    assert code == 0, err
    fields = dict(parse_qsl(webhook["received"][0]["body"]))
    assert (fields["Author"], fields["Source"], fields["ClientIdentity"]) == (
        "agent@example.com",
        "SDK",
        "agent@example.com",
    )
    assert fields["ConversationSid"] == "CH" + "1" * 32
