"""The errors of the lean AWS client (memory_bridge.adapters.aws_json), shaped as botocore's."""

from __future__ import annotations

from typing import Any


class AwsError(Exception):
    """An AWS error answer (or no answer). `code` is the error's short name; `response` the JSON body."""

    def __init__(self, code: str, message: str = "", status: int | None = None, response: Any = None):
        super().__init__(f"{code}: {message}"[:300])
        self.code = code
        self.status = status
        self.response: dict[str, Any] = response if isinstance(response, dict) else {}


class ConditionalCheckFailedException(AwsError):
    """DynamoDB refused a conditional write; `response["Item"]` holds the item when asked for."""
