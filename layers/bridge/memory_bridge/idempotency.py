"""Adapter: at most one delivery per MessageSid, on Powertools Idempotency with DynamoDB.

A completed record returns the first delivery's result, marked as a duplicate. A delivery still in
progress (two webhooks at the same moment) raises `DeliveryInProgress`: the webhook answers 409 so
that Twilio's retry finds the finished record. An exception inside the work (the queue was down)
deletes the record, so that Twilio's retry is delivered afresh.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

JsonResult = dict[str, Any]


class DeliveryInProgress(RuntimeError):
    """Another invocation is delivering this MessageSid right now."""


class IdempotencyGuard(Protocol):
    def run_once(
        self, key: str, work: Callable[[], JsonResult], context: Any = None
    ) -> tuple[JsonResult, bool]:
        """Run `work` unless `key` ran before; returns (result, was_duplicate)."""
        ...


class PowertoolsIdempotency:
    def __init__(self, table_name: str, expires_after_seconds: int):
        from aws_lambda_powertools.utilities.idempotency import (
            DynamoDBPersistenceLayer,
            IdempotencyConfig,
        )
        from botocore.config import Config

        # Short timeouts and two tries: a slow table must not push the answer past Twilio's 5 s.
        # Parameter validation is skipped: Powertools builds these requests, and it costs CPU per call.
        config = Config(
            connect_timeout=1,
            read_timeout=1,
            retries={"max_attempts": 2, "mode": "standard"},
            parameter_validation=False,
        )
        self._persistence = DynamoDBPersistenceLayer(table_name=table_name, boto_config=config)
        self._config = IdempotencyConfig(
            event_key_jmespath="message_sid",
            raise_on_no_idempotency_key=True,
            expires_after_seconds=expires_after_seconds,
            response_hook=lambda response, _record: {**response, "duplicate": True},
        )

    def run_once(
        self, key: str, work: Callable[[], JsonResult], context: Any = None
    ) -> tuple[JsonResult, bool]:
        from aws_lambda_powertools.utilities.idempotency import idempotent_function
        from aws_lambda_powertools.utilities.idempotency.exceptions import (
            IdempotencyAlreadyInProgressError,
        )

        if context is not None:
            self._config.register_lambda_context(context)

        def deliver_message(message: dict[str, str]) -> JsonResult:  # noqa: ARG001 - keyed by Powertools
            return work()

        guarded = idempotent_function(
            data_keyword_argument="message",
            persistence_store=self._persistence,
            config=self._config,
            key_prefix="memory-bridge#message",
        )(deliver_message)
        try:
            result = guarded(message={"message_sid": key})
        except IdempotencyAlreadyInProgressError:
            raise DeliveryInProgress(key) from None
        duplicate = bool(result.pop("duplicate", False))
        return result, duplicate
