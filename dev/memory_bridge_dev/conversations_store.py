"""The Conversations sandbox's data: conversations, participants and messages, kept as Twilio keeps them,
and their JSON as `twilio-conversations-v1.yaml` shapes it (dev-only).

Every conversation belongs to one Conversations service: the account's default one unless it was made
under `/v1/Services/{IS}/Conversations`. The un-scoped paths (`/v1/Conversations/...`) reach only the
default service's conversations, as Twilio's do; the others answer 404 there.

The seeding functions (`add_conversation`, `add_participant`, `add_message`) are what tests and dev tools
call in process; the REST handlers (memory_bridge_dev.conversations_api) call the same ones.
"""

from __future__ import annotations

import json
import re
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

Form = list[tuple[str, str]]
Answer = tuple[int, Any]
STATES = ("initializing", "inactive", "active", "closed")


class TwilioError(Exception):
    """An answer with Twilio's error body `{code, message, more_info, status}`; `headers` go with it."""

    def __init__(self, status: int, code: int, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "message": self.message,
            "more_info": f"https://www.twilio.com/docs/errors/{self.code}",
            "status": self.status,
        }


def new_sid(prefix: str) -> str:
    return prefix + secrets.token_hex(16)


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(name: str, text: str, *, end_of_day: bool = False) -> datetime:
    """An ISO 8601 date or date-time (a bare date is the start of that day, or its end for EndDate);
    a 400 naming the parameter otherwise."""
    try:
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
            day = datetime.fromisoformat(text).replace(tzinfo=UTC)
            return day.replace(hour=23, minute=59, second=59) if end_of_day else day
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise TwilioError(400, 20001, f"Invalid {name}: {text!r} is not an ISO 8601 date") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def json_attributes(text: str | None) -> str:
    """Attributes are a string holding a JSON document; Twilio answers `{}` when none was set."""
    if text is None or text == "":
        return "{}"
    try:
        json.loads(text)
    except ValueError:
        raise TwilioError(400, 20001, "Attributes must be a valid JSON string") from None
    return text


@dataclass
class Participant:
    sid: str
    conversation_sid: str
    identity: str | None
    address: str | None
    proxy_address: str | None
    projected_address: str | None
    attributes: str
    date_created: datetime

    def binding(self) -> dict[str, Any] | None:
        if self.address is None:
            return None
        kind = "whatsapp" if self.address.startswith("whatsapp:") else "sms"
        found = {"proxy_address": self.proxy_address, "projected_address": self.projected_address}
        return {"type": kind, "address": self.address, **{k: v for k, v in found.items() if v}}


@dataclass
class Message:
    sid: str
    index: int
    author: str
    body: str | None
    attributes: str
    participant_sid: str | None
    date_created: datetime


@dataclass
class Conversation:
    sid: str
    service_sid: str
    date_created: datetime
    friendly_name: str | None = None
    unique_name: str | None = None
    attributes: str = "{}"
    state: str = "active"
    messaging_service_sid: str | None = None
    participants: list[Participant] = field(default_factory=list)
    messages: list[Message] = field(default_factory=list)


@dataclass
class ConversationsStore:
    """What the sandbox holds. Callers hold the sandbox's lock around every call."""

    account_sid: str
    default_service: str = field(default_factory=lambda: new_sid("IS"))
    conversations: dict[str, Conversation] = field(default_factory=dict)
    role_sid: str = field(default_factory=lambda: new_sid("RL"))

    # ---- seeding (and what the REST handlers call) ---------------------------------------------

    def add_conversation(
        self,
        sid: str | None = None,
        service_sid: str | None = None,
        date_created: datetime | None = None,
        **fields: Any,
    ) -> str:
        """A conversation (`fields`: friendly_name, unique_name, attributes, state,
        messaging_service_sid); returns its CH sid."""
        sid = sid or new_sid("CH")
        when = date_created or datetime.now(UTC)
        self.conversations[sid] = Conversation(sid, service_sid or self.default_service, when, **fields)
        return sid

    def add_participant(
        self,
        conversation_sid: str,
        *,
        identity: str | None = None,
        address: str | None = None,
        proxy_address: str | None = None,
        projected_address: str | None = None,
        attributes: str | dict[str, Any] | None = None,
        sid: str | None = None,
        date_created: datetime | None = None,
    ) -> str:
        """A chat participant (`identity`) or a messaging one (`address`, with the business's
        `proxy_address`, or `projected_address` in a group MMS); the conversation is made when absent.
        Returns its MB sid. Twilio's refusals (409 for a duplicate, 400 for a bad shape) are raised."""
        if conversation_sid not in self.conversations:
            self.add_conversation(conversation_sid)
        conversation = self.conversations[conversation_sid]
        if bool(identity) == bool(address):
            raise TwilioError(400, 50200, "Exactly one of Identity and MessagingBinding.Address is required")
        if identity is None and not (proxy_address or projected_address):
            raise TwilioError(400, 50200, "MessagingBinding.ProxyAddress or ProjectedAddress is required")
        for other in conversation.participants:
            if identity and other.identity == identity:
                raise TwilioError(409, 50433, "Participant already exists")
            if address and other.address == address and other.proxy_address == proxy_address:
                raise TwilioError(
                    409, 50416, f"A binding for this participant already exists in {conversation_sid}"
                )
        text = json.dumps(attributes) if isinstance(attributes, dict) else json_attributes(attributes)
        participant = Participant(
            sid or new_sid("MB"),
            conversation_sid,
            identity or None,
            address or None,
            proxy_address or None,
            projected_address or None,
            text,
            date_created or datetime.now(UTC),
        )
        conversation.participants.append(participant)
        return participant.sid

    def add_message(
        self,
        conversation_sid: str,
        author: str | None,
        body: str | None,
        date_created: datetime | None = None,
        participant_sid: str | None = None,
        attributes: str | None = None,
    ) -> str:
        """A message; its participant_sid is the author's participant when one matches (by identity or
        binding address) unless given. Returns its IM sid."""
        conversation = self.conversation(conversation_sid)
        author = author or "system"
        if participant_sid is None:
            participant_sid = next(
                (p.sid for p in conversation.participants if author in (p.identity, p.address)), None
            )
        index = conversation.messages[-1].index + 1 if conversation.messages else 0
        message = Message(
            new_sid("IM"),
            index,
            author,
            body,
            json_attributes(attributes),
            participant_sid,
            date_created or datetime.now(UTC),
        )
        conversation.messages.append(message)
        return message.sid

    def participants(self, conversation_sid: str) -> list[Participant]:
        return list(self.conversation(conversation_sid).participants)

    # ---- reading ------------------------------------------------------------------------------

    def conversation(self, sid: str, service: str | None = None) -> Conversation:
        """The conversation, if `service` (default: the default service) holds it; 404 otherwise."""
        found = self.conversations.get(sid)
        if found is None or found.service_sid != (service or self.default_service):
            raise TwilioError(404, 20404, f"The requested resource /Conversations/{sid} was not found")
        return found

    def conversation_json(self, conversation: Conversation, base_url: str) -> dict[str, Any]:
        url = f"{base_url}/v1/Conversations/{conversation.sid}"
        if conversation.service_sid != self.default_service:
            url = f"{base_url}/v1/Services/{conversation.service_sid}/Conversations/{conversation.sid}"
        return {
            "sid": conversation.sid,
            "account_sid": self.account_sid,
            "chat_service_sid": conversation.service_sid,
            "messaging_service_sid": conversation.messaging_service_sid,
            "friendly_name": conversation.friendly_name,
            "unique_name": conversation.unique_name,
            "attributes": conversation.attributes,
            "date_created": iso(conversation.date_created),
            "date_updated": iso(conversation.date_created),
            "state": conversation.state,
            "timers": {},
            "bindings": {},
            "url": url,
            "links": {name: f"{url}/{name.title()}" for name in ("participants", "messages", "webhooks")},
        }

    def participant_json(self, participant: Participant, base_url: str) -> dict[str, Any]:
        return {
            "account_sid": self.account_sid,
            "conversation_sid": participant.conversation_sid,
            "sid": participant.sid,
            "identity": participant.identity,
            "attributes": participant.attributes,
            "messaging_binding": participant.binding(),
            "role_sid": self.role_sid,
            "date_created": iso(participant.date_created),
            "date_updated": iso(participant.date_created),
            "url": f"{base_url}/v1/Conversations/{participant.conversation_sid}/Participants/"
            + participant.sid,
            "last_read_message_index": None,
            "last_read_timestamp": None,
        }

    def message_json(self, conversation: Conversation, message: Message, base_url: str) -> dict[str, Any]:
        url = f"{base_url}/v1/Conversations/{conversation.sid}/Messages/{message.sid}"
        return {
            "account_sid": self.account_sid,
            "conversation_sid": conversation.sid,
            "sid": message.sid,
            "index": message.index,
            "author": message.author,
            "body": message.body,
            "media": None,
            "attributes": message.attributes,
            "participant_sid": message.participant_sid,
            "date_created": iso(message.date_created),
            "date_updated": None,  # set only when a message is edited
            "url": url,
            "delivery": None,
            "links": {"delivery_receipts": f"{url}/Receipts", "channel_metadata": f"{url}/ChannelMetadata"},
            "content_sid": None,
        }
