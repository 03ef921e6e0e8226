"""The Twilio credentials secret, read from Secrets Manager once per container and cached.

The secret's format lives in memory_bridge.domain.credentials.
"""

from __future__ import annotations

import base64
import threading
import time
from collections.abc import Callable

from memory_bridge.deadlines import call_within
from memory_bridge.domain.credentials import CredentialsError, TwilioCredentials, parse_secret_string


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
    """Reads the secret with GetSecretValue over the lean AWS client (memory_bridge.adapters.aws_json).

    Made at init, where the CPU is full-speed. Short timeouts and two tries, so that a call abandoned
    at its deadline (CachedCredentials' timeout) ends soon on its own. No cache here: CachedCredentials
    does the caching."""
    from memory_bridge.adapters.aws_json import lean_client

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
