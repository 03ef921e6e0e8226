"""`make run`'s terminal: one readable line per webhook; the function's JSON logs and metrics only on request."""

from __future__ import annotations

import io
import json
from pathlib import Path

from memory_bridge_dev.local_stack import ReadableOutput, ports_in_use_message


def shown(*lines: str) -> list[str]:
    target = io.StringIO()
    output = ReadableOutput(target)
    for line in lines:
        output.write(line[: len(line) // 2])  # written in pieces, as print() may
        output.write(line[len(line) // 2 :] + "\n")
    return target.getvalue().splitlines()


def test_info_logs_and_metrics_are_not_shown_warnings_are_one_short_line():
    info = json.dumps({"level": "INFO", "message": "message posted", "observations": 1})
    metrics = json.dumps({"_aws": {"CloudWatchMetrics": []}, "Posted": [1.0]})
    warning = json.dumps({"level": "WARNING", "message": "webhook rejected", "reason": "signature mismatch"})
    result = shown(info, metrics, warning, "• plain progress")
    assert len(result) == 2
    assert result[0].endswith("warning  webhook rejected (signature mismatch)")
    assert result[1] == "• plain progress"


def test_a_line_that_only_looks_like_json_is_shown_as_it_is():
    assert shown("{not json") == ["{not json"]


def test_a_busy_port_is_named_with_its_role_and_the_way_out():
    message = ports_in_use_message({"sandbox_port": 8787}, None, Path("/nonexistent"))
    assert "port 8787 (the Memory sandbox) already in use" in message
    assert "Something else listens there" in message and "FRONT_PORT=3001" in message
