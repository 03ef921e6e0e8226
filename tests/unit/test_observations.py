from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from memory_bridge.domain.events import Attachment
from memory_bridge.domain.observations import (
    MAX_CONTENT_BYTES,
    batches,
    build_observations,
    message_content,
    rfc3339,
    split_utf8,
)
from tests.support import message_added

message = message_added


def test_short_body_is_one_observation():
    observations = build_observations(message("Hello"), "twilio-conversations")
    assert observations == [
        {"content": "Hello", "source": "twilio-conversations", "occurredAt": "2026-11-21T10:00:00.123Z"}
    ]


def test_attachments_add_a_line_each():
    content = message_content(
        message("See these", (Attachment("image/jpeg", "photo.jpg"), Attachment(None, None)))
    )
    assert content == "See these\n[attachment: image/jpeg photo.jpg]\n[attachment: unknown type]"
    assert (
        message_content(message("", (Attachment("application/pdf", None),)))
        == "[attachment: application/pdf]"
    )


def test_nothing_to_remember_gives_no_observation():
    assert build_observations(message(""), "s") == []
    assert build_observations(message("   "), "s") == []


def test_long_body_is_split_on_character_boundaries_without_loss():
    body = ("é" * 3000) + ("😀" * 1000) + ("a" * 5000)  # 2-byte, 4-byte and 1-byte characters
    observations = build_observations(message(body), "s")
    assert len(observations) > 1
    assert "".join(o["content"] for o in observations) == body
    assert all(len(o["content"].encode()) <= MAX_CONTENT_BYTES for o in observations)
    assert all(1 <= len(o["content"]) <= 4096 for o in observations)


@given(st.text(min_size=0, max_size=20000))
def test_split_is_lossless_and_bounded(text):
    pieces = split_utf8(text)
    assert "".join(pieces) == text
    assert all(0 < len(p.encode()) <= MAX_CONTENT_BYTES for p in pieces)


def test_exact_boundary():
    assert split_utf8("a" * 4096) == ["a" * 4096]
    assert split_utf8("a" * 4097) == ["a" * 4096, "a"]


def test_batches_of_ten():
    sizes = [len(b) for b in batches(list(range(23)))]  # type: ignore[arg-type]
    assert sizes == [10, 10, 3]


def test_rfc3339_is_utc_with_z():
    moment = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone(timedelta(hours=2)))
    assert rfc3339(moment) == "2026-01-02T01:04:05.000Z"


def test_split_rejects_impossible_limits():
    with pytest.raises(ValueError, match="max_bytes"):
        split_utf8("abc", 3)
