"""`memory-bridge erase`'s pure parts (cli/memory_bridge_cli/erase/plan.py) with values, and what a
warm webhook container does when the profile it cached was erased (fakes, no sockets)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from memory_bridge.domain.envelope import FailureRecord, new_envelope
from memory_bridge.domain.identifiers import Identifier
from memory_bridge.domain.outcomes import Accepted, Permanent
from memory_bridge.domain.speakers import AgentRules, Participant, Roster
from memory_bridge.ports import QueuedMessage
from memory_bridge.profiles import ProfileCache
from memory_bridge.webhook.delivery import Posted
from memory_bridge_cli.erase.dead_letters import PurgingQueue
from memory_bridge_cli.erase.plan import (
    NotAnAddress,
    ObservationPlan,
    SpeakerRulesView,
    bridge_sources,
    envelope_is_theirs,
    identifiers_from_sets,
    participant_queries,
    sids_to_tombstone,
    subject_identifier,
)
from tests.support import ScriptedMemory
from tests.unit.test_delivery import OK, PROFILE, run

ANA, BEN = "+15555550171", "+15555550172"
BUSINESS = "+15005550006"
RULES = SpeakerRulesView(AgentRules(identities=frozenset({"agent-ana"})), "chat_identity")


def customer(address: str, n: int) -> Participant:
    return Participant(f"MB{n:032d}", address=address, proxy_address=BUSINESS)


AGENT = Participant("MB" + "9" * 32, identity="agent-ana")


def said(sid: str, author: str, participant: Participant | None = None) -> dict[str, object]:
    return {"sid": sid, "author": author, "participant_sid": participant.sid if participant else None}


def test_the_subject_follows_the_webhooks_identifier_rules():
    assert subject_identifier("whatsapp:+15555550171", "chat_identity") == Identifier("whatsapp", ANA)
    assert subject_identifier("Dana@Example.com", "chat_identity").id_type == "email"
    assert subject_identifier("visitor-7", "chat_identity") == Identifier("chat_identity", "visitor-7")
    with pytest.raises(NotAnAddress):
        subject_identifier("system", "chat_identity")


def test_participant_queries_name_the_binding_or_the_identity():
    assert participant_queries(Identifier("whatsapp", ANA)) == [("Address", "whatsapp:" + ANA)]
    assert participant_queries(Identifier("phone", ANA)) == [("Address", ANA)]
    assert participant_queries(Identifier("chat_identity", "v7")) == [("Identity", "v7")]


def test_memorys_identifier_sets_become_identifiers_and_junk_is_left_out():
    sets = [
        {"idType": "phone", "values": [ANA, ANA]},
        {"idType": "email", "values": ["a@b.co"]},
        {"x": 1},
        "no",
    ]
    assert identifiers_from_sets(sets) == [Identifier("phone", ANA), Identifier("email", "a@b.co")]


def test_every_message_of_a_conversation_whose_one_customer_they_are_is_tombstoned():
    roster = Roster((customer(ANA, 1), AGENT))
    messages = [said("IM1", ANA, customer(ANA, 1)), said("IM2", "agent-ana", AGENT), said("IM3", "system")]
    assert sids_to_tombstone(roster, messages, [Identifier("phone", ANA)], RULES) == ["IM1", "IM2", "IM3"]


def test_in_a_group_only_what_they_wrote_is_tombstoned():
    roster = Roster((customer(ANA, 1), customer(BEN, 2), AGENT))
    messages = [
        said("IM1", ANA, customer(ANA, 1)),
        said("IM2", BEN, customer(BEN, 2)),
        said("IM3", "agent-ana", AGENT),  # said to both: on neither profile
    ]
    assert sids_to_tombstone(roster, messages, [Identifier("phone", ANA)], RULES) == ["IM1"]


def test_a_conversation_where_they_are_no_customer_tombstones_nothing():
    roster = Roster((customer(BEN, 2), AGENT))
    assert sids_to_tombstone(roster, [said("IM1", BEN)], [Identifier("phone", ANA)], RULES) == []


def test_only_the_bridges_sources_are_deleted():
    plan = ObservationPlan()
    sources = bridge_sources("twilio-conversations")
    plan.add(
        [
            {"id": "o1", "source": "twilio-conversations"},
            {"id": "o2", "source": "twilio-conversations-agent"},
            {"id": "o3", "source": "twilio-conversations-brand"},
            {"id": "o4", "source": "crm"},
            {"id": "o5", "source": "twilio-conversations-legacy"},
            {"source": "twilio-conversations"},  # no id: nothing to delete by
        ],
        sources,
    )
    assert plan.delete == ["o1", "o2", "o3"] and plan.kept == 2
    assert dict(plan.by_source) == {
        "twilio-conversations": 1,
        "twilio-conversations-agent": 1,
        "twilio-conversations-brand": 1,
    }


def envelope(sid: str, identifier: Identifier | None, profile_id: str | None = None):
    return new_envelope(
        kind="retryable",
        store_id="mem_store_01kpttrksqe08rhv122gzq52ax",
        message_sid=sid,
        conversation_sid="CH1",
        observations=[{"content": "x", "source": "s", "occurredAt": "2026-01-01T00:00:00Z"}],
        failure=FailureRecord("post_observations", 503, None, "down"),
        profile_id=profile_id,
        identifier=identifier,
        trait_group="Contact",
        now=datetime.now(UTC),
    )


def test_an_envelope_is_theirs_by_message_identifier_or_profile():
    subject = [Identifier("phone", ANA)]
    assert envelope_is_theirs(envelope("IM9", Identifier("phone", ANA)), subject, set(), set())
    assert envelope_is_theirs(envelope("IM9", None, PROFILE), subject, {PROFILE}, set())
    assert envelope_is_theirs(envelope("IM1", Identifier("phone", BEN)), subject, set(), {"IM1"})
    assert not envelope_is_theirs(envelope("IM2", Identifier("phone", BEN)), subject, {PROFILE}, {"IM1"})


def test_the_purge_releases_only_what_it_did_not_delete():
    released: list[list[str]] = []

    class Queue:
        def release(self, messages: list[QueuedMessage]) -> None:
            released.append([m.message_id for m in messages])

    purging = PurgingQueue(Queue())
    purging.deleted.add("m1")
    purging.release([QueuedMessage("m1", "r1", "", 0.0, 1, {}), QueuedMessage("m2", "r2", "", 0.0, 1, {})])
    assert released == [["m2"]]


def test_a_warm_container_whose_cached_profile_was_erased_resolves_again_and_posts():
    cache = ProfileCache(ttl=60)
    cache.put(Identifier("phone", "+15555550100"), PROFILE)
    fresh = "mem_profile_03kpttrksqe08rhv122gzq52ax"
    gone = Permanent(status=404, code=20404, message="Not Found")
    memory = ScriptedMemory(
        lookups=[Accepted(200, {"profiles": []})], creates=[Accepted(202, {"id": fresh})], posts=[gone, OK]
    )
    result, sink, _ = run(memory, cache=cache)
    assert isinstance(result, Posted) and result.observations == 1
    assert [c[0] for c in memory.calls] == ["post", "lookup", "create_profile", "post"]
    assert sink.parked == []
    assert cache.get(Identifier("phone", "+15555550100")) == fresh
