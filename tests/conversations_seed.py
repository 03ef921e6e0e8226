"""Twilio's side of a webhook, for the integration tests: the message's author is a participant of its
conversation in the Conversations sandbox, as it is in Twilio, so that the bridge reads the same
participants over the wire that Twilio would show it.

`seed_author` gives an author the participant Twilio would have: an E.164 number an SMS binding, a
`whatsapp:` address a WhatsApp binding (both with the business's number as proxy), anything else a
chat identity (with {"role": "agent"} when it is one of `agents`). A test that builds its own roster
seeds it itself, before sending.
"""

from __future__ import annotations

import base64
import contextlib
import re
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import parse_qsl

BUSINESS_NUMBER = "+15005550006"
E164 = re.compile(r"^\+[1-9][0-9]{6,14}$")
CONVERSATION_SID = re.compile(r"^CH[0-9a-fA-F]{32}$")
PARTICIPANT_SID = re.compile(r"^MB[0-9a-fA-F]{32}$")


def seed_author(
    conversations: Any,
    conversation_sid: str,
    author: str | None,
    participant_sid: str | None = None,
    agents: Iterable[str] = (),
) -> str | None:
    """The author's participant sid, added to the conversation when it has none yet."""
    who = (author or "").strip()
    if not who or who.lower() == "system" or not CONVERSATION_SID.match(conversation_sid):
        return None
    try:
        known = conversations.participants(conversation_sid)
    except Exception:  # noqa: BLE001 - the sandbox's 404: no such conversation yet (add_participant makes it)
        known = []
    for participant in known:
        if participant.sid == participant_sid or who in (participant.identity, participant.address):
            return str(participant.sid)
    sid = participant_sid if participant_sid and PARTICIPANT_SID.match(participant_sid) else None
    if who.lower().startswith("whatsapp:"):
        fields = {"address": who, "proxy_address": "whatsapp:" + BUSINESS_NUMBER}
    elif E164.match(who):
        fields = {"address": who, "proxy_address": BUSINESS_NUMBER}
    else:
        agent = who.lower() in {a.lower() for a in agents}
        fields = {"identity": who, "attributes": {"role": "agent"} if agent else None}
    return str(conversations.add_participant(conversation_sid, sid=sid, **fields))


MESSAGE_EVENTS = ("onMessageAdded", "onMessageUpdated", "onMessageRemoved")


def seed_event_author(conversations: Any, event: Mapping[str, Any], agents: Iterable[str] = ()) -> None:
    """Seed the author of the message (added, updated or removed) an API Gateway event carries
    (anything else: nothing)."""
    body = event.get("body")
    # Cheap for what is no message (forged bodies, measured by the hostile-request tests): no parse.
    if not isinstance(body, str) or len(body) > 300_000:
        return
    if not event.get("isBase64Encoded") and not any(kind in body for kind in MESSAGE_EVENTS):
        return
    try:
        text = base64.b64decode(body).decode() if event.get("isBase64Encoded") else body
    except (ValueError, UnicodeDecodeError):
        return
    fields = dict(parse_qsl(text, keep_blank_values=True))
    if fields.get("EventType") not in MESSAGE_EVENTS:
        return
    # A refused seed (hostile fields) leaves Twilio's side empty.
    with contextlib.suppress(Exception):
        seed_author(
            conversations,
            fields.get("ConversationSid", ""),
            fields.get("Author"),
            fields.get("ParticipantSid"),
            agents,
        )
