"""Every request the client sends, and every answer the sandbox gives, holds against the contract."""

import pytest

from memory_bridge.adapters.memory_api import MemoryApiClient
from memory_bridge.domain.credentials import TwilioCredentials
from memory_bridge.domain.identifiers import Identifier
from memory_bridge.domain.outcomes import Accepted
from memory_bridge.ports import StaticCredentials
from memory_bridge_cli.conversations import ConversationsClient
from memory_bridge_dev.conversations_sandbox import ConversationsSandbox
from memory_bridge_dev.sandbox import Fault, MemorySandbox
from tests.contract import (
    conversations_operations,
    conversations_spec,
    form_request_problems,
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
        known = conversations_operations()
        problems = []
        for record in sandbox.requests:
            if record.status is not None and record.status < 300:
                problems += form_request_problems(record.operation, record.form)
                problems += response_problems(
                    record.operation, record.status, record.response_body, {}, known
                )
            elif set(record.response_body) != TWILIO_ERROR_KEYS:
                problems.append(f"{record.method} {record.path}: error body {record.response_body}")
        assert problems == []
        assert len(sandbox.requests) == 12
    finally:
        sandbox.close()
