"""One account's OTP while another floods the shared pool: latency to the phone, against
the same account alone, on the local stack.

A stack of its own (``python -m devstack`` via bench/_stack.py) whose bridge is paced like
a small SIM bank: SENDS_PER_MINUTE (10 SMS/s) and a burst of 1, so a flood builds a
backlog. Account A is the stack's key ("dev"); account B gets a key from the operator
tool, and quotas high enough to flood round after round.

a. A alone: ROUNDS OTPs, one at a time; latency = the simulator's ``sentAt`` - the time
   ``POST /otp/send`` returned.
b. B floods: first B's per-minute SMS quota as one bulk backlog (BULK SMS), then per round
   B's per-minute OTP quota (FLOOD OTPs, from WORKERS threads at once), and while those
   wait on the OTP queue, one OTP of A, timed as in (a). The next round starts once B's
   OTPs are out.

Budget: the flood adds at most EXTRA_SENDS_BUDGET of the bridge's send intervals to A's
median latency (the send under way, one of B's, the poll that brings A's OTP in). Without
fair queues and the bridge's fair pick, A's OTP would wait behind B's whole backlog.

    python -m bench.fair_share
"""

from __future__ import annotations

import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor

from bench import Report, _stack, main_for, percentile
from bench._stack import fresh_phone, iso_unix

SENDS_PER_MINUTE = 600
ROUNDS = 10
FLOOD = 30  # OTPs of B per round: its default otpPerMinute
BULK = 300  # SMS of B queued first: its default smsPerMinute
WORKERS = 6
WAIT = 60  # seconds, for any SMS to reach the phone
EXTRA_SENDS_BUDGET = 3
FLOODER = "bench-flood"
NO_LIMIT = (
    "smsPerMinute=100000 smsPerDay=1000000 otpPerMinute=100000 otpPerHour=1000000 "
    "otpPerDay=1000000 bulkRecipientsPerDay=1000000"
).split()


def _otp(stack, key: str) -> tuple[str, float]:
    """POST /otp/send to a fresh number; (messageId, unix time the answer was in)."""
    answer = stack.post("/otp/send", {"phoneNumber": fresh_phone()}, key=key)
    if answer.status_code != 200:
        raise RuntimeError(f"otp/send: {answer.status_code} {answer.text[:200]}")
    return answer.json()["messageId"], time.time()


def _latency(stack, message_id: str, returned: float) -> float:
    return iso_unix(stack.wait_outbox([message_id], WAIT)[message_id]["sentAt"]) - returned


def alone(stack) -> list[float]:
    times = []
    for _ in range(ROUNDS):
        times.append(_latency(stack, *_otp(stack, stack.key)))
        time.sleep(0.2)
    return times


def flooded(stack, flooder: str) -> dict:
    numbers = [fresh_phone() for _ in range(BULK)]
    for start in range(0, BULK, 100):
        answer = stack.post(
            "/messages/bulk",
            {"message": "Promo", "phoneNumbers": numbers[start : start + 100]},
            key=flooder,
        )
        if answer.status_code != 200:
            raise RuntimeError(f"bulk: {answer.status_code} {answer.text[:200]}")
    times, backlogs = [], []
    with ThreadPoolExecutor(WORKERS) as pool:
        for _ in range(ROUNDS):
            flood = [m for m, _ in pool.map(lambda _: _otp(stack, flooder), range(FLOOD))]
            backlogs.append(len(set(flood) - stack.outbox_new().keys()))
            times.append(_latency(stack, *_otp(stack, stack.key)))
            stack.wait_outbox(flood, WAIT)
    return {"times": times, "backlogs": backlogs}


def measure(stack) -> dict:
    stack.operator("accounts", "quota", "dev", *NO_LIMIT)
    stack.operator("accounts", "quota", FLOODER, *NO_LIMIT)
    flooder = stack.create_api_key(FLOODER, name="bench flood")
    _latency(stack, *_otp(stack, stack.key))  # warm every path once
    return {"alone": alone(stack), "flood": flooded(stack, flooder)}


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms"


def report(m: dict) -> Report:
    interval = 60 / SENDS_PER_MINUTE
    alone_p50 = statistics.median(m["alone"])
    flood = m["flood"]["times"]
    flood_p50 = statistics.median(flood)
    extra = (flood_p50 - alone_p50) / interval
    out = Report("fair_share")
    out.add(
        f"(a) A's OTP alone, median of {ROUNDS} (p95)",
        f"{_ms(alone_p50)} ({_ms(percentile(m['alone'], 0.95))})",
    )
    out.add(
        f"(b) A's OTP behind B's flood ({FLOOD} OTP/round, {BULK} SMS), median (p95)",
        f"{_ms(flood_p50)} ({_ms(percentile(flood, 0.95))})",
    )
    out.add(
        "(b)-(a) in send intervals of the bridge",
        f"{extra:.1f} ({_ms(interval)} each; ratio b/a {flood_p50 / alone_p50:.2f})",
        f"<= {EXTRA_SENDS_BUDGET}",
        "ok" if extra <= EXTRA_SENDS_BUDGET else "FAIL",
    )
    backlogs = m["flood"]["backlogs"]
    out.details += [
        f"bridge: {SENDS_PER_MINUTE} SMS/min, burst 1; B's OTPs still queued when A sent: "
        f"median {statistics.median(backlogs):.0f} (min {min(backlogs)}, max {max(backlogs)}),"
        f" i.e. {_ms(statistics.median(backlogs) * interval)} of sending in arrival order",
    ]
    return out


def run(stack=None) -> Report:
    """On a stack of its own: its bridge's pace is part of the bench."""
    bench_stack = _stack.start(
        SMSGW_BRIDGE_SENDS_PER_MINUTE=str(SENDS_PER_MINUTE), SMSGW_BRIDGE_SEND_BURST="1"
    )
    try:
        result = report(measure(bench_stack))
    finally:
        stopped = _stack.finish(bench_stack)
    return _stack.with_stop(result, stopped)


if __name__ == "__main__":
    sys.exit(main_for(run))
