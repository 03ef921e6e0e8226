"""The webhook's answers: the HTTP response, a delivery's result as JSON, and the metrics and log
lines that record each result. Also a KeyedLogger over the standard library.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

from memory_bridge.ports import KeyedLogger, MetricsSink
from memory_bridge.webhook.delivery import DeliveryResult, Parked, Posted, Unparked

# One metric per kind of sensitive number replaced (memory_bridge.domain.redaction).
REDACTION_METRICS = {"cards": "RedactedCardNumbers", "iban": "RedactedIbans", "ssn": "RedactedSsns"}

# Messages by who spoke (memory_bridge.domain.speakers), counted by the webhook.
SPEAKER_METRICS = {
    "customer": "MessagesFromCustomers",
    "agent": "MessagesFromAgents",
    "brand": "MessagesFromBrand",
}

Answer = dict[str, Any]
JsonResult = dict[str, Any]


def response(status_code: int, outcome: str, /, **extra: Any) -> dict[str, Any]:
    return {
        "statusCode": status_code,
        "headers": {"Content-Type": "application/json"},
        "body": json.dumps({"outcome": outcome, **extra}),
    }


def too_large(metrics: MetricsSink, logger: KeyedLogger, reason: str) -> Answer:
    """413 for a body larger than any webhook; the reason says which limit, never what was sent."""
    metrics.add_metric("WebhooksTooLarge", "Count", 1)
    logger.warning("webhook refused: too large", extra={"reason": reason})
    return response(413, "too_large", error="request too large")


def result_json(result: DeliveryResult) -> JsonResult:
    if isinstance(result, Unparked):
        return {"outcome": "unparked", "reason": result.reason}
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


def record_result(metrics: MetricsSink, logger: KeyedLogger, result: JsonResult) -> None:
    """The metrics and the log line for a posted, parked or skipped message."""
    outcome = result["outcome"]
    if outcome == "posted":
        metrics.add_metric("MessagesPosted", "Count", 1)
        metrics.add_metric("ObservationsPosted", "Count", result.get("observations", 0))
        logger.info("message posted", extra={"observations": result.get("observations")})
    elif outcome == "parked":
        kind = result.get("kind")
        metrics.add_metric(
            "MessagesParkedPermanent" if kind == "permanent" else "MessagesParkedRetryable", "Count", 1
        )
        log = logger.error if kind == "permanent" else logger.warning
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
        metrics.add_metric(skipped_metric(str(reason)), "Count", 1)
        logger.info("message skipped", extra={"reason": reason})


def count_redactions(metrics: MetricsSink, logger: KeyedLogger, mode: str, found: Mapping[str, int]) -> None:
    """A metric per kind, and a log line with kinds and counts: never the values."""
    if not found:
        return
    for kind, count in found.items():
        metrics.add_metric(REDACTION_METRICS[kind], "Count", count)
    logger.info(
        "sensitive numbers skipped the message" if mode == "skip" else "sensitive numbers redacted",
        extra={"redacted": dict(sorted(found.items()))},
    )


def stdlib_logger(name: str = "memory_bridge") -> KeyedLogger:
    """A KeyedLogger over the standard library, for places without Powertools' Logger."""

    class _Adapter(logging.LoggerAdapter):  # type: ignore[type-arg]
        def append_keys(self, **keys: Any) -> None:
            self.extra = {**(self.extra or {}), **keys}

    return _Adapter(logging.getLogger(name), {})


def skipped_metric(reason: str) -> str:
    """The metric of a skip reason: "several customers" → MessagesSkippedSeveralCustomers."""
    return "MessagesSkipped" + "".join(word.capitalize() for word in reason.split())
