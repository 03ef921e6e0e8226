"""Adapter for Twilio's Conversations REST API (https://conversations.twilio.com, v1): what the bridge
reads of a conversation, over memory_bridge.adapters.twilio_http (pooled urllib3, deadlines, outcomes)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from memory_bridge.adapters.twilio_http import TwilioJsonClient, path_segment
from memory_bridge.domain.outcomes import Accepted, Failure, Permanent, Retryable
from memory_bridge.domain.speakers import Participant, Roster

# Twilio's largest page. A conversation rarely has more than a few participants (a group MMS at most
# ten), so one page is the rule. Twilio allows 1,000 participants in a conversation: ten pages hold
# them all, and a list that goes on past that is no answer to trust (a guess could miss the customer).
PAGE_SIZE = 100
MAX_PAGES = 10


@dataclass(frozen=True)
class Page:
    """One page of a list: its items, and the query of the next page (None: the last page)."""

    items: tuple[dict[str, Any], ...]
    next_query: dict[str, str | None] | None


def scoped(path: str, service_sid: str | None) -> str:
    """`/v1{path}`, or under the service when known (the un-scoped path finds only the default's)."""
    return f"/v1/Services/{path_segment(service_sid)}{path}" if service_sid else f"/v1{path}"


class ConversationsApiClient(TwilioJsonClient):
    def list_page(
        self, path: str, query: dict[str, str | None], key: str, timeout: float | None = None
    ) -> Page | Failure:
        """One page of a list (`key`: the answer's list field); the next page's query is taken from
        `meta.next_page_url` and sent to this client's own base URL only."""
        outcome = self.request("GET", path, query=query, timeout=timeout)
        if isinstance(outcome, Retryable | Permanent):
            return outcome
        if not isinstance(outcome, Accepted):
            return Permanent(status=outcome.status, message="unexpected redirect")
        body: dict[str, Any] = outcome.body if isinstance(outcome.body, dict) else {}
        items = tuple(item for item in body.get(key) or () if isinstance(item, dict))
        return Page(items, _next_page(body))

    def participants(
        self, conversation_sid: str, timeout: float | None = None, service_sid: str | None = None
    ) -> Roster | Failure:
        """Every participant of the conversation (following `meta.next_page_url`), within `timeout`
        for all pages together; else the failure (429/5xx/timeouts retryable, 4xx permanent).
        Under its service when known: the un-scoped path finds only the default service's."""
        ends = None if timeout is None else time.monotonic() + timeout
        path = scoped(f"/Conversations/{path_segment(conversation_sid)}/Participants", service_sid)
        query: dict[str, str | None] = {"PageSize": str(PAGE_SIZE)}
        found: list[Participant] = []
        for _ in range(MAX_PAGES):
            left = None if ends is None else max(ends - time.monotonic(), 0.05)
            outcome = self.request("GET", path, query=query, timeout=left)
            if isinstance(outcome, Retryable | Permanent):
                return outcome
            if not isinstance(outcome, Accepted):  # a redirect: not an answer this API gives
                return Permanent(status=outcome.status, message="unexpected redirect")
            body: dict[str, Any] = outcome.body if isinstance(outcome.body, dict) else {}
            listed = body.get("participants")
            if not isinstance(listed, list):
                # Not an answer that names anyone (a proxy's error page, a body cut short): an empty
                # roster would make every speaker the brand of a conversation with no customer.
                return Retryable(status=outcome.status, message="answer without a participants list")
            found.extend(Participant.from_json(p) for p in listed if isinstance(p, dict))
            following = _next_page(body)
            if following is None:
                return Roster(tuple(found))
            query = following
        return Permanent(
            status=0, message=f"more than {MAX_PAGES * PAGE_SIZE} participants: the list is not read whole"
        )


def _next_page(body: dict[str, Any]) -> dict[str, str | None] | None:
    """The next page's query, taken from `meta.next_page_url` and sent to this client's own base URL
    only (the credentials never follow a host named in an answer)."""
    meta = body.get("meta")
    url = meta.get("next_page_url") if isinstance(meta, dict) else None
    if not isinstance(url, str) or not url:
        return None
    return dict(parse_qsl(urlsplit(url).query))
