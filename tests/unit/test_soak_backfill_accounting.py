"""make soak's accounting of the backfilled history (memory_bridge_dev.soak_backfill), and the live
webhook the soak sends for a history message (memory_bridge_dev.soak.Senders). No sockets."""

from __future__ import annotations

from datetime import UTC, datetime

from memory_bridge_dev.customer_chats import Chat
from memory_bridge_dev.soak import Senders
from memory_bridge_dev.soak_backfill import HistoryMessage, accounting_ok, history_accounting

SOURCE = "twilio-conversations"
SAID = datetime(2026, 12, 2, 10, 0, 5, tzinfo=UTC)
CUSTOMER, OTHER = 7, 8
PROFILES = {CUSTOMER: "mem_profile_7", OTHER: "mem_profile_8"}
MINE = HistoryMessage("IM" + "1" * 32, CUSTOMER, "soak history c0007 m00", False, 0, SAID)
THEIRS = HistoryMessage("IM" + "2" * 32, CUSTOMER, "soak history c0007 m04", True, 4, SAID)


def held(content: str, profile: str = "mem_profile_7", source: str = SOURCE, when: str = "") -> dict:
    return {
        "content": content,
        "profileId": profile,
        "source": source,
        "occurredAt": when or "2026-12-02T10:00:05.000Z",
    }


def account(observations: list[dict], parked: set[str] | None = None) -> dict[str, int]:
    return history_accounting([MINE, THEIRS], observations, PROFILES, SOURCE, parked or set())


def test_each_history_message_once_on_its_customer_agents_labelled_is_ok():
    counts = account([held(MINE.body), held("Agent: " + THEIRS.body, source=SOURCE + "-agent")])
    assert counts == {
        "history_messages": 2,
        "posted_once": 2,
        "posted_more_than_once": 0,
        "never_posted": 0,
        "still_parked": 0,
        "agents_labelled": 1,
        "landed_elsewhere": 0,
        "dated_wrong": 0,
    }
    assert accounting_ok(counts, agent_messages=1)


def test_a_doubled_a_lost_and_a_parked_message_are_each_counted_and_fail_it():
    doubled = account([held(MINE.body), held(MINE.body)])
    assert doubled["posted_more_than_once"] == 1 and doubled["never_posted"] == 1
    assert not accounting_ok(doubled, agent_messages=1)
    parked = account([held(MINE.body)], parked={THEIRS.sid})
    assert parked["still_parked"] == 1 and parked["never_posted"] == 0
    assert not accounting_ok(parked, agent_messages=1)


def test_an_agents_message_unlabelled_on_another_profile_or_misdated_is_caught():
    unlabelled = account([held(MINE.body), held(THEIRS.body, source=SOURCE + "-agent")])
    assert unlabelled["never_posted"] == 1 and unlabelled["agents_labelled"] == 0
    elsewhere = account(
        [held(MINE.body, profile="mem_profile_8"), held("Agent: " + THEIRS.body, source=SOURCE)]
    )
    assert elsewhere["landed_elsewhere"] == 2 and not accounting_ok(elsewhere, agent_messages=1)
    # Dated at import time, not when it was said.
    misdated = account(
        [
            held(MINE.body, when="2026-12-04T14:00:00Z"),
            held("Agent: " + THEIRS.body, source=SOURCE + "-agent"),
        ]
    )
    assert misdated["dated_wrong"] == 1 and not accounting_ok(misdated, agent_messages=1)


def test_a_history_message_delivered_live_carries_what_the_conversations_api_holds():
    chat = Chat(
        "+15553000007",
        "CH" + "3" * 32,
        "IS" + "4" * 32,
        "MB" + "5" * 32,
        "agent2@example.com",
        "MB" + "6" * 32,
    )
    senders = Senders("https://x/webhooks", "token", "AC1", 1, {CUSTOMER: chat}, set(), {THEIRS.sid: THEIRS})
    fields = dict(senders.params(THEIRS.sid, CUSTOMER))
    assert (fields["Body"], fields["Index"], fields["MessageSid"]) == (THEIRS.body, "4", THEIRS.sid)
    assert fields["Author"] == "agent2@example.com" and fields["DateCreated"] == "2026-12-02T10:00:05.000Z"
    live = dict(senders.params("IM" + "9" * 32, CUSTOMER))
    assert live["Body"] == "soak IM" + "9" * 32
