"""Who wrote a message, as a Memory identifier: its type picked from the author's address. Pure."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

E164 = re.compile(r"^\+[1-9][0-9]{6,14}$")
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
WHATSAPP_PREFIX = "whatsapp:"
SYSTEM_AUTHOR = "system"


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
