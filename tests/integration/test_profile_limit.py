"""Memory's limit per profile (issue 22) against moto and the Memory sandbox, with real API Gateway
events: the bridge counts what it wrote per profile in the ledger table and acts before Memory would,
under either of the sandbox's guesses at what Memory does past its limit (refuse with a 400, or evict
the oldest without a word). The sandbox and the bridge both hold 5 here (Memory's is 500). Each test
shows what Memory holds afterwards."""

from __future__ import annotations

import json
from typing import Any

import pytest

from memory_bridge.adapters.memory_api import MemoryApiClient
from memory_bridge.domain.credentials import TwilioCredentials
from memory_bridge.ports import StaticCredentials
from memory_bridge_dev.sandbox import Fault
from tests.integration.conftest import Bridge, new_container, outcome
from tests.integration.test_message_removed import set_rules
from tests.support import DEV_ACCOUNT_SID, DEV_AUTH_TOKEN, body_of, message_params

pytestmark = pytest.mark.integration

LIMIT = 5
BEHAVIOURS = ["refuse", "evict"]  # what the sandbox does past its limit (Memory's is unpublished)


def say(bridge: Bridge, n: int, body: str | None = None) -> dict[str, Any]:
    """Message n from the one customer, one second after message n-1."""
    return bridge.send(
        message_params(
            message_sid=f"IM{n}",
            body=body or f"word {n}",
            date_created=f"2026-11-21T10:00:{n:02d}.000Z",
        )
    )


def words(bridge: Bridge) -> list[str]:
    return sorted((o["content"] for o in bridge.observations()), key=lambda w: int(w.split()[-1]))


def count_item(bridge: Bridge, profile_id: str) -> int | None:
    item = bridge.dynamodb.get_item(TableName=bridge.table, Key={"id": {"S": f"profile#{profile_id}"}})
    found = item.get("Item")
    return int(found["count"]["N"]) if found else None


def the_profile(bridge: Bridge) -> str:
    (profile,) = {o["profileId"] for o in bridge.observations()}
    return str(profile)


def limited(
    bridge: Bridge, monkeypatch: pytest.MonkeyPatch, memory_does: str, policy: str, limit: int = LIMIT
):
    set_rules(bridge, {"profileFull": memory_does, "limit": LIMIT})
    monkeypatch.setenv("PROFILE_OBSERVATION_LIMIT", str(limit))
    monkeypatch.setenv("PROFILE_FULL_POLICY", policy)
    new_container()


@pytest.mark.parametrize("memory_does", BEHAVIOURS)
def test_keep_latest_deletes_the_bridges_oldest_so_memory_keeps_the_newest_words(
    bridge, monkeypatch, memory_does
):
    limited(bridge, monkeypatch, memory_does, "keep-latest")

    answers = [outcome(say(bridge, n)) for n in range(1, 8)]

    # Nothing refused, nothing parked, nothing lost that was newer than what Memory holds.
    assert answers == ["posted"] * 7
    assert bridge.parked() == []
    assert words(bridge) == ["word 3", "word 4", "word 5", "word 6", "word 7"]
    # The bridge made the room itself (Memory's own eviction never had to act), one DELETE a message.
    assert len(bridge.sandbox.requests_to("DeleteProfileObservation")) == 2
    assert count_item(bridge, the_profile(bridge)) == LIMIT


@pytest.mark.parametrize("memory_does", BEHAVIOURS)
def test_park_parks_profile_full_and_memory_keeps_what_it_held(bridge, monkeypatch, memory_does):
    limited(bridge, monkeypatch, memory_does, "park")

    answers = [say(bridge, n) for n in range(1, 8)]

    assert [outcome(a) for a in answers] == ["posted"] * 5 + ["parked"] * 2
    assert body_of(answers[5])["stage"] == "profile_full"
    assert words(bridge) == ["word 1", "word 2", "word 3", "word 4", "word 5"]  # nothing evicted or refused
    parked = bridge.parked()
    assert sorted(e.observations[0]["content"] for e in parked) == ["word 6", "word 7"]
    assert {(e.kind, e.failure.stage, e.failure.message) for e in parked} == {
        ("retryable", "profile_full", "profile full")
    }
    assert bridge.sandbox.requests_to("DeleteProfileObservation") == []
    assert count_item(bridge, the_profile(bridge)) == LIMIT  # the parked ones gave their reservation back


def test_another_writers_observations_are_never_deleted(bridge, monkeypatch):
    # Memory holds 5; another writer (a CRM) shares the profile, so the bridge's limit is set to 3.
    limited(bridge, monkeypatch, "refuse", "keep-latest", limit=3)
    assert outcome(say(bridge, 1)) == "posted"
    profile = the_profile(bridge)
    crm = MemoryApiClient(
        bridge.sandbox.base_url, StaticCredentials(TwilioCredentials(DEV_ACCOUNT_SID, DEV_AUTH_TOKEN))
    )
    notes = [
        {"content": f"crm note {n}", "source": "crm", "occurredAt": "2026-11-21T09:00:00.000Z"}
        for n in (1, 2)
    ]
    assert crm.create_observations(bridge.store_id, profile, notes).status == 202

    answers = [outcome(say(bridge, n)) for n in range(2, 6)]

    assert answers == ["posted"] * 4
    held = sorted(o["content"] for o in bridge.observations())
    assert held == ["crm note 1", "crm note 2", "word 3", "word 4", "word 5"]
    assert count_item(bridge, profile) == 3


def test_a_removal_gives_its_count_back(bridge, monkeypatch):
    limited(bridge, monkeypatch, "refuse", "keep-latest", limit=3)
    for n in (1, 2, 3):
        assert outcome(say(bridge, n)) == "posted"
    removal = bridge.send(
        message_params(
            message_sid="IM2",
            body="word 2",
            date_created="2026-11-21T10:00:02.000Z",
            event_type="onMessageRemoved",
            extra=[("DateRemoved", "2026-11-21T10:05:00Z")],
        )
    )
    assert body_of(removal)["outcome"] == "removed"
    assert count_item(bridge, the_profile(bridge)) == 2

    assert outcome(say(bridge, 4)) == "posted"

    # Room was made by the removal: nothing of the customer's older words was deleted for word 4.
    assert words(bridge) == ["word 1", "word 3", "word 4"]
    assert len(bridge.sandbox.requests_to("DeleteProfileObservation")) == 1


@pytest.mark.parametrize("memory_does", BEHAVIOURS)
def test_the_replay_makes_room_as_the_webhook_does(oncall, monkeypatch, memory_does):
    limited(oncall, monkeypatch, memory_does, "keep-latest", limit=3)
    monkeypatch.setenv("PROFILE_OBSERVATION_LIMIT", "3")  # the CLI's replay reads the stack's settings
    oncall.sandbox.add_fault(Fault(status=503, match="/Observations"))
    assert outcome(say(oncall, 1)) == "parked"
    oncall.sandbox.clear_faults()
    for n in (2, 3, 4):
        assert outcome(say(oncall, n)) == "posted"

    code, out, err = oncall.run("dlq", "replay", "--json")

    assert code == 0, err
    assert json.loads(out)["counts"]["replayed"] == 1
    # Memory keeps the latest three it took (word 1 arrived last); word 2, the oldest, made room.
    assert words(oncall) == ["word 1", "word 3", "word 4"]
    assert oncall.parked() == []


def test_the_replay_parks_a_full_profiles_message_again_and_leaves_it_to_the_one_alarm(oncall, monkeypatch):
    limited(oncall, monkeypatch, "refuse", "park", limit=2)
    for n in (1, 2):
        assert outcome(say(oncall, n)) == "posted"
    assert outcome(say(oncall, 3)) == "parked"

    code, out, err = oncall.run("dlq", "replay", "--json")

    report = json.loads(out)
    assert code == 1, err  # something is left on the queue
    assert (report["counts"]["failed"], report["counts"]["profile_full"]) == (1, 0)  # already counted once
    assert report["stopped"] is None  # a full profile is not Memory failing: the run goes on
    assert words(oncall) == ["word 1", "word 2"]
    (envelope,) = oncall.parked()
    assert (envelope.failure.stage, envelope.kind, envelope.needs_attention) == (
        "profile_full",
        "retryable",
        False,
    )
