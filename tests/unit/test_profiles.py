import pytest

from memory_bridge.domain.identifiers import Identifier, NotACustomer, identifier_for
from memory_bridge.domain.outcomes import Accepted, Moved, Permanent, Retryable
from memory_bridge.profiles import ProfileCache, resolve_profile
from tests.support import FakeClock, ScriptedMemory

PROFILE = "mem_profile_01kpttrksqe08rhv122gzq52ax"
OTHER = "mem_profile_02kpttrksqe08rhv122gzq52ax"


@pytest.mark.parametrize(
    ("author", "expected"),
    [
        ("+15555550100", Identifier("phone", "+15555550100")),
        ("whatsapp:+15555550100", Identifier("whatsapp", "+15555550100")),
        ("WhatsApp: +15555550100", Identifier("whatsapp", "+15555550100")),
        ("dave@example.com", Identifier("email", "dave@example.com")),
        ("dave", Identifier("chat_identity", "dave")),
        ("5555550100", Identifier("chat_identity", "5555550100")),
        ("system", NotACustomer("system")),
        ("", NotACustomer("system")),
        (None, NotACustomer("system")),
        ("Agent-Smith", NotACustomer("agent")),
    ],
)
def test_author_picks_the_id_type(author, expected):
    assert (
        identifier_for(author, chat_id_type="chat_identity", agent_identities=frozenset({"agent-smith"}))
        == expected
    )


def test_cache_expires_after_ttl_and_stays_bounded():
    clock = FakeClock()
    cache = ProfileCache(ttl=60, max_entries=2, clock=clock)
    alice, bob, carol = Identifier("phone", "+1"), Identifier("phone", "+2"), Identifier("phone", "+3")
    cache.put(alice, PROFILE)
    assert cache.get(alice) == PROFILE
    clock.now += 61
    assert cache.get(alice) is None
    cache.put(alice, PROFILE)
    cache.put(bob, PROFILE)
    cache.put(carol, PROFILE)
    assert len(cache) == 2
    assert cache.get(alice) is None  # least recently used went first


def test_zero_ttl_disables_the_cache():
    cache = ProfileCache(ttl=0)
    cache.put(Identifier("phone", "+1"), PROFILE)
    assert cache.get(Identifier("phone", "+1")) is None


WHO = Identifier("phone", "+15555550100")


def test_lookup_match_is_used():
    memory = ScriptedMemory(lookups=[Accepted(200, {"profiles": [PROFILE, OTHER]})])
    assert resolve_profile(memory, "store", WHO, "Contact") == PROFILE
    assert [c[0] for c in memory.calls] == ["lookup"]


@pytest.mark.parametrize(
    "miss", [Accepted(200, {"normalizedValue": "+1", "profiles": []}), Permanent(404, 20404)]
)
def test_no_match_either_form_creates_the_profile(miss):
    memory = ScriptedMemory(lookups=[miss], creates=[Accepted(202, {"message": "ok", "id": PROFILE})])
    assert resolve_profile(memory, "store", WHO, "Contact") == PROFILE
    assert memory.calls[1] == ("create_profile", ("Contact", WHO))


def test_store_missing_is_not_papered_over_by_create():
    memory = ScriptedMemory(lookups=[Permanent(404, 520041, "store missing")])
    assert resolve_profile(memory, "store", WHO, "Contact") == Permanent(404, 520041, "store missing")


def test_failures_come_back_as_values():
    busy = Retryable(429, 20429, retry_after=1)
    assert resolve_profile(ScriptedMemory(lookups=[busy]), "s", WHO, "Contact") == busy
    memory = ScriptedMemory(lookups=[Accepted(200, {"profiles": []})], creates=[Retryable(503)])
    assert resolve_profile(memory, "s", WHO, "Contact") == Retryable(503)
    memory = ScriptedMemory(
        lookups=[Accepted(200, {"profiles": []})], creates=[Accepted(202, {"message": "?"})]
    )
    assert isinstance(resolve_profile(memory, "s", WHO, "Contact"), Permanent)
    memory = ScriptedMemory(lookups=[Accepted(200, {"profiles": []})], creates=[Moved(308, OTHER)])
    assert resolve_profile(memory, "s", WHO, "Contact") == OTHER
