"""The delivery ledger: what Memory holds of each message, per MessageSid. Pure.

Memory takes no idempotency key, so exactly-once rests on knowing, for each message, which of its
parts (observation 0..n-1: the body split at 4096 bytes, then a line per attachment) Memory took.
One record per MessageSid, shared by the webhook and every replay:

  accepted   parts Memory answered 202 for
  unsure     parts posted without a known answer: a post in flight (written before it starts), a
             timeout, a dropped connection, a process killed between the 202 and the record
  lease      who delivers the message right now, and until when
  outcome    the webhook's first answer, once it finished (a duplicate delivery repeats it)
  removed    the tombstone: Twilio said the message was removed (onMessageRemoved's DateRemoved).
             Written before Memory is touched, and never cleared: no add, replay or backfill of
             the MessageSid posts after it (issue 22)
  removal_done  what Memory held of it is deleted (a duplicate removal repeats nothing)
  keys, ids  per part, once known: a digest of the words Memory holds (domain.observations.
             observation_digest) and the observation's id. An edit carries only the new words:
             these find the old ones (issue 22), the ids without a List once an edit or a
             removal learnt them
  edited     the newest onMessageUpdated seen (its DateUpdated); edit_done: the newest one finished

Before posting, a deliverer writes its parts as unsure and takes the lease; after the answer it
moves them to accepted (202) or clears them (a clean refusal). A crash anywhere leaves the parts
unsure, and unsure parts are never posted blind: the webhook parks them, the replay looks in
Memory (List Observations) first. So the worst a crash costs is one lookup, never a second copy.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class LedgerRecord:
    message_sid: str
    accepted: frozenset[int] = frozenset()
    unsure: frozenset[int] = frozenset()
    lease_owner: str | None = None
    lease_until: float = 0.0  # epoch seconds
    outcome: dict[str, Any] | None = None
    version: int = 0
    removed: str | None = None
    removal_done: bool = False
    keys: Mapping[int, str] = field(default_factory=dict)
    ids: Mapping[int, str] = field(default_factory=dict)
    edited: str | None = None
    edit_done: str | None = None
    # Per part: the digests of words an edit was about to write when it claimed the message. Its
    # PATCH may land and its settle not: a later edit then finds the observation by these.
    pending: Mapping[int, frozenset[str]] = field(default_factory=dict)
    posted_at: float = 0.0  # epoch seconds of the last settle that recorded a part accepted

    @property
    def superseded(self) -> bool:
        """An edit newer than any parked copy finished: Memory holds the newest words of every part,
        so a copy from before it (the add's envelope, a backfill's read) must not post."""
        return self.edited is not None and self.edit_done == self.edited

    @property
    def maybe_in_memory(self) -> frozenset[int]:
        """Parts Memory holds or may hold: what a removal must look for."""
        return self.accepted | self.unsure

    @property
    def in_doubt(self) -> frozenset[int]:
        """Parts that may or may not be in Memory."""
        return self.unsure - self.accepted

    def leased_to_another(self, owner: str, now: float) -> bool:
        return self.lease_owner not in (None, owner) and self.lease_until > now


@dataclass(frozen=True)
class PartsPlan:
    """What to do with each part of one message."""

    done: tuple[int, ...] = ()  # Memory holds it: never post again
    check: tuple[int, ...] = ()  # may be in Memory: look before posting (replay) or park (webhook)
    post: tuple[int, ...] = ()  # not in Memory, nobody on it: post


def plan_parts(parts: Iterable[int], record: LedgerRecord | None, ambiguous: bool = False) -> PartsPlan:
    """Sort `parts` by what the ledger (and the envelope's own `ambiguous` flag) says of them."""
    done: list[int] = []
    check: list[int] = []
    post: list[int] = []
    accepted = record.accepted if record else frozenset()
    in_doubt = record.in_doubt if record else frozenset()
    for part in parts:
        if part in accepted:
            done.append(part)
        elif ambiguous or part in in_doubt:
            check.append(part)
        else:
            post.append(part)
    return PartsPlan(tuple(done), tuple(check), tuple(post))


@dataclass(frozen=True)
class Claimed:
    """The lease is ours. `previous` is the record as it was (None for a first delivery)."""

    previous: LedgerRecord | None


@dataclass(frozen=True)
class Finished:
    """An earlier delivery finished and answered: a duplicate."""

    record: LedgerRecord


@dataclass(frozen=True)
class Busy:
    """Another delivery holds the lease right now."""

    record: LedgerRecord


ClaimResult = Claimed | Finished | Busy


@dataclass(frozen=True)
class Settlement:
    """What one delivery learnt about a message's parts, to write back when it ends."""

    message_sid: str
    accepted: frozenset[int] = frozenset()
    # Parts whose fate is now known (accepted, or refused before Memory took them): no longer unsure.
    cleared: frozenset[int] = frozenset()
    outcome: dict[str, Any] | None = None
    # The lease holder writing it. Its clearing, outcome and lease release hold only while the lease
    # is still its own: a settle that lands late (an abandoned call, a container thawed minutes
    # later) must not erase the doubt of whoever claimed the message since. What Memory accepted
    # is true whoever writes it, so that part is always recorded. None: no lease (a List check).
    owner: str | None = None
    # What an edit (or a post) learnt of each part: the digest of the words Memory now holds, and
    # the observation's id once found; the edit it finished (issue 22).
    keys: Mapping[int, str] = field(default_factory=dict)
    ids: Mapping[int, str] = field(default_factory=dict)
    edit_done: str | None = None
    # Parts whose pending digests (LedgerRecord.pending) an edit finished with: no longer needed.
    settled_pending: frozenset[int] = frozenset()
    at: float = 0.0  # wall-clock of the settle (epoch seconds): kept as posted_at with accepted parts
