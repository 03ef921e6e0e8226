"""The scheduled replay's options and metrics (pure): the event fields, and what a run reports."""

from __future__ import annotations

from datetime import timedelta

import pytest

from memory_bridge.replay import (
    ReplayOptions,
    ReplayRequestError,
    ReplaySummary,
    options_from_event,
    replay_metrics,
)
from memory_bridge_dev.aws_resources import load_template
from memory_bridge_dev.scheduled_replay import resolve_sub, run_line, scheduled_input


def test_the_schedule_fields_become_the_policy():
    options = options_from_event(
        {"kind": "retryable", "minAgeSeconds": 180, "maxAttempts": 4, "scanLimit": 1000}
    )
    assert options.min_age == timedelta(minutes=3)
    assert (options.max_attempts, options.max_received) == (4, 1000)
    assert options_from_event({}).max_attempts is None  # a replay by hand has no policy
    assert options_from_event({"minAgeSeconds": 0}).min_age == timedelta(0)


@pytest.mark.parametrize(
    ("event", "message"),
    [
        ({"minAgeSeconds": -1}, "minAgeSeconds must be a number 0 or more"),
        ({"maxAttempts": 0}, "maxAttempts must be a number greater than 0"),
        ({"scanLimit": "lots"}, "scanLimit must be a number greater than 0"),
        ({"maxAttempt": 4}, "unknown field"),
    ],
)
def test_bad_schedule_fields_are_refused_by_name(event, message):
    with pytest.raises(ReplayRequestError, match=message):
        options_from_event(event)


def summary(**counts: int) -> ReplaySummary:
    result = ReplaySummary(ReplayOptions(max_attempts=4))
    for name, value in counts.items():
        setattr(result.counts, name, value)
    return result


def test_a_run_reports_what_it_did():
    result = summary(
        replayed=3, already_posted=1, failed=2, left_for_people=1, needs_attention=2, malformed=1
    )
    assert replay_metrics(result) == {
        "ReplayPosted": 3,
        "ReplayAlreadyPosted": 1,
        "ReplayFailedAgain": 2,
        "ReplayLeftForPeople": 1,
        "DeadLettersNeedingAttention": 3,  # malformed messages need a person too
    }


def test_the_gauge_is_withheld_when_a_partial_look_found_nothing():
    partial = summary(replayed=200)
    assert "DeadLettersNeedingAttention" not in replay_metrics(partial)
    partial.reached_end = True
    assert replay_metrics(partial)["DeadLettersNeedingAttention"] == 0


def test_by_hand_and_dry_runs_report_no_gauge():
    assert "DeadLettersNeedingAttention" not in replay_metrics(
        ReplaySummary(ReplayOptions(), reached_end=True)
    )
    assert replay_metrics(ReplaySummary(ReplayOptions(dry_run=True, max_attempts=4))) == {}


def test_the_local_stack_reads_the_templates_input_with_its_defaults():
    template = load_template()
    assert (
        scheduled_input(template)["maxAttempts"]
        == template["Parameters"]["ScheduledReplayMaxAttempts"]["Default"]
    )
    assert scheduled_input(template, {"ScheduledReplayMaxAttempts": "7"})["maxAttempts"] == 7
    assert (
        resolve_sub({"Fn::Sub": "rate(${ScheduledReplayMinutes} minutes)"}, template, {}) == "rate(5 minutes)"
    )
    with pytest.raises(KeyError, match="Nope"):
        resolve_sub({"Fn::Sub": "${Nope}"}, template, {})


def test_the_console_line_appears_only_when_a_run_did_something():
    from datetime import datetime

    quiet = {
        "counts": dict.fromkeys(
            ("replayed", "already_posted", "failed", "left_for_people", "needs_attention", "too_recent"), 0
        ),
        "stopped": None,
    }
    assert run_line(quiet, datetime(2026, 12, 1, 22, 0, 0)) is None
    busy = {**quiet, "counts": {**quiet["counts"], "replayed": 2}}
    assert run_line(busy, datetime(2026, 12, 1, 22, 0, 0)) == (
        "• scheduled replay 22:00:00: replayed 2, already posted 0, failed again 0, left for people 0 "
        "(needing attention 0, too recent 0)"
    )
