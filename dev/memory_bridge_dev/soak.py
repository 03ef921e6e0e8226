"""`make soak`: fault injection that ends with an accounting, not an impression.

  • 5,000 distinct messages from 500 customers go to the local front over HTTP from 8 senders;
  • 10 % are delivered twice, half of those at the same moment;
  • the sandbox fails 30 % of requests: 429 with Retry-After, 500, 503, 3 s latency, a connection dropped
    before the request is read, and one dropped after it was accepted (5 % each);
  • senders behave like Twilio: a non-2xx answer or no answer within 5 s is retried (at most 3 tries);
  • then Memory heals and `memory-bridge dlq replay` runs until the queue is empty.

Per message id it counts: posted once, posted more than once, never posted, still parked.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import queue
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import urllib3

from memory_bridge.signature import compute_signature
from memory_bridge_dev.parking import free_port

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "bench" / "results"
FAULT_KINDS: list[dict[str, Any]] = [
    {"status": 429, "retry_after": 1},
    {"status": 500},
    {"status": 503},
    {"latency": 3.0},
    {"drop": "before"},
    {"drop": "after"},
]


def start_stack(state: Path) -> subprocess.Popen[str]:
    env = {
        **os.environ,
        "MEMORY_BRIDGE_LOCAL_STATE": str(state),
        "POWERTOOLS_LOG_LEVEL": "ERROR",
        "POWERTOOLS_METRICS_DISABLED": "true",
    }
    env.pop("AWS_ENDPOINT_URL", None)
    args = [
        sys.executable,
        "-m",
        "memory_bridge_dev.local_stack",
        "--provisioning-seconds",
        "0.3",
        "--front-port",
        str(free_port()),
        "--sandbox-port",
        str(free_port()),
        "--moto-port",
        str(free_port()),
    ]
    process = subprocess.Popen(
        args, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True
    )
    deadline = time.monotonic() + 60
    while not state.exists():
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError("the local stack did not start")
        time.sleep(0.2)
    return process


def sequential_faults(rate: float) -> list[dict[str, Any]]:
    """Faults tried in order, each with the chance that makes every kind equally likely, summing to `rate`."""
    share = rate / len(FAULT_KINDS)
    faults, left = [], 1.0
    for kind in FAULT_KINDS:
        faults.append({**kind, "probability": share / left})
        left -= share
    return faults


class Senders:
    def __init__(self, url: str, token: str, account_sid: str, concurrency: int):
        self.url, self.token, self.account_sid = url, token, account_sid
        self.pool = urllib3.PoolManager(maxsize=concurrency * 2, retries=False)
        self.answers: Counter[str] = Counter()
        self.twilio_timeouts = 0
        self.gave_up: list[str] = []
        self.lock = threading.Lock()

    def params(self, sid: str, customer: int) -> list[tuple[str, str]]:
        return [
            ("EventType", "onMessageAdded"),
            ("AccountSid", self.account_sid),
            ("ConversationSid", "CHsoak"),
            ("MessageSid", sid),
            ("Index", "0"),
            ("DateCreated", "2026-11-21T10:00:00.000Z"),
            ("Body", f"soak {sid}"),
            ("Author", f"+1555300{customer:04d}"),
            ("Source", "SDK"),
        ]

    def deliver(self, sid: str, customer: int) -> None:
        params = self.params(sid, customer)
        body = urlencode(params).encode()
        headers = {
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Twilio-Signature": compute_signature(self.url, params, self.token),
        }
        for attempt in range(3):
            try:
                response = self.pool.request(
                    "POST", self.url, body=body, headers=headers, timeout=urllib3.Timeout(connect=2, read=5)
                )
                status = str(response.status)
            except urllib3.exceptions.ReadTimeoutError:
                status = "timeout"
                with self.lock:
                    self.twilio_timeouts += 1
            except urllib3.exceptions.HTTPError:
                status = "connection-error"
            with self.lock:
                self.answers[status] += 1
            if status.startswith("2"):
                return
            time.sleep(1 + attempt)
        with self.lock:
            self.gave_up.append(sid)


def run_cli(state: Path, *argv: str) -> tuple[int, str]:
    from memory_bridge import cli

    os.environ["MEMORY_BRIDGE_LOCAL_STATE"] = str(state)
    out, err = io.StringIO(), io.StringIO()
    code = cli.main(list(argv), out=out, err=err)
    return code, out.getvalue()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="make soak", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--customers", type=int, default=500)
    parser.add_argument("--senders", type=int, default=8)
    parser.add_argument("--duplicate-rate", type=float, default=0.10)
    parser.add_argument("--fault-rate", type=float, default=0.30)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    rng = random.Random(args.seed)
    state = Path(tempfile.mkdtemp(prefix="memory-bridge-soak-")) / "local-stack.json"
    started = time.monotonic()
    print(f"• starting the local stack (state {state})", flush=True)
    stack = start_stack(state)
    try:
        info = json.loads(state.read_text())
        sandbox = info["sandbox_url"]
        for fault in sequential_faults(args.fault_rate):
            urllib3.request("POST", f"{sandbox}/__sandbox/faults", json=fault)
        senders = Senders(info["webhook_url"], info["auth_token"], info["account_sid"], args.senders)
        sids = [f"IMsoak{i:06d}" for i in range(args.messages)]
        customer_of = {sid: rng.randrange(args.customers) for sid in sids}
        twice = rng.sample(sids, int(args.messages * args.duplicate_rate))
        simultaneous = set(twice[: len(twice) // 2])
        work: queue.Queue[tuple[str, bool] | None] = queue.Queue()
        plan = [(sid, sid in simultaneous) for sid in sids] + [
            (sid, False) for sid in twice if sid not in simultaneous
        ]
        rng.shuffle(plan)
        for item in plan:
            work.put(item)

        progress, progress_lock = [0], threading.Lock()

        def sender() -> None:
            while True:
                item = work.get()
                if item is None:
                    return
                sid, at_once = item
                if at_once:  # the same webhook twice at the same moment
                    twin = threading.Thread(target=senders.deliver, args=(sid, customer_of[sid]))
                    twin.start()
                    senders.deliver(sid, customer_of[sid])
                    twin.join()
                else:
                    senders.deliver(sid, customer_of[sid])
                with progress_lock:
                    progress[0] += 1
                    if progress[0] % 500 == 0:
                        print(
                            f"  sent {progress[0]}/{len(plan)}  answers {dict(senders.answers)}", flush=True
                        )

        print(
            f"• sending {args.messages} messages from {args.customers} customers, {args.senders} senders, "
            f"{len(twice)} delivered twice ({len(simultaneous)} at the same moment), "
            f"{args.fault_rate:.0%} of Memory requests failing",
            flush=True,
        )
        threads = [threading.Thread(target=sender) for _ in range(args.senders)]
        for thread in threads:
            thread.start()
        for _ in threads:
            work.put(None)
        for thread in threads:
            thread.join()
        sending_seconds = time.monotonic() - started
        _, stats_out = run_cli(state, "dlq", "stats", "--json")
        parked_before = json.loads(stats_out)
        print(
            f"• sent in {sending_seconds:.0f} s; parked {parked_before['visible']} "
            f"({parked_before['byKind']}); healing Memory and replaying",
            flush=True,
        )
        urllib3.request("DELETE", f"{sandbox}/__sandbox/faults")
        time.sleep(3.5)  # let requests that were still sleeping in the sandbox finish
        rounds = []
        for _ in range(5):
            code, out = run_cli(state, "dlq", "replay", "--kind", "all", "--json")
            report = json.loads(out)
            rounds.append(report["counts"])
            print(f"  replay: {report['counts']}", flush=True)
            if code == 0:
                break
        _, out = run_cli(state, "dlq", "peek", "-n", "100000", "--json")
        still_parked = Counter(row.get("messageSid") for row in json.loads(out)["messages"])
        held = urllib3.request("GET", f"{sandbox}/__sandbox/observations?storeId={info['store_id']}").json()
        posted = Counter(o["content"].removeprefix("soak ") for o in held["observations"])
        accounting = {
            "posted_once": sum(1 for sid in sids if posted[sid] == 1),
            "posted_more_than_once": sum(1 for sid in sids if posted[sid] > 1),
            "never_posted": sum(1 for sid in sids if posted[sid] == 0 and not still_parked[sid]),
            "still_parked": sum(1 for sid in sids if still_parked[sid]),
        }
        doubled = [sid for sid in sids if posted[sid] > 1]
        result = {
            "date": datetime.now(UTC).isoformat(timespec="seconds"),
            "messages": args.messages,
            "customers": args.customers,
            "senders": args.senders,
            "delivered_twice": len(twice),
            "at_the_same_moment": len(simultaneous),
            "fault_rate": args.fault_rate,
            "answers": dict(senders.answers),
            "twilio_timeouts": senders.twilio_timeouts,
            "senders_gave_up": len(senders.gave_up),
            "parked_after_sending": parked_before["visible"],
            "parked_by_kind": parked_before["byKind"],
            "replay_rounds": rounds,
            "accounting": accounting,
            "doubled_examples": doubled[:10],
            "seconds": round(time.monotonic() - started, 1),
        }
    finally:
        stack.send_signal(signal.SIGINT)
        stack.wait(timeout=30)
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    (RESULTS / f"soak-{stamp}.json").write_text(json.dumps(result, indent=2) + "\n")
    ok = accounting["posted_once"] == args.messages and sum(accounting.values()) == args.messages
    print("\nmemory-bridge soak — accounting per message id")
    print(f"  posted once             {accounting['posted_once']:>6}")
    print(f"  posted more than once   {accounting['posted_more_than_once']:>6}")
    print(f"  never posted            {accounting['never_posted']:>6}")
    print(f"  still parked            {accounting['still_parked']:>6}")
    print(
        f"  HTTP answers to the senders: {dict(senders.answers)}; Twilio-side timeouts (>5 s): "
        f"{senders.twilio_timeouts}; senders that gave up: {len(senders.gave_up)}"
    )
    print(f"  {result['seconds']} s in all; written to bench/results/soak-{stamp}.json")
    print("  " + ("OK: every message posted exactly once." if ok else "TARGET MISSED: see the counts above."))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
