"""The one schema for everything parked on the dead-letter queue. Pure.

The webhook writes it and the replay reads it, through this module only. `version` lets a later
release read what an earlier one parked.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Literal

from memory_bridge.domain.envelope_records import (
    ChangeRecord,
    FailureRecord,
    MalformedEnvelope,
    SpeakerRecord,
    Stage,
    get_field,
    read_change,
    read_failure,
    read_speaker,
)
from memory_bridge.domain.identifiers import Identifier
from memory_bridge.domain.observations import Observation

# 2: the speaker record (who spoke; stage resolve_speaker). Version 1 envelopes, parked before speakers
# were known, are still read: their author is classified at replay.
ENVELOPE_VERSION = 2
READABLE_VERSIONS = (1, 2)
Kind = Literal["retryable", "permanent"]
_PROFILE_ID = re.compile(r"^mem_profile_[0-7][0-9a-z]{25}$")
# SQS takes only #x9 | #xA | #xD | #x20-#xD7FF | #xE000-#xFFFD | #x10000-#x10FFFF. JSON already
# escapes the control characters; these are the rest, escaped the same way (\uXXXX).
_REFUSED_BY_SQS = re.compile("[\ud800-\udfff\ufffe\uffff]")
# SQS's limit is 256 KiB for the body and its attributes together; keep room for the attributes.
MAX_ENVELOPE_BYTES = 250_000


@dataclass(frozen=True)
class Envelope:
    kind: Kind
    store_id: str
    message_sid: str
    conversation_sid: str
    observations: tuple[Observation, ...]
    failure: FailureRecord
    # The profile when it was resolved; else the author's identifier so that replay can resolve it.
    profile_id: str | None = None
    identifier: Identifier | None = None
    trait_group: str = "Contact"
    attempts: int = 1
    first_failed_at: str = ""
    last_failed_at: str = ""
    version: int = ENVELOPE_VERSION
    history: tuple[dict[str, Any], ...] = field(default=())
    # Each observation's index within its message (see memory_bridge.domain.ledger); None in envelopes
    # parked before the ledger existed.
    parts: tuple[int, ...] | None = None
    # When the scheduled replay stopped trying it (see `left_for_people`); empty while it still tries.
    left_for_people_at: str = ""
    # Who spoke, as the webhook knew it; None in envelopes parked before speakers were known.
    speaker: SpeakerRecord | None = None
    # The edit (DateUpdated) whose words these are; None for the words as first added (issue 22).
    edited: str | None = None
    # An edit or a removal to finish, rather than words to post (issue 22).
    change: ChangeRecord | None = None

    @property
    def speaker_unknown(self) -> bool:
        """The replay must classify the speaker first: not known when parked, or parked before
        speakers were known at all."""
        return self.speaker is None or self.speaker.kind is None

    def to_json(self) -> str:
        failure = self.failure
        document: dict[str, Any] = {
            "version": self.version,
            "kind": self.kind,
            "storeId": self.store_id,
            "profileId": self.profile_id,
            "identifier": self.identifier.to_json() if self.identifier else None,
            "traitGroup": self.trait_group,
            "messageSid": self.message_sid,
            "conversationSid": self.conversation_sid,
            "observations": list(self.observations),
            "failure": {
                "stage": failure.stage,
                "status": failure.status,
                "code": failure.code,
                "message": failure.message,
                "ambiguous": failure.ambiguous,
                "retryAfter": failure.retry_after,
            },
            "attempts": self.attempts,
            "firstFailedAt": self.first_failed_at,
            "lastFailedAt": self.last_failed_at,
            "history": list(self.history),
        }
        if self.parts is not None:
            document["parts"] = list(self.parts)
        if self.left_for_people_at:
            document["leftForPeopleAt"] = self.left_for_people_at
        if self.speaker is not None:
            document["speaker"] = self.speaker.to_json()
        if self.edited:
            document["edited"] = self.edited
        if self.change is not None:
            document["change"] = self.change.to_json()
        text = json.dumps(document, separators=(",", ":"), ensure_ascii=False)
        return _REFUSED_BY_SQS.sub(lambda m: f"\\u{ord(m.group()):04x}", text)

    def with_parts(self, keep: set[int] | frozenset[int]) -> Envelope:
        """The same envelope holding only the observations whose part is in `keep`."""
        pairs = [(p, o) for p, o in zip(self.part_numbers, self.observations, strict=True) if p in keep]
        return replace(self, observations=tuple(o for _, o in pairs), parts=tuple(p for p, _ in pairs))

    @property
    def failed_replays(self) -> int:
        """Replays that failed to deliver it; `attempts` also counts the webhook's own try."""
        return max(self.attempts - 1, 0)

    @property
    def needs_attention(self) -> bool:
        """The scheduled replay has stopped trying: a person must look at it."""
        return bool(self.left_for_people_at)

    def left_for_people(self, now: datetime) -> Envelope:
        """The same envelope, marked as given up by the scheduled replay (kept by later failures)."""
        return replace(self, left_for_people_at=timestamp(now))

    @property
    def part_numbers(self) -> tuple[int, ...]:
        """The parts this envelope holds; an envelope from before the ledger counts from 0."""
        return self.parts if self.parts is not None else tuple(range(len(self.observations)))

    def fitted_for_queue(self, limit: int = MAX_ENVELOPE_BYTES) -> list[Envelope]:
        """This envelope, or several holding its observations between them, each within SQS's size."""
        if len(self.to_json().encode("utf-8")) <= limit or len(self.observations) <= 1:
            return [self]
        middle = len(self.observations) // 2
        numbers = self.part_numbers
        first = replace(self, observations=self.observations[:middle], parts=numbers[:middle])
        second = replace(self, observations=self.observations[middle:], parts=numbers[middle:])
        return first.fitted_for_queue(limit) + second.fitted_for_queue(limit)

    def message_attributes(self) -> dict[str, str]:
        """Small, content-free attributes for counting without parsing bodies."""
        return {
            "kind": self.kind,
            "status": str(self.failure.status) if self.failure.status is not None else "none",
            "code": str(self.failure.code) if self.failure.code is not None else "none",
            "envelopeVersion": str(self.version),
        }

    def failed_again(self, failure: FailureRecord, kind: Kind, now: datetime) -> Envelope:
        """The same envelope after another failed attempt: attempts raised, old failure kept in history."""
        previous = {
            "at": self.last_failed_at,
            "stage": self.failure.stage,
            "status": self.failure.status,
            "code": self.failure.code,
        }
        return replace(
            self,
            kind=kind,
            failure=failure,
            attempts=self.attempts + 1,
            last_failed_at=timestamp(now),
            history=(*self.history, previous)[-20:],
        )


def timestamp(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def new_envelope(
    *,
    kind: Kind,
    store_id: str,
    message_sid: str,
    conversation_sid: str,
    observations: Sequence[Observation],
    failure: FailureRecord,
    profile_id: str | None,
    identifier: Identifier | None,
    trait_group: str,
    now: datetime,
    parts: Sequence[int] | None = None,
    speaker: SpeakerRecord | None = None,
    edited: str | None = None,
) -> Envelope:
    if profile_id is None and identifier is None and (speaker is None or speaker.kind is not None):
        raise ValueError("an envelope needs a profile id, an identifier, or a speaker to classify")
    when = timestamp(now)
    return Envelope(
        kind=kind,
        store_id=store_id,
        message_sid=message_sid,
        conversation_sid=conversation_sid,
        observations=tuple(observations),
        failure=failure,
        profile_id=profile_id,
        identifier=identifier,
        trait_group=trait_group,
        first_failed_at=when,
        last_failed_at=when,
        parts=tuple(parts) if parts is not None else None,
        speaker=speaker,
        edited=edited,
    )


def parse_envelope(text: str) -> Envelope:
    """Read an envelope; raises MalformedEnvelope saying what is wrong (never the content)."""
    document = _document(text)
    kind = get_field(document, "kind", str)
    if kind not in ("retryable", "permanent"):
        raise MalformedEnvelope(f"unknown kind {kind!r}")
    observations: list[Observation] = get_field(document, "observations", list)
    if not observations or not all(isinstance(o, dict) for o in observations):
        raise MalformedEnvelope("observations must be a non-empty list of objects")
    failure = read_failure(get_field(document, "failure", dict))
    identifier_doc = get_field(document, "identifier", dict, optional=True)
    identifier = None
    if identifier_doc is not None:
        id_type, value = identifier_doc.get("idType"), identifier_doc.get("value")
        if not isinstance(id_type, str) or not isinstance(value, str):
            raise MalformedEnvelope("identifier needs idType and value")
        identifier = Identifier(id_type, value)
    profile_id = get_field(document, "profileId", str, optional=True)
    if profile_id is not None and not _PROFILE_ID.match(profile_id):
        raise MalformedEnvelope("profileId is not a profile id")
    speaker = read_speaker(document.get("speaker"))
    if profile_id is None and identifier is None and (speaker is None or speaker.kind is not None):
        raise MalformedEnvelope("neither profileId, identifier nor an unclassified speaker is set")
    attempts = get_field(document, "attempts", int)
    parts = document.get("parts")
    if parts is not None and (
        not isinstance(parts, list)
        or len(parts) != len(observations)
        or not all(isinstance(p, int) and not isinstance(p, bool) and p >= 0 for p in parts)
    ):
        raise MalformedEnvelope("parts must be one index per observation")
    return Envelope(
        version=ENVELOPE_VERSION,
        kind=kind,
        store_id=get_field(document, "storeId", str),
        profile_id=profile_id,
        identifier=identifier,
        trait_group=document.get("traitGroup") or "Contact",
        message_sid=get_field(document, "messageSid", str),
        conversation_sid=get_field(document, "conversationSid", str),
        observations=tuple(observations),
        failure=failure,
        attempts=attempts,
        first_failed_at=str(document.get("firstFailedAt") or ""),
        last_failed_at=str(document.get("lastFailedAt") or ""),
        history=tuple(h for h in document.get("history") or () if isinstance(h, dict)),
        parts=tuple(parts) if parts is not None else None,
        left_for_people_at=str(document.get("leftForPeopleAt") or ""),
        speaker=speaker,
        edited=get_field(document, "edited", str, optional=True),
        change=read_change(document.get("change")),
    )


def _document(text: str) -> dict[str, Any]:
    """The JSON object, of the version this release reads."""
    try:
        document = json.loads(text)
    except (ValueError, TypeError):
        raise MalformedEnvelope("not JSON") from None
    if not isinstance(document, dict):
        raise MalformedEnvelope("not a JSON object")
    version = document.get("version")
    if version not in READABLE_VERSIONS:
        raise MalformedEnvelope(f"unsupported envelope version {version!r}")
    return document


__all__ = [
    "Envelope",
    "FailureRecord",
    "MalformedEnvelope",
    "SpeakerRecord",
    "Stage",
    "new_envelope",
    "parse_envelope",
]
