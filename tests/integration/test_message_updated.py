"""onMessageUpdated (issue 22) against moto and the Memory sandbox: after an edit Memory holds the new
words, redacted as always, and no second observation holds the old ones; exactly once, whatever order
Twilio's webhooks and the faults come in. Each test says what Memory holds before and after."""

from __future__ import annotations

import json

import pytest

from memory_bridge.domain.events import WEBHOOK_FILTERS
from memory_bridge_dev.sandbox import Fault
from tests.integration.conftest import outcome
from tests.integration.test_message_removed import added, contents, removed, set_rules
from tests.support import body_of, message_params

pytestmark = pytest.mark.integration

OBSERVATIONS = "/Observations"
OLD = "my order number is 1234"
NEW = "my order number is 1243, sorry"


def updated(
    sid: str = "IM1", body: str = NEW, at: str = "2026-11-21T10:02:00Z", **kwargs: str
) -> list[tuple[str, str]]:
    # onMessageUpdated carries the message's fields as they are now, and DateUpdated.
    return message_params(
        message_sid=sid, body=body, event_type="onMessageUpdated", extra=[("DateUpdated", at)], **kwargs
    )


def test_the_bridge_subscribes_to_edits():
    assert "onMessageUpdated" in WEBHOOK_FILTERS


def test_an_edit_after_the_add_changes_the_observation_in_place(bridge):
    assert outcome(bridge.send(added("IM1", OLD))) == "posted"
    assert outcome(bridge.send(added("IM2", "another thing"))) == "posted"
    before = {o["content"]: o["id"] for o in bridge.observations()}

    response = bridge.send(updated("IM1"))

    assert (response["statusCode"], body_of(response)["outcome"]) == (200, "edited")
    assert body_of(response)["changed"] == 1
    after = {o["content"]: o["id"] for o in bridge.observations()}
    assert after == {NEW: before[OLD], "another thing": before["another thing"]}  # same observation
    assert len(bridge.sandbox.requests_to("PatchProfileObservation")) == 1
    assert len(bridge.sandbox.requests_to("CreateProfileObservation")) == 2  # the adds; the edit posts none


def test_an_edit_is_redacted_as_an_add_is(bridge):
    assert outcome(bridge.send(added("IM1", OLD))) == "posted"

    response = bridge.send(updated("IM1", body="card 4111 1111 1111 1111 exp 12/29"))

    assert body_of(response)["outcome"] == "edited"
    (only,) = contents(bridge)
    assert "4111" not in only and "1111 1111" not in only


def test_an_edit_that_leaves_nothing_to_remember_deletes_the_old_words(bridge):
    assert outcome(bridge.send(added("IM1", OLD))) == "posted"

    response = bridge.send(updated("IM1", body="   "))  # emptied

    assert (body_of(response)["outcome"], body_of(response)["deleted"]) == ("edited", 1)
    assert contents(bridge) == []


def test_an_update_before_its_add_posts_the_new_words_and_the_add_posts_nothing(bridge):
    response = bridge.send(updated("IM1"))
    assert (body_of(response)["outcome"], body_of(response)["posted"]) == ("edited", 1)
    assert contents(bridge) == [NEW]

    late_add = bridge.send(added("IM1", OLD))

    assert (late_add["statusCode"], outcome(late_add)) == (200, "duplicate")
    assert contents(bridge) == [NEW]


def test_an_edit_while_the_add_is_parked_keeps_the_replay_from_posting_the_old_words(oncall):
    oncall.sandbox.add_fault(Fault(status=503, match=OBSERVATIONS, method="POST"))
    assert outcome(oncall.send(added("IM1", OLD))) == "parked"
    oncall.sandbox.clear_faults()

    assert body_of(oncall.send(updated("IM1")))["outcome"] == "edited"
    assert contents(oncall) == [NEW]
    code, out, err = oncall.run("dlq", "replay", "--json")

    assert code == 0, err
    assert contents(oncall) == [NEW]  # the parked old words were dropped, not posted
    assert oncall.parked() == []
    assert json.loads(out)["counts"]["observations_posted"] == 0


def test_twilio_delivering_an_edit_twice_changes_once(bridge):
    assert outcome(bridge.send(added("IM1", OLD))) == "posted"
    first = bridge.send(updated("IM1"))
    patches = len(bridge.sandbox.requests_to("PatchProfileObservation"))

    second = bridge.send(updated("IM1"))

    assert body_of(first)["outcome"] == "edited"
    assert (second["statusCode"], body_of(second)["outcome"]) == (200, "duplicate")
    assert len(bridge.sandbox.requests_to("PatchProfileObservation")) == patches == 1
    assert contents(bridge) == [NEW]


def test_edits_arriving_out_of_order_leave_the_newest_words(bridge):
    assert outcome(bridge.send(added("IM1", OLD))) == "posted"
    assert (
        body_of(bridge.send(updated("IM1", "third words", at="2026-11-21T10:03:00Z")))["outcome"] == "edited"
    )

    late = bridge.send(updated("IM1", "second words", at="2026-11-21T10:02:00Z"))

    assert (late["statusCode"], body_of(late)["outcome"]) == (200, "stale")
    assert contents(bridge) == ["third words"]


def test_a_memory_503_during_an_edit_parks_it_and_the_replay_finishes_it(oncall):
    assert outcome(oncall.send(added("IM1", OLD))) == "posted"
    oncall.sandbox.add_fault(Fault(status=503, match=OBSERVATIONS, method="PATCH"))

    parked = oncall.send(updated("IM1"))

    # Safe on the queue, as an add Memory refuses: Twilio's retries are not needed.
    assert (parked["statusCode"], body_of(parked)["outcome"], body_of(parked)["change"]) == (
        200,
        "parked",
        "edit",
    )
    assert contents(oncall) == [OLD]
    (envelope,) = oncall.parked()
    assert envelope.change is not None and envelope.change.kind == "edit"
    assert "1234" not in json.dumps(envelope.failure.message)

    code, out, err = oncall.run("dlq", "replay", "--json")  # Memory still failing: left queued
    assert (code, json.loads(out)["counts"]["changes"]) == (1, 0), err
    assert contents(oncall) == [OLD] and len(oncall.parked()) == 1
    oncall.sandbox.clear_faults()
    code, out, err = oncall.run("dlq", "replay", "--json")

    assert code == 0, err
    assert json.loads(out)["counts"]["changes"] == 1
    assert contents(oncall) == [NEW]
    assert oncall.parked() == []


def test_twilios_retry_of_a_parked_edit_finishes_it_and_the_replay_changes_nothing_more(oncall):
    assert outcome(oncall.send(added("IM1", OLD))) == "posted"
    oncall.sandbox.add_fault(Fault(status=503, match=OBSERVATIONS, method="PATCH"))
    assert body_of(oncall.send(updated("IM1")))["outcome"] == "parked"
    oncall.sandbox.clear_faults()

    assert body_of(oncall.send(updated("IM1")))["outcome"] == "edited"
    patches = len(oncall.sandbox.requests_to("PatchProfileObservation"))
    code, out, err = oncall.run("dlq", "replay", "--json")

    assert code == 0, err
    assert json.loads(out)["counts"]["changes"] == 1  # the envelope goes: the edit is done
    assert len(oncall.sandbox.requests_to("PatchProfileObservation")) == patches
    assert contents(oncall) == [NEW] and oncall.parked() == []


def test_an_edit_whose_settle_is_lost_is_finished_by_the_retry_without_a_copy(bridge, monkeypatch):
    """The PATCH landed, the ledger write after it did not (a crash, a table down): the retry finds the
    observation by its new words and changes nothing twice."""
    assert outcome(bridge.send(added("IM1", OLD))) == "posted"
    from memory_bridge.adapters.ledger_table import LedgerTable
    from memory_bridge.ports import LedgerUnavailable

    real = LedgerTable.settle

    def lost(self, settlement, timeout):
        if settlement.edit_done:
            raise LedgerUnavailable("table down (test)")
        return real(self, settlement, timeout)

    monkeypatch.setattr(LedgerTable, "settle", lost)
    first = bridge.send(updated("IM1"))
    assert first["statusCode"] == 503
    assert contents(bridge) == [NEW]
    monkeypatch.setattr(LedgerTable, "settle", real)
    # The lease of the lost attempt ends with its invocation; Twilio's retry comes after.
    bridge.dynamodb.update_item(
        TableName=bridge.table,
        Key={"id": {"S": "message#" + body_sid(bridge)}},
        UpdateExpression="SET lease_until = :zero",
        ExpressionAttributeValues={":zero": {"N": "0"}},
    )

    retried = bridge.send(updated("IM1"))

    assert body_of(retried)["outcome"] == "edited"
    assert contents(bridge) == [NEW]
    assert len(bridge.sandbox.requests_to("CreateProfileObservation")) == 1


def end_lease(bridge) -> None:
    bridge.dynamodb.update_item(
        TableName=bridge.table,
        Key={"id": {"S": "message#" + body_sid(bridge)}},
        UpdateExpression="SET lease_until = :zero",
        ExpressionAttributeValues={":zero": {"N": "0"}},
    )


def body_sid(bridge) -> str:
    items = bridge.dynamodb.scan(TableName=bridge.table)["Items"]
    (item,) = [i for i in items if i["id"]["S"].startswith("message#")]
    return item["id"]["S"][len("message#") :]


def test_a_removal_after_an_edit_finds_the_edited_observation(bridge):
    assert outcome(bridge.send(added("IM1", OLD))) == "posted"
    assert body_of(bridge.send(updated("IM1")))["outcome"] == "edited"
    lists = len(bridge.sandbox.requests_to("ListProfileObservations"))

    gone = bridge.send(removed("IM1", body=NEW))

    assert (body_of(gone)["outcome"], body_of(gone)["deleted"]) == ("removed", 1)
    assert contents(bridge) == []
    # The edit kept the observation's id in the ledger: the removal lists nothing.
    assert len(bridge.sandbox.requests_to("ListProfileObservations")) == lists


def test_an_edit_of_a_removed_message_changes_nothing(bridge):
    assert outcome(bridge.send(added("IM1", OLD))) == "posted"
    assert body_of(bridge.send(removed("IM1", body=OLD)))["outcome"] == "removed"

    response = bridge.send(updated("IM1"))

    assert (response["statusCode"], body_of(response)["outcome"]) == (200, "removed")
    assert contents(bridge) == []


def test_an_edit_that_grows_past_one_observation_posts_the_new_part_once(bridge):
    assert outcome(bridge.send(added("IM1", "short"))) == "posted"
    longer = "字" * 1500  # 4,500 bytes: two observations

    response = bridge.send(updated("IM1", body=longer))
    again = bridge.send(updated("IM1", body=longer))

    assert (body_of(response)["changed"], body_of(response)["posted"]) == (1, 1)
    assert body_of(again)["outcome"] == "duplicate"
    assert "".join(o["content"] for o in sorted(bridge.observations(), key=lambda o: o["id"])) == longer


def test_an_edit_that_shrinks_to_one_observation_deletes_the_surplus(bridge):
    longer = "字" * 1500
    assert outcome(bridge.send(added("IM1", longer))) == "posted"
    assert len(bridge.observations()) == 2

    response = bridge.send(updated("IM1", body="short now"))

    assert (body_of(response)["changed"], body_of(response)["deleted"]) == (1, 1)
    assert contents(bridge) == ["short now"]


def test_an_edit_memory_does_not_list_yet_is_parked_and_finished_once_listed(oncall):
    assert outcome(oncall.send(added("IM0", "first"))) == "posted"
    set_rules(oncall, {"listLag": 60})
    try:
        assert outcome(oncall.send(added("IM1", OLD))) == "posted"
        early = oncall.send(updated("IM1"))
        assert (early["statusCode"], body_of(early)["outcome"]) == (200, "parked")
    finally:
        set_rules(oncall, {"listLag": 0})
    code, out, err = oncall.run("dlq", "replay", "--json")
    assert code == 0, err
    assert contents(oncall) == ["first", NEW]


def test_an_edit_of_a_message_whose_settle_was_lost_finds_it_by_the_claims_digest(bridge, monkeypatch):
    """The add's POST landed and its ledger write after did not (a table outage): its part is in
    doubt. The claim wrote the digest of its words, so an edit still finds and changes it (before: the
    edit waited on a replay check that no envelope would ever make, and was lost)."""
    from memory_bridge.adapters.ledger_table import LedgerTable
    from memory_bridge.ports import LedgerUnavailable

    real = LedgerTable.settle

    def lost(self, settlement, timeout):
        if (settlement.outcome or {}).get("outcome") == "posted":
            raise LedgerUnavailable("table down (test)")
        return real(self, settlement, timeout)

    monkeypatch.setattr(LedgerTable, "settle", lost)
    assert outcome(bridge.send(added("IM1", OLD))) == "posted"
    monkeypatch.setattr(LedgerTable, "settle", real)
    assert contents(bridge) == [OLD]
    end_lease(bridge)  # the add's invocation ended long ago

    response = bridge.send(updated("IM1"))

    assert (response["statusCode"], body_of(response)["outcome"], body_of(response)["changed"]) == (
        200,
        "edited",
        1,
    )
    assert contents(bridge) == [NEW]
    assert bridge.parked() == []
