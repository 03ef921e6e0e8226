import json

import pytest

from memory_bridge.adapters.memory_api import outcome_from_response
from memory_bridge.domain.credentials import CredentialsError, TwilioCredentials, parse_secret_string
from memory_bridge.domain.outcomes import Accepted, Moved, Permanent, Retryable


def error(code, status):
    return json.dumps({"code": code, "message": "m", "more_info": "u", "status": status}).encode()


@pytest.mark.parametrize(
    ("status", "headers", "body", "expected"),
    [
        (202, {}, b'{"message":"ok"}', Accepted(202, {"message": "ok"}, {})),
        (308, {"canonical-profile-id": "mem_profile_x"}, b"{}", Moved(308, "mem_profile_x")),
        (429, {"retry-after": "3"}, error(20429, 429), Retryable(429, 20429, "m", retry_after=3.0)),
        (429, {"retry-after": "soon"}, error(20429, 429), Retryable(429, 20429, "m", retry_after=None)),
        (500, {}, error(20500, 500), Retryable(500, 20500, "m")),
        (503, {}, b"<html>", Retryable(503, None, "")),
        (400, {}, error(520046, 400), Permanent(400, 520046, "m")),
        (401, {}, error(20003, 401), Permanent(401, 20003, "m")),
        (404, {}, error(520041, 404), Permanent(404, 520041, "m")),
    ],
)
def test_every_answer_becomes_one_outcome(status, headers, body, expected):
    assert outcome_from_response(status, headers, body) == expected


def test_basic_auth_prefers_the_api_key():
    import base64

    with_key = TwilioCredentials("AC1", "tok", "SK1", "keysecret")
    assert base64.b64decode(with_key.authorization_header[6:]) == b"SK1:keysecret"
    without = TwilioCredentials("AC1", "tok")
    assert base64.b64decode(without.authorization_header[6:]) == b"AC1:tok"


def test_secret_format_is_checked_and_never_echoed():
    creds = parse_secret_string('{"account_sid":"AC1","auth_token":"tok","previous_auth_token":"old"}')
    assert creds.signing_tokens == ("tok", "old")
    assert "tok" not in repr(creds)
    with pytest.raises(CredentialsError, match="auth_token"):
        parse_secret_string('{"account_sid":"AC1"}')
    with pytest.raises(CredentialsError, match="together"):
        parse_secret_string('{"account_sid":"AC1","auth_token":"t","api_key_sid":"SK1"}')
    with pytest.raises(CredentialsError, match="not JSON") as raised:
        parse_secret_string("supersecretvalue")
    assert "supersecretvalue" not in str(raised.value)


# ---- after posting (issue 22): the edit calls, and an observation Memory no longer holds ----------


@pytest.mark.parametrize(
    ("status", "body", "gone"),
    [
        (404, error(520003, 404), True),  # deleted, or "removed or reconciled" on Twilio's side
        (404, error(20404, 404), False),  # the profile (or the route) is not there: another matter
        (400, error(520003, 400), False),
        (202, b'{"message":"Observation update accepted"}', False),
        (503, error(520003, 503), False),
    ],
)
def test_an_observation_gone_is_told_from_every_other_answer(status, body, gone):
    from memory_bridge.domain.outcomes import observation_gone

    answer = outcome_from_response(status, {}, body)
    assert observation_gone(answer) is gone
    if gone:
        assert answer == Permanent(404, 520003, "m")


class RecordingPool:
    """A urllib3 pool stand-in: records each request and answers 202 (no socket)."""

    def __init__(self):
        self.sent = []

    def connection_from_url(self, url):
        return self

    def urlopen(self, method, target, body=None, headers=None, **kwargs):
        self.sent.append((method, target, json.loads(body) if body else None))
        return type("Answer", (), {"status": 202, "headers": {}, "data": b'{"message":"accepted"}'})()

    def close(self):
        return None

    def clear(self):
        return None


STORE, PROFILE, OBSERVATION = "mem_store_1", "mem_profile_2", "mem_observation_3"


def test_the_edit_calls_send_what_the_contract_names():
    from memory_bridge.adapters.memory_api import MemoryApiClient
    from memory_bridge.ports import StaticCredentials

    pool = RecordingPool()
    client = MemoryApiClient(
        "https://memory.example", StaticCredentials(TwilioCredentials("AC1", "t")), pool=pool
    )
    base = f"/v1/Stores/{STORE}/Profiles/{PROFILE}"
    assert isinstance(client.update_observation(STORE, PROFILE, OBSERVATION, {"content": "new"}), Accepted)
    client.update_observation(STORE, PROFILE, OBSERVATION, {})  # no field is required: {} is sent
    client.delete_observation(STORE, PROFILE, OBSERVATION)
    client.delete_profile(STORE, PROFILE)
    client.delete_observation(STORE, PROFILE, "../../x")  # an id never changes the path
    client.list_observations(
        STORE,
        PROFILE,
        source="twilio-conversations",
        created_after="2026-12-01T10:00:00Z",
        created_before="2026-12-01T10:05:00Z",
        order_by="ASC",
    )
    assert pool.sent == [
        ("PATCH", f"{base}/Observations/{OBSERVATION}", {"content": "new"}),
        ("PATCH", f"{base}/Observations/{OBSERVATION}", {}),
        ("DELETE", f"{base}/Observations/{OBSERVATION}", None),
        ("DELETE", base, None),
        ("DELETE", f"{base}/Observations/..%2F..%2Fx", None),
        (
            "GET",
            f"{base}/Observations?pageSize=50&source=twilio-conversations&createdAfter=2026-12-01T10%3A00%3A00Z"
            "&createdBefore=2026-12-01T10%3A05%3A00Z&orderBy=ASC",
            None,
        ),
    ]


def test_the_fake_edits_as_memory_does():
    """FakeMemory (ObservationEditor's fake): ids, filters, newest first, 404 520003 once gone."""
    from memory_bridge.domain.outcomes import observation_gone
    from tests.fakes import FakeMemory

    times = iter(["2026-12-01T10:00:00.000Z", "2026-12-01T10:01:00.000Z", "2026-12-01T10:02:00.000Z"])
    memory = FakeMemory(created_at=lambda: next(times))
    for content in ("one", "two"):
        memory.create_observations(STORE, PROFILE, [{"content": content, "source": "s", "occurredAt": "x"}])
    listed = memory.list_observations(STORE, PROFILE).body["observations"]
    assert [o["content"] for o in listed] == ["two", "one"]
    after = memory.list_observations(STORE, PROFILE, created_after="2026-12-01T10:01:00Z").body[
        "observations"
    ]
    assert [o["content"] for o in after] == ["two"]
    before = memory.list_observations(STORE, PROFILE, created_before="2026-12-01T10:01:00Z")
    assert [o["content"] for o in before.body["observations"]] == ["one"]
    one = listed[1]["id"]
    assert isinstance(memory.update_observation(STORE, PROFILE, one, {"content": "uno"}), Accepted)
    assert memory.contents() == ["uno", "two"]
    assert isinstance(memory.delete_observation(STORE, PROFILE, one), Accepted)
    assert observation_gone(memory.delete_observation(STORE, PROFILE, one))
    assert memory.contents() == ["two"]
