"""How Lambda would run what `make bench` measured here: the CPU share, the bill. Pure.

Lambda gives a function memory/1769 of a vCPU while it handles an invocation (one full vCPU at
1,769 MB); init (the module import and set-up) runs at full speed. So, for one invocation measured
here as `cpu` milliseconds of CPU within `wall` milliseconds:

    modelled = cpu * max(1769 / MemorySize, 1) + (wall - cpu)

the second term being what it waited on I/O, which no CPU share speeds up. A cold first answer is
init's wall time (full speed) plus the first invocation so modelled. More than one vCPU (above
1,769 MB) does not speed up a single-threaded handler, hence the floor of 1.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

FULL_VCPU_MB = 1769
# Lambda on arm64 (Graviton), us-east-1, as published on the AWS Lambda pricing page
# (read 2026-12-01): per GB-second of duration, and per request.
ARM64_PRICE_PER_GB_SECOND = 0.0000133334
PRICE_PER_MILLION_REQUESTS = 0.20
# API Gateway REST API, us-east-1, first 333 million requests a month: the same at every memory size.
REST_API_PRICE_PER_MILLION = 3.50
PRICE_DATE = "2026-12-01"
MEMORY_SIZES = (128, 256, 512, 1024)


def cpu_factor(memory_mb: int) -> float:
    """How much longer CPU work takes in an invocation at this memory size than here at full speed."""
    if memory_mb <= 0:
        raise ValueError("memory_mb must be positive")
    return max(FULL_VCPU_MB / memory_mb, 1.0)


def modelled_ms(cpu_ms: float, wall_ms: float, memory_mb: int) -> float:
    """One invocation's duration on Lambda at `memory_mb`: CPU slowed to its share, I/O wait as measured."""
    io_wait = max(wall_ms - cpu_ms, 0.0)
    return cpu_ms * cpu_factor(memory_mb) + io_wait


def cold_first_answer_ms(
    init_wall_ms: float, first_cpu_ms: float, first_wall_ms: float, memory_mb: int
) -> float:
    """Init at full speed, then the first invocation at the memory size's CPU share."""
    return init_wall_ms + modelled_ms(first_cpu_ms, first_wall_ms, memory_mb)


def percentile(values: Sequence[float], fraction: float) -> float:
    ordered = sorted(values)
    if not ordered:
        raise ValueError("no values")
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def cost_per_million(durations_ms: Sequence[float], memory_mb: int) -> float:
    """Lambda's bill for a million invocations like these: duration billed per started millisecond."""
    if not durations_ms:
        raise ValueError("no durations")
    billed_ms = statistics.fmean(math.ceil(d) for d in durations_ms)
    gb_seconds = billed_ms / 1000 * memory_mb / 1024
    return gb_seconds * ARM64_PRICE_PER_GB_SECOND * 1_000_000 + PRICE_PER_MILLION_REQUESTS


@dataclass(frozen=True)
class Invocation:
    cpu_ms: float
    wall_ms: float
    # Wall time spent waiting on DynamoDB, and how many calls: to swap the emulator's answer time
    # for a set one (`with_dynamodb_latency`).
    dynamodb_wall_ms: float = 0.0
    dynamodb_calls: int = 0

    def with_dynamodb_latency(self, latency_ms: float) -> Invocation:
        """The same invocation had each DynamoDB call taken `latency_ms` of wall time (CPU unchanged)."""
        wall = self.wall_ms - self.dynamodb_wall_ms + self.dynamodb_calls * latency_ms
        return Invocation(
            self.cpu_ms, max(wall, self.cpu_ms), self.dynamodb_calls * latency_ms, self.dynamodb_calls
        )


@dataclass(frozen=True)
class ColdStart:
    init_wall_ms: float
    init_cpu_ms: float
    first: Invocation


def size_row(warm: Sequence[Invocation], cold: Sequence[ColdStart], memory_mb: int) -> dict[str, Any]:
    """One row of the memory-size table: modelled warm p50/p99, cold first answer, cost per million."""
    durations = [modelled_ms(i.cpu_ms, i.wall_ms, memory_mb) for i in warm]
    colds = [cold_first_answer_ms(c.init_wall_ms, c.first.cpu_ms, c.first.wall_ms, memory_mb) for c in cold]
    return {
        "memory_mb": memory_mb,
        "warm_p50_ms": round(percentile(durations, 0.5), 1),
        "warm_p99_ms": round(percentile(durations, 0.99), 1),
        "cold_first_answer_ms": round(statistics.median(colds), 1),
        "cost_per_million_usd": round(cost_per_million(durations, memory_mb), 3),
    }


def template_memory_size(template: dict[str, Any], function: str = "WebhookFunction") -> int:
    """The function's MemorySize: its own property, else the Globals' (a literal or a Ref to a parameter)."""
    value = template["Resources"][function].get("Properties", {}).get("MemorySize")
    if value is None:
        value = template.get("Globals", {}).get("Function", {}).get("MemorySize", 128)
    if isinstance(value, dict) and "Ref" in value:
        value = template["Parameters"][value["Ref"]]["Default"]
    return int(value)
