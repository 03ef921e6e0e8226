"""Twilio Conversations, for what the operator's commands need: where it is, and the post-event webhook.

`setup` points the webhook at the stack (account-level `/v1/Configuration/Webhooks`, or one service's
`/v1/Services/{IS}/Configuration/Webhooks`); `plan_webhook` decides what to send, and refuses to take a
webhook that another URL holds unless forced. Calls use the same credentials as Memory (HTTP Basic:
the API key when set, else the account SID and auth token), each with a wall-clock deadline.
"""

from __future__ import annotations

import argparse
import os
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

import urllib3

from memory_bridge.adapters.guarded_http import guarded_pool_manager
from memory_bridge.adapters.memory_api import outcome_from_response
from memory_bridge.config import DEFAULT_CONVERSATIONS_API_BASE_URL
from memory_bridge.deadlines import RequestGuard, active_guard
from memory_bridge.domain.credentials import TwilioCredentials
from memory_bridge.domain.outcomes import Accepted, Outcome, Retryable
from memory_bridge_cli.common import (
    UsageError,
    checked_memory_url,
    local_credentials,
    local_state_path,
    operator_credentials,
)

CONVERSATIONS_URL_VARIABLE = "CONVERSATIONS_API_BASE_URL"
SERVICE_SID_PATTERN = re.compile(r"^IS[0-9a-fA-F]{32}$")
WEBHOOK_METHOD = "POST"  # the bridge reads a form body and checks its signature: never GET
USER_AGENT = "memory-bridge-cli (+urllib3)"


def service_sid(text: str) -> str:
    """An argparse type for --conversations-service."""
    if not SERVICE_SID_PATTERN.match(text):
        raise argparse.ArgumentTypeError(
            f"must be a Conversations service SID, IS + 32 hex digits; got {text!r}"
        )
    return text


def add_conversations_url_option(parser: Any) -> None:
    """--conversations-api-url, on a parser or an argument group."""
    parser.add_argument(
        "--conversations-api-url",
        help=f"Conversations API base URL: https://, or http:// only to loopback (default: "
        f"${CONVERSATIONS_URL_VARIABLE}, else {DEFAULT_CONVERSATIONS_API_BASE_URL})",
    )


def conversations_url(args: argparse.Namespace) -> str | None:
    """--conversations-api-url, else CONVERSATIONS_API_BASE_URL, checked against the rule Memory's URL
    follows (every call carries the credentials); None when neither is set."""
    if getattr(args, "conversations_api_url", None):
        return checked_memory_url("--conversations-api-url", args.conversations_api_url)
    from_env = os.environ.get(CONVERSATIONS_URL_VARIABLE, "").strip()
    return checked_memory_url(CONVERSATIONS_URL_VARIABLE, from_env) if from_env else None


def conversations_target(
    args: argparse.Namespace, state: dict[str, Any] | None
) -> tuple[str, TwilioCredentials]:
    """The Conversations base URL and the credentials to send there, found as Memory's are: a URL named
    by the operator, else the local stack's (`state`; only with its own dev credentials), else Twilio's.
    Commands whose other end is not the local stack (setup) pass `state=None`."""
    explicit = conversations_url(args)
    own = operator_credentials(args)
    if explicit is not None or not state or not state.get("conversations_url"):
        if own is None and explicit is not None and state:
            # As Memory's rule (common.memory_target): a URL named with no credentials of the operator's
            # gets the local stack's dev ones. A process that runs the stack itself (make demo) has
            # CONVERSATIONS_API_BASE_URL set by it, for its functions, and holds no other credentials.
            own = local_credentials(state)
        if own is None:
            raise UsageError(
                "no Twilio credentials for Conversations: set TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN "
                "(or TWILIO_API_KEY and TWILIO_API_SECRET), or pass --secret NAME"
            )
        return explicit or DEFAULT_CONVERSATIONS_API_BASE_URL, own
    local = local_credentials(state)
    if own is not None and own.authorization_header != local.authorization_header:
        raise UsageError(
            f"the local stack's Conversations URL (from {local_state_path()}) is used only with its own dev "
            "credentials, and --secret or the TWILIO_* variables hold others: unset them for the local "
            f"stack, or pass --conversations-api-url {DEFAULT_CONVERSATIONS_API_BASE_URL}"
        )
    source = f"conversations_url in {local_state_path()}"
    return checked_memory_url(source, str(state["conversations_url"])), local


class ConversationsClient:
    """The few Conversations REST calls the CLI makes; every answer is an outcome value (Accepted,
    Retryable, Permanent), as Memory's client gives."""

    def __init__(
        self,
        base_url: str,
        credentials: TwilioCredentials,
        *,
        connect_timeout: float = 5.0,
        read_timeout: float = 15.0,
        deadline_seconds: float = 20.0,
    ):
        self.base_url = base_url.rstrip("/")
        self._authorization = credentials.authorization_header
        self._timeout = (connect_timeout, read_timeout)
        self._deadline_seconds = deadline_seconds
        self._pool = guarded_pool_manager()

    def fetch_webhook(self, service: str | None = None) -> Outcome:
        return self.request("GET", webhook_path(service))

    def update_webhook(self, service: str | None, fields: Sequence[tuple[str, str]]) -> Outcome:
        return self.request("POST", webhook_path(service), form=fields)

    def request(self, method: str, path: str, form: Sequence[tuple[str, str]] | None = None) -> Outcome:
        """One call, given up on after `deadline_seconds` however slowly the answer comes."""
        headers = {
            "Authorization": self._authorization,
            "Accept": "application/json",
            "User-Agent": USER_AGENT,
        }
        body = None
        if form is not None:
            body = urlencode(list(form)).encode()
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        connect, read = self._timeout
        guard = RequestGuard(deadline=time.monotonic() + self._deadline_seconds)
        reset = active_guard.set(guard)
        try:
            response = self._pool.request(
                method,
                self.base_url + path,
                body=body,
                headers=headers,
                timeout=urllib3.Timeout(total=self._deadline_seconds, connect=connect, read=read),
                retries=False,
                redirect=False,
            )
        except Exception as error:  # noqa: BLE001 - every transport failure becomes an outcome
            cut = guard.release()
            reason = "no answer before the deadline" if cut else f"transport error: {type(error).__name__}"
            return Retryable(status=None, message=reason)
        finally:
            active_guard.reset(reset)
        guard.release()
        lowered = {name.lower(): value for name, value in response.headers.items()}
        return outcome_from_response(response.status, lowered, response.data)


def webhook_path(service: str | None) -> str:
    if service is None:
        return "/v1/Configuration/Webhooks"
    return f"/v1/Services/{quote(service, safe='')}/Configuration/Webhooks"


def scope_name(service: str | None) -> str:
    return f"service {service}" if service else "the account-level configuration"


class WebhookConflict(Exception):
    """The webhook serves someone else: setup changes it only with --force. The message says what holds
    it and how to proceed."""


@dataclass(frozen=True)
class WebhookChange:
    fields: tuple[tuple[str, str], ...]  # the form to POST; empty when nothing needs to change
    filters: tuple[str, ...]  # the filters once done
    replaced: str | None = None  # the other URL --force takes the webhook from


def plan_webhook(
    current: dict[str, Any], url: str, filters: Sequence[str], *, service: str | None, force: bool
) -> WebhookChange:
    """What to POST so that the post-event webhook calls `url` with POST for `filters`.

    Pre- and post-event webhooks share one method and one filter list, so a pre-event webhook's
    filters are kept and its method is changed only with --force. Without a pre-event webhook the
    filters become the bridge's (plus any kept while the URL was already ours). The account-level
    `target` must be `webhook` (`flex` routes events into Flex instead): changed only with --force.
    Raises WebhookConflict for what --force would overwrite.
    """
    post_url = current.get("post_webhook_url") or None
    pre_url = current.get("pre_webhook_url") or None
    method = str(current.get("method") or "").upper() or None
    existing = [f for f in current.get("filters") or [] if isinstance(f, str)]
    target = None if service else current.get("target")
    conflicts = _conflicts(post_url, pre_url, method, target, url)
    if conflicts and not force:
        raise WebhookConflict(
            f"Conversations ({scope_name(service)}): {'; '.join(conflicts)}. Setup leaves it as it is: "
            "pass --force to point it at this stack anyway"
            + ("" if service else ", or --conversations-service IS… to configure one service instead")
        )
    keep = existing if (pre_url or post_url == url) else []
    wanted = tuple(keep) + tuple(f for f in filters if f not in keep)
    unchanged = post_url == url and method == WEBHOOK_METHOD and not set(filters) - set(existing)
    if unchanged and target in (None, "webhook"):
        return WebhookChange((), tuple(existing))
    fields = [("PostWebhookUrl", url), ("Method", WEBHOOK_METHOD), *(("Filters", f) for f in wanted)]
    if target not in (None, "webhook"):
        fields.append(("Target", "webhook"))
    return WebhookChange(tuple(fields), wanted, post_url if post_url not in (None, url) else None)


def _conflicts(
    post_url: str | None,
    pre_url: str | None,
    method: str | None,
    target: Any,
    url: str,
) -> list[str]:
    found = []
    if post_url and post_url != url:
        found.append(f"the post-event webhook calls {post_url}, not {url}")
    if pre_url and method and method != WEBHOOK_METHOD:
        found.append(
            f"the pre-event webhook {pre_url} is called with {method}, and the method is shared: "
            f"setting {WEBHOOK_METHOD} changes it too"
        )
    if target not in (None, "webhook"):
        found.append(f"events go to {target!r}, not to webhooks")
    return found


def webhook_problems(current: dict[str, Any], url: str, filters: Sequence[str]) -> list[str]:
    """What keeps the configuration from delivering `filters` to `url` by POST (empty when nothing):
    for checking what Conversations answered after the change."""
    problems = []
    if current.get("post_webhook_url") != url:
        problems.append(f"post_webhook_url is {current.get('post_webhook_url')!r}")
    if str(current.get("method") or "").upper() != WEBHOOK_METHOD:
        problems.append(f"method is {current.get('method')!r}")
    missing = [f for f in filters if f not in (current.get("filters") or [])]
    if missing:
        problems.append(f"filters lack {', '.join(missing)}")
    return problems


class ConversationsFailure(RuntimeError):
    """Conversations refused or did not answer; the message names the call, the status and the fix."""


def answered(outcome: Outcome, what: str) -> dict[str, Any]:
    """The JSON body of an accepted answer; ConversationsFailure naming the cause otherwise."""
    if isinstance(outcome, Accepted) and isinstance(outcome.body, dict):
        return outcome.body
    status = getattr(outcome, "status", None)
    code = getattr(outcome, "code", None)
    message = getattr(outcome, "message", "") or "unexpected answer"
    hint = {
        401: ": check the Twilio credentials (TWILIO_* variables or --secret)",
        403: ": these credentials may not change Conversations' configuration",
        404: ": check --conversations-service (a service of this account?)",
    }.get(status or 0, "; is it reachable? check --conversations-api-url / CONVERSATIONS_API_BASE_URL")
    raise ConversationsFailure(
        f"Conversations {what}: HTTP {status or 'no answer'}"
        + (f", Twilio code {code}" if code else "")
        + f" ({message}){hint}"
    )


def read_webhook(client: ConversationsClient, service: str | None) -> dict[str, Any]:
    return answered(client.fetch_webhook(service), f"read the webhook configuration of {scope_name(service)}")


def configure_webhook(
    client: ConversationsClient, service: str | None, url: str, filters: Sequence[str], *, force: bool
) -> WebhookChange:
    """Point the post-event webhook at `url` (see plan_webhook); nothing is sent when it already is.
    The configuration Conversations answers with is checked, so a change it did not take is not
    reported as done."""
    change = plan_webhook(read_webhook(client, service), url, filters, service=service, force=force)
    if not change.fields:
        return change
    after = answered(
        client.update_webhook(service, change.fields), f"update the webhook of {scope_name(service)}"
    )
    problems = webhook_problems(after, url, filters)
    if problems:
        raise ConversationsFailure(
            f"Conversations took the webhook update of {scope_name(service)}, but answers: "
            + "; ".join(problems)
        )
    return change
