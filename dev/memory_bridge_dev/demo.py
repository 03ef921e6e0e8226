"""`make demo`: a scripted walk-through on the local stack, each step printed, with a final summary.

  1. three messages from two customers → observations
  2. Memory breaks (503) → two more messages are parked on the dead-letter queue
  3. Memory heals → replay
  4. all five messages are in Memory, once each
  5. Ada writes again and an agent answers her in chat (`send --as agent`): what her profile holds

Exits 0 only when step 4 holds and, in step 5, both messages were taken (2xx) and the agent's reply is
on Ada's profile once, as "Agent: …" with source twilio-conversations-agent.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import tempfile
from collections import Counter
from typing import Any

import urllib3

from memory_bridge_cli import main as cli
from memory_bridge_dev.local_stack import LocalStack

CUSTOMERS = {"Ada (SMS)": "+15555550101", "Grace (WhatsApp)": "whatsapp:+15555550102"}
MESSAGES = [
    ("Ada (SMS)", "Hi, my parcel #4411 has not arrived."),
    ("Grace (WhatsApp)", "Can I change my delivery slot to Friday?"),
    ("Ada (SMS)", "It was due on Monday."),
    ("Grace (WhatsApp)", "Friday after 2 pm works best."),
    ("Ada (SMS)", "Thanks, please call me back."),
]


def say(text: str = "") -> None:
    print(text, flush=True)


def run_cli(*argv: str) -> tuple[int, str]:
    out, err = io.StringIO(), io.StringIO()
    code = cli.main(list(argv), out=out, err=err)
    return code, out.getvalue() + err.getvalue()


def send(who: str, body: str, *extra: str, label: str | None = None) -> dict[str, Any]:
    code, output = run_cli("send", "--from", CUSTOMERS[who], "--body", body, "--json", *extra)
    document: dict[str, Any] = json.loads(output[: output.rindex("}") + 1]) if code in (0, 1) else {}
    outcome = document.get("answer", {}).get("outcome")
    say(f"   {label or who:<17} “{body}” → HTTP {document.get('status')} {outcome}")
    return document


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    state = _prepare_environment()
    function_log = os.path.join(os.path.dirname(state), "function.log")
    stack = LocalStack(
        front_port=args.front_port,
        sandbox_port=args.sandbox_port,
        moto_port=args.moto_port,
        provisioning_seconds=0.5,
        state_path=state,
    )
    try:
        info = _start(stack, function_log)
        sandbox = info["sandbox_url"]
        _step_messages()
        _step_memory_breaks(sandbox)
        _step_replay(sandbox)
        checked = _step_check(sandbox, info["store_id"])
        return _step_agent_reply() or checked
    finally:
        stack.stop()


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="make demo", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--front-port", type=int, default=3100)
    parser.add_argument("--sandbox-port", type=int, default=8887)
    parser.add_argument("--moto-port", type=int, default=5100)
    return parser.parse_args(argv)


def _prepare_environment() -> str:
    """A fresh state file and none of the operator's own settings; returns the state file's path."""
    state = os.path.join(tempfile.mkdtemp(prefix="memory-bridge-demo-"), "local-stack.json")
    os.environ["MEMORY_BRIDGE_LOCAL_STATE"] = state
    for name in (
        "TWILIO_ACCOUNT_SID",
        "TWILIO_AUTH_TOKEN",
        "TWILIO_API_KEY",
        "TWILIO_API_SECRET",
        "MEMORY_API_BASE_URL",
        "CONVERSATIONS_API_BASE_URL",
        "MEMORY_STORE_ID",
        "DEAD_LETTER_QUEUE_URL",
    ):
        os.environ.pop(name, None)
    import logging

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    os.environ["POWERTOOLS_METRICS_DISABLED"] = "true"  # keep the walk-through readable
    return state


def _start(stack: LocalStack, function_log: str) -> dict[str, Any]:
    """Start the stack and send the function's log lines to `function_log`; the stack's info."""
    say("Starting the local stack (moto, Memory sandbox, API front)…")
    info = stack.start(progress=lambda line: say("   " + line.strip()))
    from memory_bridge.runtime import logger

    log_file = open(function_log, "a")  # noqa: SIM115 - open for the demo's whole run
    logger.registered_handler.setStream(log_file)  # type: ignore[attr-defined]
    say(f"   (the function's JSON log lines go to {function_log})")
    return info


def _step_messages() -> None:
    say("\n1. Three messages from two customers")
    for who, body in MESSAGES[:3]:
        send(who, body)
    for who, address in CUSTOMERS.items():
        _, output = run_cli("observations", "list", "--address", address)
        say(f"   {who}: " + output.strip().splitlines()[0])


def _step_memory_breaks(sandbox: str) -> None:
    say("\n2. Memory breaks: every call answers 503")
    urllib3.request("POST", f"{sandbox}/__sandbox/faults", json={"status": 503})
    for who, body in MESSAGES[3:]:
        send(who, body)
    _, output = run_cli("dlq", "stats")
    say("   " + "\n   ".join(output.strip().splitlines()[1:3]))


def _step_replay(sandbox: str) -> None:
    say("\n3. Memory heals; the on-call engineer replays")
    urllib3.request("DELETE", f"{sandbox}/__sandbox/faults")
    _, output = run_cli("dlq", "replay", "--dry-run")
    say("   dry run: " + next(line for line in output.splitlines() if line.startswith("DRY RUN")))
    replay_code, output = run_cli("dlq", "replay", "--json")
    report = json.loads(output[: output.rindex("}") + 1])
    say(
        f"   replay: {report['counts']['replayed']} replayed, {report['counts']['failed']} failed, "
        f"exit {replay_code}"
    )


def _step_check(sandbox: str, store_id: str) -> int:
    """Step 4 and the summary: 0 when every message is in Memory once and the queue is empty, else 1."""
    say("\n4. Every message in Memory, once each")
    held = urllib3.request("GET", f"{sandbox}/__sandbox/observations?storeId={store_id}").json()
    counts = Counter(o["content"] for o in held["observations"])
    for who, body in MESSAGES:
        say(f"   {counts[body]} x {who:<17} “{body}”")
    _, output = run_cli("dlq", "stats", "--json")
    left = json.loads(output[: output.rindex("}") + 1])["visible"]
    ok = all(counts[body] == 1 for _, body in MESSAGES) and len(counts) == len(MESSAGES) and left == 0
    say("\nSummary")
    once = sum(1 for _, body in MESSAGES if counts[body] == 1)
    duplicates = sum(max(count - 1, 0) for count in counts.values())
    say(
        f"   messages sent {len(MESSAGES)} · in Memory once each {once} · duplicates {duplicates}"
        f" · left on the queue {left}"
    )
    say("   " + ("OK: nothing lost, nothing doubled." if ok else "NOT OK: see above."))
    return 0 if ok else 1


AGENT_REPLY = "Your parcel arrives tomorrow before noon."
AGENT_SOURCE = "twilio-conversations-agent"  # OBSERVATION_SOURCE's default + "-agent"


def _step_agent_reply() -> int:
    """Step 5: 0 when both messages were taken and the agent's reply is on Ada's profile once, as
    "Agent: …" with the agents' own source: the bridge reads the conversation's participants, so the
    agent never gets a profile of its own and its words land on the customer it answered."""
    say("\n5. Ada writes again; an agent answers her from chat (the same conversation)")
    asked = send("Ada (SMS)", "Any news about my parcel?")
    answered = send("Ada (SMS)", AGENT_REPLY, "--as", "agent", label="Agent (chat)")
    code, output = run_cli("observations", "list", "--address", CUSTOMERS["Ada (SMS)"], "--json")
    held = json.loads(output[: output.rindex("}") + 1]).get("observations", []) if code == 0 else []
    say(f"   Ada's profile holds {len(held)} observation(s), newest first:")
    for item in held[:4]:
        say(f"     {item.get('source', ''):<28} {item.get('content', '')}")
    labelled = [
        item
        for item in held
        if item.get("content") == f"Agent: {AGENT_REPLY}" and item.get("source") == AGENT_SOURCE
    ]
    taken = all(200 <= int(d.get("status") or 0) < 300 for d in (asked, answered))
    if len(labelled) == 1 and taken:
        say(f"   OK: the agent's reply is on Ada's profile once, as “Agent: …” ({AGENT_SOURCE}).")
        return 0
    say(
        f"   NOT OK: the agent's reply should be on Ada's profile once as “Agent: {AGENT_REPLY}” "
        f"with source {AGENT_SOURCE}; found {len(labelled)} (both messages taken: {taken})."
    )
    return 1


if __name__ == "__main__":
    sys.exit(main())
