"""Packing a profile's messages into Memory requests of at most ten observations. Written once.

`plan_requests` is the one rule: whole envelopes together, greedily, up to ten observations; an
envelope of more than ten alone, in chunks of ten. The dry run counts its requests with it, and the
posting step builds its requests from it.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from memory_bridge.domain.observations import MAX_OBSERVATIONS_PER_REQUEST, Observation
from memory_bridge.replay.pending import Pending

# One request: (index of the envelope in the group, parts it takes from the front of what it has left).
PlannedRequest = list[tuple[int, int]]


def plan_requests(sizes: Sequence[int]) -> list[PlannedRequest]:
    """The requests for envelopes of these observation counts, in order."""
    requests: list[PlannedRequest] = []
    batch: PlannedRequest = []
    size = 0
    for index, count in enumerate(sizes):
        if count > MAX_OBSERVATIONS_PER_REQUEST:
            if batch:
                requests.append(batch)
                batch, size = [], 0
            chunks = math.ceil(count / MAX_OBSERVATIONS_PER_REQUEST)
            requests.extend([[(index, MAX_OBSERVATIONS_PER_REQUEST)] for _ in range(chunks)])
            continue
        if size + count > MAX_OBSERVATIONS_PER_REQUEST:
            requests.append(batch)
            batch, size = [], 0
        batch.append((index, count))
        size += count
    if batch:
        requests.append(batch)
    return requests


def request_count(sizes: Sequence[int]) -> int:
    """How many requests envelopes of these observation counts take."""
    return len(plan_requests(sizes))


@dataclass
class Request:
    items: list[Pending]
    parts: list[list[int]]  # per item: the parts this request carries

    @property
    def observations(self) -> list[Observation]:
        out: list[Observation] = []
        for item, parts in zip(self.items, self.parts, strict=True):
            by_part = dict(zip(item.envelope.part_numbers, item.envelope.observations, strict=True))
            out.extend(by_part[p] for p in parts)
        return out

    def pairs(self) -> list[tuple[Pending, list[int]]]:
        return list(zip(self.items, self.parts, strict=True))


def pack(items: Sequence[Pending]) -> Iterator[Request]:
    """The group's requests, built as they are reached: a chunk takes the first ten parts the
    envelope has left then (an accepted chunk removes its parts), and an envelope a failure or a
    stop emptied is skipped."""
    for planned in plan_requests([len(item.parts) for item in items]):
        chosen = [(items[index], items[index].parts[:take]) for index, take in planned if items[index].parts]
        if chosen:
            yield Request([item for item, _ in chosen], [list(parts) for _, parts in chosen])
