"""template.yaml: linted by cfn-lint and `sam validate --lint`, built by `sam build`, and holding
what the design promises (route, layer, queue, table, alarms, least-privilege IAM, outputs)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from memory_bridge.config import MEMORY_API_URL_PATTERN, SOURCE_PATTERN, STORE_ID_PATTERN
from memory_bridge_dev.aws_resources import load_template
from memory_bridge_dev.sam_tools import SAM, python313_dirs, sam_environment
from tests.support import ROOT

pytestmark = pytest.mark.template
TEMPLATE = load_template()
RESOURCES = TEMPLATE["Resources"]
PYTHON_313_DIRS = python313_dirs()
# The template's MemorySize, chosen from the table under "What a million webhooks cost" (README, make bench).
CHOSEN_MEMORY_MB = 256


def require_sam() -> Path:
    if SAM.exists():
        return SAM
    if os.environ.get("CI"):
        pytest.fail("aws-sam-cli is missing from .tools/sam: `make tools` installs it")
    pytest.skip("aws-sam-cli not installed in .tools/sam (run `make tools`)")


def test_cfn_lint_is_clean():
    result = subprocess.run(
        [str(Path(sys.executable).parent / "cfn-lint"), str(ROOT / "template.yaml")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_sam_validate_lint():
    sam = require_sam()
    result = subprocess.run(
        [str(sam), "validate", "--lint", "--template-file", str(ROOT / "template.yaml")],
        capture_output=True,
        text=True,
        env=sam_environment(),
        cwd=ROOT,
        check=False,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "is a valid SAM Template" in result.stdout + result.stderr


def test_sam_build_ships_the_core_and_nothing_dev_only(tmp_path):
    sam = require_sam()
    if not any(shutil.which("python3.13", path=str(p)) for p in PYTHON_313_DIRS) and not shutil.which(
        "python3.13"
    ):
        pytest.skip("python3.13 is not installed; sam build needs it for the python3.13 runtime")
    build_dir = tmp_path / "build"
    result = subprocess.run(
        [str(sam), "build", "--template-file", str(ROOT / "template.yaml"), "--build-dir", str(build_dir)],
        capture_output=True,
        text=True,
        env=sam_environment(),
        cwd=ROOT,
        check=False,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    layer = build_dir / "BridgeLayer" / "python"
    # Every package and module of the layer's source, and nothing else of ours.
    source = ROOT / "layers" / "bridge" / "memory_bridge"
    ours = {str(p.relative_to(source)) for p in source.rglob("*.py") if "__pycache__" not in p.parts}
    built = {str(p.relative_to(layer / "memory_bridge")) for p in (layer / "memory_bridge").rglob("*.py")}
    assert ours == built
    assert {"webhook/service.py", "replay/engine.py", "domain/envelope.py", "adapters/memory_api.py"} <= built
    assert (layer / "aws_lambda_powertools").is_dir()
    assert (layer / "urllib3").is_dir()
    shipped = {p.name for p in build_dir.rglob("*")}
    assert "memory_bridge_dev" not in shipped and "sandbox.py" not in shipped
    # The operator CLI (argparse, the sam deploy runner) is installed by pip, never shipped to Lambda.
    assert "memory_bridge_cli" not in shipped
    assert not [p.name for p in (layer / "memory_bridge").rglob("*.py") if p.name.startswith("cli")]
    assert not {"stores.py", "queue_scan.py"} & {p.name for p in (layer / "memory_bridge").rglob("*.py")}
    assert "argparse" not in "".join(p.read_text() for p in (layer / "memory_bridge").rglob("*.py"))
    assert not (build_dir / "BridgeLayer" / "python" / "boto3").exists()  # the runtime has it
    assert (build_dir / "WebhookFunction" / "app.py").exists()


def test_webhook_route_and_runtime():
    function = RESOURCES["WebhookFunction"]
    assert function["Type"] == "AWS::Serverless::Function"
    assert function["Properties"]["Handler"] == "app.lambda_handler"
    assert function["Properties"]["CodeUri"] == "functions/webhook/"
    assert TEMPLATE["Globals"]["Function"]["Runtime"] == "python3.13"
    [event] = function["Properties"]["Events"].values()
    assert event["Type"] == "Api"
    assert event["Properties"]["Path"] == "/webhooks/conversations"
    assert event["Properties"]["Method"] == "POST"
    api = RESOURCES["WebhookApi"]["Properties"]
    assert api["MethodSettings"][0]["ThrottlingRateLimit"] > 0  # throttled


def test_layer_holds_the_shared_package():
    layer = RESOURCES["BridgeLayer"]
    assert layer["Type"] == "AWS::Serverless::LayerVersion"
    assert layer["Properties"]["ContentUri"] == "layers/bridge/"
    assert layer["Metadata"]["BuildMethod"] == "python3.13"
    assert {"Ref": "BridgeLayer"} in TEMPLATE["Globals"]["Function"]["Layers"]


def test_dead_letter_queue_is_encrypted_and_keeps_14_days():
    queue = RESOURCES["DeadLetterQueue"]["Properties"]
    assert queue["MessageRetentionPeriod"] == 14 * 24 * 3600
    assert queue.get("SqsManagedSseEnabled") is True or "KmsMasterKeyId" in queue


def test_idempotency_table_is_on_demand_with_ttl():
    table = RESOURCES["IdempotencyTable"]["Properties"]
    assert table["BillingMode"] == "PAY_PER_REQUEST"
    assert table["TimeToLiveSpecification"] == {"AttributeName": "expiration", "Enabled": True}
    assert table["KeySchema"] == [
        {"AttributeName": "id", "KeyType": "HASH"}
    ]  # the ledger's key: message#<MessageSid>
    assert table["SSESpecification"]["SSEEnabled"] is True


def test_log_retention_is_set_for_the_function():
    groups = [r["Properties"] for r in RESOURCES.values() if r["Type"] == "AWS::Logs::LogGroup"]
    assert {"Fn::Sub": "/aws/lambda/${WebhookFunction}"} in [g["LogGroupName"] for g in groups]
    assert all("RetentionInDays" in g for g in groups)


def test_iam_is_least_privilege():
    [policy] = RESOURCES["WebhookFunction"]["Properties"]["Policies"]
    statements = {s["Sid"]: s for s in policy["Statement"]}
    assert statements["ReadTwilioCredentials"]["Action"] == "secretsmanager:GetSecretValue"
    assert statements["ParkFailedPosts"]["Action"] == "sqs:SendMessage"
    assert statements["ParkFailedPosts"]["Resource"] == {"Fn::GetAtt": "DeadLetterQueue.Arn"}
    # The ledger's claim and settle are both conditional UpdateItems: nothing else on the table.
    assert statements["DeliveryLedger"]["Action"] == "dynamodb:UpdateItem"
    assert statements["DeliveryLedger"]["Resource"] == {"Fn::GetAtt": "IdempotencyTable.Arn"}
    [replay_policy] = RESOURCES["ReplayFunction"]["Properties"]["Policies"]
    replay = {s["Sid"]: s for s in replay_policy["Statement"]}
    assert sorted(replay["DeliveryLedger"]["Action"]) == ["dynamodb:BatchGetItem", "dynamodb:UpdateItem"]
    assert replay["DeliveryLedger"]["Resource"] == {"Fn::GetAtt": "IdempotencyTable.Arn"}
    # Who is speaking reads Conversations over HTTPS with the secret's credentials: no new AWS right.
    assert set(statements) == {"ReadTwilioCredentials", "ParkFailedPosts", "DeliveryLedger"}
    secret_resource = str(statements["ReadTwilioCredentials"]["Resource"])
    assert "TwilioCredentialsSecret" in secret_resource and "secret:*" not in secret_resource
    for statement in policy["Statement"]:
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        assert all("*" not in action for action in actions)
        assert statement["Resource"] != "*"


def test_environment_uses_the_contract_names():
    variables = TEMPLATE["Globals"]["Function"]["Environment"]["Variables"]
    for name in (
        "MEMORY_STORE_ID",
        "TWILIO_CREDENTIALS_SECRET",
        "DEAD_LETTER_QUEUE_URL",
        "IDEMPOTENCY_TABLE",
        "MEMORY_API_BASE_URL",
        "PUBLIC_WEBHOOK_URL",
    ):
        assert name in variables
    assert variables["DEAD_LETTER_QUEUE_URL"] == {"Ref": "DeadLetterQueue"}
    assert variables["IDEMPOTENCY_TABLE"] == {"Ref": "IdempotencyTable"}


def test_parameters_validate_like_the_code():
    parameters = TEMPLATE["Parameters"]
    store_pattern = re.compile(parameters["MemoryStoreId"]["AllowedPattern"])
    for value in (
        "mem_store_01kpttrksqe08rhv122gzq52ax",
        "mem_service_71kpttrksqe08rhv122gzq52ax",
        "x",
        "mem_store_8x",
    ):
        assert bool(store_pattern.match(value)) == bool(STORE_ID_PATTERN.match(value))
    source_pattern = re.compile(parameters["ObservationSource"]["AllowedPattern"])
    for value in ("twilio-conversations", "chat transcript", "bad<x>", "a" * 101):
        assert bool(source_pattern.match(value)) == bool(SOURCE_PATTERN.match(value) and len(value) <= 100)
    secret_pattern = re.compile(parameters["TwilioCredentialsSecret"]["AllowedPattern"])
    assert secret_pattern.match("memory-bridge/twilio")
    assert secret_pattern.match(
        "arn:aws:secretsmanager:us-east-1:123456789012:secret:memory-bridge/twilio-AbCdEf"
    )
    assert parameters["PublicWebhookUrl"]["Default"] == ""


def memory_accepts_source(value: str) -> bool:
    """Memory's published rule (the contract's ObservationCore.source; as the code states it when the
    contract is not beside the repository). JSON Schema's `$` ends the input (ECMA-262): fullmatch."""
    from tests.contract import SPEC_PATH, spec

    rule = (
        spec()["components"]["schemas"]["ObservationCore"]["properties"]["source"]
        if SPEC_PATH.exists()
        else {"pattern": SOURCE_PATTERN.pattern, "minLength": 1, "maxLength": 100}
    )
    return rule["minLength"] <= len(value) <= rule["maxLength"] and bool(re.fullmatch(rule["pattern"], value))


# What an agent's and the business's observations carry after ObservationSource (README, "Who is speaking").
SPEAKER_SOURCE_SUFFIXES = ("-agent", "-brand")


def memory_accepts_every_source_of(value: str) -> bool:
    return all(memory_accepts_source(value + suffix) for suffix in ("", *SPEAKER_SOURCE_SUFFIXES))


def test_a_source_memory_would_refuse_is_refused_at_deploy_and_at_init():
    """ObservationSource (OBSERVATION_SOURCE) is the customer's `source`, and with -agent or -brand the
    agent's and the business's: CloudFormation refuses a value for which any of the three would be
    refused by Memory (AllowedPattern, matched whole), and init refuses what Memory refuses, naming the rule."""
    from memory_bridge.config import ConfigError, Settings
    from tests.unit.test_config import GOOD, SOURCES_ACCEPTED, SOURCES_REFUSED

    deploy = re.compile(TEMPLATE["Parameters"]["ObservationSource"]["AllowedPattern"])
    assert [v for v in SOURCES_ACCEPTED if not memory_accepts_source(v)] == []
    assert [v for v in SOURCES_REFUSED if memory_accepts_source(v)] == []
    longest = "x" * 94
    for value in [*SOURCES_ACCEPTED, *SOURCES_REFUSED, longest, longest + "x"]:
        assert bool(deploy.fullmatch(value)) == memory_accepts_every_source_of(value), repr(value)
    assert deploy.fullmatch(longest) and not deploy.fullmatch(longest + "x")
    for value in [*SOURCES_ACCEPTED, *SOURCES_REFUSED]:
        try:
            Settings.from_env({**GOOD, "OBSERVATION_SOURCE": value})
        except ConfigError:
            taken = False
        else:
            taken = True
        assert taken == memory_accepts_every_source_of(value), repr(value)
    assert memory_accepts_every_source_of(TEMPLATE["Parameters"]["ObservationSource"]["Default"])


def test_the_memory_url_parameter_refuses_plain_http_but_to_loopback():
    """Every Memory call carries the Twilio credentials: the template refuses what the code refuses."""
    from tests.unit.test_config import MEMORY_URLS_ACCEPTED, MEMORY_URLS_REFUSED

    allowed = TEMPLATE["Parameters"]["MemoryApiBaseUrl"]["AllowedPattern"]
    assert allowed == MEMORY_API_URL_PATTERN.pattern
    pattern = re.compile(allowed)
    assert [url for url in MEMORY_URLS_ACCEPTED if not pattern.match(url)] == []
    assert [url for url in MEMORY_URLS_REFUSED if pattern.match(url)] == []


# ---- who is speaking (issue 19) -------------------------------------------------------------------

SPEAKER_VARIABLES = {
    "CONVERSATIONS_API_BASE_URL": "ConversationsApiBaseUrl",
    "AGENT_MESSAGES": "AgentMessages",
    "AGENT_IDENTITIES": "AgentIdentities",
    "AGENT_ATTRIBUTE": "AgentAttribute",
}
AGENT_ATTRIBUTES_ACCEPTED = [
    "",
    "role=agent",
    "team=support-2",
    "flex.role=agent",
    "email=a.b+c@x.io",
    "k=v:1",
]
AGENT_ATTRIBUTES_REFUSED = [
    "role",
    "=agent",
    "role=",
    "role=agent,team=x",  # one pair only: a comma would read as a list
    'role="agent"',
    "role=a=b",
    "role=support agent",
    " role=agent",
    "role=agent\n",
    "rôle=agent",
    "k" * 65 + "=v",
    "k=" + "v" * 129,
]


def test_both_functions_read_the_speaker_settings_from_their_parameters():
    """The variables sit in Globals, so the WebhookFunction and the ReplayFunction (which resolves the
    speakers of messages parked before the participants could be read) both get them."""
    variables = TEMPLATE["Globals"]["Function"]["Environment"]["Variables"]
    for variable, parameter in SPEAKER_VARIABLES.items():
        assert variables[variable] == {"Ref": parameter}, variable
    for function in ("WebhookFunction", "ReplayFunction"):
        assert "Environment" not in RESOURCES[function]["Properties"], f"{function} would replace Globals"
    # The cache's TTL keeps its default (300 s): no parameter, nothing set.
    assert "PARTICIPANT_CACHE_TTL_SECONDS" not in variables


def test_the_speaker_parameters_defaults_and_rules():
    parameters = TEMPLATE["Parameters"]
    assert parameters["AgentMessages"]["Default"] == "attribute"
    assert sorted(parameters["AgentMessages"]["AllowedValues"]) == ["attribute", "skip"]
    assert parameters["AgentAttribute"]["Default"] == "role=agent"
    assert parameters["AgentIdentities"]["Default"] == ""
    assert "*@company.com" in parameters["AgentIdentities"]["Description"]  # patterns are said
    attribute = re.compile(parameters["AgentAttribute"]["AllowedPattern"])
    assert [v for v in AGENT_ATTRIBUTES_ACCEPTED if not attribute.fullmatch(v)] == []
    assert [v for v in AGENT_ATTRIBUTES_REFUSED if attribute.fullmatch(v)] == []
    assert attribute.fullmatch(parameters["AgentAttribute"]["Default"])


def test_the_conversations_url_parameter_holds_the_memory_urls_rule():
    """The same credentials go to Conversations: the template refuses what the code refuses for Memory."""
    from tests.unit.test_config import MEMORY_URLS_ACCEPTED, MEMORY_URLS_REFUSED

    parameter = TEMPLATE["Parameters"]["ConversationsApiBaseUrl"]
    assert parameter["Default"] == "https://conversations.twilio.com"
    assert parameter["AllowedPattern"] == TEMPLATE["Parameters"]["MemoryApiBaseUrl"]["AllowedPattern"]
    assert parameter["AllowedPattern"] == MEMORY_API_URL_PATTERN.pattern
    pattern = re.compile(parameter["AllowedPattern"])
    assert pattern.match(parameter["Default"])
    assert [url for url in MEMORY_URLS_ACCEPTED if not pattern.match(url)] == []
    assert [url for url in MEMORY_URLS_REFUSED if pattern.match(url)] == []


def test_what_the_template_accepts_for_the_speakers_init_accepts():
    """A value CloudFormation takes must never stop every container at init (500 on each webhook)."""
    from memory_bridge.config import Settings
    from tests.unit.test_config import GOOD, MEMORY_URLS_ACCEPTED

    parameters = TEMPLATE["Parameters"]
    accepted: list[tuple[str, str]] = [
        *(("AGENT_MESSAGES", v) for v in parameters["AgentMessages"]["AllowedValues"]),
        *(("AGENT_ATTRIBUTE", v) for v in AGENT_ATTRIBUTES_ACCEPTED),
        *(("CONVERSATIONS_API_BASE_URL", v) for v in MEMORY_URLS_ACCEPTED),
        ("AGENT_IDENTITIES", "alice@company.com, *@company.com, agent-?"),
    ]
    for variable, value in accepted:
        Settings.from_env({**GOOD, variable: value})
    defaults = {v: str(parameters[p]["Default"]) for v, p in SPEAKER_VARIABLES.items()}
    Settings.from_env({**GOOD, **defaults})


def test_every_parameter_is_in_exactly_one_console_group():
    groups = TEMPLATE["Metadata"]["AWS::CloudFormation::Interface"]["ParameterGroups"]
    grouped = [name for group in groups for name in group["Parameters"]]
    assert sorted(grouped) == sorted(TEMPLATE["Parameters"])
    [speakers] = [g["Parameters"] for g in groups if g["Label"]["default"] == "Who is speaking"]
    assert speakers == ["AgentMessages", "AgentIdentities", "AgentAttribute"]


def test_redaction_is_on_by_default_and_its_parameters_accept_what_the_code_accepts():
    from memory_bridge.domain.redaction import parse_kinds

    parameters = TEMPLATE["Parameters"]
    variables = TEMPLATE["Globals"]["Function"]["Environment"]["Variables"]
    assert variables["REDACT_SENSITIVE_NUMBERS"] == {"Ref": "RedactSensitiveNumbers"}
    assert variables["REDACT_MODE"] == {"Ref": "RedactMode"}
    assert parameters["RedactSensitiveNumbers"]["Default"] == "cards,iban,ssn"
    assert parameters["RedactMode"]["Default"] == "mask"
    assert set(parameters["RedactMode"]["AllowedValues"]) == {"mask", "skip"}
    pattern = re.compile(parameters["RedactSensitiveNumbers"]["AllowedPattern"])
    for value in ("cards,iban,ssn", "off", "cards", "ssn,cards", "iban,ssn"):
        assert pattern.match(value) and parse_kinds(value) is not None
    for value in ("", "phones", "cards,", "off,cards", "CARDS"):
        assert not pattern.match(value)


def test_outputs():
    outputs = TEMPLATE["Outputs"]
    assert "/Prod/webhooks/conversations" in outputs["WebhookUrl"]["Value"]["Fn::Sub"]
    assert outputs["DeadLetterQueueUrl"]["Value"] == {"Ref": "DeadLetterQueue"}


def test_replay_function_has_its_own_least_privilege_role():
    replay = RESOURCES["ReplayFunction"]["Properties"]
    assert replay["Handler"] == "app.lambda_handler"
    assert replay["CodeUri"] == "functions/replay/"
    [policy] = replay["Policies"]
    statements = {s["Sid"]: s for s in policy["Statement"]}
    assert set(statements) == {"ReadTwilioCredentials", "ReplayDeadLetters", "DeliveryLedger"}
    assert sorted(statements["ReplayDeadLetters"]["Action"]) == [
        "sqs:ChangeMessageVisibility",
        "sqs:DeleteMessage",
        "sqs:GetQueueAttributes",
        "sqs:ReceiveMessage",
        "sqs:SendMessage",
    ]
    assert statements["ReplayDeadLetters"]["Resource"] == {"Fn::GetAtt": "DeadLetterQueue.Arn"}
    # The delivery ledger: read what Memory holds per MessageSid, claim and settle; nothing else.
    assert sorted(statements["DeliveryLedger"]["Action"]) == ["dynamodb:BatchGetItem", "dynamodb:UpdateItem"]
    assert statements["DeliveryLedger"]["Resource"] == {"Fn::GetAtt": "IdempotencyTable.Arn"}
    # Metrics go out as EMF log lines: no cloudwatch:PutMetricData anywhere.
    assert "cloudwatch" not in str(policy).lower()
    # The webhook cannot receive or delete from the queue: only replay can.
    [webhook_policy] = RESOURCES["WebhookFunction"]["Properties"]["Policies"]
    assert "sqs:DeleteMessage" not in str(webhook_policy) and "sqs:ReceiveMessage" not in str(webhook_policy)


def test_example_replay_event_is_a_dry_run():
    import json

    event = json.loads((ROOT / "events" / "replay.json").read_text())
    assert event == {"maxMessages": 500, "dryRun": True}


CHECKOV = ROOT / ".tools" / "checkov" / "bin" / "checkov"


def test_checkov_security_scan_is_clean():
    if not CHECKOV.exists():
        if os.environ.get("CI"):
            pytest.fail("checkov is missing from .tools/checkov: `make tools` installs it")
        pytest.skip("checkov not installed in .tools/checkov (run `make tools`)")
    result = subprocess.run(
        [
            str(CHECKOV),
            "-f",
            str(ROOT / "template.yaml"),
            "--framework",
            "cloudformation",
            "--compact",
            "--quiet",
            "--skip-download",
            "--output",
            "json",
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    import json

    report = json.loads(result.stdout)
    failed = [f"{c['check_id']} {c['resource']}" for c in report["results"]["failed_checks"]]
    assert failed == []
    assert report["summary"]["passed"] > 0


def test_every_security_suppression_carries_a_reason():
    skips = [
        (name, skip)
        for name, resource in RESOURCES.items()
        for skip in resource.get("Metadata", {}).get("checkov", {}).get("skip", [])
    ]
    assert skips
    for name, skip in skips:
        assert re.match(r"^CKV_AWS_\d+$", skip["id"]), name
        assert len(skip.get("comment", "")) > 30, f"{name} {skip['id']} needs a written reason"


def test_queue_and_table_are_encrypted_at_rest_and_api_is_throttled():
    assert RESOURCES["DeadLetterQueue"]["Properties"]["SqsManagedSseEnabled"] is True
    assert RESOURCES["IdempotencyTable"]["Properties"]["SSESpecification"]["SSEEnabled"] is True
    settings = RESOURCES["WebhookApi"]["Properties"]["MethodSettings"][0]
    assert settings["ThrottlingBurstLimit"] > 0 and settings["ThrottlingRateLimit"] > 0


def test_the_codes_body_limit_is_the_apis_only_one_and_both_documents_name_it():
    # API Gateway offers no body-size setting (a REST API takes 10 MB) and the stack puts no WAF in
    # front, so the 413 in the code is the only limit: the template and the README say which.
    from memory_bridge.domain.events import MAX_BODY_BYTES, MAX_FORM_FIELDS

    assert not [name for name, r in RESOURCES.items() if r["Type"].startswith("AWS::WAF")]
    limit = f"{MAX_BODY_BYTES // 1024} KiB"
    template = (ROOT / "template.yaml").read_text()
    assert f"a body over {limit}, or over {MAX_FORM_FIELDS} fields" in " ".join(
        line.strip(" #") for line in template.splitlines()
    )
    readme = " ".join((ROOT / "README.md").read_text().split())
    assert f"over {limit} or over {MAX_FORM_FIELDS} fields gets 413" in readme


# ---- scheduled replay, alarms, dashboard ---------------------------------------------------------


def parameter_values(**overrides: str) -> dict[str, str]:
    values = {name: str(p["Default"]) for name, p in TEMPLATE["Parameters"].items() if "Default" in p}
    return {**values, **overrides}


def condition(name: str, parameters: dict[str, str]) -> bool:
    """A condition of template.yaml evaluated for these parameter values (Equals, Not, Condition)."""

    def value(node: Any) -> Any:
        if isinstance(node, dict) and "Ref" in node:
            return parameters.get(node["Ref"], f"<{node['Ref']}>")
        if isinstance(node, dict) and ("Condition" in node or "Fn::Condition" in node):
            return condition(node.get("Condition") or node["Fn::Condition"], parameters)
        if isinstance(node, dict) and "Fn::Equals" in node:
            left, right = node["Fn::Equals"]
            return value(left) == value(right)
        if isinstance(node, dict) and "Fn::Not" in node:
            [inner] = node["Fn::Not"]
            return not value(inner)
        if isinstance(node, dict) and "Fn::Select" in node:
            return None  # not needed by these tests
        return node

    return bool(value(TEMPLATE["Conditions"][name]))


def resolved(node: Any, parameters: dict[str, str]) -> Any:
    """A property value with Fn::If resolved for these parameter values."""
    if isinstance(node, dict) and "Fn::If" in node:
        name, when_true, when_false = node["Fn::If"]
        return resolved(when_true if condition(name, parameters) else when_false, parameters)
    return node


def present(logical_id: str, parameters: dict[str, str]) -> bool:
    resource = RESOURCES[logical_id]
    return "Condition" not in resource or condition(resource["Condition"], parameters)


def schedule() -> dict[str, Any]:
    event = RESOURCES["ReplayFunction"]["Properties"]["Events"]["ScheduledReplay"]
    assert event["Type"] == "ScheduleV2"
    properties: dict[str, Any] = event["Properties"]
    return properties


def test_the_scheduled_replay_is_on_by_default_and_a_parameter_turns_it_off():
    state = schedule()["State"]
    assert resolved(state, parameter_values()) == "ENABLED"
    assert resolved(state, parameter_values(ScheduledReplay="disabled")) == "DISABLED"
    assert set(TEMPLATE["Parameters"]["ScheduledReplay"]["AllowedValues"]) == {"enabled", "disabled"}


def test_the_schedule_runs_every_few_minutes_with_the_scheduled_input():
    from memory_bridge.replay import options_from_event
    from memory_bridge_dev.scheduled_replay import resolve_sub, scheduled_input

    parameters = TEMPLATE["Parameters"]
    assert parameters["ScheduledReplayMinutes"]["Default"] == 5
    assert parameters["ScheduledReplayMinutes"]["MinValue"] >= 2  # "rate(1 minutes)" is not an expression
    expression = resolve_sub(schedule()["ScheduleExpression"], TEMPLATE, {})
    assert expression == "rate(5 minutes)"
    assert resolve_sub(schedule()["ScheduleExpression"], TEMPLATE, {"ScheduledReplayMinutes": "15"}) == (
        "rate(15 minutes)"
    )
    assert parameters["ScheduledReplayMaxAttempts"]["Default"] == 4
    event = scheduled_input(TEMPLATE, {"ScheduledReplayMaxAttempts": "6"})
    options = options_from_event(event)  # the function accepts it as it stands
    assert options.max_attempts == 6 and options.kind == "retryable" and not options.dry_run
    assert options.min_age is not None and options.min_age.total_seconds() >= 60
    assert options.max_messages is not None and options.rate is not None and options.max_received
    # A run that is not delivered at once is not retried: the next one comes in minutes.
    assert schedule()["RetryPolicy"] == {"MaximumRetryAttempts": 0}
    assert schedule()["OmitName"] is True  # two stacks in one account must not collide


def test_scheduled_runs_never_overlap():
    replay = RESOURCES["ReplayFunction"]["Properties"]
    assert replay["ReservedConcurrentExecutions"] == 1
    # A run throttled behind a running one is dropped after a minute rather than queued for hours.
    assert replay["EventInvokeConfig"] == {"MaximumEventAgeInSeconds": 60, "MaximumRetryAttempts": 0}


def test_the_schedules_role_may_only_invoke_the_replay_function():
    """SAM generates the schedule's role; translate the template and read it."""
    python = ROOT / ".tools" / "sam" / "bin" / "python"
    if not python.exists():
        require_sam()
    script = (
        "import json, sys\n"
        "from samtranslator.translator.transform import transform\n"
        "from samtranslator.yaml_helper import yaml_parse\n"
        "template = yaml_parse(open(sys.argv[1]).read())\n"
        "for resource in template['Resources'].values():\n"
        "    for key in ('CodeUri', 'ContentUri'):\n"
        "        if key in resource.get('Properties', {}):\n"
        "            resource['Properties'][key] = 's3://bucket/key'\n"
        "class Policies:\n"
        "    def load(self):\n"
        "        return {}\n"
        "print(json.dumps(transform(template, {}, Policies())['Resources']))\n"
    )
    result = subprocess.run(
        [str(python), "-c", script, str(ROOT / "template.yaml")],
        capture_output=True,
        text=True,
        env={**sam_environment(), "AWS_DEFAULT_REGION": "us-east-1"},
        check=False,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    import json

    resources = json.loads(result.stdout)
    schedules = {k: r for k, r in resources.items() if r["Type"] == "AWS::Scheduler::Schedule"}
    assert set(schedules) == {"ReplayFunctionScheduledReplay"}  # ScheduledReplayName's !Ref
    target = schedules["ReplayFunctionScheduledReplay"]["Properties"]["Target"]
    assert target["Arn"] == {"Fn::GetAtt": ["ReplayFunction", "Arn"]}
    role = resources[target["RoleArn"]["Fn::GetAtt"][0]]
    assert role["Properties"]["AssumeRolePolicyDocument"]["Statement"][0]["Principal"] == {
        "Service": ["scheduler.amazonaws.com"]
    }
    statements = [s for p in role["Properties"]["Policies"] for s in p["PolicyDocument"]["Statement"]]
    assert statements == [
        {
            "Action": "lambda:InvokeFunction",
            "Effect": "Allow",
            "Resource": {"Fn::GetAtt": ["ReplayFunction", "Arn"]},
        }
    ]


def emitted_metric_names() -> set[str]:
    """Every metric name the code can emit (namespace MemoryBridge, dimension service)."""
    from typing import get_args, get_type_hints

    from memory_bridge.replay import ReplayOptions, ReplaySummary, replay_metrics
    from memory_bridge.replay.summary import ReplayCounts
    from memory_bridge.room import ROOM_METRICS
    from memory_bridge.webhook import REDACTION_METRICS
    from memory_bridge.webhook.answers import SPEAKER_METRICS, skipped_metric
    from memory_bridge.webhook.delivery import Delivery, Skipped

    source = "\n".join(p.read_text() for p in (ROOT / "layers" / "bridge" / "memory_bridge").rglob("*.py"))
    names: set[str] = set()
    for call in re.findall(r"add_metric\((.*?)\"Count\"", source, flags=re.S):
        names.update(re.findall(r'"([A-Z][A-Za-z]+)"', call))
    names.update(REDACTION_METRICS.values())
    reasons = [get_args(kind) for kind in get_args(get_type_hints(Skipped)["reason"])]
    names.update(skipped_metric(r) for group in reasons for r in group)
    names.update(SPEAKER_METRICS.values())
    names.update(replay_metrics(ReplaySummary(ReplayOptions(max_attempts=4), reached_end=True)))
    # Memory's limit per profile: reported only when non-zero, by the replay and the webhook alike.
    full = ReplayCounts(evicted=1, profile_full=1, near_limit=1)
    names.update(replay_metrics(ReplaySummary(ReplayOptions(), counts=full)))
    # The webhook's delivery counts (Delivery.metrics): profiles made, and Memory's limit's.
    made = Delivery(Skipped("empty"), profiles_created=1, room_metrics=tuple((n, 1) for n in ROOM_METRICS))
    names.update(name for name, _ in made.metrics())
    return names


def alarms(parameters: dict[str, str] | None = None) -> dict[str, dict[str, Any]]:
    values = parameters or parameter_values()
    return {
        name: r["Properties"]
        for name, r in RESOURCES.items()
        if r["Type"] == "AWS::CloudWatch::Alarm" and present(name, values)
    }


def metrics_of(alarm: dict[str, Any]) -> list[dict[str, Any]]:
    """(namespace, name, dimensions) of each metric an alarm reads, plain or in metric math."""
    if "MetricName" in alarm:
        return [
            {
                "Namespace": alarm["Namespace"],
                "MetricName": alarm["MetricName"],
                "Dimensions": alarm["Dimensions"],
            }
        ]
    return [m["MetricStat"]["Metric"] for m in alarm["Metrics"] if "MetricStat" in m]


def runbook_anchors() -> set[str]:
    headings = re.findall(r"^#+ (.+)$", (ROOT / "docs" / "runbook.md").read_text(), flags=re.M)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in headings}


def test_what_pages_by_default_and_when_the_schedule_is_off():
    assert set(alarms()) == {
        "DeadLettersNeedPeopleAlarm",
        "DeadLetterAgeAlarm",
        "SignatureRejectedAlarm",
        "WebhookFailuresAlarm",
        "ScheduledReplayFailingAlarm",
        "ProfilesFullAlarm",
    }
    # The first transient park pages nobody while the schedule replays it; with no schedule, it does.
    off = alarms(parameter_values(ScheduledReplay="disabled"))
    assert set(off) == {
        "DeadLetterDepthAlarm",
        "DeadLetterAgeAlarm",
        "SignatureRejectedAlarm",
        "WebhookFailuresAlarm",
        "ProfilesFullAlarm",
    }
    assert off["DeadLetterDepthAlarm"]["Threshold"] == 1


def test_the_profiles_full_alarm_pages_once_for_every_full_profile():
    """ProfileFullPolicy=park: one alarm on ProfilesFull, which counts a message the first time it
    finds its profile full (the replay's re-checks are not counted again), over an hour."""
    alarm = alarms(parameter_values())["ProfilesFullAlarm"]
    assert (alarm["MetricName"], alarm["Statistic"], alarm["Threshold"]) == ("ProfilesFull", "Sum", 1)
    assert (alarm["Period"], alarm["TreatMissingData"]) == (3600, "notBreaching")
    variables = TEMPLATE["Globals"]["Function"]["Environment"]["Variables"]
    assert variables["PROFILE_OBSERVATION_LIMIT"] == {"Ref": "ProfileObservationLimit"}
    assert variables["PROFILE_FULL_POLICY"] == {"Ref": "ProfileFullPolicy"}
    parameters = TEMPLATE["Parameters"]
    assert (parameters["ProfileObservationLimit"]["Default"], parameters["ProfileFullPolicy"]["Default"]) == (
        500,
        "keep-latest",
    )
    assert parameters["ProfileFullPolicy"]["AllowedValues"] == ["keep-latest", "park"]
    assert (
        parameters["ProfileObservationLimit"]["MinValue"],
        parameters["ProfileObservationLimit"]["MaxValue"],
    ) == (
        0,
        10_000,
    )


def test_every_alarm_points_at_its_runbook_section_and_notifies_the_topic():
    anchors = runbook_anchors()
    every = {name: r["Properties"] for name, r in RESOURCES.items() if r["Type"] == "AWS::CloudWatch::Alarm"}
    for name, alarm in every.items():
        [link] = re.findall(r"docs/runbook\.md#([a-z0-9-]+)", alarm["AlarmDescription"])
        assert link in anchors, f"{name}: docs/runbook.md has no section #{link}"
        assert alarm["AlarmActions"] == [ALARM_TOPIC], name


def test_alarms_read_metrics_the_code_emits_with_its_dimension():
    names = emitted_metric_names()
    for name, alarm in alarms(parameter_values()).items():
        for metric in metrics_of(alarm):
            if metric["Namespace"] == "MemoryBridge":
                assert metric["MetricName"] in names, f"{name}: nothing emits {metric['MetricName']}"
                assert metric["Dimensions"] == [{"Name": "service", "Value": {"Ref": "AWS::StackName"}}]


# ---- where the alarms go, and whose metrics they read --------------------------------------------

ALARM_TOPIC = {"Fn::If": ["UseGivenAlarmTopic", {"Ref": "AlarmTopicArn"}, {"Ref": "AlarmTopic"}]}
GIVEN_TOPIC = "arn:aws:sns:us-east-1:123456789012:on-call"
AWS_NAMESPACES = ("AWS/SQS", "AWS/Lambda", "AWS/ApiGateway")


def resolved_deep(node: Any, parameters: dict[str, str]) -> Any:
    """A value with every Fn::If resolved and every Ref to a parameter replaced by its value."""
    node = resolved(node, parameters)
    if isinstance(node, dict) and set(node) == {"Ref"} and node["Ref"] in TEMPLATE["Parameters"]:
        return parameters[node["Ref"]]
    if isinstance(node, list):
        return [resolved_deep(item, parameters) for item in node]
    if isinstance(node, dict):
        return {key: resolved_deep(value, parameters) for key, value in node.items()}
    return node


def every_alarm_in_each_schedule_state(**overrides: str) -> list[tuple[str, dict[str, Any], dict[str, str]]]:
    found = []
    for state in ("enabled", "disabled"):
        values = parameter_values(ScheduledReplay=state, **overrides)
        found += [(name, alarm, values) for name, alarm in alarms(values).items()]
    return found


def test_by_default_every_alarm_notifies_a_topic_the_stack_makes():
    defaults = parameter_values()
    assert (defaults["AlarmTopicArn"], defaults["AlarmEmail"]) == ("", "")
    assert RESOURCES["AlarmTopic"]["Type"] == "AWS::SNS::Topic"
    assert present("AlarmTopic", defaults)
    found = every_alarm_in_each_schedule_state()
    assert len(found) == 11
    for name, alarm, values in found:
        assert resolved_deep(alarm["AlarmActions"], values) == [{"Ref": "AlarmTopic"}], name
    # No address, no subscription: the output names the topic to subscribe to.
    assert not present("AlarmEmailSubscription", defaults)


def test_a_given_topic_replaces_the_stacks_own():
    given = parameter_values(AlarmTopicArn=GIVEN_TOPIC)
    assert not present("AlarmTopic", given)
    for name, alarm, values in every_alarm_in_each_schedule_state(AlarmTopicArn=GIVEN_TOPIC):
        assert resolved_deep(alarm["AlarmActions"], values) == [GIVEN_TOPIC], name
    # Nothing refers to the topic the stack did not make (CloudFormation would refuse the template).
    for name in (*alarms(given), "AlarmEmailSubscription"):
        assert "'AlarmTopic'" not in str(resolved_deep(RESOURCES[name]["Properties"], given)), name
    assert "'AlarmTopic'" not in str(resolved_deep(TEMPLATE["Outputs"], given))


@pytest.mark.parametrize("topic", ["", GIVEN_TOPIC])
def test_an_alarm_email_is_subscribed_to_the_topic_the_alarms_notify(topic):
    values = parameter_values(AlarmTopicArn=topic, AlarmEmail="oncall@example.com")
    assert TEMPLATE["Conditions"]["HasAlarmEmail"] == {
        "Fn::Not": [{"Fn::Equals": [{"Ref": "AlarmEmail"}, ""]}]
    }
    assert present("AlarmEmailSubscription", values)
    subscription = RESOURCES["AlarmEmailSubscription"]
    assert subscription["Type"] == "AWS::SNS::Subscription"
    assert resolved_deep(subscription["Properties"], values) == {
        "TopicArn": topic or {"Ref": "AlarmTopic"},
        "Protocol": "email",
        "Endpoint": "oncall@example.com",
    }


def test_the_alarm_parameters_refuse_what_would_page_nobody():
    parameters = TEMPLATE["Parameters"]
    email = re.compile(parameters["AlarmEmail"]["AllowedPattern"])
    assert [
        v for v in ("", "oncall@example.com", "ops+bridge@team.example.co.uk") if not email.match(v)
    ] == []
    assert [
        v for v in ("oncall", "oncall@example", "on call@example.com", "a@b@c.com") if email.match(v)
    ] == []
    topic = re.compile(parameters["AlarmTopicArn"]["AllowedPattern"])
    accepted = ("", GIVEN_TOPIC, "arn:aws-us-gov:sns:us-gov-west-1:123456789012:Ops_Pager")
    assert [v for v in accepted if not topic.match(v)] == []
    refused = ("on-call", "arn:aws:sqs:us-east-1:123456789012:on-call", "arn:aws:sns:us-east-1:1234:x")
    assert [v for v in refused if topic.match(v)] == []


def test_the_outputs_name_the_alarm_topic():
    value = TEMPLATE["Outputs"]["AlarmTopicArn"]["Value"]
    assert resolved_deep(value, parameter_values()) == {"Ref": "AlarmTopic"}
    assert resolved_deep(value, parameter_values(AlarmTopicArn=GIVEN_TOPIC)) == GIVEN_TOPIC


def test_the_alarm_topic_is_not_encrypted_with_a_key_cloudwatch_cannot_use():
    """CloudWatch publishes to an encrypted topic only with a customer-managed key that lets it: the
    AWS managed alias/aws/sns would drop every alarm, silently. The checkov suppression says why."""
    topic = RESOURCES["AlarmTopic"]
    assert "KmsMasterKeyId" not in topic["Properties"]
    [skip] = [s for s in topic["Metadata"]["checkov"]["skip"] if s["id"] == "CKV_AWS_26"]
    assert "alias/aws/sns" in skip["comment"]


def test_each_stack_writes_and_reads_only_its_own_metrics():
    """Two stacks in one account: each function writes `service` = its stack's name, and each alarm and
    dashboard widget reads that one (AWS's own metrics are per resource: function, queue, API name)."""
    variables = TEMPLATE["Globals"]["Function"]["Environment"]["Variables"]
    assert variables["POWERTOOLS_SERVICE_NAME"] == {"Ref": "AWS::StackName"}
    namespace = variables["POWERTOOLS_METRICS_NAMESPACE"]
    ours = [
        (name, metric)
        for name, alarm, _ in every_alarm_in_each_schedule_state()
        for metric in metrics_of(alarm)
        if metric["Namespace"] not in AWS_NAMESPACES
    ]
    assert {name for name, _ in ours} >= {"SignatureRejectedAlarm", "DeadLettersNeedPeopleAlarm"}
    for name, metric in ours:
        assert metric["Namespace"] == namespace, name
        assert metric["Dimensions"] == [{"Name": "service", "Value": {"Ref": "AWS::StackName"}}], name
    widgets = [w["properties"] for w in dashboard()["widgets"]]
    shown = [m for w in widgets if w.get("metrics") for m in w["metrics"] if m[0] not in AWS_NAMESPACES]
    assert len(shown) == 28
    assert all(m[0] == namespace and m[2:4] == ["service", "<AWS::StackName>"] for m in shown), shown
    [text] = [w["markdown"] for w in widgets if "markdown" in w]
    assert "service <AWS::StackName>" in text


def test_the_needs_people_alarm_reads_the_schedules_gauge_and_keeps_its_state_between_runs():
    alarm = alarms()["DeadLettersNeedPeopleAlarm"]
    assert alarm["MetricName"] == "DeadLettersNeedingAttention"
    assert (alarm["Statistic"], alarm["Threshold"], alarm["ComparisonOperator"]) == (
        "Maximum",
        1,
        "GreaterThanOrEqualToThreshold",
    )
    assert alarm["TreatMissingData"] == "ignore"
    age = alarms()["DeadLetterAgeAlarm"]
    assert age["MetricName"] == "ApproximateAgeOfOldestMessage"
    assert age["Threshold"] == {"Ref": "DeadLetterAgeAlarmSeconds"}


def test_the_signature_alarm_wants_a_wave_and_says_what_it_usually_means():
    alarm = alarms()["SignatureRejectedAlarm"]
    by_id = {m["Id"]: m for m in alarm["Metrics"]}
    assert by_id["rejected"]["MetricStat"]["Metric"]["MetricName"] == "SignatureRejected"
    assert by_id["accepted"]["MetricStat"]["Metric"]["MetricName"] == "WebhooksReceived"
    [returned] = [m for m in alarm["Metrics"] if m["ReturnData"]]
    assert (
        returned["Expression"] == "IF(FILL(rejected, 0) >= 5 AND FILL(rejected, 0) > FILL(accepted, 0), 1, 0)"
    )
    assert (alarm["EvaluationPeriods"], alarm["DatapointsToAlarm"]) == (3, 2)  # one burst is not enough
    description = alarm["AlarmDescription"]
    for hint in ("token", "URL", "PUBLIC_WEBHOOK_URL", "webhook rejected"):
        assert hint in description


def test_the_webhook_failures_alarm_adds_up_what_twilio_saw_fail():
    alarm = alarms()["WebhookFailuresAlarm"]
    read = {(m["Namespace"], m["MetricName"]) for m in metrics_of(alarm)}
    assert read == {
        ("AWS/ApiGateway", "5XXError"),
        ("MemoryBridge", "DeadLetterQueueUnavailable"),
        ("AWS/Lambda", "Errors"),
        ("AWS/Lambda", "Throttles"),
    }
    api = next(m for m in metrics_of(alarm) if m["Namespace"] == "AWS/ApiGateway")
    # API Gateway's metrics are keyed by the API's name: the one the template gives it.
    assert {"Name": "ApiName", "Value": RESOURCES["WebhookApi"]["Properties"]["Name"]} in api["Dimensions"]
    assert {"Name": "Stage", "Value": RESOURCES["WebhookApi"]["Properties"]["StageName"]} in api["Dimensions"]
    for metric in metrics_of(alarm):
        if metric["Namespace"] == "AWS/Lambda":
            assert metric["Dimensions"] == [{"Name": "FunctionName", "Value": {"Ref": "WebhookFunction"}}]
    [returned] = [m for m in alarm["Metrics"] if m["ReturnData"]]
    for metric_id in ("api5xx", "unparked", "errors", "throttles"):
        assert f"FILL({metric_id}, 0)" in returned["Expression"]
    assert alarm["Threshold"] == 5


def dashboard() -> dict[str, Any]:
    import json

    body = RESOURCES["BridgeDashboard"]["Properties"]["DashboardBody"]["Fn::Sub"]
    references = set(re.findall(r"\$\{([A-Za-z0-9:.]+)\}", body))
    known = set(RESOURCES) | {"AWS::Region", "AWS::StackName"} | {f"{r}.QueueName" for r in RESOURCES}
    assert references <= known, references - known
    document: dict[str, Any] = json.loads(re.sub(r"\$\{([A-Za-z0-9:.]+)\}", r"<\1>", body))
    return document


def test_the_dashboard_shows_the_bridges_health():
    widgets = {
        w["properties"].get("title"): w["properties"] for w in dashboard()["widgets"] if w["type"] == "metric"
    }
    assert set(widgets) == {
        "Webhooks: received, posted, skipped, duplicate",
        "Parked on the dead-letter queue, by kind",
        "Signature rejections (403)",
        "Webhook duration p50 / p99 (ms)",
        "Dead-letter queue depth",
        "Dead-letter queue: age of the oldest message (s)",
        "What the scheduled replay did",
        "Failures answered to Twilio",
        "Messages by speaker",
        "Profiles created",
        "Conversations API: participants read, speakers unresolved",
        "Memory's limit per profile (ProfileObservationLimit, ProfileFullPolicy)",
    }

    def names(title: str) -> set[str]:
        return {m[1] for m in widgets[title]["metrics"]}

    assert {"WebhooksReceived", "MessagesPosted", "Duplicates", "MessagesSkippedEmpty"} <= names(
        "Webhooks: received, posted, skipped, duplicate"
    )
    assert names("Parked on the dead-letter queue, by kind") == {
        "MessagesParkedRetryable",
        "MessagesParkedPermanent",
    }
    assert names("Signature rejections (403)") == {"SignatureRejected"}
    duration = widgets["Webhook duration p50 / p99 (ms)"]["metrics"]
    assert {(m[1], m[3], m[4]["stat"]) for m in duration} == {
        ("Duration", "<WebhookFunction>", "p50"),
        ("Duration", "<WebhookFunction>", "p99"),
    }
    assert "ApproximateNumberOfMessagesVisible" in names("Dead-letter queue depth")
    assert names("Dead-letter queue: age of the oldest message (s)") == {"ApproximateAgeOfOldestMessage"}
    assert names("What the scheduled replay did") == {
        "ReplayPosted",
        "ReplayAlreadyPosted",
        "ReplayFailedAgain",
        "ReplayLeftForPeople",
        "DeadLettersNeedingAttention",
    }
    assert names("Messages by speaker") == {
        "MessagesFromCustomers",
        "MessagesFromAgents",
        "MessagesFromBrand",
    }
    assert names("Profiles created") == {"ProfilesCreated"}
    assert names("Conversations API: participants read, speakers unresolved") == {
        "ParticipantsRead",
        "SpeakerUnresolved",
    }
    assert names("Memory's limit per profile (ProfileObservationLimit, ProfileFullPolicy)") == {
        "ProfileNearLimit",
        "ObservationsEvicted",
        "ProfilesFull",
    }
    # Every MemoryBridge metric on it is one the code emits, under its service dimension.
    emitted = emitted_metric_names()
    for widget in widgets.values():
        for metric in widget["metrics"]:
            if metric[0] == "MemoryBridge":
                assert metric[1] in emitted, metric
                assert metric[2:4] == ["service", "<AWS::StackName>"]
            if metric[0] == "AWS/SQS":
                assert metric[2:4] == ["QueueName", "<DeadLetterQueue.QueueName>"]


def test_outputs_name_the_dashboard_and_the_schedule():
    outputs = TEMPLATE["Outputs"]
    url = outputs["DashboardUrl"]["Value"]["Fn::Sub"]
    assert url.startswith(
        "https://${AWS::Region}.console.aws.amazon.com/cloudwatch/home?region=${AWS::Region}"
    )
    assert url.endswith("#dashboards/dashboard/${BridgeDashboard}")
    assert RESOURCES["BridgeDashboard"]["Type"] == "AWS::CloudWatch::Dashboard"
    assert outputs["ScheduledReplayName"]["Value"] == {"Ref": "ReplayFunctionScheduledReplay"}


# ---- SnapStart (optional) and the memory size ---------------------------------------------------


def test_snapstart_is_off_by_default_and_switched_by_one_parameter():
    parameter = TEMPLATE["Parameters"]["WebhookSnapStart"]
    assert parameter["Default"] == "off"
    assert sorted(parameter["AllowedValues"]) == ["off", "on"]
    assert TEMPLATE["Conditions"]["WebhookSnapStartOn"] == {"Fn::Equals": [{"Ref": "WebhookSnapStart"}, "on"]}
    webhook = RESOURCES["WebhookFunction"]["Properties"]
    assert webhook["SnapStart"] == {
        "Fn::If": ["WebhookSnapStartOn", {"ApplyOn": "PublishedVersions"}, {"Ref": "AWS::NoValue"}]
    }
    # SnapStart applies to published versions only: the API calls an alias that follows each deploy,
    # and a new layer (where the bridge's code lives) publishes a new version too.
    assert webhook["AutoPublishAlias"] == "live"
    assert webhook["AutoPublishAliasAllProperties"] is True
    assert RESOURCES["BridgeLayer"]["Properties"]["PublishLambdaVersion"] is True
    assert "SnapStart" not in RESOURCES["ReplayFunction"]["Properties"]
    assert "SnapStart" not in TEMPLATE["Globals"]["Function"]
    assert TEMPLATE["Globals"]["Function"]["Runtime"] in ("python3.12", "python3.13")  # SnapStart: 3.12+


TRANSLATE = """
import json, sys
from samtranslator.translator.transform import transform
from samtranslator.yaml_helper import yaml_parse

class NoManagedPolicies:
    def load(self):
        return {}

template = yaml_parse(open(sys.argv[1]).read())
for resource in template["Resources"].values():
    properties = resource.get("Properties", {})
    for key in ("CodeUri", "ContentUri"):
        if isinstance(properties.get(key), str):
            properties[key] = "s3://bucket/" + (sys.argv[2] if key == "ContentUri" else "code")
parameters = {"MemoryStoreId": "mem_store_01kpttrksqe08rhv122gzq52ax", "TwilioCredentialsSecret": "s"}
print(json.dumps(transform(template, parameters, NoManagedPolicies())))
"""


def translated(layer_key: str = "layer") -> dict:
    """template.yaml as SAM turns it into CloudFormation (aws-sam-cli's own translator)."""
    import json

    python = require_sam().parent / "python"
    result = subprocess.run(
        [str(python), "-c", TRANSLATE, str(ROOT / "template.yaml"), layer_key],
        capture_output=True,
        text=True,
        env={**os.environ, "AWS_DEFAULT_REGION": "us-east-1"},
        check=False,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    resources: dict = json.loads(result.stdout)["Resources"]
    return resources


def test_sam_points_the_api_at_the_live_alias_and_a_new_layer_moves_it():
    resources = translated()
    [alias] = [r for r in resources.values() if r["Type"] == "AWS::Lambda::Alias"]
    assert alias["Properties"]["Name"] == "live"
    [permission] = [r for r in resources.values() if r["Type"] == "AWS::Lambda::Permission"]
    assert permission["Properties"]["FunctionName"] == {"Ref": "WebhookFunctionAliaslive"}
    integration = resources["WebhookApi"]["Properties"]["Body"]["paths"]["/webhooks/conversations"]["post"][
        "x-amazon-apigateway-integration"
    ]
    assert "${WebhookFunctionAliaslive}" in str(integration["uri"])
    assert resources["WebhookFunction"]["Properties"]["SnapStart"]["Fn::If"][0] == "WebhookSnapStartOn"

    def version_ids(found: dict) -> set[str]:
        return {k for k, r in found.items() if r["Type"] == "AWS::Lambda::Version"}

    assert version_ids(resources) != version_ids(translated("another-layer"))


def test_memory_size_is_the_one_the_bench_table_chose():
    from memory_bridge_dev.lambda_model import MEMORY_SIZES, template_memory_size

    chosen = template_memory_size(TEMPLATE)
    assert chosen == CHOSEN_MEMORY_MB
    assert chosen in MEMORY_SIZES
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("### What a million webhooks cost") :]
    assert f"**{chosen} MB**" in section.split("\n## ")[0]


def test_the_readme_names_every_parameter_and_every_variable_the_functions_get():
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("### Template parameters") :].split("\n## What happens")[0]
    unnamed = [name for name in TEMPLATE["Parameters"] if f"`{name}`" not in readme]
    assert unnamed == []
    for name in ("ConversationsApiBaseUrl", "AgentMessages", "AgentIdentities", "AgentAttribute"):
        assert f"| `{name}` |" in section, name  # a row of its own in the parameters' table
    variables = TEMPLATE["Globals"]["Function"]["Environment"]["Variables"]
    internal = {"POWERTOOLS_SERVICE_NAME", "POWERTOOLS_METRICS_NAMESPACE", "POWERTOOLS_LOG_LEVEL"}
    assert [v for v in variables if v not in internal and f"`{v}`" not in section] == []
    assert "`PARTICIPANT_CACHE_TTL_SECONDS`" in section
    assert "### Who is speaking" in readme
