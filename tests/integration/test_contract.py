"""Every request the client sends, and every answer the sandbox gives, holds against the contract."""

from collections.abc import Iterator

import pytest

from memory_bridge.adapters.memory_api import MemoryApiClient
from memory_bridge.domain.credentials import TwilioCredentials
from memory_bridge.domain.identifiers import Identifier
from memory_bridge.domain.outcomes import Accepted, Permanent, observation_gone
from memory_bridge.ports import StaticCredentials
from memory_bridge_cli.conversations import ConversationsClient
from memory_bridge_dev.conversations_sandbox import ConversationsSandbox
from memory_bridge_dev.conversations_sandbox import Fault as ConversationsFault
from memory_bridge_dev.sandbox import Fault, MemorySandbox
from tests.contract import (
    conversations_operations,
    conversations_spec,
    form_request_problems,
    operations,
    query_problems,
    request_problems,
    response_problems,
    spec,
)
from tests.integration.conftest import outcome
from tests.support import DEV_ACCOUNT_SID, DEV_AUTH_TOKEN, message_params

pytestmark = pytest.mark.integration


def check_everything(sandbox: MemorySandbox) -> list[str]:
    problems: list[str] = []
    for record in sandbox.requests:
        assert record.operation, f"unrouted request {record.method} {record.path}"
        problems += request_problems(record.operation, record.body)
        pairs = [(name, value) for name, values in record.query.items() for value in values]
        problems += query_problems(record.operation, pairs, operations())
        problems += response_problems(
            record.operation, record.status, record.response_body, record.response_headers
        )
    return problems


def test_client_requests_and_sandbox_answers_match_the_contract():
    spec()  # skips, with the reason, when the contract file is absent
    sandbox = MemorySandbox(credentials={DEV_ACCOUNT_SID: DEV_AUTH_TOKEN}, provisioning_seconds=0.0)
    sandbox.serve()
    try:
        client = MemoryApiClient(
            sandbox.base_url, StaticCredentials(TwilioCredentials(DEV_ACCOUNT_SID, DEV_AUTH_TOKEN))
        )
        created = client.create_store("contract-test", "made by the contract test")
        assert isinstance(created, Accepted)
        operation_id = created.headers["operation-id"]
        store = client.fetch_operation(operation_id).body["result"]["id"]
        client.fetch_store(store)
        client.list_stores()
        who = Identifier("phone", "+15555550100")
        client.lookup_profiles(store, who)
        profile = client.create_profile(store, "Contact", who).body["id"]
        client.lookup_profiles(store, who)
        small = [
            {"content": "hi", "source": "twilio-conversations", "occurredAt": "2026-11-21T10:00:00.000Z"}
        ]
        large = [{**small[0], "content": "x" * 4096} for _ in range(10)]  # gzipped on the wire
        assert isinstance(client.create_observations(store, profile, small), Accepted)
        assert isinstance(client.create_observations(store, profile, large), Accepted)
        gzipped = sandbox.requests_to("CreateProfileObservation")[-1]
        assert gzipped.headers.get("content-encoding") == "gzip"
        client.list_observations(store, profile, page_size=5)
        # Errors are TwilioError bodies, as the contract says.
        sandbox.add_fault(Fault(status=429, retry_after=2, times=1, match="/Observations"))
        client.create_observations(store, profile, small)
        client.create_observations(store, "mem_profile_00000000000000000000000000", small)
        client.create_observations(store, profile, [{"content": "", "source": "s", "occurredAt": "x"}])
        client.fetch_operation("nope")
        # Identity resolution: read, change (asynchronous, conditional on the ETag), a stale ETag.
        settings = client.fetch_identity_settings(store)
        wanted = {
            "identifierConfigs": [
                *settings.body["identifierConfigs"],
                {
                    "idType": "chat_identity",
                    "matchingAlgo": "exact",
                    "normalization": "trim",
                    "enforceUnique": True,
                },
            ],
            "matchingRules": [*settings.body["matchingRules"], "chat_identity"],
        }
        changed = client.update_identity_settings(store, wanted, settings.headers["etag"])
        assert isinstance(changed, Accepted)
        client.fetch_operation(changed.headers["operation-id"])
        assert client.update_identity_settings(store, wanted, '"stale"').status == 412
        problems = check_everything(sandbox)
        # The deliberately bad observation is the only request that may break the contract.
        assert [p for p in problems if "request" not in p] == []
        assert len([p for p in problems if "request" in p]) >= 1
    finally:
        sandbox.close()


def test_the_lifecycle_routes_answer_as_the_contract_says():
    """Issue 22's routes (change, revisions, fetch, delete an observation; delete a profile; List
    Observations' filters) and the sandbox's refusal past the per-profile limit: every request, query
    and answer holds against the YAML, the deliberately bad ones' answers included."""
    spec()
    sandbox = MemorySandbox(
        credentials={DEV_ACCOUNT_SID: DEV_AUTH_TOKEN}, profile_full="refuse", observation_limit=3
    )
    sandbox.serve()
    try:
        client = MemoryApiClient(
            sandbox.base_url, StaticCredentials(TwilioCredentials(DEV_ACCOUNT_SID, DEV_AUTH_TOKEN))
        )
        store = sandbox.seed_store()
        profile = client.create_profile(store, "Contact", Identifier("phone", "+15555550100")).body["id"]
        item = {"content": "hi", "source": "twilio-conversations", "occurredAt": "2026-12-01T10:00:00.000Z"}
        client.create_observations(store, profile, [item, {**item, "content": "there"}])
        listed = client.list_observations(
            store,
            profile,
            page_size=1,
            source="twilio-conversations",
            created_after="2026-01-01T00:00:00Z",
            created_before="2030-01-01T00:00:00+02:00",
            order_by="ASC",
        )
        first = listed.body["observations"][0]["id"]
        client.list_observations(store, profile, page_size=1, page_token=listed.body["meta"]["nextToken"])
        base = f"/v1/Stores/{store}/Profiles/{profile}/Observations"
        assert isinstance(client.update_observation(store, profile, first, {"content": "hello"}), Accepted)
        client.update_observation(store, profile, first, {})
        assert client.request("GET", f"{base}/{first}").body["content"] == "hello"
        revisions = client.request("GET", f"{base}/{first}/Revisions", query={"pageSize": "2"})
        assert len(revisions.body["revisions"]) == 2 and revisions.body["meta"]["nextToken"]
        # Refusals: past the limit, a bad field, an unknown observation (code 520003), a malformed id.
        client.create_observations(store, profile, [item])
        full = client.create_observations(store, profile, [item])
        assert isinstance(full, Permanent) and full.status == 400
        client.update_observation(store, profile, first, {"content": ""})
        assert isinstance(client.delete_observation(store, profile, first), Accepted)
        assert observation_gone(client.delete_observation(store, profile, first))
        assert client.request("GET", f"{base}/{first}/Revisions").status == 404
        assert client.delete_observation(store, profile, "mem_observation_x").status == 400
        held = client.list_profile_identifiers(store, profile)
        assert held.body["identifiers"] == [{"idType": "phone", "values": ["+15555550100"]}]
        assert isinstance(client.delete_profile(store, profile), Accepted)
        assert client.delete_profile(store, profile).status == 404
        assert client.list_profile_identifiers(store, profile).status == 404
        problems = check_everything(sandbox)
        # The empty content is the only request that may break the contract.
        assert [p for p in problems if "request" not in p] == []
        assert len([p for p in problems if "request" in p]) == 1
        assert {r.operation for r in sandbox.requests} >= {
            "PatchProfileObservation",
            "FetchProfileObservation",
            "ListObservationRevisions",
            "DeleteProfileObservation",
            "DeleteProfile",
            "ListProfileIdentifiers",
        }
    finally:
        sandbox.close()


def test_webhook_traffic_matches_the_contract(bridge):
    spec()
    bridge.send(message_params(message_sid="IM1", author="whatsapp:+15555550111", body="ñ" * 5000))
    bridge.send(message_params(message_sid="IM2", author="dana@example.com"))
    bridge.sandbox.add_fault(Fault(status=503, times=1, match="/Observations"))
    assert outcome(bridge.send(message_params(message_sid="IM3"))) == "posted"
    assert len(bridge.sandbox.requests) >= 6
    assert check_everything(bridge.sandbox) == []


TWILIO_ERROR_KEYS = {"code", "message", "more_info", "status"}


def test_the_conversations_sandbox_answers_as_the_contract_says():
    """Every request setup's client sends, and every answer the Conversations sandbox gives (2xx
    against the operation's schema; errors as Twilio's error body), hold against the YAML."""
    conversations_spec()  # skips, with the reason, when the contract file is absent
    sandbox = ConversationsSandbox(DEV_ACCOUNT_SID, DEV_AUTH_TOKEN)
    sandbox.serve()
    try:
        client = ConversationsClient(sandbox.base_url, TwilioCredentials(DEV_ACCOUNT_SID, DEV_AUTH_TOKEN))
        service = sandbox.create_service()
        hook = [
            ("PostWebhookUrl", "https://example.com/post"),
            ("Method", "POST"),
            ("Filters", "onMessageAdded"),
        ]
        for scope in (None, service):
            assert client.fetch_webhook(scope).body["post_webhook_url"] is None
            after = client.update_webhook(scope, [*hook, ("Filters", "onMessageUpdated")]).body
            assert after["filters"] == ["onMessageAdded", "onMessageUpdated"]
            assert client.fetch_webhook(scope).body["post_webhook_url"] == "https://example.com/post"
        client.update_webhook(None, [("Target", "webhook"), ("PreWebhookUrl", "https://example.com/pre")])
        assert client.fetch_webhook(None).body["method"] == "POST"  # what a POST leaves out stays
        # Refusals: an unknown service, a bad filter, wrong credentials.
        assert client.fetch_webhook("IS" + "0" * 32).status == 404
        assert client.update_webhook(service, [("Filters", "onEverything")]).status == 400
        assert client.update_webhook(service, [("Target", "flex")]).status == 400  # account-level only
        wrong = ConversationsClient(sandbox.base_url, TwilioCredentials(DEV_ACCOUNT_SID, "not-the-token"))
        assert wrong.fetch_webhook(None).status == 401
        assert conversations_contract_problems(sandbox) == []
        assert len(sandbox.requests) == 12
    finally:
        sandbox.close()


def conversations_contract_problems(sandbox: ConversationsSandbox) -> list[str]:
    """Every 2xx answer against its operation's schema, its form and query against the operation's
    parameters; every error as Twilio's error body."""
    known = conversations_operations()
    problems = []
    for record in sandbox.requests:
        if record.status is not None and record.status < 300:
            assert record.operation, f"unrouted request {record.method} {record.path}"
            problems += form_request_problems(record.operation, record.form)
            problems += query_problems(record.operation, record.query)
            problems += response_problems(record.operation, record.status, record.response_body, {}, known)
        elif record.status is not None and set(record.response_body) != TWILIO_ERROR_KEYS:
            problems.append(f"{record.method} {record.path}: error body {record.response_body}")
    return problems


def follow(client: ConversationsClient, path: str, key: str) -> list[dict]:
    """Every item of a list, page after page by meta.next_page_url, as the bridge and backfill read."""
    items: list[dict] = []
    while path:
        page = client.request("GET", path)
        assert page.status == 200, page
        items += page.body[key]
        following = page.body["meta"]["next_page_url"]
        path = following[len(client.base_url) :] if following else ""
    return items


PEOPLE = [
    [("MessagingBinding.Address", "+15555550100"), ("MessagingBinding.ProxyAddress", "+15555550000")],
    [("MessagingBinding.Address", "whatsapp:+15555550101"), ("MessagingBinding.ProxyAddress", "whatsapp:+15555550000")],
    [("MessagingBinding.Address", "+15555550102"), ("MessagingBinding.ProjectedAddress", "+15555550000")],
    [("Identity", "agent@example.com"), ("Attributes", '{"role": "agent"}')],
]  # fmt: skip


@pytest.fixture
def conversations_api() -> Iterator[tuple[ConversationsSandbox, ConversationsClient]]:
    """A Conversations sandbox and a client that authenticates with an API key (what the secret usually
    holds: Basic SK…:secret works as the account SID and token do)."""
    conversations_spec()  # skips, with the reason, when the contract file is absent
    sandbox = ConversationsSandbox(DEV_ACCOUNT_SID, DEV_AUTH_TOKEN)
    sandbox.serve()
    key_sid, key_secret = sandbox.add_api_key()
    credentials = TwilioCredentials(DEV_ACCOUNT_SID, "unused", key_sid, key_secret)
    try:
        yield sandbox, ConversationsClient(sandbox.base_url, credentials)
    finally:
        sandbox.close()


def seed(client: ConversationsClient) -> tuple[str, list[dict]]:
    """A conversation with an SMS, a WhatsApp, a group-MMS customer and a chat agent, and three messages;
    (its sid, the participants as created)."""
    sid = client.request("POST", "/v1/Conversations", [("FriendlyName", "web"), ("State", "active")]).body[
        "sid"
    ]
    made = [client.request("POST", f"/v1/Conversations/{sid}/Participants", p).body for p in PEOPLE]
    for author, body in [("+15555550100", "one"), ("agent@example.com", "two"), ("system", "three")]:
        client.request("POST", f"/v1/Conversations/{sid}/Messages", [("Author", author), ("Body", body)])
    return sid, made


def test_the_conversations_routes_answer_as_the_contract_says(conversations_api):
    """Conversations, participants (SMS, WhatsApp, group MMS, chat), messages and ParticipantConversations,
    account-level and per service, with paging and filters: every request and answer holds."""
    sandbox, client = conversations_api
    old = client.request("POST", "/v1/Conversations", [("DateCreated", "2026-01-02T03:04:05Z")]).body
    sid, made = seed(client)
    assert client.request("GET", f"/v1/Conversations/{sid}").body["sid"] == sid
    assert made[0]["messaging_binding"] == {
        "type": "sms",
        "address": "+15555550100",
        "proxy_address": "+15555550000",
    }
    assert made[1]["messaging_binding"]["type"] == "whatsapp"
    assert made[2]["messaging_binding"]["projected_address"] == "+15555550000"
    assert made[3]["identity"] == "agent@example.com" and made[3]["messaging_binding"] is None
    listed = follow(client, f"/v1/Conversations/{sid}/Participants?PageSize=3", "participants")
    assert [p["sid"] for p in listed] == [p["sid"] for p in made]
    client.request("GET", f"/v1/Conversations/{sid}/Participants/{made[1]['sid']}")
    newest_first = follow(client, f"/v1/Conversations/{sid}/Messages?Order=desc&PageSize=2", "messages")
    assert [m["body"] for m in newest_first] == ["three", "two", "one"]
    assert [m["participant_sid"] for m in newest_first] == [None, made[3]["sid"], made[0]["sid"]]
    client.request("GET", f"/v1/Conversations/{sid}/Messages/{newest_first[0]['sid']}")
    # Conversations: oldest first, or newest first once a date filter is given.
    everything = follow(client, "/v1/Conversations?PageSize=1", "conversations")
    assert [c["sid"] for c in everything] == [old["sid"], sid]
    dated = follow(client, "/v1/Conversations?StartDate=2026-01-01T00:00:00Z&State=active", "conversations")
    assert [c["sid"] for c in dated] == [sid, old["sid"]]
    assert [c["sid"] for c in follow(client, "/v1/Conversations?EndDate=2026-01-02", "conversations")] == [
        old["sid"]
    ]
    by_address = follow(client, "/v1/ParticipantConversations?Address=%2B15555550100", "conversations")
    assert [(c["conversation_sid"], c["participant_sid"]) for c in by_address] == [(sid, made[0]["sid"])]
    by_identity = follow(client, "/v1/ParticipantConversations?Identity=agent%40example.com", "conversations")
    assert by_identity[0]["participant_identity"] == "agent@example.com"
    # A service's conversations are reached under it.
    service = sandbox.create_service()
    scoped = client.request("POST", f"/v1/Services/{service}/Conversations").body
    assert scoped["chat_service_sid"] == service
    under = f"/v1/Services/{service}/Conversations"
    client.request("GET", f"{under}/{scoped['sid']}")
    assert [c["sid"] for c in follow(client, under, "conversations")] == [scoped["sid"]]
    client.request("POST", f"{under}/{scoped['sid']}/Participants", PEOPLE[0])
    assert len(follow(client, f"{under}/{scoped['sid']}/Participants", "participants")) == 1
    assert conversations_contract_problems(sandbox) == []
    assert all(r.status in (200, 201) for r in sandbox.requests)


def test_the_conversations_refusals_are_twilio_errors(conversations_api):
    sandbox, client = conversations_api
    sid, _ = seed(client)
    scoped = client.request("POST", f"/v1/Services/{sandbox.create_service()}/Conversations").body["sid"]
    assert client.request("GET", f"/v1/Conversations/{scoped}").status == 404  # the default service's only
    assert client.request("GET", f"/v1/Conversations/{sid}/Participants?PageSize=101").status == 400
    assert client.request("GET", "/v1/ParticipantConversations?Address=x&PageSize=51").status == 400
    assert client.request("GET", "/v1/ParticipantConversations").status == 400
    assert client.request("GET", f"/v1/Conversations/{sid}/Messages?Order=up").status == 400
    assert client.request("GET", "/v1/Conversations?StartDate=yesterday").status == 400
    assert client.request("POST", f"/v1/Conversations/{sid}/Participants", PEOPLE[3]).status == 409
    assert client.request("POST", f"/v1/Conversations/{sid}/Participants", PEOPLE[0]).status == 409
    assert (
        client.request("POST", f"/v1/Conversations/{sid}/Participants", [("Attributes", "{")]).status == 400
    )
    assert client.request("GET", "/v1/Conversations/CH" + "0" * 32 + "/Participants").status == 404
    sandbox.add_fault(
        ConversationsFault(operation="ListConversationParticipant", status=429, retry_after=2, times=1)
    )
    limited = client.request("GET", f"/v1/Conversations/{sid}/Participants")
    assert (limited.status, limited.retry_after) == (429, 2)
    assert client.request("GET", f"/v1/Conversations/{sid}/Participants").status == 200  # times=1: once
    wrong = ConversationsClient(sandbox.base_url, TwilioCredentials(DEV_ACCOUNT_SID, "nope"))
    assert wrong.request("GET", "/v1/Conversations").status == 401
    assert conversations_contract_problems(sandbox) == []
    # The PageSize 101, the unknown conversation, the 429 and the one after it: each counted once.
    assert sandbox.calls("ListConversationParticipant") == 4
