"""The webhook's flow: verify → parse → claim → deliver → settle, and the HTTP answer for each outcome."""

from memory_bridge.webhook.answers import REDACTION_METRICS, response, stdlib_logger
from memory_bridge.webhook.service import WebhookService

__all__ = ["REDACTION_METRICS", "WebhookService", "response", "stdlib_logger"]
