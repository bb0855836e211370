"""The chaos run: a stream of SMS through the local stack while its parts fail, then one
table of what became of every SMS. ``make chaos`` (``python -m tests.chaos``); traffic
only on 127.0.0.1; bounded in count and time; it stops by itself.

The stack runs with its AWS (moto) behind a fault proxy (tests/faults/proxy.py). While
SENDERS threads send N SMS with ``POST /messages/send`` (each with its own
Idempotency-Key, retried with it on a 5xx or a lost connection, as a careful client does):

- the device bridge is killed (SIGKILL) BRIDGE_KILLS times; the stack starts it again;
- AWS freezes FREEZES times for FREEZE_SECONDS (no byte forwarded either way);
- poison messages are put on the queue: a body that is not JSON, a text with a lone
  surrogate, a text of 200,000 characters, an unknown message id.

Then it waits until every accepted SMS is settled (the outbox sweep runs every few
seconds here) and counts: sent (on the simulated phone), duplicates (on the phone twice),
lost (accepted, not on the phone, not failed), stuck (still queued or sending), failed
(with their reasons), 5xx answers, and the longest answer under fault. Exit 1 when a
target is missed: 0 duplicates, 0 lost, 0 stuck, no answer longer than 10 s.

    python -m tests.chaos [--messages 200] [--kills 10]
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import random
import signal
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from urllib.parse import urlparse

import requests

from devstack.harness import OUTBOUND_QUEUE, fresh_local_number, sqs_client, start
from devstack.proctree import descendants
from tests.e2e.helpers import start_embedded_aws
from tests.faults.proxy import FaultProxy

ANSWER_BUDGET = 10.0
SETTLE_SECONDS = 120
SENDERS = 4
FREEZE_SECONDS = (12.0, 4.0)  # longer than an AWS call's bound (8 s), and shorter
STACK_SETTINGS = {
    "SMSGW_LOCAL_SCHEDULE_SECONDS": "3",  # the outbox sweep and device watch
    "SMSGW_OUTBOX_STALE_SECONDS": "15",
    "SMSGW_BRIDGE_HEARTBEAT_INTERVAL": "5",
    "SMSGW_BRIDGE_SENDS_PER_MINUTE": "1200",
    "SMSGW_BRIDGE_VISIBILITY_TIMEOUT": "20",
}


def fault_seconds(kills: int, freezes: int) -> float:
    """About how long the faults take: the stream is paced to last as long."""
    frozen = sum(FREEZE_SECONDS[n % len(FREEZE_SECONDS)] for n in range(freezes))
    return 1.5 * (kills + freezes) + frozen


class Stream:
    """The senders: every SMS accepted, and how each answer went."""

    def __init__(self, stack, count: int, pace: float):
        self.stack = stack
        self.pace = pace
        self.todo = list(range(count))
        self.accepted: dict[str, str] = {}  # messageId -> text
        self.answers: list[tuple[int, float]] = []  # (status, seconds)
        self.abandoned = 0
        self.lock = threading.Lock()

    def run(self) -> None:
        threads = [threading.Thread(target=self._send_all) for _ in range(SENDERS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    def _send_all(self) -> None:
        while True:
            with self.lock:
                if not self.todo:
                    return
                n = self.todo.pop()
            self._send(f"chaos {n} {uuid.uuid4().hex[:6]}")
            time.sleep(self.pace)

    def _send(self, text: str) -> None:
        body = {"message": text, "phoneNumber": fresh_local_number()}
        headers = {**self.stack.headers(), "Idempotency-Key": str(uuid.uuid4())}
        for attempt in range(8):
            started = time.monotonic()
            try:
                response = requests.post(
                    self.stack.url + "/messages/send", json=body, headers=headers, timeout=30
                )
            except requests.RequestException:
                self._answer(0, time.monotonic() - started)
                time.sleep(1 + attempt)
                continue
            self._answer(response.status_code, time.monotonic() - started)
            if response.status_code == 200:
                with self.lock:
                    self.accepted[response.json()["messageId"]] = text
                return
            if response.status_code < 500 and response.status_code != 429:
                break
            time.sleep(1 + attempt)
        with self.lock:
            self.abandoned += 1

    def _answer(self, status: int, seconds: float) -> None:
        with self.lock:
            self.answers.append((status, seconds))


def bridge_pid(stack) -> int | None:
    found = [p for p in descendants(stack.pid) if "-m device_bridge" in p.cmdline]
    return found[0].pid if found else None


def faults(stack, proxy: FaultProxy, kills: int, freezes: int, log: list[str]) -> None:
    """Kill the bridge and freeze AWS at random moments (0.5 to 2.5 s apart)."""
    rng = random.Random(9)
    plan = ["kill"] * kills + ["freeze"] * freezes
    rng.shuffle(plan)
    frozen = 0
    for fault in plan:
        time.sleep(rng.uniform(0.5, 2.5))
        if fault == "kill":
            pid = _wait_for_bridge(stack)
            os.kill(pid, signal.SIGKILL)
            log.append("bridge SIGKILL")
        else:
            seconds = FREEZE_SECONDS[frozen % len(FREEZE_SECONDS)]
            frozen += 1
            proxy.freeze()
            log.append(f"AWS frozen {seconds:.0f} s")
            time.sleep(seconds)
            proxy.thaw()


def _wait_for_bridge(stack, seconds: float = 60) -> int:
    """The bridge's pid, once the stack has started it (again)."""
    deadline = time.monotonic() + seconds
    while (pid := bridge_pid(stack)) is None:
        if time.monotonic() > deadline:
            raise RuntimeError("the stack did not start the bridge again")
        time.sleep(0.2)
    return pid


def poison(stack, endpoint: str) -> list[str]:
    """Bodies no bridge can send; the ids the API must never see sent."""
    sqs = sqs_client(endpoint)
    url = sqs.get_queue_url(QueueName=OUTBOUND_QUEUE)["QueueUrl"]
    unknown = str(uuid.uuid4())
    bodies = [
        "not json at all",
        json.dumps(
            {"v": 3, "messageId": str(uuid.uuid4()), "to": "+22238089336", "text": "a\ud800"}
        ),
        json.dumps(
            {"v": 3, "messageId": str(uuid.uuid4()), "to": "+22238089336", "text": "x" * 200_000}
        ),
        json.dumps({"v": 3, "messageId": unknown, "to": "+22238089336", "text": "inconnu"}),
    ]
    for body in bodies:
        sqs.send_message(QueueUrl=url, MessageBody=body, MessageGroupId="chaos")
    return [json.loads(b)["messageId"] for b in bodies[1:]]


def settle(stack, accepted: dict[str, str]) -> dict[str, dict]:
    """Each accepted message as the API has it once nothing is queued or sending any more."""
    deadline = time.monotonic() + SETTLE_SECONDS
    while True:
        states = {}
        for message_id in accepted:
            try:
                states[message_id] = stack.get(f"/messages/{message_id}", timeout=15).json()
            except requests.RequestException:
                states[message_id] = {"status": "unknown"}
        pending = [
            m for m, s in states.items() if s.get("status") in ("queued", "sending", "unknown")
        ]
        if not pending or time.monotonic() > deadline:
            return states
        time.sleep(2)


def run(count: int, kills: int, freezes: int) -> int:
    aws, endpoint = start_embedded_aws()
    target = urlparse(endpoint)
    proxy = FaultProxy(target.hostname, target.port)
    workdir = Path(tempfile.mkdtemp(prefix="chinqit-chaos-"))
    stack = start(
        workdir,
        key="cq_live_chaos" + uuid.uuid4().hex,
        AWS_ENDPOINT_URL=proxy.url,
        **STACK_SETTINGS,
    )
    events: list[str] = []
    started = time.monotonic()
    try:
        poisoned = poison(stack, endpoint)
        stream = Stream(stack, count, fault_seconds(kills, freezes) * SENDERS / count)
        chaos = threading.Thread(target=faults, args=(stack, proxy, kills, freezes, events))
        chaos.start()
        stream.run()
        chaos.join()  # the faults go on while the bridge drains what was sent
        proxy.thaw()
        states = settle(stack, stream.accepted)
        phone = collections.Counter(line["messageId"] for line in stack.outbox_lines())
    finally:
        proxy.thaw()
        stopped = stack.stop()
        proxy.close()
        aws.kill()
        aws.wait()
    return report(stream, states, phone, poisoned, events, time.monotonic() - started, stopped)


def report(stream, states, phone, poisoned, events, took, stopped) -> int:
    statuses = collections.Counter(s.get("status") for s in states.values())
    reasons = collections.Counter(
        s.get("statusReason") for s in states.values() if s.get("status") == "failed"
    )
    sent = [m for m in stream.accepted if phone[m]]
    duplicates = sum(phone[m] - 1 for m in stream.accepted if phone[m] > 1)
    lost = [
        m
        for m, s in states.items()
        if not phone[m]
        and s.get("status") not in ("failed", "expired")
        and s.get("status") not in ("queued", "sending", "unknown")
    ]
    stuck = [m for m, s in states.items() if s.get("status") in ("queued", "sending", "unknown")]
    errors_5xx = sum(1 for status, _ in stream.answers if status >= 500 or status == 0)
    longest = max((seconds for _, seconds in stream.answers), default=0.0)
    poison_sent = sum(phone[m] for m in poisoned)
    rows = [
        ("SMS accepted (200)", len(stream.accepted), "-"),
        ("sent (on the phone)", len(sent), "-"),
        ("duplicates", duplicates, "0"),
        ("lost", len(lost), "0"),
        ("stuck (queued or sending)", len(stuck), "0"),
        ("failed", statuses.get("failed", 0), "with reason"),
        ("poison messages sent", poison_sent, "0"),
        ("abandoned by the client after 8 tries", stream.abandoned, "-"),
        ("5xx or lost connection answers", errors_5xx, "-"),
        ("longest answer", f"{longest:.1f} s", f"< {ANSWER_BUDGET:.0f} s"),
    ]
    width = max(len(r[0]) for r in rows)
    print(f"{'measure'.ljust(width)}  value      target")
    for name, value, goal in rows:
        print(f"{name.ljust(width)}  {str(value).ljust(9)}  {goal}")
    print("\nfailed, by reason:")
    for reason, n in reasons.most_common():
        print(f"  {n:4d}  {reason}")
    print(f"\nfaults: {len(events)} ({'; '.join(events)})")
    print(f"took {took:.0f} s; {stopped.summary()}")
    missed = duplicates or lost or stuck or poison_sent or longest >= ANSWER_BUDGET
    return 1 if missed else 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.chaos", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--messages", type=int, default=200)
    parser.add_argument("--kills", type=int, default=10)
    parser.add_argument("--freezes", type=int, default=3)
    args = parser.parse_args(argv)
    return run(args.messages, args.kills, args.freezes)


if __name__ == "__main__":
    sys.exit(main())
