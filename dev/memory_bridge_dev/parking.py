"""Fill a dead-letter queue with envelopes, for the volume test and the replay benchmark (dev-only).

The envelopes are built by the product's own `new_envelope`, exactly as the webhook parks them.
"""

from __future__ import annotations

import socket
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from memory_bridge.domain.envelope import FailureRecord, new_envelope
from memory_bridge.domain.outcomes import Retryable


def envelope_bodies(store_id: str, profile_ids: Sequence[str], count: int, label: str) -> list[str]:
    """`count` one-observation envelopes, spread round-robin over `profile_ids`.

    Message i has MessageSid `IM{label}{i:06d}` and content `"{label} {i}"`.
    """
    failure = FailureRecord.from_outcome("post_observations", Retryable(503, 20503, "down"))
    now = datetime.now(UTC)
    return [
        new_envelope(
            kind="retryable",
            store_id=store_id,
            message_sid=f"IM{label}{i:06d}",
            conversation_sid="CH1",
            observations=[
                {
                    "content": f"{label} {i}",
                    "source": "twilio-conversations",
                    "occurredAt": "2026-11-21T10:00:00.000Z",
                }
            ],
            failure=failure,
            profile_id=profile_ids[i % len(profile_ids)],
            identifier=None,
            trait_group="Contact",
            now=now,
        ).to_json()
        for i in range(count)
    ]


def park_observations(
    sqs: Any, queue_url: str, store_id: str, profile_ids: Sequence[str], count: int, label: str
) -> None:
    """Park `count` one-observation messages, spread round-robin over `profile_ids` (envelope_bodies)."""
    bodies = envelope_bodies(store_id, profile_ids, count, label)
    for start in range(0, count, 10):
        entries = [{"Id": str(j), "MessageBody": body} for j, body in enumerate(bodies[start : start + 10])]
        answer = sqs.send_message_batch(QueueUrl=queue_url, Entries=entries)
        if answer.get("Failed"):
            raise RuntimeError(f"{len(answer['Failed'])} envelope(s) were not parked")


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port
