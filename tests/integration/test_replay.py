"""On-call replay against moto's server and the Memory sandbox: see, dry-run, replay, nothing lost or doubled."""

from __future__ import annotations

import io
import json
import math
import re
import socket
import time
from collections import Counter

import pytest

from memory_bridge.adapters.dead_letters import DeadLetterQueue
from memory_bridge_cli import main as cli
from memory_bridge_dev.apigw import LocalLambdaContext, load_handler_module
from memory_bridge_dev.parking import park_observations
from memory_bridge_dev.sandbox import Fault
from tests.integration.conftest import new_container, outcome
from tests.support import ROOT, message_params, twilio_sid

pytestmark = pytest.mark.integration
REPLAY_HANDLER = load_handler_module("functions/replay/app.py", "replay_app")


def park_via_webhook(bridge, sid: str, author: str = "+15555550100", body: str | None = None):
    # One conversation per customer, as in a contact centre.
    params = message_params(
        message_sid=sid, author=author, body=body or f"message {sid}", conversation_sid="CH" + author
    )
    response = bridge.send(params)
    assert outcome(response) == "parked", response
    return response


def contents(bridge) -> Counter:
    return Counter(o["content"] for o in bridge.observations())


def test_mixed_queue_replays_what_it_should_and_leaves_the_rest(oncall, monkeypatch):
    sandbox = oncall.sandbox
    # retryable, twice (Memory down), one of them for a second customer
    sandbox.add_fault(Fault(status=503, match="/Observations"))
    park_via_webhook(oncall, "IM1")
    park_via_webhook(oncall, "IM2", author="+15555550222")
    sandbox.clear_faults()
    # already posted: Memory took it, then the connection dropped (ambiguous)
    sandbox.add_fault(Fault(drop="after", times=1, match="/Observations"))
    park_via_webhook(oncall, "IM3")
    # permanent: the store does not know the idType
    monkeypatch.setenv("CHAT_ID_TYPE", "agent_login")
    new_container()
    park_via_webhook(oncall, "IM4", author="dave")
    # malformed: something that is not an envelope
    oncall.sqs.send_message(QueueUrl=oncall.queue_url, MessageBody="not an envelope")
    assert contents(oncall) == {"message IM3": 1}

    code, out, _ = oncall.run("dlq", "stats", "--json")
    stats = json.loads(out)
    assert code == 0
    assert stats["byKind"] == {"retryable": 3, "permanent": 1, "malformed": 1}
    assert oncall.queue_depth() == 5  # reading did not consume

    code, out, err = oncall.run("dlq", "replay", "--json")
    report = json.loads(out)
    assert code == 1  # the permanent and the malformed ones are left
    assert report["counts"] | {} == {
        **report["counts"],
        "replayed": 2,
        "already_posted": 1,
        "failed": 0,
        "filtered": 1,
        "malformed": 1,
    }
    assert contents(oncall) == {"message IM1": 1, "message IM2": 1, "message IM3": 1}  # IM3 not doubled
    assert oncall.queue_depth() == 2
    assert report["malformed"][0]["reason"] == "not JSON"

    # Fix the cause of the permanent failure, then replay permanent ones.
    sandbox.configure_identifiers(oncall.store_id, ["agent_login"])
    code, out, _ = oncall.run("dlq", "replay", "--kind", "permanent", "--json")
    assert json.loads(out)["counts"]["replayed"] == 1
    assert contents(oncall)["message IM4"] == 1
    assert code == 1  # the malformed message is still there, never deleted silently
    assert oncall.queue_depth() == 1


def test_dry_run_changes_nothing(oncall):
    oncall.sandbox.add_fault(Fault(status=503, match="/Observations"))
    for sid in ("IM1", "IM2", "IM3"):
        park_via_webhook(oncall, sid)
    oncall.sandbox.clear_faults()
    before = sorted((e.message_sid, e.attempts) for e in oncall.parked())
    requests_before = len(oncall.sandbox.requests)
    code, out, _ = oncall.run("dlq", "replay", "--dry-run", "--json")
    report = json.loads(out)
    assert code == 0
    assert report["dryRun"] is True
    assert report["plan"][0]["messages"] == 3 and report["plan"][0]["requests"] == 1
    assert len(oncall.sandbox.requests) == requests_before
    assert sorted((e.message_sid, e.attempts) for e in oncall.parked()) == before
    assert oncall.queue_depth() == 3


def test_the_dry_run_counts_every_request_the_run_makes(oncall):
    """Lookups for authors parked before their profile was resolved, and List Observations checks for
    ambiguous ones, are requests too: the plan's count is what the run then sends."""
    assert outcome(oncall.send(message_params(message_sid="IM0", author="+15555550100"))) == "posted"
    new_container()  # a fresh container: the author's profile is no longer cached
    oncall.sandbox.add_fault(Fault(status=503))  # Memory down: parked at resolve_profile
    park_via_webhook(oncall, "IM1")
    park_via_webhook(oncall, "IM2")
    oncall.sandbox.clear_faults()
    oncall.sandbox.add_fault(Fault(drop="after", times=1, match="/Observations"))  # ambiguous
    park_via_webhook(oncall, "IM3", author="+15555550222")
    oncall.sandbox.clear_faults()
    assert all(e.profile_id is None for e in oncall.parked() if e.message_sid != twilio_sid("IM3"))

    code, out, _ = oncall.run("dlq", "replay", "--dry-run", "--json")
    plan = json.loads(out)["plan"]
    assert code == 0
    assert sum(p["lookups"] for p in plan) == 1 and sum(p["checks"] for p in plan) == 1
    planned = sum(p["requests"] for p in plan)
    before = len(oncall.sandbox.requests)
    code, out, _ = oncall.run("dlq", "replay", "--json")
    assert code == 0 and json.loads(out)["counts"]["replayed"] == 2
    assert json.loads(out)["counts"]["already_posted"] == 1
    # Planned: a lookup, a check, and a post each for IM1+IM2 and for IM3; the check found IM3 in
    # Memory, which saved its post.
    assert planned == 4
    assert len(oncall.sandbox.requests) - before == 3 == json.loads(out)["counts"]["requests"]


def test_the_run_counts_a_profile_it_had_to_create(oncall):
    oncall.sandbox.add_fault(Fault(status=503))  # Memory down before the author had a profile
    park_via_webhook(oncall, "IM1", author="+15555550999")
    oncall.sandbox.clear_faults()
    before = len(oncall.sandbox.requests)
    code, out, _ = oncall.run("dlq", "replay", "--json")
    assert code == 0
    made = [r.operation for r in oncall.sandbox.requests[before:]]
    assert len(made) == 3  # Lookup (no match), create, post
    assert json.loads(out)["counts"]["requests"] == 3


def test_a_run_that_leaves_permanent_failures_says_how_to_replay_them(oncall, monkeypatch):
    monkeypatch.setenv("CHAT_ID_TYPE", "agent_login")  # the store does not know this idType
    new_container()
    park_via_webhook(oncall, "IM4", author="dave")
    code, out, _ = oncall.run("dlq", "replay")
    assert code == 0
    assert "1 permanent failure(s) left" in out and "--kind permanent" in out


def test_max_is_exact(oncall):
    oncall.sandbox.add_fault(Fault(status=503, match="/Observations"))
    for i in range(7):
        park_via_webhook(oncall, f"IM{i}", author=f"+1555555030{i}")
    oncall.sandbox.clear_faults()
    code, out, _ = oncall.run("dlq", "replay", "--max", "3", "--json")
    assert json.loads(out)["counts"]["replayed"] == 3
    assert sum(contents(oncall).values()) == 3
    assert oncall.queue_depth() == 4
    assert code == 0  # everything it was asked to replay was replayed


def test_429_during_replay_is_honoured_and_slows_down(oncall):
    oncall.sandbox.add_fault(Fault(status=503, match="/Observations"))
    park_via_webhook(oncall, "IM1")
    park_via_webhook(oncall, "IM2", author="+15555550333")
    oncall.sandbox.clear_faults()
    oncall.sandbox.add_fault(Fault(status=429, retry_after=1, times=1, match="/Observations"))
    started = time.monotonic()
    code, out, _ = oncall.run("dlq", "replay", "--json")
    assert code == 0
    assert time.monotonic() - started >= 1.0  # Retry-After was waited out
    assert json.loads(out)["counts"]["replayed"] == 2
    assert contents(oncall) == {"message IM1": 1, "message IM2": 1}


@pytest.mark.parametrize(
    "fault", [Fault(status=503, match="/Observations"), Fault(drop="before", match="/Observations")]
)
def test_failing_again_goes_back_with_attempts_raised(oncall, fault):
    oncall.sandbox.add_fault(Fault(status=500, match="/Observations"))
    park_via_webhook(oncall, "IM1")
    oncall.sandbox.clear_faults()
    oncall.sandbox.add_fault(fault)
    code, out, _ = oncall.run("dlq", "replay", "--json")
    assert code == 1
    assert json.loads(out)["counts"]["failed"] == 1
    [envelope] = oncall.parked()
    assert envelope.attempts == 2
    assert envelope.history[0]["status"] == 500
    assert envelope.failure.status == (503 if fault.status else None)
    oncall.sandbox.clear_faults()
    # Next time it goes through once, even though a dropped connection made it ambiguous.
    code, out, _ = oncall.run("dlq", "replay", "--json")
    assert code == 0, out
    assert contents(oncall) == {"message IM1": 1}


def test_stops_after_k_consecutive_failures_leaving_the_rest_untouched(oncall):
    oncall.sandbox.add_fault(Fault(status=503, match="/Observations"))
    for i in range(5):
        park_via_webhook(oncall, f"IM{i}", author=f"+1555555040{i}")
    code, out, _ = oncall.run("dlq", "replay", "--max-failures", "2", "--json")
    report = json.loads(out)
    assert code == 1
    assert report["stopped"] == "2 consecutive failures"
    assert report["counts"]["failed"] == 2 and report["counts"]["left"] == 3
    attempts = sorted(e.attempts for e in oncall.parked())
    assert attempts == [1, 1, 1, 2, 2]


def test_peek_hides_content_unless_asked_and_export_deletes_nothing(oncall, tmp_path):
    oncall.sandbox.add_fault(Fault(status=503, match="/Observations"))
    park_via_webhook(oncall, "IM1", body="my card ends 4242")
    code, out, _ = oncall.run("dlq", "peek")
    assert code == 0 and twilio_sid("IM1") in out and "4242" not in out and "+1555" not in out
    code, out, _ = oncall.run("dlq", "peek", "--show-content")
    assert "4242" in out
    target = tmp_path / "dlq.jsonl"
    code, out, _ = oncall.run("dlq", "export", "--out", str(target))
    assert code == 0
    [line] = target.read_text().splitlines()
    assert json.loads(line)["envelope"]["messageSid"] == twilio_sid("IM1")
    assert oncall.queue_depth() == 1


def test_report_has_an_audit_line(oncall, tmp_path):
    report_path = tmp_path / "report.json"
    code, _, _ = oncall.run("dlq", "replay", "--report", str(report_path))
    assert code == 0
    audit = json.loads(report_path.read_text())["audit"]
    assert audit["who"]["user"] and audit["when"] and audit["what"] == "dlq replay"
    assert audit["queueUrl"] == oncall.queue_url


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--kind", "sometimes"], "invalid choice"),
        (["--since", "last tuesday"], "--since takes an ISO 8601 time"),
        (["--max", "0"], "must be greater than 0"),
        (["--rate", "fast"], "must be requests per second"),
    ],
)
def test_usage_errors_exit_2(oncall, argv, message):
    code, _, err = oncall.run("dlq", "replay", *argv)
    assert code == 2
    assert message in err


def test_no_queue_is_a_usage_error(monkeypatch, tmp_path):
    monkeypatch.setenv("MEMORY_BRIDGE_LOCAL_STATE", str(tmp_path / "none.json"))
    monkeypatch.delenv("DEAD_LETTER_QUEUE_URL", raising=False)
    err = io.StringIO()
    assert cli.main(["dlq", "stats"], out=io.StringIO(), err=err) == 2
    assert "--queue-url" in err.getvalue()


def test_replay_function_with_the_example_event(oncall):
    oncall.sandbox.add_fault(Fault(status=503, match="/Observations"))
    park_via_webhook(oncall, "IM1")
    oncall.sandbox.clear_faults()
    example = json.loads((ROOT / "events" / "replay.json").read_text())
    summary = REPLAY_HANDLER.lambda_handler(example, LocalLambdaContext("ReplayFunction", 900))
    assert summary["dryRun"] is True
    assert summary["plan"][0]["messages"] == 1
    assert oncall.queue_depth() == 1
    summary = REPLAY_HANDLER.lambda_handler({"maxMessages": 500}, LocalLambdaContext("ReplayFunction", 900))
    assert summary["counts"]["replayed"] == 1 and summary["complete"] is True
    assert contents(oncall) == {"message IM1": 1}
    assert REPLAY_HANDLER.lambda_handler({"maxMessages": -1}, LocalLambdaContext("ReplayFunction", 900)) == {
        "error": "maxMessages must be a number greater than 0"
    }


def test_volume_2000_messages_100_profiles_each_posted_once(oncall):
    sandbox, store = oncall.sandbox, oncall.store_id
    profiles = []
    for p in range(100):
        sandbox.create_profile(sandbox.stores[store], {"traits": {"Contact": {"phone": f"+1555000{p:04d}"}}})
        profiles.append(sandbox.profile_for(store, "phone", f"+1555000{p:04d}"))
    park_observations(oncall.sqs, oncall.queue_url, store, profiles, 2000, "vol")
    per_profile = Counter(i % 100 for i in range(2000))
    profile_batches = sum(math.ceil(n / 10) for n in per_profile.values())
    before = len(sandbox.requests)
    started = time.monotonic()
    summary = REPLAY_HANDLER.lambda_handler({"maxMessages": 5000}, LocalLambdaContext("ReplayFunction", 900))
    seconds = time.monotonic() - started
    requests = len(sandbox.requests) - before
    posted = contents(oncall)
    print(
        f"\nvolume replay: 2000 messages, 100 profiles, {requests} HTTP requests "
        f"(profile batches {profile_batches}), {seconds:.2f} s"
    )
    assert summary["counts"]["replayed"] == 2000, summary["counts"]
    assert len(posted) == 2000 and set(posted.values()) == {1}  # every message exactly once
    assert requests <= profile_batches
    assert oncall.queue_depth() == 0
    assert DeadLetterQueue(oncall.queue_url).depth().in_flight == 0


def test_audit_line_names_the_aws_identity_when_it_can(oncall, tmp_path):
    report_path = tmp_path / "report.json"
    oncall.run("dlq", "replay", "--report", str(report_path))
    assert json.loads(report_path.read_text())["audit"]["who"]["aws"].startswith("arn:aws:")


def test_a_one_message_replay_does_not_wait_on_empty_polls(oncall):
    """An empty queue is known from a short poll and the queue's count, not from long polls that each
    cost a second (two of them made every replay take 2 s or more)."""
    oncall.sandbox.add_fault(Fault(status=503, match="/Observations"))
    park_via_webhook(oncall, "IM1")
    oncall.sandbox.clear_faults()
    for argv in (("--dry-run",), ()):
        code, out, _ = oncall.run("dlq", "replay", *argv, "--json")
        assert code == 0
        assert json.loads(out)["seconds"] < 1.0  # typically 0.1-0.2 s here; loose for loaded machines
    assert contents(oncall) == {"message IM1": 1}


def test_a_replay_that_cannot_reach_memory_says_so_and_keeps_the_messages(oncall):
    oncall.sandbox.add_fault(Fault(status=503, match="/Observations"))
    park_via_webhook(oncall, "IM1")
    oncall.sandbox.clear_faults()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    out_stream, err_stream = io.StringIO(), io.StringIO()
    code = cli.main(
        ["dlq", "replay", "--queue-url", oncall.queue_url, "--memory-api-url", f"http://127.0.0.1:{closed}"],
        out=out_stream,
        err=err_stream,
    )
    out = out_stream.getvalue()
    assert code == 1
    assert "Memory did not answer" in out and "--memory-api-url" in out
    assert re.search(r"1 message\(s\): .* \(\w+, no answer\)", out), out
    counts = oncall.sqs.get_queue_attributes(QueueUrl=oncall.queue_url, AttributeNames=["All"])["Attributes"]
    on_queue = sum(
        int(counts[name])
        for name in (
            "ApproximateNumberOfMessages",
            "ApproximateNumberOfMessagesNotVisible",
            "ApproximateNumberOfMessagesDelayed",
        )
    )
    assert on_queue == 1, (counts, out)  # put back (held or delayed), not lost
    assert contents(oncall) == {}
