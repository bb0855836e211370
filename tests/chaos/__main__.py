"""The chaos run: a stream of SMS through the local stack while its parts fail, then one
table of what became of every SMS. ``make chaos`` (``python -m tests.chaos``); traffic
only on 127.0.0.1; bounded in count and time; it stops by itself.

The stack runs with its AWS (moto) behind a fault proxy (tests/faults/proxy.py). While
SENDERS threads send N SMS with ``POST /messages/send`` (each with its own
Idempotency-Key, retried with it on a 5xx or a lost connection, as a careful client does):

- the device bridge is killed (SIGKILL) ``kills`` times; the stack starts it again;
- AWS freezes ``freezes`` times for FREEZE_SECONDS (nothing forwarded either way);
- a second API process (``python -m devstack.api``, behind a proxy of its own) is killed
  ``api_kills`` times between a message's write and its SendMessage (held at the proxy,
  then dropped); the client retries on the stack's API with its key;
- ``error_bursts`` times, for ERROR_SECONDS each: DynamoDB answers ERROR_RATE of its calls
  with InternalServerError, then SQS does so after carrying them out (answers lost);
- poison messages are put on the queue: a body that is not JSON, a text with a lone
  surrogate, a text of 200,000 characters, an unknown message id;
- the account's webhook receiver (subscribed to sms.sent and sms.failed) is down
  (connections closed unanswered), then slow (answers after the worker's timeout),
  ``webhook_faults`` times each, for WEBHOOK_FAULT_SECONDS.

Then it waits until every accepted SMS is settled (the outbox sweep runs every few
seconds here) and its webhook event is delivered, and counts: sent (on the simulated
phone), duplicates (on the phone twice), lost (accepted, not on the phone, not failed),
stuck (still queued or sending), failed (with their reasons), webhook events missing,
5xx answers, and the longest answer under fault. Exit 1 when a target is missed: 0
duplicates, 0 lost, 0 stuck, 0 webhook events missing, no answer longer than 10 s.

    python -m tests.chaos [--messages 200] [--kills 10] [--freezes 3] [--api-kills 5]
                          [--error-bursts 2] [--webhook-faults 1]
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
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from urllib.parse import urlparse

import requests

from devstack.harness import OUTBOUND_QUEUE, fresh_local_number, sqs_client, start, start_api
from devstack.proctree import descendants
from tests.e2e.helpers import start_embedded_aws
from tests.faults.proxy import FaultProxy
from tests.loopback import LoopbackServer

ANSWER_BUDGET = 10.0
SETTLE_SECONDS = 120
WEBHOOK_SETTLE_SECONDS = 90
SENDERS = 4
FREEZE_SECONDS = (12.0, 4.0)  # longer than an AWS call's bound (8 s), and shorter
ERROR_SECONDS = 6.0
ERROR_RATE = 0.3
WEBHOOK_FAULT_SECONDS = 8.0
WEBHOOK_SLOW_SECONDS = 7.0  # past the webhook worker's 5 s timeout
HELD_WAIT = 10.0  # seconds for the doomed API's SendMessage to reach the proxy
STACK_SETTINGS = {
    "SMSGW_LOCAL_SCHEDULE_SECONDS": "3",  # the outbox sweep and device watch
    "SMSGW_OUTBOX_STALE_SECONDS": "15",
    "SMSGW_BRIDGE_HEARTBEAT_INTERVAL": "5",
    "SMSGW_BRIDGE_SENDS_PER_MINUTE": "1200",
    "SMSGW_BRIDGE_VISIBILITY_TIMEOUT": "20",
}


@dataclass(frozen=True)
class Plan:
    """How many faults of each kind."""

    kills: int = 10
    freezes: int = 3
    api_kills: int = 5
    error_bursts: int = 2
    webhook_faults: int = 1

    def seconds(self) -> float:
        """About how long the faults take: the stream is paced to last as long."""
        frozen = sum(FREEZE_SECONDS[n % len(FREEZE_SECONDS)] for n in range(self.freezes))
        faults = self.kills + self.freezes + self.api_kills + 2 * self.error_bursts
        return 1.5 * faults + frozen + 2 * ERROR_SECONDS * self.error_bursts + 3 * self.api_kills


class Timeline:
    """What happened when, in seconds from the start of the run."""

    def __init__(self):
        self.started = time.monotonic()
        self.faults: list[str] = []

    def now(self) -> float:
        return time.monotonic() - self.started

    def note(self, fault: str) -> None:
        self.faults.append(f"{self.now():.0f}s {fault}")


class Stream:
    """The senders: every SMS accepted, and how each answer went."""

    def __init__(self, stack, timeline: Timeline, count: int, pace: float):
        self.stack = stack
        self.timeline = timeline
        self.pace = pace
        self.todo = list(range(count))
        self.accepted: dict[str, str] = {}  # messageId -> text
        self.answers: list[tuple[float, int, float]] = []  # (seconds, status, asked at)
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
            self.send(*self.request(f"chaos {n}"))
            time.sleep(self.pace)

    @staticmethod
    def request(label: str) -> tuple[dict, dict]:
        """A new SMS to send: its body and its headers (with its own Idempotency-Key)."""
        body = {"message": f"{label} {uuid.uuid4().hex[:6]}", "phoneNumber": fresh_local_number()}
        return body, {"Idempotency-Key": str(uuid.uuid4())}

    def send(self, body: dict, headers: dict) -> None:
        """POST it to the stack's API until it is accepted (8 tries at most)."""
        headers = {**self.stack.headers(), **headers}
        for attempt in range(8):
            started = self.timeline.now()
            try:
                response = requests.post(
                    self.stack.url + "/messages/send", json=body, headers=headers, timeout=30
                )
            except requests.RequestException:
                self._answer(0, started)
                time.sleep(1 + attempt)
                continue
            self._answer(response.status_code, started)
            if response.status_code == 200:
                with self.lock:
                    self.accepted[response.json()["messageId"]] = body["message"]
                return
            if response.status_code < 500 and response.status_code != 429:
                break
            time.sleep(1 + attempt)
        with self.lock:
            self.abandoned += 1

    def _answer(self, status: int, started: float) -> None:
        with self.lock:
            self.answers.append((self.timeline.now() - started, status, started))


class DoomedApi:
    """A second API process, behind a proxy of its own, killed between a message's write
    and its SendMessage; started again after each kill."""

    def __init__(self, workdir: Path, aws_host: str, aws_port: int):
        self.workdir = workdir
        self.proxy = FaultProxy(aws_host, aws_port)
        self.api = start_api(workdir, self.proxy.url, **STACK_SETTINGS)
        self.caught = 0  # kills that happened with the SendMessage held

    def kill_between_write_and_queue(self, stream: Stream) -> None:
        body, headers = stream.request("api-kill")
        self.proxy.hold("AmazonSQS.SendMessage")
        sender = threading.Thread(target=self._post, args=(stream, body, headers))
        sender.start()
        deadline = time.monotonic() + HELD_WAIT
        while self.proxy.waiting == 0 and time.monotonic() < deadline:
            time.sleep(0.02)
        self.caught += self.proxy.waiting > 0
        self.api.kill()
        self.proxy.release(forward=False)
        sender.join()
        stream.send(body, headers)  # the client's retry, on the stack's API, same key
        self.api = start_api(self.workdir, self.proxy.url, **STACK_SETTINGS)

    def _post(self, stream: Stream, body: dict, headers: dict) -> None:
        try:
            requests.post(
                self.api.url + "/messages/send",
                json=body,
                headers={**stream.stack.headers(), **headers},
                timeout=30,
            )
        except requests.RequestException:
            pass  # the process died under it: the client cannot know what was stored

    def close(self) -> None:
        self.api.kill()
        self.proxy.close()


class WebhookReceiver:
    """The account's webhook endpoint: "up", "down" (connections closed unanswered) or
    "slow" (answers after the worker gave up). Records each event answered in time."""

    def __init__(self):
        self.mode = "up"
        self.delivered: collections.Counter = collections.Counter()  # (event, messageId)
        self.attempts = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *_args):
                pass

            def do_POST(self):
                payload = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                mode = receiver.mode
                receiver.attempts += 1
                if mode == "down":
                    self.close_connection = True
                    return
                if mode == "slow":
                    time.sleep(WEBHOOK_SLOW_SECONDS)
                else:
                    receiver.delivered[(payload["event"], payload["messageId"])] += 1
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = LoopbackServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/chaos-hook"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def bridge_pid(stack) -> int | None:
    found = [p for p in descendants(stack.pid) if "-m device_bridge" in p.cmdline]
    return found[0].pid if found else None


def faults(stack, proxy: FaultProxy, doomed: DoomedApi, stream: Stream, plan: Plan, log: Timeline):
    """The faults in a random order, 0.5 to 2.5 s apart."""
    rng = random.Random(9)
    todo = (
        ["kill"] * plan.kills
        + ["freeze"] * plan.freezes
        + ["api-kill"] * plan.api_kills
        + ["errors"] * plan.error_bursts
    )
    rng.shuffle(todo)
    frozen = 0
    for fault in todo:
        time.sleep(rng.uniform(0.5, 2.5))
        if fault == "kill":
            os.kill(_wait_for_bridge(stack), signal.SIGKILL)
            log.note("bridge SIGKILL")
        elif fault == "freeze":
            seconds = FREEZE_SECONDS[frozen % len(FREEZE_SECONDS)]
            frozen += 1
            proxy.freeze()
            log.note(f"AWS frozen {seconds:.0f} s")
            time.sleep(seconds)
            proxy.thaw()
        elif fault == "api-kill":
            doomed.kill_between_write_and_queue(stream)
            log.note("API SIGKILL between write and queue")
        else:
            for prefix, after in (("DynamoDB_20120810.", False), ("AmazonSQS.", True)):
                proxy.fail(prefix, ERROR_RATE, after_forwarding=after)
                time.sleep(ERROR_SECONDS)
                proxy.fail(prefix, 0)
            log.note(f"DynamoDB then SQS errors ({ERROR_RATE:.0%}, {ERROR_SECONDS:.0f} s each)")


def webhook_faults(receiver: WebhookReceiver, plan: Plan, log: Timeline) -> None:
    for _ in range(plan.webhook_faults):
        for mode in ("down", "slow"):
            time.sleep(2)
            receiver.mode = mode
            log.note(f"webhook receiver {mode} {WEBHOOK_FAULT_SECONDS:.0f} s")
            time.sleep(WEBHOOK_FAULT_SECONDS)
            receiver.mode = "up"


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


def expected_webhooks(states: dict[str, dict]) -> set[tuple[str, str]]:
    """(event, messageId) the receiver must get: sms.sent for each SMS that left the
    phone, sms.failed for each that failed."""
    events = {"sent": "sms.sent", "delivered": "sms.sent", "failed": "sms.failed"}
    return {
        (events[state["status"]], message_id)
        for message_id, state in states.items()
        if state.get("status") in events
    }


def settle_webhooks(receiver: WebhookReceiver, expected: set) -> set:
    """The expected events still missing once the webhook worker's retries had their time."""
    deadline = time.monotonic() + WEBHOOK_SETTLE_SECONDS
    while (missing := expected - set(receiver.delivered)) and time.monotonic() < deadline:
        time.sleep(1)
    return missing


def run(count: int, plan: Plan) -> int:
    aws, endpoint = start_embedded_aws()
    target = urlparse(endpoint)
    proxy = FaultProxy(target.hostname, target.port)
    workdir = Path(tempfile.mkdtemp(prefix="chinqit-chaos-"))
    receiver = WebhookReceiver()
    stack = start(
        workdir,
        key="cq_live_chaos" + uuid.uuid4().hex,
        AWS_ENDPOINT_URL=proxy.url,
        **STACK_SETTINGS,
    )
    doomed = None
    timeline = Timeline()
    try:
        stack.call("PUT", "/webhook", {"url": receiver.url, "events": ["sms.sent", "sms.failed"]})
        doomed = DoomedApi(workdir, target.hostname, target.port)
        poisoned = poison(stack, endpoint)
        stream = Stream(stack, timeline, count, plan.seconds() * SENDERS / count)
        chaos = [
            threading.Thread(target=faults, args=(stack, proxy, doomed, stream, plan, timeline)),
            threading.Thread(target=webhook_faults, args=(receiver, plan, timeline)),
        ]
        for thread in chaos:
            thread.start()
        stream.run()
        for thread in chaos:
            thread.join()  # the faults go on while the bridge drains what was sent
        states = settle(stack, stream.accepted)
        missing = settle_webhooks(receiver, expected_webhooks(states))
        phone = collections.Counter(line["messageId"] for line in stack.outbox_lines())
    finally:
        proxy.thaw()
        stopped = stack.stop()
        if doomed:
            doomed.close()
        proxy.close()
        receiver.close()
        aws.kill()
        aws.wait()
    outcome = Outcome(stream, states, phone, poisoned, missing, receiver, proxy, doomed)
    return report(outcome, timeline, stopped)


@dataclass
class Outcome:
    stream: Stream
    states: dict
    phone: collections.Counter
    poisoned: list
    webhooks_missing: set
    receiver: WebhookReceiver
    proxy: FaultProxy
    doomed: DoomedApi


def report(outcome: Outcome, timeline: Timeline, stopped) -> int:
    stream, states, phone = outcome.stream, outcome.states, outcome.phone
    statuses = collections.Counter(s.get("status") for s in states.values())
    reasons = collections.Counter(
        s.get("statusReason") for s in states.values() if s.get("status") == "failed"
    )
    sent = [m for m in stream.accepted if phone[m]]
    duplicates = sum(phone[m] - 1 for m in stream.accepted if phone[m] > 1)
    pending = ("queued", "sending", "unknown")
    lost = [
        m
        for m, s in states.items()
        if not phone[m] and s.get("status") not in ("failed", "expired", *pending)
    ]
    stuck = [m for m, s in states.items() if s.get("status") in pending]
    errors_5xx = sum(1 for _, status, _ in stream.answers if status >= 500 or status == 0)
    slowest = sorted(stream.answers, reverse=True)[:3]
    longest = slowest[0][0] if slowest else 0.0
    poison_sent = sum(phone[m] for m in outcome.poisoned)
    injected = collections.Counter()
    for operation, n in outcome.proxy.injected.items():
        injected[operation.split(".")[0]] += n
    expected = expected_webhooks(states)
    twice = sum(1 for n in outcome.receiver.delivered.values() if n > 1)
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
        ("API killed with the SendMessage held", outcome.doomed.caught, "-"),
        (
            "AWS errors injected (DynamoDB, SQS)",
            f"{injected['DynamoDB_20120810']}, {injected['AmazonSQS']}",
            "-",
        ),
        ("webhook events expected", len(expected), "-"),
        ("webhook events missing", len(outcome.webhooks_missing), "0"),
        ("webhook events delivered twice", twice, "-"),
        ("webhook attempts", outcome.receiver.attempts, "-"),
    ]
    width = max(len(r[0]) for r in rows)
    print(f"{'measure'.ljust(width)}  value      target")
    for name, value, goal in rows:
        print(f"{name.ljust(width)}  {str(value).ljust(9)}  {goal}")
    print("\nfailed, by reason:")
    for reason, n in reasons.most_common():
        print(f"  {n:4d}  {reason}")
    if outcome.webhooks_missing:
        print("\nwebhook events missing:", sorted(outcome.webhooks_missing)[:10])
    print(
        "\nslowest answers:",
        ", ".join(f"{s:.1f} s ({st or 'no answer'}, asked at {at:.0f}s)" for s, st, at in slowest),
    )
    print(f"faults: {len(timeline.faults)} ({'; '.join(timeline.faults)})")
    print(f"took {timeline.now():.0f} s; {stopped.summary()}")
    missed = (
        duplicates
        or lost
        or stuck
        or poison_sent
        or outcome.webhooks_missing
        or longest >= ANSWER_BUDGET
    )
    return 1 if missed else 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.chaos", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--messages", type=int, default=200)
    for name, default in Plan().__dict__.items():
        parser.add_argument("--" + name.replace("_", "-"), type=int, default=default)
    args = vars(parser.parse_args(argv))
    return run(args.pop("messages"), Plan(**args))


if __name__ == "__main__":
    sys.exit(main())
