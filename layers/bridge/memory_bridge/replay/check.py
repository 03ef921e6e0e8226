"""Looking in Memory before posting what may be there already. Never post blind.

Parts the ledger holds as unsure (a crash after the 202, a timeout, a dropped connection, the
envelope on the queue twice) are looked for with List Observations, from a little before the
envelope's first failure. What Memory holds is recorded as accepted and not posted again; if Memory
cannot be asked, the message stays on the queue untouched and is reported.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

from memory_bridge.domain.observations import observation_key
from memory_bridge.domain.outcomes import Accepted, Moved, Outcome, Retryable
from memory_bridge.domain.redaction import redact_observations
from memory_bridge.ports import ReplayMemory
from memory_bridge.replay.books import Books
from memory_bridge.replay.context import RunContext
from memory_bridge.replay.options import parse_time
from memory_bridge.replay.pending import Pending
from memory_bridge.replay.summary import failure_row

# How far before an envelope's first failure to look for observations Memory may already hold.
LOOKBACK = timedelta(minutes=15)
# Tries of one List Observations page when Memory answers 429/5xx (honouring Retry-After).
LIST_TRIES = 3
# Pages read at most: 10,000 observations (Memory keeps at most 500 per profile).
MAX_PAGES = 200

Keys = Counter[tuple[str, str, str]]


class MemoryCheck:
    def __init__(self, run: RunContext, memory: ReplayMemory, books: Books):
        self.run, self.memory, self.books = run, memory, books

    def drop_already_posted(self, store_id: str, profile_id: str, items: list[Pending]) -> list[Pending]:
        """Look in Memory for the parts that may be there; return the items with what is not."""
        suspect = [i for i in items if i.check]
        if not suspect:
            return items
        failed_at = [t for t in (parse_time(i.envelope.first_failed_at) for i in suspect) if t is not None]
        earliest = min(failed_at) if failed_at else None
        existing = self.existing_keys(store_id, profile_id, (earliest - LOOKBACK) if earliest else None)
        if existing is None:
            # Memory could not be asked: these stay on the queue untouched, to be checked next time.
            for item in suspect:
                self.run.counts.unchecked += 1
                self.run.hold(item.message)
                self.run.summary.failures.append(
                    failure_row(item.envelope, "check", None, None, "Memory could not be asked; left")
                )
            return [i for i in items if not i.check]
        found = [(item, _found_parts(item, existing)) for item in items]
        for item, parts in found:
            item.parts = [p for p in item.parts if p not in parts]
            item.check = set()
        self.books.found_in_memory(found)
        self.books.delete([item for item in items if not item.parts], already_posted=True)
        return [item for item in items if item.parts]

    def existing_keys(self, store_id: str, profile_id: str, created_after: datetime | None) -> Keys | None:
        """What Memory holds for the profile (as a multiset), or None when it cannot be asked."""
        keys: Keys = Counter()
        token: str | None = None
        after = created_after.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if created_after else None
        followed = False
        for _ in range(MAX_PAGES):
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
            held_as_redacted, _ = redact_observations(held, self.run.redaction_kinds)
            keys.update(observation_key(o) for o in held_as_redacted)
            token = (page.get("meta") or {}).get("nextToken")
            if not token:
                return keys
        return None

    def list_page(self, store_id: str, profile_id: str, token: str | None, after: str | None) -> Outcome:
        run = self.run
        answer: Outcome = Retryable(status=None)
        for _ in range(LIST_TRIES):
            run.pacer.wait()
            run.counts.requests += 1
            answer = self.memory.list_observations(
                store_id, profile_id, page_size=50, page_token=token, created_after=after
            )
            if not isinstance(answer, Retryable):
                return answer
            run.pacer.slow_down(answer.retry_after if answer.retry_after is not None else 1.0)
        return answer


def _found_parts(item: Pending, existing: Keys) -> list[int]:
    """The item's parts to look for that Memory holds; one copy answers for one part, not its twin."""
    found = []
    for part, observation in zip(item.parts, item.observations, strict=True):
        key = observation_key(observation)
        if part in item.check and existing[key] > 0:
            existing[key] -= 1
            found.append(part)
    return found
