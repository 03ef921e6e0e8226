"""`memory-bridge backfill`: a Conversations history into Memory, resumable, exactly once with the
webhook and the replay (the ledger they share). Modules: history (reading Conversations), feed (the
webhook's mapping, per message), stream (the replay engine's queue port over the history),
checkpoints (per conversation, in the ledger table), report, command."""

from __future__ import annotations

import argparse
from typing import Any

from memory_bridge_cli.common import add_memory_options, positive, positive_int
from memory_bridge_cli.conversations import add_conversations_url_option, service_sid

DESCRIPTION = """\
Read conversations from the Conversations API and post each message to Memory as the webhook would
have: the same speakers and labels, redaction and split, occurredAt = the message's date_created.

Selectors (combine a date window with any one of the others):
  --since/--until   dates (2025-01-31, 2025-01-31T08:00Z) or spans back from now (30m, 6h, 30d);
                    conversations created in the window, and with --since the active and inactive
                    ones created before it too (an outage hits long conversations; name closed
                    ones with --conversation); only messages in the window
  --conversation    CH…, repeatable
  --address         one customer: +1555…, whatsapp:+1…, an email or chat identity
  --service         IS…: that Conversations service's conversations (default: the account's default)

Exactly once: the ledger that the webhook and `dlq replay` share (keyed by MessageSid) is read before
every post and claimed around it, so a message the webhook posted is never posted again, and a run
killed at any point and run again doubles nothing. A checkpoint per conversation (in the same table)
lets a new run skip what is done. What Memory refuses is parked on the dead-letter queue as the
webhook parks it. Exit 0 when everything selected is in Memory (or parked), 1 when something is left
for the next run, 2 on a usage error."""


def register(commands: Any, parser_class: type) -> None:  # noqa: ARG001 - as dlq.register
    from memory_bridge_cli.backfill.command import command_backfill
    from memory_bridge_cli.dlq import add_queue_options, store_id_argument

    parser = commands.add_parser(
        "backfill",
        help="bring a Conversations history into Memory, resumable, exactly once with the webhook",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--since", help="from this time (ISO 8601) or this long ago (30m, 6h, 30d)")
    parser.add_argument("--until", help="up to this time (ISO 8601) or this long ago")
    parser.add_argument(
        "--conversation", action="append", metavar="CH…", type=_conversation_sid, help="repeatable"
    )
    parser.add_argument("--address", help="one customer's conversations (ParticipantConversations)")
    parser.add_argument("--service", type=service_sid, help="the Conversations service (IS…)")
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="count conversations, messages, customers and Memory requests (and the time at --rate); "
        "post, park and write nothing",
    )
    parser.add_argument(
        "--rate",
        type=positive(float, "requests per second"),
        help="at most this many Memory requests per second",
    )
    parser.add_argument(
        "--store", type=store_id_argument, help="mem_store_… (default: the stack's, or $MEMORY_STORE_ID)"
    )
    parser.add_argument(
        "--table", help="the ledger table (default: $IDEMPOTENCY_TABLE, the stack's or the local stack's)"
    )
    parser.add_argument(
        "--max-failures",
        type=positive_int,
        default=5,
        help="stop after this many Memory failures in a row (default 5): an outage parks nothing more",
    )
    parser.add_argument("--report", help="write a JSON report with an audit line to this file")
    add_conversations_url_option(parser)
    add_queue_options(parser)
    add_memory_options(parser)
    parser.set_defaults(handler=command_backfill)


def _conversation_sid(text: str) -> str:
    import re

    if not re.fullmatch(r"CH[0-9a-fA-F]{32}", text):
        raise argparse.ArgumentTypeError(f"must be a conversation SID, CH + 32 hex digits; got {text!r}")
    return text
