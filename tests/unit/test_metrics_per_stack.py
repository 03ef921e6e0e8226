"""Two stacks in one account never mix their metrics: the functions take their `service` dimension (and
the logs' `service`) from POWERTOOLS_SERVICE_NAME, which the template sets to the stack's name, and the
local stack resolves the template's environment the same way."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

from memory_bridge_dev.aws_resources import load_template
from memory_bridge_dev.local_stack import LOCAL_STACK_NAME, function_environment
from tests.support import ROOT

# What the functions' module does at import (Lambda sets the environment first), in a fresh interpreter.
EMIT = """
from memory_bridge import runtime
runtime.logger.info("hello")
runtime.metrics.add_metric(name="WebhooksReceived", unit="Count", value=1)
runtime.metrics.flush_metrics()
runtime.replay_metrics.add_metric(name="ReplayPosted", unit="Count", value=1)
runtime.replay_metrics.flush_metrics()
"""


def emitted(**environment: str) -> list[dict[str, Any]]:
    done = subprocess.run(
        [sys.executable, "-c", EMIT],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={
            "PATH": "/usr/bin:/bin",
            "PYTHONPATH": str(ROOT / "layers" / "bridge"),
            "AWS_DEFAULT_REGION": "us-east-1",
            **environment,
        },
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]


def dimensions(record: dict[str, Any]) -> tuple[str, str]:
    [directive] = record["_aws"]["CloudWatchMetrics"]
    return directive["Namespace"], record["service"]


def test_the_functions_write_their_stacks_own_service_dimension():
    records = emitted(POWERTOOLS_SERVICE_NAME="bridge-eu", POWERTOOLS_METRICS_NAMESPACE="MemoryBridge")
    [log] = [r for r in records if r.get("message") == "hello"]
    assert log["service"] == "bridge-eu"
    metrics = [r for r in records if "_aws" in r]
    assert {name for r in metrics for name in ("WebhooksReceived", "ReplayPosted") if name in r} == {
        "WebhooksReceived",
        "ReplayPosted",
    }
    assert {dimensions(r) for r in metrics} == {("MemoryBridge", "bridge-eu")}
    for record in metrics:
        assert record["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [["service"]]


def test_outside_a_stack_the_defaults_stand():
    records = emitted()
    assert {dimensions(r) for r in records if "_aws" in r} == {("MemoryBridge", "memory-bridge")}


def test_the_local_stack_resolves_the_stack_name_like_cloudformation():
    required = {
        "MemoryStoreId": "mem_store_01kpttrksqe08rhv122gzq52ax",
        "TwilioCredentialsSecret": "memory-bridge/local",
        "DeadLetterQueue": "http://127.0.0.1:5000/123456789012/q",
        "IdempotencyTable": "t",
    }
    environment = function_environment(load_template(), required)
    assert environment["POWERTOOLS_SERVICE_NAME"] == LOCAL_STACK_NAME
    assert environment["POWERTOOLS_METRICS_NAMESPACE"] == "MemoryBridge"
    named = function_environment(load_template(), {**required, "AWS::StackName": "second"})
    assert named["POWERTOOLS_SERVICE_NAME"] == "second"
