"""`memory-bridge dlq stats | peek | export | replay`: the on-call engineer's tools.

Reading (stats, peek, export) never consumes. stats and peek hold what they read for a few seconds
and put it back; export holds what it has read until it ends (SQS has no non-consuming read), and
says so. Totals come from SQS's own approximate counts. Message content is hidden unless asked for.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import re
import socket
import time
from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from memory_bridge.adapters.dead_letters import DeadLetterQueue
from memory_bridge.config import REPLAY_VARIABLES
from memory_bridge.domain.envelope import Envelope, MalformedEnvelope, parse_envelope
from memory_bridge.domain.redaction import redact, redact_envelope
from memory_bridge.ports import QueuedMessage
from memory_bridge_cli.common import (
    Console,
    UsageError,
    add_memory_options,
    aws_client_config,
    aws_profile_name,
    local_stack_state,
    memory_client,
    positive,
    positive_int,
    private_file,
    writable_path,
    write_private_file,
)
from memory_bridge_cli.conversations import add_conversations_url_option, conversations_target

DURATION = re.compile(r"^(\d+)([smhd])$")


def store_id_argument(text: str) -> str:
    from memory_bridge.config import STORE_ID_PATTERN

    if not STORE_ID_PATTERN.match(text):
        raise argparse.ArgumentTypeError(f"must look like mem_store_<26 chars> ({STORE_ID_PATTERN.pattern})")
    return text


def add_queue_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("queue")
    group.add_argument(
        "--queue-url", help="the dead-letter queue (default: the stack's, or the local stack's)"
    )
    group.add_argument("--stack-name", help="look the queue up in this CloudFormation stack's outputs")


def dead_letter_queue(args: argparse.Namespace) -> DeadLetterQueue:
    import boto3

    state = local_stack_state()
    endpoint = args.endpoint_url or os.environ.get("AWS_ENDPOINT_URL")
    queue_url = args.queue_url or os.environ.get("DEAD_LETTER_QUEUE_URL")
    # Whether the queue (and with it the ledger, the replay's settings and Memory) is the local stack's:
    # none named, or the one it printed. It is then read with moto's dummy keys, never this shell's AWS
    # credentials, so a state file naming a real queue gets nothing read from it.
    args.queue_from_local_stack = bool(
        state and not args.stack_name and queue_url in (None, "", state.get("queue_url"))
    )
    local_key: str | None = None
    if state and args.queue_from_local_stack:
        queue_url, endpoint = state["queue_url"], endpoint or state["moto_url"]
        local_key = "local"
    try:
        session = boto3.session.Session(
            aws_access_key_id=local_key,
            aws_secret_access_key=local_key,
            profile_name=None if local_key else args.aws_profile,
            region_name=args.region or os.environ.get("AWS_DEFAULT_REGION", "us-east-1"),
        )
    except Exception as error:  # noqa: BLE001 - e.g. an unknown --profile
        raise UsageError(f"AWS session: {error}") from None
    if not queue_url:
        if not args.stack_name:
            raise UsageError("no queue: pass --queue-url URL or --stack-name NAME (or start the local stack)")
        queue_url = stack_output(session, endpoint, args.stack_name, "DeadLetterQueueUrl")
    client = session.client("sqs", endpoint_url=endpoint, config=aws_client_config())
    args.resolved_endpoint = endpoint  # the audit line asks the same AWS endpoint who we are
    args.aws_session = session
    return DeadLetterQueue(queue_url, client_factory=lambda: client)


def ledger_location(args: argparse.Namespace) -> tuple[str, Any]:
    """The delivery ledger the functions share, and a client for it (found like the queue; call
    dead_letter_queue first)."""
    state = local_stack_state()
    table = args.table or os.environ.get("IDEMPOTENCY_TABLE")
    if not table and args.stack_name:
        table = stack_output(
            args.aws_session, args.resolved_endpoint, args.stack_name, "IdempotencyTableName"
        )
    if not table and state and args.queue_from_local_stack:
        table = state.get("idempotency_table")
    if not table:
        raise UsageError(
            "no ledger table: pass --table NAME (the stack's IdempotencyTableName output) or --stack-name "
            "NAME; the replay reads it so that nothing is posted twice"
        )
    client = args.aws_session.client(
        "dynamodb", endpoint_url=args.resolved_endpoint, config=aws_client_config()
    )
    return table, client


# The stack's parameters that set what the replay must do as the functions do.
STACK_REPLAY_PARAMETERS = {
    "RedactSensitiveNumbers": "REDACT_SENSITIVE_NUMBERS",
    "RedactMode": "REDACT_MODE",
    # Memory's limit per profile: a replay by hand posts within it as the functions do.
    "ProfileObservationLimit": "PROFILE_OBSERVATION_LIMIT",
    "ProfileFullPolicy": "PROFILE_FULL_POLICY",
}


def replay_environment(args: argparse.Namespace) -> tuple[dict[str, str], str]:
    """The functions' replay settings, and where they came from: the stack's parameters (with
    --stack-name), the local stack's state file, else this shell's variables (the defaults when unset)."""
    if args.stack_name:
        parameters = stack_parameters(args.aws_session, args.resolved_endpoint, args.stack_name)
        found = {name: parameters[key] for key, name in STACK_REPLAY_PARAMETERS.items() if key in parameters}
        return found, f"stack {args.stack_name}"
    state = local_stack_state()
    if state and args.queue_from_local_stack and isinstance(state.get("replay_environment"), dict):
        return dict(state["replay_environment"]), "the local stack"
    own = {name: os.environ[name] for name in REPLAY_VARIABLES if os.environ.get(name)}
    return own, "this shell's variables" if own else "the defaults"


def stack_parameters(session: Any, endpoint: str | None, stack: str) -> dict[str, str]:
    description = _describe_stack(session, endpoint, stack)
    return {p["ParameterKey"]: str(p.get("ParameterValue", "")) for p in description.get("Parameters", [])}


def _describe_stack(session: Any, endpoint: str | None, stack: str) -> dict[str, Any]:
    try:
        description: dict[str, Any] = session.client(
            "cloudformation", endpoint_url=endpoint, config=aws_client_config()
        ).describe_stacks(StackName=stack)["Stacks"][0]
    except Exception as error:  # noqa: BLE001
        raise UsageError(
            f"could not read stack {stack!r}: {type(error).__name__}; check --region/--profile"
        ) from None
    return description


def stack_output(session: Any, endpoint: str | None, stack: str, key: str) -> str:
    outputs = _describe_stack(session, endpoint, stack)
    for output in outputs.get("Outputs", []):
        if output["OutputKey"] == key:
            return str(output["OutputValue"])
    raise UsageError(f"stack {stack!r} has no {key} output; is it a memory-bridge stack?")


def parse_since(text: str | None, option: str = "--since") -> datetime | None:
    if text is None:
        return None
    match = DURATION.match(text)
    if match:
        amount, unit = int(match.group(1)), match.group(2)
        seconds = amount * {"s": 1, "m": 60, "h": 3600, "d": 86400}[unit]
        return datetime.now(UTC) - timedelta(seconds=seconds)
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(
            f"{option} takes an ISO 8601 time or a duration like 30m, 2h, 1d; got {text!r}"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def read(message: QueuedMessage) -> Envelope | str:
    """The envelope as the replay would post it: content parked before redaction existed goes
    through the same step, so peek and export never show a card number either."""
    try:
        envelope = parse_envelope(message.body)
    except MalformedEnvelope as error:
        return str(error)
    return redact_envelope(envelope)[0]


def age(message: QueuedMessage | float) -> str:
    """How long ago a message (or an epoch time) was sent: 42s, 37m, 5.2h."""
    sent_at = message if isinstance(message, float | int) else message.sent_at
    seconds = max(time.time() - sent_at, 0)
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m"
    return f"{seconds / 3600:.1f}h"


# ---- stats, peek, export -------------------------------------------------------------------------


def command_stats(args: argparse.Namespace, console: Console) -> int:
    from memory_bridge_cli import queue_scan

    queue = dead_letter_queue(args)
    # The totals are SQS's own (approximate) counts; the breakdown is read from a sample, each message
    # hidden for a few seconds at most and put back at once.
    breakdown, report = queue_scan.sample(queue, args.sample, clock=time.monotonic)
    depth, oldest = report.depth, breakdown.oldest_sent_at
    note = queue_scan.sample_note(report)
    reasons = breakdown.attention
    document = {
        "queueUrl": queue.queue_url,
        "approximate": True,  # visible, inFlight and delayed are SQS's approximate counts
        "visible": depth.visible,
        "inFlight": depth.in_flight,
        "delayed": depth.delayed,
        "scanned": breakdown.count,
        "sample": note,
        "sampleLimit": args.sample,
        "sampleComplete": breakdown.count >= depth.visible,
        "sampleSeconds": round(report.seconds, 2),
        "oldestAgeSeconds": round(time.time() - oldest) if oldest else None,
        "oldestAgeOf": "sample",
        "byKind": dict(breakdown.kinds),
        "byStatus": dict(breakdown.statuses),
        "byTwilioCode": dict(breakdown.codes),
        "needsAttention": {"messages": breakdown.attention_messages, "byReason": dict(reasons)},
    }
    attention = ", ".join(f"{k} {v}" for k, v in reasons.most_common())
    lines = [
        f"dead-letter queue  {queue.queue_url}",
        f"  waiting ≈{depth.visible}   in flight ≈{depth.in_flight}   delayed ≈{depth.delayed}"
        "   (SQS's approximate counts)",
        f"  {note}"
        + ("; the lines below describe the sample (--sample N)" if not document["sampleComplete"] else ""),
        f"  oldest in sample  {age(oldest) if oldest else '-'}",
        "  by kind      " + (", ".join(f"{k} {v}" for k, v in breakdown.kinds.most_common()) or "-"),
        "  by status    " + (", ".join(f"{k} {v}" for k, v in breakdown.statuses.most_common()) or "-"),
        "  by code      " + (", ".join(f"{k} {v}" for k, v in breakdown.codes.most_common()) or "-"),
        f"  needs attention  {breakdown.attention_messages}"
        + (f" ({attention}): the scheduled replay leaves these for people" if attention else ""),
        "  (see docs/runbook.md for what each code means)",
    ]
    warning = queue_scan.release_warning(report)
    if warning:
        console.progress(warning)
    console.result(document, "\n".join(lines))
    return 0


def peek_row(message: QueuedMessage, show_content: bool) -> dict[str, Any]:
    envelope = read(message)
    row: dict[str, Any] = {
        "messageId": message.message_id,
        "age": age(message),
        "received": message.receive_count,
    }
    if isinstance(envelope, str):
        return {**row, "malformed": envelope}
    row.update(
        {
            "messageSid": envelope.message_sid,
            "conversationSid": envelope.conversation_sid,
            "kind": envelope.kind,
            "stage": envelope.failure.stage,
            "status": envelope.failure.status,
            "code": envelope.failure.code,
            "ambiguous": envelope.failure.ambiguous,
            "attempts": envelope.attempts,
            "needsAttention": attention_reason(envelope),
            "leftForPeopleAt": envelope.left_for_people_at or None,
            "profileId": envelope.profile_id,
            "observations": len(envelope.observations),
            "firstFailedAt": envelope.first_failed_at,
            "lastFailedAt": envelope.last_failed_at,
        }
    )
    if show_content:
        row["content"] = [o.get("content") for o in envelope.observations]
        row["failureMessage"] = envelope.failure.message
        if envelope.identifier:
            row["identifier"] = envelope.identifier.to_json()
    return row


def attention_reason(envelope: Envelope) -> str | None:
    """Why a person must look at it (docs/runbook.md, "Needs attention"); None while replay retries it."""
    if envelope.kind == "permanent":
        return "permanent"
    if envelope.needs_attention:
        return f"left for people after {envelope.failed_replays} failed replays"
    return None


def command_peek(args: argparse.Namespace, console: Console) -> int:
    from memory_bridge_cli import queue_scan

    queue = dead_letter_queue(args)
    messages, report = queue_scan.peek(queue, args.n, clock=time.monotonic)
    rows = [peek_row(m, args.show_content) for m in messages]
    lines = [
        f"{len(rows)} message(s) of ≈{report.depth.visible} waiting, oldest first"
        + ("" if args.show_content else " (content hidden; --show-content)")
    ]
    for row in rows:
        if "malformed" in row:
            lines.append(f"  {row['messageId']}  MALFORMED: {row['malformed']}  age {row['age']}")
            continue
        failure = f"{row['stage']} HTTP {row['status'] or 'none'}" + (
            f" code {row['code']}" if row["code"] else ""
        )
        flags = " ambiguous" if row["ambiguous"] else ""
        if row["needsAttention"]:
            flags += f"  NEEDS ATTENTION ({row['needsAttention']})"
        lines.append(
            f"  {row['messageSid']}  {row['kind']:<9} {failure:<34} attempts {row['attempts']}  "
            f"age {row['age']}  obs {row['observations']}{flags}"
        )
        if args.show_content:
            for content in row["content"]:
                lines.append(f"      “{str(content)[:100]}”")
    warning = queue_scan.release_warning(report)
    if warning:
        console.progress(warning)
    console.result({"messages": rows, "waiting": report.depth.visible, "approximate": True}, "\n".join(lines))
    return 0


def command_export(args: argparse.Namespace, console: Console) -> int:
    from memory_bridge_cli import queue_scan

    path = writable_path("--out", args.out)
    queue = dead_letter_queue(args)

    def progress(report: queue_scan.ScanReport) -> None:
        if report.phase == "read":
            console.progress(
                f"  exported {report.read} of ≈{report.wanted} ({report.rate:.0f}/s, "
                f"{report.seconds:.0f} s); they stay hidden from a replay until the export ends"
            )
        else:
            console.progress(f"  put back {report.released} of {report.read}")

    console.progress(
        f"Exporting {queue.queue_url} to {path}: each message read stays hidden from a replay until the "
        "export ends (SQS cannot read without hiding)"
    )
    with private_file(path) as handle:  # 0600, and a symlink at --out is replaced, not followed

        def write(message: QueuedMessage) -> None:  # each record as it is read, not all at the end
            record: dict[str, Any] = {
                "messageId": message.message_id,
                "sentAt": message.sent_at,
                "attributes": message.attributes,
            }
            envelope = read(message)
            if isinstance(envelope, str):
                record["envelope"], record["raw"] = None, redact(message.body).text
            else:
                document = json.loads(message.body)  # as stored, unknown fields included
                document["observations"] = list(envelope.observations)  # redacted
                record["envelope"], record["valid"] = document, True
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")

        report = queue_scan.export(queue, write, limit=args.max, clock=time.monotonic, progress=progress)
    depth = report.depth
    document = {
        "out": str(path),
        "messages": report.read,
        "waitingAtStart": depth.visible,
        "inFlightAtStart": depth.in_flight,
        "approximate": True,  # the counts at the start are SQS's approximate ones
        "complete": report.complete,
        "stopped": report.stopped,
        "seconds": round(report.seconds, 2),
        "receives": report.receives,
        "longestHoldSeconds": report.longest_hold,
        "putBack": report.released,
        "putBackFailed": report.release_failed,
    }
    lines = [f"exported {report.read} message(s) to {path}; nothing was deleted"]
    if report.read < depth.visible:
        lines.append(f"  ≈{depth.visible} were waiting at the start; stopped: {report.stopped}")
    if depth.in_flight:
        lines.append(
            f"  ≈{depth.in_flight} were in flight (held by a replay or another reader): not in the file"
        )
    warning = queue_scan.release_warning(report)
    if warning:
        console.progress(warning)
    console.result(document, "\n".join(lines))
    return 0


# ---- replay --------------------------------------------------------------------------------------


def who_am_i(args: argparse.Namespace) -> dict[str, str]:
    identity = {"user": getpass.getuser(), "host": socket.gethostname()}
    try:
        import boto3

        region = args.region or os.environ.get("AWS_DEFAULT_REGION", "us-east-1")
        session = getattr(args, "aws_session", None) or boto3.session.Session(
            profile_name=args.aws_profile, region_name=region
        )
        sts = session.client(
            "sts", endpoint_url=getattr(args, "resolved_endpoint", None) or args.endpoint_url
        )
        arn = sts.get_caller_identity()["Arn"]
        identity["aws"] = str(arn)
    except Exception:  # noqa: BLE001, S110 - the audit line is best effort about the AWS identity
        pass
    return identity


def replay_speakers(args: argparse.Namespace, settings: Any) -> Any:
    """The Conversations client that tells who spoke, for envelopes parked before the webhook knew:
    --conversations-api-url, else CONVERSATIONS_API_BASE_URL, else the local stack's (with its queue)."""
    from memory_bridge.ports import StaticCredentials
    from memory_bridge.runtime import build_speakers

    state = local_stack_state() if args.queue_from_local_stack else None
    base_url, credentials = conversations_target(args, state)
    return build_speakers(
        settings.speakers, settings.chat_id_type, StaticCredentials(credentials), base_url=base_url
    )


def command_replay(args: argparse.Namespace, console: Console) -> int:
    from memory_bridge.config import ConfigError, ReplaySettings
    from memory_bridge.replay import ReplayOptions, progress_line
    from memory_bridge.runtime import build_replay_engine

    options = ReplayOptions(
        max_messages=args.max,
        rate=args.rate,
        kind=args.kind,
        since=parse_since(args.since),
        profile_id=args.profile_id,
        dry_run=args.dry_run,
        max_consecutive_failures=args.max_failures,
        store_id=args.store,
    )
    report_path = writable_path("--report", args.report) if args.report else None  # before any work
    queue = dead_letter_queue(args)
    table, ledger_client = ledger_location(args)
    environment, settings_from = replay_environment(args)
    try:
        settings = replace(ReplaySettings.for_operator(environment), idempotency_table=table)
    except ConfigError as error:
        raise UsageError(f"the replay settings from {settings_from}: {error}") from None
    # Memory is the local stack's only when the queue is: a queue named by --queue-url is replayed to
    # Memory named by --memory-api-url / MEMORY_API_BASE_URL (else Twilio's), never to a state file's URL.
    memory = memory_client(args, local_stack=args.queue_from_local_stack)
    speakers = replay_speakers(args, settings)
    started = time.monotonic()
    last = [0.0]
    interactive = console.err.isatty()

    def progress(summary: Any, remaining: int) -> None:
        now = time.monotonic()
        if now - last[0] < (0.2 if interactive else 2.0) and remaining:
            return
        last[0] = now
        line = progress_line(summary, remaining, now - started)
        console.err.write(("\r" + line) if interactive else (line + "\n"))
        console.err.flush()

    console.progress(
        ("DRY RUN: nothing will be posted or deleted. " if args.dry_run else "")
        + f"Replaying {args.kind} messages from {queue.queue_url}"
    )
    engine = build_replay_engine(
        settings,
        queue=queue,
        ledger_client_factory=lambda: ledger_client,
        memory=memory,
        speakers=speakers,
        progress=progress,
    )
    summary = engine.run(options)
    summary.notes.append(
        f"redacted as the functions do ({', '.join(sorted(settings.redaction_kinds)) or 'nothing'}, "
        f"from {settings_from}); ledger TTL {settings.idempotency_ttl_seconds} s"
    )
    if interactive:
        console.err.write("\n")
    report = summary.to_json()
    report["audit"] = {
        "who": who_am_i(args),
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "what": "dlq replay" + (" --dry-run" if args.dry_run else ""),
        "queueUrl": queue.queue_url,
        "memoryApi": memory.base_url,
    }
    if report_path is not None:
        write_private_file(report_path, json.dumps(report, indent=2))  # 0600, symlinks replaced
    console.result(report, summary_table(summary, args.show_content))
    return 0 if summary.complete else 1


def summary_table(summary: Any, show_content: bool) -> str:
    counts = summary.counts
    lines = []
    if summary.options.dry_run:
        lines.append(
            f"DRY RUN — would post {sum(p['observations'] for p in summary.plan)} observation(s) "
            f"from {sum(p['messages'] for p in summary.plan)} message(s) in "
            f"{sum(p['requests'] for p in summary.plan)} Memory request(s): "
            f"{sum(p['lookups'] for p in summary.plan)} profile lookup(s) (+1 each to create a profile "
            f"not found), {sum(p['checks'] for p in summary.plan)} List Observations check(s) (what a "
            "check finds posted saves its post), the rest posts:"
        )
        for entry in summary.plan:
            ambiguous = f", {entry['ambiguous']} ambiguous (checked first)" if entry["ambiguous"] else ""
            sids = f"  {', '.join(entry['messageSids'][:5])}" if show_content else ""
            lines.append(
                f"  {entry['profile']:<40} messages {entry['messages']:<4} observations "
                f"{entry['observations']:<4} requests {entry['requests']}{ambiguous}{sids}"
            )
    rows = [
        ("received", counts.received),
        ("replayed", counts.replayed),
        ("already posted (deleted)", counts.already_posted),
        ("failed again (put back)", counts.failed),
        ("left untouched", counts.left),
        ("busy elsewhere (left)", counts.busy),
        ("unchecked (left)", counts.unchecked),
        ("filtered out (left)", counts.filtered),
        ("malformed (left)", counts.malformed),
        ("sensitive numbers redacted", counts.redacted),
        ("Memory requests", counts.requests),
        ("  of which posts", counts.posts),
        ("observations posted", counts.observations_posted),
    ]
    lines.append("")
    lines.extend(f"  {name:<26} {value:>7}" for name, value in rows)
    lines.append(f"  {'seconds':<26} {summary.seconds:>7.1f}")
    if summary.stopped:
        lines.append(f"  stopped early: {summary.stopped}; the rest is untouched on the queue")
    if counts.filtered_permanent:
        lines.append(
            f"  {counts.filtered_permanent} permanent failure(s) left: Memory refused them (see "
            "`memory-bridge dlq peek` for the code and docs/runbook.md for the fix); once the cause is "
            "fixed, replay them with --kind permanent"
        )
    reasons = Counter(
        (row.get("stage"), row.get("status"), row.get("code"), row.get("kind")) for row in summary.failures
    )
    for (stage, status, code, kind), count in reasons.most_common(5):
        answer = f"HTTP {status}" if status else "no answer"
        twilio = f", Twilio code {code}" if code else ""
        lines.append(f"  {count} message(s): {kind} ({stage}, {answer}{twilio})")
    if any(status is None for _, status, _, _ in reasons):
        lines.append(
            "  Memory did not answer: check --memory-api-url / MEMORY_API_BASE_URL and the network (local "
            "stack: is `make run` running?); the messages stay on the queue"
        )
    lines.extend(f"  note: {note}" for note in summary.notes)
    for item in summary.malformed[:10]:
        lines.append(f"  malformed {item['messageId']}: {item['reason']}")
    return "\n".join(lines)


def register(commands: Any, parser_class: type) -> None:
    dlq = commands.add_parser("dlq", help="see and replay the dead-letter queue (docs/runbook.md)")
    sub = dlq.add_subparsers(
        dest="subcommand", metavar="SUBCOMMAND", parser_class=parser_class, required=True
    )

    def common(parser: argparse.ArgumentParser, memory: bool) -> None:
        add_queue_options(parser)
        if memory:
            add_memory_options(parser)
        else:
            group = parser.add_argument_group("AWS")
            group.add_argument("--region")
            group.add_argument("--profile", dest="aws_profile", type=aws_profile_name, help="AWS profile")
            group.add_argument("--endpoint-url", help="AWS endpoint (moto's server for the local stack)")
            parser.add_argument("--json", action="store_true", help="print the result as JSON")

    stats = sub.add_parser(
        "stats",
        help="depth, in flight, oldest age, counts by kind, status and Twilio code",
        description="The totals are SQS's approximate counts (≈). The breakdown (kind, status, Twilio code, "
        "what needs attention, the oldest) comes from a sample of at most --sample messages, each hidden "
        "for a few seconds at most and put back at once.",
    )
    stats.add_argument(
        "--sample",
        type=positive_int,
        default=1000,
        metavar="N",
        help="read at most N messages for the breakdown (default 1000)",
    )
    common(stats, memory=False)
    stats.set_defaults(handler=command_stats)

    peek = sub.add_parser(
        "peek",
        help="show envelopes without consuming them (content hidden)",
        description="Read at most N messages, each hidden for a few seconds at most, and put them back "
        "at once. SQS hands out messages in no promised order: these are a few, not the N oldest.",
    )
    peek.add_argument("-n", type=positive_int, default=10, help="how many (default 10)")
    peek.add_argument("--show-content", action="store_true", help="also show message content and addresses")
    common(peek, memory=False)
    peek.set_defaults(handler=command_peek)

    export = sub.add_parser(
        "export",
        help="copy every message to a JSON Lines file; nothing deleted",
        description="Copy every waiting message to a JSON Lines file, written as it is read; nothing is "
        "deleted. SQS cannot read a message without hiding it, so export HIDES EACH MESSAGE IT HAS READ "
        "UNTIL IT ENDS, then puts them all back: a replay started during an export of a big queue sees "
        "only what the export has not read yet. It stops at the number SQS reported waiting at the "
        "start, at --max, or when 3 receives in a row bring nothing new; progress goes to stderr.",
    )
    export.add_argument(
        "--out", required=True, help="FILE.jsonl (holds message content: treat as personal data)"
    )
    export.add_argument("--max", type=positive_int, metavar="N", help="export at most N messages")
    common(export, memory=False)
    export.set_defaults(handler=command_export)

    replay = sub.add_parser(
        "replay",
        help="post parked observations again; delete each message only after Memory accepted it",
        description="Receive, group by store and profile, post at most 10 observations per request, delete "
        "only after 202. Exit 0 when everything selected was replayed, 1 when some is left, "
        "2 on a usage error.",
    )
    replay.add_argument("--dry-run", action="store_true", help="show what would be posted; change nothing")
    replay.add_argument("--max", type=positive_int, help="replay at most this many messages")
    replay.add_argument(
        "--rate",
        type=positive(float, "requests per second"),
        help="at most this many Memory requests per second",
    )
    replay.add_argument(
        "--kind",
        choices=["retryable", "permanent", "all"],
        default="retryable",
        help="which failures (default retryable; replay permanent ones once the cause is fixed)",
    )
    replay.add_argument("--since", help="only messages that failed since (ISO time or 30m / 2h / 1d)")
    replay.add_argument(
        "--profile-id",
        help="only this customer's messages: parked under this Memory profile, or whose author resolves "
        "to it now (unresolved, or since merged; costs one Lookup per author)",
    )
    replay.add_argument(
        "--store",
        type=store_id_argument,
        help="post to this store (mem_store_…) whatever store the envelopes name: after a wrong "
        "MemoryStoreId was fixed; authors are resolved again in it",
    )
    replay.add_argument(
        "--table",
        help="the ledger table (the stack's IdempotencyTableName output; default: $IDEMPOTENCY_TABLE, "
        "the stack's, or the local stack's)",
    )
    replay.add_argument(
        "--max-failures",
        type=positive_int,
        default=5,
        help="stop after this many consecutive failures, leaving the rest untouched (default 5)",
    )
    replay.add_argument("--report", help="write a JSON report with an audit line to this file")
    add_conversations_url_option(replay)  # who spoke, for messages parked before the webhook knew
    replay.add_argument("--show-content", action="store_true", help="list MessageSids in the dry-run plan")
    common(replay, memory=True)
    replay.set_defaults(handler=command_replay)
