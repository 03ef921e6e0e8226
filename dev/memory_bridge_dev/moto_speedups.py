"""Make moto's SQS usable at volume (dev-only; never deployed).

moto's SQS recomputes every message's visibility, through a slow datetime-based clock, many times per
ReceiveMessage: with 2,000 messages a single receive takes about 0.65 s (moto notes "This can become
very inefficient if a large number of messages are in-flight"). The same clock, read from time.time(),
gives the same answers about 20 times faster. Applied to the in-process moto servers of the tests and
the local stack; it changes moto's speed, not what the bridge sends or receives.
"""

from __future__ import annotations

import datetime
import time

_EPOCH = datetime.datetime(1970, 1, 1)


def _unix_time(dt: datetime.datetime | None = None) -> float:
    return time.time() if dt is None else (dt - _EPOCH).total_seconds()


def _unix_time_millis(dt: datetime.datetime | None = None) -> float:
    return _unix_time(dt) * 1000.0


def apply() -> None:
    from moto.sqs import models

    models.unix_time = _unix_time  # type: ignore[attr-defined]
    models.unix_time_millis = _unix_time_millis  # type: ignore[attr-defined]
