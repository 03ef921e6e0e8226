"""Who wrote a message, as a Memory identifier: its type picked from the author's address. Pure."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

E164 = re.compile(r"^\+[1-9][0-9]{6,14}$")
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
WHATSAPP_PREFIX = "whatsapp:"
SYSTEM_AUTHOR = "system"
# The idTypes `identifier_for` picks, each with the normalization (IdentifierConfig.normalization in
# Memory's identity-resolution settings) that matches the value it sends: phone numbers in E.164,
# WhatsApp as the bare number (trimmed), emails lower-cased. A Lookup or profile creation with an
# idType the store's settings lack is refused, so `memory-bridge setup` adds whichever is missing.
NORMALIZATIONS = {"phone": "phone", "whatsapp": "trim", "email": "email"}


@dataclass(frozen=True)
class Identifier:
    id_type: str
    value: str

    def to_json(self) -> dict[str, str]:
        return {"idType": self.id_type, "value": self.value}


@dataclass(frozen=True)
class NotACustomer:
    """The author is not a customer: a system message, or an identity configured as an agent."""

    reason: Literal["system", "agent"]


def identifier_for(
    author: str | None, *, chat_id_type: str, agent_identities: frozenset[str]
) -> Identifier | NotACustomer:
    """Pick the idType from the author's address: E.164 → phone, whatsapp:+… → whatsapp, email → email."""
    value = (author or "").strip()
    if not value or value.lower() == SYSTEM_AUTHOR:
        return NotACustomer("system")
    if value.lower() in agent_identities:
        return NotACustomer("agent")
    if value.lower().startswith(WHATSAPP_PREFIX):
        # Sent as the bare E.164 number; the store's whatsapp identifier trims it.
        return Identifier("whatsapp", value[len(WHATSAPP_PREFIX) :].strip())
    if E164.match(value):
        return Identifier("phone", value)
    if EMAIL.match(value):
        return Identifier("email", value)
    return Identifier(chat_id_type, value)


def identifier_types(chat_id_type: str) -> dict[str, str]:
    """Every idType the bridge may send, with its normalization: the three above and the chat
    identities' (trimmed: an identity is matched as it is, case included)."""
    return {**NORMALIZATIONS, chat_id_type: NORMALIZATIONS.get(chat_id_type, "trim")}
