import pytest

from memory_bridge.config import ConfigError, Settings

GOOD = {
    "MEMORY_STORE_ID": "mem_store_01kpttrksqe08rhv122gzq52ax",
    "TWILIO_CREDENTIALS_SECRET": "memory-bridge/twilio",
    "DEAD_LETTER_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/dlq",
    "IDEMPOTENCY_TABLE": "idempotency",
}


def test_defaults():
    settings = Settings.from_env(GOOD)
    assert settings.memory_api_base_url == "https://memory.twilio.com"
    assert settings.observation_source == "twilio-conversations"
    assert settings.profile_trait_group == "Contact"
    assert settings.public_webhook_url is None


def test_agents_are_case_insensitive_and_trimmed():
    settings = Settings.from_env({**GOOD, "AGENT_IDENTITIES": " Alice , bob,,"})
    assert settings.agent_identities == frozenset({"alice", "bob"})


@pytest.mark.parametrize(
    ("changes", "named"),
    [
        ({"MEMORY_STORE_ID": ""}, "MEMORY_STORE_ID is required"),
        ({"MEMORY_STORE_ID": "store-1"}, "MEMORY_STORE_ID must look like"),
        ({"TWILIO_CREDENTIALS_SECRET": " "}, "TWILIO_CREDENTIALS_SECRET is required"),
        ({"DEAD_LETTER_QUEUE_URL": ""}, "DEAD_LETTER_QUEUE_URL is required"),
        ({"IDEMPOTENCY_TABLE": ""}, "IDEMPOTENCY_TABLE is required"),
        ({"MEMORY_API_BASE_URL": "memory.twilio.com"}, "MEMORY_API_BASE_URL must be an absolute"),
        ({"PUBLIC_WEBHOOK_URL": "/webhooks"}, "PUBLIC_WEBHOOK_URL must be an absolute"),
        ({"OBSERVATION_SOURCE": "bad<source>"}, "OBSERVATION_SOURCE must be"),
        ({"OBSERVATION_SOURCE": "x" * 101}, "OBSERVATION_SOURCE must be"),
        ({"CHAT_ID_TYPE": "a"}, "CHAT_ID_TYPE must match"),
        ({"PROFILE_TRAIT_GROUP": "has space"}, "PROFILE_TRAIT_GROUP must match"),
        ({"WEBHOOK_BUDGET_SECONDS": "9"}, "WEBHOOK_BUDGET_SECONDS must be between"),
        ({"MEMORY_API_READ_TIMEOUT": "fast"}, "MEMORY_API_READ_TIMEOUT must be a number"),
    ],
)
def test_bad_values_name_the_variable_and_the_rule(changes, named):
    with pytest.raises(ConfigError, match=named):
        Settings.from_env({**GOOD, **changes})
