"""An edit's steps 3 and 4 (webhook/edits.py): find the parts Memory holds, change them in place."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from memory_bridge.deadlines import Deadline
from memory_bridge.domain.ledger import LedgerRecord
from memory_bridge.domain.observations import Observation
from memory_bridge.domain.outcomes import Accepted, observation_gone
from memory_bridge.ports import (
    ObservationEditor,
    ObservationWriter,
)
from memory_bridge.profiles import ProfileCache
from memory_bridge.webhook.delivery import (
    Delivery,
    DeliveryRules,
    Prepared,
)
from memory_bridge.webhook.finding import (
    Unfinished,
    find_parts,
    missing_is_gone,
    profile_of,
    said,
    search_for,
    time_for_call,
)


@dataclass
class Change:
    """What one edit did and learnt, part by part."""

    observations: tuple[Observation, ...]  # the new words
    ids: dict[int, str] = field(default_factory=dict)  # parts changed in place, by observation id
    deleted: list[int] = field(default_factory=list)  # parts the edit no longer has: deleted
    dropped: list[int] = field(default_factory=list)  # Memory dropped them: never brought back
    post: list[int] = field(default_factory=list)  # parts Memory does not hold: posted anew
    delivery: Delivery | None = None
    profile_id: str | None = None  # where the parts it changed or deleted are

    @property
    def gone(self) -> list[int]:
        """Parts Memory no longer holds: the ledger forgets them."""
        return sorted({*self.deleted, *self.dropped})


@dataclass
class Editor:
    """Steps 3 and 4: find the parts in Memory and change them in place."""

    rules: DeliveryRules
    memory: ObservationWriter
    editor: ObservationEditor
    profiles: ProfileCache
    now: Callable[[], datetime] = lambda: datetime.now(UTC)

    def change(
        self, shape: Prepared, new: tuple[Observation, ...], record: LedgerRecord | None, deadline: Deadline
    ) -> Change:
        change = Change(new)
        held = sorted(record.maybe_in_memory) if record else []
        if record is not None and any(p not in record.keys and p not in record.ids for p in record.in_doubt):
            raise Unfinished("a part is in doubt: the replay looks in Memory first")
        if record is not None and held:
            self._rewrite(change, shape, record, held, deadline)
        change.post = [p for p in range(len(new)) if p not in change.ids and p not in change.dropped]
        return change

    def _rewrite(
        self, change: Change, shape: Prepared, record: LedgerRecord, held: list[int], deadline: Deadline
    ) -> None:
        store = self.rules.store_id
        profile_id = profile_of(shape.who, self.profiles, self.memory, store)
        if profile_id is None:
            change.dropped.extend(held)  # no profile (erased): nothing to change, nothing to bring back
            return
        change.profile_id = profile_id
        search = search_for(
            set(held), change.observations or shape.observations, record.keys, record.ids, record.pending
        )
        search.first = shape.observations[0]
        found = find_parts(self.editor, store, profile_id, search, deadline)
        for part in held:
            oid = found.get(part)
            if oid is None:
                if part in record.accepted and not missing_is_gone(record, search.first, self.now):
                    raise Unfinished("a part Memory took is not listed yet")
                if part in record.accepted or part >= len(change.observations):
                    change.dropped.append(part)  # Memory dropped it (past its 500, reconciled)
                # else: a post in doubt that never landed, posted anew below
            elif part < len(change.observations):
                self._patch(change, store, profile_id, part, oid, deadline)
            else:
                self._delete(change, store, profile_id, part, oid, deadline)

    def _patch(
        self, change: Change, store: str, profile_id: str, part: int, oid: str, deadline: Deadline
    ) -> None:
        fields = {
            "content": change.observations[part]["content"],
            "source": change.observations[part]["source"],
        }
        answer = self.editor.update_observation(
            store, profile_id, oid, fields, timeout=time_for_call(deadline)
        )
        if isinstance(answer, Accepted):
            change.ids[part] = oid
        elif observation_gone(answer):
            change.dropped.append(part)
        else:
            raise Unfinished(said(answer))

    def _delete(
        self, change: Change, store: str, profile_id: str, part: int, oid: str, deadline: Deadline
    ) -> None:
        answer = self.editor.delete_observation(store, profile_id, oid, timeout=time_for_call(deadline))
        if not (isinstance(answer, Accepted) or observation_gone(answer)):
            raise Unfinished(said(answer))
        change.deleted.append(part)
