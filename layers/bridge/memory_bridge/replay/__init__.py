"""The replay's flow, one step a module; these are its public names.

options.py    what a run is asked to do (and the ReplayFunction's event)
summary.py    what it did: counts, summary, progress line, metrics
context.py    what one run's steps share
intake.py     receive, read, redact and filter envelopes
slicing.py    how many messages a slice holds: what fits in their hold
pending.py    one message in flight, and how the ledger sorts its parts
plan.py       the dry run
check.py      List Observations before posting what may be in Memory
resolving.py  authors to profiles, counted
packing.py    up to ten observations a request: the one packing rule
posting.py    one profile's requests, and what each answer means
books.py      every ledger write and queue change, in the order that survives a crash
pacer.py      the rate, 429s and the time limit
engine.py     the engine and one run's lifecycle
"""

from memory_bridge.replay.engine import ReplayEngine, Run
from memory_bridge.replay.options import KindFilter, ReplayOptions, ReplayRequestError, options_from_event
from memory_bridge.replay.pacer import MAX_INTERVAL_SECONDS, OutOfTime, Pacer
from memory_bridge.replay.packing import plan_requests, request_count
from memory_bridge.replay.summary import (
    ReplayCounts,
    ReplaySummary,
    eta_seconds,
    progress_line,
    replay_metrics,
)

__all__ = [
    "MAX_INTERVAL_SECONDS",
    "KindFilter",
    "OutOfTime",
    "Pacer",
    "ReplayCounts",
    "ReplayEngine",
    "ReplayOptions",
    "ReplayRequestError",
    "ReplaySummary",
    "Run",
    "eta_seconds",
    "options_from_event",
    "plan_requests",
    "progress_line",
    "replay_metrics",
    "request_count",
]
