"""`memory-bridge backfill`: bring a Conversations history into Memory, exactly once with the webhook.

Each message is prepared as the webhook prepares it (feed.py) and handed to the replay engine through
a queue port over the history (stream.py): the ledger that the webhook and the replay share keeps
every message to one post, a checkpoint per conversation (checkpoints.py) lets a run resume.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from memory_bridge_cli.backfill.feed import Feed
from memory_bridge_cli.backfill.history import History, RetryingDirectory, Selection
from memory_bridge_cli.backfill.report import dry_run_counts, report_json, summary_text
from memory_bridge_cli.common import (
    Console,
    UsageError,
    local_stack_state,
    memory_client,
    store_id_for,
    writable_path,
    write_private_file,
)
from memory_bridge_cli.conversations import conversations_target
from memory_bridge_cli.dlq import (
    dead_letter_queue,
    ledger_location,
    parse_since,
    replay_environment,
    stack_parameters,
    who_am_i,
)

DATE_ONLY = re.compile(r"\d{4}-\d{2}-\d{2}")
# What one slice of the engine holds at most: bounds the run's memory (~3 KB an envelope).
SLICE = 2_000
# The engine's hold of what it received, and so the ledger lease of a request in flight: a run
# killed by kill -9 leaves its leases this long at most (a rerun meanwhile leaves those as "busy").
HOLD_SECONDS = 300


def selection_from(args: argparse.Namespace) -> Selection:
    if args.conversation and args.address:
        raise UsageError("pass --conversation or --address, not both")
    since = parse_since(args.since)
    until = parse_since(args.until, "--until")
    if until is not None and DATE_ONLY.fullmatch(args.until):
        # `--until 2025-06-30` means through that day, as the Conversations API's EndDate reads a date
        # (its midnight would leave out the day's conversations and messages, and say complete).
        until += timedelta(days=1, microseconds=-1)
    if since and until and since > until:
        raise UsageError("--since is after --until")
    return Selection(since, until, tuple(dict.fromkeys(args.conversation or ())), args.address, args.service)


def store_for(args: argparse.Namespace) -> str:
    if not args.store and args.stack_name:
        parameters = stack_parameters(args.aws_session, args.resolved_endpoint, args.stack_name)
        if parameters.get("MemoryStoreId"):
            args.store = parameters["MemoryStoreId"]
    return store_id_for(args)


def build_feed(args: argparse.Namespace, settings: Any, store_id: str, checkpoints: Any) -> Feed:
    from memory_bridge.adapters.conversations_api import ConversationsApiClient
    from memory_bridge.ports import StaticCredentials
    from memory_bridge.speaking import RosterCache, SpeakerRules, Speakers
    from memory_bridge.webhook.preparing import DeliveryRules

    state = local_stack_state() if args.queue_from_local_stack else None
    base_url, credentials = conversations_target(args, state)
    client = ConversationsApiClient(
        base_url, StaticCredentials(credentials), connect_timeout=3.0, read_timeout=15.0
    )
    history = History(client)
    rules = settings.speakers
    speakers = Speakers(
        RetryingDirectory(history),
        RosterCache(ttl=600, max_entries=1_000),
        SpeakerRules(rules.agent_rules, rules.agent_messages, settings.chat_id_type),
    )
    delivery = DeliveryRules(
        store_id=store_id,
        source=settings.observation_source,
        trait_group=settings.profile_trait_group,
        chat_id_type=settings.chat_id_type,
        agent_messages=rules.agent_messages,
        redaction=settings.redaction,
    )
    return Feed(history, selection_from(args), speakers, delivery, checkpoints, lambda: datetime.now(UTC))


def command_backfill(args: argparse.Namespace, console: Console) -> int:
    from memory_bridge.config import ConfigError, ReplaySettings
    from memory_bridge.runtime import build_replay_engine
    from memory_bridge_cli.backfill.checkpoints import Checkpoints
    from memory_bridge_cli.backfill.stream import HistoryQueue

    selection_from(args)  # usage errors before anything is read
    report_path = writable_path("--report", args.report) if args.report else None
    queue = dead_letter_queue(args)
    table, ledger_client = ledger_location(args)
    environment, settings_from = replay_environment(args)
    try:
        settings = replace(ReplaySettings.for_operator(environment), idempotency_table=table)
    except ConfigError as error:
        raise UsageError(f"the functions' settings from {settings_from}: {error}") from None
    store_id = store_for(args)
    checkpoints = Checkpoints(ledger_client, table)
    feed = build_feed(args, settings, store_id, checkpoints)
    started = time.monotonic()
    console.progress(
        ("DRY RUN: nothing will be posted, parked or written. " if args.dry_run else "")
        + f"Backfilling into {store_id}"
    )
    if args.dry_run:
        from memory_bridge.adapters.ledger_table import LedgerTable

        feed.writes_checkpoints = False
        ledger = LedgerTable(table, settings.idempotency_ttl_seconds, client_factory=lambda: ledger_client)
        plan = dry_run_counts(feed, ledger, args.rate)
        report = report_json(args, feed, None, None, plan, time.monotonic() - started)
    else:
        memory = memory_client(args, local_stack=args.queue_from_local_stack)
        stream = HistoryQueue(feed, queue)
        progress = Progress(console, feed, stream, started)
        engine = build_replay_engine(
            settings,
            queue=stream,
            ledger_client_factory=lambda: ledger_client,
            memory=memory,
            speakers=feed.speakers,
            progress=progress,
        )
        engine.max_slice = SLICE
        from memory_bridge.replay import ReplayOptions

        options = ReplayOptions(
            rate=args.rate, visibility_timeout=HOLD_SECONDS, max_consecutive_failures=args.max_failures
        )
        try:
            summary = engine.run(options)
        finally:
            feed.close()
        progress.finish()
        report = report_json(args, feed, stream, summary, None, time.monotonic() - started)
    report["audit"] = {
        "who": who_am_i(args),
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "what": "backfill" + (" --dry-run" if args.dry_run else ""),
        "settingsFrom": settings_from,
    }
    if report_path is not None:
        write_private_file(report_path, json.dumps(report, indent=2))
    console.result(report, summary_text(report))
    return 0 if report["complete"] else 1


class Progress:
    """One line on stderr: conversations, messages, rate and ETA (from how far the dates got)."""

    def __init__(self, console: Console, feed: Feed, stream: Any, started: float):
        self.console, self.feed, self.stream, self.started = console, feed, stream, started
        self.interactive = console.err.isatty()
        self.last = 0.0

    def __call__(self, summary: Any, remaining: int) -> None:  # noqa: ARG002
        now = time.monotonic()
        if now - self.last < (0.2 if self.interactive else 2.0):
            return
        self.last = now
        counts, feed = summary.counts, self.feed.counts
        elapsed = max(now - self.started, 1e-6)
        done = counts.replayed + counts.already_posted + self.stream.parked
        eta = self.eta(elapsed)
        line = (
            f"  conversations {feed.conversations}  messages {feed.messages}  posted {counts.replayed}  "
            f"already {counts.already_posted}  parked {self.stream.parked}  "
            f"{done / elapsed:.1f} msg/s  {counts.requests / elapsed:.1f} req/s  "
            f"ETA {f'{math.ceil(eta)}s' if eta is not None else '?'}"
        )
        self.console.err.write(("\r" + line) if self.interactive else (line + "\n"))
        self.console.err.flush()

    def eta(self, elapsed: float) -> float | None:
        """Conversations are listed newest first between --since and --until: the share of that span
        read so far tells how much is left."""
        selection, at = self.feed.selection, self.feed.current_date
        if selection.since is None or at is None:
            return None
        until = selection.until or datetime.now(UTC)
        span = (until - selection.since).total_seconds()
        done = (until - at).total_seconds() / span if span > 0 else 1.0
        return elapsed * (1 - done) / done if 0 < done < 1 else None

    def finish(self) -> None:
        if self.interactive:
            self.console.err.write("\n")
