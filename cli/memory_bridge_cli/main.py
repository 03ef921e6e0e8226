"""memory-bridge: the command line for the people who deploy, smoke-test and run the bridge.

  memory-bridge send ...                 sign and POST an onMessageAdded webhook (local stack or deployed)
  memory-bridge observations list ...    read a profile's observations back from Memory
  memory-bridge stores create|list|show  Memory stores, with the asynchronous creation followed
  memory-bridge operations show ID       one store operation
  memory-bridge dlq stats|peek|export|replay   the dead-letter queue, for on-call (docs/runbook.md)
  memory-bridge setup ...                store + secret + sam deploy (what `make deploy` runs)
  memory-bridge doctor [--stack-name S]  check a deployed stack (or the local one) end to end
  memory-bridge erase --address A | --profile-id P   forget one customer (GDPR Art. 17)

Exit codes: 0 done; 1 the work failed (Memory refused, a store failed, a webhook was not 2xx);
2 a usage or configuration error (the message names the rule and what to do).
Results go to stdout (`--json` for scripts), progress lines to stderr.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any, TextIO

from memory_bridge.config import STORE_ID_PATTERN
from memory_bridge.domain.identifiers import Identifier, NotACustomer, identifier_for
from memory_bridge_cli import backfill, deploy, dlq, doctor, erase, send
from memory_bridge_cli.common import (
    Console,
    Parser,
    UsageError,
    WorkFailed,
    add_memory_options,
    e164_violation,
    explain,
    fail_on,
    failure_hint,
    forget_stale_state,
    memory_client,
    positive_float,
    positive_int,
    stale_state_note,
    store_id_for,
    store_tools,
)

# ---- observations -----------------------------------------------------------------------------


def resolve_address(client: Any, store_id: str, address: str) -> str:
    identifier = identifier_for(
        address, chat_id_type=os.environ.get("CHAT_ID_TYPE", "chat_identity"), agent_identities=frozenset()
    )
    if isinstance(identifier, NotACustomer):
        raise UsageError(f"--address {address!r} is not a customer address")
    assert isinstance(identifier, Identifier)
    found = fail_on(client.lookup_profiles(store_id, identifier), "profile lookup")
    profiles = (found.body or {}).get("profiles") or []
    if not profiles:
        raise WorkFailed(f"no profile has {identifier.id_type} {address!r} in {store_id}")
    return str(profiles[0])


def memory_profile_id(text: str) -> str:
    """An argparse type for --profile-id: a Memory profile id; an address goes to --address."""
    if not text.startswith("mem_profile_"):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a Memory profile id (mem_profile_…); to find one by address, use --address"
        )
    return text


def command_observations_list(args: argparse.Namespace, console: Console) -> int:
    violation = e164_violation(args.address)
    if violation:
        raise UsageError(f"--address {args.address!r}: {violation}")
    client = memory_client(args)
    store_id = store_id_for(args)
    if bool(args.profile_id) == bool(args.address):
        raise UsageError(
            "pass exactly one of --profile-id mem_profile_… or --address (+1555…, whatsapp:+1…, email)"
        )
    profile_id = args.profile_id or resolve_address(client, store_id, args.address)
    observations: list[dict[str, Any]] = []
    token = None
    while len(observations) < args.limit:
        page = (
            fail_on(
                client.list_observations(
                    store_id, profile_id, page_size=min(50, args.limit), page_token=token
                ),
                "list observations",
            ).body
            or {}
        )
        observations.extend(page.get("observations") or [])
        token = (page.get("meta") or {}).get("nextToken")
        if not token:
            break
    observations = observations[: args.limit]
    lines = [f"{len(observations)} observation(s) on {profile_id}:"]
    for item in observations:
        content = str(item.get("content", "")).replace("\n", " ")
        lines.append(f"  {item.get('occurredAt', '?'):<26} {item.get('source', ''):<22} {content[:70]}")
    console.result(
        {"storeId": store_id, "profileId": profile_id, "observations": observations}, "\n".join(lines)
    )
    return 0


# ---- stores and operations ------------------------------------------------------------------


def describe_store(store: dict[str, Any]) -> str:
    name, status = store.get("displayName", ""), store.get("status", "")
    return f"{store.get('id')}  {name:<24} {status:<12} {store.get('description') or ''}"


def command_stores_create(args: argparse.Namespace, console: Console) -> int:
    from memory_bridge_cli.stores import (
        StoreCreated,
        StoreFailed,
        StoreInputError,
        StoreLimitReached,
        StorePending,
        create_store,
        validate_description,
        validate_display_name,
    )

    try:  # inputs are checked before anything is sent, even before credentials are looked for
        validate_display_name(args.display_name)
        validate_description(args.description)
    except StoreInputError as error:
        raise UsageError(str(error)) from None
    client, backoff, watch = store_tools(args, console)
    console.progress(f"Creating Memory store {args.display_name!r} (or reusing one by that name)…")
    result = create_store(
        client,
        args.display_name,
        args.description,
        wait=not args.no_wait,
        timeout=args.timeout,
        backoff=backoff,
        watch=watch,
    )
    if isinstance(result, StoreCreated):
        note = "already exists; nothing created" if result.existed else "created"
        console.result(
            {"storeId": result.store_id, "existed": result.existed, "operationId": result.operation_id},
            f"{result.store_id}\n(store {args.display_name!r} {note})",
        )
        return 0
    if isinstance(result, StorePending):
        hint = f"memory-bridge operations show {result.operation_id}"
        text = (
            f"Still provisioning after {args.timeout:g}s. Operation {result.operation_id}."
            f"\nResume with: {hint}"
            if result.timed_out
            else f"Accepted. Operation {result.operation_id}.\nFollow with: {hint}"
        )
        console.result(
            {"operationId": result.operation_id, "timedOut": result.timed_out, "resume": hint}, text
        )
        return 1 if result.timed_out else 0
    if isinstance(result, StoreFailed):
        failure = result.error
        console.result(
            {"operationId": result.operation_id, "error": failure},
            f"Store creation FAILED: {failure.get('title', '')} (code {failure.get('code', '?')}): "
            f"{failure.get('detail', '')}",
        )
        return 1
    assert isinstance(result, StoreLimitReached)
    listing = "\n".join("  " + describe_store(s) for s in result.existing)
    console.result(
        {"error": "store limit reached", "message": result.message, "stores": result.existing},
        f"The account has reached its Memory store limit (Twilio error 520044): {result.message}.\n"
        f"Reuse one of these with --display-name, or delete one:\n{listing}",
    )
    return 1


def command_stores_list(args: argparse.Namespace, console: Console) -> int:
    from memory_bridge_cli.stores import list_stores

    client, backoff, _ = store_tools(args, console)
    stores = list_stores(client, backoff)
    text = "\n".join([f"{len(stores)} store(s):", *("  " + describe_store(s) for s in stores)])
    console.result({"stores": stores}, text)
    return 0


def command_stores_show(args: argparse.Namespace, console: Console) -> int:
    if not STORE_ID_PATTERN.match(args.store_id):
        raise UsageError(f"STORE_ID must match {STORE_ID_PATTERN.pattern}, got {args.store_id!r}")
    client, backoff, _ = store_tools(args, console)
    store = backoff.call("fetch store", lambda: client.fetch_store(args.store_id)).body
    console.result(store, describe_store(store))
    return 0


def command_operations_show(args: argparse.Namespace, console: Console) -> int:
    if not args.operation_id or len(args.operation_id) > 512:
        raise UsageError("OPERATION_ID must be 1 to 512 characters")
    client, backoff, _ = store_tools(args, console)
    operation = backoff.call("fetch operation", lambda: client.fetch_operation(args.operation_id)).body
    text = f"{operation.get('operationId')}  {operation.get('status')}"
    if operation.get("result"):
        text += f"  → {operation['result'].get('id')}"
    if operation.get("error"):
        failure = operation["error"]
        text += f"  {failure.get('title')} (code {failure.get('code')}): {failure.get('detail', '')}"
    console.result(operation, text)
    return 0 if operation.get("status") != "FAILED" else 1


# ---- parser -----------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="memory-bridge", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)

    send.register(commands)

    observations = commands.add_parser("observations", help="read observations back from Memory")
    obs_commands = observations.add_subparsers(
        dest="subcommand", metavar="SUBCOMMAND", parser_class=Parser, required=True
    )
    obs_list = obs_commands.add_parser("list", help="list a profile's observations (newest first)")
    obs_list.add_argument("--profile-id", type=memory_profile_id, help="the Memory profile: mem_profile_… id")
    obs_list.add_argument(
        "--address", help="find the profile by address instead: +1555…, whatsapp:+1…, email"
    )
    obs_list.add_argument("--store", help="mem_store_… (default: $MEMORY_STORE_ID or the local stack's)")
    obs_list.add_argument("--limit", type=positive_int, default=20, help="at most this many (default 20)")
    add_memory_options(obs_list)
    obs_list.set_defaults(handler=command_observations_list)

    stores = commands.add_parser("stores", help="create, list and show Memory stores")
    store_commands = stores.add_subparsers(
        dest="subcommand", metavar="SUBCOMMAND", parser_class=Parser, required=True
    )
    create = store_commands.add_parser(
        "create",
        help="create a store (or reuse one by name) and wait until its operation completes",
        description="Create a Memory store and follow its asynchronous operation until it completes. "
        "Idempotent by name: an existing store with the same displayName is reused.",
    )
    create.add_argument(
        "--display-name", required=True, help="1-64 letters, digits and hyphens; unique per account"
    )
    create.add_argument("--description", help="1-128 characters")
    create.add_argument("--no-wait", action="store_true", help="return the operation id at once")
    create.add_argument("--timeout", type=positive_float, default=300.0, help="seconds to wait (default 300)")
    add_memory_options(create)
    create.set_defaults(handler=command_stores_create)
    listing = store_commands.add_parser("list", help="every store: id, name, status, description")
    add_memory_options(listing)
    listing.set_defaults(handler=command_stores_list)
    show = store_commands.add_parser("show", help="one store")
    show.add_argument("store_id", metavar="STORE_ID")
    add_memory_options(show)
    show.set_defaults(handler=command_stores_show)

    operations = commands.add_parser("operations", help="store operations")
    op_commands = operations.add_subparsers(
        dest="subcommand", metavar="SUBCOMMAND", parser_class=Parser, required=True
    )
    op_show = op_commands.add_parser("show", help="one operation: status, result or error")
    op_show.add_argument("operation_id", metavar="OPERATION_ID")
    add_memory_options(op_show)
    op_show.set_defaults(handler=command_operations_show)

    dlq.register(commands, Parser)
    backfill.register(commands, Parser)
    erase.register(commands)
    deploy.register(commands)
    doctor.register(commands)
    return parser


def main(argv: Sequence[str] | None = None, out: TextIO | None = None, err: TextIO | None = None) -> int:
    out, err = out or sys.stdout, err or sys.stderr
    parser = build_parser()
    with contextlib.redirect_stderr(err):  # argparse's own errors go where ours go
        args = parser.parse_args(argv)
    handler: Callable[[argparse.Namespace, Console], int] | None = getattr(args, "handler", None)
    if handler is None:
        parser.print_help(err)
        return 2
    console = Console(out, err, json_output=bool(getattr(args, "json", False)))
    forget_stale_state()
    code = run_command(handler, args, console, out, err)
    note = stale_state_note()
    if code not in (0, 141) and note:
        print(f"memory-bridge: note: {note}", file=err)
    return code


def run_command(
    handler: Callable[[argparse.Namespace, Console], int],
    args: argparse.Namespace,
    console: Console,
    out: TextIO,
    err: TextIO,
) -> int:
    """The command's exit code; every failure becomes one line on `err` (MEMORY_BRIDGE_DEBUG=1 for more)."""
    try:
        code = handler(args, console)
        out.flush()
        return code
    except UsageError as error:
        print(f"memory-bridge: error: {error}", file=err)
        return 2
    except WorkFailed as error:
        print(f"memory-bridge: {error}", file=err)
        return 1
    except KeyboardInterrupt:
        print("memory-bridge: interrupted", file=err)
        return 130
    except BrokenPipeError:
        # The reader went away (`dlq stats | head`): end quietly, as Unix tools do. Point stdout at
        # /dev/null so that the interpreter's own flush at exit does not raise again.
        with contextlib.suppress(OSError, ValueError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), out.fileno())
        return 141
    except Exception as error:
        from memory_bridge_cli.stores import ApiFailure

        if isinstance(error, ApiFailure):
            print(f"memory-bridge: {error}{failure_hint(error.failure.status)}", file=err)
            return 1
        explained = explain(error)
        if explained and not os.environ.get("MEMORY_BRIDGE_DEBUG"):
            code, reason = explained
            print(f"memory-bridge: {'error: ' if code == 2 else ''}{reason}", file=err)
            return code
        print(
            f"memory-bridge: unexpected {type(error).__name__}: {error}. "
            "Run again with MEMORY_BRIDGE_DEBUG=1 for details.",
            file=err,
        )
        if os.environ.get("MEMORY_BRIDGE_DEBUG"):
            raise
        return 1


if __name__ == "__main__":
    sys.exit(main())
