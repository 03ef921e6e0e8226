"""The webhook's first step: the request read and its signature verified against the secret's tokens
(read again once when none matches: the token may have been rotated). Fails closed."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from memory_bridge.deadlines import Deadline
from memory_bridge.domain.credentials import CredentialsError, TwilioCredentials
from memory_bridge.domain.events import (
    MalformedRequest,
    RequestTooLarge,
    WebhookRequest,
    read_webhook_request,
)
from memory_bridge.ports import CredentialsSource, KeyedLogger, MetricsSink
from memory_bridge.webhook.answers import Answer, response, too_large
from memory_bridge.webhook.delivery import RESERVE_SECONDS

# The secret, when it must be read during a call (first call after a failed init, or a rotation).
SECRET_TIMEOUT_SECONDS = 1.5


@dataclass
class Verifier:
    public_webhook_url: str | None
    credentials: CredentialsSource
    metrics: MetricsSink
    logger: KeyedLogger

    def verified(
        self, event: Mapping[str, Any], deadline: Deadline
    ) -> tuple[WebhookRequest, TwilioCredentials] | Answer:
        """The request and the credentials that verified it; else the answer (413 before anything is
        read, 403, or 503 without the secret)."""
        try:
            request = read_webhook_request(event, self.public_webhook_url)
        except RequestTooLarge as error:
            # Before the signature, which would cost reading every field: refused on its size alone.
            return too_large(self.metrics, self.logger, str(error))
        except MalformedRequest:
            # Unreadable means unverifiable: fail closed, exactly as for a wrong signature.
            return self.reject_signature("unreadable request")
        if not request.signature:
            return self.reject_signature("missing signature")
        verified = self._verify(request, deadline)
        return verified if isinstance(verified, dict) else (request, verified)

    def _verify(self, request: WebhookRequest, deadline: Deadline) -> TwilioCredentials | Answer:
        """The credentials whose token signed the request; else the answer to give."""
        secret_timeout = min(SECRET_TIMEOUT_SECONDS, deadline.remaining() - RESERVE_SECONDS)
        try:
            credentials = self.credentials.get(timeout=secret_timeout)
        except CredentialsError as error:
            self.logger.error("Twilio credentials secret is unusable", extra={"reason": str(error)})
            return response(503, "credentials_unavailable")
        except Exception as error:  # noqa: BLE001 - Secrets Manager unreachable: we cannot verify, Twilio retries
            self.logger.error("Twilio credentials could not be read", extra={"reason": type(error).__name__})
            return response(503, "credentials_unavailable")
        if request.signed_by(credentials.signing_tokens):
            return credentials
        # The token may have been rotated since this container cached it: read again (rate-limited).
        try:
            fresh = self.credentials.refresh(timeout=secret_timeout)
        except Exception:  # noqa: BLE001 - a failed re-read means the old tokens stand
            fresh = None
        if fresh is not None and request.signed_by(fresh.signing_tokens):
            return fresh
        return self.reject_signature("signature mismatch")

    def reject_signature(self, reason: str, error: str = "invalid signature") -> dict[str, Any]:
        self.metrics.add_metric("SignatureRejected", "Count", 1)
        self.logger.warning("webhook rejected", extra={"reason": reason})
        return response(403, "forbidden", error=error)
