"""One Lambda execution environment for `make bench`, in a fresh process of its own.

Started by `memory_bridge_dev.bench` with the function's environment already set. It imports the
handler module the way Lambda's init does and reports the wall and CPU time of that import, then
answers batches of API Gateway events sent on stdin, one JSON line each, with the wall and CPU time
of every invocation. CPU is `time.process_time()` (every thread of the process, as Lambda's CPU
share covers them all); the wall time less the CPU time is what the invocation waited on I/O.

Protocol (JSON lines): it writes {"init": …} once imported; then for each {"events": […]} it writes
{"wall_ms": […], "cpu_ms": […], "dynamodb_wall_ms": […], "conversations_wall_ms": […] and
"conversations_calls": […] (the participants reads; these three only with --count-calls), "outcomes":
{…}, "rss_kb": …}; {"profile": […], "top": N} runs the events under cProfile and writes {"profile":
text}; {"exit": true} writes the call counts and the peak RSS, and ends. stdout itself goes to
/dev/null (the functions' log lines), the protocol to a copy of it taken first.
"""

from __future__ import annotations

# What Lambda's runtime client has imported before init: not counted as the function's init.
import argparse
import base64
import collections
import json
import logging
import os
import resource
import sys
import time
import urllib.parse
import uuid
from pathlib import Path
from typing import Any

from memory_bridge_dev.apigw import LocalLambdaContext

ROOT = Path(__file__).resolve().parents[2]
# baseline: memory-bridge as it was at another commit (make bench --baseline REF), from its own tree.
APPS = {"bridge": "app", "peer": "memory_bridge_dev.bench_peer.app", "baseline": "app"}
APP = ""  # set by main()
_ = (base64, logging, urllib.parse, uuid)  # imported for what they cost, not used here


def rss_kb() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


TARGETS = {"DynamoDB_20120810": "dynamodb", "secretsmanager": "secretsmanager", "AmazonSQS": "sqs"}


class CallCounts:
    """Requests by service: at urllib3 (boto3, requests and memory-bridge's Twilio clients use it),
    Memory and Conversations by their ports and AWS by X-Amz-Target; and at memory-bridge's own AWS
    client."""

    def __init__(self) -> None:
        self.counts: collections.Counter[str] = collections.Counter()
        self.dynamodb_wall_ms = 0.0  # time spent in DynamoDB requests (moto, here)
        self.conversations_wall_ms = 0.0  # time spent reading participants (the Conversations sandbox)

    def install(self) -> None:
        from urllib.parse import urlsplit

        from urllib3.connectionpool import HTTPConnectionPool

        memory_port = urlsplit(os.environ["MEMORY_API_BASE_URL"]).port
        conversations_port = urlsplit(os.environ.get("CONVERSATIONS_API_BASE_URL", "")).port
        pool: Any = HTTPConnectionPool
        urlopen = pool.urlopen
        counts = self.counts
        outer = self

        def counted_urlopen(self: Any, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
            if self.port == memory_port:
                counts["memory"] += 1
                return urlopen(self, method, url, *args, **kwargs)
            if conversations_port and self.port == conversations_port:
                counts["conversations"] += 1
                started = time.perf_counter()
                try:
                    return urlopen(self, method, url, *args, **kwargs)
                finally:
                    outer.conversations_wall_ms += (time.perf_counter() - started) * 1000
            target = str((kwargs.get("headers") or {}).get("X-Amz-Target", ""))
            service = TARGETS.get(target.split(".")[0], target or "other")
            counts[service] += 1
            started = time.perf_counter()
            try:
                return urlopen(self, method, url, *args, **kwargs)
            finally:
                if service == "dynamodb":
                    outer.dynamodb_wall_ms += (time.perf_counter() - started) * 1000

        pool.urlopen = counted_urlopen

        if APP in ("bridge", "baseline"):  # memory-bridge's own AWS client uses http.client
            import importlib

            for where in ("memory_bridge.adapters.aws_json", "memory_bridge.aws_json"):
                try:
                    aws_json: Any = importlib.import_module(where)
                    break
                except ImportError:
                    continue
            else:  # a version from before it (boto3 over urllib3: counted above)
                return

            client: Any = aws_json.AwsJsonClient
            send = client._send

            def counted_send(self: Any, operation: str, body: bytes, guard: Any) -> Any:
                service = TARGETS.get(self._target_prefix, self._target_prefix)
                counts[service] += 1
                started = time.perf_counter()
                try:
                    return send(self, operation, body, guard)
                finally:
                    if service == "dynamodb":
                        outer.dynamodb_wall_ms += (time.perf_counter() - started) * 1000

            client._send = counted_send


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--app", choices=sorted(APPS), required=True)
    parser.add_argument("--memory-mb", type=int, default=256)
    parser.add_argument("--count-calls", action="store_true")
    args = parser.parse_args()
    global APP
    APP = args.app
    protocol = os.fdopen(os.dup(1), "w", buffering=1)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    root = Path(os.environ["BENCH_BASELINE_ROOT"]) if args.app == "baseline" else ROOT
    if args.app == "baseline":  # found before the installed (editable) package of this tree
        sys.path.insert(0, str(root / "layers" / "bridge"))
    sys.path.insert(0, str(root / "functions" / "webhook"))
    counts = CallCounts()
    if args.count_calls:
        # urllib3 is imported here, before the clock starts, for both apps alike: its import is then
        # missing from both inits. Only asked for in the warm runs, whose init is not reported.
        counts.install()

    wall0, cpu0 = time.perf_counter(), time.process_time()
    module = __import__(APPS[args.app], fromlist=["lambda_handler"])
    init = {
        "wall_ms": (time.perf_counter() - wall0) * 1000,
        "cpu_ms": (time.process_time() - cpu0) * 1000,
    }
    handler = module.lambda_handler
    protocol.write(json.dumps({"init": init, "rss_kb": rss_kb()}) + "\n")

    for line in sys.stdin:
        command = json.loads(line)
        if command.get("exit"):
            protocol.write(
                json.dumps(
                    {
                        "calls": dict(counts.counts),
                        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                    }
                )
                + "\n"
            )
            return 0
        if "profile" in command:
            protocol.write(
                json.dumps({"profile": profile(handler, command["profile"], command["top"])}) + "\n"
            )
            continue
        protocol.write(json.dumps(run_batch(handler, command["events"], counts, args.memory_mb)) + "\n")
    return 0


def run_batch(
    handler: Any, events: list[dict[str, Any]], counts: CallCounts, memory_mb: int
) -> dict[str, Any]:
    """Invoke the handler with each event; the wall and CPU time of each, and what it called."""
    samples: dict[str, list[Any]] = collections.defaultdict(list)
    outcomes: collections.Counter[str] = collections.Counter()
    counts.counts.clear()
    for event in events:
        context = LocalLambdaContext(memory_mb=memory_mb)
        counts.dynamodb_wall_ms = counts.conversations_wall_ms = 0.0
        calls_before, reads_before = counts.counts["dynamodb"], counts.counts["conversations"]
        w0, c0 = time.perf_counter(), time.process_time()
        answer = handler(event, context)
        c1, w1 = time.process_time(), time.perf_counter()
        samples["cpu_ms"].append((c1 - c0) * 1000)
        samples["wall_ms"].append((w1 - w0) * 1000)
        samples["dynamodb_wall_ms"].append(counts.dynamodb_wall_ms)
        samples["dynamodb_calls"].append(counts.counts["dynamodb"] - calls_before)
        samples["conversations_wall_ms"].append(counts.conversations_wall_ms)
        samples["conversations_calls"].append(counts.counts["conversations"] - reads_before)
        outcomes[f"{answer['statusCode']} {json.loads(answer['body']).get('outcome')}"] += 1
    return {**samples, "outcomes": dict(outcomes), "calls": dict(counts.counts), "rss_kb": rss_kb()}


def profile(handler: Any, events: list[dict[str, Any]], top: int) -> str:
    import cProfile
    import io
    import pstats

    profiler = cProfile.Profile(time.process_time)  # CPU, not wall: waits on sockets count ~0
    for event in events:
        context = LocalLambdaContext()
        profiler.enable()
        handler(event, context)
        profiler.disable()
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    stats.sort_stats("tottime").print_stats(top)
    stats.sort_stats("cumulative").print_stats(top)
    return out.getvalue()


if __name__ == "__main__":
    sys.exit(main())
