"""Run the CLI and kill it (SIGKILL, as `kill -9` does) at a chosen step of a replay (dev-only).

    MEMORY_BRIDGE_CRASH=<step>:<n> python -m memory_bridge_dev.crash_points dlq replay …

runs `memory-bridge dlq replay …` and kills the process the n-th time the replay reaches <step>
(STEPS below); without MEMORY_BRIDGE_CRASH it is the plain CLI. Either way it writes
"crash-points: engine started" to stderr when the replay engine starts, so that a driver killing it
from outside at a random time can count from there, and "crash-points: killed at <step> #<n>" just
before a kill. Nothing is caught or cleaned up: the process ends as it would under kill -9.

`run_replay` drives one such process from outside (a hook kill, a kill at a random time after the
engine started, or a run left to finish), and `expire_leases` writes what the passing of the
killed run's hold would mean in the ledger; the crash test and `make soak` share both.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ENV = "MEMORY_BRIDGE_CRASH"
STARTED = "crash-points: engine started"
KILLED = "crash-points: killed at"

# step → what has happened when the process dies there
STEPS = {
    "claim": "a request is about to take its lease: the ledger is not written yet",
    "claimed": "the parts are unsure in the ledger and leased; the POST has not started",
    "posted": "Memory answered 202; the ledger does not know yet",
    "settled": "a ledger settle was written (after a 202 or a List); the SQS delete has not happened",
    "chunk": "one request of a message needing several was accepted; the next has not been claimed",
    "deleted": "messages were deleted from the queue after their settle",
    "listed": "List Observations answered; what it found is not settled yet",
    "replaced": "a changed envelope was parked again; the old message is not deleted yet",
}

_calls: Counter[str] = Counter()


def parse(value: str | None) -> tuple[str, int] | None:
    """`step:n` → (step, n); None or "" → None."""
    if not value:
        return None
    step, _, count = value.partition(":")
    if step not in STEPS:
        raise ValueError(f"{ENV}: unknown step {step!r}; known: {sorted(STEPS)}")
    n = int(count or "1")
    if n < 1:
        raise ValueError(f"{ENV}: the count must be 1 or more")
    return step, n


def _say(text: str) -> None:
    os.write(2, (text + "\n").encode())


def _reached(step: str, target: tuple[str, int] | None) -> None:
    _calls[step] += 1
    if target is not None and target == (step, _calls[step]):
        _say(f"{KILLED} {step} #{_calls[step]}")
        os.kill(os.getpid(), signal.SIGKILL)


def _wrap(
    owner: Any,
    name: str,
    step: str,
    target: tuple[str, int] | None,
    *,
    before: bool,
    only_if: Callable[[tuple[Any, ...], Any], bool] = lambda _args, _result: True,
) -> None:
    original = getattr(owner, name)

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if before:
            _reached(step, target)
            return original(*args, **kwargs)
        result = original(*args, **kwargs)
        if only_if(args, result):
            _reached(step, target)
        return result

    wrapper.__wrapped__ = original  # type: ignore[attr-defined]
    setattr(owner, name, wrapper)


def install(target: tuple[str, int] | None) -> None:
    """Patch the replay's steps (and announce the engine's start)."""
    from memory_bridge import replay
    from memory_bridge.adapters import dead_letters
    from memory_bridge.replay.books import Books
    from memory_bridge.replay.check import MemoryCheck

    books = Books
    _wrap(books, "claim", "claim", target, before=True)
    _wrap(books, "claim", "claimed", target, before=False, only_if=lambda _a, kept: bool(kept.items))
    _wrap(books, "accepted", "posted", target, before=True)
    _wrap(
        books,
        "accepted",
        "chunk",
        target,
        before=False,
        only_if=lambda args, _r: any(item.parts for item in args[1].items),
    )
    _wrap(books, "settle", "settled", target, before=False, only_if=lambda args, _r: bool(args[1]))
    _wrap(books, "delete", "deleted", target, before=False, only_if=lambda args, _r: bool(args[1]))
    _wrap(
        MemoryCheck,
        "existing_keys",
        "listed",
        target,
        before=False,
        only_if=lambda _a, keys: keys is not None,
    )

    queue = dead_letters.DeadLetterQueue
    park = queue.park

    def replace(self: Any, old: Any, envelope: Any) -> None:
        park(self, envelope)
        _reached("replaced", target)
        self.delete([old])

    queue.replace = replace  # type: ignore[method-assign]

    engine_run = replay.ReplayEngine.run

    def announced(self: Any, options: Any) -> Any:
        _say(STARTED)
        return engine_run(self, options)

    replay.ReplayEngine.run = announced  # type: ignore[method-assign]


@dataclass
class ReplayProcess:
    """How one replay subprocess ended."""

    code: int | None
    killed: str | None  # "hook" (at a named step), "time" (from outside), or None: it finished
    stdout: str
    stderr: str
    seconds: float


def run_replay(
    replay_argv: Sequence[str],
    env: Mapping[str, str],
    *,
    step: tuple[str, int] | None = None,
    kill_after_ms: int | None = None,
    timeout: float = 60.0,
    cwd: Path | None = None,
) -> ReplayProcess:
    """Run `memory-bridge <replay_argv>` under this module; kill it at `step` (the n-th time the
    replay reaches it) or `kill_after_ms` after its engine started (SIGKILL either way)."""
    argv = [sys.executable, "-m", "memory_bridge_dev.crash_points", *replay_argv]
    started_at = time.monotonic()
    process = subprocess.Popen(
        argv, env=_replay_env(env, step), cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    out: list[str] = []
    err: list[str] = []
    engine_started = threading.Event()
    readers = [
        threading.Thread(target=_pump, args=(process.stdout, out, None), daemon=True),
        threading.Thread(target=_pump, args=(process.stderr, err, engine_started), daemon=True),
    ]
    for reader in readers:
        reader.start()
    killed: str | None = None
    try:
        killed = _wait(process, engine_started, kill_after_ms, timeout)
    finally:
        _reap(process, readers)
    stderr = "".join(err)
    if KILLED in stderr:
        killed = "hook"
    return ReplayProcess(process.returncode, killed, "".join(out), stderr, time.monotonic() - started_at)


def _replay_env(env: Mapping[str, str], step: tuple[str, int] | None) -> dict[str, str]:
    """`env` with this module's variable set to `step`, or left out."""
    replay_env = {k: v for k, v in env.items() if k != ENV}
    if step is not None:
        replay_env[ENV] = f"{step[0]}:{step[1]}"
    return replay_env


def _pump(stream: Any, into: list[str], engine_started: threading.Event | None) -> None:
    """Collect `stream`'s lines; set `engine_started` (if given) when the engine announces itself."""
    for line in stream:
        into.append(line)
        if engine_started is not None and line.startswith(STARTED):
            engine_started.set()


def _wait(
    process: subprocess.Popen[str],
    engine_started: threading.Event,
    kill_after_ms: int | None,
    timeout: float,
) -> str | None:
    """Wait for the replay to end, killing it `kill_after_ms` after its engine started; "time" if
    this killed it."""
    killed: str | None = None
    if kill_after_ms is not None and engine_started.wait(timeout):
        time.sleep(kill_after_ms / 1000)
        if process.poll() is None:
            process.kill()  # SIGKILL: kill -9
            killed = "time"
    process.wait(timeout)
    return killed


def _reap(process: subprocess.Popen[str], readers: list[threading.Thread]) -> None:
    """Kill the replay if it still runs, and let the readers finish its output."""
    if process.poll() is None:
        process.kill()
        process.wait()
    for reader in readers:
        reader.join(5)


def expire_leases(dynamodb: Any, table: str) -> int:
    """End every ledger lease, as the passing of a killed run's hold would; returns how many.

    A replay's lease runs until its own clock + its hold (~15 min), a clock nobody here can move."""
    from memory_bridge.adapters.ledger_table import KEY_PREFIX

    ended = 0
    pages = dynamodb.get_paginator("scan").paginate(TableName=table)
    for item in (item for page in pages for item in page["Items"]):
        key = item["id"]["S"]
        if key.startswith(KEY_PREFIX) and float(item.get("lease_until", {}).get("N", "0")) > 0:
            dynamodb.update_item(
                TableName=table,
                Key={"id": {"S": key}},
                UpdateExpression="SET lease_until = :zero",
                ExpressionAttributeValues={":zero": {"N": "0"}},
            )
            ended += 1
    return ended


def main(argv: Sequence[str] | None = None) -> int:
    from memory_bridge_cli import main as cli

    install(parse(os.environ.get(ENV)))
    return cli.main(argv)


if __name__ == "__main__":
    sys.exit(main())
