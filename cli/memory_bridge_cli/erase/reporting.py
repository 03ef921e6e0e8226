"""What `memory-bridge erase` says when it ends: the report for the data-protection officer (ids and
counts, never message content), and the one-line summary."""

from __future__ import annotations

import argparse
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from memory_bridge_cli.erase.plan import TOMBSTONE_KEEP_DAYS

if TYPE_CHECKING:
    from memory_bridge_cli.erase.command import Run


def report(run: Run, store_id: str, args: argparse.Namespace) -> dict[str, Any]:
    """For the data-protection officer: what was deleted, by id and count; never message content."""
    from memory_bridge_cli.dlq import who_am_i

    plan, whole = run.observations, run.whole_profile
    deleted_ids = plan.delete if whole and run.profile_deleted else run.deleted.ids
    return {
        "what": "erase" + (" --whole-profile" if whole else "") + (" --dry-run" if run.dry_run else ""),
        "dryRun": run.dry_run,
        "subject": [i.to_json() for i in run.subject],
        "storeId": store_id,
        "profileId": run.profile_id,
        "profileDeleted": run.profile_deleted,
        "observations": {
            "ofTheBridge": len(plan.delete),
            "bySource": dict(plan.by_source),
            "deleted": len(deleted_ids),
            "deletedIds": deleted_ids,
            "alreadyGone": run.deleted.already_gone,
            "keptOtherWriters": plan.kept,
        },
        "tombstones": {
            "conversations": run.found.conversations,
            "messages": len(run.found.sids),
            "written": run.tombstones.written,
            "already": run.tombstones.already,
            "keptDays": TOMBSTONE_KEEP_DAYS,
        },
        "deadLetters": {
            "read": run.purge.read,
            "deleted": len(run.purge.deleted),
            "envelopes": run.purge.deleted,
            "malformedLeft": run.purge.malformed,
            "inFlightAtStart": run.purge.in_flight_at_start,
        },
        "nothingToDo": nothing_to_do(run),
        "complete": not run.left,
        "left": run.left,
        "notes": run.notes,
        "startedAt": run.started,
        "finishedAt": datetime.now(UTC).isoformat(timespec="seconds"),
        "audit": {"who": who_am_i(args), "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())},
    }


def nothing_to_do(run: Run) -> bool:
    return not (
        run.observations.delete or run.tombstones.written or run.purge.deleted or run.profile_deleted
    ) and (not run.whole_profile or run.profile_id is None)


def summary(run: Run) -> str:
    plan = run.observations
    verb = "would delete" if run.dry_run else "deleted"
    by_source = ", ".join(f"{s} {n}" for s, n in sorted(plan.by_source.items())) or "none"
    if run.whole_profile:
        gone = (
            "the profile " + (run.profile_id or "-")
            if (run.profile_deleted or run.dry_run) and run.profile_id
            else "no profile"
        )
        memory_line = (
            f"  Memory: {verb} {gone} ({len(plan.delete)} bridge observation(s): {by_source}; "
            f"{plan.kept} by other writers)"
        )
    else:
        count = len(plan.delete) if run.dry_run else len(run.deleted.ids)
        memory_line = (
            f"  Memory: {verb} {count} observation(s) ({by_source}); kept {plan.kept} by other writers"
        )
    tomb = run.tombstones
    lines = [
        ("DRY RUN — " if run.dry_run else "") + f"erase of profile {run.profile_id or '(none in Memory)'}",
        memory_line,
        f"  tombstones: {'would write' if run.dry_run else 'wrote'} {tomb.written}, "
        f"{tomb.already} already there ({len(run.found.sids)} message(s) in "
        f"{run.found.conversations} conversation(s))",
        f"  dead-letter queue: {verb} {len(run.purge.deleted)} envelope(s) of {run.purge.read} read",
    ]
    if nothing_to_do(run) and not run.left:
        lines.append("  nothing left to erase: already erased (or never there)")
    lines.extend(f"  note: {note}" for note in run.notes)
    if run.left:
        lines.extend(f"  LEFT: {what}" for what in run.left)
        lines.append("  run the same command again to finish (it deletes only what is left)")
    return "\n".join(lines)
