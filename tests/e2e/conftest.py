"""The local stack as `make run` starts it, in a process of its own, for the end-to-end tests."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import free_port
from tests.support import ROOT


@contextlib.contextmanager
def local_stack_process(
    folder: Path, *extra_args: str, env: dict[str, str] | None = None
) -> Iterator[dict[str, Any]]:
    """Start `python -m memory_bridge_dev.local_stack` on free ports, wait for its state file, and point
    the CLI at it (MEMORY_BRIDGE_LOCAL_STATE) until the stack is stopped with Ctrl-C (SIGINT).

    Its output goes to a file, not a pipe: a pipe nobody reads fills up and blocks the stack.
    """
    state, log = folder / "local-stack.json", folder / "stack.log"
    child_env = {**os.environ, "MEMORY_BRIDGE_LOCAL_STATE": str(state), **(env or {})}
    for name in ("AWS_ENDPOINT_URL", "TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN", "MEMORY_API_BASE_URL"):
        child_env.pop(name, None)
    args = [sys.executable, "-m", "memory_bridge_dev.local_stack", "--provisioning-seconds", "0.5"]
    args += ["--front-port", str(free_port()), "--sandbox-port", str(free_port())]
    args += ["--moto-port", str(free_port()), *extra_args]
    with log.open("w") as output:
        process = subprocess.Popen(args, cwd=ROOT, env=child_env, stdout=output, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 45
    while not state.exists():
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            pytest.fail("local stack did not start:\n" + log.read_text())
        time.sleep(0.2)
    previous = os.environ.get("MEMORY_BRIDGE_LOCAL_STATE")
    os.environ["MEMORY_BRIDGE_LOCAL_STATE"] = str(state)
    try:
        yield {**json.loads(state.read_text()), "process": process, "state": state, "log": log}
    finally:
        if previous is None:
            os.environ.pop("MEMORY_BRIDGE_LOCAL_STATE", None)
        else:
            os.environ["MEMORY_BRIDGE_LOCAL_STATE"] = previous
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            process.wait(timeout=30)
