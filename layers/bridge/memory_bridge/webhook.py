"""One Conversations webhook, from API Gateway event to HTTP answer.

  verify the signature (fail closed) → 403
  read the event; not onMessageAdded → 200 ignored; malformed → 400
  once per MessageSid (idempotency) → deliver → 200 posted | parked | skipped | duplicate
  the queue could not take a failed message → 503 (Twilio retries; nothing lost)

Every part is injected, so the same code runs in Lambda, the local stack and the tests.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from memory_bridge.credentials import CachedCredentials, CredentialsError
from memory_bridge.dead_letters import QueueUnavailable
from memory_bridge.delivery import (
    DeadLetterSink,
    Deadline,
    DeliveryRules,
    ObservationWriter,
    Parked,
    Posted,
    Skipped,
    deliver,
)
from memory_bridge.events import (
    MESSAGE_ADDED,
    MalformedRequest,
    WebhookRequest,
    event_type,
    parse_message_added,
    read_webhook_request,
)
from memory_bridge.idempotency import DeliveryInProgress, IdempotencyGuard, JsonResult
from memory_bridge.profiles import ProfileCache
from memory_bridge.signature import is_valid_signature

# Leave this much of Lambda's own remaining time unused, whatever the configured budget.
LAMBDA_SAFETY_SECONDS = 0.5


class MetricsSink(Protocol):
    def add_metric(self, name: str, unit: Any, value: float) -> None: ...


class KeyedLogger(Protocol):
    """The part of Powertools' Logger (or a stdlib logger adapter) that the webhook uses."""

    def append_keys(self, **keys: Any) -> None: ...

    def info(self, msg: object, *args: Any, **kwargs: Any) -> None: ...

    def warning(self, msg: object, *args: Any, **kwargs: Any) -> None: ...

    def error(self, msg: object, *args: Any, **kwargs: Any) -> None: ...


def response(status_code: int, outcome: str, /, **extra: Any) -> dict[str, Any]:
    return {
        "statusCode": status_code,
        "headers": {"Content-Type": "application/json"},
        "body": json.dumps({"outcome": outcome, **extra}),
    }


@dataclass
class WebhookService:
    rules: DeliveryRules
    public_webhook_url: str | None
    budget_seconds: float
    credentials: CachedCredentials
    memory: ObservationWriter
    profiles: ProfileCache
    dead_letters: DeadLetterSink
    idempotency: IdempotencyGuard
    metrics: MetricsSink
    logger: KeyedLogger
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep

    def handle(self, event: Mapping[str, Any], context: Any = None) -> dict[str, Any]:
        deadline = Deadline(self._budget(context), self.clock)
        try:
            request = read_webhook_request(event, self.public_webhook_url)
        except MalformedRequest:
            # Unreadable means unverifiable: fail closed, exactly as for a wrong signature.
            return self._reject_signature("unreadable request")
        if not request.signature:
            return self._reject_signature("missing signature")
        rejection = self._verify(request)
        if rejection is not None:
            return rejection

        try:
            kind = event_type(request)
        except MalformedRequest as error:
            return self._malformed(error)
        self.metrics.add_metric("WebhooksReceived", "Count", 1)
        if kind != MESSAGE_ADDED:
            self.metrics.add_metric("EventsIgnored", "Count", 1)
            self.logger.info("event type ignored", extra={"event_type": kind[:64]})
            return response(200, "ignored", eventType=kind[:64])
        try:
            message = parse_message_added(request)
        except MalformedRequest as error:
            return self._malformed(error)
        self.logger.append_keys(message_sid=message.message_sid, conversation_sid=message.conversation_sid)
        self.metrics.add_metric("MessagesReceived", "Count", 1)

        def work() -> JsonResult:
            result = deliver(
                message,
                rules=self.rules,
                memory=self.memory,
                profiles=self.profiles,
                dead_letters=self.dead_letters,
                deadline=deadline,
                sleep=self.sleep,
            )
            return _result_json(result)

        try:
            result, duplicate = self.idempotency.run_once(message.message_sid, work, context)
        except DeliveryInProgress:
            self.metrics.add_metric("DuplicatesInProgress", "Count", 1)
            self.logger.warning("same MessageSid is being delivered right now; asking Twilio to retry")
            return {
                **response(409, "in_progress"),
                "headers": {"Content-Type": "application/json", "Retry-After": "2"},
            }
        except QueueUnavailable as error:
            self.metrics.add_metric("DeadLetterQueueUnavailable", "Count", 1)
            self.logger.error(
                "message could not be parked; answering 503 so that Twilio retries",
                extra={"reason": str(error)},
            )
            return response(503, "queue_unavailable")
        if duplicate:
            self.metrics.add_metric("Duplicates", "Count", 1)
            self.logger.info(
                "duplicate delivery acknowledged", extra={"first_outcome": result.get("outcome")}
            )
            return response(200, "duplicate", first=result.get("outcome"))
        self._record(result)
        return response(200, str(result["outcome"]), **{k: v for k, v in result.items() if k != "outcome"})

    # ---- steps ----------------------------------------------------------------------------

    def _budget(self, context: Any) -> float:
        budget = self.budget_seconds
        remaining_ms = getattr(context, "get_remaining_time_in_millis", None)
        if callable(remaining_ms):
            budget = min(budget, remaining_ms() / 1000 - LAMBDA_SAFETY_SECONDS)
        return max(budget, 0.0)

    def _verify(self, request: WebhookRequest) -> dict[str, Any] | None:
        """None when the signature is good; else the answer to give."""
        try:
            tokens = self.credentials.get().signing_tokens
        except CredentialsError as error:
            self.logger.error("Twilio credentials secret is unusable", extra={"reason": str(error)})
            return response(503, "credentials_unavailable")
        except Exception as error:  # noqa: BLE001 - Secrets Manager unreachable: we cannot verify, Twilio retries
            self.logger.error("Twilio credentials could not be read", extra={"reason": type(error).__name__})
            return response(503, "credentials_unavailable")
        if self._signature_matches(request, tokens):
            return None
        # The token may have been rotated since this container cached it: read again (rate-limited).
        try:
            fresh = self.credentials.refresh()
        except Exception:  # noqa: BLE001 - a failed re-read means the old tokens stand
            fresh = None
        if fresh is not None and self._signature_matches(request, fresh.signing_tokens):
            return None
        return self._reject_signature("signature mismatch")

    @staticmethod
    def _signature_matches(request: WebhookRequest, tokens: tuple[str, ...]) -> bool:
        return is_valid_signature(
            urls=request.urls,
            params=request.params,
            raw_body=request.raw_body,
            signature=request.signature,
            auth_tokens=tokens,
        )

    def _reject_signature(self, reason: str) -> dict[str, Any]:
        self.metrics.add_metric("SignatureRejected", "Count", 1)
        self.logger.warning("webhook rejected", extra={"reason": reason})
        return response(403, "forbidden", error="invalid signature")

    def _malformed(self, error: MalformedRequest) -> dict[str, Any]:
        self.metrics.add_metric("MalformedWebhooks", "Count", 1)
        self.logger.warning("malformed webhook", extra={"reason": str(error)})
        return response(400, "malformed", error=str(error))

    def _record(self, result: JsonResult) -> None:
        outcome = result["outcome"]
        if outcome == "posted":
            self.metrics.add_metric("MessagesPosted", "Count", 1)
            self.metrics.add_metric("ObservationsPosted", "Count", result.get("observations", 0))
            self.logger.info("message posted", extra={"observations": result.get("observations")})
        elif outcome == "parked":
            kind = result.get("kind")
            self.metrics.add_metric(
                "MessagesParkedPermanent" if kind == "permanent" else "MessagesParkedRetryable", "Count", 1
            )
            log = self.logger.error if kind == "permanent" else self.logger.warning
            log(
                "message parked on the dead-letter queue",
                extra={
                    "kind": kind,
                    "stage": result.get("stage"),
                    "status": result.get("status"),
                    "code": result.get("code"),
                },
            )
        else:
            reason = result.get("reason", "")
            self.metrics.add_metric(f"MessagesSkipped{str(reason).capitalize()}", "Count", 1)
            self.logger.info("message skipped", extra={"reason": reason})


def _result_json(result: Posted | Parked | Skipped) -> JsonResult:
    if isinstance(result, Posted):
        return {"outcome": "posted", "observations": result.observations}
    if isinstance(result, Parked):
        return {
            "outcome": "parked",
            "kind": result.kind,
            "stage": result.stage,
            "status": result.status,
            "code": result.code,
        }
    return {"outcome": "skipped", "reason": result.reason}


def stdlib_logger(name: str = "memory_bridge") -> KeyedLogger:
    """A KeyedLogger over the standard library, for places without Powertools' Logger."""

    class _Adapter(logging.LoggerAdapter):  # type: ignore[type-arg]
        def append_keys(self, **keys: Any) -> None:
            self.extra = {**(self.extra or {}), **keys}

    return _Adapter(logging.getLogger(name), {})
