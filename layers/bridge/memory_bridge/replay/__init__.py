"""The replay's flow. Public names live here; each step has a module of its own (see engine.py)."""

from memory_bridge.replay.engine import *  # noqa: F403
