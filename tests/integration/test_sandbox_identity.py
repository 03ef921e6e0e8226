"""The Memory sandbox answers as Memory does where a deploy used to be left to chance: a new store's
identity resolution knows only the contract's example idTypes (a web-chat customer's is refused until
`setup` adds it), and an observation's `source` follows twilio 9.13.0's rule (`/` allowed)."""

import io
import time

import pytest

from memory_bridge.adapters.memory_api import MemoryApiClient
from memory_bridge.config import ConfigError, Settings
from memory_bridge.domain.credentials import TwilioCredentials
from memory_bridge.domain.identifiers import Identifier
from memory_bridge.domain.outcomes import Accepted, Permanent
from memory_bridge.ports import StaticCredentials
from memory_bridge_cli import main as cli
from memory_bridge_dev.identity_settings import DEFAULT_ID_TYPES, IdentitySettings
from memory_bridge_dev.sandbox import MemorySandbox
from tests.integration.conftest import outcome
from tests.support import DEV_ACCOUNT_SID, DEV_AUTH_TOKEN, message_params

pytestmark = pytest.mark.integration

CHAT = Identifier("chat_identity", "dave")


@pytest.fixture
def memory():
    sandbox = MemorySandbox(credentials={DEV_ACCOUNT_SID: DEV_AUTH_TOKEN}, identity_seconds=0.3)
    sandbox.serve()
    yield sandbox
    sandbox.close()


@pytest.fixture
def client(memory):
    return MemoryApiClient(
        memory.base_url, StaticCredentials(TwilioCredentials(DEV_ACCOUNT_SID, DEV_AUTH_TOKEN))
    )


def test_a_new_store_refuses_an_id_type_its_settings_lack_until_the_change_has_run(memory, client):
    store = memory.seed_store()
    assert [c["idType"] for c in memory.identity_settings(store)["identifierConfigs"]] == [
        "email",
        "whatsapp",
        "phone",
    ]
    refused = client.lookup_profiles(store, CHAT)
    assert isinstance(refused, Permanent) and refused.status == 400 and refused.code == 520046
    assert "chat_identity" in refused.message
    created = client.create_profile(store, "Contact", CHAT)  # a trait no idType promotes
    assert isinstance(created, Permanent) and created.status == 400
    assert isinstance(client.lookup_profiles(store, Identifier("phone", "+15555550100")), Accepted)

    current = client.fetch_identity_settings(store)
    settings = {
        "identifierConfigs": [
            *current.body["identifierConfigs"],
            {"idType": "chat_identity", "normalization": "trim"},
        ],
        "matchingRules": [*current.body["matchingRules"], "chat_identity"],
    }
    assert client.update_identity_settings(store, settings, '"not-the-etag"').status == 412
    accepted = client.update_identity_settings(store, settings, current.headers["etag"])
    assert accepted.status == 202 and accepted.headers["operation-id"]
    # Asynchronous: refused until the operation has run, then resolved.
    assert isinstance(client.lookup_profiles(store, CHAT), Permanent)
    time.sleep(0.4)
    assert client.fetch_operation(accepted.headers["operation-id"]).body["status"] == "COMPLETED"
    assert isinstance(client.lookup_profiles(store, CHAT), Accepted)
    assert isinstance(client.create_profile(store, "Contact", CHAT), Accepted)
    assert client.fetch_identity_settings(store).body["version"] == 2


def test_settings_that_break_the_contract_are_refused(memory, client):
    store = memory.seed_store()
    for bad in (
        {"identifierConfigs": [], "matchingRules": ["phone"]},
        {"identifierConfigs": [{"idType": "phone", "normalization": "upper"}], "matchingRules": ["phone"]},
        {"identifierConfigs": [{"idType": "phone"}], "matchingRules": ["email"]},  # a rule without its type
        {"identifierConfigs": [{"idType": "phone", "colour": "red"}], "matchingRules": ["phone"]},
    ):
        answer = client.update_identity_settings(store, bad)
        assert isinstance(answer, Permanent) and answer.status == 400, bad


@pytest.mark.parametrize(
    ("source", "accepted"),
    [
        ("twilio-conversations", True),
        ("twilio/conversations agent.words_1", True),  # `/` since twilio 9.13.0
        ("twilio:conversations", False),
        ("conversación", False),
        ("a\\b", False),
    ],
)
def test_the_source_rule_is_twilio_9_13s(memory, client, source, accepted):
    store = memory.seed_store()
    profile = client.create_profile(store, "Contact", Identifier("phone", "+15555550100")).body["id"]
    observation = {"content": "hi", "source": source, "occurredAt": "2026-11-21T10:00:00Z"}
    answer = client.create_observations(store, profile, [observation])
    assert (answer.status == 202) is accepted, answer


def test_the_bridge_itself_still_sends_only_what_the_published_contract_allows():
    env = {
        "MEMORY_STORE_ID": "mem_store_01kpttrksqe08rhv122gzq52ax",
        "TWILIO_CREDENTIALS_SECRET": "s",
        "DEAD_LETTER_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/1/q",
        "IDEMPOTENCY_TABLE": "t",
        "OBSERVATION_SOURCE": "twilio/conversations",
    }
    with pytest.raises(ConfigError, match="OBSERVATION_SOURCE"):
        Settings.from_env(env)


def test_a_web_chat_customer_is_parked_on_a_store_setup_never_saw_and_served_once_it_has(
    bridge, monkeypatch, tmp_path
):
    """The day-one failure: a store as a new one comes (no chat_identity) parks every web-chat
    customer as a permanent failure. `setup` (reusing the store by name) adds the type; then they post."""
    store = bridge.sandbox.stores[bridge.store_id]
    store.identity = IdentitySettings.of(DEFAULT_ID_TYPES)
    response = bridge.send(message_params(message_sid="IM" + "1" * 32, author="dave"))
    assert outcome(response) == "parked"
    [parked] = bridge.parked()
    assert parked.kind == "permanent"

    monkeypatch.setenv("TWILIO_ACCOUNT_SID", DEV_ACCOUNT_SID)
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", DEV_AUTH_TOKEN)
    monkeypatch.setenv("MEMORY_BRIDGE_LOCAL_STATE", str(tmp_path / "none.json"))
    out, err = io.StringIO(), io.StringIO()
    argv = ["setup", "--display-name", store.displayName, "--skip-deploy", "--secret-name", bridge.secret]
    code = cli.main([*argv, "--memory-api-url", bridge.sandbox.base_url], out=out, err=err)
    assert code == 0, err.getvalue()
    assert "added chat_identity" in err.getvalue()
    assert outcome(bridge.send(message_params(message_sid="IM" + "2" * 32, author="dave"))) == "posted"
