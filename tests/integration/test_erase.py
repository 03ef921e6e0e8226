"""`memory-bridge erase` (issue 22, erasure) against moto's server, the Memory sandbox and the
Conversations sandbox, over the wire: what Memory and the queue hold before and after, and that no
late Twilio retry, replay or backfill brings the customer's past messages back."""

from __future__ import annotations

import io
import json
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import pytest

from memory_bridge.adapters.dead_letters import SqsDeadLetterQueue
from memory_bridge.adapters.memory_api import MemoryApiClient
from memory_bridge.domain.credentials import TwilioCredentials
from memory_bridge.domain.envelope import FailureRecord, new_envelope
from memory_bridge.domain.identifiers import Identifier
from memory_bridge.ports import StaticCredentials
from memory_bridge_cli import main as cli
from memory_bridge_dev.sandbox import Fault
from tests.integration.conftest import outcome
from tests.integration.test_backfill import START, backfill, cli_json, seed_conversation
from tests.support import DEV_ACCOUNT_SID, DEV_AUTH_TOKEN, message_params

pytestmark = pytest.mark.integration

CUSTOMER, OTHER = "+15555550161", "+15555550162"


@pytest.fixture
def history(bridge: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> Any:
    """The bridge, with the operator's credentials and no local stack (as test_backfill's)."""
    monkeypatch.setenv("TWILIO_ACCOUNT_SID", DEV_ACCOUNT_SID)
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", DEV_AUTH_TOKEN)
    monkeypatch.setenv("MEMORY_BRIDGE_LOCAL_STATE", str(tmp_path / "none.json"))
    return bridge


def erase(bridge: Any, *argv: str) -> tuple[int, dict[str, Any], str]:
    return cli_json(bridge, "erase", *argv)


def memory(bridge: Any) -> MemoryApiClient:
    return MemoryApiClient(
        bridge.sandbox.base_url, StaticCredentials(TwilioCredentials(DEV_ACCOUNT_SID, DEV_AUTH_TOKEN))
    )


def profile_of(bridge: Any, address: str) -> str | None:
    found = memory(bridge).lookup_profiles(bridge.store_id, Identifier("phone", address)).body["profiles"]
    return found[0] if found else None


def live(bridge: Any, customer: str, bodies: list[tuple[str, str]]) -> tuple[str, list[str]]:
    """A conversation of `customer` and the agent, each message posted by its (signed) webhook."""
    sid, sids = seed_conversation(bridge.conversations, customer, bodies, START)
    for (who, text), message_sid in zip(bodies, sids, strict=True):
        author = customer if who == "c" else "agent-ana"
        sent = bridge.send(
            message_params(message_sid=message_sid, author=author, body=text, conversation_sid=sid)
        )
        assert outcome(sent) == "posted", sent
    return sid, sids


def on_profile(bridge: Any, address: str) -> Counter[str]:
    profile = profile_of(bridge, address)
    return Counter(
        o["content"] for o in bridge.observations() if profile and o.get("profileId", profile) == profile
    )


def contents(bridge: Any) -> Counter[str]:
    return Counter(o["content"] for o in bridge.observations())


def posts(bridge: Any) -> int:
    return len(bridge.sandbox.requests_to("CreateProfileObservation"))


def test_erase_deletes_what_the_bridge_wrote_keeps_another_writers_and_nothing_comes_back(history):
    sid, sids = live(history, CUSTOMER, [("c", "my card is lost"), ("a", "We blocked it"), ("c", "thanks")])
    live(history, OTHER, [("c", "someone else")])
    profile = profile_of(history, CUSTOMER)
    crm = {"content": "VIP since 2019", "source": "crm", "occurredAt": "2026-03-01T08:00:00Z"}
    assert memory(history).create_observations(history.store_id, profile, [crm]).status == 202
    assert contents(history) == Counter(
        {"my card is lost": 1, "Agent: We blocked it": 1, "thanks": 1, "someone else": 1, "VIP since 2019": 1}
    )

    code, report, err = erase(history, "--address", CUSTOMER)

    assert code == 0, (report, err)
    assert contents(history) == Counter({"someone else": 1, "VIP since 2019": 1})  # the CRM's note kept
    assert report["observations"]["bySource"] == {"twilio-conversations": 2, "twilio-conversations-agent": 1}
    assert report["observations"]["keptOtherWriters"] == 1
    assert report["tombstones"]["written"] == 3 and report["tombstones"]["conversations"] == 1
    assert CUSTOMER not in err  # the identifier never reaches the progress lines
    # A late Twilio retry of an old message (a real signed webhook): duplicate, nothing posted.
    before = posts(history)
    retry = history.send(
        message_params(message_sid=sids[0], author=CUSTOMER, body="my card is lost", conversation_sid=sid)
    )
    assert outcome(retry) == "duplicate"
    # A backfill afterwards posts none of the customer's past messages.
    code, filled, err = backfill(history, "--conversation", sid)
    assert code == 0, (filled, err)
    assert posts(history) == before
    assert contents(history) == Counter({"someone else": 1, "VIP since 2019": 1})
    # Idempotent: a second run deletes nothing and says so.
    code, again, _ = erase(history, "--address", CUSTOMER)
    assert code == 0 and again["nothingToDo"] is True
    assert again["observations"]["deleted"] == 0 and again["tombstones"]["written"] == 0
    assert again["tombstones"]["already"] == 3


def test_whole_profile_deletes_the_profile_and_a_later_message_starts_a_fresh_one(history):
    live(history, CUSTOMER, [("c", "hello"), ("a", "hi")])
    old = profile_of(history, CUSTOMER)

    code, report, err = erase(history, "--address", CUSTOMER, "--whole-profile")

    assert code == 0, (report, err)
    assert report["profileDeleted"] is True and report["profileId"] == old
    assert profile_of(history, CUSTOMER) is None and contents(history) == Counter()
    # Their next message (a new MessageSid) is new data: posted, on a fresh profile. A new container
    # here: the warm one's cached profile id is test_a_warm_container_... below.
    from tests.integration.conftest import new_container

    new_container()
    later = history.conversations.add_message(
        seed_conversation(history.conversations, CUSTOMER, [], START)[0], CUSTOMER, "I'm back"
    )
    sent = history.send(message_params(message_sid=later, author=CUSTOMER, body="I'm back"))
    assert outcome(sent) == "posted"
    fresh = profile_of(history, CUSTOMER)
    assert fresh is not None and fresh != old
    assert contents(history) == Counter({"I'm back": 1})


def test_a_warm_container_holding_the_deleted_profile_id_does_not_lose_the_next_message(history):
    live(history, CUSTOMER, [("c", "hello")])
    old = profile_of(history, CUSTOMER)
    code, report, err = erase(history, "--address", CUSTOMER, "--whole-profile")
    assert code == 0, (report, err)

    # Same container: its ProfileCache still maps the customer to the deleted profile.
    sent = history.send(message_params(message_sid="IM" + "7" * 32, author=CUSTOMER, body="again"))

    assert outcome(sent) == "posted", sent
    fresh = profile_of(history, CUSTOMER)
    assert fresh is not None and fresh != old
    assert contents(history) == Counter({"again": 1}) and history.parked() == []


def park(bridge: Any, message_sid: str, address: str, content: str) -> None:
    envelope = new_envelope(
        kind="retryable",
        store_id=bridge.store_id,
        message_sid=message_sid,
        conversation_sid="CH" + "0" * 32,
        observations=[
            {"content": content, "source": "twilio-conversations", "occurredAt": "2026-03-01T09:00:00Z"}
        ],
        failure=FailureRecord("post_observations", 503, None, "down"),
        profile_id=None,
        identifier=Identifier("phone", address),
        trait_group="Contact",
        now=datetime.now(UTC),
        parts=[0],
    )
    SqsDeadLetterQueue(bridge.queue_url, client_factory=lambda: bridge.sqs).park(envelope)


def test_their_parked_envelopes_are_purged_and_another_customers_kept(history):
    history.sandbox.add_fault(Fault(status=503, match="/Observations", method="POST"))
    for customer, text in ((CUSTOMER, "parked mine"), (OTHER, "parked theirs")):
        sid, sids = seed_conversation(history.conversations, customer, [("c", text)], START)
        sent = history.send(
            message_params(message_sid=sids[0], author=customer, body=text, conversation_sid=sid)
        )
        assert outcome(sent) == "parked"
    history.sandbox.clear_faults()
    assert len(history.parked()) == 2

    code, report, err = erase(history, "--address", CUSTOMER, "--report", "/dev/null")

    assert code == 0, (report, err)
    assert report["deadLetters"]["deleted"] == 1
    assert [e.observations[0]["content"] for e in history.parked()] == ["parked theirs"]


def test_a_replay_of_an_envelope_parked_after_the_erase_started_posts_nothing(history):
    sid, sids = seed_conversation(history.conversations, CUSTOMER, [("c", "in flight")], START)
    code, report, err = erase(history, "--address", CUSTOMER)
    assert code == 0 and report["tombstones"]["written"] == 1, (report, err)
    # A webhook that claimed the message before the tombstone parks it after the erase's scan.
    park(history, sids[0], CUSTOMER, "in flight")

    out, err_text = io.StringIO(), io.StringIO()
    replayed = cli.main(
        [
            "dlq",
            "replay",
            "--queue-url",
            history.queue_url,
            "--table",
            history.table,
            "--memory-api-url",
            history.sandbox.base_url,
            "--conversations-api-url",
            history.conversations.base_url,
            "--json",
        ],
        out=out,
        err=err_text,
    )
    assert replayed == 0, err_text.getvalue()
    assert json.loads(out.getvalue())["counts"]["removed"] == 1
    assert posts(history) == 0 and history.parked() == [] and contents(history) == Counter()


def test_the_dry_run_says_what_it_would_delete_and_deletes_nothing(history):
    live(history, CUSTOMER, [("c", "one"), ("a", "two")])
    park(history, "IM" + "5" * 32, CUSTOMER, "parked")
    held = contents(history)

    code, report, err = erase(history, "--address", CUSTOMER, "--whole-profile", "--dry-run")

    assert code == 0, (report, err)
    assert report["dryRun"] is True and report["profileDeleted"] is None
    assert report["observations"]["bySource"] == {"twilio-conversations": 1, "twilio-conversations-agent": 1}
    assert report["tombstones"]["written"] == 2 and report["deadLetters"]["deleted"] == 1
    assert contents(history) == held and len(history.parked()) == 1
    assert all("removed" not in item for item in history.idempotency_records())
    assert history.sandbox.requests_to("DeleteProfile") == []


def test_a_memory_503_mid_way_then_a_rerun_finishes_without_doubles(history):
    live(history, CUSTOMER, [("c", f"m{i}") for i in range(4)])
    profile = profile_of(history, CUSTOMER)
    ids = [
        o["id"]
        for o in memory(history)
        .list_observations(history.store_id, profile, order_by="ASC")
        .body["observations"]
    ]
    history.sandbox.add_fault(Fault(status=503, match=ids[2], method="DELETE"))

    code, report, err = erase(history, "--address", CUSTOMER)

    assert code == 1, (report, err)
    assert report["observations"]["deleted"] == 2 and report["left"]
    assert "run the same command again" in json.dumps(report) or report["left"]
    assert contents(history) == Counter({"m2": 1, "m3": 1})
    history.sandbox.clear_faults()
    code, again, err = erase(history, "--address", CUSTOMER)
    assert code == 0, (again, err)
    assert again["observations"]["deleted"] == 2 and again["tombstones"]["written"] == 0
    assert contents(history) == Counter()
    deletes = Counter(
        r.path for r in history.sandbox.requests_to("DeleteProfileObservation") if r.status == 202
    )
    assert sorted(deletes.values()) == [1, 1, 1, 1]  # each observation deleted once


def test_erase_by_profile_id_reads_its_identifiers_for_the_tombstones(history):
    sid, sids = live(history, CUSTOMER, [("c", "by id")])
    profile = profile_of(history, CUSTOMER)

    code, report, err = erase(history, "--profile-id", profile)

    assert code == 0, (report, err)
    assert report["subject"] == [{"idType": "phone", "value": CUSTOMER}]
    assert report["tombstones"]["written"] == 1 and contents(history) == Counter()


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        ((), "exactly one of --address"),
        (("--address", CUSTOMER, "--profile-id", "mem_profile_01abcdefghijklmnopqrstuvwx"), "exactly one"),
        (("--address", "+1 555 555"), "E.164"),
        (("--address", "system"), "no customer's address"),
        (("--profile-id", "+15555550100"), "not a Memory profile id"),
    ],
)
def test_usage_errors_exit_2_naming_the_rule(history, argv, says):
    code, _, err = erase(history, *argv)
    assert code == 2 and says in err, err
    assert history.sandbox.requests == []
