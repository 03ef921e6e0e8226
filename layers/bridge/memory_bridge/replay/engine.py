"""Replay parked messages from the dead-letter queue: nothing lost, nothing posted twice.

The engine works in slices that fit the queue's visibility timeout: it receives up to a slice of
messages (holding them invisible), reads their MessageSids' ledger records (memory_bridge.domain.ledger)
in one batched call, and sorts each envelope's parts:
  - parts Memory already holds are dropped (a message with nothing left is deleted: "already posted");
  - parts that may be in Memory (a crash after the 202, a timeout, a dropped connection, the
    envelope on the queue twice) are looked for with List Observations first, and never posted
    blind: if Memory cannot be asked, the message stays on the queue untouched and is reported;
  - the rest is posted, at most ten observations per request grouped by store and profile.
Before each request it writes the parts as unsure and takes a lease in the ledger (one transaction
for the request's messages); after the 202 it records them as accepted, then deletes the messages.
A crash at any point leaves either the message on the queue with its parts unsure (the next run
checks), or the parts accepted (the next run deletes). A message that fails again goes back with
its attempts raised and its new failure recorded. Malformed and filtered-out messages are reported
and left in place. The run never holds a message past its visibility timeout, never sleeps past its
time limit, and paces itself, slowing down after a 429 and recovering after successes.

The same engine serves `memory-bridge dlq replay` and the ReplayFunction.
"""

from __future__ import annotations

import math
import time
import uuid
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from memory_bridge.domain.envelope import Envelope, FailureRecord, MalformedEnvelope, parse_envelope
from memory_bridge.domain.identifiers import Identifier
from memory_bridge.domain.ledger import LedgerRecord, PartsPlan, Settlement, plan_parts
from memory_bridge.domain.observations import MAX_OBSERVATIONS_PER_REQUEST, Observation
from memory_bridge.domain.outcomes import Accepted, Failure, Moved, Outcome, Permanent, Retryable
from memory_bridge.domain.redaction import KINDS, redact_envelope, redact_observations
from memory_bridge.ports import LedgerUnavailable, QueuedMessage, QueueUnavailable
from memory_bridge.profiles import ProfileCache, resolve_profile

KindFilter = Literal["retryable", "permanent", "all"]
# How far before an envelope's first failure to look for observations Memory may already hold.
LOOKBACK = timedelta(minutes=15)
# Messages received at a time: enough to group many per profile (≤10 observations a request), few
# enough to finish (or release) well inside the visibility timeout.
SLICE_SIZE = 1000
# A request is started only with this much of the messages' hold left: its own time and the delete.
HOLD_MARGIN_SECONDS = 30.0
# Waits on the ledger table and on List Observations pages.
LEDGER_TIMEOUT_SECONDS = 5.0
# The pacer never waits longer than this between requests, however many 429s it saw.
MAX_INTERVAL_SECONDS = 5.0
# Tries of one List Observations page when Memory answers 429/5xx (honouring Retry-After).
LIST_TRIES = 3


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
    store_id: str | None = None  # post to this store, whatever store the envelope names
    # The scheduled replay's policy; None in a replay by hand.
    min_age: timedelta | None = None  # only envelopes whose last failure is at least this old
    # Failed replays after which an envelope is left for people (marked); permanent ones are left at
    # once. Setting it makes the run the scheduled kind: it never retries what people must look at.
    max_attempts: int | None = None
    max_received: int | None = None  # receive at most this many messages in all (bounds the scan)


@dataclass
class ReplayCounts:
    received: int = 0
    replayed: int = 0  # posted now and deleted
    already_posted: int = 0  # found in Memory (ledger or List Observations); deleted without posting
    failed: int = 0  # put back with attempts raised
    left: int = 0  # untouched: the run stopped first, or the hold ran out
    busy: int = 0  # another replay or webhook holds its ledger lease right now; left in place
    unchecked: int = 0  # may be in Memory and Memory could not be asked; left in place, not posted
    filtered: int = 0  # did not match --kind/--since/--profile-id; left in place
    filtered_permanent: int = 0  # of those, permanent failures that a retryable run leaves for people
    malformed: int = 0  # not an envelope this version reads; left in place
    retargeted: int = 0  # parked against another store; posted to the target store
    too_recent: int = 0  # failed less than min_age ago: left for a later run
    needs_attention: int = 0  # (max_attempts runs) permanent or given up: left in place for people
    left_for_people: int = 0  # of those, given up by this run (marked) or turned permanent by it
    redacted: int = 0  # sensitive numbers replaced in envelopes parked before redaction existed
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
    notes: list[str] = field(default_factory=list)
    reached_end: bool = False  # the run found the queue empty of what it had not seen yet

    @property
    def complete(self) -> bool:
        counts = self.counts
        return (
            not self.stopped
            and counts.failed == 0
            and counts.left == 0
            and counts.malformed == 0
            and counts.busy == 0
            and counts.unchecked == 0
        )

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
                "storeId": options.store_id,
                "maxConsecutiveFailures": options.max_consecutive_failures,
                "minAgeSeconds": options.min_age.total_seconds() if options.min_age else None,
                "maxAttempts": options.max_attempts,
                "scanLimit": options.max_received,
            },
            "counts": vars(self.counts).copy(),
            "seconds": round(self.seconds, 3),
            "stopped": self.stopped,
            "complete": self.complete,
            "reachedEnd": self.reached_end,
            "plan": self.plan,
            "malformed": self.malformed,
            "failures": self.failures[:100],
            "notes": self.notes,
        }


@dataclass(eq=False)
class Pending:
    """One parked message being replayed: the parts still to post, and those to look for first."""

    message: QueuedMessage
    envelope: Envelope
    hold_until: float  # monotonic: the message becomes visible to others again at this time
    profile_id: str | None = None
    parts: list[int] = field(default_factory=list)  # still to post, in order
    check: set[int] = field(default_factory=set)  # of `parts`: may be in Memory already
    version: int | None = None  # the ledger record's version when read (None: no record)

    @property
    def observations(self) -> list[Observation]:
        by_part = dict(zip(self.envelope.part_numbers, self.envelope.observations, strict=True))
        return [by_part[p] for p in self.parts]


class _OutOfTime(Exception):
    """The run's time limit (or the messages' hold) would pass during the next wait or call."""


def _parse_time(text: str) -> datetime | None:
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def observation_key(observation: Observation) -> tuple[str, str, str]:
    moment = _parse_time(str(observation.get("occurredAt", "")))
    when = moment.astimezone(UTC).isoformat() if moment else str(observation.get("occurredAt"))
    return str(observation.get("content")), when, str(observation.get("source"))


class Pacer:
    """Keeps requests at or under `rate` per second; slows down after a 429, recovers after successes.

    Never sleeps past `limit()` seconds from now: a wait that would is refused with _OutOfTime.
    """

    def __init__(
        self,
        rate: float | None,
        clock: Callable[[], float],
        sleep: Callable[[float], None],
        limit: Callable[[], float] = lambda: math.inf,
    ):
        self.base_interval = 1.0 / rate if rate else 0.0
        self.interval = self.base_interval
        self._clock, self._sleep, self._limit = clock, sleep, limit
        self._next = clock()

    def wait(self) -> None:
        delay = self._next - self._clock()
        if delay > 0:
            if delay > self._limit():
                raise _OutOfTime
            self._sleep(delay)
        self._next = max(self._clock(), self._next) + self.interval

    def slow_down(self, retry_after: float | None) -> None:
        self.interval = min(max(self.interval * 2, 0.1), MAX_INTERVAL_SECONDS)
        if retry_after:
            self._next = max(self._next, self._clock() + retry_after)

    def succeeded(self) -> None:
        """One success halves the extra spacing that 429s added."""
        self.interval = max(self.base_interval, (self.interval + self.base_interval) / 2)
        if self.interval - self.base_interval < 0.01:
            self.interval = self.base_interval


class ReplayEngine:
    def __init__(
        self,
        queue: ReplayQueue,
        memory: ReplayMemory,
        *,
        ledger: ReplayLedger,
        target_store: str | None = None,
        profiles: ProfileCache | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        progress: Callable[[ReplaySummary, int], None] = lambda _summary, _remaining: None,
        slice_size: int = SLICE_SIZE,
        redaction_kinds: Iterable[str] = KINDS,
    ):
        self.queue, self.memory, self.ledger = queue, memory, ledger
        self.target_store = target_store
        self.profiles = profiles or ProfileCache(ttl=3600)
        self.clock, self.wall_clock, self.sleep, self.now = clock, wall_clock, sleep, now
        self.progress = progress
        self.slice_size = slice_size
        self.redaction_kinds = frozenset(redaction_kinds)

    # ---- the run ----------------------------------------------------------------------

    def run(self, options: ReplayOptions) -> ReplaySummary:
        run = _Run(self, options)
        try:
            run.go()
        finally:
            run.finish()
        return run.summary


class _Run:
    """One replay run: its options, counts, time limit, pacer and what it holds."""

    def __init__(self, engine: ReplayEngine, options: ReplayOptions):
        self.engine, self.options = engine, options
        self.queue, self.memory, self.ledger = engine.queue, engine.memory, engine.ledger
        self.clock = engine.clock
        self.summary = ReplaySummary(options)
        self.counts = self.summary.counts
        # Profiles are resolved through this: each Lookup and create counts as a Memory request.
        self.profile_directory = _CountedDirectory(self.memory, self.counts)
        self.started = self.clock()
        self.owner = f"replay-{uuid.uuid4().hex[:12]}"
        self.target = options.store_id or engine.target_store
        self.pacer = Pacer(options.rate, self.clock, engine.sleep, self.time_left)
        self.held: list[QueuedMessage] = []  # released at the end: filtered, malformed, dry-run
        self.seen: set[str] = set()
        self.consecutive_failures = 0
        self.queue_empty = False
        self.scan_limit_reached = False
        # MessageSids left for people: a marked envelope goes back on the queue as a new message,
        # and this run may receive it again.
        self.for_people: set[str] = set()

    def time_left(self) -> float:
        if self.options.time_limit is None:
            return math.inf
        return self.options.time_limit - (self.clock() - self.started)

    def go(self) -> None:
        options = self.options
        try:
            if options.dry_run:
                pending = self.collect(options.max_messages)
                self.summary.plan = self.plan(pending)
                self.held.extend(p.message for p in pending)
                return
            taken = 0
            while not self.summary.stopped and not self.queue_empty and not self.scan_limit_reached:
                want = self.engine.slice_size
                if options.max_messages is not None:
                    want = min(want, options.max_messages - taken)
                if want <= 0:
                    break
                batch = self.collect(want)
                taken += len(batch)
                if not batch:
                    break
                self.replay_slice(batch)
        except _OutOfTime:
            self.summary.stopped = self.summary.stopped or "time limit"

    def finish(self) -> None:
        self.summary.reached_end = self.queue_empty
        if self.held:
            try:
                self.queue.release(self.held)
            except Exception:  # noqa: BLE001 - they come back by themselves when their hold ends
                self.summary.notes.append(f"{len(self.held)} message(s) could not be released early")
        self.summary.seconds = self.clock() - self.started

    # ---- receiving ----------------------------------------------------------------------

    def collect(self, limit: int | None) -> list[Pending]:
        """Receive up to `limit` envelopes that match the options (None: all there are)."""
        pending: list[Pending] = []
        visibility = self.options.visibility_timeout
        while limit is None or len(pending) < limit:
            if self.time_left() < 1.0:
                raise _OutOfTime
            want = 10 if limit is None else min(10, limit - len(pending))
            if self.options.max_received is not None:
                want = min(want, self.options.max_received - self.counts.received)
                if want <= 0:
                    self.scan_limit_reached = True
                    break
            batch = self.queue.receive(want, visibility, wait_seconds=0)
            if not batch:
                # A short poll may miss messages on some SQS servers: ask the count, then long-poll once.
                if self.queue.visible_count() == 0:
                    self.queue_empty = True
                    break
                batch = self.queue.receive(want, visibility, wait_seconds=1)
                if not batch:
                    self.queue_empty = True
                    break
            hold_until = self.clock() + visibility
            for message in batch:
                if message.message_id in self.seen:
                    continue  # came back after a release; already counted
                self.seen.add(message.message_id)
                item = self.accept(message, hold_until)
                if item is not None:
                    pending.append(item)
        return pending

    def accept(self, message: QueuedMessage, hold_until: float) -> Pending | None:
        self.counts.received += 1
        try:
            envelope = parse_envelope(message.body)
        except MalformedEnvelope as error:
            self.counts.malformed += 1
            self.summary.malformed.append({"messageId": message.message_id, "reason": str(error)})
            self.held.append(message)
            return None
        # Envelopes parked before redaction existed go through the same step as the webhook's.
        envelope, found = redact_envelope(envelope, self.engine.redaction_kinds)
        self.counts.redacted += sum(found.values())
        if self.options.max_attempts is not None and self.hand_over(message, envelope):
            return None
        if not self.matches(envelope):
            self.counts.filtered += 1
            if envelope.kind == "permanent" and self.options.kind == "retryable":
                self.counts.filtered_permanent += 1
            self.held.append(message)
            return None
        if self.too_recent(envelope):
            self.counts.too_recent += 1
            self.held.append(message)
            return None
        if self.target and envelope.store_id != self.target:
            if envelope.identifier is None:
                self.counts.left += 1
                self.summary.failures.append(
                    _failure_row(
                        envelope, "retarget", None, None, "no identifier to resolve in the new store"
                    )
                )
                self.held.append(message)
                return None
            # A profile id belongs to its store: resolve the author again in the target store.
            envelope = replace(envelope, store_id=self.target, profile_id=None)
            self.counts.retargeted += 1
        return Pending(message, envelope, hold_until, envelope.profile_id, list(envelope.part_numbers))

    def hand_over(self, message: QueuedMessage, envelope: Envelope) -> bool:
        """The scheduled policy: permanent and given-up envelopes stay for people; one whose failed
        replays reached max_attempts without being marked (a replay by hand failed, or the limit was
        lowered) is marked now. True when the envelope is not this run's to replay."""
        assert self.options.max_attempts is not None
        if envelope.kind == "retryable" and not envelope.needs_attention:
            if envelope.failed_replays < self.options.max_attempts:
                return False
            if not self.options.dry_run:
                try:
                    self.queue.replace(message, envelope.left_for_people(self.engine.now()))
                except QueueUnavailable:
                    self.held.append(message)  # unmarked for now; the next run marks it
                self.counts.left_for_people += 1
                self.needs_people(envelope)
                return True
        self.needs_people(envelope)
        self.held.append(message)
        return True

    def needs_people(self, envelope: Envelope) -> None:
        self.for_people.add(envelope.message_sid)
        self.counts.needs_attention = len(self.for_people)

    def too_recent(self, envelope: Envelope) -> bool:
        """Failed less than min_age ago: Memory gets that long to recover before it is tried again."""
        if self.options.min_age is None:
            return False
        failed_at = _parse_time(envelope.last_failed_at or envelope.first_failed_at)
        return failed_at is not None and self.engine.now() - failed_at < self.options.min_age

    def matches(self, envelope: Envelope) -> bool:
        options = self.options
        if options.kind != "all" and envelope.kind != options.kind:
            return False
        if options.profile_id and not self.same_customer(envelope, options.profile_id):
            return False
        if options.since:
            failed_at = _parse_time(envelope.last_failed_at or envelope.first_failed_at)
            if failed_at is None or failed_at < options.since:
                return False
        return True

    def same_customer(self, envelope: Envelope, profile_id: str) -> bool:
        """Parked with that profile, or its author resolves to it now (unresolved, or since merged)."""
        if envelope.profile_id == profile_id:
            return True
        if envelope.identifier is None:
            return False
        resolved = self.engine.profiles.get(envelope.identifier)
        if resolved is None:
            self.pacer.wait()
            found = resolve_profile(
                self.profile_directory,
                envelope.store_id,
                envelope.identifier,
                envelope.trait_group,
            )
            if not isinstance(found, str):
                return False
            self.engine.profiles.put(envelope.identifier, found)
            resolved = found
        return resolved == profile_id

    # ---- the dry run ----------------------------------------------------------------------

    def plan(self, pending: list[Pending]) -> list[dict[str, Any]]:
        records = self.read_ledger(pending, dry_run=True)
        # One group per profile, or per author still to resolve (one Lookup each, as the run makes).
        groups: OrderedDict[tuple[str, str, Identifier | None], list[Pending]] = OrderedDict()
        planned: set[str] = set()
        twins = 0
        for item in pending:
            self.sort_parts(item, records.get(item.envelope.message_sid))
            if not item.parts:
                continue
            if item.envelope.message_sid in planned:
                # The same message on the queue twice (SQS delivers at least once; a send retried
                # after a lost answer): the run posts it once and deletes the copy.
                twins += 1
                continue
            planned.add(item.envelope.message_sid)
            identifier = None if item.profile_id else item.envelope.identifier
            who = item.profile_id or (f"unresolved {identifier.id_type}" if identifier else "unresolved")
            groups.setdefault((item.envelope.store_id, who, identifier), []).append(item)
        plan = []
        for (store_id, who, identifier), items in groups.items():
            checks = 1 if any(i.check for i in items) else 0
            lookups = 1 if identifier is not None else 0
            plan.append(
                {
                    "storeId": store_id,
                    "profile": who,
                    "messages": len(items),
                    "observations": sum(len(i.parts) for i in items),
                    # A Lookup for an author not yet resolved (one more to create a profile not found),
                    # List Observations where Memory may hold some already, then the posts.
                    "requests": request_count([len(i.parts) for i in items]) + checks + lookups,
                    "checks": checks,
                    "lookups": lookups,
                    "messageSids": [i.envelope.message_sid for i in items],
                    "ambiguous": sum(1 for i in items if i.check),
                }
            )
        if twins:
            self.summary.notes.append(f"{twins} copy(ies) of a message already counted: deleted, not posted")
        return plan

    # ---- one slice ------------------------------------------------------------------------

    def read_ledger(self, items: list[Pending], dry_run: bool = False) -> dict[str, LedgerRecord]:
        try:
            return self.ledger.read_many(
                [i.envelope.message_sid for i in items], timeout=min(LEDGER_TIMEOUT_SECONDS, self.time_left())
            )
        except LedgerUnavailable as error:
            if dry_run:
                self.summary.notes.append(f"ledger not read ({error}); counts assume nothing was posted")
                return {}
            raise

    def sort_parts(self, item: Pending, record: LedgerRecord | None) -> None:
        envelope = item.envelope
        item.version = record.version if record else None
        if record is not None and envelope.parts is None:
            # Parked before the ledger: its parts cannot be matched by number, so look for them all.
            plan = PartsPlan(check=envelope.part_numbers)
        else:
            # With a record, the ledger knows best; without one, the envelope's own flag says.
            plan = plan_parts(
                envelope.part_numbers, record, ambiguous=record is None and envelope.failure.ambiguous
            )
        item.parts = sorted([*plan.check, *plan.post])
        item.check = set(plan.check)

    def replay_slice(self, items: list[Pending]) -> None:
        # Twins (one MessageSid on the queue twice) go in later rounds, after the ledger knows more.
        rounds: list[list[Pending]] = []
        for item in items:
            seen = sum(1 for r in rounds for i in r if i.envelope.message_sid == item.envelope.message_sid)
            while len(rounds) <= seen:
                rounds.append([])
            rounds[seen].append(item)
        for index, round_items in enumerate(rounds):
            if self.summary.stopped:
                self.leave(round_items)
                for later in rounds[index + 1 :]:
                    self.leave(later)
                return
            self.replay_round(round_items)

    def replay_round(self, items: list[Pending]) -> None:
        try:
            records = self.read_ledger(items)
        except LedgerUnavailable as error:
            self.summary.stopped = f"ledger unavailable ({error})"
            self.leave(items)
            return
        live: list[Pending] = []
        now = self.engine.wall_clock()
        for item in items:
            record = records.get(item.envelope.message_sid)
            if record is not None and record.leased_to_another(self.owner, now):
                self.counts.busy += 1
                self.held.append(item.message)
                continue
            self.sort_parts(item, record)
            if not item.parts:
                self.delete([item], already_posted=True)
                continue
            live.append(item)
        self.resolve(live)
        groups: OrderedDict[tuple[str, str], list[Pending]] = OrderedDict()
        for item in live:
            if item.profile_id is not None:
                groups.setdefault((item.envelope.store_id, item.profile_id), []).append(item)
        for (store_id, profile_id), group in groups.items():
            if self.summary.stopped:
                self.leave(group)
                continue
            fresh = self.drop_already_posted(store_id, profile_id, group)
            self.post_group(store_id, fresh)

    # ---- steps --------------------------------------------------------------------------

    def resolve(self, items: list[Pending]) -> None:
        """Resolve authors the webhook could not (or that a retarget reset); failures go back."""
        for item in items:
            if item.profile_id is not None:
                continue
            if self.summary.stopped:
                self.leave([item])
                continue
            resolved = self.resolve_one(item)
            if isinstance(resolved, Retryable | Permanent):
                self.put_back(item, "resolve_profile", resolved)
                self.failed_once()
            else:
                self.consecutive_failures = 0

    def resolve_one(self, item: Pending, fresh: bool = False) -> str | Failure:
        identifier = item.envelope.identifier
        assert identifier is not None
        cached = None if fresh else self.engine.profiles.get(identifier)
        if cached:
            item.profile_id = cached
            return cached
        self.pacer.wait()
        resolved = resolve_profile(
            self.profile_directory,
            item.envelope.store_id,
            identifier,
            item.envelope.trait_group,
        )
        if isinstance(resolved, str):
            self.engine.profiles.put(identifier, resolved)
            item.profile_id = resolved
        return resolved

    def drop_already_posted(self, store_id: str, profile_id: str, items: list[Pending]) -> list[Pending]:
        """Look in Memory for the parts that may be there; keep only what is not. Never post blind."""
        suspect = [i for i in items if i.check]
        if not suspect:
            return items
        failed_at = [t for t in (_parse_time(i.envelope.first_failed_at) for i in suspect) if t is not None]
        earliest = min(failed_at) if failed_at else None
        existing = self.existing_keys(store_id, profile_id, (earliest - LOOKBACK) if earliest else None)
        if existing is None:
            # Memory could not be asked: these stay on the queue untouched, to be checked next time.
            for item in suspect:
                self.counts.unchecked += 1
                self.held.append(item.message)
                self.summary.failures.append(
                    _failure_row(item.envelope, "check", None, None, "Memory could not be asked; left")
                )
            return [i for i in items if not i.check]
        fresh = []
        settlements: list[tuple[Pending, Settlement]] = []
        for item in items:
            found = []
            for part, observation in zip(item.parts, item.observations, strict=True):
                key = observation_key(observation)
                if part in item.check and existing[key] > 0:
                    existing[key] -= 1  # one copy in Memory answers for one part, not for its twin
                    found.append(part)
            if found:
                item.parts = [p for p in item.parts if p not in found]
                settlements.append(
                    (
                        item,
                        Settlement(
                            item.envelope.message_sid, accepted=frozenset(found), cleared=frozenset(found)
                        ),
                    )
                )
            item.check = set()
            if not item.parts:
                self.delete([item], already_posted=True)
                continue
            fresh.append(item)
        self.settle(settlements)
        return fresh

    def existing_keys(
        self, store_id: str, profile_id: str, created_after: datetime | None
    ) -> Counter[tuple[str, str, str]] | None:
        """What Memory holds for the profile (as a multiset), or None when it cannot be asked."""
        keys: Counter[tuple[str, str, str]] = Counter()
        token: str | None = None
        after = created_after.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if created_after else None
        followed = False
        for _ in range(200):  # ≤ 10,000 observations; Memory keeps at most 500 per profile
            answer = self.list_page(store_id, profile_id, token, after)
            if isinstance(answer, Moved) and answer.canonical_profile_id and not followed:
                followed, profile_id, token = True, answer.canonical_profile_id, None
                keys.clear()
                continue
            if not isinstance(answer, Accepted):
                return None
            page = answer.body if isinstance(answer.body, dict) else {}
            held = [o for o in page.get("observations") or [] if isinstance(o, dict)]
            # Compared as the envelope now reads: an old envelope was redacted on receipt, and what
            # Memory took from it before may still hold the original.
            held_as_redacted, _ = redact_observations(held, self.engine.redaction_kinds)
            keys.update(observation_key(o) for o in held_as_redacted)
            token = (page.get("meta") or {}).get("nextToken")
            if not token:
                return keys
        return None

    def list_page(self, store_id: str, profile_id: str, token: str | None, after: str | None) -> Outcome:
        answer: Outcome = Retryable(status=None)
        for _ in range(LIST_TRIES):
            self.pacer.wait()
            self.counts.requests += 1
            answer = self.memory.list_observations(
                store_id, profile_id, page_size=50, page_token=token, created_after=after
            )
            if not isinstance(answer, Retryable):
                return answer
            self.pacer.slow_down(answer.retry_after if answer.retry_after is not None else 1.0)
        return answer

    # ---- posting --------------------------------------------------------------------------

    @dataclass
    class _Request:
        items: list[Pending]
        parts: list[list[int]]  # per item: the parts this request carries

        @property
        def observations(self) -> list[Observation]:
            out: list[Observation] = []
            for item, parts in zip(self.items, self.parts, strict=True):
                by_part = dict(zip(item.envelope.part_numbers, item.envelope.observations, strict=True))
                out.extend(by_part[p] for p in parts)
            return out

    def pack(self, items: Iterable[Pending]) -> Iterable[_Run._Request]:
        """Greedy: whole envelopes together up to ten observations; a larger envelope alone, in chunks."""
        batch: list[Pending] = []
        size = 0
        for item in items:
            count = len(item.parts)
            if count > MAX_OBSERVATIONS_PER_REQUEST:
                if batch:
                    yield self._Request(batch, [list(i.parts) for i in batch])
                    batch, size = [], 0
                # Accepted chunks leave item.parts; a failure or a stop empties it, ending the loop.
                while item.parts:
                    yield self._Request([item], [item.parts[:MAX_OBSERVATIONS_PER_REQUEST]])
                continue
            if size + count > MAX_OBSERVATIONS_PER_REQUEST:
                yield self._Request(batch, [list(i.parts) for i in batch])
                batch, size = [], 0
            batch.append(item)
            size += count
        if batch:
            yield self._Request(batch, [list(i.parts) for i in batch])

    def post_group(self, store_id: str, items: list[Pending]) -> None:
        remaining = list(items)
        for request in self.pack(items):
            if self.summary.stopped:
                break
            if self.time_left() < 1.0:
                self.summary.stopped = "time limit"
                break
            hold_left = min(i.hold_until for i in request.items) - self.clock()
            if hold_left < HOLD_MARGIN_SECONDS:
                # The messages would become visible to others mid-request: let them go, whole,
                # and receive them again in a later slice.
                for item in request.items:
                    if item in remaining:
                        remaining.remove(item)
                        self.leave([item])
                continue
            request = self.claim(request)
            if not request.items:
                continue
            result = self.post(store_id, request)
            for item in request.items:
                if item in remaining and not item.parts:
                    remaining.remove(item)
            self.engine.progress(self.summary, len(remaining))
            if result == "stop" or self.consecutive_failures >= self.options.max_consecutive_failures:
                self.summary.stopped = (
                    self.summary.stopped or f"{self.consecutive_failures} consecutive failures"
                )
                break
        self.leave(remaining)

    def claim(self, request: _Run._Request) -> _Run._Request:
        """Write the request's parts as unsure and take their leases; drop what changed under us."""
        wall = self.engine.wall_clock()
        hold_left = min(i.hold_until for i in request.items) - self.clock()
        claims = [
            (i.envelope.message_sid, i.version, parts)
            for i, parts in zip(request.items, request.parts, strict=True)
        ]
        try:
            claimed = self.ledger.claim_many(
                claims,
                owner=self.owner,
                # Ends a little before the messages reappear, so whoever receives them next may proceed.
                lease_until=wall + hold_left - 10,
                now=wall,
                timeout=min(LEDGER_TIMEOUT_SECONDS, self.time_left()),
            )
        except LedgerUnavailable as error:
            self.summary.stopped = f"ledger unavailable ({error})"
            return self._Request([], [])
        kept = self._Request([], [])
        for item, parts in zip(request.items, request.parts, strict=True):
            if item.envelope.message_sid not in claimed:
                # Another run or a webhook moved it since we read it: leave it for the next run.
                self.counts.busy += 1
                self.held.append(item.message)
                item.parts = []
                continue
            item.version = claimed[item.envelope.message_sid]
            kept.items.append(item)
            kept.parts.append(parts)
        return kept

    def post(self, store_id: str, request: _Run._Request) -> Literal["done", "failed", "stop"]:
        profile_id = request.items[0].profile_id
        assert profile_id is not None
        followed = reresolved = False
        throttled = 0
        while True:
            self.pacer.wait()
            self.counts.requests += 1
            outcome = self.memory.create_observations(store_id, profile_id, request.observations)
            if isinstance(outcome, Accepted):
                self.pacer.succeeded()
                self.consecutive_failures = 0
                self.accepted(request)
                return "done"
            if isinstance(outcome, Moved) and outcome.canonical_profile_id and not followed:
                followed, profile_id = True, outcome.canonical_profile_id
                for item in request.items:
                    item.profile_id = profile_id
                continue
            if _vanished(outcome) and not reresolved and request.items[0].envelope.identifier:
                # The profile is gone (deleted, or never existed in this store): resolve the author again.
                reresolved = True
                resolved = self.resolve_one(request.items[0], fresh=True)
                if isinstance(resolved, str):
                    profile_id = resolved
                    for item in request.items:
                        item.profile_id = profile_id
                    continue
                outcome = resolved
            if isinstance(outcome, Retryable) and outcome.status == 429:
                throttled += 1
                self.pacer.slow_down(outcome.retry_after)
                if throttled < self.options.max_consecutive_failures:
                    continue  # honour Retry-After and try the same request again, slower
                self.settle(
                    [
                        (i, Settlement(i.envelope.message_sid, cleared=frozenset(p), owner=self.owner))
                        for i, p in _pairs(request)
                    ]
                )
                self.leave(request.items)
                return "stop"  # leave it untouched: Memory is shedding load
            failure = (
                outcome
                if isinstance(outcome, Retryable | Permanent)
                else Permanent(status=getattr(outcome, "status", 0), message="unexpected answer")
            )
            # Give up the lease either way; parts the request may have delivered stay unsure.
            doubtful = isinstance(failure, Retryable) and failure.ambiguous
            self.settle(
                [
                    (
                        i,
                        Settlement(
                            i.envelope.message_sid,
                            cleared=frozenset() if doubtful else frozenset(p),
                            owner=self.owner,
                        ),
                    )
                    for i, p in _pairs(request)
                ]
            )
            for item in request.items:
                self.put_back(item, "post_observations", failure)
            self.failed_once()
            return "failed"

    def accepted(self, request: _Run._Request) -> None:
        self.counts.observations_posted += sum(len(p) for p in request.parts)
        self.settle(
            [
                (
                    i,
                    Settlement(
                        i.envelope.message_sid, accepted=frozenset(p), cleared=frozenset(p), owner=self.owner
                    ),
                )
                for i, p in _pairs(request)
            ]
        )
        finished = []
        for item, parts in _pairs(request):
            item.parts = [p for p in item.parts if p not in parts]
            if not item.parts:
                finished.append(item)
        self.delete(finished)

    # ---- bookkeeping ----------------------------------------------------------------------

    def settle(self, settled: list[tuple[Pending, Settlement]]) -> None:
        if not settled:
            return
        try:
            versions = self.ledger.settle_many(
                [s for _, s in settled], timeout=min(LEDGER_TIMEOUT_SECONDS, max(self.time_left(), 1.0))
            )
        except LedgerUnavailable as error:
            # The parts stay "unsure" in the ledger: a later run looks in Memory before posting. The
            # versions we hold are now stale, so a later claim of ours fails and leaves the message.
            self.summary.notes.append(f"ledger not updated after a request ({error})")
            return
        # Each settle raised the record's version: a later claim of ours (the next chunk of a long
        # message) is conditional on it, so keep ours in step.
        for item, settlement in settled:
            item.version = versions.get(settlement.message_sid, item.version)

    def delete(self, items: list[Pending], already_posted: bool = False) -> None:
        if not items:
            return
        try:
            self.queue.delete([i.message for i in items])
        except QueueUnavailable as error:
            # They come back after their hold; the ledger then says they are in Memory.
            self.summary.notes.append(
                f"{len(items)} message(s) not deleted ({error}); a later run drops them"
            )
        if already_posted:
            self.counts.already_posted += len(items)
        else:
            self.counts.replayed += len(items)

    def leave(self, items: list[Pending]) -> None:
        """Put back untouched what this run will not finish (only the rest, if part was accepted)."""
        for item in items:
            if not item.parts:
                continue
            self.counts.left += 1
            if (
                set(item.parts) != set(item.envelope.part_numbers)
                or item.profile_id != item.envelope.profile_id
            ):
                rest = replace(item.envelope.with_parts(set(item.parts)), profile_id=item.profile_id)
                try:
                    self.queue.replace(item.message, rest)
                except QueueUnavailable:
                    self.held.append(item.message)  # whole, as it was: the ledger covers what was posted
            else:
                self.held.append(item.message)
            item.parts = []

    def failed_once(self) -> None:
        self.consecutive_failures += 1
        if self.consecutive_failures >= self.options.max_consecutive_failures:
            self.summary.stopped = f"{self.consecutive_failures} consecutive failures"

    def put_back(
        self, item: Pending, stage: Literal["resolve_profile", "post_observations", "check"], failure: Failure
    ) -> None:
        kind: Literal["retryable", "permanent"] = (
            "permanent" if isinstance(failure, Permanent) else "retryable"
        )
        rest = replace(item.envelope.with_parts(set(item.parts)), profile_id=item.profile_id)
        record_stage: Literal["resolve_profile", "post_observations"] = (
            "resolve_profile" if stage == "resolve_profile" else "post_observations"
        )
        again = rest.failed_again(FailureRecord.from_outcome(record_stage, failure), kind, self.engine.now())
        if self.options.max_attempts is not None:
            if kind == "permanent":
                self.counts.left_for_people += 1
                self.needs_people(again)
            elif again.failed_replays >= self.options.max_attempts:
                again = again.left_for_people(self.engine.now())
                self.counts.left_for_people += 1
                self.needs_people(again)
        try:
            self.queue.replace(item.message, again)
        except QueueUnavailable:
            self.held.append(item.message)
        item.parts = []
        self.counts.failed += 1
        self.summary.failures.append(_failure_row(item.envelope, stage, failure.status, failure.code, kind))


def _pairs(request: _Run._Request) -> list[tuple[Pending, list[int]]]:
    return list(zip(request.items, request.parts, strict=True))


def _vanished(outcome: Outcome) -> bool:
    return isinstance(outcome, Permanent) and outcome.status == 404 and outcome.code == 20404


def _failure_row(
    envelope: Envelope, stage: str, status: int | None, code: int | None, what: str
) -> dict[str, Any]:
    return {"messageSid": envelope.message_sid, "stage": stage, "status": status, "code": code, "kind": what}


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


@dataclass
class _CountedDirectory:
    """Resolving a profile is a Lookup, and a create when none matches: each one counts as a request."""

    memory: Any
    counts: ReplayCounts

    def lookup_profiles(self, store_id: str, identifier: Identifier, timeout: float | None = None) -> Outcome:
        self.counts.requests += 1
        outcome: Outcome = self.memory.lookup_profiles(store_id, identifier, timeout=timeout)
        return outcome

    def create_profile(
        self, store_id: str, trait_group: str, identifier: Identifier, timeout: float | None = None
    ) -> Outcome:
        self.counts.requests += 1
        outcome: Outcome = self.memory.create_profile(store_id, trait_group, identifier, timeout=timeout)
        return outcome


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
    """Read {"maxMessages", "dryRun", "kind", "rate", "since", "profileId", "maxFailures", "storeId"}
    and the scheduled replay's {"minAgeSeconds", "maxAttempts", "scanLimit"} (template.yaml)."""
    if not isinstance(event, dict):
        raise ReplayRequestError(
            'the event must be a JSON object such as {"maxMessages": 500, "dryRun": true}'
        )
    known = {
        "maxMessages",
        "dryRun",
        "kind",
        "rate",
        "since",
        "profileId",
        "maxFailures",
        "storeId",
        "minAgeSeconds",
        "maxAttempts",
        "scanLimit",
    }
    unknown = sorted(set(event) - known)
    if unknown:
        raise ReplayRequestError(f"unknown field(s) {unknown}; known: {sorted(known)}")

    def positive(name: str, kind: type, zero_allowed: bool = False) -> Any:
        value = event.get(name)
        if value is None:
            return None
        least = "0 or more" if zero_allowed else "greater than 0"
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            raise ReplayRequestError(f"{name} must be a number {least}")
        if value == 0 and not zero_allowed:
            raise ReplayRequestError(f"{name} must be a number {least}")
        return kind(value)

    store_id = event.get("storeId")
    if store_id is not None and not isinstance(store_id, str):
        raise ReplayRequestError("storeId must be a mem_store_… id")
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
    min_age = positive("minAgeSeconds", float, zero_allowed=True)
    return ReplayOptions(
        max_messages=positive("maxMessages", int),
        rate=positive("rate", float),
        kind=kind,
        since=since,
        profile_id=event.get("profileId"),
        dry_run=dry_run,
        max_consecutive_failures=positive("maxFailures", int) or 5,
        time_limit=max(time_limit, 1.0) if time_limit is not None else None,
        store_id=store_id,
        min_age=timedelta(seconds=min_age) if min_age is not None else None,
        max_attempts=positive("maxAttempts", int),
        max_received=positive("scanLimit", int),
    )


def replay_metrics(summary: ReplaySummary) -> dict[str, int]:
    """What a ReplayFunction run reports to CloudWatch (the dashboard and the alarms read these).

    DeadLettersNeedingAttention is a gauge, and only a scheduled run (max_attempts set) knows it. A
    run that stopped before the end of the queue saw only part of it: its count is reported when it
    found some (there are at least that many) and withheld when it found none (that proves nothing),
    so that the alarm keeps its state rather than clearing on a partial look.
    """
    if summary.options.dry_run:
        return {}
    counts = summary.counts
    figures = {
        "ReplayPosted": counts.replayed,
        "ReplayAlreadyPosted": counts.already_posted,
        "ReplayFailedAgain": counts.failed,
        "ReplayLeftForPeople": counts.left_for_people,
    }
    if summary.options.max_attempts is not None:
        needing = counts.needs_attention + counts.malformed
        if needing or summary.reached_end:
            figures["DeadLettersNeedingAttention"] = needing
    return figures
