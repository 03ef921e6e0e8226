"""`memory-bridge erase`: forget one customer. Modules: plan (what to delete and tombstone, pure),
steps (the bounded outside calls), command (the order, the report)."""

from __future__ import annotations

import argparse
from typing import Any

from memory_bridge_cli.common import add_memory_options
from memory_bridge_cli.conversations import add_conversations_url_option, service_sid

DESCRIPTION = """\
Forget one customer (GDPR Art. 17, CCPA): what the bridge wrote on their Memory profile, their
parked envelopes, and (first) a tombstone on each of their past messages so that no replay, backfill
or late Twilio retry posts one again.

  --address      +1555…, whatsapp:+1…, an email or a chat identity (the webhook's identifier rules)
  --profile-id   mem_profile_…: its identifiers are read from Memory to find the conversations
  default        delete the observations the bridge wrote (its sources: OBSERVATION_SOURCE, -agent,
                 -brand); what other writers put on the profile stays
  --whole-profile  delete the profile itself: every observation, trait and identifier

Messages they send after the erase are new data and are posted as usual (a fresh profile after
--whole-profile). Exit 0 done (a second run deletes nothing and says so), 1 something left (run the
same command again), 2 usage."""


def register(commands: Any) -> None:
    from memory_bridge_cli.dlq import add_queue_options, store_id_argument
    from memory_bridge_cli.erase.command import command_erase

    parser = commands.add_parser(
        "erase",
        help="forget one customer: the bridge's observations (or the profile), parked envelopes, tombstones",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--address", help="the customer: +1555…, whatsapp:+1…, an email or a chat identity")
    parser.add_argument("--profile-id", type=_profile_id, help="the customer's Memory profile")
    parser.add_argument("--whole-profile", action="store_true", help="delete the profile itself")
    parser.add_argument("--dry-run", action="store_true", help="say what would be deleted; change nothing")
    parser.add_argument(
        "--report", help="write what was deleted (ids and counts, no content) to this file, 0600, for the DPO"
    )
    parser.add_argument("--service", type=service_sid, help="the Conversations service (IS…)")
    parser.add_argument(
        "--store", type=store_id_argument, help="mem_store_… (default: the stack's, or $MEMORY_STORE_ID)"
    )
    parser.add_argument(
        "--table", help="the ledger table (default: $IDEMPOTENCY_TABLE, the stack's or the local stack's)"
    )
    add_conversations_url_option(parser)
    add_queue_options(parser)
    add_memory_options(parser)
    parser.set_defaults(handler=command_erase)


def _profile_id(text: str) -> str:
    if not text.startswith("mem_profile_"):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a Memory profile id (mem_profile_…); for an address, use --address"
        )
    return text
