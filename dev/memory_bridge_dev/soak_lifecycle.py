"""`make soak`'s after-posting phase (issue 22): edits, removals and erasure under faults and duplicates.

After the main accounting, against the same stack: a sample of the posted customers' messages is edited,
removed, or edited then removed; new messages get their update or their removal before their add; every
event is delivered twice (half of them at the same moment) while Memory fails at the soak's rate, and a
sender retries a non-2xx as Twilio does. Then Memory heals, the queue is replayed to the end, a few
customers are erased with `memory-bridge erase`, and the queue is replayed once more. What must hold:
an edited message is held once, with its new words only; a removed one not at all; an update before its
add leaves the new words; an erased customer's messages are gone and stay gone.
"""

from __future__ import annotations

import json
import queue
import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import urllib3

EDITED_AT = "2026-11-21T11:00:00.000Z"


@dataclass
class Events:
    """Which message gets which fate, and the webhooks to send."""

    edited: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    edited_then_removed: list[str] = field(default_factory=list)
    update_first: list[str] = field(default_factory=list)  # new: the update, then the add
    removal_first: list[str] = field(default_factory=list)  # new: the removal, then the add
    customer_of: dict[str, int] = field(default_factory=dict)
    waves: list[list[tuple[str, str]]] = field(default_factory=list)  # (kind, sid), sent wave by wave


def plan_events(posted: list[str], customer_of: dict[str, int], rng: random.Random, size: int) -> Events:
    """From the customers' own messages posted once (`posted`), a sample of each fate, and new ones."""
    pick = rng.sample(posted, min(size, len(posted)))
    third = len(pick) // 3
    events = Events(
        edited=pick[:third],
        removed=pick[third : 2 * third],
        edited_then_removed=pick[2 * third :],
        customer_of=dict(customer_of),
    )
    for n in range(third // 2):
        for group in (events.update_first, events.removal_first):
            sid = f"IM{0xFEED0000 + len(events.update_first) * 2 + len(events.removal_first) * 2 + n:032x}"
            group.append(sid)
            events.customer_of[sid] = customer_of[rng.choice(posted)]
    events.waves = [
        [("updated", s) for s in events.edited + events.edited_then_removed + events.update_first]
        + [("removed", s) for s in events.removed + events.removal_first],
        [("added", s) for s in events.update_first + events.removal_first]
        + [("removed", s) for s in events.edited_then_removed],
    ]
    return events


def send_waves(
    events: Events, deliver: Callable[[str, str], None], concurrency: int, rng: random.Random
) -> None:
    """Each event twice, in random order, from `concurrency` threads; wave after wave."""
    for wave in events.waves:
        work: queue.Queue[tuple[str, str]] = queue.Queue()
        doubled = [*wave, *wave]
        rng.shuffle(doubled)
        for item in doubled:
            work.put(item)
        threads = [threading.Thread(target=_drain, args=(work, deliver)) for _ in range(concurrency)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()


def _drain(work: queue.Queue[tuple[str, str]], deliver: Callable[[str, str], None]) -> None:
    while True:
        try:
            kind, sid = work.get_nowait()
        except queue.Empty:
            return
        deliver(kind, sid)


def body_of(kind: str, sid: str, events: Events) -> str:
    """The words each webhook carries: an add the first ones; an update the new ones; a removal the
    words the message had when it was removed."""
    if kind == "updated" or (kind == "removed" and sid in events.edited_then_removed):
        return f"soak edited {sid}"
    return f"soak {sid}"


def event_params(senders: Any, events: Events, kind: str, sid: str) -> list[tuple[str, str]]:
    from memory_bridge_dev.customer_chats import message_params

    params = message_params(
        senders.chats[events.customer_of[sid]],
        account_sid=senders.account_sid,
        message_sid=sid,
        body=body_of(kind, sid, events),
        index=int(sid[2:], 16) % 1_000_000,
    )
    event = {"added": "onMessageAdded", "updated": "onMessageUpdated", "removed": "onMessageRemoved"}[kind]
    params = [("EventType", event) if name == "EventType" else (name, value) for name, value in params]
    if kind == "updated":
        params.append(("DateUpdated", EDITED_AT))
    if kind == "removed":
        params.append(("DateRemoved", EDITED_AT))
    return params


def deliverer(senders: Any, events: Events) -> Callable[[str, str], None]:
    """Sign and send one event as Twilio would, retrying a non-2xx (the Senders' pool and tallies)."""

    def deliver(kind: str, sid: str) -> None:
        senders.post(event_params(senders, events, kind, sid), sid)

    return deliver


def held_by_message(observations: list[dict[str, Any]]) -> dict[str, Counter[str]]:
    """Per message id, how many observations hold its first words ("first") and its edited ones."""
    held: dict[str, Counter[str]] = {}
    for observation in observations:
        text = str(observation.get("content", "")).removeprefix("Agent: ")
        if text.startswith("soak edited "):
            held.setdefault(text.removeprefix("soak edited "), Counter())["edited"] += 1
        elif text.startswith("soak "):
            held.setdefault(text.removeprefix("soak "), Counter())["first"] += 1
    return held


def account(events: Events, observations: list[dict[str, Any]], erased: set[int]) -> dict[str, Any]:
    """Per fate: how many messages Memory holds as they should be."""
    held = held_by_message(observations)

    def right(sids: list[str], want: Counter[str]) -> dict[str, int]:
        mine = [s for s in sids if events.customer_of[s] not in erased]
        ok = sum(1 for s in mine if held.get(s, Counter()) == want)
        return {"right": ok, "of": len(mine)}

    erased_held = sum(
        sum(count.values()) for sid, count in held.items() if events.customer_of.get(sid) in erased
    )
    return {
        "edited": right(events.edited, Counter(edited=1)),
        "removed": right(events.removed, Counter()),
        "edited_then_removed": right(events.edited_then_removed, Counter()),
        "update_before_add": right(events.update_first, Counter(edited=1)),
        "removal_before_add": right(events.removal_first, Counter()),
        "erased_customers": len(erased),
        "erased_customers_observations_left": erased_held,
    }


def accounting_ok(accounting: dict[str, Any]) -> bool:
    fates = [v for v in accounting.values() if isinstance(v, dict)]
    return all(v["right"] == v["of"] for v in fates) and accounting["erased_customers_observations_left"] == 0


def run(
    senders: Any,
    posted: list[str],
    customer_of: dict[str, int],
    rng: random.Random,
    info: dict[str, Any],
    state: Path,
    fault_rate: float,
    hooks: Any,
) -> dict[str, Any]:
    """The phase; `hooks` gives the soak's run_cli, heal_and_replay, sequential_faults, customer_number
    and observations (to keep this module free of an import cycle with soak.py)."""
    sandbox = info["sandbox_url"]
    events = plan_events(posted, customer_of, rng, size=300)
    print(
        f"• after posting: {len(events.edited)} edited, {len(events.removed)} removed, "
        f"{len(events.edited_then_removed)} edited then removed, {len(events.update_first)} updated before "
        f"their add, {len(events.removal_first)} removed before their add; each delivered twice while "
        f"{fault_rate:.0%} of Memory requests fail",
        flush=True,
    )
    for fault in hooks.sequential_faults(fault_rate):
        urllib3.request("POST", f"{sandbox}/__sandbox/faults", json=fault)
    started = time.monotonic()
    send_waves(events, deliverer(senders, events), concurrency=8, rng=rng)
    sending = time.monotonic() - started
    rounds = hooks.heal_and_replay(state, sandbox)
    customers = sorted({customer_of[s] for s in posted})
    erased = set(rng.sample(customers, min(3, len(customers))))
    erasures = []
    for customer in sorted(erased):
        code, out = hooks.run_cli(state, "erase", "--address", hooks.customer_number(customer), "--json")
        erasures.append({"exit": code, **(json.loads(out) if out.strip().startswith("{") else {})})
    # A late Twilio retry of an erased customer's old message, then the queue once more.
    late = [s for s in posted if customer_of[s] in erased][:5]
    for sid in late:
        senders.post(event_params(senders, events, "added", sid), sid)
    rounds += hooks.heal_and_replay(state, sandbox)
    accounting = account(events, hooks.observations(info), erased)
    return {
        "sending_seconds": round(sending, 1),
        "replay_rounds": rounds,
        "erase_exits": [e["exit"] for e in erasures],
        "late_retries_of_erased": len(late),
        "accounting": accounting,
        "ok": accounting_ok(accounting) and all(e["exit"] == 0 for e in erasures),
    }


def print_result(result: dict[str, Any]) -> None:
    accounting = result["accounting"]
    print("\nmemory-bridge soak — after posting (edits, removals, erasure)")
    for fate in ("edited", "removed", "edited_then_removed", "update_before_add", "removal_before_add"):
        counts = accounting[fate]
        print(f"  {fate.replace('_', ' '):<24} as it should be {counts['right']:>4} of {counts['of']}")
    print(
        f"  erased customers {accounting['erased_customers']} (erase exits {result['erase_exits']}); "
        f"their observations left {accounting['erased_customers_observations_left']} after "
        f"{result['late_retries_of_erased']} late Twilio retries and a replay"
    )
