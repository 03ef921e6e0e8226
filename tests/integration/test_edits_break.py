"""Edits (issue 22) under attack: cases the first cut got wrong, against moto and the Memory sandbox."""

from __future__ import annotations

import pytest

from tests.integration.conftest import outcome
from tests.integration.test_message_removed import added, contents
from tests.integration.test_message_updated import updated
from tests.support import body_of

pytestmark = pytest.mark.integration


def test_an_edit_to_the_words_of_a_message_said_in_the_same_moment_changes_its_own_observation(bridge):
    # Two messages of one customer in the same millisecond (the harness's DateCreated): "ok", then "yes".
    assert outcome(bridge.send(added("IM2", "yes"))) == "posted"
    assert outcome(bridge.send(added("IM1", "ok"))) == "posted"
    assert contents(bridge) == ["ok", "yes"]

    # The customer corrects "ok" to "yes": both messages now say "yes".
    response = bridge.send(updated("IM1", body="yes"))

    assert body_of(response)["outcome"] == "edited"
    assert contents(bridge) == ["yes", "yes"]  # not IM2's "yes" patched again, IM1's "ok" left behind


@pytest.mark.parametrize("minutes_later", [0, 11])
def test_a_newer_edit_after_one_whose_settle_was_lost_changes_the_same_observation(
    bridge, monkeypatch, minutes_later
):
    """Edit 1's PATCH landed and its ledger write did not (a crash, the table down); before Twilio's
    retry of it, edit 2 comes. Memory holds edit 1's words, which neither the ledger's digest nor
    edit 2's words match: edit 2 must still find that observation, not leave edit 1's words there."""
    from memory_bridge.adapters.ledger_table import LedgerTable
    from memory_bridge.ports import LedgerUnavailable

    assert outcome(bridge.send(added("IM1", "my order number is 1234"))) == "posted"
    real = LedgerTable.settle

    def lost(self, settlement, timeout):
        if settlement.edit_done:
            raise LedgerUnavailable("table down (test)")
        return real(self, settlement, timeout)

    monkeypatch.setattr(LedgerTable, "settle", lost)
    first = bridge.send(updated("IM1", body="my order number is 1243", at="2026-11-21T10:02:00Z"))
    assert first["statusCode"] == 503
    assert contents(bridge) == ["my order number is 1243"]
    monkeypatch.setattr(LedgerTable, "settle", real)
    expire_leases(bridge)  # the lost attempt's lease ends with its invocation
    if minutes_later:  # edit 2 comes long after the add: past Memory's listing lag
        backdate_posted_at(bridge, minutes_later * 60)

    second = bridge.send(updated("IM1", body="my order number is 1243, sorry", at="2026-11-21T10:03:00Z"))

    assert (second["statusCode"], body_of(second)["outcome"]) == (200, "edited"), second
    assert contents(bridge) == ["my order number is 1243, sorry"]
    late_retry = bridge.send(updated("IM1", body="my order number is 1243", at="2026-11-21T10:02:00Z"))
    assert body_of(late_retry)["outcome"] == "stale"
    assert contents(bridge) == ["my order number is 1243, sorry"]


def expire_leases(bridge) -> None:
    for item in bridge.dynamodb.scan(TableName=bridge.table)["Items"]:
        if item["id"]["S"].startswith("message#"):
            bridge.dynamodb.update_item(
                TableName=bridge.table,
                Key={"id": item["id"]},
                UpdateExpression="SET lease_until = :zero",
                ExpressionAttributeValues={":zero": {"N": "0"}},
            )


def backdate_posted_at(bridge, seconds: float) -> None:
    for item in bridge.dynamodb.scan(TableName=bridge.table)["Items"]:
        if item["id"]["S"].startswith("message#") and "posted_at" in item:
            bridge.dynamodb.update_item(
                TableName=bridge.table,
                Key={"id": item["id"]},
                UpdateExpression="SET posted_at = :at",
                ExpressionAttributeValues={":at": {"N": f"{float(item['posted_at']['N']) - seconds:.3f}"}},
            )
