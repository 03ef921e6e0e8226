"""The webhook configuration of the Conversations sandbox (account-level and per service): what the
contract's `/v1/Configuration/Webhooks` and `/v1/Services/{IS}/Configuration/Webhooks` hold (dev-only).
POST changes only the fields it carries, as Twilio does."""

from __future__ import annotations

import re
from dataclasses import dataclass

from memory_bridge_dev.conversations_store import Form, TwilioError

# The filters the contract lists for webhook configurations (account-level and per service).
FILTERS = frozenset(
    {
        "onMessageAdded",
        "onMessageUpdated",
        "onMessageRemoved",
        "onMessageAdd",
        "onMessageUpdate",
        "onMessageRemove",
        "onConversationUpdated",
        "onConversationRemoved",
        "onConversationAdd",
        "onConversationAdded",
        "onConversationRemove",
        "onConversationUpdate",
        "onConversationStateUpdated",
        "onParticipantAdded",
        "onParticipantUpdated",
        "onParticipantRemoved",
        "onParticipantAdd",
        "onParticipantRemove",
        "onParticipantUpdate",
        "onDeliveryUpdated",
        "onUserAdded",
        "onUserUpdate",
        "onUserUpdated",
    }
)


@dataclass
class WebhookConfiguration:
    pre_webhook_url: str | None = None
    post_webhook_url: str | None = None
    method: str = "POST"
    filters: list[str] | None = None
    target: str = "webhook"  # account-level only


def apply_webhook_form(config: WebhookConfiguration, form: Form, *, account_level: bool) -> None:
    """Change what the form carries, after checking all of it (nothing changes on a 400)."""
    fields: dict[str, list[str]] = {}
    for name, value in form:
        fields.setdefault(name, []).append(value)
    known = {"PreWebhookUrl", "PostWebhookUrl", "Method", "Filters"} | (
        {"Target"} if account_level else set()
    )
    unknown = set(fields) - known
    if unknown:
        raise TwilioError(400, 20001, f"Unknown parameter {sorted(unknown)[0]}")
    urls = {name: fields[name][-1] for name in ("PreWebhookUrl", "PostWebhookUrl") if name in fields}
    for name, url in urls.items():
        if url and not re.match(r"^https?://[^\s/]+", url):
            raise TwilioError(400, 20001, f"{name} must be an absolute URL")
    method = fields.get("Method", [config.method])[-1].upper()
    if method not in ("GET", "POST"):
        raise TwilioError(400, 20001, "Method must be GET or POST")
    bad = [f for f in fields.get("Filters", []) if f not in FILTERS]
    if bad:
        raise TwilioError(400, 20001, f"Invalid filter {bad[0]}")
    target = fields.get("Target", [config.target])[-1]
    if target not in ("webhook", "flex"):
        raise TwilioError(400, 20001, "Target must be webhook or flex")
    config.pre_webhook_url = urls.get("PreWebhookUrl", config.pre_webhook_url) or None
    config.post_webhook_url = urls.get("PostWebhookUrl", config.post_webhook_url) or None
    config.method = method
    if "Filters" in fields:
        config.filters = list(dict.fromkeys(fields["Filters"]))
    config.target = target
