"""The Conversations sandbox's REST handlers for conversations, participants, messages and
ParticipantConversations, with Twilio's paging (dev-only).

Each handler takes the route's match (`service` set on the `/v1/Services/{IS}/...` paths) and the
request's fields (the form body of a POST, the query of a GET) and answers (status, JSON body), or
raises TwilioError. Lists page as Twilio's do: `PageSize` (default 50, at most 100; ParticipantConversations
at most 50, as the contract says), `Page` and `PageToken`, and a `meta` with page, page_size,
first_page_url, previous_page_url, url, next_page_url and key; the filters ride along in every link.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import urlencode

from memory_bridge_dev.conversations_store import (
    STATES,
    Answer,
    Conversation,
    ConversationsStore,
    Form,
    Participant,
    TwilioError,
    iso,
    json_attributes,
    parse_time,
)

DEFAULT_PAGE_SIZE = 50
PAGE_TOKEN = re.compile(r"^PT(\d{1,9})$")


def fields_of(form: Form) -> dict[str, str]:
    """The last value of each field (Twilio reads a repeated scalar field once)."""
    return dict(form)


def _whole(name: str, text: str, low: int, high: int) -> int:
    try:
        value = int(text)
    except ValueError:
        value = low - 1
    if not low <= value <= high:
        raise TwilioError(400, 20001, f"Invalid {name}: must be an integer from {low} to {high}")
    return value


def page_of(
    items: Sequence[Any],
    form: Form,
    *,
    key: str,
    url: str,
    keep: Sequence[str] = (),
    maximum: int = 100,
) -> dict[str, Any]:
    """One page of `items` with Twilio's `meta`; `url` is the list's absolute URL without a query."""
    params = fields_of(form)
    size = _whole("PageSize", params.get("PageSize", str(DEFAULT_PAGE_SIZE)), 1, maximum)
    page = _whole("Page", params.get("Page", "0"), 0, 10**9)
    offset = page * size
    if params.get("PageToken"):
        token = PAGE_TOKEN.match(params["PageToken"])
        if token is None:
            raise TwilioError(400, 20001, "Invalid PageToken")
        offset = int(token[1])
    filters = [(name, params[name]) for name in keep if name in params]

    def link(number: int, start: int) -> str:
        token = [("PageToken", f"PT{start}")] if number else []
        return url + "?" + urlencode([*filters, ("PageSize", size), ("Page", number), *token])

    meta = {
        "page": page,
        "page_size": size,
        "first_page_url": link(0, 0),
        "previous_page_url": link(page - 1, max(offset - size, 0)) if page > 0 else None,
        "url": link(page, offset),
        "next_page_url": link(page + 1, offset + size) if offset + size < len(items) else None,
        "key": key,
    }
    return {key: list(items[offset : offset + size]), "meta": meta}


def participant_conversation_json(
    store: ConversationsStore, conversation: Conversation, participant: Participant, base_url: str
) -> dict[str, Any]:
    return {
        "account_sid": store.account_sid,
        "chat_service_sid": conversation.service_sid,
        "participant_sid": participant.sid,
        "participant_user_sid": None,
        "participant_identity": participant.identity,
        "participant_messaging_binding": participant.binding(),
        "conversation_sid": conversation.sid,
        "conversation_unique_name": conversation.unique_name,
        "conversation_friendly_name": conversation.friendly_name,
        "conversation_attributes": conversation.attributes,
        "conversation_date_created": iso(conversation.date_created),
        "conversation_date_updated": iso(conversation.date_created),
        "conversation_created_by": None,
        "conversation_state": conversation.state,
        "conversation_timers": {},
        "links": {
            "participant": f"{base_url}/v1/Conversations/{conversation.sid}/Participants/" + participant.sid,
            "conversation": f"{base_url}/v1/Conversations/{conversation.sid}",
        },
    }


class ConversationsApi:
    """The handlers, over a store; `base_url` gives the sandbox's URL (known once it serves) and
    `known_service` says whether an IS sid is one of the account's services."""

    def __init__(
        self, store: ConversationsStore, base_url: Callable[[], str], known_service: Callable[[str], bool]
    ):
        self.store = store
        self.base_url = base_url
        self.known_service = known_service

    def _service(self, match: re.Match[str]) -> str:
        service = match.groupdict().get("service")
        if service is None:
            return self.store.default_service
        if service != self.store.default_service and not self.known_service(service):
            raise TwilioError(404, 20404, f"The requested resource /Services/{service} was not found")
        return service

    def _conversation(self, match: re.Match[str]) -> Conversation:
        return self.store.conversation(match["conversation"], self._service(match))

    def _list_url(self, match: re.Match[str]) -> str:
        return self.base_url() + match.string

    # ---- conversations ---------------------------------------------------------------------------

    def create_conversation(self, match: re.Match[str], form: Form) -> Answer:
        params = fields_of(form)
        state = params.get("State", "active")
        if state not in STATES:
            raise TwilioError(400, 20001, f"Invalid State: {state!r}")
        created = params.get("DateCreated")
        sid = self.store.add_conversation(
            service_sid=self._service(match),
            date_created=parse_time("DateCreated", created) if created else None,
            friendly_name=params.get("FriendlyName"),
            unique_name=params.get("UniqueName"),
            attributes=json_attributes(params.get("Attributes")),
            state=state,
            messaging_service_sid=params.get("MessagingServiceSid"),
        )
        return 201, self.store.conversation_json(self.store.conversations[sid], self.base_url())

    def fetch_conversation(self, match: re.Match[str], _form: Form) -> Answer:
        return 200, self.store.conversation_json(self._conversation(match), self.base_url())

    def list_conversations(self, match: re.Match[str], form: Form) -> Answer:
        """StartDate / EndDate (on date_created) and State filter; with a date filter, newest first."""
        service = self._service(match)
        params = fields_of(form)
        start = parse_time("StartDate", params["StartDate"]) if params.get("StartDate") else None
        end = parse_time("EndDate", params["EndDate"], end_of_day=True) if params.get("EndDate") else None
        state = params.get("State")
        if state is not None and state not in STATES:
            raise TwilioError(400, 20001, f"Invalid State: {state!r}")
        found = [
            c
            for c in self.store.conversations.values()
            if c.service_sid == service
            and (start is None or c.date_created >= start)
            and (end is None or c.date_created <= end)
            and state in (None, c.state)
        ]
        found.sort(key=lambda c: c.date_created, reverse=start is not None or end is not None)
        base = self.base_url()
        items = [self.store.conversation_json(c, base) for c in found]
        url = self._list_url(match)
        return 200, page_of(items, form, key="conversations", url=url, keep=("StartDate", "EndDate", "State"))

    # ---- participants ----------------------------------------------------------------------------

    def create_participant(self, match: re.Match[str], form: Form) -> Answer:
        conversation = self._conversation(match)
        params = fields_of(form)
        created = params.get("DateCreated")
        sid = self.store.add_participant(
            conversation.sid,
            identity=params.get("Identity") or None,
            address=params.get("MessagingBinding.Address") or None,
            proxy_address=params.get("MessagingBinding.ProxyAddress") or None,
            projected_address=params.get("MessagingBinding.ProjectedAddress") or None,
            attributes=params.get("Attributes"),
            date_created=parse_time("DateCreated", created) if created else None,
        )
        participant = next(p for p in conversation.participants if p.sid == sid)
        return 201, self.store.participant_json(participant, self.base_url())

    def list_participants(self, match: re.Match[str], form: Form) -> Answer:
        conversation = self._conversation(match)
        base = self.base_url()
        items = [self.store.participant_json(p, base) for p in conversation.participants]
        return 200, page_of(items, form, key="participants", url=self._list_url(match))

    def fetch_participant(self, match: re.Match[str], _form: Form) -> Answer:
        conversation = self._conversation(match)
        for participant in conversation.participants:
            if participant.sid == match["sid"]:
                return 200, self.store.participant_json(participant, self.base_url())
        raise TwilioError(404, 20404, f"The requested resource /Participants/{match['sid']} was not found")

    def by_participant(self, match: re.Match[str], form: Form) -> Answer:
        """One person's conversations, by binding `Address` or chat `Identity` (one of them required)."""
        service = self._service(match)
        params = fields_of(form)
        address, identity = params.get("Address"), params.get("Identity")
        if not address and not identity:
            raise TwilioError(400, 20001, "Either Identity or Address must be specified")
        base = self.base_url()
        items = [
            participant_conversation_json(self.store, c, p, base)
            for c in self.store.conversations.values()
            if c.service_sid == service
            for p in c.participants
            if (address and p.address == address) or (identity and p.identity == identity)
        ]
        url = self._list_url(match)
        return 200, page_of(
            items, form, key="conversations", url=url, keep=("Identity", "Address"), maximum=50
        )

    # ---- messages --------------------------------------------------------------------------------

    def create_message(self, match: re.Match[str], form: Form) -> Answer:
        conversation = self._conversation(match)
        params = fields_of(form)
        if not params.get("Body") and not params.get("MediaSid") and not params.get("ContentSid"):
            raise TwilioError(400, 50511, "Body, MediaSid or ContentSid is required")
        created = params.get("DateCreated")
        sid = self.store.add_message(
            conversation.sid,
            params.get("Author"),
            params.get("Body"),
            date_created=parse_time("DateCreated", created) if created else None,
            attributes=params.get("Attributes"),
        )
        message = conversation.messages[-1]
        assert message.sid == sid
        return 201, self.store.message_json(conversation, message, self.base_url())

    def list_messages(self, match: re.Match[str], form: Form) -> Answer:
        conversation = self._conversation(match)
        order = fields_of(form).get("Order", "asc")
        if order not in ("asc", "desc"):
            raise TwilioError(400, 20001, f"Invalid Order: {order!r} (asc or desc)")
        messages = conversation.messages if order == "asc" else conversation.messages[::-1]
        base = self.base_url()
        items = [self.store.message_json(conversation, m, base) for m in messages]
        return 200, page_of(items, form, key="messages", url=self._list_url(match), keep=("Order",))

    def fetch_message(self, match: re.Match[str], _form: Form) -> Answer:
        conversation = self._conversation(match)
        for message in conversation.messages:
            if message.sid == match["sid"]:
                return 200, self.store.message_json(conversation, message, self.base_url())
        raise TwilioError(404, 20404, f"The requested resource /Messages/{match['sid']} was not found")
