"""The runbook's "pause the scheduled replay" command, run as written (bash, the AWS CLI, jq) against
moto's server holding a stack whose output names a schedule like the one template.yaml creates."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from typing import Any

import boto3
import pytest

from memory_bridge_dev.aws_resources import load_template
from memory_bridge_dev.scheduled_replay import resolve_sub, schedule_event, scheduled_input
from tests.support import ROOT

pytestmark = pytest.mark.integration


def pause_block() -> str:
    """The first bash block of the runbook's section "Pausing the scheduled replay"."""
    text = (ROOT / "docs" / "runbook.md").read_text()
    section = text.split("## Pausing the scheduled replay", 1)[1].split("\n## ", 1)[0]
    match = re.search(r"```bash\n(.*?)```", section, flags=re.S)
    assert match, "no bash block in the runbook's pause section"
    return match.group(1)


@pytest.fixture
def stack_with_a_schedule(aws_env: str) -> dict[str, Any]:
    """A schedule shaped as template.yaml's (expression, input, retry policy, description), and a
    stack whose ScheduledReplayName output names it, as the deployed stack's does."""
    template = load_template()
    event = schedule_event(template)
    name = f"ReplayFunctionScheduledReplay-{os.urandom(4).hex()}"
    scheduler = boto3.client("scheduler")
    scheduler.create_schedule(
        Name=name,
        ScheduleExpression=resolve_sub(event["ScheduleExpression"], template, {}),
        FlexibleTimeWindow={"Mode": "OFF"},
        State="ENABLED",
        Description=event["Description"],
        Target={
            "Arn": "arn:aws:lambda:us-east-1:123456789012:function:memory-bridge-ReplayFunction",
            "RoleArn": "arn:aws:iam::123456789012:role/memory-bridge-ScheduledReplayRole",
            "Input": json.dumps(scheduled_input(template)),
            "RetryPolicy": event["RetryPolicy"],
        },
    )
    stack = f"memory-bridge-{os.urandom(4).hex()}"
    boto3.client("cloudformation").create_stack(
        StackName=stack,
        TemplateBody=json.dumps(
            {
                "Resources": {"Queue": {"Type": "AWS::SQS::Queue"}},
                "Outputs": {"ScheduledReplayName": {"Value": name}},
            }
        ),
    )
    return {"stack": stack, "schedule": name, "endpoint": aws_env}


def run_block(block: str, stack: dict[str, Any]) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "STACK": stack["stack"],
        "AWS_ENDPOINT_URL": stack["endpoint"],
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    return subprocess.run(
        [shutil.which("bash") or "/bin/bash", "-euo", "pipefail", "-c", block],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


def test_the_pause_command_disables_the_schedule_and_keeps_the_rest(stack_with_a_schedule):
    if not (shutil.which("aws") and shutil.which("jq")):
        pytest.skip("the runbook's command needs the AWS CLI and jq on PATH")
    scheduler = boto3.client("scheduler")
    before = scheduler.get_schedule(Name=stack_with_a_schedule["schedule"])
    block = pause_block()

    paused = run_block(block, stack_with_a_schedule)

    assert paused.returncode == 0, paused.stderr
    assert paused.stdout.strip().splitlines()[-1] == "DISABLED"
    after = scheduler.get_schedule(Name=stack_with_a_schedule["schedule"])
    assert after["State"] == "DISABLED"
    for kept in ("ScheduleExpression", "FlexibleTimeWindow", "Target", "Description"):
        assert after[kept] == before[kept], kept

    # "to resume, run the same line with ENABLED"
    resumed = run_block(block.replace('"DISABLED"', '"ENABLED"'), stack_with_a_schedule)
    assert resumed.returncode == 0, resumed.stderr
    again = scheduler.get_schedule(Name=stack_with_a_schedule["schedule"])
    assert again["State"] == "ENABLED" and again["Target"] == before["Target"]
