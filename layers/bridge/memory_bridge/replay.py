"""Replay parked messages from the dead-letter queue: nothing lost, nothing posted twice.

The engine receives what it will replay (holding it invisible), groups it by store and profile,
posts at most ten observations per request through the same Memory client as the webhook, and
deletes a message only after Memory accepted its observations (202). A message that fails again
goes back with its attempts raised and its new failure recorded. Before posting an envelope whose
earlier failure was ambiguous (Memory may have taken it), it looks through List Observations and
posts only what is not there. Malformed and filtered-out messages are reported and left in place.

The same engine serves `memory-bridge dlq replay` and the ReplayFunction.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, Protocol

from memory_bridge.dead_letters import QueuedMessage
from memory_bridge.delivery import ObservationWriter
from memory_bridge.envelope import Envelope, FailureRecord, MalformedEnvelope, parse_envelope
from memory_bridge.observations import MAX_OBSERVATIONS_PER_REQUEST, Observation
from memory_bridge.outcomes import Accepted, Failure, Moved, Outcome, Permanent, Retryable
from memory_bridge.profiles import ProfileCache, resolve_profile

KindFilter = Literal["retryable", "permanent", "all"]
# How far before an envelope's first failure to look for observations Memory may already hold.
LOOKBACK = timedelta(minutes=15)


class ReplayQueue(Protocol):
    def receive(
        self, max_messages: int, visibility_timeout: int, wait_seconds: int = 0
    ) -> list[QueuedMessage]: ...

    def delete(self, messages: list[QueuedMessage]) -> None: ...

    def release(self, messages: list[QueuedMessage]) -> None: ...

    def replace(self, old: QueuedMessage, envelope: Envelope) -> None: ...


class ReplayMemory(ObservationWriter, Protocol):
    """The webhook's Memory calls, plus List Observations to find what Memory already holds."""

    def list_observations(
        self,
        store_id: str,
        profile_id: str,
        *,
        page_size: int = 50,
        page_token: str | None = None,
        created_after: str | None = None,
    ) -> Outcome: ...


@dataclass(frozen=True)
class ReplayOptions:
    max_messages: int | None = None
    rate: float | None = None  # Memory requests per second
    kind: KindFilter = "retryable"
    since: datetime | None = None
    profile_id: str | None = None
    dry_run: bool = False
    max_consecutive_failures: int = 5
    visibility_timeout: int = 900
    time_limit: float | None = None  # seconds, for the Lambda


@dataclass
class ReplayCounts:
    received: int = 0
    replayed: int = 0  # posted now and deleted
    already_posted: int = 0  # found in Memory already; deleted without posting
    failed: int = 0  # put back with attempts raised
    left: int = 0  # untouched: the run stopped first
    filtered: int = 0  # did not match --kind/--since/--profile-id; left in place
    malformed: int = 0  # not an envelope this version reads; left in place
    requests: int = 0
    observations_posted: int = 0


@dataclass
class ReplaySummary:
    options: ReplayOptions
    counts: ReplayCounts = field(default_factory=ReplayCounts)
    seconds: float = 0.0
    stopped: str | None = None
    plan: list[dict[str, Any]] = field(default_factory=list)
    malformed: list[dict[str, str]] = field(default_factory=list)
    failures: list[dict[str, Any]] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        counts = self.counts
        return not self.stopped and counts.failed == 0 and counts.left == 0 and counts.malformed == 0

    def to_json(self) -> dict[str, Any]:
        options = self.options
        return {
            "dryRun": options.dry_run,
            "options": {
                "maxMessages": options.max_messages,
                "rate": options.rate,
                "kind": options.kind,
                "since": options.since.isoformat() if options.since else None,
                "profileId": options.profile_id,
                "maxConsecutiveFailures": options.max_consecutive_failures,
            },
            "counts": vars(self.counts).copy(),
            "seconds": round(self.seconds, 3),
            "stopped": self.stopped,
            "complete": self.complete,
            "plan": self.plan,
            "malformed": self.malformed,
            "failures": self.failures[:100],
        }


@dataclass
class Pending:
    """One parked message being replayed."""

    message: QueuedMessage
    envelope: Envelope
    profile_id: str | None = None
    observations: list[Observation] = field(default_factory=list)


def _parse_time(text: str) -> datetime | None:
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


def observation_key(observation: Observation) -> tuple[str, str, str]:
    moment = _parse_time(str(observation.get("occurredAt", "")))
    when = moment.astimezone(UTC).isoformat() if moment else str(observation.get("occurredAt"))
    return str(observation.get("content")), when, str(observation.get("source"))


class Pacer:
    """Keeps requests at or under `rate` per second; slows down after a 429."""

    def __init__(self, rate: float | None, clock: Callable[[], float], sleep: Callable[[float], None]):
        self.interval = 1.0 / rate if rate else 0.0
        self._clock, self._sleep = clock, sleep
        self._next = clock()

    def wait(self) -> None:
        delay = self._next - self._clock()
        if delay > 0:
            self._sleep(delay)
        self._next = max(self._clock(), self._next) + self.interval

    def slow_down(self, retry_after: float | None) -> None:
        self.interval = max(self.interval * 2, 0.1)
        if retry_after:
            self._next = max(self._next, self._clock() + retry_after)


class ReplayEngine:
    def __init__(
        self,
        queue: ReplayQueue,
        memory: ReplayMemory,
        *,
        profiles: ProfileCache | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        progress: Callable[[ReplaySummary, int], None] = lambda _summary, _remaining: None,
    ):
        self.queue, self.memory = queue, memory
        self.profiles = profiles or ProfileCache(ttl=3600)
        self.clock, self.sleep, self.now = clock, sleep, now
        self.progress = progress

    # ---- the run ----------------------------------------------------------------------

    def run(self, options: ReplayOptions) -> ReplaySummary:
        summary = ReplaySummary(options)
        started = self.clock()
        held: list[QueuedMessage] = []  # left in place at the end (filtered, malformed, untouched)
        try:
            pending = self._collect(options, summary, held)
            if options.dry_run:
                summary.plan = self._plan(pending)
                held.extend(p.message for p in pending)
            else:
                self._replay(pending, options, summary, started, held)
        finally:
            if held:
                self.queue.release(held)
            summary.seconds = self.clock() - started
        return summary

    def _collect(
        self, options: ReplayOptions, summary: ReplaySummary, held: list[QueuedMessage]
    ) -> list[Pending]:
        pending: list[Pending] = []
        seen: set[str] = set()
        empty_receives = 0
        limit = options.max_messages
        while empty_receives < 2 and (limit is None or len(pending) < limit):
            # Long polling: a short poll samples only some SQS servers and may answer empty while
            # messages wait, which would end the run early.
            batch = self.queue.receive(10, options.visibility_timeout, wait_seconds=1)
            if not batch:
                empty_receives += 1
                continue
            empty_receives = 0
            for message in batch:
                if message.message_id in seen:
                    continue
                seen.add(message.message_id)
                if limit is not None and len(pending) >= limit:
                    held.append(message)  # over --max: put back untouched
                    continue
                summary.counts.received += 1
                try:
                    envelope = parse_envelope(message.body)
                except MalformedEnvelope as error:
                    summary.counts.malformed += 1
                    summary.malformed.append({"messageId": message.message_id, "reason": str(error)})
                    held.append(message)
                    continue
                if not self._matches(envelope, options):
                    summary.counts.filtered += 1
                    held.append(message)
                    continue
                pending.append(Pending(message, envelope, envelope.profile_id, list(envelope.observations)))
        return pending

    @staticmethod
    def _matches(envelope: Envelope, options: ReplayOptions) -> bool:
        if options.kind != "all" and envelope.kind != options.kind:
            return False
        if options.profile_id and envelope.profile_id != options.profile_id:
            return False
        if options.since:
            failed_at = _parse_time(envelope.last_failed_at or envelope.first_failed_at)
            if failed_at is None or failed_at < options.since:
                return False
        return True

    def _plan(self, pending: list[Pending]) -> list[dict[str, Any]]:
        groups: OrderedDict[tuple[str, str], list[Pending]] = OrderedDict()
        for item in pending:
            who = item.profile_id or (
                f"unresolved {item.envelope.identifier.id_type}" if item.envelope.identifier else "unresolved"
            )
            groups.setdefault((item.envelope.store_id, who), []).append(item)
        plan = []
        for (store_id, who), items in groups.items():
            observations = sum(len(i.observations) for i in items)
            plan.append(
                {
                    "storeId": store_id,
                    "profile": who,
                    "messages": len(items),
                    "observations": observations,
                    "requests": request_count([len(i.observations) for i in items]),
                    "messageSids": [i.envelope.message_sid for i in items],
                    "ambiguous": sum(1 for i in items if i.envelope.failure.ambiguous),
                }
            )
        return plan

    def _replay(
        self,
        pending: list[Pending],
        options: ReplayOptions,
        summary: ReplaySummary,
        started: float,
        held: list[QueuedMessage],
    ) -> None:
        pacer = Pacer(options.rate, self.clock, self.sleep)
        consecutive = 0
        remaining = list(pending)

        def stop(reason: str) -> None:
            summary.stopped = reason
            summary.counts.left += len(remaining)
            for item in remaining:
                if len(item.observations) < len(item.envelope.observations):
                    # Part of it was accepted: put back only the rest, so nothing is posted twice.
                    rest = replace(
                        item.envelope, observations=tuple(item.observations), profile_id=item.profile_id
                    )
                    self.queue.replace(item.message, rest)
                else:
                    held.append(item.message)
            remaining.clear()

        # Resolve authors that the webhook could not resolve, then group by store and profile.
        for item in list(remaining):
            if item.profile_id is None:
                resolved = self._resolve(item, pacer, summary)
                if isinstance(resolved, Retryable | Permanent):
                    self._put_back(item, "resolve_profile", resolved, summary)
                    remaining.remove(item)
                    consecutive += 1
                    if consecutive >= options.max_consecutive_failures:
                        stop(f"{consecutive} consecutive failures")
                        return
                else:
                    consecutive = 0
        groups: OrderedDict[tuple[str, str], list[Pending]] = OrderedDict()
        for item in remaining:
            assert item.profile_id is not None
            groups.setdefault((item.envelope.store_id, item.profile_id), []).append(item)

        for (store_id, profile_id), items in groups.items():
            if not remaining:
                return
            fresh = self._drop_already_posted(store_id, profile_id, items, summary, remaining, pacer)
            for request in self._pack(fresh):
                if options.time_limit is not None and self.clock() - started > options.time_limit:
                    stop("time limit")
                    return
                result = self._post(store_id, request, pacer, options, summary)
                if result == "done":
                    consecutive = 0
                else:
                    consecutive += 1
                for item in request.items:
                    if item in remaining and item.observations == []:
                        remaining.remove(item)
                self.progress(summary, len(remaining))
                if result == "stop" or consecutive >= options.max_consecutive_failures:
                    stop(f"{consecutive} consecutive failures")
                    return

    # ---- steps --------------------------------------------------------------------------

    def _resolve(self, item: Pending, pacer: Pacer, summary: ReplaySummary) -> str | Failure:
        identifier = item.envelope.identifier
        assert identifier is not None
        cached = self.profiles.get(identifier)
        if cached:
            item.profile_id = cached
            return cached
        pacer.wait()
        summary.counts.requests += 1
        resolved = resolve_profile(self.memory, item.envelope.store_id, identifier, item.envelope.trait_group)
        if isinstance(resolved, str):
            self.profiles.put(identifier, resolved)
            item.profile_id = resolved
        return resolved

    def _drop_already_posted(
        self,
        store_id: str,
        profile_id: str,
        items: list[Pending],
        summary: ReplaySummary,
        remaining: list[Pending],
        pacer: Pacer,
    ) -> list[Pending]:
        """Envelopes that may already be in Memory: keep only the observations Memory does not hold."""
        sids = [i.envelope.message_sid for i in items]
        suspect = [
            i
            for i in items
            if i.envelope.failure.ambiguous
            or i.envelope.attempts > 1
            or sids.count(i.envelope.message_sid) > 1
        ]
        if not suspect:
            return items
        failed_at = [t for t in (_parse_time(i.envelope.first_failed_at) for i in suspect) if t is not None]
        earliest = min(failed_at) if failed_at else None
        existing = self._existing_keys(
            store_id, profile_id, (earliest - LOOKBACK) if earliest else None, pacer, summary
        )
        fresh = []
        for item in items:
            if item in suspect:
                item.observations = [o for o in item.observations if observation_key(o) not in existing]
                if not item.observations:
                    self.queue.delete([item.message])
                    summary.counts.already_posted += 1
                    remaining.remove(item)
                    continue
            existing.update(observation_key(o) for o in item.observations)  # a later twin is a duplicate
            fresh.append(item)
        return fresh

    def _existing_keys(
        self,
        store_id: str,
        profile_id: str,
        created_after: datetime | None,
        pacer: Pacer,
        summary: ReplaySummary,
    ) -> set[tuple[str, str, str]]:
        keys: set[tuple[str, str, str]] = set()
        token: str | None = None
        after = created_after.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if created_after else None
        for _ in range(200):  # ≤ 10,000 observations; Memory keeps at most 500 per profile
            pacer.wait()
            summary.counts.requests += 1
            answer = self.memory.list_observations(
                store_id, profile_id, page_size=50, page_token=token, created_after=after
            )
            if not isinstance(answer, Accepted):
                break  # cannot look: post anyway (at-least-once beats losing it)
            page = answer.body or {}
            keys.update(observation_key(o) for o in page.get("observations") or [])
            token = (page.get("meta") or {}).get("nextToken")
            if not token:
                break
        return keys

    @dataclass
    class _Request:
        items: list[Pending]
        observations: list[Observation]

    def _pack(self, items: Iterable[Pending]) -> Iterable[ReplayEngine._Request]:
        """Greedy: whole envelopes together up to ten observations; a larger envelope alone, in chunks."""
        batch: list[Pending] = []
        size = 0
        for item in items:
            count = len(item.observations)
            if count > MAX_OBSERVATIONS_PER_REQUEST:
                if batch:
                    yield self._Request(batch, [o for i in batch for o in i.observations])
                    batch, size = [], 0
                # Accepted chunks leave item.observations; a failure empties it, which ends the loop.
                while item.observations:
                    yield self._Request([item], item.observations[:MAX_OBSERVATIONS_PER_REQUEST])
                continue
            if size + count > MAX_OBSERVATIONS_PER_REQUEST:
                yield self._Request(batch, [o for i in batch for o in i.observations])
                batch, size = [], 0
            batch.append(item)
            size += count
        if batch:
            yield self._Request(batch, [o for i in batch for o in i.observations])

    def _post(
        self,
        store_id: str,
        request: ReplayEngine._Request,
        pacer: Pacer,
        options: ReplayOptions,
        summary: ReplaySummary,
    ) -> Literal["done", "failed", "stop"]:
        profile_id = request.items[0].profile_id
        assert profile_id is not None
        followed = False
        throttled = 0
        while True:
            pacer.wait()
            summary.counts.requests += 1
            outcome = self.memory.create_observations(store_id, profile_id, request.observations)
            if isinstance(outcome, Accepted):
                self._accepted(request, summary)
                return "done"
            if isinstance(outcome, Moved) and outcome.canonical_profile_id and not followed:
                followed, profile_id = True, outcome.canonical_profile_id
                for item in request.items:
                    item.profile_id = profile_id
                continue
            if isinstance(outcome, Retryable) and outcome.status == 429:
                throttled += 1
                pacer.slow_down(outcome.retry_after)
                if throttled < options.max_consecutive_failures:
                    continue  # honour Retry-After and try the same request again, slower
                return "stop"  # leave it untouched: Memory is shedding load
            failure = (
                outcome
                if isinstance(outcome, Retryable | Permanent)
                else Permanent(status=getattr(outcome, "status", 0), message="unexpected answer")
            )
            for item in request.items:
                self._put_back(item, "post_observations", failure, summary)
            return "failed"

    def _accepted(self, request: ReplayEngine._Request, summary: ReplaySummary) -> None:
        posted = {id(o) for o in request.observations}
        summary.counts.observations_posted += len(request.observations)
        finished = []
        for item in request.items:
            item.observations = [o for o in item.observations if id(o) not in posted]
            if not item.observations:
                finished.append(item.message)
        self.queue.delete(finished)  # one batch call for the request's messages
        summary.counts.replayed += len(finished)

    def _put_back(
        self,
        item: Pending,
        stage: Literal["resolve_profile", "post_observations"],
        failure: Failure,
        summary: ReplaySummary,
    ) -> None:
        kind: Literal["retryable", "permanent"] = (
            "permanent" if isinstance(failure, Permanent) else "retryable"
        )
        envelope = replace(item.envelope, observations=tuple(item.observations), profile_id=item.profile_id)
        self.queue.replace(
            item.message, envelope.failed_again(FailureRecord.from_outcome(stage, failure), kind, self.now())
        )
        item.observations = []
        summary.counts.failed += 1
        summary.failures.append(
            {
                "messageSid": item.envelope.message_sid,
                "stage": stage,
                "status": failure.status,
                "code": failure.code,
                "kind": kind,
            }
        )


def request_count(sizes: Sequence[int]) -> int:
    """How many requests `_pack` makes for envelopes of these observation counts."""
    requests, size = 0, 0
    for count in sizes:
        if count > MAX_OBSERVATIONS_PER_REQUEST:
            requests += (1 if size else 0) + math.ceil(count / MAX_OBSERVATIONS_PER_REQUEST)
            size = 0
        elif size + count > MAX_OBSERVATIONS_PER_REQUEST:
            requests += 1
            size = count
        else:
            size += count
    return requests + (1 if size else 0)


def eta_seconds(summary: ReplaySummary, remaining: int, elapsed: float) -> float | None:
    done = summary.counts.replayed + summary.counts.already_posted + summary.counts.failed
    if done == 0 or elapsed <= 0:
        return None
    return remaining / (done / elapsed) if remaining else 0.0


def progress_line(summary: ReplaySummary, remaining: int, elapsed: float) -> str:
    counts = summary.counts
    done = counts.replayed + counts.already_posted + counts.failed
    rate = done / elapsed if elapsed > 0 else 0.0
    eta = eta_seconds(summary, remaining, elapsed)
    eta_text = f"{math.ceil(eta)}s" if eta is not None else "?"
    return (
        f"  replayed {counts.replayed}  already-posted {counts.already_posted}  failed {counts.failed}  "
        f"left {remaining}  {rate:.1f} msg/s  ETA {eta_text}"
    )


class ReplayRequestError(ValueError):
    """The ReplayFunction's event is not one it understands; the message names the field."""


def options_from_event(event: Any, time_limit: float | None = None) -> ReplayOptions:
    """Read {"maxMessages", "dryRun", "kind", "rate", "since", "profileId", "maxFailures"}."""
    if not isinstance(event, dict):
        raise ReplayRequestError(
            'the event must be a JSON object such as {"maxMessages": 500, "dryRun": true}'
        )
    known = {"maxMessages", "dryRun", "kind", "rate", "since", "profileId", "maxFailures"}
    unknown = sorted(set(event) - known)
    if unknown:
        raise ReplayRequestError(f"unknown field(s) {unknown}; known: {sorted(known)}")

    def positive(name: str, kind: type) -> Any:
        value = event.get(name)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
            raise ReplayRequestError(f"{name} must be a number greater than 0")
        return kind(value)

    dry_run = event.get("dryRun", False)
    if not isinstance(dry_run, bool):
        raise ReplayRequestError("dryRun must be true or false")
    kind = event.get("kind", "retryable")
    if kind not in ("retryable", "permanent", "all"):
        raise ReplayRequestError("kind must be retryable, permanent or all")
    since = None
    if event.get("since") is not None:
        since = _parse_time(str(event["since"]))
        if since is None:
            raise ReplayRequestError("since must be an ISO 8601 time")
        since = since if since.tzinfo else since.replace(tzinfo=UTC)
    return ReplayOptions(
        max_messages=positive("maxMessages", int),
        rate=positive("rate", float),
        kind=kind,
        since=since,
        profile_id=event.get("profileId"),
        dry_run=dry_run,
        max_consecutive_failures=positive("maxFailures", int) or 5,
        time_limit=max(time_limit, 1.0) if time_limit is not None else None,
    )
