"""Settings, read from the function's environment once and validated once.

`Settings.from_env` takes a mapping (not `os.environ` directly) so that the core never reads the
environment itself; the runtime hands in `os.environ` at cold start.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TypeVar
from urllib.parse import urlsplit

from memory_bridge.domain.redaction import KINDS, RedactionRules, parse_kinds, parse_mode

T = TypeVar("T")

STORE_ID_PATTERN = re.compile(r"^mem_(store|service)_[0-7][0-9a-z]{25}$")
# The Memory API's pattern for an observation's `source` (ObservationCore.source).
SOURCE_PATTERN = re.compile(r"^[a-zA-Z0-9 _.-]+$")
ID_TYPE_PATTERN = re.compile(r"^[A-Za-z0-9_.-]{2,30}$")
TRAIT_GROUP_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,64}$")

DEFAULT_MEMORY_API_BASE_URL = "https://memory.twilio.com"
DEFAULT_OBSERVATION_SOURCE = "twilio-conversations"


class ConfigError(ValueError):
    """A setting is missing or invalid. The message names the variable and the rule."""


@dataclass(frozen=True)
class Settings:
    memory_store_id: str
    credentials_secret: str
    dead_letter_queue_url: str
    idempotency_table: str
    memory_api_base_url: str = DEFAULT_MEMORY_API_BASE_URL
    public_webhook_url: str | None = None
    observation_source: str = DEFAULT_OBSERVATION_SOURCE
    # idType for authors that are neither phone, WhatsApp nor email (chat identities).
    chat_id_type: str = "chat_identity"
    profile_trait_group: str = "Contact"
    agent_identities: frozenset[str] = frozenset()
    profile_cache_ttl_seconds: float = 900.0
    # Twilio waits 5 s; the webhook aims to answer within this, queue write included.
    webhook_budget_seconds: float = 4.0
    memory_connect_timeout_seconds: float = 1.0
    memory_read_timeout_seconds: float = 2.5
    # The ledger record of each MessageSid must outlive its envelope on the queue (SQS keeps 14 days).
    idempotency_ttl_seconds: int = 15 * 24 * 3600
    # A signature mismatch or a 401 re-reads the secret at most this often (token rotation).
    secret_refresh_interval_seconds: float = 5.0
    # Sensitive numbers replaced (or whole messages skipped) before anything leaves the webhook.
    redaction: RedactionRules = field(default_factory=RedactionRules)

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        def required(name: str) -> str:
            value = env.get(name, "").strip()
            if not value:
                raise ConfigError(f"{name} is required but not set")
            return value

        def optional(name: str) -> str | None:
            value = env.get(name, "").strip()
            return value or None

        def number(name: str, default: float, low: float, high: float) -> float:
            raw = optional(name)
            if raw is None:
                return default
            try:
                value = float(raw)
            except ValueError:
                raise ConfigError(f"{name} must be a number, got {raw!r}") from None
            if not low <= value <= high:
                raise ConfigError(f"{name} must be between {low:g} and {high:g}, got {raw}")
            return value

        store_id = required("MEMORY_STORE_ID")
        if not STORE_ID_PATTERN.match(store_id):
            raise ConfigError(
                "MEMORY_STORE_ID must look like mem_store_<26 chars> "
                f"(pattern {STORE_ID_PATTERN.pattern}), got {store_id!r}"
            )
        base_url = (optional("MEMORY_API_BASE_URL") or DEFAULT_MEMORY_API_BASE_URL).rstrip("/")
        _require_http_url("MEMORY_API_BASE_URL", base_url)
        public_url = optional("PUBLIC_WEBHOOK_URL")
        if public_url is not None:
            _require_http_url("PUBLIC_WEBHOOK_URL", public_url)
        source = optional("OBSERVATION_SOURCE") or DEFAULT_OBSERVATION_SOURCE
        if len(source) > 100 or not SOURCE_PATTERN.match(source):
            raise ConfigError(
                f"OBSERVATION_SOURCE must be 1-100 characters matching {SOURCE_PATTERN.pattern}, "
                f"got {source!r}"
            )
        chat_id_type = optional("CHAT_ID_TYPE") or "chat_identity"
        if not ID_TYPE_PATTERN.match(chat_id_type):
            raise ConfigError(f"CHAT_ID_TYPE must match {ID_TYPE_PATTERN.pattern}, got {chat_id_type!r}")
        trait_group = optional("PROFILE_TRAIT_GROUP") or "Contact"
        if not TRAIT_GROUP_PATTERN.match(trait_group):
            raise ConfigError(
                f"PROFILE_TRAIT_GROUP must match {TRAIT_GROUP_PATTERN.pattern}, got {trait_group!r}"
            )

        def parsed(name: str, default: str, parse: Callable[[str], T]) -> T:
            try:
                return parse(optional(name) or default)
            except ValueError as error:
                raise ConfigError(f"{name} {error}") from None

        redaction = RedactionRules(
            kinds=parsed("REDACT_SENSITIVE_NUMBERS", ",".join(KINDS), parse_kinds),
            mode=parsed("REDACT_MODE", "mask", parse_mode),
        )
        agents = frozenset(
            part.strip().lower() for part in (optional("AGENT_IDENTITIES") or "").split(",") if part.strip()
        )
        return cls(
            memory_store_id=store_id,
            credentials_secret=required("TWILIO_CREDENTIALS_SECRET"),
            dead_letter_queue_url=required("DEAD_LETTER_QUEUE_URL"),
            idempotency_table=required("IDEMPOTENCY_TABLE"),
            memory_api_base_url=base_url,
            public_webhook_url=public_url,
            observation_source=source,
            chat_id_type=chat_id_type,
            profile_trait_group=trait_group,
            agent_identities=agents,
            profile_cache_ttl_seconds=number("PROFILE_CACHE_TTL_SECONDS", 900.0, 0, 86400),
            webhook_budget_seconds=number("WEBHOOK_BUDGET_SECONDS", 4.0, 1.0, 4.5),
            memory_connect_timeout_seconds=number("MEMORY_API_CONNECT_TIMEOUT", 1.0, 0.05, 5),
            memory_read_timeout_seconds=number("MEMORY_API_READ_TIMEOUT", 2.5, 0.05, 10),
            secret_refresh_interval_seconds=number("SECRET_REFRESH_INTERVAL_SECONDS", 5.0, 0, 300),
            idempotency_ttl_seconds=int(number("IDEMPOTENCY_TTL_SECONDS", 15 * 24 * 3600, 60, 30 * 86400)),
            redaction=redaction,
        )


def _require_http_url(name: str, value: str) -> None:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(f"{name} must be an absolute http(s) URL, got {value!r}")
