"""One parked message being replayed, and how the ledger sorts its parts."""

from __future__ import annotations

from dataclasses import dataclass, field

from memory_bridge.domain.envelope import Envelope
from memory_bridge.domain.ledger import LedgerRecord, PartsPlan, plan_parts
from memory_bridge.domain.observations import Observation, observation_digest
from memory_bridge.ports import QueuedMessage


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

    def digests(self, parts: list[int]) -> dict[int, str]:
        """The ledger's fingerprint of each part's words (an edit finds them by it, issue 22)."""
        by_part = dict(zip(self.envelope.part_numbers, self.envelope.observations, strict=True))
        return {p: observation_digest(by_part[p]) for p in parts if p in by_part}

    @property
    def message_sid(self) -> str:
        return self.envelope.message_sid


def sort_parts(item: Pending, record: LedgerRecord | None) -> None:
    """Set the parts still to post, and which of them to look for in Memory first."""
    envelope = item.envelope
    item.version = record.version if record else None
    if record is not None and record.removed is not None:
        # Twilio removed the message (issue 22's tombstone): this parked copy must not bring it back.
        item.parts, item.check = [], set()
        return
    if record is not None and record.superseded and envelope.edited != record.edited:
        # An edit newer than this copy finished (issue 22): Memory holds the newest words already.
        item.parts, item.check = [], set()
        return
    if record is not None and (record.outcome or {}).get("outcome") == "posted" and envelope.edited is None:
        # The webhook posted the whole message: nothing of it is to post again, whatever this copy
        # holds (a backfill reads the message as it is now: edited longer, it splits into more parts).
        item.parts, item.check = [], set()
        return
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
