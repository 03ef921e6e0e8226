"""template.yaml: linted by cfn-lint and `sam validate --lint`, built by `sam build`, and holding
what the design promises (route, layer, queue, table, alarms, least-privilege IAM, outputs)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from memory_bridge.config import SOURCE_PATTERN, STORE_ID_PATTERN
from memory_bridge_dev.aws_resources import load_template
from memory_bridge_dev.sam_tools import SAM, python313_dirs, sam_environment
from tests.support import ROOT

pytestmark = pytest.mark.template
TEMPLATE = load_template()
RESOURCES = TEMPLATE["Resources"]
PYTHON_313_DIRS = python313_dirs()


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
    assert (layer / "memory_bridge" / "webhook.py").exists()
    assert (layer / "aws_lambda_powertools").is_dir()
    assert (layer / "urllib3").is_dir()
    shipped = {p.name for p in build_dir.rglob("*")}
    assert "memory_bridge_dev" not in shipped and "sandbox.py" not in shipped
    # The operator CLI (argparse, the sam deploy runner) is installed by pip, never shipped to Lambda.
    assert "memory_bridge_cli" not in shipped
    assert not [p.name for p in (layer / "memory_bridge").glob("*.py") if p.name.startswith("cli")]
    assert not {"stores.py", "queue_scan.py"} & {p.name for p in (layer / "memory_bridge").glob("*.py")}
    assert "argparse" not in "".join(p.read_text() for p in (layer / "memory_bridge").glob("*.py"))
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


def test_alarms_watch_depth_and_age_of_the_queue():
    alarms = {
        r["Properties"]["MetricName"]: r["Properties"]
        for r in RESOURCES.values()
        if r["Type"] == "AWS::CloudWatch::Alarm"
    }
    assert set(alarms) == {"ApproximateNumberOfMessagesVisible", "ApproximateAgeOfOldestMessage"}
    for alarm in alarms.values():
        assert alarm["Dimensions"] == [
            {"Name": "QueueName", "Value": {"Fn::GetAtt": "DeadLetterQueue.QueueName"}}
        ]


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


def test_redaction_is_on_by_default_and_its_parameters_accept_what_the_code_accepts():
    from memory_bridge.redaction import parse_kinds

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


def test_replay_function_has_no_trigger_and_its_own_least_privilege_role():
    replay = RESOURCES["ReplayFunction"]["Properties"]
    assert replay["Handler"] == "app.lambda_handler"
    assert replay["CodeUri"] == "functions/replay/"
    assert "Events" not in replay
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
