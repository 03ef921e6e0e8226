"""Wiring for the Lambda: settings read once from the environment, adapters built once per container.

Kept apart from the core so that the core never reads the environment; `reset()` lets tests and
the local stack rebuild after changing the environment.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import EphemeralMetrics

from memory_bridge.adapters.aws_json import lean_dynamodb_client, lean_sqs_client
from memory_bridge.adapters.conversations_api import ConversationsApiClient
from memory_bridge.adapters.dead_letters import DeadLetterQueue, SqsDeadLetterQueue
from memory_bridge.adapters.ledger_table import LedgerTable, replay_dynamodb_client
from memory_bridge.adapters.memory_api import MemoryApiClient
from memory_bridge.adapters.profile_counts import ProfileCountTable
from memory_bridge.adapters.secrets import CachedCredentials, secrets_manager_fetcher
from memory_bridge.config import ConfigError, ReplaySettings, Settings, SpeakerSettings
from memory_bridge.domain.profile_limit import ProfileLimit, bridge_sources
from memory_bridge.profiles import ProfileCache
from memory_bridge.room import Room
from memory_bridge.speaking import RosterCache, SpeakerRules, Speakers
from memory_bridge.webhook import WebhookService
from memory_bridge.webhook.delivery import DeliveryRules

if TYPE_CHECKING:
    from memory_bridge.ports import CredentialsSource, ObservationEditor, ReplayMemory, ReplayQueue
    from memory_bridge.replay import ReplayEngine
    from memory_bridge.replay.context import Progress

# The metrics' `service` dimension and the logs' `service` field. The template sets it to the stack's
# name, so that two stacks in one account (and region) never add up in one metric: their alarms and
# dashboards read only their own. Outside Lambda (tests, the CLI) the defaults stand.
SERVICE_NAME = os.environ.get("POWERTOOLS_SERVICE_NAME") or "memory-bridge"
METRICS_NAMESPACE = os.environ.get("POWERTOOLS_METRICS_NAMESPACE") or "MemoryBridge"
logger = Logger(service=SERVICE_NAME)
metrics = Metrics(namespace=METRICS_NAMESPACE, service=SERVICE_NAME)
# The ReplayFunction's: Metrics instances share one set of metrics per process, and the local stack
# runs the scheduled replay beside the webhook; an EphemeralMetrics keeps the two apart.
replay_metrics = EphemeralMetrics(namespace=METRICS_NAMESPACE, service=SERVICE_NAME)

_lock = threading.Lock()
_service: WebhookService | None = None


def build_webhook_service(settings: Settings) -> WebhookService:
    credentials = CachedCredentials(
        secrets_manager_fetcher(settings.credentials_secret),
        min_refresh_interval=settings.secret_refresh_interval_seconds,
    )
    memory = MemoryApiClient(
        settings.memory_api_base_url,
        credentials,
        connect_timeout=settings.memory_connect_timeout_seconds,
        read_timeout=settings.memory_read_timeout_seconds,
    )
    ledger = LedgerTable(
        settings.idempotency_table, settings.idempotency_ttl_seconds, client_factory=lean_dynamodb_client
    )
    return WebhookService(
        rules=DeliveryRules(
            store_id=settings.memory_store_id,
            source=settings.observation_source,
            trait_group=settings.profile_trait_group,
            chat_id_type=settings.chat_id_type,
            agent_messages=settings.speakers.agent_messages,
            redaction=settings.redaction,
        ),
        public_webhook_url=settings.public_webhook_url,
        budget_seconds=settings.webhook_budget_seconds,
        credentials=credentials,
        memory=memory,
        # The same client: its edits and removals share the connection the posts use.
        editor=memory,
        profiles=ProfileCache(ttl=settings.profile_cache_ttl_seconds),
        # The failure path's queue client costs nothing to build (no boto3): made on first use all the same.
        dead_letters=SqsDeadLetterQueue(settings.dead_letter_queue_url, client_factory=lean_sqs_client),
        ledger=ledger,
        room=build_room(settings.profile_limit, ledger, memory, settings.observation_source),
        metrics=metrics,
        logger=logger,
        speakers=build_speakers(
            settings.speakers,
            settings.chat_id_type,
            credentials,
            connect_timeout=settings.memory_connect_timeout_seconds,
            read_timeout=settings.memory_read_timeout_seconds,
        ),
    )


def build_room(
    limit: ProfileLimit, ledger: LedgerTable, editor: ObservationEditor | None, source: str
) -> Room | None:
    """Memory's limit per profile (issue 22): the count in the ledger's table, the oldest deleted
    through `editor`; None when PROFILE_OBSERVATION_LIMIT is 0 (no count, no extra call)."""
    if not limit.on:
        return None
    return Room(limit, ProfileCountTable(ledger), editor, bridge_sources(source))


def build_speakers(
    settings: SpeakerSettings,
    chat_id_type: str,
    credentials: CredentialsSource,
    *,
    connect_timeout: float = 3.0,
    read_timeout: float = 10.0,
    base_url: str | None = None,
) -> Speakers:
    """The Conversations API client and the container's cache of participants, for either function
    and the CLI (`base_url` overrides the settings' for the CLI's --conversations-api-url)."""
    return Speakers(
        ConversationsApiClient(
            base_url or settings.conversations_api_base_url,
            credentials,
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
        ),
        RosterCache(ttl=settings.participant_cache_ttl_seconds),
        SpeakerRules(settings.agent_rules, settings.agent_messages, chat_id_type),
    )


def webhook_service() -> WebhookService:
    """The container's one service; raises ConfigError naming the variable when a setting is bad."""
    global _service
    if _service is None:
        with _lock:
            if _service is None:
                _service = build_webhook_service(Settings.from_env(os.environ))
    return _service


def warm_up(secret_timeout: float = 1.5) -> None:
    """At init, where Lambda gives a full vCPU: build the service (clients, pool) and read the secret.

    The queue's client is left for the failure path that needs it (it is cheap to build).

    The read is time-boxed so that init plus the first answer stay inside Twilio's 5 s; if it fails
    or is slow, the first call reads it again. A configuration error is left for the first call to
    answer (500, naming the variable), so it is not raised here.
    """
    try:
        service = webhook_service()
    except Exception:  # noqa: BLE001 - ConfigError and the like: reported by the first call
        return
    ledger = service.ledger
    if isinstance(ledger, LedgerTable):
        try:
            ledger.client  # noqa: B018 - built here, at full speed, not in the first call
        except Exception as error:  # noqa: BLE001 - no AWS credentials yet: the first call answers 503
            logger.warning("ledger client not built at init", extra={"error": type(error).__name__})
    try:
        service.credentials.get(timeout=secret_timeout)
    except Exception as error:  # noqa: BLE001 - the first call reads it again, within its own budget
        logger.warning(
            "secret not read at init; the first call reads it", extra={"error": type(error).__name__}
        )


def after_restore(secret_timeout: float = 1.0) -> None:
    """SnapStart: what the snapshot holds that must be fresh in each restored environment.

    Its sockets (Memory's pool, the ledger's and the queue's) were open when the snapshot was taken and
    are dead now: closed here, so the first call opens new ones instead of finding out by a failure.
    The secret may have rotated since the snapshot: read again, time-boxed (the cached one stands on
    failure). Nothing else is unique per environment: request ids come from Lambda, not from init.
    """
    service = _service
    if service is None:
        return
    clients = (
        service.memory,
        service.speakers.directory,
        _built_client(service.ledger),
        _built_client(service.dead_letters),
    )
    for client in clients:
        reset_connections = getattr(getattr(client, "json", client), "reset_connections", None)
        if callable(reset_connections):
            reset_connections()
    try:
        service.credentials.refresh(min_interval=0, timeout=secret_timeout)
    except Exception as error:  # noqa: BLE001 - the snapshot's secret stands; a mismatch reads it again
        logger.warning("secret not read after restore", extra={"error": type(error).__name__})


def _built_client(adapter: object) -> object:
    return getattr(adapter, "_client", None)


def register_snapstart_hooks() -> bool:
    """Register `after_restore` with Lambda's runtime when it offers SnapStart hooks (python3.12+);
    elsewhere (SnapStart off changes nothing: the hook only runs after a restore) there is no such
    module. True when registered."""
    try:
        from snapshot_restore_py import register_after_restore  # type: ignore[import-not-found]
    except ImportError:
        return False
    register_after_restore(after_restore)
    return True


def built_service() -> WebhookService | None:
    """The container's service if it has been built (None before, or after a configuration error)."""
    return _service


def reset() -> None:
    """Forget the built service (tests and the local stack change the environment)."""
    global _service
    with _lock:
        _service = None


def build_replay_engine(
    settings: ReplaySettings,
    *,
    queue: ReplayQueue | None = None,
    ledger_client_factory: Callable[[], Any] | None = None,
    memory: ReplayMemory | None = None,
    speakers: Speakers | None = None,
    progress: Progress | None = None,
) -> ReplayEngine:
    """The one place the replay engine is built, for the ReplayFunction and `memory-bridge dlq replay`.

    Both get the same ledger TTL, redaction and target store from `settings`; the CLI passes in
    the queue, the ledger's client and the Memory client it found (flags, the stack's outputs, the
    local stack), the function takes the defaults built from its environment.
    """
    from memory_bridge.replay import ReplayEngine  # not on the webhook's cold-start path
    from memory_bridge.webhook.parked import parked_changes

    if queue is None:
        queue = DeadLetterQueue(_needed(settings.dead_letter_queue_url, "DEAD_LETTER_QUEUE_URL"))
    table = _needed(settings.idempotency_table, "IDEMPOTENCY_TABLE")
    if memory is None or speakers is None:
        secret = _needed(settings.credentials_secret, "TWILIO_CREDENTIALS_SECRET")
        credentials = CachedCredentials(secrets_manager_fetcher(secret))
        memory = memory or MemoryApiClient(
            settings.memory_api_base_url, credentials, connect_timeout=3.0, read_timeout=15.0
        )
        speakers = speakers or build_speakers(settings.speakers, settings.chat_id_type, credentials)
    ledger = LedgerTable(
        table,
        settings.idempotency_ttl_seconds,
        client_factory=ledger_client_factory or replay_dynamodb_client,
    )
    # The replay's client makes room too (List, DELETE); a Memory without those posts unlimited.
    editor = cast("ObservationEditor", memory) if hasattr(memory, "delete_observation") else None
    room = build_room(settings.profile_limit, ledger, editor, settings.observation_source)
    return ReplayEngine(
        queue,
        memory,
        ledger=ledger,
        room=room,
        # After a wrong MemoryStoreId was fixed and redeployed, what was parked against the old
        # store is replayed to the right one (the function's; the CLI's only with --store).
        target_store=settings.target_store,
        redaction_kinds=settings.redaction_kinds,
        speakers=speakers,
        source=settings.observation_source,
        progress=progress,
        changes=parked_changes(settings, memory, ledger, queue, room),
    )


def _needed(value: str | None, name: str) -> str:
    if not value:
        raise ConfigError(f"{name} is required but not set")
    return value


def replay_engine() -> ReplayEngine:
    """The ReplayFunction's engine, from its environment."""
    return build_replay_engine(ReplaySettings.from_settings(Settings.from_env(os.environ)))
