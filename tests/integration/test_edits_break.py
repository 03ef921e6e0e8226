"""Edits (issue 22) under attack: cases the first cut got wrong, against moto and the Memory sandbox."""

from __future__ import annotations

import pytest

from tests.integration.conftest import outcome
from tests.integration.test_message_removed import added, contents
from tests.integration.test_message_updated import updated
from tests.support import body_of

pytestmark = pytest.mark.integration


def test_an_edit_to_the_words_of_a_message_said_in_the_same_moment_changes_its_own_observation(bridge):
    # Two messages of one customer in the same millisecond (the harness's DateCreated): "ok", then "yes".
    assert outcome(bridge.send(added("IM2", "yes"))) == "posted"
    assert outcome(bridge.send(added("IM1", "ok"))) == "posted"
    assert contents(bridge) == ["ok", "yes"]

    # The customer corrects "ok" to "yes": both messages now say "yes".
    response = bridge.send(updated("IM1", body="yes"))

    assert body_of(response)["outcome"] == "edited"
    assert contents(bridge) == ["yes", "yes"]  # not IM2's "yes" patched again, IM1's "ok" left behind
