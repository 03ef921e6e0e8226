"""A store's identity-resolution settings in the Memory sandbox, as `twilio-memory-v1.yaml` describes them
(IdentityResolutionSettingsCore, IdentifierConfig), with the normalizations they name.

A new store starts with the contract's example settings (email, whatsapp, phone): what a store has
before `memory-bridge setup` adds the bridge's other types (chat_identity). The defaults of a real new
store are unconfirmed (twilio-notes.md); a sandbox that knew every type would hide a missing one.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

NORMALIZATIONS = ("phone", "email", "trim", "none")
CONFIG_KEYS = {
    "idType",
    "matchingAlgo",
    "matchingThreshold",
    "limit",
    "limitPolicy",
    "enforceUnique",
    "normalization",
}
# The contract's example (GET and PUT): the types a new store knows, with their normalization.
DEFAULT_ID_TYPES: dict[str, str] = {"email": "email", "whatsapp": "trim", "phone": "phone"}


def normalize(normalization: str, value: str) -> str:
    """IdentifierConfig.normalization: phone → E.164 (US numbers without +1 get it), email → lower-case
    without spaces, trim → without surrounding spaces, none → as it is."""
    if normalization == "none":
        return value
    text = value.strip()
    if normalization == "phone":
        digits = re.sub(r"\D", "", text)
        if text.startswith("+"):
            return "+" + digits
        return "+1" + digits if len(digits) == 10 else "+" + digits
    if normalization == "email":
        return re.sub(r"\s", "", text).lower()
    return text


def identifier_config(id_type: str, normalization: str) -> dict[str, Any]:
    return {"idType": id_type, "matchingAlgo": "exact", "normalization": normalization, "enforceUnique": True}


@dataclass
class IdentitySettings:
    configs: list[dict[str, Any]] = field(default_factory=list)
    rules: list[str] = field(default_factory=list)
    version: int = 1

    @classmethod
    def of(cls, id_types: Mapping[str, str] | Iterable[str]) -> IdentitySettings:
        """Settings that know `id_types` (a name → normalization mapping, or names: normalized as
        the contract's example does, else trimmed)."""
        pairs = (
            id_types.items()
            if isinstance(id_types, Mapping)
            else ((t, DEFAULT_ID_TYPES.get(t, "trim")) for t in id_types)
        )
        configs = [identifier_config(name, normalization) for name, normalization in pairs]
        return cls(configs, [c["idType"] for c in configs])

    def knows(self, id_type: str) -> bool:
        return any(c["idType"] == id_type for c in self.configs)

    def normalization(self, id_type: str) -> str:
        config = next((c for c in self.configs if c["idType"] == id_type), {})
        return str(config.get("normalization", "trim"))

    def add(self, id_types: Mapping[str, str] | Iterable[str]) -> None:
        """Add the types not known yet (a test helper: Memory itself changes them through a PUT)."""
        extra = IdentitySettings.of(id_types)
        for config in extra.configs:
            if not self.knows(config["idType"]):
                self.configs.append(config)
                self.rules.append(config["idType"])
        self.version += 1

    def to_json(self) -> dict[str, Any]:
        return {"identifierConfigs": self.configs, "matchingRules": self.rules, "version": self.version}

    def etag(self) -> str:
        return base64.urlsafe_b64encode(json.dumps(self.to_json(), sort_keys=True).encode()).decode()[:64]


def parse_settings(body: Any) -> IdentitySettings:
    """An IdentityResolutionSettingsCore body; ValueError naming the rule it breaks."""
    if not isinstance(body, dict) or set(body) - {"identifierConfigs", "matchingRules"}:
        raise ValueError("body must hold identifierConfigs and matchingRules only")
    configs, rules = body.get("identifierConfigs"), body.get("matchingRules")
    if not isinstance(configs, list) or not 1 <= len(configs) <= 15:
        raise ValueError("identifierConfigs must hold 1..15 items")
    if not isinstance(rules, list) or not 1 <= len(rules) <= 15:
        raise ValueError("matchingRules must hold 1..15 items")
    for config in configs:
        _check_config(config)
    names = [c["idType"] for c in configs]
    if len(set(names)) != len(names):
        raise ValueError("each idType may appear once in identifierConfigs")
    for rule in rules:
        if not isinstance(rule, str) or len(rule) > 30 or rule not in names:
            raise ValueError(f"matchingRules entry {rule!r} must name a configured idType")
    return IdentitySettings([dict(c) for c in configs], list(rules))


def _check_config(config: Any) -> None:
    if not isinstance(config, dict) or set(config) - CONFIG_KEYS:
        raise ValueError("an IdentifierConfig has unknown properties")
    id_type = config.get("idType")
    if not isinstance(id_type, str) or not 2 <= len(id_type) <= 30:
        raise ValueError("idType must be 2..30 characters")
    if config.get("normalization", "trim") not in NORMALIZATIONS:
        raise ValueError(f"normalization must be one of {', '.join(NORMALIZATIONS)}")
    if config.get("matchingAlgo", "exact") not in ("exact", "fuzzy"):
        raise ValueError("matchingAlgo must be exact or fuzzy")
    if not isinstance(config.get("enforceUnique", True), bool):
        raise ValueError("enforceUnique must be a boolean")
    if config.get("limitPolicy", "fifo") not in ("fifo", "lifo"):
        raise ValueError("limitPolicy must be fifo or lifo")
    threshold, limit = config.get("matchingThreshold", 75), config.get("limit", 100)
    if not isinstance(threshold, int) or not 50 <= threshold <= 99:
        raise ValueError("matchingThreshold must be 50..99")
    if not isinstance(limit, int) or not 1 <= limit <= 100:
        raise ValueError("limit must be 1..100")
