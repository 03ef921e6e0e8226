"""`memory-bridge setup`: from nothing to a deployed stack (what `make deploy` runs).

1. create or reuse the Memory store by name; wait until it is ACTIVE (never deploy against one that is not)
2. create or update the Secrets Manager secret from the TWILIO_* variables (never echoed)
3. sam build && sam deploy, with the store id and the secret as parameters (defaults in samconfig.toml)
4. print the webhook URL and the exact Conversations configuration to set
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

from memory_bridge.domain.credentials import CredentialsError, TwilioCredentials, credentials_from_env
from memory_bridge_cli.common import (
    NO_REGION,
    Console,
    UsageError,
    WorkFailed,
    add_memory_options,
    explain,
    store_tools,
)

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def credentials_for_secret() -> TwilioCredentials:
    try:
        credentials = credentials_from_env(os.environ)
    except CredentialsError as error:
        raise UsageError(str(error)) from None
    if credentials is None or not credentials.account_sid or not credentials.auth_token:
        raise UsageError(
            "setup needs TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN (the token verifies Twilio's signatures); "
            "TWILIO_API_KEY and TWILIO_API_SECRET are optional and used for Memory calls when set"
        )
    return credentials


def secret_document(credentials: TwilioCredentials) -> dict[str, str]:
    document = {"account_sid": credentials.account_sid, "auth_token": credentials.auth_token}
    if credentials.api_key_sid and credentials.api_key_secret:
        document.update(api_key_sid=credentials.api_key_sid, api_key_secret=credentials.api_key_secret)
    return document


def put_secret(args: argparse.Namespace, document: dict[str, str]) -> tuple[str, bool, list[str]]:
    """Create the secret, or add a new version; returns (ARN, created, names of the fields kept).

    A new version keeps every field of the current value that `document` does not set: above all
    `previous_auth_token`, which the webhook accepts signatures from while a token rotation is under way
    (dropping it would turn every webhook signed with the old token into a 403 mid-rotation).
    """
    import boto3

    session = boto3.session.Session(profile_name=args.aws_profile, region_name=args.region)
    client = session.client("secretsmanager", endpoint_url=args.endpoint_url)
    try:
        try:
            return (
                str(
                    client.create_secret(
                        Name=args.secret_name,
                        SecretString=json.dumps(document),
                        Description="memory-bridge Twilio credentials",
                    )["ARN"]
                ),
                True,
                [],
            )
        except client.exceptions.ResourceExistsException:
            pass
        current = current_secret_fields(client, args.secret_name)
        kept = sorted(name for name in current if name not in document)
        body = json.dumps({**current, **document})
        return str(client.put_secret_value(SecretId=args.secret_name, SecretString=body)["ARN"]), False, kept
    except WorkFailed:
        raise
    except Exception as error:  # noqa: BLE001 - the message must not carry the value
        raise WorkFailed(
            f"could not write secret {args.secret_name!r}: {type(error).__name__}; "
            "check --region/--profile and secretsmanager permissions"
        ) from None


def current_secret_fields(client: Any, name: str) -> dict[str, Any]:
    """The secret's current JSON object, to be kept in the new version. Refuses rather than guesses."""
    try:
        text = client.get_secret_value(SecretId=name).get("SecretString") or "{}"
    except client.exceptions.ResourceNotFoundException:
        return {}  # scheduled for deletion or just deleted: nothing to keep
    except Exception as error:  # noqa: BLE001 - the message must not carry the value
        raise WorkFailed(
            f"could not read secret {name!r} to keep its other fields (previous_auth_token during a "
            f"token rotation): {type(error).__name__}; it was not changed. Allow "
            "secretsmanager:GetSecretValue, or update it by hand"
        ) from None
    try:
        current = json.loads(text)
    except ValueError:
        current = None
    if not isinstance(current, dict):
        raise WorkFailed(
            f"secret {name!r} does not hold a JSON object, so setup cannot keep its other fields; it was "
            "not changed. Fix or delete it, then run setup again"
        )
    return current


def check_aws(args: argparse.Namespace) -> str:
    """Before anything is created in Memory: credentials that work, a region, and (to deploy) sam.

    Returns a line for the progress output. Raises UsageError naming what is missing and the fix, so
    that a run without AWS access stops before it makes a store it cannot finish deploying.
    """
    import boto3

    # The same lines the other commands give (common.explain), plus what setup promises: nothing made.
    try:
        session = boto3.session.Session(profile_name=args.aws_profile, region_name=args.region)
        region = session.region_name
        if not region:
            raise UsageError(f"{NO_REGION}. Nothing was created.")
        identity = session.client("sts", endpoint_url=args.endpoint_url).get_caller_identity()
    except UsageError:
        raise
    except Exception as error:  # noqa: BLE001 - expired, refused or unreachable: named below
        explained = explain(error)
        reason = (
            explained[1]
            if explained
            else f"AWS credentials do not work ({type(error).__name__}): renew them (`aws sso login`) or "
            "check --profile/--region"
        )
        raise UsageError(f"{reason}, then run again. Nothing was created.") from None
    line = f"AWS account {identity.get('Account')} in {region}"
    if not args.skip_deploy:
        line += f"; sam at {sam_executable()}"
    return line


def sam_executable() -> str:
    bundled = PROJECT_ROOT / ".tools" / "sam" / "bin" / "sam"
    if bundled.exists():
        return str(bundled)
    found = shutil.which("sam")
    if not found:
        raise UsageError(
            "aws-sam-cli not found: run `make tools` (or put `sam` on PATH). Nothing was created."
        )
    return found


def sam_commands(
    sam: str,
    stack: str,
    store_id: str,
    secret: str,
    region: str | None,
    profile: str | None,
    extra_parameters: list[str],
) -> list[list[str]]:
    common = [*(["--region", region] if region else []), *(["--profile", profile] if profile else [])]
    overrides = [f"MemoryStoreId={store_id}", f"TwilioCredentialsSecret={secret}", *extra_parameters]
    return [
        [sam, "build"],
        [sam, "deploy", "--stack-name", stack, "--parameter-overrides", *overrides, *common],
    ]


def stack_webhook_url(args: argparse.Namespace) -> str | None:
    import boto3

    session = boto3.session.Session(profile_name=args.aws_profile, region_name=args.region)
    try:
        stack = session.client("cloudformation").describe_stacks(StackName=args.stack_name)["Stacks"][0]
    except Exception:  # noqa: BLE001 - printed as "see the stack's outputs" instead
        return None
    return next((o["OutputValue"] for o in stack.get("Outputs", []) if o["OutputKey"] == "WebhookUrl"), None)


def conversations_instructions(webhook_url: str) -> str:
    return "\n".join(
        [
            "Configure Twilio Conversations (Console → Conversations → Services → your service → Webhooks):",
            f"  Post-event URL   {webhook_url}",
            "  Method           POST",
            "  Filters          onMessageAdded",
            "  (never as a pre-event URL). Or with the API:",
            "  curl -X POST \\",
            "    https://conversations.twilio.com/v1/Services/$CHAT_SERVICE_SID/Configuration/Webhooks \\",
            f"    --data-urlencode 'PostWebhookUrl={webhook_url}' --data-urlencode 'Method=POST' \\",
            "    --data-urlencode 'Filters=onMessageAdded' -u \"$TWILIO_ACCOUNT_SID:$TWILIO_AUTH_TOKEN\"",
            "Smoke test:",
            f"  .venv/bin/memory-bridge send --url {webhook_url} --from +15555550100 --body 'hello'",
        ]
    )


def command_setup(args: argparse.Namespace, console: Console) -> int:
    from memory_bridge_cli.stores import (
        ApiFailure,
        StoreCreated,
        StoreFailed,
        StoreInputError,
        StoreLimitReached,
        StorePending,
        create_store,
        validate_display_name,
        wait_until_active,
    )

    try:
        validate_display_name(args.display_name)
    except StoreInputError as error:
        raise UsageError(str(error)) from None
    credentials = credentials_for_secret()
    steps = 3 if args.skip_deploy else 4
    console.progress(f"[0/{steps}] Checks: {check_aws(args)}")
    # What is deployed talks to Twilio's Memory (or --memory-api-url): a running local stack is not it.
    client, backoff, watch = store_tools(args, console, local_stack=False)
    console.progress(
        f"[1/{steps}] Memory store {args.display_name!r}: create or reuse, then wait until ACTIVE"
    )
    result = create_store(
        client,
        args.display_name,
        args.description,
        wait=True,
        timeout=args.timeout,
        backoff=backoff,
        watch=watch,
    )
    if isinstance(result, StoreLimitReached):
        names = ", ".join(f"{s.get('displayName')} ({s.get('id')})" for s in result.existing)
        raise WorkFailed(f"the account has reached its Memory store limit (520044); reuse one: {names}")
    if isinstance(result, StoreFailed):
        raise WorkFailed(
            f"store creation failed: {result.error.get('title')} (code {result.error.get('code')})"
        )
    if isinstance(result, StorePending):
        raise WorkFailed(
            f"the store is still provisioning; resume later with `memory-bridge operations show "
            f"{result.operation_id}`. Not deploying against a store that is not ACTIVE."
        )
    assert isinstance(result, StoreCreated)
    try:
        store = wait_until_active(client, result.store_id, args.timeout, backoff, watch)
    except ApiFailure as error:
        raise WorkFailed(f"{error}. Not deploying against a store that is not ACTIVE.") from None
    console.progress(f"      {store['id']} is ACTIVE" + (" (reused)" if result.existed else " (created)"))

    console.progress(
        f"[2/{steps}] Secret {args.secret_name!r} from the TWILIO_* variables (values not shown)"
    )
    arn, created, kept = put_secret(args, secret_document(credentials))
    console.progress(
        f"      {'created' if created else 'updated'} {arn}"
        + (f" (kept from the current value: {', '.join(kept)})" if kept else "")
    )

    document: dict[str, Any] = {"storeId": store["id"], "secretArn": arn, "stackName": args.stack_name}
    if args.skip_deploy:
        console.result(document, f"store {store['id']}\nsecret {arn}\n(--skip-deploy: sam not run)")
        return 0
    console.progress(f"[3/{steps}] sam build && sam deploy --stack-name {args.stack_name}")
    sam = sam_executable()
    env = {**os.environ, "SAM_CLI_TELEMETRY": "0"}
    for command in sam_commands(
        sam,
        args.stack_name,
        store["id"],
        args.secret_name,
        args.region,
        args.aws_profile,
        args.parameter or [],
    ):
        completed = subprocess.run(command, cwd=PROJECT_ROOT, env=env, check=False)  # noqa: S603 - own argv
        if completed.returncode != 0:
            raise WorkFailed(
                f"`{' '.join(command[:2])}` failed (exit {completed.returncode}); see its output above"
            )
    console.progress(f"[4/{steps}] Outputs")
    webhook_url = stack_webhook_url(args) or "<the stack's WebhookUrl output>"
    document["webhookUrl"] = webhook_url
    console.result(document, conversations_instructions(webhook_url))
    return 0


def register(commands: Any) -> None:
    setup = commands.add_parser(
        "setup",
        help="store + secret + sam deploy: from nothing to a deployed stack (what `make deploy` runs)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    setup.add_argument("--display-name", required=True, help="the Memory store to create or reuse")
    setup.add_argument("--description", help="store description, 1-128 characters")
    setup.add_argument(
        "--stack-name", default="memory-bridge", help="CloudFormation stack (default memory-bridge)"
    )
    setup.add_argument("--secret-name", default="memory-bridge/twilio", help="Secrets Manager secret name")
    setup.add_argument(
        "--timeout", type=float, default=600.0, help="seconds to wait for the store (default 600)"
    )
    setup.add_argument(
        "--parameter",
        action="append",
        metavar="KEY=VALUE",
        help="another template parameter, e.g. AgentIdentities=alice,bob (repeatable)",
    )
    setup.add_argument("--skip-deploy", action="store_true", help="only the store and the secret")
    add_memory_options(setup)
    setup.set_defaults(handler=command_setup)
