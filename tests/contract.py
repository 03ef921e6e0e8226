"""Hold requests and answers against Twilio's published API descriptions: Memory
(`../shared/twilio-memory-v1.yaml`) and Conversations (`../shared/twilio-conversations-v1.yaml`).
Absent file → the contract tests skip, saying so."""

from __future__ import annotations

import copy
import functools
from typing import Any

import pytest
import yaml

from tests.support import SHARED

SPEC_PATH = SHARED / "twilio-memory-v1.yaml"
CONVERSATIONS_SPEC_PATH = SHARED / "twilio-conversations-v1.yaml"


@functools.cache
def _load(path: Any, name: str) -> dict[str, Any]:
    if not path.exists():
        pytest.skip(f"{name} contract not found at {path}; contract checks skipped")
    with path.open() as handle:
        document: dict[str, Any] = yaml.safe_load(handle)
    return document


def spec() -> dict[str, Any]:
    return _load(SPEC_PATH, "Memory API")


def conversations_spec() -> dict[str, Any]:
    return _load(CONVERSATIONS_SPEC_PATH, "Conversations API")


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
    """operationId → resolved operation object (Memory's)."""
    return _operations(spec())


@functools.cache
def conversations_operations() -> dict[str, dict[str, Any]]:
    return _operations(conversations_spec())


def _operations(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
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


def form_request_problems(operation_id: str, form: list[tuple[str, str]]) -> list[str]:
    """A form-encoded Conversations request: every field declared, repeated only where an array is."""
    operation = conversations_operations()[operation_id]
    content = operation.get("requestBody", {}).get("content", {})
    if not content:
        return [] if not form else [f"{operation_id}: a body sent to an operation without one"]
    schema = content["application/x-www-form-urlencoded"]["schema"]
    properties = schema.get("properties", {})
    document: dict[str, Any] = {}
    problems = []
    for name, value in form:
        declared = properties.get(name)
        if declared is None:
            problems.append(f"{operation_id} request: {name} is not a parameter of this operation")
        elif declared.get("type") == "array":
            document.setdefault(name, []).append(value)
        elif name in document:
            problems.append(f"{operation_id} request: {name} sent twice")
        else:
            document[name] = value
    return problems + _validate(schema, document, f"{operation_id} request")


def response_problems(
    operation_id: str,
    status: int,
    body: Any,
    headers: dict[str, str],
    known: dict[str, dict[str, Any]] | None = None,
) -> list[str]:
    """`known`: the operations of the contract the answer belongs to (default: Memory's)."""
    operation = (operations() if known is None else known)[operation_id]
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


def query_problems(
    operation_id: str, query: list[tuple[str, str]], known: dict[str, dict[str, Any]] | None = None
) -> list[str]:
    """A request's query string: every parameter declared (`in: query`), each value of the declared type
    and within its bounds (PageSize ≤ 100, Order asc|desc, …). `known`: the operations of the contract
    the request belongs to (default: Conversations')."""
    operation = (conversations_operations() if known is None else known)[operation_id]
    declared = {
        p["name"]: p.get("schema", {}) for p in operation.get("parameters", []) if p.get("in") == "query"
    }
    problems = []
    for name, value in query:
        schema = declared.get(name)
        if schema is None:
            problems.append(f"{operation_id} request: {name} is not a query parameter of this operation")
            continue
        instance: Any = value
        if schema.get("type") == "integer":
            if not value.lstrip("-").isdigit():
                problems.append(f"{operation_id} request: {name}={value!r} is not an integer")
                continue
            instance = int(value)
        problems += _validate(schema, instance, f"{operation_id} request {name}")
    return problems
