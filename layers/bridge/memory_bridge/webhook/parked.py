"""The replay's ChangeReplayer (webhook/changes.py), built from the replay's ports: parked edits and
removals run through the webhook's own flows, never parking again (a failure leaves the envelope
queued for a later run)."""

from __future__ import annotations

import time
from typing import Any

from memory_bridge.config import ReplaySettings
from memory_bridge.profiles import ProfileCache
from memory_bridge.room import Room
from memory_bridge.webhook.answers import stdlib_logger
from memory_bridge.webhook.changes import ParkedChanges, Uncounted
from memory_bridge.webhook.delivery import DeliveryRules
from memory_bridge.webhook.edits import Edits
from memory_bridge.webhook.lifecycle import Removals


def parked_changes(settings: ReplaySettings, memory: Any, ledger: Any, queue: Any, room: Room | None) -> Any:
    """Parked edits and removals (issue 22) run through the webhook's own flows; None when the Memory
    client or the queue given cannot do what they need (a test's or a bench's stand-in)."""
    if not (hasattr(memory, "update_observation") and hasattr(queue, "park")):
        return None
    profiles, metrics, logger = ProfileCache(ttl=3600), Uncounted(), stdlib_logger("memory_bridge.replay")

    def flows(store_id: str) -> tuple[Edits, Removals]:
        rules = DeliveryRules(
            store_id,
            settings.observation_source,
            settings.profile_trait_group,
            settings.chat_id_type,
            settings.speakers.agent_messages,
            settings.redaction,
        )
        ports = (memory, memory, profiles, queue, ledger, metrics, logger, time.time, time.sleep, room)
        edits = Edits(rules, *ports, park_unfinished=False)
        removals = Removals(store_id, memory, memory, profiles, ledger, metrics, logger, time.time, room)
        return edits, removals

    return ParkedChanges(flows, time.monotonic, settings.target_store)
