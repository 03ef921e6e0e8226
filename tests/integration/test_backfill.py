"""`memory-bridge backfill` against moto's server, the Memory sandbox and the Conversations sandbox: a
history posted as the webhook would have posted it (dates, speakers, redaction), exactly once with the
webhook and with itself, 429s from both APIs honoured, Memory's refusals parked, a conversation that
cannot be read left for the next run."""

from __future__ import annotations

import io
import json
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from memory_bridge_cli import main as cli
from memory_bridge_dev.conversations_sandbox import Fault as TwilioFault
from memory_bridge_dev.sandbox import Fault
from tests.conversations_seed import BUSINESS_NUMBER
from tests.integration.conftest import outcome
from tests.support import DEV_ACCOUNT_SID, DEV_AUTH_TOKEN, message_params, participant_sid_of

pytestmark = pytest.mark.integration

START = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
AGENT = "agent-ana"


def seed_conversation(
    conversations: Any, customer: str, bodies: list[tuple[str, str]], start: datetime, state: str = "closed"
) -> tuple[str, list[str]]:
    """A conversation of `customer` (SMS) and the agent; `bodies` are (who, text), who "c" or "a", one
    minute apart from `start`. Returns its sid and its messages' sids."""
    sid = conversations.add_conversation(date_created=start, state=state)
    conversations.add_participant(
        sid, address=customer, proxy_address=BUSINESS_NUMBER, sid=participant_sid_of(customer)
    )
    conversations.add_participant(sid, identity=AGENT, attributes={"role": "agent"})
    sids = [
        conversations.add_message(
            sid, customer if who == "c" else AGENT, text, date_created=start + timedelta(minutes=i)
        )
        for i, (who, text) in enumerate(bodies)
    ]
    return sid, sids


def backfill(bridge: Any, *argv: str) -> tuple[int, dict[str, Any], str]:
    return cli_json(bridge, "backfill", *argv)


def cli_json(bridge: Any, command: str, *argv: str) -> tuple[int, dict[str, Any], str]:
    """A CLI command against the bridge's queue, table and sandboxes, with --json: exit, document, stderr."""
    out, err = io.StringIO(), io.StringIO()
    try:
        code = cli.main(
            [
                command,
                *argv,
                "--queue-url",
                bridge.queue_url,
                "--table",
                bridge.table,
                "--memory-api-url",
                bridge.sandbox.base_url,
                "--conversations-api-url",
                bridge.conversations.base_url,
                "--json",
            ],
            out=out,
            err=err,
        )
    except SystemExit as exited:
        code = int(exited.code or 0)
    text = out.getvalue()
    return code, (json.loads(text) if text.strip() else {}), err.getvalue()


@pytest.fixture
def history(bridge: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> Any:
    monkeypatch.setenv("TWILIO_ACCOUNT_SID", DEV_ACCOUNT_SID)
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", DEV_AUTH_TOKEN)
    monkeypatch.setenv("MEMORY_BRIDGE_LOCAL_STATE", str(tmp_path / "none.json"))
    return bridge


def posts(bridge: Any) -> int:
    return sum(1 for r in bridge.sandbox.requests if r.operation == "CreateProfileObservation")


def test_history_posted_as_the_webhook_would_dated_when_said_and_a_second_run_posts_nothing(history):
    customer = "+15555550142"
    sid, _ = seed_conversation(
        history.conversations,
        customer,
        [("c", "my card is 4111 1111 1111 1111"), ("a", "Thanks, we will call you"), ("c", "great")],
        START,
    )
    code, report, err = backfill(history, "--conversation", sid)
    assert code == 0, (report, err)
    observations = sorted(history.observations(), key=lambda o: o["occurredAt"])
    assert [o["occurredAt"][:16] for o in observations] == [
        "2026-03-01T09:00",
        "2026-03-01T09:01",
        "2026-03-01T09:02",
    ]
    assert "4111" not in observations[0]["content"]  # redacted as the webhook redacts
    assert observations[1]["content"] == "Agent: Thanks, we will call you"  # on the customer's profile
    assert observations[1]["source"].endswith("-agent")
    assert len({o.get("profileId") for o in observations}) == 1
    assert report["messages"]["posted"] == 3 and report["customers"] == 1

    before = len(history.sandbox.requests)
    code, again, _ = backfill(history, "--conversation", sid)
    assert code == 0, again
    assert len(history.sandbox.requests) == before, "the second run called Memory"
    assert again["messages"]["posted"] == 0
    assert len(history.observations()) == 3


def test_a_message_the_webhook_posted_is_not_posted_again_and_a_webhook_after_posts_nothing(history):
    customer = "+15555550143"
    sid, sids = seed_conversation(history.conversations, customer, [("c", "one"), ("c", "two")], START)
    # The webhook posts the first one live.
    sent = history.send(
        message_params(message_sid=sids[0], author=customer, body="one", conversation_sid=sid)
    )
    assert outcome(sent) == "posted", sent
    code, report, err = backfill(history, "--since", "2026-02-01")
    assert code == 0, (report, err)
    assert report["messages"]["alreadyPosted"] == 1 and report["messages"]["posted"] == 1
    assert Counter(o["content"] for o in history.observations()) == {"one": 1, "two": 1}
    # Twilio retries the second one's webhook after the backfill: nothing is posted again.
    before = posts(history)
    history.send(message_params(message_sid=sids[1], author=customer, body="two", conversation_sid=sid))
    assert posts(history) == before
    assert Counter(o["content"] for o in history.observations()) == {"one": 1, "two": 1}


def test_the_dry_run_counts_and_changes_nothing(history):
    for n in range(3):
        seed_conversation(
            history.conversations, f"+1555555020{n}", [("c", f"hi {n} {i}") for i in range(12)], START
        )
    code, report, err = backfill(history, "--dry-run", "--rate", "2")
    assert code == 0, (report, err)
    plan = report["plan"]
    assert report["conversations"]["read"] == 3 and report["messages"]["read"] == 36
    assert plan["customersToPost"] == 3 and plan["posts"] == 6 and plan["memoryRequests"] == 9
    assert plan["seconds"] == 4.5
    assert history.sandbox.requests == [] and history.observations() == []
    assert history.idempotency_records() == [] and history.queue_depth() == 0


def test_429s_from_conversations_and_memory_are_honoured(history):
    sid, _ = seed_conversation(
        history.conversations, "+15555550144", [("c", f"m{i}") for i in range(5)], START
    )
    history.conversations.add_fault(
        TwilioFault(status=429, retry_after=1, times=2, operation="ListConversationMessage")
    )
    history.sandbox.add_fault(Fault(status=429, retry_after=1, times=2, match="/Observations", method="POST"))
    code, report, err = backfill(history, "--conversation", sid)
    assert code == 0, (report, err)
    assert report["conversationsApi"]["throttled"] == 2
    assert sorted(o["content"] for o in history.observations()) == [f"m{i}" for i in range(5)]


def test_what_memory_refuses_is_parked_as_the_webhook_parks_it_and_the_run_finishes(history):
    sid, sids = seed_conversation(history.conversations, "+15555550145", [("c", "refused")], START)
    history.sandbox.add_fault(Fault(status=400, match="/Observations", method="POST"))
    code, report, err = backfill(history, "--conversation", sid)
    assert code == 0, (report, err)
    assert report["messages"]["parked"] == 1
    [parked] = history.parked()
    assert parked.message_sid == sids[0] and parked.kind == "permanent" and parked.attempts == 1
    assert parked.failure.stage == "post_observations" and parked.failure.status == 400


def test_a_conversation_that_cannot_be_read_is_left_and_reported_then_finished_by_the_next_run(history):
    good, _ = seed_conversation(history.conversations, "+15555550146", [("c", "fine")], START)
    bad, _ = seed_conversation(history.conversations, "+15555550147", [("c", "later")], START)
    history.conversations.add_fault(TwilioFault(status=503, match=f"/{bad}/Messages"))
    code, report, err = backfill(history, "--conversation", good, "--conversation", bad)
    assert code == 1, (report, err)
    assert [left["conversationSid"] for left in report["conversations"]["left"]] == [bad]
    assert [o["content"] for o in history.observations()] == ["fine"]
    history.conversations.clear_faults()
    code, report, err = backfill(history, "--conversation", good, "--conversation", bad)
    assert code == 0, (report, err)
    assert sorted(o["content"] for o in history.observations()) == ["fine", "later"]


def test_requests_per_message_stay_under_0_15_with_several_conversations_per_customer(history):
    for customer in range(6):
        for conversation in range(3):
            seed_conversation(
                history.conversations,
                f"+155555503{customer:02d}",
                [("c" if i % 3 else "a", f"c{customer} v{conversation} m{i}") for i in range(20)],
                START + timedelta(days=conversation, hours=customer),
            )
    code, report, err = backfill(history, "--since", "2026-02-01")
    assert code == 0, (report, err)
    assert report["messages"]["posted"] == 360
    total = len(history.sandbox.requests)
    assert total / 360 <= 0.15, (total, report["memory"])
    assert len(history.observations()) == 360
