"""Create the stack's AWS resources (queue, table, secret) on moto's server, as template.yaml
declares them: the queue's attributes and the table's key schema are read from the template, not
restated here."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

PROJECT_ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = PROJECT_ROOT / "template.yaml"


class _CfnLoader(yaml.SafeLoader):
    """YAML loader that keeps CloudFormation's short tags (!Ref, !Sub, …) as {"Fn": value}."""


def _tag(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> Any:
    name = "Ref" if suffix == "Ref" else f"Fn::{suffix}"
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
    return {name: value}


_CfnLoader.add_multi_constructor("!", _tag)


def load_template(path: Path = TEMPLATE) -> dict[str, Any]:
    with path.open() as handle:
        document: dict[str, Any] = yaml.load(handle, Loader=_CfnLoader)  # noqa: S506 - SafeLoader subclass
    return document


def resource(template: dict[str, Any], logical_id: str) -> dict[str, Any]:
    properties: dict[str, Any] = template["Resources"][logical_id].get("Properties", {})
    return properties


def queue_attributes(template: dict[str, Any]) -> dict[str, str]:
    """SQS attributes of DeadLetterQueue, as CreateQueue takes them (moto has no SSE-SQS; the flag stays)."""
    properties = resource(template, "DeadLetterQueue")
    names = (
        "MessageRetentionPeriod",
        "VisibilityTimeout",
        "ReceiveMessageWaitTimeSeconds",
        "SqsManagedSseEnabled",
    )
    return {
        name: str(properties[name]).lower() if isinstance(properties[name], bool) else str(properties[name])
        for name in names
        if name in properties
    }


def create_dead_letter_queue(sqs: Any, name: str, template: dict[str, Any] | None = None) -> str:
    attributes = queue_attributes(template or load_template())
    url: str = sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
    return url


def create_idempotency_table(dynamodb: Any, name: str, template: dict[str, Any] | None = None) -> str:
    properties = resource(template or load_template(), "IdempotencyTable")
    dynamodb.create_table(
        TableName=name,
        BillingMode=properties["BillingMode"],
        AttributeDefinitions=properties["AttributeDefinitions"],
        KeySchema=properties["KeySchema"],
    )
    ttl = properties.get("TimeToLiveSpecification")
    if ttl:
        dynamodb.update_time_to_live(TableName=name, TimeToLiveSpecification=ttl)
    return name


def put_credentials_secret(secrets: Any, name: str, value: dict[str, str]) -> str:
    """Create the secret, or put a new version when it exists (rotation)."""
    body = json.dumps(value)
    try:
        arn: str = secrets.create_secret(Name=name, SecretString=body)["ARN"]
    except secrets.exceptions.ResourceExistsException:
        arn = secrets.put_secret_value(SecretId=name, SecretString=body)["ARN"]
    return arn
