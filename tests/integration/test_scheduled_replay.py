"""The ReplayFunction with the schedule's own input (template.yaml, ReplayFunction.Events.ScheduledReplay),
against moto's server and the Memory sandbox: what is old enough and retryable is posted once; what is
young waits; what is permanent, or failed every automatic try, is left for people and marked."""

from __future__ import annotations

import json
import threading
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from memory_bridge.domain.envelope import Envelope, FailureRecord, new_envelope
from memory_bridge.domain.outcomes import Permanent, Retryable
from memory_bridge_dev.apigw import LocalLambdaContext, load_handler_module
from memory_bridge_dev.aws_resources import load_template
from memory_bridge_dev.sandbox import Fault
from memory_bridge_dev.scheduled_replay import scheduled_input

pytestmark = pytest.mark.integration
REPLAY_HANDLER = load_handler_module("functions/replay/app.py", "replay_app_scheduled")
SCHEDULE_INPUT = scheduled_input(load_template())
K = SCHEDULE_INPUT["maxAttempts"]
WAIT = timedelta(seconds=SCHEDULE_INPUT["minAgeSeconds"])


def scheduled_run() -> dict[str, Any]:
    summary: dict[str, Any] = REPLAY_HANDLER.lambda_handler(
        dict(SCHEDULE_INPUT), LocalLambdaContext("ReplayFunction", 900)
    )
    assert "error" not in summary, summary
    return summary


def profile(bridge: Any, phone: str) -> str:
    sandbox = bridge.sandbox
    sandbox.create_profile(sandbox.stores[bridge.store_id], {"traits": {"Contact": {"phone": phone}}})
    found = sandbox.profile_for(bridge.store_id, "phone", phone)
    assert found
    return found


def park(
    bridge: Any,
    sid: str,
    profile_id: str,
    *,
    failed_ago: timedelta,
    kind: str = "retryable",
    failed_replays: int = 0,
) -> Envelope:
    """An envelope as the webhook parks it (and replays re-park it), its last failure `failed_ago`."""
    when = datetime.now(UTC) - failed_ago
    failure = (
        FailureRecord.from_outcome("post_observations", Retryable(503, 20503, "down"))
        if kind == "retryable"
        else FailureRecord.from_outcome("post_observations", Permanent(400, 520046, "schema"))
    )
    envelope = new_envelope(
        kind="retryable" if kind == "retryable" else "permanent",
        store_id=bridge.store_id,
        message_sid=sid,
        conversation_sid="CH1",
        observations=[
            {"content": f"message {sid}", "source": "twilio-conversations", "occurredAt": when.isoformat()}
        ],
        failure=failure,
        profile_id=profile_id,
        identifier=None,
        trait_group="Contact",
        now=when,
        parts=[0],
    )
    for _ in range(failed_replays):
        envelope = envelope.failed_again(failure, envelope.kind, when)
    bridge.sqs.send_message(QueueUrl=bridge.queue_url, MessageBody=envelope.to_json())
    return envelope


def contents(bridge: Any) -> Counter[str]:
    return Counter(o["content"] for o in bridge.observations())


def parked_by_sid(bridge: Any) -> dict[str, Envelope]:
    return {e.message_sid: e for e in bridge.parked()}


def emitted_metrics(captured: str) -> dict[str, float]:
    """The values in the EMF blobs the handler printed (Powertools Metrics)."""
    values: dict[str, float] = {}
    for line in captured.splitlines():
        if not line.startswith('{"_aws"'):
            continue
        blob = json.loads(line)
        for definition in blob["_aws"]["CloudWatchMetrics"][0]["Metrics"]:
            values[definition["Name"]] = blob[definition["Name"]][0]
    return values


def test_the_schedule_input_is_the_gentle_bounded_retryable_kind():
    # What the template hands the function; held to the promises so a careless edit fails here.
    assert SCHEDULE_INPUT["kind"] == "retryable"
    assert timedelta(minutes=1) <= WAIT <= timedelta(minutes=10)
    assert 0 < SCHEDULE_INPUT["maxMessages"] <= 1000
    assert 0 < SCHEDULE_INPUT["rate"] <= 10
    assert SCHEDULE_INPUT["maxMessages"] <= SCHEDULE_INPUT["scanLimit"]
    assert K == 4  # the template's default for ScheduledReplayMaxAttempts
    assert "dryRun" not in SCHEDULE_INPUT


def test_old_retryable_ones_are_posted_once_young_and_permanent_ones_are_left(oncall, capsys):
    first, second = profile(oncall, "+15555550601"), profile(oncall, "+15555550602")
    old = WAIT + timedelta(minutes=1)
    park(oncall, "IMold1", first, failed_ago=old)
    park(oncall, "IMold2", second, failed_ago=old, failed_replays=2)
    park(oncall, "IMyoung", first, failed_ago=WAIT - timedelta(seconds=60))
    park(oncall, "IMpermanent", second, failed_ago=old, kind="permanent")
    capsys.readouterr()

    summary = scheduled_run()

    counts = summary["counts"]
    assert (counts["replayed"], counts["too_recent"], counts["needs_attention"]) == (2, 1, 1), counts
    assert counts["left_for_people"] == 0 and counts["failed"] == 0
    assert contents(oncall) == {"message IMold1": 1, "message IMold2": 1}
    assert set(parked_by_sid(oncall)) == {"IMyoung", "IMpermanent"}
    metrics = emitted_metrics(capsys.readouterr().out)
    assert metrics["ReplayPosted"] == 2
    assert metrics["ReplayFailedAgain"] == 0
    # The permanent one needs a person: the alarm's gauge says so.
    assert metrics["DeadLettersNeedingAttention"] == 1

    # The next run posts nothing twice, and still leaves the young and the permanent ones.
    summary = scheduled_run()
    assert summary["counts"]["replayed"] == 0
    assert contents(oncall) == {"message IMold1": 1, "message IMold2": 1}
    assert set(parked_by_sid(oncall)) == {"IMyoung", "IMpermanent"}


def test_a_failed_try_goes_back_one_attempt_up_and_waits_before_the_next(oncall):
    pid = profile(oncall, "+15555550611")
    park(oncall, "IMblip", pid, failed_ago=WAIT * 2)
    oncall.sandbox.add_fault(Fault(status=503, match="/Observations"))

    summary = scheduled_run()
    assert summary["counts"]["failed"] == 1
    [again] = oncall.parked()
    assert (again.failed_replays, again.needs_attention) == (1, False)
    # Re-parked just now: the next run leaves it alone however soon it comes.
    assert scheduled_run()["counts"]["too_recent"] == 1

    oncall.sandbox.clear_faults()
    assert scheduled_run()["counts"]["too_recent"] == 1  # still too recent, even with Memory healthy
    assert contents(oncall) == {}


def test_an_envelope_at_k_failed_replays_is_left_for_people_and_marked(oncall, capsys):
    pid = profile(oncall, "+15555550621")
    park(oncall, "IMstuck", pid, failed_ago=WAIT * 2, failed_replays=K - 1)
    oncall.sandbox.add_fault(Fault(status=503, match="/Observations"))
    capsys.readouterr()

    summary = scheduled_run()  # the K-th automatic try fails too

    assert summary["counts"]["failed"] == 1 and summary["counts"]["left_for_people"] == 1
    [stuck] = oncall.parked()
    assert stuck.failed_replays == K and stuck.needs_attention
    metrics = emitted_metrics(capsys.readouterr().out)
    assert metrics["ReplayLeftForPeople"] == 1 and metrics["DeadLettersNeedingAttention"] == 1

    # Memory heals, and time passes: the schedule still leaves it for people, and says so.
    oncall.sandbox.clear_faults()
    summary = scheduled_run()
    assert summary["counts"]["replayed"] == 0 and summary["counts"]["needs_attention"] == 1
    assert contents(oncall) == {}

    code, out, _ = oncall.run("dlq", "stats", "--json")
    assert code == 0
    assert json.loads(out)["needsAttention"] == {"messages": 1, "byReason": {"leftForPeople": 1}}
    code, out, _ = oncall.run("dlq", "peek", "--json")
    [row] = json.loads(out)["messages"]
    assert row["needsAttention"] == f"left for people after {K} failed replays"
    code, out, _ = oncall.run("dlq", "peek")
    assert "NEEDS ATTENTION" in out

    # A person replays it by hand once the cause is fixed: posted once, and the queue is empty.
    code, out, _ = oncall.run("dlq", "replay", "--json")
    assert code == 0, out
    assert contents(oncall) == {"message IMstuck": 1}
    assert oncall.queue_depth() == 0


def test_one_that_reached_k_failed_replays_by_hand_is_marked_without_a_try(oncall):
    pid = profile(oncall, "+15555550631")
    park(oncall, "IMmanual", pid, failed_ago=WAIT * 2, failed_replays=K)
    requests_before = len(oncall.sandbox.requests)

    summary = scheduled_run()

    assert summary["counts"]["left_for_people"] == 1 and summary["counts"]["needs_attention"] == 1
    assert len(oncall.sandbox.requests) == requests_before  # Memory was not asked
    [marked] = oncall.parked()
    assert marked.needs_attention and marked.failed_replays == K
    # Marked once: the next run counts it, and does not mark it again.
    again = scheduled_run()["counts"]
    assert (again["left_for_people"], again["needs_attention"], again["replayed"]) == (0, 1, 0)


def test_a_cli_replay_during_a_scheduled_run_doubles_nothing(oncall):
    profiles = [profile(oncall, f"+1555555064{i}") for i in range(5)]
    for i in range(40):
        park(oncall, f"IMboth{i:02d}", profiles[i % 5], failed_ago=WAIT * 2)
    # Slow Memory a little so that the two runs overlap.
    oncall.sandbox.add_fault(Fault(latency=0.3, match="/Observations"))
    results: dict[str, Any] = {}

    def scheduled() -> None:
        results["scheduled"] = scheduled_run()

    thread = threading.Thread(target=scheduled)
    thread.start()
    code, out, _ = oncall.run("dlq", "replay", "--json")
    thread.join(timeout=120)
    oncall.sandbox.clear_faults()
    # Whatever either left (busy, held) is finished by one more run.
    oncall.run("dlq", "replay", "--json")

    posted = contents(oncall)
    assert len(posted) == 40 and set(posted.values()) == {1}, posted
    assert oncall.queue_depth() == 0
    both = results["scheduled"]["counts"]["replayed"] + json.loads(out)["counts"]["replayed"]
    assert both <= 40
