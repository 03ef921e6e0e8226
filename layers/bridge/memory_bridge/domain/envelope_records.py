"""The parts of an envelope that say why it was parked and who spoke. Pure."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from memory_bridge.domain.outcomes import Failure, Permanent
from memory_bridge.domain.speakers import KINDS, SpeakerKind

# resolve_speaker: the conversation's participants could not be read (the Conversations API);
# resolve_profile: the customer's profile could not be found or made; post_observations: Memory refused;
# make_room: the oldest could not be deleted to make room on a full profile; profile_full: the profile
# is full and PROFILE_FULL_POLICY is park (issue 22).
Stage = Literal[
    "resolve_speaker",
    "resolve_profile",
    "post_observations",
    "make_room",
    "profile_full",
    "change_observations",
]
STAGES: tuple[Stage, ...] = (
    "resolve_speaker",
    "resolve_profile",
    "post_observations",
    "make_room",
    "profile_full",
    "change_observations",
)


class MalformedEnvelope(ValueError):
    """A queued message is not an envelope this version can read."""


@dataclass(frozen=True)
class FailureRecord:
    stage: Stage
    status: int | None
    code: int | None
    message: str
    ambiguous: bool = False
    retry_after: float | None = None

    @classmethod
    def from_outcome(cls, stage: Stage, failure: Failure) -> FailureRecord:
        if isinstance(failure, Permanent):
            return cls(stage, failure.status, failure.code, failure.message[:500])
        return cls(
            stage,
            failure.status,
            failure.code,
            failure.message[:500],
            ambiguous=failure.ambiguous,
            retry_after=failure.retry_after,
        )


@dataclass(frozen=True)
class SpeakerRecord:
    """What the webhook knew of who spoke. `kind` None: not known yet (the participants could not be
    read), so the replay classifies it, as the webhook would have, before it resolves a profile."""

    kind: SpeakerKind | None
    author: str | None = None
    participant_sid: str | None = None
    client_identity: str | None = None
    service_sid: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "author": self.author,
            "participantSid": self.participant_sid,
            "clientIdentity": self.client_identity,
            "chatServiceSid": self.service_sid,
        }


@dataclass(frozen=True)
class ChangeRecord:
    """An edit or a removal Memory could not take (issue 22), parked for the replay to finish: the
    envelope's observations are the new words (an edit) or the words to find (a removal); with
    `says_nothing`, an edit whose new words say nothing, the observations only show where to look."""

    kind: Literal["edit", "remove"]
    at: str  # DateUpdated of the edit (its place among edits), or DateRemoved
    says_nothing: bool = False

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "at": self.at, "saysNothing": self.says_nothing}


def read_change(document: Any) -> ChangeRecord | None:
    if document is None:
        return None
    kind, at = (document.get("kind"), document.get("at")) if isinstance(document, dict) else (None, None)
    if kind not in ("edit", "remove") or not isinstance(at, str) or not at:
        raise MalformedEnvelope("change needs kind edit or remove, and at")
    return ChangeRecord(kind, at, document.get("saysNothing") is True)


def read_speaker(document: Any) -> SpeakerRecord | None:
    if document is None:
        return None
    if not isinstance(document, dict):
        raise MalformedEnvelope("speaker must be an object")
    kind = document.get("kind")
    if kind is not None and kind not in KINDS:
        raise MalformedEnvelope(f"unknown speaker kind {kind!r}")
    texts = [document.get(name) for name in ("author", "participantSid", "clientIdentity", "chatServiceSid")]
    if not all(value is None or isinstance(value, str) for value in texts):
        raise MalformedEnvelope(
            "speaker's author, participantSid, clientIdentity and chatServiceSid must be strings"
        )
    return SpeakerRecord(kind, *texts)


def read_failure(failure_doc: Mapping[str, Any]) -> FailureRecord:
    stage = failure_doc.get("stage")
    if stage not in STAGES:
        raise MalformedEnvelope(f"unknown failure stage {stage!r}")
    retry_after = failure_doc.get("retryAfter")
    return FailureRecord(
        stage=stage,
        status=failure_doc.get("status"),
        code=failure_doc.get("code"),
        message=str(failure_doc.get("message") or ""),
        ambiguous=bool(failure_doc.get("ambiguous")),
        retry_after=float(retry_after) if isinstance(retry_after, int | float) else None,
    )


def get_field(
    document: Mapping[str, Any], name: str, kind: type | tuple[type, ...], optional: bool = False
) -> Any:
    value = document.get(name)
    if value is None and optional:
        return None
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is int):
        raise MalformedEnvelope(f"field {name!r} is missing or of the wrong type")
    return value
