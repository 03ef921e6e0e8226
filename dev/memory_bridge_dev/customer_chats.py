"""Customers' conversations in the Conversations sandbox, and the webhooks Twilio sends for them, for the
dev tools that send many messages (`make soak`, `make bench`) (dev-only).

Each customer has a conversation of their own, as with Twilio: one SMS conversation per customer, the
business's number as the binding's proxy_address, and, where an agent answers, an agent in chat
({"role": "agent"}). The bridge reads those participants, as it reads Twilio's, to know who spoke; the
webhooks carry what Twilio's would: the conversation's ChatServiceSid (the service it was made in) and
the author's ParticipantSid.

Seeding goes through the sandbox's REST API (`RestSeeder`: a stack in another process, its URL in the
state file as conversations_url) or straight into a sandbox this process runs (`InProcessSeeder`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Protocol

BUSINESS_NUMBER = "+15555550000"
AGENT_ATTRIBUTES = {"role": "agent"}


@dataclass(frozen=True)
class Chat:
    """One customer's SMS conversation, and its agent when one answers there."""

    customer: str  # the customer's number: messaging_binding.address
    conversation_sid: str
    service_sid: str  # the ChatServiceSid the webhooks carry
    customer_participant: str
    agent: str | None = None  # the agent's chat identity
    agent_participant: str | None = None


class Seeder(Protocol):
    def sms_conversation(self, customer: str, agent: str | None = None) -> Chat: ...


class InProcessSeeder:
    """Seeds a ConversationsSandbox that this process runs."""

    def __init__(self, sandbox: Any, business_number: str = BUSINESS_NUMBER):
        self.sandbox, self.business_number = sandbox, business_number

    def sms_conversation(self, customer: str, agent: str | None = None) -> Chat:
        sid = self.sandbox.add_conversation(friendly_name=f"SMS with {customer}")
        service = self.sandbox.store.conversations[sid].service_sid
        mine = self.sandbox.add_participant(sid, address=customer, proxy_address=self.business_number)
        theirs = None
        if agent:
            theirs = self.sandbox.add_participant(sid, identity=agent, attributes=AGENT_ATTRIBUTES)
        return Chat(customer, sid, service, mine, agent, theirs)


class RestSeeder:
    """Seeds the sandbox over its REST API (POST /v1/Conversations, then …/Participants), as an
    operator's code would make a conversation in Twilio."""

    def __init__(
        self, base_url: str, account_sid: str, auth_token: str, business_number: str = BUSINESS_NUMBER
    ):
        import urllib3

        self.base_url = base_url.rstrip("/")
        self.business_number = business_number
        self.headers = urllib3.make_headers(basic_auth=f"{account_sid}:{auth_token}")
        self.pool = urllib3.PoolManager(maxsize=4, retries=False)

    def _post(self, path: str, fields: dict[str, str]) -> dict[str, Any]:
        from urllib.parse import urlencode

        response = self.pool.request(
            "POST",
            self.base_url + path,
            body=urlencode(fields),
            headers={**self.headers, "Content-Type": "application/x-www-form-urlencoded"},
            timeout=10.0,
        )
        if response.status != 201:
            raise RuntimeError(f"POST {path}: HTTP {response.status} {response.data[:200]!r}")
        answer: dict[str, Any] = response.json()
        return answer

    def sms_conversation(self, customer: str, agent: str | None = None) -> Chat:
        made = self._post("/v1/Conversations", {"FriendlyName": f"SMS with {customer}"})
        sid, service = str(made["sid"]), str(made["chat_service_sid"])
        participants = f"/v1/Conversations/{sid}/Participants"
        mine = self._post(
            participants,
            {"MessagingBinding.Address": customer, "MessagingBinding.ProxyAddress": self.business_number},
        )
        theirs = None
        if agent:
            fields = {"Identity": agent, "Attributes": json.dumps(AGENT_ATTRIBUTES)}
            theirs = str(self._post(participants, fields)["sid"])
        return Chat(customer, sid, service, str(mine["sid"]), agent, theirs)


def message_params(
    chat: Chat,
    *,
    account_sid: str,
    message_sid: str,
    body: str,
    index: int,
    by_agent: bool = False,
    date_created: str = "2026-11-21T10:00:00.000Z",
) -> list[tuple[str, str]]:
    """onMessageAdded as Twilio sends it for a message in `chat`: by the customer (an SMS: Source API,
    as twilio-notes.md has it for a binding) or by its agent (chat: Source SDK, with ClientIdentity)."""
    if by_agent and not (chat.agent and chat.agent_participant):
        raise ValueError(f"{chat.conversation_sid} has no agent")
    author = chat.agent if by_agent else chat.customer
    participant = chat.agent_participant if by_agent else chat.customer_participant
    params = [
        ("EventType", "onMessageAdded"),
        ("AccountSid", account_sid),
        ("ChatServiceSid", chat.service_sid),
        ("ConversationSid", chat.conversation_sid),
        ("MessageSid", message_sid),
        ("Index", str(index)),
        ("DateCreated", date_created),
        ("Body", body),
        ("Author", str(author)),
        ("ParticipantSid", str(participant)),
        ("Attributes", "{}"),
        ("Source", "SDK" if by_agent else "API"),
        ("RetryCount", "0"),
    ]
    return params + ([("ClientIdentity", str(author))] if by_agent else [])
