"""What a replay run is asked to do: its options, and reading them from the ReplayFunction's event."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

KindFilter = Literal["retryable", "permanent", "all"]

EVENT_FIELDS = frozenset(
    {
        "maxMessages",
        "dryRun",
        "kind",
        "rate",
        "since",
        "profileId",
        "maxFailures",
        "storeId",
        "minAgeSeconds",
        "maxAttempts",
        "scanLimit",
    }
)


@dataclass(frozen=True)
class ReplayOptions:
    max_messages: int | None = None
    rate: float | None = None  # Memory requests per second
    kind: KindFilter = "retryable"
    since: datetime | None = None
    profile_id: str | None = None
    dry_run: bool = False
    max_consecutive_failures: int = 5
    visibility_timeout: int = 900
    time_limit: float | None = None  # seconds, for the Lambda
    store_id: str | None = None  # post to this store, whatever store the envelope names
    # The scheduled replay's policy; None in a replay by hand.
    min_age: timedelta | None = None  # only envelopes whose last failure is at least this old
    # Failed replays after which an envelope is left for people (marked); permanent ones are left at
    # once. Setting it makes the run the scheduled kind: it never retries what people must look at.
    max_attempts: int | None = None
    max_received: int | None = None  # receive at most this many messages in all (bounds the scan)


class ReplayRequestError(ValueError):
    """The ReplayFunction's event is not one it understands; the message names the field."""


def parse_time(text: str) -> datetime | None:
    """An ISO 8601 time (a trailing Z allowed), in UTC when it names no zone; None when unreadable."""
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _positive(event: dict[str, Any], name: str, kind: type, zero_allowed: bool = False) -> Any:
    value = event.get(name)
    if value is None:
        return None
    least = "0 or more" if zero_allowed else "greater than 0"
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise ReplayRequestError(f"{name} must be a number {least}")
    if value == 0 and not zero_allowed:
        raise ReplayRequestError(f"{name} must be a number {least}")
    return kind(value)


def _checked_fields(event: Any) -> dict[str, Any]:
    if not isinstance(event, dict):
        raise ReplayRequestError(
            'the event must be a JSON object such as {"maxMessages": 500, "dryRun": true}'
        )
    unknown = sorted(set(event) - EVENT_FIELDS)
    if unknown:
        raise ReplayRequestError(f"unknown field(s) {unknown}; known: {sorted(EVENT_FIELDS)}")
    store_id = event.get("storeId")
    if store_id is not None and not isinstance(store_id, str):
        raise ReplayRequestError("storeId must be a mem_store_… id")
    if not isinstance(event.get("dryRun", False), bool):
        raise ReplayRequestError("dryRun must be true or false")
    if event.get("kind", "retryable") not in ("retryable", "permanent", "all"):
        raise ReplayRequestError("kind must be retryable, permanent or all")
    return event


def _since(event: dict[str, Any]) -> datetime | None:
    if event.get("since") is None:
        return None
    since = parse_time(str(event["since"]))
    if since is None:
        raise ReplayRequestError("since must be an ISO 8601 time")
    return since


def options_from_event(event: Any, time_limit: float | None = None) -> ReplayOptions:
    """Read {"maxMessages", "dryRun", "kind", "rate", "since", "profileId", "maxFailures", "storeId"}
    and the scheduled replay's {"minAgeSeconds", "maxAttempts", "scanLimit"} (template.yaml)."""
    event = _checked_fields(event)
    min_age = _positive(event, "minAgeSeconds", float, zero_allowed=True)
    return ReplayOptions(
        max_messages=_positive(event, "maxMessages", int),
        rate=_positive(event, "rate", float),
        kind=event.get("kind", "retryable"),
        since=_since(event),
        profile_id=event.get("profileId"),
        dry_run=event.get("dryRun", False),
        max_consecutive_failures=_positive(event, "maxFailures", int) or 5,
        time_limit=max(time_limit, 1.0) if time_limit is not None else None,
        store_id=event.get("storeId"),
        min_age=timedelta(seconds=min_age) if min_age is not None else None,
        max_attempts=_positive(event, "maxAttempts", int),
        max_received=_positive(event, "scanLimit", int),
    )
