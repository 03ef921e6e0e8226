"""Twilio credentials: the secret's JSON format, and reading it from Secrets Manager with a cache.

Secret value (JSON):
    {"account_sid": "AC…", "auth_token": "…", "api_key_sid": "SK…", "api_key_secret": "…",
     "previous_auth_token": "… (optional, during rotation)"}
"""

from __future__ import annotations

import base64
import functools
import json
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from memory_bridge.deadlines import call_within


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


class CachedCredentials:
    """Credentials read once per container through `fetch`, and read again on demand.

    The value is read again after `max_age` seconds, and on demand through `refresh`, which is
    rate-limited so that a stream of forged signatures cannot become a stream of Secrets Manager calls.
    """

    def __init__(
        self,
        fetch: Callable[[], TwilioCredentials],
        min_refresh_interval: float = 5.0,
        max_age: float = 900.0,
        clock: Callable[[], float] = time.monotonic,
    ):
        self._fetch = fetch
        self._min_interval = min_refresh_interval
        self._max_age = max_age
        self._clock = clock
        self._lock = threading.Lock()
        self._value: TwilioCredentials | None = None
        self._fetched_at = float("-inf")
        self.fetch_count = 0

    def get(self, timeout: float | None = None) -> TwilioCredentials:
        """The cached value; a read (first use, or after `max_age`) waits at most `timeout` seconds."""
        value = self._value
        if value is not None and self._clock() - self._fetched_at < self._max_age:
            return value
        with self._lock:
            if self._value is None:
                self._load(timeout)
            elif self._clock() - self._fetched_at >= self._max_age:
                # Pick up a rotation even without a failure; keep the old value if the read fails.
                try:
                    self._load(timeout)
                except Exception:  # noqa: BLE001 - stale but valid beats none
                    self._fetched_at = self._clock()
            assert self._value is not None
            return self._value

    def refresh(
        self, min_interval: float | None = None, timeout: float | None = None
    ) -> TwilioCredentials | None:
        """Read the secret again; the new value if it changed, else None (also when rate-limited).

        A signature mismatch (possibly a rotated token) refreshes at most every `min_refresh_interval`.
        """
        interval = self._min_interval if min_interval is None else min_interval
        with self._lock:
            if self._value is not None and self._clock() - self._fetched_at < interval:
                return None
            before = self._value
            self._load(timeout)
            return self._value if self._value != before else None

    def _load(self, timeout: float | None) -> None:
        self._value = self._fetch() if timeout is None else call_within(timeout, self._fetch)
        self._fetched_at = self._clock()
        self.fetch_count += 1


def secrets_manager_fetcher(secret_id: str) -> Callable[[], TwilioCredentials]:
    """Reads the secret with GetSecretValue over the lean AWS client (memory_bridge.aws_json).

    Made at init, where the CPU is full-speed. Short timeouts and two tries, so that a call abandoned
    at its deadline (CachedCredentials' timeout) ends soon on its own. No cache here: CachedCredentials
    does the caching."""
    from memory_bridge.aws_json import lean_client

    client = lean_client("secretsmanager", connect_timeout=0.5, read_timeout=1.0)

    def fetch() -> TwilioCredentials:
        answer = client.call("GetSecretValue", {"SecretId": secret_id})
        value = answer.get("SecretString")
        if value is None and isinstance(answer.get("SecretBinary"), str):
            value = base64.b64decode(answer["SecretBinary"])
        if not isinstance(value, str | bytes):
            raise CredentialsError("the Twilio credentials secret has no string value")
        return parse_secret_string(value)

    return fetch
