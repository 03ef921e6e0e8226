"""The Conversations sandbox as the bridge and the backfill will use it: the seeding API, paging past 100,
faults per operationId (429 + Retry-After, 503, a dropped connection, a hang for S seconds), set in
Python or over HTTP, and call counts for "no extra call" assertions."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
import urllib3

from memory_bridge_dev.conversations_sandbox import ConversationsSandbox, Fault
from tests.support import DEV_ACCOUNT_SID, DEV_AUTH_TOKEN

pytestmark = pytest.mark.integration
AUTH = {"Authorization": "Basic " + base64.b64encode(f"{DEV_ACCOUNT_SID}:{DEV_AUTH_TOKEN}".encode()).decode()}
LIST = "ListConversationParticipant"


@pytest.fixture
def sandbox() -> Iterator[ConversationsSandbox]:
    served = ConversationsSandbox(DEV_ACCOUNT_SID, DEV_AUTH_TOKEN)
    served.serve()
    try:
        yield served
    finally:
        served.close()


def get(sandbox: ConversationsSandbox, path: str, read: float = 10.0) -> urllib3.BaseHTTPResponse:
    return urllib3.request(
        "GET",
        sandbox.base_url + path,
        headers=AUTH,
        retries=False,  # urllib3 would otherwise wait out a Retry-After and ask again
        timeout=urllib3.Timeout(connect=2, read=read),
    )


def test_the_seeding_api_makes_what_the_rest_api_answers(sandbox):
    customer = sandbox.add_participant("CH" + "a" * 32, address="+15555550100", proxy_address="+15555550000")
    agent = sandbox.add_participant(
        "CH" + "a" * 32, identity="agent@example.com", attributes={"role": "agent"}
    )
    when = datetime(2026, 11, 21, 10, 0, tzinfo=UTC)
    sandbox.add_message("CH" + "a" * 32, "+15555550100", "hi", date_created=when)
    sandbox.add_message("CH" + "a" * 32, "agent@example.com", "hello")
    sandbox.add_message("CH" + "a" * 32, "system", "closed")
    assert [p.sid for p in sandbox.participants("CH" + "a" * 32)] == [customer, agent]
    body = get(sandbox, f"/v1/Conversations/{'CH' + 'a' * 32}/Messages").json()
    assert [m["participant_sid"] for m in body["messages"]] == [customer, agent, None]
    assert body["messages"][0]["date_created"] == "2026-11-21T10:00:00Z"
    listed = get(sandbox, f"/v1/Conversations/{'CH' + 'a' * 32}/Participants").json()["participants"]
    assert json.loads(listed[1]["attributes"]) == {"role": "agent"}


def test_participants_past_100_page_by_next_page_url(sandbox):
    sid = sandbox.add_conversation()
    for n in range(250):
        sandbox.add_participant(sid, identity=f"person-{n}")
    path, seen, pages = f"/v1/Conversations/{sid}/Participants?PageSize=100", [], []
    while path:
        body = get(sandbox, path).json()
        seen += [p["identity"] for p in body["participants"]]
        pages.append(body["meta"])
        path = (body["meta"]["next_page_url"] or "")[len(sandbox.base_url) :]
    assert seen == [f"person-{n}" for n in range(250)]
    assert [m["page"] for m in pages] == [0, 1, 2] and pages[1]["previous_page_url"] == pages[0]["url"]
    assert get(sandbox, f"/v1/Conversations/{sid}/Participants?PageSize=1000").status == 400
    assert sandbox.calls(LIST) == 4


@pytest.mark.parametrize(("status", "retry_after"), [(429, 7), (503, None)])
def test_a_status_fault_answers_n_requests_then_lets_them_through(sandbox, status, retry_after):
    sid = sandbox.add_conversation()
    sandbox.add_fault(Fault(operation=LIST, status=status, retry_after=retry_after, times=2))
    answers = [get(sandbox, f"/v1/Conversations/{sid}/Participants") for _ in range(3)]
    assert [a.status for a in answers] == [status, status, 200]
    assert answers[0].headers.get("Retry-After") == (str(retry_after) if retry_after else None)
    assert answers[0].json()["code"] == 20000 + status
    assert get(sandbox, f"/v1/Conversations/{sid}").status == 200  # another operation: untouched
    assert sandbox.calls(LIST) == 3 and sandbox.calls("FetchConversation") == 1


def test_a_hang_holds_the_answer_for_hang_seconds_and_is_counted(sandbox):
    sid = sandbox.add_conversation()
    sandbox.add_fault(Fault(operation=LIST, hang="before", hang_seconds=1.0, times=1))
    started = time.monotonic()
    with pytest.raises(urllib3.exceptions.ReadTimeoutError):
        get(sandbox, f"/v1/Conversations/{sid}/Participants", read=0.3)
    assert time.monotonic() - started < 5
    [hung] = sandbox.requests_to(LIST)
    assert hung.status is None  # seen, never answered
    # A client that waits longer than hang_seconds sees the connection closed, not an answer.
    sandbox.add_fault(Fault(operation=LIST, hang="before", hang_seconds=0.5, times=1))
    with pytest.raises(urllib3.exceptions.ProtocolError):
        get(sandbox, f"/v1/Conversations/{sid}/Participants", read=30)
    assert get(sandbox, f"/v1/Conversations/{sid}/Participants").status == 200
    assert sandbox.calls(LIST) == 3


def test_clear_faults_lets_a_hung_request_go(sandbox):
    sid = sandbox.add_conversation()
    sandbox.add_fault(Fault(operation=LIST, hang="before"))
    with pytest.raises(urllib3.exceptions.ReadTimeoutError):
        get(sandbox, f"/v1/Conversations/{sid}/Participants", read=0.3)
    sandbox.clear_faults()
    assert get(sandbox, f"/v1/Conversations/{sid}/Participants").status == 200


def test_drop_after_processes_the_request_and_loses_the_answer(sandbox):
    sid = sandbox.add_conversation()
    sandbox.add_fault(Fault(operation="CreateConversationParticipant", drop="after", times=1))
    with pytest.raises(urllib3.exceptions.ProtocolError):
        urllib3.request(
            "POST",
            f"{sandbox.base_url}/v1/Conversations/{sid}/Participants",
            body="Identity=dana",
            headers={**AUTH, "Content-Type": "application/x-www-form-urlencoded"},
            retries=False,
        )
    assert [p.identity for p in sandbox.participants(sid)] == ["dana"]


def test_faults_and_counts_over_http(sandbox):
    sid = sandbox.add_conversation()
    fault = {"operation": LIST, "status": 429, "retry_after": 5, "times": 1}
    added = urllib3.request("POST", f"{sandbox.base_url}/__sandbox/faults", json=fault)
    assert added.status == 201 and added.json()["operation"] == LIST
    assert get(sandbox, f"/v1/Conversations/{sid}/Participants").status == 429
    assert get(sandbox, f"/v1/Conversations/{sid}/Participants").status == 200
    calls = urllib3.request("GET", f"{sandbox.base_url}/__sandbox/calls").json()["calls"]
    assert calls == {LIST: 2}
    refused = urllib3.request("POST", f"{sandbox.base_url}/__sandbox/faults", json={"trickle": 1})
    assert refused.status == 400 and "trickle" in refused.json()["message"]
    assert urllib3.request("DELETE", f"{sandbox.base_url}/__sandbox/faults").json() == {"faults": []}


def test_an_api_key_authenticates_and_a_wrong_secret_does_not(sandbox):
    key, secret = sandbox.add_api_key()
    good = {"Authorization": "Basic " + base64.b64encode(f"{key}:{secret}".encode()).decode()}
    bad = {"Authorization": "Basic " + base64.b64encode(f"{key}:nope".encode()).decode()}
    assert urllib3.request("GET", f"{sandbox.base_url}/v1/Conversations", headers=good).status == 200
    refused = urllib3.request("GET", f"{sandbox.base_url}/v1/Conversations", headers=bad)
    assert refused.status == 401 and refused.json()["code"] == 20003
