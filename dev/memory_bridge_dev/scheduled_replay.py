"""The scheduled replay on the local stack: the ReplayFunction's handler, every N seconds, with the
input template.yaml gives its ScheduleV2 event (dev-only).

    make run REPLAY_EVERY=20        (or: python -m memory_bridge_dev.local_stack --replay-every 20)

Break Memory, send, heal, wait: the parked messages are posted once, by themselves. The input is the
template's, parameters at their defaults; only its minimum age may be shortened for a quick demo
(`--replay-min-age`, REPLAY_MIN_AGE), since the template waits minutes before a first retry.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

REPLAY_FUNCTION = "ReplayFunction"
SCHEDULE_EVENT = "ScheduledReplay"
_SUB_REFERENCE = re.compile(r"\$\{([A-Za-z0-9:]+)\}")


def schedule_event(template: Mapping[str, Any]) -> dict[str, Any]:
    """The Properties of the ReplayFunction's ScheduleV2 event."""
    event = template["Resources"][REPLAY_FUNCTION]["Properties"]["Events"][SCHEDULE_EVENT]
    if event["Type"] != "ScheduleV2":
        raise ValueError(f"{REPLAY_FUNCTION}.{SCHEDULE_EVENT} is a {event['Type']}, not a ScheduleV2")
    properties: dict[str, Any] = event["Properties"]
    return properties


def resolve_sub(value: Any, template: Mapping[str, Any], parameters: Mapping[str, str]) -> str:
    """A string or an `!Sub` of parameter references, with `parameters` or else their defaults."""
    if isinstance(value, str):
        return value
    if not (isinstance(value, dict) and isinstance(value.get("Fn::Sub"), str)):
        raise ValueError(f"unsupported template value {value!r}")
    declared = template.get("Parameters", {})

    def lookup(match: re.Match[str]) -> str:
        name = match.group(1)
        if name in parameters:
            return parameters[name]
        if name in declared and "Default" in declared[name]:
            return str(declared[name]["Default"])
        raise KeyError(f"the local stack has no value for {name}")

    return _SUB_REFERENCE.sub(lookup, value["Fn::Sub"])


def scheduled_input(
    template: Mapping[str, Any], parameters: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """The JSON the schedule hands the ReplayFunction, as a dict."""
    document = json.loads(resolve_sub(schedule_event(template)["Input"], template, parameters or {}))
    if not isinstance(document, dict):
        raise ValueError("the schedule's Input must be a JSON object")
    return document


def run_line(summary: Mapping[str, Any], at: datetime) -> str | None:
    """One line for the console when a run did something or has something to say; else None."""
    if "error" in summary:
        return f"• scheduled replay {at:%H:%M:%S}: not started: {summary['error']}"
    counts = summary["counts"]
    if not any(
        counts[k] for k in ("replayed", "already_posted", "failed", "left_for_people", "needs_attention")
    ):
        return None
    line = (
        f"• scheduled replay {at:%H:%M:%S}: replayed {counts['replayed']}, already posted "
        f"{counts['already_posted']}, failed again {counts['failed']}, left for people "
        f"{counts['left_for_people']} (needing attention {counts['needs_attention']}, "
        f"too recent {counts['too_recent']})"
    )
    return line + (f"; stopped: {summary['stopped']}" if summary.get("stopped") else "")


@dataclass
class ScheduledReplayLoop:
    """Calls `handler(event, context)` every `every` seconds on a thread of its own until stopped.

    Like the deployed schedule with reserved concurrency 1, runs never overlap: the next starts
    `every` seconds after the previous one started, or as soon as it ends if it ran longer.
    """

    handler: Callable[[dict[str, Any], Any], dict[str, Any]]
    event: dict[str, Any]
    every: float
    context: Callable[[], Any]
    report: Callable[[str], None] = print
    now: Callable[[], datetime] = datetime.now
    runs: int = 0
    _stopped: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="scheduled-replay", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        due = time.monotonic() + self.every
        while not self._stopped.wait(max(0.0, due - time.monotonic())):
            due = time.monotonic() + self.every  # counted from this run's start
            try:
                summary = self.handler(dict(self.event), self.context())
            except Exception as error:  # noqa: BLE001 - in Lambda a crash ends one run; the next one comes
                summary = {"error": f"run failed ({type(error).__name__})"}
            self.runs += 1
            line = run_line(summary, self.now())
            if line:
                self.report(line)

    def stop(self) -> None:
        self._stopped.set()
        if self._thread is not None:
            self._thread.join(timeout=30)


# ---- `make run` wiring (memory_bridge_dev.local_stack calls these two) ----------------------------


def add_arguments(parser: Any) -> None:
    """--replay-every / REPLAY_EVERY and --replay-min-age / REPLAY_MIN_AGE on `make run`'s parser."""
    import os

    parser.add_argument(
        "--replay-every",
        type=float,
        default=float(os.environ.get("REPLAY_EVERY") or 0),
        metavar="SECONDS",
        help="run the scheduled replay (the template's input) every SECONDS; 0, the default, never",
    )
    parser.add_argument(
        "--replay-min-age",
        type=float,
        default=float(os.environ["REPLAY_MIN_AGE"]) if os.environ.get("REPLAY_MIN_AGE") else None,
        metavar="SECONDS",
        help="with --replay-every: retry envelopes that failed this long ago (default: the template's)",
    )


def start_from_args(args: Any, report: Callable[[str], None]) -> ScheduledReplayLoop | None:
    """Start the loop when `--replay-every` asks for one; call after the local stack has started
    (the replay handler reads the environment the stack set up)."""
    if not args.replay_every or args.replay_every <= 0:
        return None
    from memory_bridge_dev.apigw import LocalLambdaContext, load_handler_module
    from memory_bridge_dev.aws_resources import load_template

    event = scheduled_input(load_template())
    if args.replay_min_age is not None:
        event["minAgeSeconds"] = args.replay_min_age
    handler = load_handler_module("functions/replay/app.py", "replay_app").lambda_handler
    loop = ScheduledReplayLoop(
        handler=handler,
        event=event,
        every=args.replay_every,
        context=lambda: LocalLambdaContext(REPLAY_FUNCTION, 900),
        report=report,
    )
    report(f"• scheduled replay every {args.replay_every:g} s with {json.dumps(event, sort_keys=True)}")
    loop.start()
    return loop
