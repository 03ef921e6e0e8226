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
