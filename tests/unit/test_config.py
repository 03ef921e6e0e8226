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
    settings = Settings.from_env({**GOOD, "AGENT_IDENTITIES": " Alice , bob,, *@Company.com"})
    assert settings.speakers.agent_rules.identities == frozenset({"alice", "bob"})
    assert settings.speakers.agent_rules.patterns == ("*@company.com",)
    assert settings.speakers.agent_rules.attribute == ("role", "agent")


def test_speaker_settings_default_and_checked():
    settings = Settings.from_env(GOOD)
    assert settings.speakers.agent_messages == "attribute"
    assert settings.speakers.conversations_api_base_url == "https://conversations.twilio.com"
    assert Settings.from_env({**GOOD, "AGENT_ATTRIBUTE": ""}).speakers.agent_rules.attribute is None
    assert Settings.from_env({**GOOD, "AGENT_MESSAGES": "skip"}).speakers.agent_messages == "skip"
    for name, value in (
        ("AGENT_MESSAGES", "post"),
        ("AGENT_ATTRIBUTE", "role"),
        ("CONVERSATIONS_API_BASE_URL", "http://conversations.example.com"),
        ("OBSERVATION_SOURCE", "x" * 95),
    ):
        with pytest.raises(ConfigError, match=name):
            Settings.from_env({**GOOD, name: value})


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


# Memory's published rule for an observation's `source`: 1-100 letters, digits, spaces, `.`, `_`, `-`.
SOURCES_ACCEPTED = ["twilio-conversations", "chat transcript", "a.b_c-d", "x" * 94]  # 94: room for "-agent"
SOURCES_REFUSED = [
    "team/bot",  # `/`: not in the published rule
    "conversations/agent-words",
    "bad<source>",
    '"quoted"',
    "café",
    "tab\there",
    "x" * 101,
]


@pytest.mark.parametrize("source", SOURCES_REFUSED)
def test_a_source_memory_would_refuse_stops_init_naming_the_rule(source):
    with pytest.raises(ConfigError, match=r"OBSERVATION_SOURCE must be 1-94 characters matching"):
        Settings.from_env({**GOOD, "OBSERVATION_SOURCE": source})


@pytest.mark.parametrize("source", SOURCES_ACCEPTED)
def test_a_source_memory_accepts_is_taken(source):
    assert Settings.from_env({**GOOD, "OBSERVATION_SOURCE": source}).observation_source == source


def test_a_source_is_trimmed_before_the_rule_is_applied():
    # A value pasted with its line end is the value: it is trimmed, then checked.
    settings = Settings.from_env({**GOOD, "OBSERVATION_SOURCE": " twilio-conversations\n"})
    assert settings.observation_source == "twilio-conversations"


# Every Memory call carries the account SID and auth token (HTTP Basic): plain http only to loopback.
MEMORY_URLS_REFUSED = [
    "http://memory.twilio.com",
    "http://10.0.0.5:8787",
    "http://0.0.0.0:8787",
    "http://localhost.attacker.example",
    "http://127.0.0.1.nip.io",
    "http://localhost@attacker.example",
    "http://127.0.0.1\\@attacker.example",
    "http://127.256.0.1",
    "http://[::ffff:7f00:1]",
    "ftp://memory.twilio.com",
    "https://",
    "memory.twilio.com",
]
MEMORY_URLS_ACCEPTED = [
    "https://memory.twilio.com",
    "https://memory.example.com:8443/prefix",
    "http://127.0.0.1:8787",
    "http://127.5.6.7",
    "http://localhost:8787",
    "http://[::1]:8787/v1",
]


@pytest.mark.parametrize("url", MEMORY_URLS_REFUSED)
def test_memory_api_base_url_is_https_or_loopback_http(url):
    with pytest.raises(
        ConfigError,
        match=r"MEMORY_API_BASE_URL must be an absolute URL, https://, or http:// only to loopback",
    ):
        Settings.from_env({**GOOD, "MEMORY_API_BASE_URL": url})


@pytest.mark.parametrize("url", MEMORY_URLS_ACCEPTED)
def test_memory_api_base_url_accepts_https_and_loopback_http(url):
    assert Settings.from_env({**GOOD, "MEMORY_API_BASE_URL": url}).memory_api_base_url == url
