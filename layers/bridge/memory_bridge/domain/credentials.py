"""Twilio credentials: the secret's JSON format and the TWILIO_* variables. Pure.

Secret value (JSON):
    {"account_sid": "AC…", "auth_token": "…", "api_key_sid": "SK…", "api_key_secret": "…",
     "previous_auth_token": "… (optional, during rotation)"}
"""

from __future__ import annotations

import base64
import functools
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


class CredentialsError(ValueError):
    """The secret is missing a field or is not the documented JSON. Never carries a secret value."""


@dataclass(frozen=True, repr=False)
class TwilioCredentials:
    account_sid: str
    auth_token: str
    api_key_sid: str | None = None
    api_key_secret: str | None = None
    previous_auth_token: str | None = None

    def __repr__(self) -> str:  # never print a secret by accident
        api_key = "yes" if self.api_key_sid else "no"
        return f"TwilioCredentials(account_sid={self.account_sid[:6]}…, api_key={api_key})"

    @property
    def signing_tokens(self) -> tuple[str, ...]:
        """Tokens that may have signed a webhook: the current one, then the previous during rotation."""
        tokens = [self.auth_token]
        if self.previous_auth_token and self.previous_auth_token != self.auth_token:
            tokens.append(self.previous_auth_token)
        return tuple(tokens)

    @functools.cached_property
    def authorization_header(self) -> str:  # computed once per credentials value, not per request
        """HTTP Basic: the API key when present (Twilio's advice for production), else SID + token."""
        if self.api_key_sid and self.api_key_secret:
            user, password = self.api_key_sid, self.api_key_secret
        else:
            user, password = self.account_sid, self.auth_token
        return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode("ascii")


def parse_credentials(document: Mapping[str, Any]) -> TwilioCredentials:
    def field(name: str, required: bool) -> str | None:
        value = document.get(name)
        if value is None or value == "":
            if required:
                raise CredentialsError(f"the Twilio credentials secret has no {name!r}")
            return None
        if not isinstance(value, str):
            raise CredentialsError(f"{name!r} in the Twilio credentials secret must be a string")
        return value

    account_sid = field("account_sid", True)
    auth_token = field("auth_token", True)
    assert account_sid is not None
    assert auth_token is not None
    api_key_sid = field("api_key_sid", False)
    api_key_secret = field("api_key_secret", False)
    if bool(api_key_sid) != bool(api_key_secret):
        raise CredentialsError("api_key_sid and api_key_secret must be set together")
    return TwilioCredentials(
        account_sid=account_sid,
        auth_token=auth_token,
        api_key_sid=api_key_sid,
        api_key_secret=api_key_secret,
        previous_auth_token=field("previous_auth_token", False),
    )


def parse_secret_string(text: str | bytes) -> TwilioCredentials:
    try:
        document = json.loads(text)
    except ValueError:
        raise CredentialsError("the Twilio credentials secret is not JSON") from None
    if not isinstance(document, dict):
        raise CredentialsError("the Twilio credentials secret must be a JSON object")
    return parse_credentials(document)


def credentials_from_env(env: Mapping[str, str]) -> TwilioCredentials | None:
    """The standard TWILIO_* variables, for the CLI; None when none is set.

    An API key alone (TWILIO_API_KEY + TWILIO_API_SECRET) is enough to call Memory.
    """
    account_sid = env.get("TWILIO_ACCOUNT_SID", "")
    auth_token = env.get("TWILIO_AUTH_TOKEN", "")
    api_key, api_secret = env.get("TWILIO_API_KEY", ""), env.get("TWILIO_API_SECRET", "")
    if not (account_sid or auth_token or api_key or api_secret):
        return None
    if bool(api_key) != bool(api_secret):
        raise CredentialsError("TWILIO_API_KEY and TWILIO_API_SECRET must be set together")
    if api_key:
        return TwilioCredentials(account_sid, auth_token, api_key, api_secret)
    if not (account_sid and auth_token):
        raise CredentialsError(
            "set TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN, or TWILIO_API_KEY and TWILIO_API_SECRET"
        )
    return TwilioCredentials(account_sid, auth_token)
