import json
from datetime import UTC, datetime

import pytest

from memory_bridge.domain.envelope import FailureRecord, MalformedEnvelope, new_envelope, parse_envelope
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
    assert document["version"] == 1
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
    assert attributes == {"kind": "permanent", "status": "400", "code": "520046", "envelopeVersion": "1"}


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


def test_needs_a_profile_or_an_identifier():
    with pytest.raises(ValueError, match="profile id or an identifier"):
        envelope(profile_id=None, identifier=None)


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
    ],
)
def test_malformed_envelopes_say_why(mutate, reason):
    document = json.loads(envelope().to_json())
    mutated = mutate(document)
    text = mutated if isinstance(mutated, str) else json.dumps(mutated)
    with pytest.raises(MalformedEnvelope, match=reason):
        parse_envelope(text)
