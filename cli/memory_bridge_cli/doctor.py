"""`memory-bridge doctor`: is this stack able to carry a message, and would anyone hear if it could not?

It checks a deployed stack (--stack-name: its outputs and parameters) or the running local stack (the
default when `make run` is up), end to end, without posting customer data:

  secret                the stack's Secrets Manager secret reads and holds Twilio credentials
  Memory                those credentials authenticate to Memory (GET the store)
  store                 the store exists and is ACTIVE
  identity resolution   the store resolves every idType the bridge sends (phone, whatsapp, email, ChatIdType)
  Conversations         the account SID and auth token authenticate to Conversations (GET the webhook)
  webhook configuration the post-event webhook calls this stack's URL, by POST, with the bridge's filters
  signed request        a request signed with the secret's token is accepted (an event the bridge ignores:
                        200 "ignored", nothing posted)
  bad signature         the same request with a wrong signature is refused (403)
  dead-letter queue     SQS GetQueueAttributes
  idempotency table     DynamoDB DescribeTable (ACTIVE)
  alarm destination     every alarm of the stack has an action, and its topic a confirmed subscription
                        (skipped on the local stack, which has no alarms)

One line per check (✓ passed, ✗ failed with the fix under it, a dash: skipped, and why). Exit 0 when none
failed, 1 when one did, 2 for a usage error. `--json` for scripts. Every call has a timeout; no secret
is printed.
"""

from __future__ import annotations

import argparse
import json
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import urlencode

from memory_bridge.config import DEFAULT_CONVERSATIONS_API_BASE_URL, DEFAULT_MEMORY_API_BASE_URL
from memory_bridge.domain.credentials import CredentialsError, TwilioCredentials, parse_secret_string
from memory_bridge.domain.events import WEBHOOK_FILTERS
from memory_bridge.domain.identifiers import identifier_types
from memory_bridge.domain.outcomes import Accepted, Outcome
from memory_bridge.domain.signature import compute_signature
from memory_bridge_cli.common import (
    Console,
    UsageError,
    aws_client_config,
    aws_profile_name,
    checked_memory_url,
    local_stack_state,
    local_state_path,
)
from memory_bridge_cli.conversations import (
    ConversationsClient,
    add_conversations_url_option,
    conversations_url,
    scope_name,
    service_sid,
    webhook_problems,
)

PASS, FAIL, SKIP = "pass", "fail", "skip"
MARKS = {PASS: "✓", FAIL: "✗", SKIP: "\u2013"}  # an en dash
# A Conversations event the bridge does not handle: answered 200 "ignored" after the signature and the
# account are checked, before anything is read or posted. Its name says who sent it, in the logs.
PROBE_EVENT = "onMemoryBridgeDoctorProbe"
DEFAULT_CHAT_ID_TYPE = "chat_identity"  # the template's (and the local stack's) ChatIdType


@dataclass(frozen=True)
class Check:
    name: str
    status: str
    detail: str
    fix: str | None = None


def passed(name: str, detail: str) -> Check:
    return Check(name, PASS, detail)


def failed(name: str, detail: str, fix: str) -> Check:
    return Check(name, FAIL, detail, fix)


def skipped(name: str, why: str) -> Check:
    return Check(name, SKIP, why)


@dataclass
class Target:
    """What the checks need to know about the stack, from its outputs and parameters (or the state file)."""

    local: bool
    name: str
    webhook_url: str
    secret: str
    store_id: str
    chat_id_type: str
    memory_url: str
    conversations_url: str
    queue_url: str | None
    table: str | None
    alarm_topic: str | None = None
    service: str | None = None
    aws: dict[str, Any] = field(default_factory=dict)  # region, profile, endpoint for boto3

    def setup_command(self, store_name: str = "<the store's name>") -> str:
        """The exact command that fixes the store's settings, the webhook and the secret."""
        if self.local:
            return "restart `make run` (it runs `memory-bridge setup --skip-deploy` against the sandboxes)"
        parts = [
            "memory-bridge setup --skip-deploy",
            f"--stack-name {self.name}",
            f"--display-name {store_name}",
        ]
        parts.append(f"--secret-name {self.secret}")
        if self.chat_id_type != DEFAULT_CHAT_ID_TYPE:
            parts.append(f"--parameter ChatIdType={self.chat_id_type}")
        if self.service:
            parts.append(f"--conversations-service {self.service}")
        for flag, value in (("--region", "region"), ("--profile", "profile")):
            if self.aws.get(value):
                parts.append(f"{flag} {self.aws[value]}")
        return " ".join(parts)


# ---- finding the stack ------------------------------------------------------------------------


def aws_client(target_aws: dict[str, Any], service: str) -> Any:
    import boto3

    key = target_aws.get("key")  # the local stack's moto takes dummy keys: never this shell's real ones
    # Any: the service is a variable, and boto3-stubs types `client` by a literal name only.
    session: Any = boto3.session.Session(
        aws_access_key_id=key,
        aws_secret_access_key=key,
        profile_name=None if key else target_aws.get("profile"),
        region_name=target_aws.get("region"),
    )
    return session.client(service, endpoint_url=target_aws.get("endpoint"), config=aws_client_config())


def find_target(args: argparse.Namespace) -> Target:
    if args.stack_name:
        return stack_target(args)
    state = local_stack_state()
    if state is None:
        raise UsageError(
            "nothing to check: pass --stack-name NAME for a deployed stack, or start the local stack with "
            "`make run`"
        )
    return local_target(args, state)


def local_target(args: argparse.Namespace, state: dict[str, Any]) -> Target:
    """The local stack: every URL from its state file, and AWS is its moto (whatever this shell's AWS_*
    say). The secret read from that moto is sent only to the state file's own loopback sandboxes."""
    where = f"in {local_state_path()}"
    return Target(
        local=True,
        name="the local stack",
        webhook_url=str(state.get("webhook_url")),
        secret=str(state.get("secret_arn")),
        store_id=str(state.get("store_id")),
        chat_id_type=str(state.get("chat_id_type") or DEFAULT_CHAT_ID_TYPE),
        memory_url=checked_memory_url(f"sandbox_url {where}", str(state.get("sandbox_url"))),
        conversations_url=checked_memory_url(
            f"conversations_url {where}", str(state.get("conversations_url"))
        ),
        queue_url=state.get("queue_url"),
        table=state.get("idempotency_table"),
        service=args.conversations_service,
        aws={
            "key": "local",
            "region": "us-east-1",
            "endpoint": checked_memory_url(f"moto_url {where}", str(state.get("moto_url"))),
        },
    )


def stack_target(args: argparse.Namespace) -> Target:
    aws = {"region": args.region, "profile": args.aws_profile, "endpoint": args.endpoint_url}
    client = aws_client(aws, "cloudformation")
    try:
        stack = client.describe_stacks(StackName=args.stack_name)["Stacks"][0]
    except Exception as error:  # noqa: BLE001 - not there, or not readable: both end here
        from memory_bridge_cli.common import explain

        explained = explain(error)
        reason = explained[1] if explained else f"{type(error).__name__}"
        raise UsageError(
            f"cannot read the stack {args.stack_name!r}: {reason}; check --stack-name and --region"
        ) from None
    outputs = {o["OutputKey"]: o.get("OutputValue", "") for o in stack.get("Outputs", [])}
    parameters = {p["ParameterKey"]: p.get("ParameterValue", "") for p in stack.get("Parameters", [])}
    missing = [k for k in ("WebhookUrl",) if not outputs.get(k)]
    missing += [k for k in ("MemoryStoreId", "TwilioCredentialsSecret") if not parameters.get(k)]
    if missing:
        raise UsageError(
            f"the stack {args.stack_name!r} is not a memory-bridge stack: it has no {', '.join(missing)}"
        )
    memory = args.memory_api_url or parameters.get("MemoryApiBaseUrl") or DEFAULT_MEMORY_API_BASE_URL
    return Target(
        local=False,
        name=args.stack_name,
        # What Twilio calls, and so what the webhook checks signatures against, behind a custom domain.
        webhook_url=parameters.get("PublicWebhookUrl") or outputs["WebhookUrl"],
        secret=parameters["TwilioCredentialsSecret"],
        store_id=parameters["MemoryStoreId"],
        chat_id_type=parameters.get("ChatIdType") or DEFAULT_CHAT_ID_TYPE,
        memory_url=checked_memory_url("the Memory URL", memory),
        conversations_url=stack_conversations_url(args, parameters),
        queue_url=outputs.get("DeadLetterQueueUrl"),
        table=outputs.get("IdempotencyTableName"),
        alarm_topic=outputs.get("AlarmTopicArn") or None,
        service=args.conversations_service,
        aws=aws,
    )


def stack_conversations_url(args: argparse.Namespace, parameters: dict[str, str]) -> str:
    """--conversations-api-url, else the stack's own ConversationsApiBaseUrl (where its functions read
    participants), else CONVERSATIONS_API_BASE_URL, else Twilio's: as Memory's URL, the stack's
    parameter beats a variable left in this shell."""
    if getattr(args, "conversations_api_url", None):
        return checked_memory_url("--conversations-api-url", args.conversations_api_url)
    if parameters.get("ConversationsApiBaseUrl"):
        return checked_memory_url(
            "the stack's ConversationsApiBaseUrl", parameters["ConversationsApiBaseUrl"]
        )
    return conversations_url(args) or DEFAULT_CONVERSATIONS_API_BASE_URL


# ---- the checks -------------------------------------------------------------------------------


def check_secret(target: Target) -> tuple[Check, TwilioCredentials | None]:
    name = "secret"
    try:
        text = aws_client(target.aws, "secretsmanager").get_secret_value(SecretId=target.secret)[
            "SecretString"
        ]
    except Exception as error:  # noqa: BLE001 - the type only: a message could quote the value
        code = getattr(error, "response", {}).get("Error", {}).get("Code") or type(error).__name__
        return failed(
            name,
            f"{target.secret} cannot be read ({code})",
            "check that the secret exists in this region and that your role may "
            "secretsmanager:GetSecretValue it" + ("; restart `make run`" if target.local else ""),
        ), None
    try:
        credentials = parse_secret_string(text)
    except CredentialsError as error:
        return failed(name, f"{target.secret}: {error}", target.setup_command()), None
    key = ", an API key" if credentials.api_key_sid else ""
    return passed(name, f"{target.secret} reads: account {masked(credentials.account_sid)}{key}"), credentials


def masked(sid: str) -> str:
    return sid[:2] + "…" + sid[-4:] if len(sid) > 8 else "…"


def wrong_token_fix(target: Target, service: str) -> str:
    if target.local:
        return "the secret in the local stack's moto was changed: restart `make run`"
    return (
        f"{service} refused the secret's credentials: put the account's current auth token (and API key, if "
        f"used) in {target.secret}: TWILIO_ACCOUNT_SID=AC… TWILIO_AUTH_TOKEN=… {target.setup_command()} "
        "(it keeps previous_auth_token during a rotation)"
    )


def refused(outcome: Outcome) -> str:
    status = getattr(outcome, "status", None)
    code = getattr(outcome, "code", None)
    text = f"HTTP {status}" if status else (getattr(outcome, "message", "") or "no answer")
    return text + (f", Twilio code {code}" if code else "")


def check_memory(target: Target, credentials: TwilioCredentials) -> list[Check]:
    """Memory, the store and its identity resolution: each needs the one before it."""
    from memory_bridge.adapters.memory_api import MemoryApiClient
    from memory_bridge.ports import StaticCredentials

    client = MemoryApiClient(
        target.memory_url, StaticCredentials(credentials), connect_timeout=5.0, read_timeout=15.0
    )
    answer = client.fetch_store(target.store_id)
    status = getattr(answer, "status", None)
    if status in (401, 403):
        wrong = "wrong token" if status == 401 else "not allowed"
        return [
            failed(
                "Memory",
                f"{wrong}: {target.memory_url} answered {refused(answer)}",
                wrong_token_fix(target, "Memory"),
            ),
            skipped("store", "not checked: Memory refused the credentials"),
            skipped("identity resolution", "not checked: Memory refused the credentials"),
        ]
    if status is None:
        fix = "check MemoryApiBaseUrl (or --memory-api-url) and the network" + (
            "; is `make run` running?" if target.local else ""
        )
        return [
            failed("Memory", f"{target.memory_url}: {refused(answer)}", fix),
            skipped("store", "not checked: Memory did not answer"),
            skipped("identity resolution", "not checked: Memory did not answer"),
        ]
    checks = [passed("Memory", f"the secret's credentials authenticate to {target.memory_url}")]
    store = answer.body if isinstance(answer, Accepted) and isinstance(answer.body, dict) else None
    if store is None or store.get("status") != "ACTIVE":
        state = f"is {store.get('status')}" if store else f"was not found ({refused(answer)})"
        fix = "deploy with MemoryStoreId set to an ACTIVE store of this account (`memory-bridge stores list`)"
        checks += [
            failed("store", f"{target.store_id} {state}", fix),
            skipped("identity resolution", "not checked: the store is not ACTIVE"),
        ]
        return checks
    checks.append(passed("store", f"{target.store_id} ({store.get('displayName')}) is ACTIVE"))
    checks.append(check_identity(client, target, str(store.get("displayName") or "<the store's name>")))
    return checks


def check_identity(client: Any, target: Target, store_name: str) -> Check:
    from memory_bridge_cli.stores import identity_plan

    name = "identity resolution"
    wanted = identifier_types(target.chat_id_type)
    answer = client.fetch_identity_settings(target.store_id)
    if not isinstance(answer, Accepted):
        return failed(
            name, f"the settings cannot be read ({refused(answer)})", "check the credentials' permissions"
        )
    plan = identity_plan(answer.body or {}, wanted)
    if plan is None:
        return passed(name, f"resolves {', '.join(wanted)}")
    missing = dict.fromkeys(plan.added + plan.ruled)
    places = (("identifierConfigs", plan.added), ("matchingRules", plan.ruled))
    lacks = [f"{t} in {' and '.join(p for p, gap in places if t in gap)}" for t in missing]
    fix = target.setup_command(store_name) + (
        "" if target.local else " (adds what is missing, keeps the rest)"
    )
    return failed(
        name,
        f"the store does not resolve {', '.join(missing)}: those customers' messages are refused and parked "
        f"(lacks {', '.join(lacks)})",
        fix,
    )


def check_conversations(target: Target, credentials: TwilioCredentials) -> list[Check]:
    """With the account SID and auth token, not the API key: the token is what verifies Twilio's
    signatures, so a token that Twilio no longer knows must show here."""
    token_only = TwilioCredentials(credentials.account_sid, credentials.auth_token)
    client = ConversationsClient(target.conversations_url, token_only, deadline_seconds=20.0)
    scope = scope_name(target.service)
    answer = client.fetch_webhook(target.service)
    status = getattr(answer, "status", None)
    if not isinstance(answer, Accepted) or not isinstance(answer.body, dict):
        if status == 401:
            detail, fix = (
                f"wrong token: {target.conversations_url} answered {refused(answer)}",
                wrong_token_fix(target, "Conversations"),
            )
        elif status == 404 and target.service:
            detail, fix = f"no service {target.service} ({refused(answer)})", "check --conversations-service"
        else:
            detail = f"{target.conversations_url}: {refused(answer)}"
            fix = "check --conversations-api-url / CONVERSATIONS_API_BASE_URL and the network"
        why = "refused the credentials" if status in (401, 403) else "did not answer it"
        return [
            failed("Conversations", detail, fix),
            skipped("webhook configuration", f"not checked: Conversations {why}"),
        ]
    checks = [passed("Conversations", f"the secret's account SID and auth token authenticate ({scope})")]
    problems = webhook_problems(answer.body, target.webhook_url, WEBHOOK_FILTERS)
    routed = None if target.service else answer.body.get("target")
    if routed not in (None, "webhook"):
        problems.append(f"events go to {routed!r}, not to webhooks")
    if problems:
        force = (
            " --force" if answer.body.get("post_webhook_url") not in (None, "", target.webhook_url) else ""
        )
        checks.append(
            failed(
                "webhook configuration",
                f"{scope}: {'; '.join(problems)} "
                f"(wanted {target.webhook_url}, POST, {', '.join(WEBHOOK_FILTERS)})",
                target.setup_command() + force,
            )
        )
    else:
        checks.append(
            passed(
                "webhook configuration", f"{scope} → {target.webhook_url}, POST, {', '.join(WEBHOOK_FILTERS)}"
            )
        )
    return checks


def probe_form(account_sid: str) -> list[tuple[str, str]]:
    """A Twilio-shaped webhook the bridge ignores: valid SIDs (the webhook checks their format) and the
    secret's AccountSid (another account's is refused as a forgery), so only the event type differs."""
    return [
        ("EventType", PROBE_EVENT),
        ("AccountSid", account_sid),
        ("ChatServiceSid", "IS" + secrets.token_hex(16)),
        ("ConversationSid", "CH" + secrets.token_hex(16)),
        ("Source", "API"),
        ("RetryCount", "0"),
    ]


def post_form(url: str, form: Sequence[tuple[str, str]], signature: str) -> tuple[int | None, Any]:
    """(status, parsed answer); status None when the URL did not answer in time."""
    import urllib3

    try:
        response = urllib3.request(
            "POST",
            url,
            body=urlencode(list(form)).encode(),
            headers={
                "Content-Type": "application/x-www-form-urlencoded; charset=utf-8",
                "X-Twilio-Signature": signature,
                "User-Agent": "memory-bridge-doctor",
            },
            timeout=urllib3.Timeout(total=20, connect=5, read=15),
            retries=False,
            redirect=False,
        )
    except urllib3.exceptions.HTTPError as error:
        return None, type(error).__name__
    try:
        return response.status, json.loads(response.data or b"null")
    except ValueError:
        return response.status, None


def check_signatures(target: Target, credentials: TwilioCredentials | None) -> list[Check]:
    """A request signed with the secret's token is accepted (and ignored); with a wrong one, refused."""
    account = credentials.account_sid if credentials else "AC" + "0" * 32
    form = probe_form(account)
    if credentials is None:
        good = skipped("signed request", "not checked: needs the secret's auth token")
    else:
        status, answer = post_form(
            target.webhook_url, form, compute_signature(target.webhook_url, form, credentials.auth_token)
        )
        good = signed_check(target, status, answer)
    forged = compute_signature(target.webhook_url, form, "doctor-" + secrets.token_hex(16))
    status, answer = post_form(target.webhook_url, form, forged)
    if status == 403:
        bad = passed("bad signature", "a wrong signature is refused: 403")
    else:
        shown = f"HTTP {status}" if status else f"no answer ({answer})"
        bad = failed(
            "bad signature",
            f"{target.webhook_url} answered a wrong signature with {shown}, not 403: whatever answers there "
            "does not check Twilio's signatures",
            "point the URL at the bridge's WebhookFunction (API Gateway), or the front that answers it must "
            "pass requests through unchanged",
        )
    return [good, bad]


def signed_check(target: Target, status: int | None, answer: Any) -> Check:
    name = "signed request"
    outcome = answer.get("outcome") if isinstance(answer, dict) else None
    if status == 200 and outcome == "ignored":
        return passed(
            name, f"{target.webhook_url} accepts the secret's signature: 200 ignored (nothing posted)"
        )
    if status == 403 and target.local:
        fix = "the local webhook holds another token than the secret: restart `make run`"
        return failed(
            name, f"{target.webhook_url} refused a request signed with the secret's token: 403", fix
        )
    if status == 403:
        fix = (
            "the webhook checks signatures against another token or URL: if the stack sits behind a custom "
            "domain, set PublicWebhookUrl to it; if the secret changed, the function reads it again on the "
            "next cold start (or update both: " + target.setup_command() + ")"
        )
        return failed(
            name, f"{target.webhook_url} refused a request signed with the secret's token: 403", fix
        )
    shown = f"HTTP {status} {json.dumps(answer)[:120]}" if status else f"no answer ({answer})"
    fix = "is the stack deployed and the URL right? its logs say why (WebhookFunction)"
    if target.local:
        fix = "is `make run` running?"
    return failed(name, f"{target.webhook_url}: {shown}, not 200 ignored", fix)


def check_queue(target: Target) -> Check:
    name = "dead-letter queue"
    if not target.queue_url:
        return failed(name, "the stack has no DeadLetterQueueUrl output", "deploy the stack again")
    try:
        attributes = aws_client(target.aws, "sqs").get_queue_attributes(
            QueueUrl=target.queue_url, AttributeNames=["ApproximateNumberOfMessages"]
        )["Attributes"]
    except Exception as error:  # noqa: BLE001 - named by its code
        return failed(
            name, f"{target.queue_url}: {aws_code(error)}", aws_fix(target, "sqs:GetQueueAttributes")
        )
    waiting = attributes.get("ApproximateNumberOfMessages", "?")
    return passed(name, f"{target.queue_url} reachable ({waiting} message(s) waiting)")


def check_table(target: Target) -> Check:
    name = "idempotency table"
    if not target.table:
        return failed(name, "the stack has no IdempotencyTableName output", "deploy the stack again")
    try:
        table = aws_client(target.aws, "dynamodb").describe_table(TableName=target.table)["Table"]
    except Exception as error:  # noqa: BLE001 - named by its code
        return failed(name, f"{target.table}: {aws_code(error)}", aws_fix(target, "dynamodb:DescribeTable"))
    if table.get("TableStatus") != "ACTIVE":
        return failed(
            name,
            f"{target.table} is {table.get('TableStatus')}",
            "wait until it is ACTIVE, then run doctor again",
        )
    return passed(name, f"{target.table} is ACTIVE")


def aws_code(error: Exception) -> str:
    code = getattr(error, "response", {}).get("Error", {}).get("Code")
    return str(code or type(error).__name__)


def aws_fix(target: Target, action: str) -> str:
    if target.local:
        return "restart `make run` (it creates the queue and the table)"
    return f"deploy the stack again if it was deleted; else allow {action} to your role and check --region"


# ---- the alarms' destination ------------------------------------------------------------------


def alarm_destination(
    alarms: Sequence[dict[str, Any]], topic: str | None, subscriptions: Iterable[dict[str, Any]] | None
) -> Check:
    """From DescribeAlarms' MetricAlarms and ListSubscriptionsByTopic's Subscriptions (None: could not be
    listed): every alarm notifies someone, and the topic has someone confirmed to read it."""
    name = "alarm destination"
    if not alarms:
        return failed(name, "the stack has no alarms", "deploy the stack again (template.yaml makes them)")
    silent = sorted(
        a.get("AlarmName", "?")
        for a in alarms
        if not a.get("AlarmActions") or a.get("ActionsEnabled") is False
    )
    if silent:
        return failed(
            name,
            f"{len(silent)} of {len(alarms)} alarm(s) notify nobody: {', '.join(silent[:5])}",
            "deploy the stack again (every alarm notifies AlarmTopicArn), and enable their actions",
        )
    subscribe = (
        "set AlarmEmail (`--parameter AlarmEmail=oncall@…` on setup) and confirm the email AWS sends, or "
        f"subscribe on-call (PagerDuty, Opsgenie, …) to {topic}"
    )
    if not topic:
        return failed(name, "the stack has no AlarmTopicArn output", subscribe)
    if subscriptions is None:
        return failed(
            name,
            f"the subscriptions of {topic} cannot be listed",
            "allow sns:ListSubscriptionsByTopic, or check them in the topic's account",
        )
    found = list(subscriptions)
    confirmed = [s for s in found if str(s.get("SubscriptionArn", "")).startswith("arn:")]
    if not confirmed:
        pending = f" ({len(found)} pending confirmation)" if found else ""
        return failed(
            name,
            f"{len(alarms)} alarm(s) notify {topic}, which nobody reads: no confirmed subscription{pending}",
            subscribe,
        )
    kinds = ", ".join(sorted({str(s.get("Protocol")) for s in confirmed}))
    return passed(
        name, f"{len(alarms)} alarm(s) → {topic}: {len(confirmed)} confirmed subscription(s) ({kinds})"
    )


def check_alarms(target: Target) -> Check:
    if target.local:
        return skipped(
            "alarm destination", "skipped: the local stack has no alarms (CloudWatch is deployed only)"
        )
    try:
        alarms = stack_alarms(target)
    except Exception as error:  # noqa: BLE001 - named by its code
        return failed(
            "alarm destination",
            f"the alarms cannot be read: {aws_code(error)}",
            "allow cloudformation:ListStackResources and cloudwatch:DescribeAlarms",
        )
    subscriptions: list[dict[str, Any]] | None = None
    if target.alarm_topic:
        try:
            sns = aws_client(target.aws, "sns")
            pages = sns.get_paginator("list_subscriptions_by_topic").paginate(TopicArn=target.alarm_topic)
            subscriptions = [s for page in pages for s in page.get("Subscriptions", [])]
        except Exception:  # noqa: BLE001 - another account's topic, or not allowed: said in the line
            subscriptions = None
    return alarm_destination(alarms, target.alarm_topic, subscriptions)


def stack_alarms(target: Target) -> list[dict[str, Any]]:
    cloudformation = aws_client(target.aws, "cloudformation")
    pages = cloudformation.get_paginator("list_stack_resources").paginate(StackName=target.name)
    names = [
        r["PhysicalResourceId"]
        for page in pages
        for r in page.get("StackResourceSummaries", [])
        if r.get("ResourceType") == "AWS::CloudWatch::Alarm" and r.get("PhysicalResourceId")
    ]
    cloudwatch = aws_client(target.aws, "cloudwatch")
    alarms: list[dict[str, Any]] = []
    for start in range(0, len(names), 100):  # DescribeAlarms takes at most 100 names
        answer = cloudwatch.describe_alarms(
            AlarmNames=names[start : start + 100], AlarmTypes=["MetricAlarm", "CompositeAlarm"]
        )
        alarms += answer.get("MetricAlarms", []) + answer.get("CompositeAlarms", [])
    return alarms


# ---- the command ------------------------------------------------------------------------------


def run_checks(target: Target) -> list[Check]:
    secret, credentials = check_secret(target)
    checks = [secret]
    if credentials is None:
        needs = "not checked: needs the secret's credentials"
        checks += [
            skipped(n, needs)
            for n in ("Memory", "store", "identity resolution", "Conversations", "webhook configuration")
        ]
    else:
        checks += check_memory(target, credentials)
        checks += check_conversations(target, credentials)
    checks += check_signatures(target, credentials)
    checks += [check_queue(target), check_table(target), check_alarms(target)]
    return checks


def render(target: Target, checks: Sequence[Check]) -> str:
    width = max(len(c.name) for c in checks)
    where = "the local stack" if target.local else f"stack {target.name}"
    lines = [f"memory-bridge doctor: {where} ({target.webhook_url})"]
    for check in checks:
        lines.append(f"{MARKS[check.status]} {check.name:<{width}}  {check.detail}")
        if check.fix:
            lines.append(f"  {'':<{width}}  fix: {check.fix}")
    counts = {status: sum(c.status == status for c in checks) for status in (PASS, FAIL, SKIP)}
    lines.append(f"{counts[PASS]} passed, {counts[FAIL]} failed, {counts[SKIP]} skipped")
    return "\n".join(lines)


def command_doctor(args: argparse.Namespace, console: Console) -> int:
    target = find_target(args)
    console.progress(f"memory-bridge doctor: checking {target.name}…")
    checks = run_checks(target)
    ok = not any(c.status == FAIL for c in checks)
    document = {
        "target": {
            "local": target.local,
            "stackName": None if target.local else target.name,
            "webhookUrl": target.webhook_url,
        },
        "ok": ok,
        "checks": [asdict(c) for c in checks],
    }
    console.result(document, render(target, checks))
    return 0 if ok else 1


def register(commands: Any) -> None:
    doctor = commands.add_parser(
        "doctor",
        help="check a deployed stack (or the local one) end to end, without posting customer data",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    doctor.add_argument("--stack-name", help="the deployed stack to check (default: the running local stack)")
    doctor.add_argument("--region", help="AWS region of the stack")
    doctor.add_argument("--profile", dest="aws_profile", type=aws_profile_name, help="AWS profile")
    doctor.add_argument("--endpoint-url", help="AWS endpoint (e.g. moto's server)")
    doctor.add_argument(
        "--conversations-service",
        type=service_sid,
        metavar="IS…",
        help="check this Conversations service's webhook (default: the account-level one)",
    )
    add_conversations_url_option(doctor)
    doctor.add_argument(
        "--memory-api-url", help="Memory's base URL (default: the stack's MemoryApiBaseUrl, else Twilio's)"
    )
    doctor.add_argument("--json", action="store_true", help="print the checks as JSON for scripts")
    doctor.set_defaults(handler=command_doctor)
