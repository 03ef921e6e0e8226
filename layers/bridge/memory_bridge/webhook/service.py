"""One Conversations webhook, from API Gateway event to HTTP answer.

  a body larger than any webhook → 413, on its length alone
  verify the signature (fail closed) → 403
  read the event; not a message's add/update/removal → 200 ignored; malformed → 400; another account's → 403
  claim the MessageSid in the ledger → deliver → settle → 200 posted | parked | skipped | duplicate
  an update or a removal: prepared the same, then webhook/edits.py or webhook/lifecycle.py
  the ledger or the queue unwritable → 503 (Twilio retries); anything unexpected → 503, logged by type only

Every answer leaves within the budget (4 s, less whatever Lambda has not left): each outbound call gets
its deadline from the time left. Every part is injected (Lambda, the local stack and the tests).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from memory_bridge.deadlines import Deadline
from memory_bridge.domain.credentials import TwilioCredentials
from memory_bridge.domain.events import (
    MESSAGE_ADDED,
    MESSAGE_REMOVED,
    MESSAGE_UPDATED,
    MalformedRequest,
    MessageAdded,
    WebhookRequest,
    event_type,
    parse_message_added,
)
from memory_bridge.domain.ledger import Busy, Claimed, Finished, Settlement, plan_parts
from memory_bridge.ports import (
    CredentialsSource,
    DeadLetterSink,
    DeliveryLedger,
    KeyedLogger,
    LedgerUnavailable,
    MetricsSink,
    ObservationEditor,
    ObservationWriter,
)
from memory_bridge.profiles import ProfileCache
from memory_bridge.room import Room
from memory_bridge.speaking import Speakers
from memory_bridge.webhook.answers import (
    Answer,
    count_redactions,
    record_result,
    response,
    result_json,
)
from memory_bridge.webhook.delivery import (
    RESERVE_SECONDS,
    Delivery,
    DeliveryRules,
    Prepared,
    Skipped,
    Unparked,
    deliver,
    prepare,
)
from memory_bridge.webhook.edits import Edits
from memory_bridge.webhook.lifecycle import Removals
from memory_bridge.webhook.speaker_step import CLAIM_TIMEOUT_SECONDS, identify_speaker, shape_of
from memory_bridge.webhook.verification import Verifier

# Leave this much of Lambda's own remaining time unused, whatever the configured budget.
LAMBDA_SAFETY_SECONDS = 0.5


@dataclass
class WebhookService:
    rules: DeliveryRules
    public_webhook_url: str | None
    budget_seconds: float
    credentials: CredentialsSource
    memory: ObservationWriter
    profiles: ProfileCache
    dead_letters: DeadLetterSink
    ledger: DeliveryLedger
    metrics: MetricsSink
    logger: KeyedLogger
    speakers: Speakers
    clock: Callable[[], float] = time.monotonic
    wall_clock: Callable[[], float] = time.time
    sleep: Callable[[float], None] = time.sleep
    # Memory's after-posting calls (issue 22); without them, removals are acknowledged and ignored.
    editor: ObservationEditor | None = None
    room: Room | None = None  # Memory's limit per profile (issue 22, room.py); None: no limit

    def __post_init__(self) -> None:
        self.verifier = Verifier(self.public_webhook_url, self.credentials, self.metrics, self.logger)
        self.removals: Removals | None = None
        self.edits: Edits | None = None
        if self.editor is not None:
            ports = (self.memory, self.editor, self.profiles, self.ledger, self.metrics, self.logger)
            where = (self.room, self.dead_letters, self.rules.trait_group)
            self.removals = Removals(self.rules.store_id, *ports, self.wall_clock, *where)
            parts = (self.memory, self.editor, self.profiles, self.dead_letters, self.ledger, self.metrics)
            clocks = (self.logger, self.wall_clock, self.sleep, self.room)
            self.edits = Edits(self.rules, *parts, *clocks)

    def handle(self, event: Mapping[str, Any], context: Any = None) -> dict[str, Any]:
        deadline = Deadline(self._budget(context), self.clock)
        try:
            return self._handle(event, context, deadline)
        except Exception as error:  # noqa: BLE001 - last resort: never a traceback to Twilio
            self.metrics.add_metric("WebhookErrors", "Count", 1)
            # The type only: an exception's text may hold what it was handling.
            self.logger.error(
                "unexpected failure; answering 503 so that Twilio retries",
                extra={"error": type(error).__name__},
            )
            return response(503, "unavailable")

    def _handle(self, event: Mapping[str, Any], context: Any, deadline: Deadline) -> Answer:
        """verify → parse → claim → deliver → settle; each step returns the answer when it ends the call."""
        verified = self.verifier.verified(event, deadline)
        if isinstance(verified, dict):
            return verified
        request, credentials = verified
        message = self._message(request, credentials)
        if isinstance(message, dict):
            return message
        speaker = identify_speaker(self.speakers, self.metrics, self.logger, message, deadline)
        prepared = prepare(message, self.rules, speaker)
        count_redactions(self.metrics, self.logger, self.rules.redaction.mode, prepared.redacted)
        if message.removed_at is not None and self.removals is not None:
            return self.removals.remove(prepared, message, deadline)
        owner = _owner(context)
        if message.edited_at is not None and self.edits is not None:
            shape = shape_of(message, self.rules, speaker, prepared)
            if isinstance(shape, Skipped):  # the words go nowhere, whatever they say
                return response(200, "skipped", reason=shape.reason)
            lease = self._lease_seconds(context, deadline)
            return self.edits.edit(prepared, shape, owner, lease, deadline)
        if isinstance(prepared, Skipped):
            record_result(self.metrics, self.logger, result_json(prepared))
            return response(200, "skipped", reason=prepared.reason)
        claim = self._claim(prepared, owner, context, deadline)
        if isinstance(claim, dict):
            return claim
        delivery = self._deliver(prepared, claim, deadline)
        for name, value in delivery.metrics():
            self.metrics.add_metric(name, "Count", value)
        return self._settle(message.message_sid, owner, prepared, delivery, deadline)

    # ---- steps ----------------------------------------------------------------------------

    def _message(self, request: WebhookRequest, credentials: TwilioCredentials) -> MessageAdded | Answer:
        """The message the webhook carries; else the answer (400 malformed, 200 for another event,
        403 for another account's)."""
        account = request.first("AccountSid")  # required, and its format checked, in a message
        if account and account.lower() != credentials.account_sid.lower():
            # Signed, but not for the secret's account (secrets mixed up, or fields re-split). Counted as
            # rejected and not as received, so that a mix-up rejecting every webhook pages.
            return self.verifier.reject_signature(
                "AccountSid is not the secret's account_sid", "wrong account"
            )
        try:
            kind = event_type(request)
        except MalformedRequest as error:
            return self._malformed(error)
        self.metrics.add_metric("WebhooksReceived", "Count", 1)
        if kind not in (MESSAGE_ADDED, MESSAGE_UPDATED, MESSAGE_REMOVED) or (
            kind != MESSAGE_ADDED and self.editor is None
        ):
            self.metrics.add_metric("EventsIgnored", "Count", 1)
            self.logger.info("event type ignored", extra={"event_type": kind[:64]})
            return response(200, "ignored", eventType=kind[:64])
        try:
            message = parse_message_added(request)
        except MalformedRequest as error:
            return self._malformed(error)
        self.logger.append_keys(message_sid=message.message_sid, conversation_sid=message.conversation_sid)
        self.metrics.add_metric("MessagesReceived", "Count", 1)
        return message

    def _claim(self, prepared: Prepared, owner: str, context: Any, deadline: Deadline) -> Claimed | Answer:
        """The lease on the MessageSid; else the answer (503, a duplicate's 200, 409 while in progress)."""
        observations = prepared.observations
        try:
            claim = self.ledger.claim(
                prepared.message.message_sid,
                owner=owner,
                parts=len(observations),
                keys=prepared.digests,
                lease_until=self.wall_clock() + self._lease_seconds(context, deadline),
                now=self.wall_clock(),
                timeout=min(CLAIM_TIMEOUT_SECONDS, deadline.remaining() - RESERVE_SECONDS),
            )
        except LedgerUnavailable as error:
            self.metrics.add_metric("LedgerUnavailable", "Count", 1)
            self.logger.error(
                "ledger unavailable before delivery; answering 503, nothing posted",
                extra={"reason": str(error)},
            )
            return response(503, "ledger_unavailable")
        if isinstance(claim, Finished):
            first = (claim.record.outcome or {}).get("outcome")
            self.metrics.add_metric("Duplicates", "Count", 1)
            self.logger.info("duplicate delivery acknowledged", extra={"first_outcome": first})
            return response(200, "duplicate", first=first)
        if isinstance(claim, Busy):
            self.metrics.add_metric("DuplicatesInProgress", "Count", 1)
            self.logger.warning("same MessageSid is being delivered right now; asking Twilio to retry")
            return {
                **response(409, "in_progress"),
                "headers": {"Content-Type": "application/json", "Retry-After": "2"},
            }
        return claim

    def _deliver(self, prepared: Prepared, claim: Claimed, deadline: Deadline) -> Delivery:
        plan = plan_parts(range(len(prepared.observations)), claim.previous)
        if claim.previous is not None:
            self.metrics.add_metric("Redeliveries", "Count", 1)
            self.logger.info(
                "earlier delivery did not finish; resuming",
                extra={"done": len(plan.done), "in_doubt": len(plan.check), "to_post": len(plan.post)},
            )
        return deliver(
            prepared,
            rules=self.rules,
            memory=self.memory,
            profiles=self.profiles,
            dead_letters=self.dead_letters,
            deadline=deadline,
            plan=plan,
            sleep=self.sleep,
            room=self.room,
        )

    def _settle(
        self, message_sid: str, owner: str, prepared: Prepared, delivery: Delivery, deadline: Deadline
    ) -> Answer:
        """Write what the delivery learnt to the ledger, and answer: 200, or 503 when it could not park."""
        result = result_json(delivery.result)
        unparked = isinstance(delivery.result, Unparked)
        observations = prepared.observations
        settlement = Settlement(
            message_sid,
            accepted=delivery.accepted,
            cleared=frozenset(range(len(observations))) - delivery.in_doubt,
            outcome=None if unparked else result,
            owner=owner,
            keys={p: prepared.digests[p] for p in delivery.accepted},
            at=self.wall_clock(),
        )
        try:
            self.ledger.settle(settlement, timeout=max(deadline.remaining(), 0.05))
        except LedgerUnavailable as error:
            # Memory and the queue have what they have; the record still says "unsure", so a later
            # delivery of this MessageSid parks those parts for the replay to check, never reposts.
            self.metrics.add_metric("LedgerWriteFailed", "Count", 1)
            self.logger.error("ledger not updated after delivery", extra={"reason": str(error)})
        if unparked:
            self.metrics.add_metric("DeadLetterQueueUnavailable", "Count", 1)
            self.logger.error(
                "message could not be parked; answering 503 so that Twilio retries",
                extra={"reason": result.get("reason")},
            )
            return response(503, "queue_unavailable")
        record_result(self.metrics, self.logger, result)
        return response(200, str(result["outcome"]), **{k: v for k, v in result.items() if k != "outcome"})

    # ---- helpers --------------------------------------------------------------------------

    def _budget(self, context: Any) -> float:
        budget = self.budget_seconds
        remaining_ms = getattr(context, "get_remaining_time_in_millis", None)
        if callable(remaining_ms):
            budget = min(budget, remaining_ms() / 1000 - LAMBDA_SAFETY_SECONDS)
        return max(budget, 0.0)

    def _lease_seconds(self, context: Any, deadline: Deadline) -> float:
        """Until this invocation surely ended: Lambda's own time left, else the budget, plus a second."""
        remaining_ms = getattr(context, "get_remaining_time_in_millis", None)
        if callable(remaining_ms):
            return float(remaining_ms()) / 1000 + 1.0
        return deadline.remaining() + 1.0

    def _malformed(self, error: MalformedRequest) -> dict[str, Any]:
        self.metrics.add_metric("MalformedWebhooks", "Count", 1)
        self.logger.warning("malformed webhook", extra={"reason": str(error)})
        return response(400, "malformed", error=str(error))


def _owner(context: Any) -> str:
    return str(getattr(context, "aws_request_id", None) or f"local-{time.monotonic_ns()}")
