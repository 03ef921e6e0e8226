"""Nothing lost, nothing doubled, nothing late: each fault injected where it bites.

The real handler and the real replay, on moto's server and the Memory sandbox over loopback. AWS
faults go through a fault proxy in front of moto for one service at a time (boto3's per-service
endpoint variables); Memory faults are the sandbox's. Every test says where each message ended up
and how many copies Memory holds.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import boto3
import pytest

from memory_bridge.adapters.dead_letters import DeadLetterQueue
from memory_bridge.domain.envelope import FailureRecord, new_envelope
from memory_bridge.domain.identifiers import Identifier
from memory_bridge.domain.outcomes import Retryable
from memory_bridge_dev.apigw import LocalLambdaContext, load_handler_module
from memory_bridge_dev.fault_proxy import FaultProxy
from memory_bridge_dev.sandbox import Fault
from tests.integration.conftest import new_container, outcome
from tests.support import message_params

pytestmark = pytest.mark.integration
OBSERVATIONS = "/Observations"
# Twilio waits 5 s; the code promises 4.5 s from the invocation's start, whatever its peers do.
ANSWER_LIMIT = 4.5
REPLAY_HANDLER = load_handler_module("functions/replay/app.py", "replay_app")


def copies(bridge) -> Counter:
    return Counter(o["content"] for o in bridge.observations())


def timed_send(bridge, params) -> tuple[dict, float]:
    started = time.monotonic()
    response = bridge.send(params)
    return response, time.monotonic() - started


def expire_leases(bridge) -> None:
    """Model time passing past every lease (a crashed holder's, or one that ran out)."""
    for item in bridge.idempotency_records():
        bridge.dynamodb.update_item(
            TableName=bridge.table,
            Key={"id": item["id"]},
            UpdateExpression="SET lease_until = :zero",
            ExpressionAttributeValues={":zero": {"N": "0"}},
        )


@pytest.fixture
def aws_proxy(bridge, monkeypatch) -> Iterator[tuple[FaultProxy, Callable[[str], None]]]:
    """A fault proxy in front of moto; `route(variable)` sends that one service through it."""
    proxy = FaultProxy(os.environ["AWS_ENDPOINT_URL"])
    proxy.serve()

    def route(variable: str) -> None:
        monkeypatch.setenv(variable, proxy.base_url)
        new_container()

    yield proxy, route
    proxy.close()


# ---- the webhook: nothing late ---------------------------------------------------------------


@pytest.mark.parametrize(
    "fault",
    [
        Fault(trickle=0.2, match=OBSERVATIONS),  # answers a byte every 0.2 s: per-read timeouts never fire
        Fault(hang="after", match=OBSERVATIONS, hang_seconds=30),  # takes it, never answers
    ],
    ids=["trickle", "hang"],
)
def test_a_trickling_or_hanging_memory_is_parked_in_time_and_posted_once(oncall, fault):
    oncall.sandbox.add_fault(fault)
    response, seconds = timed_send(oncall, message_params(message_sid="IM1", body="slow one"))
    assert seconds < ANSWER_LIMIT, seconds
    assert outcome(response) == "parked"
    [envelope] = oncall.parked()
    assert envelope.failure.ambiguous  # Memory took it (processed), the answer never came
    oncall.sandbox.clear_faults()
    code, out, _ = oncall.run("dlq", "replay", "--json")
    assert code == 0, out
    assert json.loads(out)["counts"]["already_posted"] == 1
    assert copies(oncall) == {"slow one": 1}


@pytest.mark.parametrize(
    ("variable", "operation"),
    [("AWS_ENDPOINT_URL_SQS", "SendMessage"), ("AWS_ENDPOINT_URL_DYNAMODB", "UpdateItem")],
    ids=["queue-hangs", "ledger-hangs"],
)
def test_a_hanging_aws_dependency_answers_503_in_time_and_loses_nothing(
    oncall, aws_proxy, variable, operation
):
    proxy, route = aws_proxy
    route(variable)
    oncall.sandbox.add_fault(Fault(status=503, match=OBSERVATIONS))  # so that the queue is needed
    proxy.set_fault("hang", operation=operation, hang_seconds=20)
    response, seconds = timed_send(oncall, message_params(message_sid="IM1", body="hang on"))
    assert seconds < ANSWER_LIMIT, seconds
    assert response["statusCode"] == 503
    # The abandoned boto3 call still runs on its own timeouts (two attempts of 0.5 s connect + 1 s
    # read, and a backoff): Twilio's retry comes later than that, and while the dependency still hangs.
    time.sleep(3.5)
    proxy.clear()
    oncall.sandbox.clear_faults()
    expire_leases(oncall)  # Twilio's retry comes later than this invocation's lease
    retry = oncall.send(message_params(message_sid="IM1", body="hang on"))
    # "posted"; or "parked" when the hung call landed late and left the parts in doubt.
    assert outcome(retry) in ("posted", "parked"), retry
    code, out, _ = oncall.run("dlq", "replay", "--json")  # whatever the hung SendMessage left behind
    assert code == 0, out
    assert copies(oncall) == {"hang on": 1}


# ---- the webhook: the ledger -------------------------------------------------------------------


def test_ledger_table_unreachable_is_a_503_and_nothing_is_posted(bridge, monkeypatch):
    monkeypatch.setenv("IDEMPOTENCY_TABLE", "no-such-table")
    new_container()
    response = bridge.send(message_params())
    assert response["statusCode"] == 503
    assert json.loads(response["body"]) == {"outcome": "ledger_unavailable"}
    assert bridge.sandbox.requests == [] and bridge.parked() == []


def test_ledger_failing_after_memory_accepted_answers_200_and_a_redelivery_posts_nothing(oncall, aws_proxy):
    proxy, route = aws_proxy
    route("AWS_ENDPOINT_URL_DYNAMODB")
    # Under the bridge's 1 s read timeout (MEMORY_API_READ_TIMEOUT), so that Memory's 202 arrives.
    oncall.sandbox.add_fault(Fault(latency=0.8, match=OBSERVATIONS, times=1))
    # While Memory takes its time, the table starts failing: the claim went through, the settle won't.
    timer = threading.Timer(0.4, lambda: proxy.set_fault("status", status=500, operation="UpdateItem"))
    timer.start()
    response = oncall.send(message_params(message_sid="IM1", body="safe already"))
    timer.join()
    assert outcome(response) == "posted"  # Memory has it: the message is safe
    proxy.clear()
    expire_leases(oncall)
    again = oncall.send(message_params(message_sid="IM1", body="safe already"))
    # The record never learnt the outcome: the parts are "unsure", parked for the replay to check.
    assert outcome(again) == "parked"
    code, out, _ = oncall.run("dlq", "replay", "--json")
    assert code == 0, out
    assert json.loads(out)["counts"]["already_posted"] == 1
    assert copies(oncall) == {"safe already": 1}


def test_a_settle_that_lands_late_keeps_the_doubt_of_whoever_claimed_since(bridge):
    """An abandoned settle (or one thawed with its container minutes later) must not clear what a
    later delivery marked unsure; what Memory accepted is still recorded."""
    from memory_bridge.adapters.ledger_table import LedgerTable
    from memory_bridge.domain.ledger import Claimed, Settlement

    ledger = LedgerTable(bridge.table, 3600, client_factory=lambda: bridge.dynamodb)
    now = time.time()
    first = ledger.claim("IMlate", owner="req-A", parts=2, lease_until=now - 1, now=now, timeout=5)
    second = ledger.claim("IMlate", owner="req-B", parts=2, lease_until=now + 30, now=now, timeout=5)
    assert isinstance(first, Claimed) and isinstance(second, Claimed)  # A's lease had ended
    # B posted part 0 and 1, and its settle failed: both unsure. Then A's late settle arrives:
    # part 1 refused cleanly, part 0 accepted.
    ledger.settle(
        Settlement(
            "IMlate", accepted=frozenset({0}), cleared=frozenset({0, 1}), outcome={"x": 1}, owner="req-A"
        ),
        timeout=5,
    )
    [record] = ledger.read_many(["IMlate"], timeout=5).values()
    assert record.accepted == {0}
    assert record.in_doubt == {1}  # B's doubt stands: the replay looks before posting it
    assert record.outcome is None and record.lease_owner == "req-B"
    # B's own settle still holds.
    ledger.settle(
        Settlement("IMlate", accepted=frozenset({1}), cleared=frozenset({1}), owner="req-B"), timeout=5
    )
    [record] = ledger.read_many(["IMlate"], timeout=5).values()
    assert record.accepted == {0, 1} and record.in_doubt == frozenset()


def test_the_same_webhook_at_the_same_moment_is_posted_once(oncall):
    """Twilio's duplicate deliveries can arrive together: one claim wins, the other is told to retry."""
    for n in range(15):
        params = message_params(message_sid=f"IMtwin{n:02d}", body=f"together {n}")
        barrier, answers = threading.Barrier(2), []

        def deliver(params=params, barrier=barrier, answers=answers) -> None:
            barrier.wait()
            answers.append(oncall.send(params)["statusCode"])

        threads = [threading.Thread(target=deliver) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        # The loser gets 409 (or, when the table is slow to answer its claim, 503): Twilio retries it.
        assert sorted(answers) in ([200, 200], [200, 409], [200, 503]), answers
    assert copies(oncall) == {f"together {n}": 1 for n in range(15)}


# ---- the webhook: the 503 path never leads to a second copy -----------------------------------


def test_accepted_then_dropped_with_the_queue_down_is_not_posted_again_by_the_retry(oncall, aws_proxy):
    proxy, route = aws_proxy
    route("AWS_ENDPOINT_URL_SQS")
    proxy.set_fault("status", status=500, operation="SendMessage")
    oncall.sandbox.add_fault(Fault(drop="after", times=1, match=OBSERVATIONS))
    first = oncall.send(message_params(message_sid="IM1", body="taken then dropped"))
    assert first["statusCode"] == 503
    assert copies(oncall) == {"taken then dropped": 1}
    proxy.clear()
    retry = oncall.send(message_params(message_sid="IM1", body="taken then dropped"))
    assert outcome(retry) == "parked"  # in doubt: parked for the replay to check, not posted again
    assert copies(oncall) == {"taken then dropped": 1}
    code, out, _ = oncall.run("dlq", "replay", "--json")
    assert code == 0, out
    assert copies(oncall) == {"taken then dropped": 1}


def test_send_message_stored_but_its_answer_lost_is_posted_once(oncall, aws_proxy):
    proxy, route = aws_proxy
    route("AWS_ENDPOINT_URL_SQS")
    oncall.sandbox.add_fault(Fault(status=503, match=OBSERVATIONS, times=2))
    proxy.set_fault("forward_then_drop", operation="SendMessage")
    first = oncall.send(message_params(message_sid="IM1", body="lost answer"))
    assert first["statusCode"] == 503
    proxy.clear()
    assert oncall.queue_depth() >= 1  # the envelope did reach the queue
    retry = oncall.send(message_params(message_sid="IM1", body="lost answer"))
    assert outcome(retry) == "posted"
    code, out, _ = oncall.run("dlq", "replay", "--json")
    assert code == 0, out
    assert json.loads(out)["counts"]["already_posted"] >= 1  # the ledger knew; Memory was not asked twice
    assert copies(oncall) == {"lost answer": 1}


def test_characters_sqs_refuses_are_escaped_so_the_message_is_parked(oncall):
    oncall.sandbox.add_fault(Fault(status=503, match=OBSERVATIONS))
    body = "odd \ufffe and \uffff end"
    assert outcome(oncall.send(message_params(message_sid="IM1", body=body))) == "parked"
    [envelope] = oncall.parked()
    assert envelope.observations[0]["content"] == body
    oncall.sandbox.clear_faults()
    assert oncall.run("dlq", "replay")[0] == 0
    assert copies(oncall) == {body: 1}


# ---- the replay: exactly once across runs ----------------------------------------------------


def park(bridge, sid: str, body: str) -> None:
    bridge.sandbox.add_fault(Fault(status=503, match=OBSERVATIONS))
    assert outcome(bridge.send(message_params(message_sid=sid, body=body))) == "parked"
    bridge.sandbox.clear_faults()


def test_a_delete_that_fails_after_the_202_does_not_post_again(oncall, aws_proxy, sqs_clock):
    park(oncall, "IM1", "delete me")
    proxy, _ = aws_proxy
    proxy.set_fault("status", status=500, operation="DeleteMessageBatch")
    code, out, err = oncall.run("dlq", "replay", "--json", "--endpoint-url", proxy.base_url)
    assert out, (code, err)
    report = json.loads(out)
    assert report["counts"]["replayed"] == 1 and any("not deleted" in n for n in report["notes"])
    proxy.clear()
    sqs_clock.advance(901)  # its visibility timeout runs out: the message is back
    assert oncall.queue_depth() == 1
    code, out, _ = oncall.run("dlq", "replay", "--json")
    assert code == 0, out
    assert json.loads(out)["counts"]["already_posted"] == 1
    assert json.loads(out)["counts"]["requests"] == 0  # the ledger answered; Memory was not asked
    assert copies(oncall) == {"delete me": 1} and oncall.queue_depth() == 0


def test_an_envelope_on_the_queue_twice_is_posted_once_in_one_run_and_across_runs(oncall):
    park(oncall, "IM1", "twice")
    [message] = oncall.sqs.receive_message(QueueUrl=oncall.queue_url, VisibilityTimeout=0)["Messages"]
    for _ in range(2):  # an operator re-import, a retried SendMessage: the same envelope, three copies
        oncall.sqs.send_message(QueueUrl=oncall.queue_url, MessageBody=message["Body"])
    code, out, _ = oncall.run("dlq", "replay", "--json", "--max", "1")
    assert code == 0, out
    assert copies(oncall) == {"twice": 1}
    code, out, _ = oncall.run("dlq", "replay", "--json")
    assert code == 0, out
    assert json.loads(out)["counts"]["already_posted"] == 2
    assert copies(oncall) == {"twice": 1} and oncall.queue_depth() == 0


def test_the_dry_run_counts_a_message_on_the_queue_twice_once(oncall):
    park(oncall, "IM1", "twice")
    [message] = oncall.sqs.receive_message(QueueUrl=oncall.queue_url, VisibilityTimeout=0)["Messages"]
    oncall.sqs.send_message(QueueUrl=oncall.queue_url, MessageBody=message["Body"])
    code, out, _ = oncall.run("dlq", "replay", "--dry-run", "--json")
    report = json.loads(out)
    assert code == 0
    assert [entry["messages"] for entry in report["plan"]] == [1]
    assert any("copy" in note for note in report["notes"])
    _, text, _ = oncall.run("dlq", "replay", "--dry-run")
    assert "note: 1 copy(ies) of a message already counted" in text


@pytest.mark.parametrize(
    "fault",
    [
        Fault(status=429, retry_after=0, match=OBSERVATIONS, method="GET"),
        Fault(status=503, match=OBSERVATIONS, method="GET"),
    ],
    ids=["429", "503"],
)
def test_when_memory_cannot_be_asked_an_ambiguous_envelope_stays_untouched(oncall, fault):
    oncall.sandbox.add_fault(Fault(drop="after", times=1, match=OBSERVATIONS))
    assert outcome(oncall.send(message_params(message_sid="IM1", body="maybe there"))) == "parked"
    oncall.sandbox.add_fault(fault)
    code, out, _ = oncall.run("dlq", "replay", "--json")
    report = json.loads(out)
    assert code == 1
    assert report["counts"]["unchecked"] == 1 and report["counts"]["observations_posted"] == 0
    assert len(oncall.parked()) == 1  # untouched, still there
    assert copies(oncall) == {"maybe there": 1}
    oncall.sandbox.clear_faults()
    code, out, _ = oncall.run("dlq", "replay", "--json")
    assert code == 0 and json.loads(out)["counts"]["already_posted"] == 1
    assert copies(oncall) == {"maybe there": 1}


def test_a_list_answered_429_once_is_retried_after_retry_after(oncall):
    oncall.sandbox.add_fault(Fault(drop="after", times=1, match=OBSERVATIONS))
    assert outcome(oncall.send(message_params(message_sid="IM1", body="look again"))) == "parked"
    oncall.sandbox.add_fault(Fault(status=429, retry_after=1, times=1, match=OBSERVATIONS, method="GET"))
    code, out, _ = oncall.run("dlq", "replay", "--json")
    assert code == 0, out
    assert json.loads(out)["counts"]["already_posted"] == 1
    assert copies(oncall) == {"look again": 1}


def test_a_merged_profile_is_followed_by_the_check(oncall):
    oncall.sandbox.add_fault(Fault(drop="after", times=1, match=OBSERVATIONS))
    assert outcome(oncall.send(message_params(message_sid="IM1", body="merged later"))) == "parked"
    merged = oncall.sandbox.profile_for(oncall.store_id, "phone", "+15555550100")
    other = oncall.sandbox.create_profile(
        oncall.sandbox.stores[oncall.store_id], {"traits": {"Contact": {"email": "m@x.io"}}}
    )[1]["id"]
    # The profile that holds the observation is merged into another: List answers 301 for it.
    with oncall.sandbox.lock:
        held = oncall.sandbox.observations.pop((oncall.store_id, merged))
        oncall.sandbox.observations[(oncall.store_id, other)] = held
    oncall.sandbox.merge_profiles(merged, other)
    code, out, _ = oncall.run("dlq", "replay", "--json")
    assert code == 0, out
    assert json.loads(out)["counts"]["already_posted"] == 1
    assert copies(oncall) == {"merged later": 1}


# ---- the replay: permanent failures that a fix can replay --------------------------------------


def test_envelopes_parked_against_a_wrong_store_are_replayed_to_the_right_one(oncall, monkeypatch):
    wrong = "mem_store_01aaaaaaaaaaaaaaaaaaaaaaaa"
    monkeypatch.setenv("MEMORY_STORE_ID", wrong)
    new_container()
    response = oncall.send(message_params(message_sid="IM1", body="right store please"))
    assert outcome(response) == "parked"
    [envelope] = oncall.parked()
    assert envelope.kind == "permanent" and envelope.failure.code == 520041
    code, out, _ = oncall.run("dlq", "replay", "--kind", "permanent", "--store", oncall.store_id, "--json")
    assert code == 0, out
    assert json.loads(out)["counts"]["retargeted"] == 1
    assert [o["content"] for o in oncall.sandbox.all_observations(oncall.store_id)] == ["right store please"]


def test_the_replay_function_retargets_to_its_configured_store(oncall, monkeypatch):
    monkeypatch.setenv("MEMORY_STORE_ID", "mem_store_01aaaaaaaaaaaaaaaaaaaaaaaa")
    new_container()
    assert outcome(oncall.send(message_params(message_sid="IM1", body="fixed by redeploy"))) == "parked"
    monkeypatch.setenv("MEMORY_STORE_ID", oncall.store_id)  # "redeploy with the right one"
    summary = REPLAY_HANDLER.lambda_handler({"kind": "permanent"}, LocalLambdaContext("ReplayFunction", 900))
    assert summary["counts"]["replayed"] == 1, summary
    assert copies(oncall) == {"fixed by redeploy": 1}


def test_a_vanished_profile_is_resolved_again_from_the_envelope(oncall):
    gone = "mem_profile_01zzzzzzzzzzzzzzzzzzzzzzzz"
    envelope = new_envelope(
        kind="permanent",
        store_id=oncall.store_id,
        message_sid="IM9",
        conversation_sid="CH1",
        observations=[
            {
                "content": "where did it go",
                "source": "twilio-conversations",
                "occurredAt": "2026-11-21T10:00:00Z",
            }
        ],
        failure=FailureRecord.from_outcome("post_observations", Retryable(404, 20404, "Not Found")),
        profile_id=gone,
        identifier=Identifier("phone", "+15555550177"),
        trait_group="Contact",
        now=datetime.now(UTC),
        parts=[0],
    )
    oncall.sqs.send_message(QueueUrl=oncall.queue_url, MessageBody=envelope.to_json())
    code, out, _ = oncall.run("dlq", "replay", "--kind", "all", "--json")
    assert code == 0, out
    profile = oncall.sandbox.profile_for(oncall.store_id, "phone", "+15555550177")
    assert [(o["content"], o["profileId"]) for o in oncall.observations()] == [("where did it go", profile)]


def test_two_replays_at_once_cli_and_function_post_each_message_once(oncall, sqs_clock):
    """The CLI and the ReplayFunction on one queue at the same time, with half the envelopes on the
    queue twice so that both runs get hold of the same messages: nothing is posted twice."""
    for i in range(20):
        oncall.sandbox.add_fault(Fault(status=503, match=OBSERVATIONS))
        response = oncall.send(
            message_params(message_sid=f"IMboth{i:02d}", body=f"both {i}", author=f"+155555501{i % 4:02d}")
        )
        assert outcome(response) == "parked"
        oncall.sandbox.clear_faults()
    held = oncall.sqs.receive_message(QueueUrl=oncall.queue_url, MaxNumberOfMessages=10, VisibilityTimeout=0)
    for message in held["Messages"]:
        oncall.sqs.send_message(QueueUrl=oncall.queue_url, MessageBody=message["Body"])
    oncall.sandbox.add_fault(Fault(latency=0.03, match=OBSERVATIONS))
    reports: dict[str, dict] = {}

    def cli() -> None:
        code, out, _ = oncall.run("dlq", "replay", "--json", "--rate", "50")
        reports["cli"] = {"code": code, **json.loads(out)["counts"]}

    def function() -> None:
        summary = REPLAY_HANDLER.lambda_handler({"rate": 50}, LocalLambdaContext("ReplayFunction", 120))
        reports["function"] = summary["counts"]

    threads = [threading.Thread(target=cli), threading.Thread(target=function)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    oncall.sandbox.clear_faults()
    assert set(reports) == {"cli", "function"}, reports
    assert sum(r["received"] for r in reports.values()) >= 20, reports  # they shared the queue
    # What either left (busy, or held by the other) comes back later and is finished once.
    expire_leases(oncall)
    sqs_clock.advance(901)
    code, out, _ = oncall.run("dlq", "replay", "--json")
    assert code == 0, out
    assert copies(oncall) == {f"both {i}": 1 for i in range(20)}, reports
    assert oncall.queue_depth() == 0


def test_profile_id_matches_unresolved_envelopes_and_profiles_merged_since(oncall):
    """`--profile-id P` takes what was parked under P, under a profile merged into P since, and
    envelopes whose author was never resolved but resolves to P now; not other customers."""
    sandbox, store = oncall.sandbox, oncall.store_id

    def profile(phone: str) -> str:
        sandbox.create_profile(sandbox.stores[store], {"traits": {"Contact": {"phone": phone}}})
        found = sandbox.profile_for(store, "phone", phone)
        assert found is not None
        return found

    target, merged, other = profile("+15555550100"), profile("+15555550177"), profile("+15555550199")

    def park_envelope(sid: str, profile_id: str | None, phone: str) -> None:
        envelope = new_envelope(
            kind="retryable",
            store_id=store,
            message_sid=sid,
            conversation_sid="CH00000000000000000000000000000001",
            observations=[
                {"content": sid, "source": "twilio-conversations", "occurredAt": "2026-12-01T10:00:00.000Z"}
            ],
            failure=FailureRecord.from_outcome("post_observations", Retryable(status=503)),
            profile_id=profile_id,
            identifier=Identifier("phone", phone),
            trait_group="Contact",
            now=datetime(2026, 12, 1, 10, tzinfo=UTC),
        )
        DeadLetterQueue(oncall.queue_url).park(envelope)

    park_envelope("IMunderP", target, "+15555550100")
    park_envelope("IMunresolved", None, "+15555550100")
    park_envelope("IMmergedsince", merged, "+15555550177")
    park_envelope("IMsomeoneelse", other, "+15555550199")
    sandbox.merge_profiles(merged, target)
    code, out, _ = oncall.run("dlq", "replay", "--json", "--profile-id", target)
    assert code == 0, out
    counts = json.loads(out)["counts"]
    assert (counts["replayed"], counts["filtered"]) == (3, 1), counts
    assert sorted(o["content"] for o in oncall.observations()) == [
        "IMmergedsince",
        "IMunderP",
        "IMunresolved",
    ]
    assert oncall.queue_depth() == 1


# ---- the replay: time ---------------------------------------------------------------------------


def test_the_replay_function_returns_before_its_time_limit(oncall):
    for i in range(6):  # six customers: six requests
        oncall.sandbox.add_fault(Fault(status=503, match=OBSERVATIONS))
        response = oncall.send(
            message_params(message_sid=f"IM{i}", body=f"slow {i}", author=f"+1555555010{i}")
        )
        assert outcome(response) == "parked"
        oncall.sandbox.clear_faults()
    oncall.sandbox.add_fault(Fault(latency=1.0, match=OBSERVATIONS))
    started = time.monotonic()
    # 32 s left: the handler keeps 30 s back, so the engine has 2 s; each post takes 1 s.
    summary = REPLAY_HANDLER.lambda_handler({"rate": 50}, LocalLambdaContext("ReplayFunction", 32))
    seconds = time.monotonic() - started
    assert seconds < 2.0 + 1.5, seconds  # the limit, plus at most the one request in flight
    assert summary["stopped"] == "time limit", summary
    oncall.sandbox.clear_faults()
    expire_leases(oncall)
    assert oncall.run("dlq", "replay")[0] == 0
    assert set(copies(oncall).values()) == {1} and len(copies(oncall)) == 6


def test_boto3_is_pointed_at_the_proxy_only_for_the_routed_service(bridge, aws_proxy):
    proxy, route = aws_proxy
    route("AWS_ENDPOINT_URL_SQS")
    boto3.client("sqs").list_queues()
    boto3.client("dynamodb").list_tables()
    assert proxy.seen == 1
