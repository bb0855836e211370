"""Inbound SMS -> webhook receiver on the local stack: how long from the inbox to the POST.

``python -m devstack`` as a subprocess (devstack/harness.py, via bench/_stack.py), which allows http:// webhooks to
127.0.0.1 (SMSGW_WEBHOOK_ALLOW_LOCAL) and runs the webhook worker off its queue. A
receiver (http.server on 127.0.0.1, answers 200 at once) is set with ``PUT /webhook``; the
account sends an SMS to PHONE first, so the SMS PHONE sends back belongs to it. Then ROUNDS
times: one line ``{"from": PHONE, "text": ...}`` appended to the simulated phone's inbox,
and the time until the receiver has the POST carrying that text (signature checked).
Rounds start a random 0.05-0.55 s after the previous POST arrived, so they fall at every
point of the bridge's 0.5 s inbox poll rather than always at the same one.

The stack's log splits each round: the bridge reads the line ("SMS received"), the API
stores it and queues the event ("webhook event queued"), the worker POSTs it.

    python -m bench.webhook_latency
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import random
import secrets
import statistics
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler

from bench import Report, _stack, main_for, percentile, spread_table
from bench._stack import log_times
from tests.loopback import LoopbackServer

ROUNDS = 30
PHONE = "+22238089336"
WAIT = 20  # longest wait for one webhook, seconds
SEED = 3  # of the pauses between rounds


class Receiver:
    """A webhook receiver on 127.0.0.1: records (arrival time, headers, body) of each POST."""

    def __init__(self):
        self.arrivals: list[tuple[float, dict, bytes]] = []
        self.arrived = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *_args):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                at = time.time()
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()
                with receiver.arrived:
                    receiver.arrivals.append(
                        (at, {k.lower(): v for k, v in self.headers.items()}, body)
                    )
                    receiver.arrived.notify_all()

        self.server = LoopbackServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *_exc):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)

    def wait_for(self, text: str, seconds: float) -> tuple[float, dict, bytes]:
        deadline = time.monotonic() + seconds
        with self.arrived:
            while True:
                for arrival in self.arrivals:
                    if json.loads(arrival[2]).get("message") == text:
                        return arrival
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"no webhook with text {text!r} within {seconds}s")
                self.arrived.wait(left)


def verify(secret: str, headers: dict, body: bytes) -> None:
    """Standard Webhooks check, as a receiver would do it."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.".encode() + body
    expected = "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    if not any(hmac.compare_digest(expected, s) for s in headers["webhook-signature"].split()):
        raise RuntimeError("webhook signature does not verify")


def measure(stack, rounds: int = ROUNDS) -> dict:
    pause = random.Random(SEED)
    with Receiver() as receiver:
        secret = stack.call("PUT", "/webhook", {"url": receiver.url, "rotateSecret": True}).json()[
            "secret"
        ]
        try:
            sent = stack.call(
                "POST", "/messages/send", {"phoneNumber": PHONE, "message": "Salam"}
            ).json()
            stack.wait_outbox([sent["messageId"]], WAIT)  # the account wrote to PHONE last
            token = secrets.token_hex(3)

            def one(text: str) -> dict:
                offset = stack.log_size()
                stack.receive_sms(PHONE, text)
                written = time.time()
                at, headers, body = receiver.wait_for(text, WAIT)
                verify(secret, headers, body)
                return {
                    "written": written,
                    "arrived": at,
                    "offset": offset,
                    "event": headers["webhook-id"],
                }

            first = one(f"warm-up {token}")  # first use of the inbound and worker paths
            results = []
            for i in range(rounds):
                time.sleep(pause.uniform(0.05, 0.55))
                results.append(one(f"bench {i} {token}"))
            log = stack.log_since(results[0]["offset"])
        finally:
            stack.call("DELETE", "/webhook")
    read = [t for t, _ in log_times(log, r"chinqit\.bridge: SMS received \(device ref")]
    queued = {m.group(1): t for t, m in log_times(log, r"webhook event queued .*\bid=(evt_\w+)")}
    for result in results:
        result["read"] = next((t for t in read if t >= result["written"] - 0.002), None)
        result["queued"] = queued.get(result["event"])
    return {"first": first["arrived"] - first["written"], "results": results}


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms"


def report(m: dict) -> Report:
    results = m["results"]
    total = [r["arrived"] - r["written"] for r in results]
    p50, p95 = statistics.median(total), percentile(total, 0.95)
    out = Report("webhook_latency")
    out.rows.append(
        {
            "bench": "webhook_latency",
            "measure": f"inbox line -> webhook receiver got the POST, {len(results)} SMS",
            "value": f"p50 {_ms(p50)}, p95 {_ms(p95)}",
            "budget": "-",
            "result": "reported",
        }
    )
    details = [
        f"{len(results)} inbound SMS, one at a time; inbox -> POST received: median {_ms(p50)}, "
        f"p95 {_ms(p95)} (min {_ms(min(total))}, max {_ms(max(total))}); the first one of the "
        f"stack, not counted: {_ms(m['first'])}",
    ]
    split = [r for r in results if r["read"] is not None and r["queued"] is not None]
    if split:
        parts = [
            (
                "inbox line -> bridge reads it (the bridge reads the phone every poll_interval, "
                "0.5 s, when idle)",
                [r["read"] - r["written"] for r in split],
            ),
            (
                "bridge read -> event queued (journal, POST /device/inbound: owner query, PutItem, "
                "webhook SendMessage)",
                [r["queued"] - r["read"] for r in split],
            ),
            (
                "event queued -> receiver has it (worker's SQS long poll wakes, config read, claim, "
                "POST)",
                [r["arrived"] - r["queued"] for r in split],
            ),
        ]
        details += [
            f"split with the stack's log ({len(split)} SMS; log times have 1 ms resolution):",
            spread_table(parts, _ms),
        ]
    out.details = details
    return out


def run(stack=None) -> Report:
    """On ``stack`` if given (left running), else on a stack of its own."""
    return _stack.run_on(stack, lambda running: report(measure(running)))


if __name__ == "__main__":
    sys.exit(main_for(run))
