"""`memory-bridge erase`: forget one customer (GDPR Art. 17, CCPA), in this order:

  1. who: --address → the identifier and its profile (Lookup, never create); --profile-id → the
     identifiers Memory lists for it
  2. tombstones first: every MessageSid of theirs (Conversations: ParticipantConversations, then each
     conversation's participants and messages) is tombstoned in the ledger, so that from here on no
     replay, backfill or late Twilio retry posts it; a tombstone that cannot be written stops the run
     before anything is deleted
  3. Memory: the bridge's observations on the profile (its sources only), or with --whole-profile
     the profile itself
  4. the dead-letter queue: their parked envelopes deleted, every other one released at the scan's end
A re-run finds what is left and deletes only that; a second run of a finished erase deletes nothing.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from memory_bridge.domain.identifiers import Identifier
from memory_bridge_cli.common import (
    Console,
    UsageError,
    e164_violation,
    local_stack_state,
    memory_client,
    writable_path,
    write_private_file,
)
from memory_bridge_cli.erase import dead_letters, steps
from memory_bridge_cli.erase.plan import (
    TOMBSTONE_KEEP_DAYS,
    NotAnAddress,
    ObservationPlan,
    SpeakerRulesView,
    bridge_sources,
    identifiers_from_sets,
    subject_identifier,
)
from memory_bridge_cli.erase.reporting import report, summary

STACK_SPEAKER_PARAMETERS = {
    "ObservationSource": "OBSERVATION_SOURCE",
    "ChatIdType": "CHAT_ID_TYPE",
    "AgentMessages": "AGENT_MESSAGES",
    "AgentIdentities": "AGENT_IDENTITIES",
    "AgentAttribute": "AGENT_ATTRIBUTE",
}


def check_usage(args: argparse.Namespace) -> None:
    if bool(args.address) == bool(args.profile_id):
        raise UsageError(
            "pass exactly one of --address (+1555…, whatsapp:+1…, an email or a chat identity) or "
            "--profile-id mem_profile_…"
        )
    violation = e164_violation(args.address)
    if violation:
        raise UsageError(f"--address: {violation}")


@dataclass
class Run:
    """What one erase found and did; `left` says what a re-run must finish."""

    started: str
    dry_run: bool
    whole_profile: bool
    subject: list[Identifier] = field(default_factory=list)
    profile_id: str | None = None
    observations: ObservationPlan = field(default_factory=ObservationPlan)
    deleted: steps.Deleted = field(default_factory=steps.Deleted)
    profile_deleted: bool | None = None
    found: steps.Found = field(default_factory=steps.Found)
    tombstones: steps.Tombstones = field(default_factory=steps.Tombstones)
    purge: dead_letters.Purge = field(default_factory=dead_letters.Purge)
    left: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def settings_for(args: argparse.Namespace) -> Any:
    from memory_bridge.config import ConfigError, ReplaySettings
    from memory_bridge_cli.dlq import replay_environment, stack_parameters

    environment, settings_from = replay_environment(args)
    if args.stack_name:  # the sources and the speaker rules decide what is the bridge's: the stack's own
        parameters = stack_parameters(args.aws_session, args.resolved_endpoint, args.stack_name)
        environment.update(
            {v: parameters[k] for k, v in STACK_SPEAKER_PARAMETERS.items() if parameters.get(k)}
        )
    try:
        return ReplaySettings.for_operator(environment)
    except ConfigError as error:
        raise UsageError(f"the functions' settings from {settings_from}: {error}") from None


def command_erase(args: argparse.Namespace, console: Console) -> int:
    from memory_bridge.adapters.ledger_table import LedgerTable
    from memory_bridge_cli.backfill.command import store_for
    from memory_bridge_cli.dlq import dead_letter_queue, ledger_location

    check_usage(args)
    report_path = writable_path("--report", args.report) if args.report else None
    queue = dead_letter_queue(args)
    table, ledger_client = ledger_location(args)
    settings = settings_for(args)
    store_id = store_for(args)
    memory = memory_client(args, local_stack=args.queue_from_local_stack)
    ledger = LedgerTable(table, settings.idempotency_ttl_seconds, client_factory=lambda: ledger_client)
    run = Run(datetime.now(UTC).isoformat(timespec="seconds"), args.dry_run, args.whole_profile)
    console.progress(
        ("DRY RUN: nothing will be deleted or written. " if args.dry_run else "")
        + f"Erasing one customer from {store_id}"
        + (" (the whole profile)" if args.whole_profile else " (the bridge's observations)")
    )
    try:
        identify(args, memory, store_id, settings, run, console)
        find_and_tombstone(args, settings, ledger, run, console)
        erase_memory(memory, store_id, settings, run, console)
        forget_count(ledger, run)
        purge(queue, run, console)
    except steps.Left as left:
        run.left.append(str(left))
    document = report(run, store_id, args)
    if report_path is not None:
        write_private_file(report_path, json.dumps(document, indent=2))
    console.result(document, summary(run))
    return 0 if not run.left else 1


def identify(
    args: argparse.Namespace, memory: Any, store_id: str, settings: Any, run: Run, console: Console
) -> None:
    if args.address:
        try:
            identifier = subject_identifier(args.address, settings.chat_id_type)
        except NotAnAddress as error:
            raise UsageError(str(error)) from None
        run.subject = [identifier]
        run.profile_id = steps.find_profile(memory, store_id, identifier)
    else:
        run.profile_id = args.profile_id
        sets = steps.profile_identifiers(memory, store_id, args.profile_id)
        if sets is None:
            run.profile_id = None
            run.notes.append(
                f"{args.profile_id} is not in Memory (erased already?): its identifiers cannot be read, "
                "so no conversation was looked up; pass --address to tombstone the customer's messages"
            )
        else:
            run.subject = identifiers_from_sets(sets)
    console.progress(
        f"  profile: {run.profile_id or 'none in Memory'}; {len(run.subject)} identifier(s) to look up"
    )


def find_and_tombstone(
    args: argparse.Namespace, settings: Any, ledger: Any, run: Run, console: Console
) -> None:
    from memory_bridge.adapters.conversations_api import ConversationsApiClient
    from memory_bridge.ports import StaticCredentials
    from memory_bridge_cli.backfill.history import History
    from memory_bridge_cli.conversations import conversations_target

    if not run.subject:
        return
    state = local_stack_state() if args.queue_from_local_stack else None
    base_url, credentials = conversations_target(args, state)
    client = ConversationsApiClient(
        base_url, StaticCredentials(credentials), connect_timeout=3.0, read_timeout=15.0
    )
    rules = SpeakerRulesView(settings.speakers.agent_rules, settings.chat_id_type)
    run.found = steps.messages_to_tombstone(History(client), run.subject, rules, args.service)
    console.progress(
        f"  {run.found.conversations} conversation(s), {len(run.found.sids)} message(s) of theirs"
    )
    run.tombstones = steps.tombstone(
        ledger, run.found.sids, f"erased {run.started}", TOMBSTONE_KEEP_DAYS * 86_400, run.dry_run
    )
    if run.found.unreadable:
        run.left.extend(f"could not read {what}" for what in run.found.unreadable)
    if run.tombstones.in_flight:
        run.left.append(
            f"{run.tombstones.in_flight} message(s) were being delivered when tombstoned: their post may "
            "land after this run's listing"
        )


def erase_memory(memory: Any, store_id: str, settings: Any, run: Run, console: Console) -> None:
    if run.profile_id is None:
        return
    sources = bridge_sources(settings.observation_source)
    run.observations = steps.plan_observations(memory, store_id, run.profile_id, sources)
    plan = run.observations
    console.progress(f"  {len(plan.delete)} observation(s) by the bridge, {plan.kept} by other writers")
    if run.dry_run:
        return
    if run.whole_profile:
        run.profile_deleted = steps.delete_profile(memory, store_id, run.profile_id)
        return
    steps.delete_observations(memory, store_id, run.profile_id, plan.delete, run.deleted)


def forget_count(ledger: Any, run: Run) -> None:
    """The profile's count of the bridge's observations (Memory's 500 limit): none are left, so it goes,
    else the erased profile would keep room it no longer needs (or, deleted whole, a fresh one of the
    same id never happens: ids are not reused, and the item only expires)."""
    if run.dry_run or run.profile_id is None:
        return
    from memory_bridge.adapters.profile_counts import KEY_PREFIX

    try:
        ledger.client.delete_item(TableName=ledger.table_name, Key={"id": {"S": KEY_PREFIX + run.profile_id}})
    except Exception as error:  # noqa: BLE001 - botocore raises many types; all mean "not deleted"
        run.left.append(f"the profile's observation count was not reset ({type(error).__name__})")


def purge(queue: Any, run: Run, console: Console) -> None:
    profile_ids = {run.profile_id} if run.profile_id else set()
    run.purge = dead_letters.purge_dead_letters(
        queue, run.subject, profile_ids, set(run.found.sids), run.dry_run
    )
    console.progress(f"  dead-letter queue: {len(run.purge.deleted)} of {run.purge.read} envelope(s) theirs")
    if run.purge.failed:
        run.left.append(f"{run.purge.failed} parked envelope(s) of theirs could not be deleted")
    if not run.purge.complete:
        run.left.append(f"the dead-letter queue was not read to its end ({run.purge.stopped})")
