"""`make soak`: fault injection that ends with an accounting, not an impression.

  • 5,000 distinct messages from 500 customers go to the local front over HTTP from 8 senders; each
    customer has an SMS conversation of their own in the stack's Conversations sandbox (the business's
    number as proxy), and 10 % of the messages are an agent's replies there (an agent in chat, role
    agent), so the bridge reads real participants to know who spoke;
  • 10 % are delivered twice, half of those at the same moment;
  • the sandbox fails 30 % of requests: 429 with Retry-After, 500, 503, 3 s latency, a connection dropped
    before the request is read, and one dropped after it was accepted (5 % each);
  • 5 % of the bridge's participants reads answer 429 (Retry-After) or 503: those messages are parked
    with stage resolve_speaker, and the replay finds the speaker later;
  • the webhook's AWS calls fail too, through a fault proxy in front of moto: every 8 s, by turns, a
    1.5 s DynamoDB outage (the ledger table answers 500) or a 2.5 s hang of SQS SendMessage;
  • senders behave like Twilio: a non-2xx answer or no answer within 5 s is retried (at most 5 tries,
    1, 2, 4 and 8 s apart);
  • then 50 parked envelopes are put on the dead-letter queue a second time (SQS duplicates);
  • then replays are killed (SIGKILL) at random points while Memory still drops some answers: at a
    named step of the replay (memory_bridge_dev.crash_points) or at a random time after it started;
    after each kill, time passes (moto's SQS clock jumps past the hold, the killed run's leases end);
  • then Memory heals and `memory-bridge dlq replay` runs until the queue is empty;
  • meanwhile a backfill (memory_bridge_dev.soak_backfill): 40 customers' conversations hold a history
    of 20 messages each (every fifth their agent's), a quarter of which the senders also deliver live;
    `memory-bridge backfill` runs while they send, is killed (SIGKILL) and run again, and runs once
    more after the heal.

Per message id it counts: posted once, posted more than once, never posted, still parked; whether it
landed where its speaker says (a customer's words on their own profile as they were written, an
agent's on that customer's profile as "Agent: …" with the agents' source); any Lookup or profile
creation that carried an agent's or the business's identifier; and the slowest answer any sender got
(Twilio waits 5 s). Per history message: posted once, more than once, never, still parked; on its
customer's profile with the right source, an agent's labelled, dated when it was said.
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
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from urllib.parse import urlencode

import boto3
import urllib3

from memory_bridge.domain.signature import compute_signature
from memory_bridge_dev import crash_points, soak_backfill, soak_lifecycle
from memory_bridge_dev.customer_chats import BUSINESS_NUMBER, Chat, RestSeeder, message_params
from memory_bridge_dev.parking import free_port

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "bench" / "results"
# Twilio's retries of Conversations webhooks are undocumented; these senders try five times.
SENDER_TRIES = 5
FAULT_KINDS: list[dict[str, Any]] = [
    {"status": 429, "retry_after": 1},
    {"status": 500},
    {"status": 503},
    {"latency": 3.0},
    {"drop": "before"},
    {"drop": "after"},
]
# The bridge's participants reads (GET …/Participants, in a service or not): what Twilio answers when busy.
CONVERSATIONS_FAULT_KINDS: list[dict[str, Any]] = [
    {"status": 429, "retry_after": 1, "match": "/Participants", "method": "GET"},
    {"status": 503, "match": "/Participants", "method": "GET"},
]
AGENTS = [f"agent{n}@example.com" for n in range(5)]  # chat identities, each in many conversations


def start_stack(state: Path, log: Path | None) -> subprocess.Popen[str]:
    env = {
        **os.environ,
        "MEMORY_BRIDGE_LOCAL_STATE": str(state),
        "POWERTOOLS_LOG_LEVEL": "INFO" if log else "ERROR",
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
        "--aws-fault-proxy",
    ]
    output = log.open("w") if log else subprocess.DEVNULL
    process = subprocess.Popen(args, cwd=ROOT, env=env, stdout=output, stderr=output, text=True)
    deadline = time.monotonic() + 60
    while not state.exists():
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError("the local stack did not start")
        time.sleep(0.2)
    return process


def sequential_faults(rate: float, kinds: list[dict[str, Any]] = FAULT_KINDS) -> list[dict[str, Any]]:
    """Faults tried in order, each with the chance that makes every kind equally likely, summing to `rate`."""
    share = rate / len(kinds)
    faults, left = [], 1.0
    for kind in kinds:
        faults.append({**kind, "probability": share / left})
        left -= share
    return faults


class Senders:
    def __init__(
        self,
        url: str,
        token: str,
        account_sid: str,
        concurrency: int,
        chats: dict[int, Chat],
        by_agent: set[str],
        history: dict[str, soak_backfill.HistoryMessage] | None = None,
    ):
        self.url, self.token, self.account_sid = url, token, account_sid
        self.chats, self.by_agent = chats, by_agent
        self.history = history or {}  # history messages also delivered live (the backfill's race)
        self.pool = urllib3.PoolManager(maxsize=concurrency * 2, retries=False)
        self.answers: Counter[str] = Counter()
        self.twilio_timeouts = 0
        self.slowest = 0.0  # seconds, the slowest answer (or timeout) a sender saw
        self.gave_up: list[str] = []
        self.lock = threading.Lock()

    def params(self, sid: str, customer: int) -> list[tuple[str, str]]:
        """The customer's own message, or their agent's reply, in the customer's conversation."""
        said = self.history.get(sid)
        if said is not None:  # as Twilio sends it: the message the Conversations API holds
            return message_params(
                self.chats[customer],
                account_sid=self.account_sid,
                message_sid=sid,
                body=said.body,
                index=said.index,
                by_agent=said.by_agent,
                date_created=said.date_created.strftime("%Y-%m-%dT%H:%M:%S.000Z"),
            )
        return message_params(
            self.chats[customer],
            account_sid=self.account_sid,
            message_sid=sid,
            body=f"soak {sid}",
            index=int(sid[2:], 16),
            by_agent=sid in self.by_agent,
        )

    def deliver(self, sid: str, customer: int) -> None:
        self.post(self.params(sid, customer), sid)

    def post(self, params: list[tuple[str, str]], sid: str) -> None:
        """Sign and send one webhook; retry a non-2xx as Twilio does, and give up after a few."""
        body = urlencode(params).encode()
        headers = {
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Twilio-Signature": compute_signature(self.url, params, self.token),
        }
        for attempt in range(SENDER_TRIES):
            started = time.monotonic()
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
                self.slowest = max(self.slowest, time.monotonic() - started)
            if status.startswith("2"):
                return
            time.sleep(2**attempt)  # 1, 2, 4, 8 s: long enough to outlast an outage window
        with self.lock:
            self.gave_up.append(sid)


def run_cli(state: Path, *argv: str) -> tuple[int, str]:
    from memory_bridge_cli import main as cli

    os.environ["MEMORY_BRIDGE_LOCAL_STATE"] = str(state)
    out, err = io.StringIO(), io.StringIO()
    code = cli.main(list(argv), out=out, err=err)
    return code, out.getvalue()


def aws_outages(control: str, stop: threading.Event, windows: Counter[str]) -> None:
    """By turns, every 8 s: the ledger table down for 1.5 s, or SendMessage hanging for 2.5 s."""
    turn = 0
    while not stop.wait(8.0):
        if turn % 2 == 0:
            fault, name, seconds = (
                {"service": "dynamodb", "mode": "status", "status": 500},
                "table outage",
                1.5,
            )
        else:
            fault = {"service": "sqs", "mode": "hang", "operation": "SendMessage", "hang_seconds": 10}
            name, seconds = "queue hang", 2.5
        urllib3.request("POST", f"{control}/aws-faults", json=fault)
        stop.wait(seconds)
        urllib3.request("DELETE", f"{control}/aws-faults")
        windows[name] += 1
        turn += 1


def aws_client(service: str, info: dict[str, Any]) -> Any:
    return boto3.client(  # type: ignore[call-overload]
        service,
        endpoint_url=info["moto_url"],
        region_name="us-east-1",
        aws_access_key_id="local",
        aws_secret_access_key="local",
    )


def put_twice(sqs: Any, queue_url: str, count: int) -> int:
    """Send `count` parked envelopes to the queue again, as SQS's duplicate deliveries would."""
    held: list[dict[str, Any]] = []
    copied: set[str] = set()
    try:
        while len(copied) < count:
            answer = sqs.receive_message(
                QueueUrl=queue_url,
                MaxNumberOfMessages=10,
                VisibilityTimeout=60,
                MessageAttributeNames=["All"],
            )
            messages = answer.get("Messages", [])
            if not messages:
                break
            held.extend(messages)
            for message in messages[: count - len(copied)]:
                copied.add(message["MessageId"])
                attributes = {
                    name: {"DataType": value["DataType"], "StringValue": value["StringValue"]}
                    for name, value in (message.get("MessageAttributes") or {}).items()
                }
                sqs.send_message(
                    QueueUrl=queue_url, MessageBody=message["Body"], MessageAttributes=attributes
                )
    finally:
        for start in range(0, len(held), 10):  # let the originals go again at once
            sqs.change_message_visibility_batch(
                QueueUrl=queue_url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"], "VisibilityTimeout": 0}
                    for i, m in enumerate(held[start : start + 10])
                ],
            )
    return len(copied)


def killed_replays(
    info: dict[str, Any], state: Path, count: int, rng: random.Random, dynamodb: Any
) -> list[dict[str, Any]]:
    """Replays killed at random points, each followed by the passing of its hold."""
    env = {**os.environ, "MEMORY_BRIDGE_LOCAL_STATE": str(state), "PYTHONUNBUFFERED": "1"}
    # "chunk" needs a message of more than ten observations: the crash test has those, the soak does not.
    steps = [step for step in crash_points.STEPS if step != "chunk"]
    runs = []
    for index in range(count):
        mode = rng.choice([*steps, "time", "time"])
        step = None if mode == "time" else (mode, rng.randint(1, 3))
        after_ms = rng.randrange(100, 3000) if mode == "time" else None
        ended = crash_points.run_replay(
            ["dlq", "replay", "--kind", "all", "--json"],
            env,
            step=step,
            kill_after_ms=after_ms,
            timeout=120,
            cwd=ROOT,
        )
        if ended.code not in (0, 1, -9):
            raise RuntimeError(f"replay {index + 1} failed (exit {ended.code}): {ended.stderr[-500:]}")
        where = f"{step[0]}#{step[1]}" if step else f"{after_ms} ms"
        runs.append(
            {
                "at": where,
                "killed": ended.killed or "finished",
                "seconds": round(ended.seconds, 2),
                "ended_at": round(time.time(), 3),
            }
        )
        print(
            f"  replay {index + 1}/{count} killed at {where}: {ended.killed or 'finished first'}", flush=True
        )
        # 15 minutes pass: the killed run's leases end, then the messages it held are visible again.
        crash_points.expire_leases(dynamodb, info["idempotency_table"])
        urllib3.request("POST", f"{info['control_url']}/sqs-clock", json={"advance": 901})
    return runs


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    rng = random.Random(args.seed)
    state = Path(tempfile.mkdtemp(prefix="memory-bridge-soak-")) / "local-stack.json"
    started = time.monotonic()
    print(f"• starting the local stack (state {state})", flush=True)
    stack = start_stack(state, args.stack_log)
    try:
        result, senders = soak(args, rng, state, started)
    finally:
        stack.send_signal(signal.SIGINT)
        stack.wait(timeout=30)
    return write_and_report(result, senders, args.messages)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="make soak", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--customers", type=int, default=500)
    parser.add_argument("--senders", type=int, default=8)
    parser.add_argument("--duplicate-rate", type=float, default=0.10)
    parser.add_argument("--fault-rate", type=float, default=0.30)
    parser.add_argument(
        "--agent-replies", type=float, default=0.10, help="the share of messages that are an agent's replies"
    )
    parser.add_argument(
        "--conversations-fault-rate",
        type=float,
        default=0.05,
        help="the share of participants reads answering 429 or 503 while sending",
    )
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--no-aws-faults", dest="aws_faults", action="store_false", help="no table outages or queue hangs"
    )
    parser.add_argument("--dlq-duplicates", type=int, default=50, help="envelopes put on the queue twice")
    parser.add_argument("--replay-kills", type=int, default=8, help="replays killed at random points")
    parser.add_argument(
        "--history-customers", type=int, default=40, help="customers with a history for the backfill"
    )
    parser.add_argument("--history-messages", type=int, default=20, help="history messages per customer")
    parser.add_argument(
        "--history-live", type=float, default=0.25, help="the share of history messages also sent live"
    )
    parser.add_argument(
        "--stack-log", type=Path, help="write the webhook's log lines (JSON, no content) to this file"
    )
    return parser.parse_args(argv)


def soak(
    args: argparse.Namespace, rng: random.Random, state: Path, started: float
) -> tuple[dict[str, Any], Senders]:
    """Every phase against the running stack; the result document and the senders' tallies."""
    info = json.loads(state.read_text())
    sandbox = info["sandbox_url"]
    plan = plan_sending(args, rng)
    chats = seed_conversations(info, plan)
    history = soak_backfill.seed_history(
        info, chats, soak_backfill.pick_customers(chats, args.history_customers, rng), args.history_messages
    )
    live = rng.sample(history, int(len(history) * args.history_live))
    for message in live:  # delivered live too, anywhere in the sending
        plan.order.insert(rng.randrange(len(plan.order) + 1), (message.sid, False))
        plan.customer_of_live[message.sid] = message.customer
    print(
        f"• a history of {len(history)} messages in {args.history_customers} of those conversations "
        f"({sum(m.by_agent for m in history)} the agent's), {len(live)} of them also delivered live",
        flush=True,
    )
    for fault in sequential_faults(args.fault_rate):
        urllib3.request("POST", f"{sandbox}/__sandbox/faults", json=fault)
    for fault in sequential_faults(args.conversations_fault_rate, CONVERSATIONS_FAULT_KINDS):
        urllib3.request("POST", f"{info['conversations_url']}/__sandbox/faults", json=fault)
    senders = Senders(
        info["webhook_url"],
        info["auth_token"],
        info["account_sid"],
        args.senders,
        chats,
        plan.by_agent,
        {m.sid: m for m in live},
    )
    backfills, sending_done = soak_backfill.BackfillRuns(), threading.Event()
    backfilling = threading.Thread(
        target=soak_backfill.while_sending, args=(state, rng, sending_done, backfills, 10.0)
    )
    backfilling.start()
    outages = send_all(plan, senders, args, info["control_url"])
    sending_done.set()
    backfilling.join()
    reads_while_sending = participants_reads(info)
    sending_seconds = time.monotonic() - started
    _, stats_out = run_cli(state, "dlq", "stats", "--json")
    parked_before = json.loads(stats_out)
    _, peek_out = run_cli(state, "dlq", "peek", "-n", "100000", "--json")
    parked_by_stage = Counter(str(row.get("stage")) for row in json.loads(peek_out)["messages"])
    print(
        f"• sent in {sending_seconds:.0f} s; AWS fault windows {dict(outages)}; "
        f"parked {parked_before['visible']} ({parked_before['byKind']}; by stage {dict(parked_by_stage)})",
        flush=True,
    )
    duplicated, kills = duplicate_and_kill(args, rng, info, state)
    rounds = heal_and_replay(state, sandbox)
    print("• the backfill after the heal (the killed runs' leases ended)", flush=True)
    if soak_backfill.after_heal(state, aws_client("dynamodb", info), info["idempotency_table"], backfills):
        rounds += heal_and_replay(state, sandbox)
    accounting, doubled, trail = account(state, info, plan, chats, history)
    own = [sid for sid in plan.sids if sid not in plan.by_agent]
    hooks = SimpleNamespace(
        run_cli=run_cli,
        heal_and_replay=heal_and_replay,
        sequential_faults=sequential_faults,
        customer_number=customer_number,
        observations=lambda i: urllib3.request(
            "GET", f"{i['sandbox_url']}/__sandbox/observations?storeId={i['store_id']}"
        ).json()["observations"],
    )
    lifecycle = soak_lifecycle.run(senders, own, plan.customer_of, rng, info, state, args.fault_rate, hooks)
    result = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "messages": args.messages,
        "customers": args.customers,
        "senders": args.senders,
        "agent_replies": len(plan.by_agent),
        "conversations_with_an_agent": sum(1 for chat in chats.values() if chat.agent),
        "conversations_fault_rate": args.conversations_fault_rate,
        "conversations": len(chats),
        "participants_reads_while_sending": reads_while_sending,
        "participants_reads_in_all": participants_reads(info),
        "delivered_twice": len(plan.twice),
        "at_the_same_moment": len(plan.simultaneous),
        "fault_rate": args.fault_rate,
        "answers": dict(senders.answers),
        "twilio_timeouts": senders.twilio_timeouts,
        "slowest_answer_seconds": round(senders.slowest, 2),
        "aws_fault_windows": dict(outages),
        "dlq_duplicates": duplicated,
        "killed_replays": kills,
        "senders_gave_up": len(senders.gave_up),
        "parked_after_sending": parked_before["visible"],
        "parked_by_kind": parked_before["byKind"],
        "parked_by_stage": dict(parked_by_stage),
        "replay_rounds": rounds,
        "history_messages": len(history),
        "history_agent_messages": sum(m.by_agent for m in history),
        "history_delivered_live": len(live),
        "backfill_runs": backfills.runs,
        "accounting": accounting,
        "lifecycle": lifecycle,
        "doubled_examples": doubled[:10],
        "doubled_requests": trail,
        "seconds": round(time.monotonic() - started, 1),
    }
    return result, senders


@dataclass
class SendPlan:
    """What the senders deliver: every message id, its customer, and the order, duplicates included."""

    sids: list[str]
    customer_of: dict[str, int]
    twice: list[str]  # delivered twice...
    simultaneous: set[str]  # ...and of those, these at the same moment
    order: list[tuple[str, bool]]  # (message id, its twin sent at the same moment)
    by_agent: set[str]  # an agent's replies, in the conversation of the customer they were planned for
    # history messages (the backfill's) also delivered live: message id → customer
    customer_of_live: dict[str, int] = field(default_factory=dict)


def customer_number(customer: int) -> str:
    return f"+1555300{customer:04d}"


def plan_sending(args: argparse.Namespace, rng: random.Random) -> SendPlan:
    sids = [f"IM{i:032x}" for i in range(args.messages)]  # Twilio's format: the webhook refuses others
    customer_of = {sid: rng.randrange(args.customers) for sid in sids}
    twice = rng.sample(sids, int(args.messages * args.duplicate_rate))
    simultaneous = set(twice[: len(twice) // 2])
    order = [(sid, sid in simultaneous) for sid in sids] + [
        (sid, False) for sid in twice if sid not in simultaneous
    ]
    rng.shuffle(order)
    by_agent = set(rng.sample(sids, int(args.messages * args.agent_replies)))
    return SendPlan(sids, customer_of, twice, simultaneous, order, by_agent)


def seed_conversations(info: dict[str, Any], plan: SendPlan) -> dict[int, Chat]:
    """Each customer's SMS conversation in the stack's Conversations sandbox, over its REST API; an
    agent in those where the plan has an agent reply."""
    answered = {plan.customer_of[sid] for sid in plan.by_agent}
    seeder = RestSeeder(info["conversations_url"], info["account_sid"], info["auth_token"])
    chats = {
        customer: seeder.sms_conversation(
            customer_number(customer), AGENTS[customer % len(AGENTS)] if customer in answered else None
        )
        for customer in sorted(set(plan.customer_of.values()))
    }
    print(
        f"• {len(chats)} SMS conversations in the Conversations sandbox, one per customer "
        f"({len(answered)} with an agent in chat; {len(plan.by_agent)} agent replies planned)",
        flush=True,
    )
    return chats


def participants_reads(info: dict[str, Any]) -> int:
    """How many times the bridge has read a conversation's participants (GET …/Participants, in a service
    or not; the ones answered with an injected fault included)."""
    calls = urllib3.request("GET", f"{info['conversations_url']}/__sandbox/calls").json()["calls"]
    return sum(
        n
        for operation, n in calls.items()
        if operation.startswith("List") and operation.endswith("ConversationParticipant")
    )


class SendProgress:
    """How many messages the senders have delivered; a line every 500."""

    def __init__(self, total: int, senders: Senders):
        self.total, self.senders = total, senders
        self.done = 0
        self.lock = threading.Lock()

    def one_more(self) -> None:
        with self.lock:
            self.done += 1
            if self.done % 500 == 0:
                print(f"  sent {self.done}/{self.total}  answers {dict(self.senders.answers)}", flush=True)


def sender(
    work: queue.Queue[tuple[str, bool] | None],
    senders: Senders,
    customer_of: dict[str, int],
    progress: SendProgress,
) -> None:
    """One sender thread: deliver what `work` holds until it hands out None."""
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
        progress.one_more()


def send_all(plan: SendPlan, senders: Senders, args: argparse.Namespace, control: str) -> Counter[str]:
    """Deliver the plan from `args.senders` threads, with AWS outages meanwhile unless turned off; the
    outage windows, by kind."""
    work: queue.Queue[tuple[str, bool] | None] = queue.Queue()
    for item in plan.order:
        work.put(item)
    print(
        f"• sending {len(plan.order)} webhooks ({args.messages} messages) from {args.customers} customers, "
        f"{args.senders} senders, "
        f"{len(plan.twice)} delivered twice ({len(plan.simultaneous)} at the same moment), "
        f"{args.fault_rate:.0%} of Memory requests failing",
        flush=True,
    )
    progress = SendProgress(len(plan.order), senders)
    customer_of = {**plan.customer_of, **plan.customer_of_live}
    threads = [
        threading.Thread(target=sender, args=(work, senders, customer_of, progress))
        for _ in range(args.senders)
    ]
    outages: Counter[str] = Counter()
    outages_stop = threading.Event()
    outage_thread = threading.Thread(target=aws_outages, args=(control, outages_stop, outages), daemon=True)
    if args.aws_faults:
        outage_thread.start()
    for thread in threads:
        thread.start()
    for _ in threads:
        work.put(None)
    for thread in threads:
        thread.join()
    outages_stop.set()
    if args.aws_faults:
        outage_thread.join()
    return outages


def duplicate_and_kill(
    args: argparse.Namespace, rng: random.Random, info: dict[str, Any], state: Path
) -> tuple[int, list[dict[str, Any]]]:
    """Put parked envelopes on the queue twice, then kill replays while Memory drops some answers:
    how many were put twice, and the killed runs."""
    sandbox = info["sandbox_url"]
    sqs, dynamodb = aws_client("sqs", info), aws_client("dynamodb", info)
    duplicated = put_twice(sqs, info["queue_url"], args.dlq_duplicates)
    print(f"• {duplicated} parked envelopes put on the queue a second time", flush=True)
    urllib3.request("DELETE", f"{sandbox}/__sandbox/faults")
    # The replays read the participants of messages parked at resolve_speaker: Conversations answers.
    urllib3.request("DELETE", f"{info['conversations_url']}/__sandbox/faults")
    for fault in ({"drop": "after", "probability": 0.1}, {"latency": 0.05}):
        urllib3.request("POST", f"{sandbox}/__sandbox/faults", json={**fault, "match": "/Observations"})
    print(f"• {args.replay_kills} replays killed at random points (Memory drops 10 % of answers)")
    kills = killed_replays(info, state, args.replay_kills, rng, dynamodb)
    return duplicated, kills


def heal_and_replay(state: Path, sandbox: str) -> list[dict[str, Any]]:
    """Clear Memory's faults and replay, at most five rounds, until a replay exits 0: each one's counts."""
    print("• healing Memory and replaying to the end", flush=True)
    urllib3.request("DELETE", f"{sandbox}/__sandbox/faults")
    time.sleep(3.5)  # let requests that were still sleeping in the sandbox finish
    rounds = []
    for _ in range(5):
        code, out = run_cli(state, "dlq", "replay", "--kind", "all", "--json")
        report = json.loads(out)
        rounds.append(report["counts"])
        print(f"  replay: {report['counts']}", flush=True)
        for note in report.get("notes") or []:
            print(f"    note: {note}", flush=True)
        if code == 0:
            break
    return rounds


def account(
    state: Path,
    info: dict[str, Any],
    plan: SendPlan,
    chats: dict[int, Chat],
    history: list[soak_backfill.HistoryMessage],
) -> tuple[dict[str, Any], list[str], dict[str, list[str]]]:
    """Per message id: posted once, more than once, never, still parked, and landed where its speaker
    says; the doubled ids; and for the first ten of those, every Memory request that carried it, in
    order, with its answer."""
    sandbox, sids = info["sandbox_url"], plan.sids
    _, out = run_cli(state, "dlq", "peek", "-n", "100000", "--json")
    still_parked = Counter(row.get("messageSid") for row in json.loads(out)["messages"])
    held = urllib3.request("GET", f"{sandbox}/__sandbox/observations?storeId={info['store_id']}").json()
    posted: Counter[str] = Counter()
    landed: dict[str, list[dict[str, Any]]] = {}
    for observation in held["observations"]:
        sid = observation["content"].removeprefix("Agent: ").removeprefix("soak ")
        posted[sid] += 1
        landed.setdefault(sid, []).append(observation)
    log = urllib3.request("GET", f"{sandbox}/__sandbox/requests?bodies=1").json()["requests"]
    source = info.get("replay_environment", {}).get("OBSERVATION_SOURCE") or "twilio-conversations"
    profiles = customer_profiles(info, chats)
    misplaced = misplaced_messages(plan, landed, profiles, source)
    accounting: dict[str, Any] = {
        "posted_once": sum(1 for sid in sids if posted[sid] == 1),
        "posted_more_than_once": sum(1 for sid in sids if posted[sid] > 1),
        "never_posted": sum(1 for sid in sids if posted[sid] == 0 and not still_parked[sid]),
        "still_parked": sum(1 for sid in sids if still_parked[sid]),
        "agent_replies_on_the_customer": sum(
            1 for sid in plan.by_agent if posted[sid] == 1 and sid not in misplaced
        ),
        "landed_elsewhere": len(misplaced),
        "non_customer_identifiers_sent": non_customer_identifiers(log),
        "history": soak_backfill.history_accounting(
            history, held["observations"], profiles, source, {str(sid) for sid in still_parked}
        ),
    }
    doubled = [sid for sid in sids if posted[sid] > 1]
    # For a doubled message: every Memory request that carried it, in order, and its answer.
    trail = {
        sid: [
            f"{r.get('receivedAt'):.3f} {r.get('method')} {r.get('operation')} → {r.get('status')}"
            for r in log
            if f"soak {sid}" in json.dumps(r.get("body"))
        ]
        for sid in doubled[:10]
    }
    return accounting, doubled, trail


def misplaced_messages(
    plan: SendPlan, landed: dict[str, list[dict[str, Any]]], profiles: dict[int, str], source: str
) -> set[str]:
    """The message ids with an observation that is not where its speaker says: the customer's own words,
    unchanged, with the bridge's source; an agent's as "Agent: …" with the agents' source; both on the
    customer's profile (`profiles`: customer → what Memory's Lookup of their number finds)."""
    wrong = set()
    for sid, observations in landed.items():
        if sid not in plan.customer_of:
            continue
        agent = sid in plan.by_agent
        expected = {
            "content": ("Agent: " if agent else "") + f"soak {sid}",
            "source": source + ("-agent" if agent else ""),
            "profileId": profiles.get(plan.customer_of[sid]),
        }
        if any({key: o.get(key) for key in expected} != expected for o in observations):
            wrong.add(sid)
    return wrong


def customer_profiles(info: dict[str, Any], chats: dict[int, Chat]) -> dict[int, str]:
    """customer → the profile Memory's Lookup finds for their number (the accounting's, after the heal)."""
    from memory_bridge.domain.identifiers import Identifier

    url = f"{info['sandbox_url']}/v1/Stores/{info['store_id']}/Profiles/Lookup"
    headers = urllib3.make_headers(basic_auth=f"{info['account_sid']}:{info['auth_token']}")
    found = {}
    for customer, chat in chats.items():
        answer = urllib3.request(
            "POST", url, json=Identifier("phone", chat.customer).to_json(), headers=headers
        ).json()
        if answer.get("profiles"):
            found[customer] = str(answer["profiles"][0])
    return found


def non_customer_identifiers(log: list[dict[str, Any]]) -> int:
    """Memory requests (a Lookup or a profile creation) that carried an agent's identity or the
    business's number: there must be none."""
    others = [*AGENTS, BUSINESS_NUMBER]
    return sum(
        1
        for r in log
        if "Profiles" in str(r.get("path"))
        and "Observations" not in str(r.get("path"))
        and any(other in json.dumps(r.get("body")) for other in others)
    )


def write_and_report(result: dict[str, Any], senders: Senders, messages: int) -> int:
    """Write the result to bench/results and print the accounting: 0 when every message was posted
    exactly once and every answer came inside 5 s, else 1."""
    accounting = result["accounting"]
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    (RESULTS / f"soak-{stamp}.json").write_text(json.dumps(result, indent=2) + "\n")
    per_message = ("posted_once", "posted_more_than_once", "never_posted", "still_parked")
    ok = (
        accounting["posted_once"] == messages
        and sum(accounting[key] for key in per_message) == messages
        and accounting["agent_replies_on_the_customer"] == result["agent_replies"]
        and accounting["landed_elsewhere"] == 0
        and accounting["non_customer_identifiers_sent"] == 0
        and senders.twilio_timeouts == 0
        and soak_backfill.accounting_ok(accounting["history"], result["history_agent_messages"])
        and result["lifecycle"]["ok"]
    )
    print("\nmemory-bridge soak — accounting per message id")
    print(f"  posted once             {accounting['posted_once']:>6}")
    print(f"  posted more than once   {accounting['posted_more_than_once']:>6}")
    print(f"  never posted            {accounting['never_posted']:>6}")
    print(f"  still parked            {accounting['still_parked']:>6}")
    print(
        f"  agents' replies on the customer's profile as \"Agent: …\"  "
        f"{accounting['agent_replies_on_the_customer']} of {result['agent_replies']}"
    )
    print(f"  landed elsewhere (wrong profile, label or source)   {accounting['landed_elsewhere']}")
    print(
        "  Lookups or profile creations carrying an agent's or the business's identifier   "
        f"{accounting['non_customer_identifiers_sent']}"
    )
    print(
        f"  participants reads: {result['participants_reads_while_sending']} by the webhook for "
        f"{result['conversations']} conversations (a read answered 429/503 is not cached: "
        f"{result['conversations_fault_rate']:.0%} were), {result['participants_reads_in_all']} with the "
        f"replays'; parked after sending by stage {result['parked_by_stage']}"
    )
    print(
        f"  HTTP answers to the senders: {dict(senders.answers)}; Twilio-side timeouts (>5 s): "
        f"{senders.twilio_timeouts}; slowest answer {senders.slowest:.2f} s; "
        f"senders that gave up: {len(senders.gave_up)}"
    )
    print_backfill(result)
    soak_lifecycle.print_result(result["lifecycle"])
    killed = Counter(run["killed"] for run in result["killed_replays"])
    print(
        f"  faults: AWS windows {result['aws_fault_windows']}; {result['dlq_duplicates']} envelopes on the "
        f"queue twice; replays killed {dict(killed)}"
    )
    print(f"  {result['seconds']} s in all; written to bench/results/soak-{stamp}.json")
    print(
        "  "
        + (
            "OK: every message (live and history) posted exactly once, on its customer's profile, every "
            "answer inside 5 s."
            if ok
            else "TARGET MISSED: see the counts above."
        )
    )
    return 0 if ok else 1


def print_backfill(result: dict[str, Any]) -> None:
    history = result["accounting"]["history"]
    print(
        f"\n  backfill: a history of {result['history_messages']} messages "
        f"({result['history_agent_messages']} the agent's), {result['history_delivered_live']} also "
        "delivered live, backfilled while sending"
    )
    print(f"    history posted once            {history['posted_once']:>6}")
    print(f"    history posted more than once  {history['posted_more_than_once']:>6}")
    print(f"    history never posted           {history['never_posted']:>6}")
    print(f"    history still parked           {history['still_parked']:>6}")
    print(
        f"    agents' history on the customer's profile as \"Agent: …\"  "
        f"{history['agents_labelled']} of {result['history_agent_messages']}; landed elsewhere "
        f"{history['landed_elsewhere']}; dated other than when said {history['dated_wrong']}"
    )
    for run in result["backfill_runs"]:
        print(
            f"    backfill run ({run['phase']}, kill at {run['kill']}): exit {run['exit']}, killed "
            f"{run['killed']}, posted {run['posted']}, already posted {run['already_posted']}, parked "
            f"{run['parked']}, left {run['left']}, {run['seconds']} s"
        )


if __name__ == "__main__":
    sys.exit(main())
