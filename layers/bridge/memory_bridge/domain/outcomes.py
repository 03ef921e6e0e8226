"""What one call to the Memory API came to. Delivery decides from this one value."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Accepted:
    """2xx: the request was taken. `body` is the parsed JSON answer, if any."""

    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Moved:
    """308/301 for a merged profile: write to the canonical profile instead."""

    status: int
    canonical_profile_id: str | None


@dataclass(frozen=True)
class Retryable:
    """429, 5xx, timeout or connection error: worth trying again later.

    `ambiguous` is True when the request may have reached Memory before the failure (a read
    timeout or a connection dropped after sending), so a replay must check before posting again.
    """

    status: int | None
    code: int | None = None
    message: str = ""
    retry_after: float | None = None
    ambiguous: bool = False


@dataclass(frozen=True)
class Permanent:
    """Any other 4xx: trying again unchanged will fail again."""

    status: int
    code: int | None = None
    message: str = ""


Outcome = Accepted | Moved | Retryable | Permanent
Failure = Retryable | Permanent


# Memory's code for an observation it does not hold (deleted, or "removed or reconciled" on its side).
# A 404 for a profile carries 20404 instead: the two mean different things to an edit.
OBSERVATION_NOT_FOUND = 520003


def observation_gone(outcome: Outcome) -> bool:
    """True when Memory answered that the observation is not there (404, code 520003)."""
    return isinstance(outcome, Permanent) and outcome.status == 404 and outcome.code == OBSERVATION_NOT_FOUND


def describe(failure: Failure) -> str:
    """A short, log-safe description (status and Twilio code, never content)."""
    status = failure.status if failure.status is not None else "no-response"
    code = f" code={failure.code}" if failure.code is not None else ""
    return f"status={status}{code}"
