"""Resolving authors to profiles during a replay: cached, paced, and each Memory call counted."""

from __future__ import annotations

from dataclasses import dataclass

from memory_bridge.domain.identifiers import Identifier
from memory_bridge.domain.outcomes import Failure, Outcome
from memory_bridge.ports import ProfileDirectory
from memory_bridge.profiles import lookup_profile, resolve_profile
from memory_bridge.replay.books import Books
from memory_bridge.replay.context import RunContext
from memory_bridge.replay.pending import Pending
from memory_bridge.replay.summary import ReplayCounts


@dataclass
class CountedDirectory:
    """Resolving a profile is a Lookup, and a create when none matches: each one counts as a request."""

    memory: ProfileDirectory
    counts: ReplayCounts

    def lookup_profiles(self, store_id: str, identifier: Identifier, timeout: float | None = None) -> Outcome:
        self.counts.requests += 1
        return self.memory.lookup_profiles(store_id, identifier, timeout=timeout)

    def create_profile(
        self, store_id: str, trait_group: str, identifier: Identifier, timeout: float | None = None
    ) -> Outcome:
        self.counts.requests += 1
        return self.memory.create_profile(store_id, trait_group, identifier, timeout=timeout)


class Resolver:
    def __init__(self, run: RunContext, memory: ProfileDirectory):
        self.run = run
        # Built once per run: every Lookup and create it makes counts as a Memory request.
        self.directory = CountedDirectory(memory, run.counts)

    def profile_for(
        self, store_id: str, identifier: Identifier, trait_group: str, fresh: bool = False
    ) -> str | Failure:
        """The author's profile id: from the cache, else Lookup (and create when none matches)."""
        profiles = self.run.profiles
        cached = None if fresh else profiles.get(identifier)
        if cached:
            return cached
        self.run.pacer.wait()
        resolved = resolve_profile(self.directory, store_id, identifier, trait_group)
        if isinstance(resolved, str):
            profiles.put(identifier, resolved)
        return resolved

    def existing_profile(self, store_id: str, identifier: Identifier) -> str | None:
        """The author's profile if Memory has one (cached, else a Lookup); never creates one, so
        that filtering by profile (and the dry run) changes nothing in Memory."""
        cached = self.run.profiles.get(identifier)
        if cached:
            return cached
        self.run.pacer.wait()
        found = lookup_profile(self.directory, store_id, identifier)
        if isinstance(found, str):
            self.run.profiles.put(identifier, found)
            return found
        return None

    def resolve_one(self, item: Pending, fresh: bool = False) -> str | Failure:
        identifier = item.envelope.identifier
        assert identifier is not None
        resolved = self.profile_for(
            item.envelope.store_id, identifier, item.envelope.trait_group, fresh=fresh
        )
        if isinstance(resolved, str):
            item.profile_id = resolved
        return resolved

    def resolve_all(self, items: list[Pending], books: Books) -> None:
        """Resolve authors the webhook could not (or that a retarget reset); failures go back."""
        run = self.run
        for item in items:
            if item.profile_id is not None:
                continue
            if run.stopped:
                books.leave([item])
                continue
            resolved = self.resolve_one(item)
            if isinstance(resolved, str):
                run.succeeded()
            else:
                books.put_back(item, "resolve_profile", resolved)
                run.failed_once()
