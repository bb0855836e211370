"""A SIM bank: 16 modem lines in one bridge (issue 13's budgets).

16 simulated GSM modems (tests/integration/drivers/fake_modem.py ``FakeModem``, each on its
own pseudo-terminal, spoken to by the real modem driver over pyserial) are the [[line]]s of
ONE bridge's agent (``BridgeConfig(driver="", bank=...)``, ``Agent.build(config)``). Each
modem takes ``MODEM_SECONDS`` (1 s) to have the network accept every SMS
(``FakeModem.send_seconds``) and is busy meanwhile. Each line is paced at ``PACE`` SMS a
minute with send_burst 1, faster than its modem, so the modem is the bottleneck: a line's
capacity is min(pace, 1 per modem send). SQS is a moto ``ThreadedMotoServer`` on loopback,
the device API is tests.integration.bridge.fakes ``FakeApi`` (a local HTTP server).

N = 16 x 8 SMS are queued before the agent starts; elapsed = from the first SMS reaching a
modem (its first AT+CMGS PDU) to the API holding the last "sent" status (or "delivered":
the fake modems send the status report at once). Figures:

a. Throughput N / elapsed. Budget: >= 0.95 x the sum of the lines' capacities.
b. Bridge overhead per SMS: on each line, the time from one SMS reaching its modem to the next
   one reaching it (``FakeModem.submitted_at``), less the modem's 1 s send, averaged over every
   pair of consecutive sends of every line: the time a line with SMS waiting is not in its
   modem's send (the outcome's journaling and report, the next claim over HTTP, the AT
   exchange before the PDU). Budget: <= 2 % of MODEM_SECONDS. Reported besides: the same
   over the whole run, (LINES x elapsed / N - MODEM_SECONDS) / MODEM_SECONDS, which also
   holds the start (the lines' first sends are spread while the first messages arrive from
   SQS) and the last report.
c. CPU (reported): ``time.process_time()`` over the run. It is the WHOLE process: the bridge
   (its loop, one port thread and one serial reader per line, SQS pollers, the visibility
   keeper) and also the 16 fake modems, the moto server and the fake API, all in-process.
   Split by thread from /proc/self/task/<tid>/stat (Linux), named by Python thread name:
   "bridge" = the main thread (the agent loop) + port-*, serial-link *, poll-*, visibility, outbox*;
   "fakes" = fake-modem threads + everything else (moto, FakeApi, boto3 in this process).

d. The same run with every API answer REMOTE_API_SECONDS late (reported): what a line loses
   to the claim's round trip before each send when the API is far away.

    python -m bench.sim_bank    # about 30 s; not part of make test
"""

from __future__ import annotations

import json
import logging
import os
import sys
import tempfile
import threading
import time
import uuid

from bench import Report, main_for

LINES = 16
PER_LINE = 8
N = LINES * PER_LINE
MODEM_SECONDS = 1.0
PACE = 120.0  # SMS a minute a line may send (send_burst 1): faster than its modem
THROUGHPUT_SHARE = 0.95  # of the sum of the lines' capacities
OVERHEAD_BUDGET = 0.02  # of a 1 s modem send
# Reported, not budgeted: each FakeApi answer delayed this long, as from a bridge in Nouakchott
# to an API in eu-west-1. Every claim is a round trip before its send.
REMOTE_API_SECONDS = 0.1
WAIT = float(os.environ.get("BENCH_WAIT", 90.0))

_BRIDGE_THREADS = ("port-", "serial-link", "poll-", "visibility", "outbox", "MainThread")


def _thread_cpu() -> dict[str, float]:
    """CPU seconds (user + system) of each live Python thread, by name; {} off Linux."""
    tick = os.sysconf("SC_CLK_TCK")
    cpu = {}
    for thread in threading.enumerate():
        try:
            with open(f"/proc/self/task/{thread.native_id}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        key = f"{thread.name}#{thread.native_id}"
        cpu[key] = (int(fields[11]) + int(fields[12])) / tick
    return cpu


def _split(before: dict[str, float], after: dict[str, float]) -> tuple[float, float]:
    bridge = fakes = 0.0
    for key, seconds in after.items():
        delta = seconds - before.get(key, 0.0)
        if key.startswith(_BRIDGE_THREADS):
            bridge += delta
        else:
            fakes += delta
    return bridge, fakes


def _time_reports(api) -> dict[str, float]:
    """messageId -> time.monotonic() when the fake API first stored it sent or delivered."""
    reported: dict[str, float] = {}
    answer = api.answer

    def timed(path: str, key: str, body: dict) -> tuple[int, dict]:
        result = answer(path, key, body)
        if body.get("status") in ("sent", "delivered"):
            reported.setdefault(path.split("/")[3], time.monotonic())
        return result

    api.answer = timed
    return reported


def measure(api_latency: float = 0.0) -> dict:
    import boto3
    from moto.server import ThreadedMotoServer

    from device_bridge.agent import Agent
    from device_bridge.config import BridgeConfig, LineSpec
    from tests.integration.bridge.fakes import DEVICE_KEY, FakeApi
    from tests.integration.drivers.fake_modem import FakeModem

    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    logging.getLogger("chinqit").setLevel(logging.WARNING)
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        os.environ.setdefault(name, "testing")
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    os.environ["AWS_ENDPOINT_URL"] = f"http://{host}:{port}"
    api = FakeApi()
    api.latency = api_latency
    reported = _time_reports(api)
    modems = []
    try:
        sqs = boto3.client("sqs")
        prefix = f"bench-bank-{uuid.uuid4().hex[:8]}"
        names = {"bulk": f"{prefix}-outbound", "priority": f"{prefix}-outbound-priority"}
        urls = {
            kind: sqs.create_queue(QueueName=name, Attributes={"VisibilityTimeout": "60"})[
                "QueueUrl"
            ]
            for kind, name in names.items()
        }
        ids = [str(uuid.uuid4()) for _ in range(N)]
        for start in range(0, N, 10):
            sqs.send_message_batch(
                QueueUrl=urls["bulk"],
                Entries=[
                    {
                        "Id": str(i),
                        "MessageBody": json.dumps(
                            {
                                "messageId": ids[i],
                                "to": f"+222380{i:05d}",
                                "text": f"Bench bank {i}",
                                "kind": "sms",
                                "sendBefore": None,
                            }
                        ),
                    }
                    for i in range(start, min(N, start + 10))
                ],
            )
        for _ in range(LINES):
            modem = FakeModem("sim800")
            modem.send_seconds = MODEM_SECONDS
            modems.append(modem)
        settings = {"sends_per_minute": PACE, "send_burst": 1}
        bank = tuple(
            LineSpec(
                slot,
                f"+2223800{slot:04d}",
                "modem",
                {"port": modem.port, "send_timeout": 10.0},
                settings=dict(settings),
            )
            for slot, modem in enumerate(modems, 1)
        )
        with tempfile.TemporaryDirectory() as tmp:
            config = BridgeConfig(
                api_url=api.url,
                device_key=DEVICE_KEY,
                driver="",
                bank=bank,
                aws_credentials="environment",
                allow_insecure_http=True,
                outbound_queue=names["bulk"],
                priority_queue=names["priority"],
                journal=os.path.join(tmp, "journal.sqlite3"),
                wait_time_seconds=1,  # a long poll, as in production (20 s), but short
                retry_delay=0.0,
                **settings,
            )
            agent = Agent.build(config)
            sqs_calls: dict[str, int] = {}

            def count(event_name: str, **_) -> None:
                operation = event_name.rsplit(".", 1)[1]
                sqs_calls[operation] = sqs_calls.get(operation, 0) + 1

            agent.queues["bulk"].client.meta.events.register("before-call.sqs", count)
            agent.start()
            try:
                marks: dict = {}

                def done() -> bool:
                    # CPU is sampled when the loop turns; the times come from the fakes
                    if "cpu" not in marks and any(m.segments for m in modems):
                        marks["cpu"] = time.process_time()
                        marks["threads"] = _thread_cpu()
                    sent = sum(api.statuses.get(i) in ("sent", "delivered") for i in ids)
                    if sent == N:
                        marks["cpu_end"] = time.process_time()
                        marks["threads_end"] = _thread_cpu()
                        return True
                    return False

                agent.run_until(done, timeout=WAIT)
            finally:
                agent.shutdown()
        per_modem = [len(m.network_sent()) for m in modems]
        gaps = [
            later - earlier - MODEM_SECONDS
            for m in modems
            for earlier, later in zip(m.submitted_at, m.submitted_at[1:], strict=False)
        ]
    finally:
        for modem in modems:
            modem.close()
        api.stop()
        server.stop()
    firsts = [m.submitted_at[0] for m in modems]
    elapsed = max(reported.values()) - min(firsts)
    bridge_cpu, fakes_cpu = _split(marks["threads"], marks["threads_end"])
    return {
        "elapsed": elapsed,
        "cpu": marks["cpu_end"] - marks["cpu"],
        "bridge_cpu": bridge_cpu,
        "fakes_cpu": fakes_cpu,
        "per_modem": per_modem,
        "gaps": gaps,
        "sqs_calls": sqs_calls,
        "start_spread": max(firsts) - min(firsts),
    }


def run() -> Report:
    m = measure()
    remote = measure(api_latency=REMOTE_API_SECONDS)
    capacity = LINES * min(PACE / 60.0, 1.0 / MODEM_SECONDS)  # SMS/s
    rate = N / m["elapsed"]
    budget = THROUGHPUT_SHARE * capacity
    overhead = sum(m["gaps"]) / len(m["gaps"]) / MODEM_SECONDS
    whole_run = (LINES * m["elapsed"] / N - MODEM_SECONDS) / MODEM_SECONDS
    minutes = m["elapsed"] / 60.0
    report = Report("sim_bank")
    report.add(
        f"aggregate SMS/s, {LINES} modem lines of 1 s sends (N={N})",
        f"{rate:.2f}",
        f">= {budget:.2f} (0.95 x {capacity:g})",
        "PASS" if rate >= budget else "FAIL",
    )
    report.add(
        "bridge overhead per SMS, of a 1 s modem send",
        f"{overhead:.1%}",
        f"<= {OVERHEAD_BUDGET:.0%}",
        "PASS" if overhead <= OVERHEAD_BUDGET else "FAIL",
    )
    report.add(
        "bridge overhead per SMS over the whole run (start and last report included)",
        f"{whole_run:.1%}",
    )
    report.add(
        f"aggregate SMS/s with the API {REMOTE_API_SECONDS * 1000:g} ms away",
        f"{N / remote['elapsed']:.2f}",
    )
    report.add(
        f"bridge overhead per SMS with the API {REMOTE_API_SECONDS * 1000:g} ms away",
        f"{sum(remote['gaps']) / len(remote['gaps']) / MODEM_SECONDS:.1%}",
    )
    calls = m["sqs_calls"]
    report.add(
        f"SQS calls per SMS (receive + delete + visibility), {N} queued at once",
        f"{sum(calls.values()) / N:.2f}",
    )
    report.add("process CPU per SMS (bridge + fakes + moto)", f"{m['cpu'] / N * 1000:.1f} ms")
    report.add(
        "process CPU per line per minute (bridge + fakes + moto)",
        f"{m['cpu'] / LINES / minutes:.2f} s",
    )
    if m["bridge_cpu"] or m["fakes_cpu"]:
        report.add("bridge threads' CPU per SMS", f"{m['bridge_cpu'] / N * 1000:.1f} ms")
        report.add(
            "bridge threads' CPU per line per minute",
            f"{m['bridge_cpu'] / LINES / minutes:.2f} s",
        )
    report.details = [
        f"elapsed {m['elapsed']:.2f} s from the first SMS at a modem to the last 'sent' at "
        f"the API; ideal {N / capacity:.2f} s",
        "SQS calls: " + ", ".join(f"{name} {n}" for name, n in sorted(calls.items())),
        f"lines paced at {PACE:g}/min, send_burst 1; modem send {MODEM_SECONDS:g} s; "
        f"capacity per line {min(PACE / 60.0, 1.0 / MODEM_SECONDS):g}/s",
        f"SMS per modem: {m['per_modem']}; the lines' first sends spread over "
        f"{m['start_spread']:.2f} s",
        f"between consecutive sends of a line, beyond the 1 s send: mean "
        f"{sum(m['gaps']) / len(m['gaps']) * 1000:.1f} ms, longest {max(m['gaps']) * 1000:.1f} ms "
        f"({len(m['gaps'])} pairs)",
        f"CPU over the run: process {m['cpu']:.2f} s = bridge threads {m['bridge_cpu']:.2f} s "
        f"+ fake modems, moto, FakeApi {m['fakes_cpu']:.2f} s (per-thread from /proc; "
        "threads started and ended inside the run, such as"
        " the HTTP servers' request threads, are missed: the process figure is the whole)",
    ]
    return report


if __name__ == "__main__":
    sys.exit(main_for(run))
