"""What a backfill run did (or, dry, would do): the JSON report and the summary people read."""

from __future__ import annotations

import argparse
import math
from collections import Counter
from typing import Any

from memory_bridge.domain.observations import MAX_OBSERVATIONS_PER_REQUEST
from memory_bridge_cli.backfill.feed import Feed

LEDGER_BATCH = 100


def dry_run_counts(feed: Feed, ledger: Any, rate: float | None) -> dict[str, Any]:
    """Read the history and the ledger, post nothing: the messages still to post per customer, and the
    Memory requests that takes (a Lookup per customer, +1 to create a profile not found, then one post
    per ten observations)."""
    per_customer: Counter[str] = Counter()
    already = to_post = removed = 0
    batch: list[Any] = []

    def count(envelopes: list[Any]) -> None:
        nonlocal already, to_post, removed
        records = ledger.read_many([e.message_sid for e in envelopes], timeout=10.0)
        for envelope in envelopes:
            record = records.get(envelope.message_sid)
            if record is not None and record.removed is not None:
                removed += 1  # removed in Twilio since (the ledger's tombstone): never posted again
                continue
            accepted = record.accepted if record else frozenset()
            left = [p for p in envelope.part_numbers if p not in accepted]
            if not left:
                already += 1
                continue
            to_post += 1
            assert envelope.identifier is not None
            per_customer[f"{envelope.identifier.id_type}:{envelope.identifier.value}"] += len(left)

    for envelope, _ in feed.envelopes():
        batch.append(envelope)
        if len(batch) >= LEDGER_BATCH:
            count(batch)
            batch = []
    if batch:
        count(batch)
    posts = sum(math.ceil(n / MAX_OBSERVATIONS_PER_REQUEST) for n in per_customer.values())
    requests = posts + len(per_customer)
    return {
        "messagesToPost": to_post,
        "alreadyPosted": already,
        "removed": removed,
        "observations": sum(per_customer.values()),
        "customersToPost": len(per_customer),
        "memoryRequests": requests,
        "posts": posts,
        "lookups": len(per_customer),
        "seconds": round(requests / rate, 1) if rate else None,
    }


def report_json(
    args: argparse.Namespace,
    feed: Feed,
    stream: Any,
    summary: Any,
    plan: dict[str, Any] | None,
    seconds: float,
) -> dict[str, Any]:
    counts = feed.counts
    selection = feed.selection
    report: dict[str, Any] = {
        "dryRun": bool(args.dry_run),
        "selection": {
            "since": selection.since.isoformat() if selection.since else None,
            "until": selection.until.isoformat() if selection.until else None,
            "conversations": list(selection.conversations),
            "address": selection.address,
            "service": selection.service_sid,
        },
        "conversations": {
            "read": counts.conversations,
            "doneBefore": counts.conversations_done_before,
            "finished": counts.conversations_finished,
            "left": feed.left,
        },
        "messages": {
            "read": counts.messages,
            "beforeCheckpoint": counts.before_checkpoint,
            "outsideWindow": counts.outside_window,
            "skipped": dict(counts.skipped),
            "unreadable": counts.unreadable,
        },
        "customers": len(counts.customers),
        "conversationsApi": {"calls": feed.history.calls, "throttled": feed.history.throttled},
        "listingFailed": feed.listing_failed,
        "rate": args.rate,
        "seconds": round(seconds, 3),
    }
    if plan is not None:
        report["plan"] = plan
        report["complete"] = not feed.left and feed.listing_failed is None
        return report
    engine = summary.counts
    posted_or_found = engine.replayed + engine.already_posted + stream.parked
    left = engine.left + engine.busy + engine.unchecked + engine.malformed
    report["messages"].update(
        posted=engine.replayed,
        alreadyPosted=engine.already_posted,
        removed=engine.removed,
        parked=stream.parked,
        left=left,
    )
    report["memory"] = {
        "requests": engine.requests,
        "posts": engine.posts,
        "observationsPosted": engine.observations_posted,
        "requestsPerMessage": round(engine.requests / posted_or_found, 4) if posted_or_found else 0.0,
    }
    report["checkpointsWritten"] = feed.checkpoints.writes if feed.checkpoints else 0
    report["stopped"] = summary.stopped
    report["failures"] = summary.failures[:100]
    report["notes"] = summary.notes
    report["complete"] = not summary.stopped and left == 0 and not feed.left and feed.listing_failed is None
    return report


def summary_text(report: dict[str, Any]) -> str:
    conversations, messages = report["conversations"], report["messages"]
    lines = []
    if report["dryRun"]:
        plan = report["plan"]
        at = (
            f"{plan['seconds']} s at --rate {report['rate']}/s"
            if plan["seconds"] is not None
            else ("pass --rate to see the time it takes")
        )
        lines.append(
            f"DRY RUN — would post {plan['observations']} observation(s) from {plan['messagesToPost']} "
            f"message(s) for {plan['customersToPost']} customer(s) in {plan['memoryRequests']} Memory "
            f"request(s) ({plan['lookups']} Lookups, +1 per profile not found; {plan['posts']} posts): "
            f"{at}; {plan['alreadyPosted']} already posted"
        )
    rows = [
        ("conversations read", conversations["read"]),
        ("  finished before (closed)", conversations["doneBefore"]),
        ("  finished now", conversations["finished"]),
        ("  left for the next run", len(conversations["left"])),
        ("messages read", messages["read"]),
        ("  before a checkpoint", messages["beforeCheckpoint"]),
        ("  outside --since/--until", messages["outsideWindow"]),
        ("  skipped (as the webhook)", sum(messages["skipped"].values())),
    ]
    if not report["dryRun"]:
        memory = report["memory"]
        rows += [
            ("  posted", messages["posted"]),
            ("  already posted", messages["alreadyPosted"]),
            ("  removed in Twilio since", messages["removed"]),
            ("  parked on the DLQ", messages["parked"]),
            ("  left for the next run", messages["left"]),
            ("customers", report["customers"]),
            ("Memory requests", memory["requests"]),
            ("  of which posts", memory["posts"]),
            ("  per message", memory["requestsPerMessage"]),
        ]
    rows.append(("Conversations API calls", report["conversationsApi"]["calls"]))
    lines.append("")
    lines.extend(f"  {name:<28} {value:>8}" for name, value in rows)
    lines.append(f"  {'seconds':<28} {report['seconds']:>8.1f}")
    for left in conversations["left"][:10]:
        lines.append(f"  left {left['conversationSid']}: {left['reason']}")
    if report.get("listingFailed"):
        lines.append(f"  the listing stopped: {report['listingFailed']}; run again to go on")
    if report.get("stopped"):
        lines.append(f"  stopped early: {report['stopped']}; run again to go on (nothing is posted twice)")
    lines.extend(f"  note: {note}" for note in report.get("notes", []))
    lines.append("  complete" if report["complete"] else "  something is left: run the same command again")
    return "\n".join(lines)
