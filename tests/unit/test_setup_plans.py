"""setup's decisions, on fakes: what the identity-resolution settings become, and what the Conversations
webhook is sent (or why it is left alone)."""

from typing import Any

import pytest

from memory_bridge.domain.events import WEBHOOK_FILTERS
from memory_bridge.domain.identifiers import identifier_types
from memory_bridge.domain.outcomes import Accepted, Outcome, Permanent
from memory_bridge_cli.conversations import WebhookConflict, plan_webhook
from memory_bridge_cli.stores import (
    Backoff,
    IdentitySettingsError,
    OperationWatch,
    ensure_identity_settings,
    identity_plan,
)

WANTED = identifier_types("chat_identity")
URL = "https://abc.execute-api.us-east-1.amazonaws.com/Prod/webhooks/conversations"


def test_the_bridge_sends_four_id_types_each_with_the_normalization_its_values_need():
    assert WANTED == {"phone": "phone", "whatsapp": "trim", "email": "email", "chat_identity": "trim"}
    assert identifier_types("email") == {"phone": "phone", "whatsapp": "trim", "email": "email"}
    assert WEBHOOK_FILTERS == ("onMessageAdded", "onMessageUpdated", "onMessageRemoved")


def test_missing_types_are_added_after_what_is_there_which_is_kept():
    current = {
        "identifierConfigs": [{"idType": "phone", "normalization": "none", "limit": 5}],
        "matchingRules": ["phone"],
        "version": 4,
    }
    plan = identity_plan(current, WANTED)
    assert plan is not None
    assert plan.added == ("whatsapp", "email", "chat_identity") and plan.ruled == plan.added
    assert plan.settings["identifierConfigs"][0] == {"idType": "phone", "normalization": "none", "limit": 5}
    assert plan.settings["matchingRules"] == ["phone", "whatsapp", "email", "chat_identity"]
    assert "version" not in plan.settings  # the PUT body is IdentityResolutionSettingsCore


def test_a_type_configured_but_not_matched_on_gets_only_its_rule():
    current = {
        "identifierConfigs": [{"idType": t} for t in WANTED],
        "matchingRules": ["email", "phone", "whatsapp"],
    }
    plan = identity_plan(current, WANTED)
    assert plan is not None and plan.added == () and plan.ruled == ("chat_identity",)
    complete = {"identifierConfigs": current["identifierConfigs"], "matchingRules": list(WANTED)}
    assert identity_plan(complete, WANTED) is None


def test_more_than_fifteen_types_is_refused_with_what_to_do():
    current = {
        "identifierConfigs": [{"idType": f"t{i:02d}"} for i in range(14)],
        "matchingRules": [f"t{i:02d}" for i in range(14)],
    }
    with pytest.raises(IdentitySettingsError, match="Memory allows 15"):
        identity_plan(current, WANTED)


class FakeMemory:
    """Identity settings that someone else changes between setup's read and its write, once."""

    def __init__(self) -> None:
        self.settings: dict[str, Any] = {
            "identifierConfigs": [{"idType": "phone"}],
            "matchingRules": ["phone"],
        }
        self.version = 1
        self.puts: list[str | None] = []
        self.raced = False

    def fetch_identity_settings(self, _store_id: str) -> Outcome:
        return Accepted(200, {**self.settings, "version": self.version}, {"etag": f"v{self.version}"})

    def update_identity_settings(self, _store_id: str, settings: Any, etag: str | None = None) -> Outcome:
        self.puts.append(etag)
        if not self.raced:  # an operator adds a type meanwhile
            self.raced = True
            self.settings["identifierConfigs"].append({"idType": "loyalty_id"})
            self.version += 1
        if etag != f"v{self.version}":
            return Permanent(412, code=20412, message="Precondition Failed")
        self.settings, self.version = settings, self.version + 1
        return Accepted(202, {"statusUrl": "/v1/ControlPlane/Operations/op1"}, {"operation-id": "op1"})

    def fetch_operation(self, _operation_id: str) -> Outcome:
        return Accepted(200, {"operationId": "op1", "status": "COMPLETED"}, {})


def test_a_concurrent_change_is_read_again_and_kept():
    memory = FakeMemory()
    backoff = Backoff(sleep=lambda _s: None)
    watch = OperationWatch(memory, backoff, sleep=lambda _s: None)
    outcome = ensure_identity_settings(memory, "mem_store_x", WANTED, timeout=5, watch=watch)
    assert memory.puts == ["v1", "v2"]  # the first was stale (412): read, merged, sent again
    assert [c["idType"] for c in memory.settings["identifierConfigs"]] == [
        "phone",
        "loyalty_id",  # the concurrent change survives
        "whatsapp",
        "email",
        "chat_identity",
    ]
    assert outcome.changed and outcome.operation_id == "op1"


# ---- the Conversations webhook -------------------------------------------------------------------


def plan(current: dict[str, Any], force: bool = False, service: str | None = None) -> Any:
    return plan_webhook(current, URL, WEBHOOK_FILTERS, service=service, force=force)


def test_an_empty_configuration_gets_the_url_post_and_the_bridges_filters():
    change = plan({"post_webhook_url": None, "method": None, "filters": None, "target": "webhook"})
    assert change.fields == (
        ("PostWebhookUrl", URL),
        ("Method", "POST"),
        ("Filters", "onMessageAdded"),
        ("Filters", "onMessageUpdated"),
        ("Filters", "onMessageRemoved"),
    )
    assert change.replaced is None


def test_ours_already_is_nothing_to_send():
    filters = ["onMessageAdded", "onMessageUpdated", "onMessageRemoved"]
    current = {"post_webhook_url": URL, "method": "POST", "filters": filters, "target": "webhook"}
    assert plan(current).fields == ()
    missing = {**current, "filters": ["onConversationAdded"]}  # ours, but a filter is missing
    assert plan(missing).fields[-4:] == (
        ("Filters", "onConversationAdded"),
        ("Filters", "onMessageAdded"),
        ("Filters", "onMessageUpdated"),
        ("Filters", "onMessageRemoved"),
    )
    # An install from before edits and removals were handled gains the new filters, keeping the rest.
    before = {**current, "filters": ["onMessageAdded"]}
    assert plan(before).fields[-3:] == (
        ("Filters", "onMessageAdded"),
        ("Filters", "onMessageUpdated"),
        ("Filters", "onMessageRemoved"),
    )


@pytest.mark.parametrize(
    ("current", "words"),
    [
        (
            {"post_webhook_url": "https://other.example.com/x", "method": "POST"},
            "calls https://other.example.com/x",
        ),
        ({"pre_webhook_url": "https://pre.example.com", "method": "GET"}, "called with GET"),
        ({"target": "flex", "method": "POST"}, "'flex'"),
    ],
)
def test_what_serves_someone_else_needs_force(current, words):
    with pytest.raises(WebhookConflict, match="--force") as refused:
        plan(current)
    assert words in str(refused.value)
    forced = plan(current, force=True)
    assert ("PostWebhookUrl", URL) in forced.fields and ("Method", "POST") in forced.fields
    if current.get("target") == "flex":
        assert ("Target", "webhook") in forced.fields


def test_a_service_has_no_target_and_its_refusal_does_not_suggest_itself():
    with pytest.raises(WebhookConflict) as refused:
        plan({"post_webhook_url": "https://other.example.com/x"}, service="IS" + "0" * 32)
    assert "--conversations-service" not in str(refused.value)
    change = plan({"post_webhook_url": None, "target": "flex"}, service="IS" + "0" * 32)
    assert ("Target", "webhook") not in change.fields
