"""Memory stores: check the inputs, create one and follow its asynchronous operation, find one by name,
and make its identity resolution cover the idTypes the bridge sends.

Decisions are made here over an injected Memory client, clock and sleep; the CLI prints.
"""

from __future__ import annotations

import functools
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import urlsplit

from memory_bridge.domain.outcomes import Accepted, Failure, Outcome, Permanent, Retryable

DISPLAY_NAME_PATTERN = re.compile(r"^[a-zA-Z0-9-]+$")
STORE_LIMIT_CODE = 520044
TERMINAL_OPERATION_STATES = ("COMPLETED", "FAILED", "CANCELLED")


class StoreInputError(ValueError):
    """A store input breaks the API's rules; the message names the rule. Nothing was sent."""


def validate_display_name(name: str) -> str:
    if not name:
        raise StoreInputError("--display-name is required: 1 to 64 characters of letters, digits and hyphens")
    if len(name) > 64:
        raise StoreInputError(f"--display-name must be at most 64 characters (got {len(name)})")
    if not DISPLAY_NAME_PATTERN.match(name):
        raise StoreInputError(
            f"--display-name must match ^[a-zA-Z0-9-]+$ (letters, digits and hyphens only), got {name!r}"
        )
    return name


def validate_description(description: str | None) -> str | None:
    if description is None:
        return None
    if not 1 <= len(description) <= 128:
        raise StoreInputError(f"--description must be 1 to 128 characters (got {len(description)})")
    return description


class ControlPlane(Protocol):
    def create_store(self, display_name: str, description: str | None = None) -> Outcome: ...

    def list_stores(self, page_size: int = 50, page_token: str | None = None) -> Outcome: ...

    def fetch_store(self, store_id: str) -> Outcome: ...

    def fetch_operation(self, operation_id: str) -> Outcome: ...

    def fetch_identity_settings(self, store_id: str) -> Outcome: ...

    def update_identity_settings(self, store_id: str, settings: Any, etag: str | None = None) -> Outcome: ...


class ApiFailure(RuntimeError):
    """Memory answered with a failure that retries did not cure."""

    def __init__(self, what: str, failure: Failure):
        code = f", Twilio code {failure.code}" if failure.code is not None else ""
        status = failure.status if failure.status is not None else "no answer"
        detail = f": {failure.message}" if failure.message else ""
        super().__init__(f"{what} failed (HTTP {status}{code}){detail}")
        self.failure = failure


@dataclass
class Backoff:
    """Retries 429 and 5xx with exponential backoff, honouring Retry-After."""

    sleep: Callable[[float], None] = time.sleep
    attempts: int = 5
    base: float = 0.5
    cap: float = 8.0
    on_retry: Callable[[str], None] = lambda _message: None

    def call(self, what: str, request: Callable[[], Outcome]) -> Accepted:
        delay = self.base
        for attempt in range(1, self.attempts + 1):
            outcome = request()
            if isinstance(outcome, Accepted):
                return outcome
            if isinstance(outcome, Retryable) and attempt < self.attempts:
                wait = outcome.retry_after if outcome.retry_after is not None else delay
                wait = min(wait, self.cap * 4)
                self.on_retry(f"{what}: HTTP {outcome.status or 'no answer'}, retrying in {wait:g}s")
                self.sleep(wait)
                delay = min(delay * 2, self.cap)
                continue
            if isinstance(outcome, Retryable | Permanent):
                raise ApiFailure(what, outcome)
            raise ApiFailure(
                what, Permanent(status=getattr(outcome, "status", 0), message="unexpected answer")
            )
        raise AssertionError("unreachable")


def store_ids(client: ControlPlane, backoff: Backoff) -> Iterator[str]:
    token: str | None = None
    while True:
        page = backoff.call("list stores", functools.partial(client.list_stores, page_token=token)).body or {}
        yield from page.get("stores") or []
        token = (page.get("meta") or {}).get("nextToken")
        if not token:
            return


def list_stores(client: ControlPlane, backoff: Backoff) -> list[dict[str, Any]]:
    """Every store with its details (the list endpoint returns ids only, so each is fetched)."""
    return [fetch_store(client, store_id, backoff) for store_id in store_ids(client, backoff)]


def fetch_store(client: ControlPlane, store_id: str, backoff: Backoff) -> dict[str, Any]:
    store: dict[str, Any] = backoff.call(f"fetch store {store_id}", lambda: client.fetch_store(store_id)).body
    return store


def find_store_by_name(client: ControlPlane, name: str, backoff: Backoff) -> dict[str, Any] | None:
    for store in list_stores(client, backoff):
        if store.get("displayName") == name:
            return store
    return None


def operation_id_from(answer: Accepted) -> str | None:
    """The id from the Operation-Id header, else the last segment of statusUrl (absolute or relative)."""
    header = answer.headers.get("operation-id")
    if header:
        return header
    body = answer.body if isinstance(answer.body, dict) else {}
    for url in (body.get("statusUrl"), answer.headers.get("location")):
        if url:
            path = urlsplit(str(url)).path.rstrip("/")
            if "/Operations/" in path:
                return path.rsplit("/", 1)[1]
    return None


@dataclass(frozen=True)
class StoreCreated:
    store_id: str
    operation_id: str | None
    existed: bool = False


@dataclass(frozen=True)
class StorePending:
    """--no-wait, or the wait ran out: the operation to follow with `operations show`."""

    operation_id: str
    timed_out: bool
    last_status: str | None = None


@dataclass(frozen=True)
class StoreFailed:
    operation_id: str
    error: dict[str, Any]


@dataclass(frozen=True)
class StoreLimitReached:
    message: str
    existing: list[dict[str, Any]] = field(default_factory=list)


StoreCreation = StoreCreated | StorePending | StoreFailed | StoreLimitReached


@dataclass
class OperationWatch:
    client: ControlPlane
    backoff: Backoff
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    on_progress: Callable[[str, float], None] = lambda _status, _elapsed: None

    def follow(self, operation_id: str, timeout: float, first_wait: float = 1.0) -> dict[str, Any] | None:
        """Poll until COMPLETED/FAILED/CANCELLED; None when `timeout` runs out first."""
        started = self.clock()
        wait = first_wait
        while True:
            answer = self.backoff.call(
                f"fetch operation {operation_id}", lambda: self.client.fetch_operation(operation_id)
            )
            operation: dict[str, Any] = answer.body or {}
            status = str(operation.get("status", "UNKNOWN"))
            elapsed = self.clock() - started
            self.on_progress(status, elapsed)
            if status in TERMINAL_OPERATION_STATES:
                return operation
            retry_after = answer.headers.get("retry-after")
            if retry_after and retry_after.strip().isdigit():
                wait = float(retry_after)
            if elapsed + wait > timeout:
                return None
            self.sleep(max(wait, 0.2))


def create_store(
    client: ControlPlane,
    display_name: str,
    description: str | None,
    *,
    wait: bool,
    timeout: float,
    backoff: Backoff,
    watch: OperationWatch,
) -> StoreCreation:
    """Create or reuse a store by name; raises StoreInputError before sending when inputs are bad."""
    validate_display_name(display_name)
    validate_description(description)
    existing = find_store_by_name(client, display_name, backoff)
    if existing is not None:
        return StoreCreated(store_id=str(existing["id"]), operation_id=None, existed=True)
    try:
        answer = backoff.call("create store", lambda: client.create_store(display_name, description))
    except ApiFailure as error:
        if error.failure.code == STORE_LIMIT_CODE:
            return StoreLimitReached(
                error.failure.message or "memory store limit exceeded", list_stores(client, backoff)
            )
        raise
    operation_id = operation_id_from(answer)
    if operation_id is None:
        raise ApiFailure(
            "create store", Permanent(answer.status, message="no Operation-Id or statusUrl in the answer")
        )
    if not wait:
        return StorePending(operation_id=operation_id, timed_out=False)
    retry_after = answer.headers.get("retry-after", "1")
    first_wait = float(retry_after) if retry_after.strip().isdigit() else 1.0
    watch.sleep(min(first_wait, timeout))
    return outcome_of_operation(watch, operation_id, timeout, first_wait)


def outcome_of_operation(
    watch: OperationWatch, operation_id: str, timeout: float, first_wait: float = 1.0
) -> StoreCreation:
    operation = watch.follow(operation_id, timeout, first_wait)
    if operation is None:
        return StorePending(operation_id=operation_id, timed_out=True)
    if operation.get("status") == "COMPLETED":
        result = operation.get("result") or {}
        return StoreCreated(store_id=str(result.get("id")), operation_id=operation_id)
    error = operation.get("error") or {"title": f"operation {operation.get('status', 'ended')}"}
    return StoreFailed(operation_id=operation_id, error=error)


def wait_until_active(
    client: ControlPlane, store_id: str, timeout: float, backoff: Backoff, watch: OperationWatch
) -> dict[str, Any]:
    """Poll the store until ACTIVE (returned) or FAILED / timeout (ApiFailure)."""
    started = watch.clock()
    while True:
        store: dict[str, Any] = backoff.call(
            f"fetch store {store_id}", lambda: client.fetch_store(store_id)
        ).body
        status = str(store.get("status"))
        watch.on_progress(status, watch.clock() - started)
        if status == "ACTIVE":
            return store
        if status == "FAILED" or watch.clock() - started > timeout:
            raise ApiFailure(
                f"store {store_id} is {status}",
                Permanent(status=0, message="a store that is not ACTIVE cannot be used"),
            )
        watch.sleep(1.0)


# ---- identity resolution ----------------------------------------------------------------------

MAX_IDENTIFIERS = 15  # IdentityResolutionSettingsCore: at most 15 identifierConfigs and matchingRules


class IdentitySettingsError(RuntimeError):
    """The settings could not be made to cover the bridge's idTypes; the message says why and what next."""


@dataclass(frozen=True)
class IdentityPlan:
    settings: dict[str, Any]  # the IdentityResolutionSettingsCore to PUT
    added: tuple[str, ...]  # idTypes added to identifierConfigs
    ruled: tuple[str, ...]  # idTypes added to matchingRules


def identity_plan(current: dict[str, Any], wanted: dict[str, str]) -> IdentityPlan | None:
    """The settings that cover `wanted` (idType → normalization), keeping everything already there;
    None when they already do.

    A configured type keeps its own normalization and place. A missing one is added with the bridge's
    normalization, exact matching and enforceUnique (the contract's example), and appended to the
    matching rules, after the existing ones: the operator's priorities stay first.
    """
    configs = [dict(c) for c in current.get("identifierConfigs") or [] if isinstance(c, dict)]
    rules = [r for r in current.get("matchingRules") or [] if isinstance(r, str)]
    known = {c.get("idType") for c in configs}
    added = tuple(t for t in wanted if t not in known)
    ruled = tuple(t for t in wanted if t not in rules)
    if not added and not ruled:
        return None
    configs += [
        {"idType": t, "matchingAlgo": "exact", "normalization": wanted[t], "enforceUnique": True}
        for t in added
    ]
    rules += ruled
    if max(len(configs), len(rules)) > MAX_IDENTIFIERS:
        raise IdentitySettingsError(
            f"the store's identity resolution would need {max(len(configs), len(rules))} identifier types "
            f"to add {', '.join(added or ruled)}; Memory allows {MAX_IDENTIFIERS}. Remove one it does not "
            "need (PUT /v1/ControlPlane/Stores/{storeId}/IdentityResolutionSettings), then run setup again"
        )
    return IdentityPlan({"identifierConfigs": configs, "matchingRules": rules}, added, ruled)


@dataclass(frozen=True)
class IdentityOutcome:
    covered: tuple[str, ...]
    added: tuple[str, ...] = ()
    ruled: tuple[str, ...] = ()
    operation_id: str | None = None

    @property
    def changed(self) -> bool:
        return bool(self.added or self.ruled)


def ensure_identity_settings(
    client: ControlPlane,
    store_id: str,
    wanted: dict[str, str],
    *,
    timeout: float,
    watch: OperationWatch,
    attempts: int = 3,
) -> IdentityOutcome:
    """Read the store's settings, add what `wanted` lacks (conditional on their ETag), follow the
    asynchronous operation, and read them again to confirm. Changes nothing when they already cover
    it. A concurrent change (412) is read again and merged, `attempts` times at most."""
    backoff = watch.backoff
    for _ in range(attempts):
        answer = backoff.call(
            f"read the identity resolution settings of {store_id}",
            lambda: client.fetch_identity_settings(store_id),
        )
        plan = identity_plan(answer.body or {}, wanted)
        if plan is None:
            return IdentityOutcome(covered=tuple(wanted))
        etag = answer.headers.get("etag")
        try:
            update = backoff.call(
                f"update the identity resolution settings of {store_id}",
                functools.partial(client.update_identity_settings, store_id, plan.settings, etag),
            )
        except ApiFailure as error:
            if error.failure.status == 412:
                continue  # changed by someone else since it was read: read and merge again
            raise
        operation_id = _follow_identity_update(update, timeout, watch)
        confirmed = backoff.call(
            f"read the identity resolution settings of {store_id}",
            lambda: client.fetch_identity_settings(store_id),
        )
        left = identity_plan(confirmed.body or {}, wanted)
        if left is not None:
            raise IdentitySettingsError(
                f"operation {operation_id} completed but the settings still lack "
                f"{', '.join(left.added or left.ruled)}; run setup again, or add them by hand"
            )
        return IdentityOutcome(tuple(wanted), plan.added, plan.ruled, operation_id)
    raise IdentitySettingsError(
        f"the identity resolution settings of {store_id} kept changing while setup updated them "
        f"({attempts} tries); run setup again"
    )


def _follow_identity_update(update: Accepted, timeout: float, watch: OperationWatch) -> str:
    operation_id = operation_id_from(update)
    if operation_id is None:
        raise ApiFailure(
            "update identity resolution settings",
            Permanent(update.status, message="no Operation-Id or statusUrl in the answer"),
        )
    retry_after = update.headers.get("retry-after", "")
    first_wait = float(retry_after) if retry_after.strip().isdigit() else 0.5
    watch.sleep(min(first_wait, timeout))
    operation = watch.follow(operation_id, timeout, first_wait)
    if operation is None:
        raise IdentitySettingsError(
            f"the identity resolution update is still running after {timeout:g}s (operation "
            f"{operation_id}): see `memory-bridge operations show {operation_id}`, then run setup again"
        )
    if operation.get("status") != "COMPLETED":
        failure = operation.get("error") or {}
        reason = f"{failure.get('title', '')} (code {failure.get('code', '?')}) {failure.get('detail', '')}"
        raise IdentitySettingsError(
            f"the identity resolution update ended {operation.get('status')} (operation {operation_id}): "
            f"{reason.strip()}; run setup again, or change the settings by hand"
        )
    return operation_id
