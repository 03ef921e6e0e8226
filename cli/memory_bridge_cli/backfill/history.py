"""Reading a Conversations history for `memory-bridge backfill`: the selected conversations, page by
page, and each one's messages in order (`Order=asc`), as the webhook's MessageAdded values.

Only one page of conversations and one page of messages are held at a time, so what a run holds does
not grow with the history. Each call honours Retry-After (429) and backs off on 5xx and timeouts, a
few times; a call that still fails raises Unreadable, and the caller leaves that conversation (or the
listing) for the next run.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from memory_bridge.adapters.conversations_api import ConversationsApiClient, Page, scoped
from memory_bridge.adapters.twilio_http import path_segment
from memory_bridge.domain.events import MessageAdded
from memory_bridge.domain.media import parse_media
from memory_bridge.domain.outcomes import Failure, Permanent, Retryable
from memory_bridge.domain.speakers import Roster

PAGE_SIZE = 100  # Twilio's largest page for conversations and messages
PARTICIPANT_PAGE_SIZE = 50  # ParticipantConversations' largest (the contract)
TRIES = 6
CALL_TIMEOUT_SECONDS = 15.0
MAX_BACKOFF_SECONDS = 30.0


@dataclass(frozen=True)
class Selection:
    since: datetime | None = None
    until: datetime | None = None
    conversations: tuple[str, ...] = ()
    address: str | None = None
    service_sid: str | None = None

    def covers(self, moment: datetime) -> bool:
        return (self.since is None or moment >= self.since) and (self.until is None or moment <= self.until)


@dataclass(frozen=True)
class ConversationRef:
    sid: str
    service_sid: str | None
    state: str = "active"
    date_created: datetime | None = None


class Unreadable(Exception):
    """A Conversations call still failed after its retries. Carries no message content."""

    def __init__(self, what: str, failure: Failure):
        super().__init__(f"{what}: HTTP {failure.status or 'no answer'}")
        self.what, self.failure = what, failure


def parse_time(text: Any) -> datetime | None:
    if not isinstance(text, str) or not text:
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def api_time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class History:
    """The Conversations calls the backfill makes, each retried; `calls` counts them."""

    def __init__(self, client: ConversationsApiClient, sleep: Callable[[float], None] = time.sleep):
        self.client, self.sleep = client, sleep
        self.calls = 0
        self.throttled = 0  # 429s honoured

    def retried(self, what: str, call: Callable[[], Any]) -> Any:
        wait = 0.5
        for attempt in range(TRIES):
            self.calls += 1
            answer = call()
            if not isinstance(answer, Retryable | Permanent):
                return answer
            if isinstance(answer, Permanent) or attempt == TRIES - 1:
                raise Unreadable(what, answer)
            if answer.status == 429:
                self.throttled += 1
            pause = answer.retry_after if answer.retry_after is not None else wait
            self.sleep(min(pause, MAX_BACKOFF_SECONDS))
            wait = min(wait * 2, MAX_BACKOFF_SECONDS)
        raise AssertionError("unreachable")

    def items(self, what: str, path: str, query: dict[str, str | None], key: str) -> Iterator[dict[str, Any]]:
        next_query: dict[str, str | None] | None = query
        while next_query is not None:
            asked: dict[str, str | None] = next_query

            def call(q: dict[str, str | None] = asked) -> Page | Failure:
                return self.client.list_page(path, q, key, CALL_TIMEOUT_SECONDS)

            page: Page = self.retried(what, call)
            yield from page.items
            next_query = page.next_query

    def roster(self, ref: ConversationRef) -> Roster:
        read: Roster = self.retried(
            f"participants of {ref.sid}",
            lambda: self.client.participants(ref.sid, CALL_TIMEOUT_SECONDS, service_sid=ref.service_sid),
        )
        return read

    # ---- the selection ----------------------------------------------------------------------

    def conversations(self, selection: Selection) -> Iterator[ConversationRef]:
        """The selected conversations, one page at a time. Raises Unreadable."""
        service = selection.service_sid
        if selection.conversations:
            for sid in selection.conversations:
                yield ConversationRef(sid, service)
            return
        if selection.address:
            query: dict[str, str | None] = {
                "Address": selection.address,
                "PageSize": str(PARTICIPANT_PAGE_SIZE),
            }
            path = scoped("/ParticipantConversations", service)
            for item in self.items("the customer's conversations", path, query, "conversations"):
                found = item.get("conversation_sid")
                if isinstance(found, str):
                    state = str(item.get("conversation_state") or "active")
                    created = parse_time(item.get("conversation_date_created"))
                    yield ConversationRef(found, item.get("chat_service_sid") or service, state, created)
            return
        yield from self._listed(selection, service)

    def _listed(self, selection: Selection, service: str | None) -> Iterator[ConversationRef]:
        path = scoped("/Conversations", service)
        query: dict[str, str | None] = {"PageSize": str(PAGE_SIZE)}
        if selection.since:
            query["StartDate"] = api_time(selection.since)
        if selection.until:
            query["EndDate"] = api_time(selection.until)
        for item in self.items("the conversations", path, query, "conversations"):
            ref = _ref(item, service)
            # The API filters by day: the exact bounds are ours.
            if ref is not None and (ref.date_created is None or selection.covers(ref.date_created)):
                yield ref
        if selection.since is None:
            return
        # Messages since `since` in conversations opened before it (an outage hits those too): the
        # active ones, and the inactive ones (Twilio's inactivity timer moved them after the window;
        # whether a new message changes a conversation's date_updated is not published, so each is
        # read, and only its messages in the window are posted). Closed ones are not listed: an account
        # holds every closed conversation it ever had (README, Backfill: name them with --conversation
        # or --address).
        for state in ("active", "inactive"):
            query = {"PageSize": str(PAGE_SIZE), "State": state}
            for item in self.items(f"the {state} conversations", path, query, "conversations"):
                ref = _ref(item, service)
                if ref is not None and ref.date_created is not None and ref.date_created < selection.since:
                    yield ref

    def messages(self, ref: ConversationRef) -> Iterator[dict[str, Any]]:
        path = scoped(f"/Conversations/{path_segment(ref.sid)}/Messages", ref.service_sid)
        query: dict[str, str | None] = {"Order": "asc", "PageSize": str(PAGE_SIZE)}
        yield from self.items(f"the messages of {ref.sid}", path, query, "messages")


def _ref(item: dict[str, Any], service: str | None) -> ConversationRef | None:
    sid = item.get("sid")
    if not isinstance(sid, str):
        return None
    state = str(item.get("state") or "active")
    return ConversationRef(
        sid, item.get("chat_service_sid") or service, state, parse_time(item.get("date_created"))
    )


def message_added(item: dict[str, Any], ref: ConversationRef) -> MessageAdded | None:
    """The webhook's value for one listed message; None when it lacks what the webhook requires."""
    sid, created = item.get("sid"), parse_time(item.get("date_created"))
    if not isinstance(sid, str) or created is None:
        return None
    media, index, body = item.get("media"), item.get("index"), item.get("body")
    return MessageAdded(
        message_sid=sid,
        conversation_sid=ref.sid,
        account_sid=str(item.get("account_sid") or ""),
        author=item.get("author") if isinstance(item.get("author"), str) else None,
        body=body if isinstance(body, str) else "",
        date_created=created,
        index=index if isinstance(index, int) else None,
        attachments=parse_media(json.dumps(media) if media else None),
        participant_sid=item.get("participant_sid") if isinstance(item.get("participant_sid"), str) else None,
        chat_service_sid=ref.service_sid,
    )


class RetryingDirectory:
    """The participants port for Speakers, over History: each read retried as the other calls are."""

    def __init__(self, history: History):
        self.history = history

    def participants(
        self,
        conversation_sid: str,
        timeout: float | None = None,  # noqa: ARG002 - each try has its own
        service_sid: str | None = None,
    ) -> Roster | Failure:
        try:
            return self.history.roster(ConversationRef(conversation_sid, service_sid))
        except Unreadable as error:
            return error.failure
