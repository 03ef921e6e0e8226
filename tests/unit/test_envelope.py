import json
from datetime import UTC, datetime

import pytest

from memory_bridge.domain.envelope import (
    ENVELOPE_VERSION,
    FailureRecord,
    MalformedEnvelope,
    SpeakerRecord,
    new_envelope,
    parse_envelope,
)
from memory_bridge.domain.identifiers import Identifier
from memory_bridge.domain.outcomes import Permanent, Retryable

NOW = datetime(2026, 11, 21, 10, 0, 0, tzinfo=UTC)
OBS = [{"content": "hi", "source": "s", "occurredAt": "2026-11-21T10:00:00.000Z"}]


def envelope(**overrides):
    values = dict(
        kind="retryable",
        store_id="mem_store_01kpttrksqe08rhv122gzq52ax",
        message_sid="IM1",
        conversation_sid="CH1",
        observations=OBS,
        failure=FailureRecord.from_outcome("post_observations", Retryable(503, 20503, "down", 2.0)),
        profile_id="mem_profile_01kpttrksqe08rhv122gzq52ax",
        identifier=Identifier("phone", "+15555550100"),
        trait_group="Contact",
        now=NOW,
    )
    values.update(overrides)
    return new_envelope(**values)


def test_round_trip_keeps_everything_replay_needs():
    original = envelope()
    parsed = parse_envelope(original.to_json())
    assert parsed == original
    document = json.loads(original.to_json())
    assert document["version"] == 2  # 2 since issue 19: the speaker record
    assert document["failure"] == {
        "stage": "post_observations",
        "status": 503,
        "code": 20503,
        "message": "down",
        "ambiguous": False,
        "retryAfter": 2.0,
    }
    assert document["attempts"] == 1
    assert document["firstFailedAt"] == document["lastFailedAt"] == "2026-11-21T10:00:00Z"


def test_unresolved_author_is_kept_for_replay():
    parsed = parse_envelope(
        envelope(
            profile_id=None,
            failure=FailureRecord.from_outcome("resolve_profile", Retryable(None, message="connect failed")),
        ).to_json()
    )
    assert parsed.profile_id is None
    assert parsed.identifier == Identifier("phone", "+15555550100")


def test_attributes_are_content_free():
    attributes = envelope(
        kind="permanent",
        failure=FailureRecord.from_outcome("post_observations", Permanent(400, 520046, "bad")),
    ).message_attributes()
    assert attributes == {"kind": "permanent", "status": "400", "code": "520046", "envelopeVersion": "2"}


def test_failed_again_raises_attempts_and_keeps_history():
    later = datetime(2026, 11, 22, tzinfo=UTC)
    again = envelope().failed_again(
        FailureRecord("post_observations", 429, 20429, "slow"), "retryable", later
    )
    assert again.attempts == 2
    assert again.failure.status == 429
    assert again.last_failed_at == "2026-11-22T00:00:00Z"
    assert again.first_failed_at == "2026-11-21T10:00:00Z"
    assert again.history[0]["status"] == 503


def test_left_for_people_is_marked_kept_through_later_failures_and_absent_until_then():
    fresh = envelope()
    assert "leftForPeopleAt" not in json.loads(fresh.to_json())  # old readers see the same document
    assert (fresh.failed_replays, fresh.needs_attention) == (0, False)
    later = datetime(2026, 11, 22, tzinfo=UTC)
    marked = fresh.failed_again(fresh.failure, "retryable", later).left_for_people(later)
    parsed = parse_envelope(marked.to_json())
    assert parsed.needs_attention and parsed.left_for_people_at == "2026-11-22T00:00:00Z"
    assert parsed.failed_replays == 1  # attempts 2: the webhook's try and one replay
    # A person's replay that fails again keeps the mark: it stays with people.
    assert parsed.failed_again(parsed.failure, "retryable", later).needs_attention


def test_needs_a_profile_an_identifier_or_a_speaker_to_classify():
    with pytest.raises(ValueError, match="profile id, an identifier, or a speaker to classify"):
        envelope(profile_id=None, identifier=None)
    # A speaker already classified gives the replay nothing to resolve either.
    with pytest.raises(ValueError, match="profile id, an identifier, or a speaker to classify"):
        envelope(profile_id=None, identifier=None, speaker=SpeakerRecord("agent", "alice"))


SPEAKER_UNKNOWN = SpeakerRecord(None, "+15555550100", "MB00000000000000000000000000000001", "sdk-user")


def test_a_speaker_not_yet_known_round_trips_with_no_identifier_for_the_replay_to_classify():
    parked = envelope(
        profile_id=None,
        identifier=None,
        failure=FailureRecord.from_outcome("resolve_speaker", Retryable(429, 20429, "slow down", 1.0)),
        speaker=SPEAKER_UNKNOWN,
    )
    document = json.loads(parked.to_json())
    assert document["version"] == ENVELOPE_VERSION == 2
    assert document["speaker"] == {
        "kind": None,
        "author": "+15555550100",
        "participantSid": "MB00000000000000000000000000000001",
        "clientIdentity": "sdk-user",
        "chatServiceSid": None,
    }
    assert document["identifier"] is None and document["profileId"] is None
    parsed = parse_envelope(parked.to_json())
    assert parsed == parked
    assert parsed.failure.stage == "resolve_speaker" and parsed.speaker_unknown


def test_a_known_speaker_round_trips_and_needs_no_classifying():
    parked = envelope(speaker=SpeakerRecord("customer", "+15555550100", None, None))
    parsed = parse_envelope(parked.to_json())
    assert parsed.speaker == SpeakerRecord("customer", "+15555550100")
    assert not parsed.speaker_unknown


def test_a_version_1_envelope_is_still_read_with_no_speaker():
    # As the release before issue 19 wrote it (no "speaker").
    version_1 = {
        "version": 1,
        "kind": "retryable",
        "storeId": "mem_store_01kpttrksqe08rhv122gzq52ax",
        "profileId": "mem_profile_01kpttrksqe08rhv122gzq52ax",
        "identifier": {"idType": "phone", "value": "+15555550100"},
        "traitGroup": "Contact",
        "messageSid": "IM1",
        "conversationSid": "CH1",
        "observations": OBS,
        "failure": {"stage": "post_observations", "status": 503, "code": None, "message": "down"},
        "attempts": 1,
        "firstFailedAt": "2026-11-21T10:00:00Z",
        "lastFailedAt": "2026-11-21T10:00:00Z",
        "history": [],
    }
    parsed = parse_envelope(json.dumps(version_1))
    assert parsed.speaker is None and parsed.speaker_unknown  # the replay classifies its author
    assert parsed.identifier == Identifier("phone", "+15555550100")
    assert parsed.profile_id == "mem_profile_01kpttrksqe08rhv122gzq52ax"


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda d: "not json", "not JSON"),
        (lambda d: [], "not a JSON object"),
        (lambda d: {**d, "version": 99}, "unsupported envelope version"),
        (lambda d: {**d, "kind": "maybe"}, "unknown kind"),
        (lambda d: {**d, "observations": []}, "non-empty"),
        (lambda d: {**d, "failure": {**d["failure"], "stage": "x"}}, "stage"),
        (lambda d: {**d, "profileId": "nope"}, "profile id"),
        (lambda d: {**d, "profileId": None, "identifier": None}, "neither"),
        (lambda d: {**d, "attempts": "1"}, "attempts"),
        (lambda d: {**d, "messageSid": None}, "messageSid"),
        (lambda d: {**d, "speaker": "customer"}, "speaker must be an object"),
        (lambda d: {**d, "speaker": {"kind": "robot"}}, "unknown speaker kind"),
        (lambda d: {**d, "speaker": {"kind": None, "author": 5}}, "must be strings"),
        (lambda d: {**d, "profileId": None, "identifier": None, "speaker": {"kind": "agent"}}, "neither"),
        (lambda d: {**d, "version": 3}, "unsupported envelope version"),
    ],
)
def test_malformed_envelopes_say_why(mutate, reason):
    document = json.loads(envelope().to_json())
    mutated = mutate(document)
    text = mutated if isinstance(mutated, str) else json.dumps(mutated)
    with pytest.raises(MalformedEnvelope, match=reason):
        parse_envelope(text)
