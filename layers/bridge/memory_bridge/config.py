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

from memory_bridge.api_urls import MEMORY_API_URL_PATTERN as MEMORY_API_URL_PATTERN
from memory_bridge.api_urls import require_api_url
from memory_bridge.domain.attribution import MAX_BASE_SOURCE
from memory_bridge.domain.profile_limit import DEFAULT_LIMIT, ProfileLimit, parse_limit, parse_policy
from memory_bridge.domain.redaction import KINDS, RedactionRules, parse_kinds, parse_mode
from memory_bridge.domain.speakers import AGENT_MESSAGES, AgentMessages, AgentRules

T = TypeVar("T")

STORE_ID_PATTERN = re.compile(r"^mem_(store|service)_[0-7][0-9a-z]{25}$")
SOURCE_PATTERN = re.compile(r"^[a-zA-Z0-9 _.-]+$")  # Memory's for an observation's `source`
ID_TYPE_PATTERN = re.compile(r"^[A-Za-z0-9_.-]{2,30}$")
TRAIT_GROUP_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,64}$")

DEFAULT_MEMORY_API_BASE_URL = "https://memory.twilio.com"
DEFAULT_CONVERSATIONS_API_BASE_URL = "https://conversations.twilio.com"
DEFAULT_OBSERVATION_SOURCE = "twilio-conversations"
# The ledger record of each MessageSid must outlive its envelope on the queue (SQS keeps 14 days).
DEFAULT_LEDGER_TTL_SECONDS = 15 * 24 * 3600


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
    # Who is an agent among chat participants, and where agents' and the brand's words go.
    speakers: SpeakerSettings = field(default_factory=lambda: SpeakerSettings())
    profile_cache_ttl_seconds: float = 900.0
    # Twilio waits 5 s; the webhook aims to answer within this, queue write included.
    webhook_budget_seconds: float = 4.0
    memory_connect_timeout_seconds: float = 1.0
    memory_read_timeout_seconds: float = 2.5
    idempotency_ttl_seconds: int = DEFAULT_LEDGER_TTL_SECONDS
    # A signature mismatch or a 401 re-reads the secret at most this often (token rotation).
    secret_refresh_interval_seconds: float = 5.0
    # Sensitive numbers replaced (or whole messages skipped) before anything leaves the webhook.
    redaction: RedactionRules = field(default_factory=RedactionRules)
    profile_limit: ProfileLimit = field(default_factory=ProfileLimit)

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        read = _Reader(env)
        public_url = read.optional("PUBLIC_WEBHOOK_URL")
        if public_url is not None:
            _require_http_url("PUBLIC_WEBHOOK_URL", public_url)
        return cls(
            memory_store_id=_store_id(read.required("MEMORY_STORE_ID")),
            credentials_secret=read.required("TWILIO_CREDENTIALS_SECRET"),
            dead_letter_queue_url=read.required("DEAD_LETTER_QUEUE_URL"),
            idempotency_table=read.required("IDEMPOTENCY_TABLE"),
            memory_api_base_url=_api_base_url(read, "MEMORY_API_BASE_URL", DEFAULT_MEMORY_API_BASE_URL),
            public_webhook_url=public_url,
            observation_source=_observation_source(read),
            chat_id_type=read.matching("CHAT_ID_TYPE", "chat_identity", ID_TYPE_PATTERN),
            profile_trait_group=read.matching("PROFILE_TRAIT_GROUP", "Contact", TRAIT_GROUP_PATTERN),
            speakers=SpeakerSettings.read(read),
            profile_cache_ttl_seconds=read.number("PROFILE_CACHE_TTL_SECONDS", 900.0, 0, 86400),
            webhook_budget_seconds=read.number("WEBHOOK_BUDGET_SECONDS", 4.0, 1.0, 4.5),
            memory_connect_timeout_seconds=read.number("MEMORY_API_CONNECT_TIMEOUT", 1.0, 0.05, 5),
            memory_read_timeout_seconds=read.number("MEMORY_API_READ_TIMEOUT", 2.5, 0.05, 10),
            secret_refresh_interval_seconds=read.number("SECRET_REFRESH_INTERVAL_SECONDS", 5.0, 0, 300),
            idempotency_ttl_seconds=_ledger_ttl(read),
            redaction=_redaction(read),
            profile_limit=_profile_limit(read),
        )


@dataclass(frozen=True)
class SpeakerSettings:
    """What tells who spoke and where their words go: for the webhook and the replay alike."""

    agent_rules: AgentRules = field(default_factory=AgentRules)
    agent_messages: AgentMessages = "attribute"
    conversations_api_base_url: str = DEFAULT_CONVERSATIONS_API_BASE_URL
    participant_cache_ttl_seconds: float = 300.0

    @classmethod
    def read(cls, read: _Reader) -> SpeakerSettings:
        return cls(
            agent_rules=_agent_rules(read),
            agent_messages=read.parsed("AGENT_MESSAGES", "attribute", _agent_messages),
            conversations_api_base_url=_api_base_url(
                read, "CONVERSATIONS_API_BASE_URL", DEFAULT_CONVERSATIONS_API_BASE_URL
            ),
            participant_cache_ttl_seconds=read.number("PARTICIPANT_CACHE_TTL_SECONDS", 300.0, 0, 3600),
        )


# The functions' variables a replay by hand must match (ReplaySettings.for_operator reads them):
# the CLI takes them from the stack, the local stack's state file or the shell.
REPLAY_VARIABLES = (
    "REDACT_SENSITIVE_NUMBERS",
    "REDACT_MODE",
    "IDEMPOTENCY_TTL_SECONDS",
    # Who spoke, for messages parked before the webhook knew (speakers): classified as it would have.
    "AGENT_MESSAGES",
    "AGENT_IDENTITIES",
    "AGENT_ATTRIBUTE",
    "OBSERVATION_SOURCE",
    "CHAT_ID_TYPE",
    "PROFILE_OBSERVATION_LIMIT",  # Memory's limit per profile: replay and backfill keep it as the webhook
    "PROFILE_FULL_POLICY",
)


@dataclass(frozen=True)
class ReplaySettings:
    """What the replay engine is built from, for the ReplayFunction and the CLI alike. The function has
    every variable; the CLI finds the queue, the table and the Memory client its own way (flags, the
    stack's outputs, the local stack), so it reads only what must match the stack (REPLAY_VARIABLES)."""

    redaction_kinds: frozenset[str] = frozenset(KINDS)
    # The whole rule (kinds and mode), for the backfill, which prepares messages as the webhook does.
    redaction: RedactionRules = field(default_factory=RedactionRules)
    profile_trait_group: str = "Contact"
    idempotency_ttl_seconds: int = DEFAULT_LEDGER_TTL_SECONDS
    # Envelopes parked against another store are replayed to this one (the function's own store).
    target_store: str | None = None
    dead_letter_queue_url: str | None = None
    idempotency_table: str | None = None
    memory_api_base_url: str = DEFAULT_MEMORY_API_BASE_URL
    credentials_secret: str | None = None
    speakers: SpeakerSettings = field(default_factory=lambda: SpeakerSettings())
    observation_source: str = DEFAULT_OBSERVATION_SOURCE
    chat_id_type: str = "chat_identity"
    profile_limit: ProfileLimit = field(default_factory=ProfileLimit)

    @classmethod
    def from_settings(cls, settings: Settings) -> ReplaySettings:
        return cls(
            profile_limit=settings.profile_limit,
            speakers=settings.speakers,
            observation_source=settings.observation_source,
            chat_id_type=settings.chat_id_type,
            redaction_kinds=settings.redaction.kinds,
            redaction=settings.redaction,
            profile_trait_group=settings.profile_trait_group,
            idempotency_ttl_seconds=settings.idempotency_ttl_seconds,
            target_store=settings.memory_store_id,
            dead_letter_queue_url=settings.dead_letter_queue_url,
            idempotency_table=settings.idempotency_table,
            memory_api_base_url=settings.memory_api_base_url,
            credentials_secret=settings.credentials_secret,
        )

    @classmethod
    def for_operator(cls, env: Mapping[str, str]) -> ReplaySettings:
        """The CLI's: REPLAY_VARIABLES from `env` (the stack, the local stack, the shell); no target."""
        read = _Reader(env)
        redaction = _redaction(read)
        return cls(
            redaction_kinds=redaction.kinds,
            redaction=redaction,
            profile_trait_group=read.matching("PROFILE_TRAIT_GROUP", "Contact", TRAIT_GROUP_PATTERN),
            idempotency_ttl_seconds=_ledger_ttl(read),
            speakers=SpeakerSettings.read(read),
            observation_source=_observation_source(read),
            chat_id_type=read.matching("CHAT_ID_TYPE", "chat_identity", ID_TYPE_PATTERN),
            profile_limit=_profile_limit(read),
        )


class _Reader:
    """Reads variables from a mapping; each error names the variable and the rule."""

    def __init__(self, env: Mapping[str, str]):
        self.env = env

    def optional(self, name: str) -> str | None:
        value = self.env.get(name, "").strip()
        return value or None

    def required(self, name: str) -> str:
        value = self.optional(name)
        if value is None:
            raise ConfigError(f"{name} is required but not set")
        return value

    def number(self, name: str, default: float, low: float, high: float) -> float:
        raw = self.optional(name)
        if raw is None:
            return default
        try:
            value = float(raw)
        except ValueError:
            raise ConfigError(f"{name} must be a number, got {raw!r}") from None
        if not low <= value <= high:
            raise ConfigError(f"{name} must be between {low:g} and {high:g}, got {raw}")
        return value

    def matching(self, name: str, default: str, pattern: re.Pattern[str]) -> str:
        value = self.optional(name) or default
        if not pattern.match(value):
            raise ConfigError(f"{name} must match {pattern.pattern}, got {value!r}")
        return value

    def parsed(self, name: str, default: str, parse: Callable[[str], T]) -> T:
        try:
            return parse(self.optional(name) or default)
        except ValueError as error:
            raise ConfigError(f"{name} {error}") from None


def _store_id(store_id: str) -> str:
    if not STORE_ID_PATTERN.match(store_id):
        raise ConfigError(
            "MEMORY_STORE_ID must look like mem_store_<26 chars> "
            f"(pattern {STORE_ID_PATTERN.pattern}), got {store_id!r}"
        )
    return store_id


def _api_base_url(read: _Reader, name: str, default: str) -> str:
    """Memory's or Conversations' base URL: both carry the credentials, so both follow one rule."""
    base_url = (read.optional(name) or default).rstrip("/")
    require_memory_api_url(name, base_url)
    return base_url


def require_memory_api_url(name: str, value: str) -> None:
    """Memory's (or Conversations') base URL, checked; `name` is where it came from, for the error."""
    try:
        require_api_url(name, value)
    except ValueError as error:
        raise ConfigError(str(error)) from None


def _agent_rules(read: _Reader) -> AgentRules:
    attribute = read.env.get("AGENT_ATTRIBUTE")  # set but empty: no attribute rule
    try:
        return AgentRules.parse(
            read.optional("AGENT_IDENTITIES") or "", "role=agent" if attribute is None else attribute
        )
    except ValueError as error:
        raise ConfigError(f"AGENT_ATTRIBUTE {error}") from None


def _agent_messages(value: str) -> AgentMessages:
    if value not in AGENT_MESSAGES:
        raise ValueError(f"must be one of {', '.join(AGENT_MESSAGES)}, got {value!r}")
    return value


def _observation_source(read: _Reader) -> str:
    source = read.optional("OBSERVATION_SOURCE") or DEFAULT_OBSERVATION_SOURCE
    if len(source) > MAX_BASE_SOURCE or not SOURCE_PATTERN.match(source):
        # Agents' and the brand's words carry it with "-agent" / "-brand": still within Memory's 100.
        raise ConfigError(
            f"OBSERVATION_SOURCE must be 1-{MAX_BASE_SOURCE} characters matching {SOURCE_PATTERN.pattern}, "
            f"got {source!r}"
        )
    return source


def _profile_limit(read: _Reader) -> ProfileLimit:
    limit = read.parsed("PROFILE_OBSERVATION_LIMIT", str(DEFAULT_LIMIT), parse_limit)
    return ProfileLimit(limit, read.parsed("PROFILE_FULL_POLICY", "keep-latest", parse_policy))


def _ledger_ttl(read: _Reader) -> int:
    return int(read.number("IDEMPOTENCY_TTL_SECONDS", DEFAULT_LEDGER_TTL_SECONDS, 60, 30 * 86400))


def _redaction(read: _Reader) -> RedactionRules:
    return RedactionRules(
        kinds=read.parsed("REDACT_SENSITIVE_NUMBERS", ",".join(KINDS), parse_kinds),
        mode=read.parsed("REDACT_MODE", "mask", parse_mode),
    )


def _require_http_url(name: str, value: str) -> None:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(f"{name} must be an absolute http(s) URL, got {value!r}")
