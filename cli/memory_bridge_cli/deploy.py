"""`memory-bridge setup`: from nothing to a deployed stack (what `make deploy` runs).

0. check AWS, sam and Conversations (its webhook is read: one another URL holds stops setup here)
1. create or reuse the Memory store by name; wait until it is ACTIVE (never deploy against one that is not)
2. make the store's identity resolution cover every idType the bridge sends (phone, whatsapp, email
   and CHAT_ID_TYPE): read the settings, add what is missing, keep the rest, follow the operation
3. create or update the Secrets Manager secret from the TWILIO_* variables (never echoed)
4. sam build && sam deploy, with the store id and the secret as parameters (defaults in samconfig.toml)
5. point the Conversations post-event webhook at the stack's WebhookUrl: method POST, the filters the
   bridge handles; account-level, or one service's with --conversations-service. A webhook that calls
   another URL is left alone (exit 2) unless --force.
Run again, it changes nothing that is already right, and says so.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

from memory_bridge.config import ID_TYPE_PATTERN
from memory_bridge.domain.credentials import CredentialsError, TwilioCredentials, credentials_from_env
from memory_bridge.domain.events import WEBHOOK_FILTERS
from memory_bridge.domain.identifiers import identifier_types
from memory_bridge_cli.common import (
    NO_REGION,
    Console,
    UsageError,
    WorkFailed,
    add_memory_options,
    aws_client_config,
    checked_memory_url,
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
    """The stack's WebhookUrl output; None when the stack (or the output) is not there."""
    import boto3

    session = boto3.session.Session(profile_name=args.aws_profile, region_name=args.region)
    client = session.client("cloudformation", endpoint_url=args.endpoint_url, config=aws_client_config())
    try:
        stack = client.describe_stacks(StackName=args.stack_name)["Stacks"][0]
    except Exception:  # noqa: BLE001 - not deployed yet, or not readable: said where it matters
        return None
    return next((o["OutputValue"] for o in stack.get("Outputs", []) if o["OutputKey"] == "WebhookUrl"), None)


def summary(document: dict[str, Any]) -> str:
    url = document.get("webhookUrl") or "<the stack's WebhookUrl output>"
    lines = [f"store {document['storeId']}", f"secret {document['secretArn']}"]
    webhook = document.get("webhook")
    if webhook:
        lines.append(
            f"Conversations ({webhook['scope']}) post-event webhook → {url}, "
            f"POST, {', '.join(webhook['filters'])}"
        )
    else:
        lines.append(f"Conversations webhook not configured: {document.get('webhookSkipped')}")
    lines += [
        "Smoke test:",
        f"  .venv/bin/memory-bridge send --url {url} --from +15555550100 --body 'hello'",
    ]
    return "\n".join(lines)


def chat_id_type(args: argparse.Namespace) -> str:
    """The ChatIdType the stack gets: --parameter ChatIdType=…, else the template's default (the same
    as the code's), so that the store learns the idType the deployed webhook sends."""
    chosen = "chat_identity"
    for parameter in args.parameter or []:
        name, _, value = parameter.partition("=")
        if name == "ChatIdType":
            chosen = value
    if not ID_TYPE_PATTERN.match(chosen):
        raise UsageError(f"ChatIdType must match {ID_TYPE_PATTERN.pattern}, got {chosen!r}")
    return chosen


class Setup:
    """One run of `memory-bridge setup`: each step a method, in order; `document` collects the result."""

    def __init__(self, args: argparse.Namespace, console: Console):
        self.args, self.console = args, console
        self.total = 4 if args.skip_deploy else 5
        self.document: dict[str, Any] = {"stackName": args.stack_name}
        self.webhook_url: str | None = None
        self.conversations: Any = None

    def step(self, number: int, line: str) -> None:
        self.console.progress(f"[{number}/{self.total}] {line}")

    def run(self) -> int:
        args = self.args
        from memory_bridge_cli.stores import StoreInputError, validate_display_name

        try:
            validate_display_name(args.display_name)
        except StoreInputError as error:
            raise UsageError(str(error)) from None
        self.wanted = identifier_types(chat_id_type(args))
        if args.webhook_url:
            self.webhook_url = checked_memory_url("--webhook-url", args.webhook_url)
        from memory_bridge_cli.conversations import conversations_url

        conversations_url(args)  # a URL that breaks the rule is refused before anything is made
        credentials = credentials_for_secret()
        self.step(0, f"Checks: {check_aws(args)}")
        self.check_conversations()
        # What is deployed talks to Twilio's Memory (or --memory-api-url): a running local stack is not it.
        client, _backoff, watch = store_tools(args, self.console, local_stack=False)
        store_id = self.store(client, watch)
        self.identity(client, store_id, watch)
        self.step(3, f"Secret {args.secret_name!r} from the TWILIO_* variables (values not shown)")
        arn, created, kept = put_secret(args, secret_document(credentials))
        self.console.progress(
            f"      {'created' if created else 'updated'} {arn}"
            + (f" (kept from the current value: {', '.join(kept)})" if kept else "")
        )
        self.document.update(storeId=store_id, secretArn=arn)
        if not args.skip_deploy:
            self.deploy(store_id)
        self.webhook()
        self.console.result(self.document, summary(self.document))
        return 0

    def check_conversations(self) -> None:
        """Before anything is made: where the webhook will point, and whether it may be taken.

        A webhook that another URL holds stops setup here (exit 2), not after a deploy. With
        --skip-deploy and no stack yet, there is no URL to set: the webhook is left for a later run.
        """
        from memory_bridge_cli.conversations import (
            ConversationsClient,
            WebhookConflict,
            conversations_target,
            plan_webhook,
            read_webhook,
            scope_name,
        )

        args = self.args
        self.webhook_url = self.webhook_url or stack_webhook_url(args)
        if args.skip_deploy and self.webhook_url is None:
            self.document["webhookSkipped"] = (
                f"--skip-deploy and no stack {args.stack_name!r} with a WebhookUrl output yet; pass "
                "--webhook-url, or run setup without --skip-deploy"
            )
            self.console.progress(f"      Conversations: {self.document['webhookSkipped']}")
            return
        # Never the local stack's Conversations: what is deployed is called by Twilio's.
        base_url, credentials = conversations_target(args, None)
        self.conversations = ConversationsClient(base_url, credentials)
        current = self.conversations_call(
            lambda: read_webhook(self.conversations, args.conversations_service)
        )
        expected = self.webhook_url or "<this stack's WebhookUrl, once deployed>"
        try:
            plan_webhook(
                current, expected, WEBHOOK_FILTERS, service=args.conversations_service, force=args.force
            )
        except WebhookConflict as error:
            raise UsageError(f"{error}. Nothing was created.") from None
        held = current.get("post_webhook_url") or "none"
        self.console.progress(
            f"      Conversations at {base_url} ({scope_name(args.conversations_service)}): "
            f"post-event webhook now {held}"
        )

    def conversations_call(self, call: Any) -> Any:
        from memory_bridge_cli.conversations import ConversationsFailure

        try:
            return call()
        except ConversationsFailure as error:
            raise WorkFailed(str(error)) from None

    def store(self, client: Any, watch: Any) -> str:
        from memory_bridge_cli.stores import (
            ApiFailure,
            StoreCreated,
            StoreFailed,
            StoreLimitReached,
            StorePending,
            create_store,
            wait_until_active,
        )

        args = self.args
        self.step(1, f"Memory store {args.display_name!r}: create or reuse, then wait until ACTIVE")
        result = create_store(
            client,
            args.display_name,
            args.description,
            wait=True,
            timeout=args.timeout,
            backoff=watch.backoff,
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
            store = wait_until_active(client, result.store_id, args.timeout, watch.backoff, watch)
        except ApiFailure as error:
            raise WorkFailed(f"{error}. Not deploying against a store that is not ACTIVE.") from None
        self.console.progress(
            f"      {store['id']} is ACTIVE" + (" (reused)" if result.existed else " (created)")
        )
        return str(store["id"])

    def identity(self, client: Any, store_id: str, watch: Any) -> None:
        from memory_bridge_cli.stores import IdentitySettingsError, ensure_identity_settings

        types = ", ".join(self.wanted)
        self.step(2, f"Identity resolution of {store_id}: every idType the bridge sends ({types})")
        try:
            outcome = ensure_identity_settings(
                client, store_id, self.wanted, timeout=self.args.timeout, watch=watch
            )
        except IdentitySettingsError as error:
            raise WorkFailed(f"{error}. Not deploying: its messages would be refused.") from None
        if outcome.changed:
            added = ", ".join(f"{t} ({self.wanted[t]})" for t in outcome.added) or "none"
            ruled = ", ".join(outcome.ruled) or "none"
            self.console.progress(
                f"      added {added}; matching rules appended: {ruled} (operation {outcome.operation_id})"
            )
        else:
            self.console.progress(f"      already covers {types}: unchanged")
        self.document["identity"] = {
            "idTypes": list(outcome.covered),
            "added": list(outcome.added),
            "matchingRulesAdded": list(outcome.ruled),
            "operationId": outcome.operation_id,
        }

    def deploy(self, store_id: str) -> None:
        args = self.args
        self.step(4, f"sam build && sam deploy --stack-name {args.stack_name}")
        sam = sam_executable()
        env = {**os.environ, "SAM_CLI_TELEMETRY": "0"}
        for command in sam_commands(
            sam,
            args.stack_name,
            store_id,
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
        if not args.webhook_url:
            self.webhook_url = stack_webhook_url(args)

    def webhook(self) -> None:
        from memory_bridge_cli.conversations import WebhookConflict, configure_webhook, scope_name

        args = self.args
        if self.conversations is None:
            return
        scope = scope_name(args.conversations_service)
        self.step(self.total, f"Conversations post-event webhook ({scope})")
        if self.webhook_url is None:
            raise WorkFailed(
                f"the stack {args.stack_name!r} has no WebhookUrl output to point Conversations at; "
                "pass --webhook-url and run setup again"
            )
        self.document["webhookUrl"] = self.webhook_url
        try:
            change = self.conversations_call(
                lambda: configure_webhook(
                    self.conversations,
                    args.conversations_service,
                    str(self.webhook_url),
                    WEBHOOK_FILTERS,
                    force=args.force,
                )
            )
        except WebhookConflict as error:  # taken between the check and now
            raise UsageError(str(error)) from None
        if not change.fields:
            self.console.progress(
                f"      already {self.webhook_url}, POST, {', '.join(change.filters)}: unchanged"
            )
        else:
            replaced = f" (replacing {change.replaced}, --force)" if change.replaced else ""
            self.console.progress(
                f"      set to {self.webhook_url}, POST, {', '.join(change.filters)}{replaced}"
            )
        self.document["webhook"] = {
            "scope": scope,
            "service": args.conversations_service,
            "filters": list(change.filters),
            "changed": bool(change.fields),
            "replaced": change.replaced,
        }


def command_setup(args: argparse.Namespace, console: Console) -> int:
    return Setup(args, console).run()


def register(commands: Any) -> None:
    from memory_bridge_cli.conversations import add_conversations_url_option, service_sid

    setup = commands.add_parser(
        "setup",
        help="store + identity resolution + secret + sam deploy + Conversations webhook "
        "(what `make deploy` runs)",
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
        "--timeout",
        type=float,
        default=600.0,
        help="seconds to wait for the store and for its settings change (default 600)",
    )
    setup.add_argument(
        "--parameter",
        action="append",
        metavar="KEY=VALUE",
        help="another template parameter, e.g. AgentIdentities=alice,bob (repeatable); ChatIdType=… "
        "also chooses the idType added to the store's identity resolution",
    )
    setup.add_argument(
        "--skip-deploy",
        action="store_true",
        help="no sam: the store, its identity resolution, the secret, and the webhook when its URL is "
        "known (--webhook-url, or the stack's output)",
    )
    group = setup.add_argument_group("Conversations webhook")
    group.add_argument(
        "--conversations-service",
        type=service_sid,
        metavar="IS…",
        help="configure this Conversations service's webhook (default: the account-level one)",
    )
    group.add_argument(
        "--webhook-url",
        help="the URL Conversations calls (default: the stack's WebhookUrl output); set it behind a "
        "custom domain, as PublicWebhookUrl",
    )
    group.add_argument(
        "--force",
        action="store_true",
        help="take the webhook even when it calls another URL (or its shared method or target differ)",
    )
    add_conversations_url_option(group)
    add_memory_options(setup)
    setup.set_defaults(handler=command_setup)
