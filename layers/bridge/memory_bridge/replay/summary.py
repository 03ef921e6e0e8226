"""What a replay run did: its counts, the summary both callers print or return, and its metrics."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from memory_bridge.domain.envelope import Envelope
from memory_bridge.replay.options import ReplayOptions


@dataclass
class ReplayCounts:
    received: int = 0
    replayed: int = 0  # posted now and deleted
    already_posted: int = 0  # found in Memory (ledger or List Observations); deleted without posting
    removed: int = 0  # removed in Twilio since it was parked (the ledger's tombstone): deleted, not posted
    changes: int = 0  # parked edits and removals finished (issue 22), and deleted
    failed: int = 0  # put back with attempts raised
    left: int = 0  # untouched: the run stopped first, or the hold ran out
    busy: int = 0  # another replay or webhook holds its ledger lease right now; left in place
    unchecked: int = 0  # may be in Memory and Memory could not be asked; left in place, not posted
    filtered: int = 0  # did not match --kind/--since/--profile-id; left in place
    filtered_permanent: int = 0  # of those, permanent failures that a retryable run leaves for people
    malformed: int = 0  # not an envelope this version reads; left in place
    retargeted: int = 0  # parked against another store; posted to the target store
    too_recent: int = 0  # failed less than min_age ago: left for a later run
    skipped: int = 0  # agents' or the brand's words that go nowhere (AGENT_MESSAGES=skip, no one customer)
    needs_attention: int = 0  # (max_attempts runs) permanent or given up: left in place for people
    left_for_people: int = 0  # of those, given up by this run (marked) or turned permanent by it
    redacted: int = 0  # sensitive numbers replaced in envelopes parked before redaction existed
    requests: int = 0  # every Memory request: Lookups, creates, List pages and posts
    observations_posted: int = 0
    posts: int = 0  # of the requests, observation posts (what grouping saves)
    slices: int = 0  # times the run received a slice of the queue
    # Memory's limit per profile (issue 22): the bridge's oldest deleted to make room (keep-latest),
    # messages newly put back because their profile is full (park: one already parked so and found full
    # again is not counted again, so the ProfilesFull alarm is not raised anew by every re-check),
    # requests that left a profile near it.
    evicted: int = 0
    profile_full: int = 0
    near_limit: int = 0


@dataclass
class ReplaySummary:
    options: ReplayOptions
    counts: ReplayCounts = field(default_factory=ReplayCounts)
    seconds: float = 0.0
    stopped: str | None = None
    plan: list[dict[str, Any]] = field(default_factory=list)
    malformed: list[dict[str, str]] = field(default_factory=list)
    failures: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    reached_end: bool = False  # the run found the queue empty of what it had not seen yet

    @property
    def complete(self) -> bool:
        counts = self.counts
        return (
            not self.stopped
            and counts.failed == 0
            and counts.left == 0
            and counts.malformed == 0
            and counts.busy == 0
            and counts.unchecked == 0
        )

    def to_json(self) -> dict[str, Any]:
        options = self.options
        return {
            "dryRun": options.dry_run,
            "options": {
                "maxMessages": options.max_messages,
                "rate": options.rate,
                "kind": options.kind,
                "since": options.since.isoformat() if options.since else None,
                "profileId": options.profile_id,
                "storeId": options.store_id,
                "maxConsecutiveFailures": options.max_consecutive_failures,
                "minAgeSeconds": options.min_age.total_seconds() if options.min_age else None,
                "maxAttempts": options.max_attempts,
                "scanLimit": options.max_received,
            },
            "counts": vars(self.counts).copy(),
            "seconds": round(self.seconds, 3),
            "stopped": self.stopped,
            "complete": self.complete,
            "reachedEnd": self.reached_end,
            "plan": self.plan,
            "malformed": self.malformed,
            "failures": self.failures[:100],
            "notes": self.notes,
        }


def failure_row(
    envelope: Envelope, stage: str, status: int | None, code: int | None, what: str
) -> dict[str, Any]:
    return {"messageSid": envelope.message_sid, "stage": stage, "status": status, "code": code, "kind": what}


def eta_seconds(summary: ReplaySummary, remaining: int, elapsed: float) -> float | None:
    done = (
        summary.counts.replayed
        + summary.counts.already_posted
        + summary.counts.removed
        + summary.counts.failed
    )
    if done == 0 or elapsed <= 0:
        return None
    return remaining / (done / elapsed) if remaining else 0.0


def progress_line(summary: ReplaySummary, remaining: int, elapsed: float) -> str:
    counts = summary.counts
    done = counts.replayed + counts.already_posted + counts.failed
    rate = done / elapsed if elapsed > 0 else 0.0
    eta = eta_seconds(summary, remaining, elapsed)
    eta_text = f"{math.ceil(eta)}s" if eta is not None else "?"
    return (
        f"  replayed {counts.replayed}  already-posted {counts.already_posted}  failed {counts.failed}  "
        f"left {remaining}  {rate:.1f} msg/s  ETA {eta_text}"
    )


def replay_metrics(summary: ReplaySummary) -> dict[str, int]:
    """What a ReplayFunction run reports to CloudWatch (the dashboard and the alarms read these).

    DeadLettersNeedingAttention is a gauge, and only a scheduled run (max_attempts set) knows it. A
    run that stopped before the end of the queue saw only part of it: its count is reported when it
    found some (there are at least that many) and withheld when it found none (that proves nothing),
    so that the alarm keeps its state rather than clearing on a partial look.
    """
    if summary.options.dry_run:
        return {}
    counts = summary.counts
    figures = {
        "ReplayPosted": counts.replayed,
        "ReplayAlreadyPosted": counts.already_posted,
        "ReplayFailedAgain": counts.failed,
        "ReplayLeftForPeople": counts.left_for_people,
    }
    # Memory's limit, under the webhook's names (one dashboard widget and one alarm read both
    # functions); only when non-zero.
    room = {
        "ObservationsEvicted": counts.evicted,
        "ProfilesFull": counts.profile_full,
        "ProfileNearLimit": counts.near_limit,
    }
    figures.update({name: value for name, value in room.items() if value})
    if summary.options.max_attempts is not None:
        needing = counts.needs_attention + counts.malformed
        if needing or summary.reached_end:
            figures["DeadLettersNeedingAttention"] = needing
    return figures
