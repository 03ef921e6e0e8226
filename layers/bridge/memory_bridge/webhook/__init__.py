"""The webhook's flow: verify → parse → claim → deliver → settle, and the HTTP answer for each outcome."""

from memory_bridge.webhook.service import REDACTION_METRICS, WebhookService, response, stdlib_logger

__all__ = ["REDACTION_METRICS", "WebhookService", "response", "stdlib_logger"]
