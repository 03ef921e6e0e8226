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
    free = {"front_port": 3001, "sandbox_port": 8790, "moto_port": 5001}
    message = ports_in_use_message({"sandbox_port": 8787}, None, Path("/nonexistent"), free)
    assert "port 8787 (the Memory sandbox) already in use" in message
    assert "Something else listens there" in message
    assert "FRONT_PORT=3001 SANDBOX_PORT=8790 MOTO_PORT=5001 MEMORY_BRIDGE_LOCAL_STATE=" in message


def test_a_stack_whose_ports_are_not_the_busy_ones_is_not_blamed():
    import os

    state = {
        "pid": os.getpid(),
        "webhook_url": "http://127.0.0.1:3201/webhooks/conversations",
        "sandbox_url": "http://127.0.0.1:8891",
        "moto_url": "http://127.0.0.1:5201",
    }
    message = ports_in_use_message({"moto_port": 5001}, state, Path("/s.json"))
    assert "Another local stack" not in message and "Something else listens there" in message
    message = ports_in_use_message({"moto_port": 5201}, state, Path("/s.json"))
    assert f"Another local stack is running (pid {os.getpid()}" in message


def test_a_state_file_naming_a_process_that_is_not_a_stack_is_not_believed():
    state = {"pid": 1, "moto_url": "http://127.0.0.1:5000"}
    message = ports_in_use_message({"moto_port": 5000}, state, Path("/s.json"))
    assert "kill 1" not in message


def test_a_client_that_went_away_is_not_a_traceback_other_errors_still_are(capsys):
    from memory_bridge_dev.quiet_server import QuietHTTPServer

    server = QuietHTTPServer.__new__(QuietHTTPServer)  # handle_error needs no socket
    try:
        raise BrokenPipeError(32, "Broken pipe")
    except BrokenPipeError:
        server.handle_error(None, ("127.0.0.1", 1))
    assert capsys.readouterr().err == ""
    try:
        raise ValueError("a real bug")
    except ValueError:
        server.handle_error(None, ("127.0.0.1", 1))
    assert "ValueError: a real bug" in capsys.readouterr().err


def test_the_state_file_is_0600_and_a_symlink_at_its_path_is_replaced_not_followed(tmp_path):
    """It holds the dev credentials and the CLI believes it: only its owner may read or write it."""
    import os
    import stat

    from memory_bridge_dev.local_stack import LocalStack

    victim = tmp_path / "victim.txt"
    victim.write_text("someone's file\n")
    path = tmp_path / "local-stack.json"
    path.symlink_to(victim)
    stack = LocalStack(state_path=str(path), info={"pid": os.getpid(), "auth_token": "dev"})
    previous = os.umask(0o022)  # the usual one, under which a plain write makes 0644
    try:
        stack.write_state()
    finally:
        os.umask(previous)
    assert victim.read_text() == "someone's file\n"
    assert not path.is_symlink() and stat.S_IMODE(path.lstat().st_mode) == 0o600
    assert '"auth_token": "dev"' in path.read_text()
