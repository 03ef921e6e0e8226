"""Odd answers from the Conversations API (issue 19, found by trying to break it): a 200 that is not
a list of participants, paging that never ends, participants' attributes that Python cannot parse.
None of them may become a guessed speaker: the message is parked retryable at resolve_speaker.

A scripted server on loopback plays the API (the sandbox answers only as the contract says); the
webhook case runs the real handler against moto and the Memory sandbox.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from memory_bridge.adapters.conversations_api import ConversationsApiClient
from memory_bridge.domain.credentials import TwilioCredentials
from memory_bridge.domain.outcomes import Retryable
from memory_bridge.domain.speakers import Roster
from memory_bridge.ports import StaticCredentials
from tests.integration.conftest import Bridge, new_container
from tests.support import DEV_ACCOUNT_SID, DEV_AUTH_TOKEN, body_of, message_params, twilio_sid

CONVERSATION = twilio_sid("CHodd")
CUSTOMER = {
    "sid": twilio_sid("MBcustomer"),
    "messaging_binding": {"address": "+15555550100", "proxy_address": "+15555550999"},
    "attributes": "{}",
}


class Scripted:
    """What the server answers each GET with: (status, raw body); `paths` records each request."""

    def __init__(self) -> None:
        self.answer: Any = (200, b"{}")
        self.paths: list[str] = []


@pytest.fixture
def scripted() -> Iterator[tuple[Scripted, str]]:
    script = Scripted()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            script.paths.append(self.path)
            answer = script.answer(len(script.paths)) if callable(script.answer) else script.answer
            status, data = answer
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield script, f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()


def client(base_url: str) -> ConversationsApiClient:
    return ConversationsApiClient(
        base_url, StaticCredentials(TwilioCredentials(DEV_ACCOUNT_SID, DEV_AUTH_TOKEN))
    )


@pytest.mark.parametrize(
    "body",
    [b"<html>maintenance</html>", b"{}", b'{"participants": null}', b'{"participants": "none"}', b"[]"],
    ids=["not JSON", "no participants key", "participants null", "participants a string", "a list"],
)
def test_a_200_without_a_list_of_participants_is_no_roster(scripted, body):
    """Before: an empty Roster, so every speaker was the brand of a conversation with no customer; a
    customer's own message was answered 'skipped' and lost, and the empty roster cached for the TTL."""
    script, base_url = scripted
    script.answer = (200, body)
    found = client(base_url).participants(CONVERSATION, timeout=1.0)
    assert isinstance(found, Retryable), found


def test_paging_that_never_ends_is_no_roster(scripted):
    script, base_url = scripted

    def page(number: int) -> tuple[int, bytes]:
        agent = {"sid": twilio_sid(f"MBagent{number}"), "identity": f"agent{number}", "attributes": "{}"}
        meta = {"next_page_url": f"{base_url}/v1/Conversations/{CONVERSATION}/Participants?Page={number}"}
        return 200, json.dumps({"participants": [agent], "meta": meta}).encode()

    script.answer = page
    found = client(base_url).participants(CONVERSATION, timeout=1.0)
    assert not isinstance(found, Roster), (
        f"a partial roster of {len(found.participants)} after {len(script.paths)} pages"
    )


def test_attributes_nested_too_deep_for_python_are_ignored_not_raised(scripted):
    """Attributes are whatever JSON the participant was given (a chat SDK user can set their own);
    ~10,000 levels (1,000 on Python 3.11) made json.loads raise RecursionError out of the read:
    the webhook answered 503 for every message of that conversation, never parked."""
    script, base_url = scripted
    deep = "[" * 12_000 + "]" * 12_000
    script.answer = (200, json.dumps({"participants": [{**CUSTOMER, "attributes": deep}]}).encode())
    found = client(base_url).participants(CONVERSATION, timeout=1.0)
    assert isinstance(found, Roster) and found.participants[0].attributes == ()


def test_a_customers_message_is_parked_not_skipped_when_the_api_answers_200_without_participants(
    bridge: Bridge, scripted, monkeypatch: pytest.MonkeyPatch
) -> None:
    """End to end: the customer's words must never be dropped on an answer that names nobody."""
    script, base_url = scripted
    script.answer = (200, b"{}")
    monkeypatch.setenv("CONVERSATIONS_API_BASE_URL", base_url)
    new_container()
    answer = body_of(
        bridge.send(
            message_params(
                message_sid=twilio_sid("IModd1"), author="+15555550100", conversation_sid=CONVERSATION
            )
        )
    )
    assert (answer["outcome"], answer.get("stage"), answer.get("kind")) == (
        "parked",
        "resolve_speaker",
        "retryable",
    ), answer


def test_a_version_1_envelope_of_a_named_agent_never_looks_up_the_agent(
    oncall: Bridge, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AGENT_IDENTITIES", "*@company.com")
    oncall.env["AGENT_IDENTITIES"] = "*@company.com"
    new_container()
    legacy = {
        "version": 1,
        "kind": "retryable",
        "storeId": oncall.store_id,
        "profileId": None,
        "identifier": {"idType": "email", "value": "alice@company.com"},
        "traitGroup": "Contact",
        "messageSid": twilio_sid("IMlegacyagent"),
        "conversationSid": twilio_sid("CHgone"),  # never seeded: the Conversations API answers 404
        "observations": [
            {
                "content": "Refund approved",
                "source": "twilio-conversations",
                "occurredAt": "2026-12-01T09:00:00.000Z",
            }
        ],
        "failure": {
            "stage": "post_observations",
            "status": 503,
            "code": None,
            "message": "",
            "ambiguous": False,
        },
        "attempts": 1,
        "firstFailedAt": "2026-12-01T09:00:01Z",
        "lastFailedAt": "2026-12-01T09:00:01Z",
        "history": [],
        "parts": [0],
    }
    oncall.sqs.send_message(QueueUrl=oncall.queue_url, MessageBody=json.dumps(legacy))
    code, out, err = oncall.run("dlq", "replay", "--json")
    assert code == 0, (out, err)
    sent = {(r.body["idType"], r.body["value"]) for r in oncall.sandbox.requests_to("CreateProfilesLookup")}
    assert ("email", "alice@company.com") not in sent
