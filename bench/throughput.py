"""Requests per second through the handlers in-process: ``POST /messages/send``.

chalice.test.Client + moto ``mock_aws`` in one thread, WARMUP requests first, then N
timed ones (perf_counter around each request). Each request makes 2 AWS calls (PutItem,
SendMessage) that moto serves in-process, so moto dominates and the figure is a floor for
our code, not a Lambda figure. The time is split by timing, around the same requests:
  - moto:     moto's botocore stubber (moto's request parsing and its fake DynamoDB/SQS),
  - botocore: the rest of botocore's client calls (serialising, signing, parsing replies),
  - ours:     everything else: Chalice's test gateway, our router and views, PynamoDB.

    python -m bench.throughput
"""

from __future__ import annotations

import statistics
import sys
import time
from contextlib import contextmanager

from bench import Report, main_for, table
from bench._gateway import gateway

N = 300
WARMUP = 20


class _Timer:
    """Time spent inside a method, outermost calls only."""

    def __init__(self):
        self.seconds = 0.0
        self.depth = 0

    def wrap(self, method):
        timer = self

        def timed(*args, **kwargs):
            if timer.depth:
                return method(*args, **kwargs)
            timer.depth += 1
            started = time.perf_counter()
            try:
                return method(*args, **kwargs)
            finally:
                timer.seconds += time.perf_counter() - started
                timer.depth -= 1

        return timed


@contextmanager
def _timing():
    """Patch botocore's BaseClient._make_api_call and moto's stubber to time them."""
    from botocore.client import BaseClient
    from moto.core.botocore_stubber import BotocoreStubber

    client, moto = _Timer(), _Timer()
    patched = [(BaseClient, "_make_api_call", client), (BotocoreStubber, "__call__", moto)]
    originals = [(cls, name, cls.__dict__[name]) for cls, name, _ in patched]
    for cls, name, timer in patched:
        setattr(cls, name, timer.wrap(cls.__dict__[name]))
    try:
        yield client, moto
    finally:
        for cls, name, original in originals:
            setattr(cls, name, original)


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def measure(n: int = N) -> dict:
    body = {"phoneNumber": "+22238089336", "message": "Bench message"}
    with gateway() as api:
        for _ in range(WARMUP):
            api.post("/messages/send", body)
        latencies = []
        with _timing() as (client, moto):
            started = time.perf_counter()
            for _ in range(n):
                t0 = time.perf_counter()
                response = api.post("/messages/send", body)
                latencies.append(time.perf_counter() - t0)
                if response.status_code != 200:
                    raise RuntimeError(
                        f"messages/send answered {response.status_code}: {response.body!r}"
                    )
            total = time.perf_counter() - started
    return {
        "n": n,
        "total": total,
        "latencies": latencies,
        "moto": moto.seconds,
        "botocore": client.seconds - moto.seconds,
        "ours": sum(latencies) - client.seconds,
    }


def run() -> Report:
    m = measure()
    lat = m["latencies"]
    p50, p95 = statistics.median(lat) * 1000, _percentile(lat, 0.95) * 1000
    report = Report("throughput")
    report.rows.append(
        {
            "bench": "throughput",
            "measure": f"POST /messages/send in-process, N={m['n']}",
            "value": f"{m['n'] / m['total']:.0f} req/s  (p50 {p50:.1f} ms, p95 {p95:.1f} ms)",
            "budget": "-",
            "result": "reported",
        }
    )
    spent = sum(lat)
    split = [
        {
            "part": part,
            "ms/request": f"{m[key] / m['n'] * 1000:.2f}",
            "share": f"{m[key] / spent:.0%}",
        }
        for part, key in (
            ("moto (fake AWS)", "moto"),
            ("botocore client side", "botocore"),
            ("ours (Chalice test gateway, router, views, PynamoDB)", "ours"),
        )
    ]
    report.details = [
        f"{m['n']} requests after {WARMUP} warm-up ones, one thread; moto serves the 2 AWS calls",
        f"latency ms: min {min(lat) * 1000:.1f}  p50 {p50:.1f}  p95 {p95:.1f}  max {max(lat) * 1000:.1f}",
        table(split, ["part", "ms/request", "share"]),
    ]
    return report


if __name__ == "__main__":
    sys.exit(main_for(run))
