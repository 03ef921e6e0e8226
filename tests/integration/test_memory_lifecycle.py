"""After posting (issue 22, the foundation): the Memory client's edit, removal and erasure calls against
the sandbox, List Observations' filters, and the sandbox's two answers to a profile past its limit
(refuse, evict) and its list lag, each chosen at run time. Each test shows what Memory holds after."""

import json
import time
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from memory_bridge.adapters.memory_api import MemoryApiClient
from memory_bridge.domain.credentials import TwilioCredentials
from memory_bridge.domain.identifiers import Identifier
from memory_bridge.domain.outcomes import Accepted, Moved, Permanent, observation_gone
from memory_bridge.ports import StaticCredentials
from memory_bridge_dev.sandbox import MemorySandbox
from tests.support import DEV_ACCOUNT_SID, DEV_AUTH_TOKEN

pytestmark = pytest.mark.integration

WHO = Identifier("phone", "+15555550100")
SOURCE = "twilio-conversations"


def observation(content: str, source: str = SOURCE) -> dict:
    return {"content": content, "source": source, "occurredAt": "2026-12-01T10:00:00.000Z"}


@pytest.fixture
def memory() -> Iterator[MemorySandbox]:
    sandbox = MemorySandbox(credentials={DEV_ACCOUNT_SID: DEV_AUTH_TOKEN})
    sandbox.serve()
    yield sandbox
    sandbox.close()


@pytest.fixture
def client(memory: MemorySandbox) -> MemoryApiClient:
    return MemoryApiClient(
        memory.base_url, StaticCredentials(TwilioCredentials(DEV_ACCOUNT_SID, DEV_AUTH_TOKEN))
    )


@pytest.fixture
def profile(memory: MemorySandbox, client: MemoryApiClient) -> tuple[str, str]:
    store = memory.seed_store()
    return store, client.create_profile(store, "Contact", WHO).body["id"]


def listed(client: MemoryApiClient, store: str, profile: str, **filters) -> list[dict]:
    """Every page of List Observations."""
    items, token = [], None
    while True:
        page = client.list_observations(store, profile, page_size=2, page_token=token, **filters)
        assert isinstance(page, Accepted), page
        items += page.body["observations"]
        token = page.body["meta"].get("nextToken")
        if not token:
            return items


def post(client: MemoryApiClient, store: str, profile: str, *contents: str, source: str = SOURCE) -> None:
    answer = client.create_observations(store, profile, [observation(c, source) for c in contents])
    assert isinstance(answer, Accepted), answer


def rules(memory: MemorySandbox, method: str, body: dict | None = None) -> tuple[int, dict]:
    request = urllib.request.Request(
        f"{memory.base_url}/__sandbox/observation-rules",
        data=json.dumps(body).encode() if body is not None else None,
        method=method,
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_update_observation_changes_the_fields_given_and_keeps_a_revision(memory, client, profile):
    store, who = profile
    post(client, store, who, "card 4111 1111 1111 1111")
    (before,) = listed(client, store, who)
    changed = client.update_observation(store, who, before["id"], {"content": "card [redacted]"})
    assert isinstance(changed, Accepted) and changed.status == 202
    (after,) = listed(client, store, who)
    assert (after["id"], after["content"], after["source"]) == (before["id"], "card [redacted]", SOURCE)
    assert after["occurredAt"] == before["occurredAt"]  # fields not given are kept
    revisions = client.request(
        "GET", f"/v1/Stores/{store}/Profiles/{who}/Observations/{before['id']}/Revisions"
    ).body["revisions"]
    assert [r["content"] for r in revisions] == ["card [redacted]", "card 4111 1111 1111 1111"]
    assert isinstance(client.update_observation(store, who, before["id"], {}), Accepted)  # none required
    refused = client.update_observation(store, who, before["id"], {"content": ""})
    assert isinstance(refused, Permanent) and (refused.status, refused.code) == (400, 520046)
    assert [o["content"] for o in memory.all_observations(store)] == ["card [redacted]"]


def test_delete_observation_leaves_the_others_and_a_second_try_is_observation_gone(memory, client, profile):
    store, who = profile
    post(client, store, who, "keep", "drop")
    drop = next(o for o in listed(client, store, who) if o["content"] == "drop")
    assert isinstance(client.delete_observation(store, who, drop["id"]), Accepted)
    assert [o["content"] for o in memory.all_observations(store)] == ["keep"]
    again = client.delete_observation(store, who, drop["id"])
    assert observation_gone(again) and again == Permanent(404, 520003, "Observation not found")
    assert observation_gone(client.update_observation(store, who, drop["id"], {"content": "x"}))
    # An unknown profile is a 404 too, with another code: not an observation gone.
    other = client.delete_observation(store, "mem_profile_00000000000000000000000000", drop["id"])
    assert isinstance(other, Permanent) and other.status == 404 and not observation_gone(other)


def test_delete_profile_erases_its_observations_and_identifiers(memory, client, profile):
    store, who = profile
    post(client, store, who, "one", "two")
    erased = client.delete_profile(store, who)
    assert isinstance(erased, Accepted) and erased.status == 202
    assert memory.all_observations(store) == []
    assert client.lookup_profiles(store, WHO).body["profiles"] == []
    gone = client.list_observations(store, who)
    assert isinstance(gone, Permanent) and (gone.status, gone.code) == (404, 20404)
    # The customer's next message makes a fresh profile.
    assert client.create_profile(store, "Contact", WHO).body["id"] != who


def test_a_write_to_a_merged_profile_is_moved(memory, client, profile):
    store, who = profile
    post(client, store, who, "one")
    (held,) = listed(client, store, who)
    canonical = client.create_profile(store, "Contact", Identifier("email", "a@example.com")).body["id"]
    memory.merge_profiles(who, canonical)
    assert client.update_observation(store, who, held["id"], {"content": "x"}) == Moved(308, canonical)
    assert client.delete_profile(store, who) == Moved(308, canonical)


def test_list_observations_filters_and_orders_as_the_contract_says(memory, client, profile):
    store, who = profile
    post(client, store, who, "a1", "a2")
    post(client, store, who, "b1", source="agent-notes")
    time.sleep(0.01)  # createdAt has millisecond precision: the next write is strictly later
    cut = datetime.now(UTC)
    time.sleep(0.01)
    post(client, store, who, "a3")
    assert [o["content"] for o in listed(client, store, who)] == ["a3", "b1", "a2", "a1"]  # DESC default
    assert [o["content"] for o in listed(client, store, who, order_by="ASC")] == ["a1", "a2", "b1", "a3"]
    assert [o["content"] for o in listed(client, store, who, source="agent-notes")] == ["b1"]
    stamp = cut.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    assert [o["content"] for o in listed(client, store, who, created_after=stamp)] == ["a3"]
    before = listed(client, store, who, created_before=stamp, source=SOURCE, order_by="ASC")
    assert [o["content"] for o in before] == ["a1", "a2"]
    # createdAfter is inclusive, createdBefore exclusive: the exact createdAt is in one, not the other.
    a3 = listed(client, store, who)[0]
    assert [o["id"] for o in listed(client, store, who, created_after=a3["createdAt"])] == [a3["id"]]
    assert a3["id"] not in {o["id"] for o in listed(client, store, who, created_before=a3["createdAt"])}
    offset = (cut + timedelta(hours=2)).astimezone(timezone_plus_two()).isoformat()
    assert listed(client, store, who, created_after=offset) == []  # an offset is read as such
    for bad in ({"order_by": "NEWEST"}, {"created_after": "yesterday"}, {"source": "a'b"}):
        refused = client.list_observations(store, who, **bad)
        assert isinstance(refused, Permanent) and refused.status == 400, bad


def timezone_plus_two():
    from datetime import timezone

    return timezone(timedelta(hours=2))


@pytest.mark.parametrize("how", ["constructor", "admin"])
def test_refuse_past_the_limit_answers_400_and_keeps_what_was_there(how):
    memory = MemorySandbox(
        credentials={DEV_ACCOUNT_SID: DEV_AUTH_TOKEN}, profile_full="refuse", observation_limit=5
    )
    if how == "admin":
        memory = MemorySandbox(credentials={DEV_ACCOUNT_SID: DEV_AUTH_TOKEN})
    memory.serve()
    try:
        if how == "admin":
            assert rules(memory, "POST", {"profileFull": "refuse", "limit": 5})[0] == 200
        client = MemoryApiClient(
            memory.base_url, StaticCredentials(TwilioCredentials(DEV_ACCOUNT_SID, DEV_AUTH_TOKEN))
        )
        store = memory.seed_store()
        who = client.create_profile(store, "Contact", WHO).body["id"]
        post(client, store, who, "1", "2", "3", "4")
        refused = client.create_observations(store, who, [observation("5"), observation("6")])
        assert isinstance(refused, Permanent) and (refused.status, refused.code) == (400, 400)
        assert "limit" in refused.message
        post(client, store, who, "5")  # up to the limit is taken
        assert isinstance(client.create_observations(store, who, [observation("6")]), Permanent)
        assert [o["content"] for o in memory.all_observations(store)] == ["1", "2", "3", "4", "5"]
        # Room made by a delete is room: the bridge's keep-latest relies on it.
        oldest = listed(client, store, who, order_by="ASC")[0]
        client.delete_observation(store, who, oldest["id"])
        post(client, store, who, "6")
        assert [o["content"] for o in memory.all_observations(store)] == ["2", "3", "4", "5", "6"]
    finally:
        memory.close()


def test_evict_past_the_limit_drops_the_oldest_silently(memory, client, profile):
    store, who = profile
    assert rules(memory, "POST", {"profileFull": "evict", "limit": 5}) == (
        200,
        {"profileFull": "evict", "limit": 5, "listLag": 0.0},
    )
    post(client, store, who, "1", "2", "3", "4")
    post(client, store, who, "5", "6", "7")  # accepted: 202, as any write
    assert [o["content"] for o in memory.all_observations(store)] == ["3", "4", "5", "6", "7"]
    assert [o["content"] for o in listed(client, store, who, order_by="ASC")] == ["3", "4", "5", "6", "7"]


def test_the_rules_admin_route_shows_checks_and_resets(memory):
    assert rules(memory, "GET") == (200, {"profileFull": None, "limit": 500, "listLag": 0.0})
    assert rules(memory, "POST", {"profileFull": "merge"})[0] == 400
    assert rules(memory, "POST", {"limit": 0})[0] == 400
    assert rules(memory, "POST", {"lag": 1})[0] == 400
    assert rules(memory, "POST", {"listLag": 2.5}) == (
        200,
        {"profileFull": None, "limit": 500, "listLag": 2.5},
    )
    assert rules(memory, "DELETE") == (200, {"profileFull": None, "limit": 500, "listLag": 0.0})
    memory.life.rules.limit = 7
    memory.reset()  # a test's reset puts the constructor's rules back too
    assert memory.life.rules.limit == 500


def test_with_a_list_lag_writes_are_not_listed_at_once(memory, client, profile):
    store, who = profile
    post(client, store, who, "old", "edited")
    held = {o["content"]: o["id"] for o in listed(client, store, who)}
    rules(memory, "POST", {"listLag": 600})  # far longer than any test: nothing written now is listed
    post(client, store, who, "new")
    client.update_observation(store, who, held["edited"], {"content": "edited, v2"})
    client.delete_observation(store, who, held["old"])
    assert sorted(o["content"] for o in listed(client, store, who)) == ["edited", "old"]
    # A fetch by id is not delayed; what Memory holds is already the new state.
    fetched = client.request("GET", f"/v1/Stores/{store}/Profiles/{who}/Observations/{held['edited']}")
    assert fetched.body["content"] == "edited, v2"
    assert sorted(o["content"] for o in memory.all_observations(store)) == ["edited, v2", "new"]
    rules(memory, "POST", {"listLag": 0})
    assert sorted(o["content"] for o in listed(client, store, who)) == ["edited, v2", "new"]


def test_a_short_list_lag_passes(memory, client, profile):
    store, who = profile
    memory.life.rules.list_lag = 0.3
    post(client, store, who, "soon")
    deadline = time.monotonic() + 15  # generous: a loaded machine
    while time.monotonic() < deadline and not listed(client, store, who):
        time.sleep(0.05)
    assert [o["content"] for o in listed(client, store, who)] == ["soon"]
