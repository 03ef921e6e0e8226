"""onMessageRemoved (issue 22) against moto and the Memory sandbox: after a removal Memory no longer
holds the message, exactly once, whatever order Twilio's webhooks and the faults come in.
Each test says what Memory holds before and after."""

from __future__ import annotations

import json
import urllib.request

import pytest

from memory_bridge.domain.events import WEBHOOK_FILTERS
from memory_bridge_dev.sandbox import Fault
from tests.integration.conftest import outcome
from tests.integration.test_backfill import START, backfill, seed_conversation
from tests.support import DEV_ACCOUNT_SID, DEV_AUTH_TOKEN, body_of, message_params

pytestmark = pytest.mark.integration

OBSERVATIONS = "/Observations"
BODY = "my card is gone, please call me back"


def added(sid: str = "IM1", body: str = BODY) -> list[tuple[str, str]]:
    return message_params(message_sid=sid, body=body)


def removed(sid: str = "IM1", body: str = BODY) -> list[tuple[str, str]]:
    # onMessageRemoved carries the message's own fields, and DateRemoved.
    return message_params(
        message_sid=sid,
        body=body,
        event_type="onMessageRemoved",
        extra=[("DateRemoved", "2026-11-21T10:05:00Z"), ("DateUpdated", "2026-11-21T10:05:00Z")],
    )


def contents(bridge) -> list[str]:
    return sorted(o["content"] for o in bridge.observations())


def test_the_bridge_subscribes_to_removals():
    assert "onMessageRemoved" in WEBHOOK_FILTERS


def test_a_removal_after_the_add_deletes_its_observation(bridge):
    assert outcome(bridge.send(added("IM1"))) == "posted"
    assert outcome(bridge.send(added("IM2", body="and my address is new"))) == "posted"
    assert contents(bridge) == ["and my address is new", BODY]

    response = bridge.send(removed("IM1"))

    assert response["statusCode"] == 200
    assert body_of(response)["outcome"] == "removed"
    assert body_of(response)["deleted"] == 1
    assert contents(bridge) == ["and my address is new"]  # the other message is untouched


def test_a_removal_before_its_add_leaves_a_tombstone_and_the_add_posts_nothing(bridge):
    response = bridge.send(removed("IM1"))
    assert (response["statusCode"], body_of(response)["deleted"]) == (200, 0)
    assert contents(bridge) == []

    late_add = bridge.send(added("IM1"))

    assert late_add["statusCode"] == 200
    assert outcome(late_add) == "duplicate"  # the tombstone answers it: nothing posted
    assert contents(bridge) == []
    assert bridge.sandbox.requests_to("CreateProfileObservation") == []


def test_a_removal_while_the_add_is_parked_keeps_the_replay_from_bringing_it_back(oncall):
    oncall.sandbox.add_fault(Fault(status=503, match=OBSERVATIONS))
    assert outcome(oncall.send(added("IM1"))) == "parked"
    oncall.sandbox.clear_faults()
    assert contents(oncall) == [] and len(oncall.parked()) == 1

    assert body_of(oncall.send(removed("IM1")))["outcome"] == "removed"
    code, out, err = oncall.run("dlq", "replay", "--json")

    assert code == 0, err
    assert contents(oncall) == []  # the parked envelope was dropped, not posted
    assert oncall.parked() == []
    counts = json.loads(out)["counts"]
    assert (counts["removed"], counts["replayed"], counts["observations_posted"]) == (1, 0, 0)


@pytest.fixture
def history(bridge, monkeypatch, tmp_path):
    """The bridge, with what `memory-bridge backfill` reads from the environment (test_backfill.py's)."""
    monkeypatch.setenv("TWILIO_ACCOUNT_SID", DEV_ACCOUNT_SID)
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", DEV_AUTH_TOKEN)
    monkeypatch.setenv("MEMORY_BRIDGE_LOCAL_STATE", str(tmp_path / "none.json"))
    return bridge


def test_a_backfill_skips_a_message_removed_before_it_was_ever_posted(history):
    customer = "+15555550143"
    sid, sids = seed_conversation(history.conversations, customer, [("c", "one"), ("c", "two")], START)
    gone = history.send(
        message_params(
            message_sid=sids[0],
            author=customer,
            body="one",
            conversation_sid=sid,
            event_type="onMessageRemoved",
            extra=[("DateRemoved", "2026-03-01T10:00:00Z")],
        )
    )
    assert body_of(gone)["outcome"] == "removed"

    code, dry, err = backfill(history, "--since", "2026-02-01", "--dry-run")
    assert code == 0, err
    assert (dry["plan"]["messagesToPost"], dry["plan"]["removed"]) == (1, 1)
    code, report, err = backfill(history, "--since", "2026-02-01")

    assert code == 0, (report, err)
    assert (report["messages"]["posted"], report["messages"]["removed"]) == (1, 1)
    assert contents(history) == ["two"]


def test_twilio_delivering_a_removal_twice_deletes_once(bridge):
    assert outcome(bridge.send(added("IM1"))) == "posted"
    first = bridge.send(removed("IM1"))
    deletes = len(bridge.sandbox.requests_to("DeleteProfileObservation"))
    lists = len(bridge.sandbox.requests_to("ListProfileObservations"))

    second = bridge.send(removed("IM1"))

    assert body_of(first)["outcome"] == "removed"
    assert (second["statusCode"], body_of(second)["outcome"]) == (200, "duplicate")
    assert contents(bridge) == []
    # The second asks Memory nothing: the ledger says the removal is done.
    assert len(bridge.sandbox.requests_to("DeleteProfileObservation")) == deletes == 1
    assert len(bridge.sandbox.requests_to("ListProfileObservations")) == lists


def test_a_memory_503_during_a_removal_parks_it_and_the_replay_finishes_it(oncall):
    assert outcome(oncall.send(added("IM1"))) == "posted"
    oncall.sandbox.add_fault(Fault(status=503, match=OBSERVATIONS, method="DELETE"))

    parked = oncall.send(removed("IM1"))

    assert (parked["statusCode"], body_of(parked)["outcome"], body_of(parked)["change"]) == (
        200,
        "parked",
        "remove",
    )
    assert contents(oncall) == [BODY]  # still there; the removal waits on the queue
    # Meanwhile the tombstone holds: a late copy of the add posts nothing.
    assert outcome(oncall.send(added("IM1"))) == "duplicate"
    assert contents(oncall) == [BODY]
    oncall.sandbox.clear_faults()

    code, out, err = oncall.run("dlq", "replay", "--json")

    assert code == 0, err
    assert json.loads(out)["counts"]["changes"] == 1
    assert contents(oncall) == [] and oncall.parked() == []
    # Twilio's own retry of the removal, late: done already.
    assert body_of(oncall.send(removed("IM1")))["outcome"] == "duplicate"


def test_a_removal_memory_does_not_list_yet_is_parked_and_finished_once_listed(oncall):
    assert outcome(oncall.send(added("IM1"))) == "posted"
    # Memory lists what it took only after a while: a removal then must not be called done.
    set_rules(oncall, {"listLag": 60})
    try:
        # A second post made while the lag is set is not listed yet.
        assert outcome(oncall.send(added("IM2", body="a second thought"))) == "posted"
        early = oncall.send(removed("IM2", body="a second thought"))
        assert (early["statusCode"], body_of(early)["outcome"]) == (200, "parked")
        assert contents(oncall) == ["a second thought", BODY]
    finally:
        set_rules(oncall, {"listLag": 0})
    code, out, err = oncall.run("dlq", "replay", "--json")
    assert code == 0, err
    assert contents(oncall) == [BODY]


def set_rules(bridge, body: dict) -> None:
    request = urllib.request.Request(
        f"{bridge.sandbox.base_url}/__sandbox/observation-rules",
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=5) as answer:
        assert answer.status == 200


def test_a_delete_that_landed_without_an_answer_is_finished_by_id_not_left_waiting(oncall):
    """Memory deleted the observation and the answer was lost: the removal kept the id it found, so the
    replay asks by id, hears "not found" and is done (before: the listing no longer showed the part,
    which read as "not listed yet" for ten minutes)."""
    assert outcome(oncall.send(added("IM1"))) == "posted"
    oncall.sandbox.add_fault(Fault(drop="after", match=OBSERVATIONS, method="DELETE", times=1))

    parked = oncall.send(removed("IM1"))

    assert body_of(parked)["outcome"] == "parked"
    assert contents(oncall) == []  # Memory did delete it
    lists = len(oncall.sandbox.requests_to("ListProfileObservations"))
    code, out, err = oncall.run("dlq", "replay", "--json")

    assert code == 0, (out, err)
    assert json.loads(out)["counts"]["changes"] == 1
    assert len(oncall.sandbox.requests_to("ListProfileObservations")) == lists  # by id, no listing
    assert oncall.parked() == []
