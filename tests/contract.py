"""Hold requests and answers against Twilio's published Memory API description
(`../shared/twilio-memory-v1.yaml`). Absent file → the contract tests skip, saying so."""

from __future__ import annotations

import copy
import functools
from typing import Any

import pytest
import yaml

from tests.support import SHARED

SPEC_PATH = SHARED / "twilio-memory-v1.yaml"


@functools.cache
def spec() -> dict[str, Any]:
    if not SPEC_PATH.exists():
        pytest.skip(f"Memory API contract not found at {SPEC_PATH}; contract checks skipped")
    with SPEC_PATH.open() as handle:
        document: dict[str, Any] = yaml.safe_load(handle)
    return document


def _resolve(node: Any, root: dict[str, Any], depth: int = 0) -> Any:
    if depth > 40:
        return {}
    if isinstance(node, dict):
        if "$ref" in node:
            target: Any = root
            for part in node["$ref"].lstrip("#/").split("/"):
                target = target[part]
            return _resolve(copy.deepcopy(target), root, depth + 1)
        # Discriminator mappings point at schemas by name; with every $ref inlined, oneOf suffices.
        return {key: _resolve(value, root, depth) for key, value in node.items() if key != "discriminator"}
    if isinstance(node, list):
        return [_resolve(item, root, depth) for item in node]
    return node


@functools.cache
def operations() -> dict[str, dict[str, Any]]:
    """operationId → resolved operation object."""
    document = spec()
    found: dict[str, dict[str, Any]] = {}
    for path_item in document["paths"].values():
        for method, operation in path_item.items():
            if isinstance(operation, dict) and "operationId" in operation:
                found[operation["operationId"]] = _resolve(operation, document) | {"method": method.upper()}
    return found


def _validate(schema: dict[str, Any], instance: Any, what: str) -> list[str]:
    from openapi_schema_validator import OAS30Validator, oas30_format_checker

    validator = OAS30Validator(schema, format_checker=oas30_format_checker)
    return [f"{what}: {error.message} at {list(error.path)}" for error in validator.iter_errors(instance)]


def request_problems(operation_id: str, body: Any) -> list[str]:
    operation = operations()[operation_id]
    content = operation.get("requestBody", {}).get("content", {})
    if not content:
        return [] if body is None else [f"{operation_id}: body sent to an operation without one"]
    schema = content["application/json"]["schema"]
    return _validate(schema, body, f"{operation_id} request")


def response_problems(operation_id: str, status: int, body: Any, headers: dict[str, str]) -> list[str]:
    operation = operations()[operation_id]
    answer = operation["responses"].get(str(status))
    if answer is None:
        return [f"{operation_id}: status {status} is not in the contract"]
    problems = []
    schema = answer.get("content", {}).get("application/json", {}).get("schema")
    if schema is not None:
        problems += _validate(schema, body, f"{operation_id} {status} response")
    for name, header in answer.get("headers", {}).items():
        value = headers.get(name)
        if value is None:
            continue
        header_schema = dict(header.get("schema", {}))
        if header_schema.get("type") == "integer":
            if not str(value).isdigit():
                problems.append(f"{operation_id} header {name} is not an integer: {value!r}")
            continue
        problems += _validate(header_schema, value, f"{operation_id} header {name}")
    return problems
