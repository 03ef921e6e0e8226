"""Where each message ends up, for each answer Memory can give (in-memory fakes, no sockets)."""

from datetime import UTC, datetime

import pytest

from memory_bridge.deadlines import Deadline
from memory_bridge.domain.events import MessageAdded
from memory_bridge.domain.identifiers import Identifier
from memory_bridge.domain.ledger import PartsPlan
from memory_bridge.domain.outcomes import Accepted, Moved, Permanent, Retryable
from memory_bridge.domain.speakers import Participant
from memory_bridge.profiles import ProfileCache
from memory_bridge.speaking import Said
from memory_bridge.webhook.delivery import DeliveryRules, Parked, Posted, Skipped, Unparked, deliver, prepare
from tests.fakes import CUSTOMER, customer_conversations, fake_speakers
from tests.support import FakeClock, ListSink, ScriptedMemory

STORE = "mem_store_01kpttrksqe08rhv122gzq52ax"
PROFILE = "mem_profile_01kpttrksqe08rhv122gzq52ax"
CANONICAL = "mem_profile_02kpttrksqe08rhv122gzq52ax"
RULES = DeliveryRules(STORE, "twilio-conversations", "Contact", "chat_identity")
SKIP_AGENTS = DeliveryRules(STORE, "twilio-conversations", "Contact", "chat_identity", agent_messages="skip")
# The conversation of message(): the SMS customer at +15555550100 and a chat agent, "Agent".
AGENT = Participant("MB00000000000000000000000000000002", identity="Agent")
FOUND = Accepted(200, {"profiles": [PROFILE]})
OK = Accepted(202, {"message": "ok"})


def message(body="hello", author="+15555550100"):
    return MessageAdded("IM1", "CH1", "AC1", author, body, datetime(2026, 11, 21, tzinfo=UTC), 1)


def prepared_message(body="hello", author="+15555550100", rules=RULES):
    """prepare() with the speaker the webhook would find in the conversation's participants."""
    speakers = fake_speakers(
        customer_conversations(AGENT, conversation_sid="CH1"), agent_messages=rules.agent_messages
    )
    said = message(body, author)
    return prepare(said, rules, speakers.identify(Said.of(said), timeout=lambda: 1.0))


def run(
    memory, *, body="hello", author="+15555550100", sink=None, budget=4.0, cache=None, clock=None, rules=RULES
):
    clock = clock or FakeClock()
    sink = sink if sink is not None else ListSink()
    prepared = prepared_message(body, author, rules)
    if isinstance(prepared, Skipped):
        return prepared, sink, clock
    result = deliver(
        prepared,
        rules=rules,
        memory=memory,
        profiles=cache if cache is not None else ProfileCache(ttl=60),
        dead_letters=sink,
        deadline=Deadline(budget, clock),
        sleep=clock.sleep,
    )
    return result.result, sink, clock


def test_happy_path_posts_once():
    memory = ScriptedMemory(lookups=[FOUND], posts=[OK])
    result, sink, _ = run(memory)
    assert result == Posted(observations=1, requests=2)
    assert sink.parked == []
    assert memory.calls[1] == (
        "post",
        (
            PROFILE,
            [
                {
                    "content": "hello",
                    "source": "twilio-conversations",
                    "occurredAt": "2026-11-21T00:00:00.000Z",
                }
            ],
        ),
    )


def test_cached_profile_means_one_call():
    cache = ProfileCache(ttl=60)
    cache.put(Identifier("phone", "+15555550100"), PROFILE)
    memory = ScriptedMemory(posts=[OK])
    result, _, _ = run(memory, cache=cache)
    assert result == Posted(1, 1)
    assert [c[0] for c in memory.calls] == ["post"]


# Changed on purpose (issue 19): agents' and system messages are skipped only with AGENT_MESSAGES=skip,
# and a system message's reason is now "brand" (it was "system").
@pytest.mark.parametrize(("author", "reason"), [("system", "brand"), ("Agent", "agent")])
def test_not_a_customer_is_skipped_without_calls(author, reason):
    memory = ScriptedMemory()
    assert run(memory, author=author, rules=SKIP_AGENTS)[0] == Skipped(reason)
    assert memory.calls == []


@pytest.mark.parametrize(
    ("author", "label", "source"),
    [
        ("system", "Business: ", "twilio-conversations-brand"),
        ("Agent", "Agent: ", "twilio-conversations-agent"),
    ],
)
def test_not_a_customer_is_posted_on_the_customers_profile_marked_by_default(author, label, source):
    memory = ScriptedMemory(lookups=[FOUND], posts=[OK])
    result, sink, _ = run(memory, author=author)
    assert result == Posted(observations=1, requests=2)
    # The customer's identifier is looked up, never the agent's identity or the business's number.
    assert memory.calls[0] == ("lookup", Identifier("phone", CUSTOMER.address))
    assert memory.calls[1] == (
        "post",
        (PROFILE, [{"content": label + "hello", "source": source, "occurredAt": "2026-11-21T00:00:00.000Z"}]),
    )
    assert sink.parked == []


def test_empty_message_is_skipped():
    assert run(ScriptedMemory(), body="")[0] == Skipped("empty")


def test_429_with_retry_after_that_fits_is_retried_once():
    memory = ScriptedMemory(lookups=[FOUND], posts=[Retryable(429, 20429, retry_after=1), OK])
    result, sink, clock = run(memory)
    assert isinstance(result, Posted)
    assert clock.slept == [1]
    assert sink.parked == []


def test_retry_after_that_does_not_fit_parks_without_waiting():
    memory = ScriptedMemory(lookups=[FOUND], posts=[Retryable(429, 20429, retry_after=30)])
    result, sink, clock = run(memory)
    assert result == Parked("retryable", "post_observations", 429, 20429)
    assert clock.slept == []
    assert sink.parked[0].failure.retry_after == 30
    assert sink.parked[0].profile_id == PROFILE


def test_only_one_retry_per_webhook():
    memory = ScriptedMemory(lookups=[Retryable(503), FOUND], posts=[Retryable(503)])
    result, sink, clock = run(memory)
    assert result == Parked("retryable", "post_observations", 503, None)
    assert clock.slept == [0.2]  # the one short backoff went to the lookup


def test_ambiguous_failure_is_parked_not_retried():
    memory = ScriptedMemory(
        lookups=[FOUND], posts=[Retryable(None, message="read timed out", ambiguous=True)]
    )
    result, sink, clock = run(memory)
    assert isinstance(result, Parked)
    assert sink.parked[0].failure.ambiguous is True
    assert clock.slept == []


def test_permanent_failure_is_parked_as_permanent():
    memory = ScriptedMemory(lookups=[FOUND], posts=[Permanent(400, 520046, "schema")])
    result, sink, _ = run(memory)
    assert result == Parked("permanent", "post_observations", 400, 520046)
    assert sink.parked[0].kind == "permanent"


def test_unresolved_profile_parks_the_identifier():
    memory = ScriptedMemory(lookups=[Retryable(None, message="connect failed"), Retryable(None)])
    result, sink, _ = run(memory)
    assert result.stage == "resolve_profile"
    assert sink.parked[0].profile_id is None
    assert sink.parked[0].identifier == Identifier("phone", "+15555550100")


def test_merged_profile_is_followed_once_and_cached():
    cache = ProfileCache(ttl=60)
    memory = ScriptedMemory(lookups=[FOUND], posts=[Moved(308, CANONICAL), OK])
    result, _, _ = run(memory, cache=cache)
    assert isinstance(result, Posted)
    assert memory.calls[-1][1][0] == CANONICAL
    assert cache.get(Identifier("phone", "+15555550100")) == CANONICAL


def test_moved_twice_is_parked_not_chased():
    memory = ScriptedMemory(lookups=[FOUND], posts=[Moved(308, CANONICAL), Moved(308, PROFILE)])
    result, sink, _ = run(memory)
    assert result.kind == "permanent"
    assert sink.parked[0].profile_id == CANONICAL


def test_more_than_ten_pieces_go_in_batches_and_only_the_rest_is_parked():
    body = "x" * (4096 * 12)  # 12 observations → 10 + 2
    memory = ScriptedMemory(lookups=[FOUND], posts=[OK, Permanent(400, 520046)])
    result, sink, _ = run(memory, body=body)
    assert isinstance(result, Parked)
    assert len(memory.calls[1][1][1]) == 10
    assert len(sink.parked[0].observations) == 2  # the 10 accepted ones are not parked again


def test_exhausted_budget_parks_instead_of_calling():
    memory = ScriptedMemory()
    result, sink, _ = run(memory, budget=0.5)
    assert isinstance(result, Parked)
    assert memory.calls == []
    assert "budget" in sink.parked[0].failure.message


def test_queue_down_is_an_unparked_outcome_for_a_503():
    memory = ScriptedMemory(lookups=[FOUND], posts=[Permanent(400, 520046)])
    result, _, _ = run(memory, sink=ListSink(fail=True))
    assert isinstance(result, Unparked)


def deliver_with(plan, posts, body="x" * 9000, sink=None):
    """Deliver a three-part message (9,000 bytes) with the ledger's plan; returns the Delivery."""
    sink = sink if sink is not None else ListSink()
    cache = ProfileCache(ttl=60)
    cache.put(Identifier("phone", "+15555550100"), PROFILE)
    clock = FakeClock()
    prepared = prepared_message(body)
    return (
        deliver(
            prepared,
            rules=RULES,
            memory=ScriptedMemory(posts=posts),
            profiles=cache,
            dead_letters=sink,
            deadline=Deadline(4.0, clock),
            plan=plan,
            sleep=clock.sleep,
        ),
        sink,
    )


def test_parts_memory_holds_are_not_posted_again():
    delivery, sink = deliver_with(PartsPlan(done=(0, 1), post=(2,)), [OK])
    assert delivery.result == Posted(observations=1, requests=1)
    assert delivery.accepted == {2}
    assert sink.parked == []


def test_parts_in_doubt_are_parked_for_the_replay_never_posted_blind():
    delivery, sink = deliver_with(PartsPlan(done=(0,), check=(1,), post=(2,)), [OK])
    assert isinstance(delivery.result, Parked)
    assert delivery.accepted == {2}
    assert delivery.in_doubt == {1}
    (envelope,) = sink.parked
    assert envelope.parts == (1,)
    assert envelope.failure.ambiguous


def test_a_timeout_leaves_the_tried_parts_in_doubt_and_the_untried_ones_clear():
    body = "y" * (4096 * 12)  # 12 parts: two requests
    delivery, sink = deliver_with(
        None, [OK, Retryable(status=None, message="read timed out", ambiguous=True)], body=body
    )
    assert isinstance(delivery.result, Parked)
    assert delivery.accepted == set(range(10))
    assert delivery.in_doubt == {10, 11}
    assert sink.parked[0].parts == (10, 11)


def test_unparked_still_reports_what_memory_took():
    body = "z" * (4096 * 12)
    delivery, _ = deliver_with(None, [OK, Permanent(400, 520046)], body=body, sink=ListSink(fail=True))
    assert isinstance(delivery.result, Unparked)
    assert delivery.accepted == set(range(10))
    assert delivery.in_doubt == set()
