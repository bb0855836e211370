"""A SIM bank: 16 modem lines in one bridge (issue 13's budgets).

The bridge runs as on a modem-pool host: its own process, ``python -m device_bridge
--config bank.toml``, one [[line]] per modem. Its peers run in this process: 16 simulated
GSM modems (tests/integration/drivers/fake_modem.py ``FakeModem``, each on its own
pseudo-terminal, spoken to by the bridge's modem driver over pyserial), SQS (a moto
``ThreadedMotoServer`` on loopback) and the device API (tests.integration.bridge.fakes
``FakeApi``, a local HTTP server). Each modem takes ``MODEM_SECONDS`` (1 s) to have the
network accept every SMS (``FakeModem.send_seconds``) and is busy meanwhile. Each line is
paced at ``PACE`` SMS a minute with send_burst 1, faster than its modem, so the modem is
the bottleneck: a line's capacity is min(pace, 1 per modem send).

N = 16 x 8 SMS are queued before the bridge starts; elapsed = from the first SMS reaching a
modem (its first AT+CMGS PDU) to the API holding the last "sent" status (or "delivered":
the fake modems send the status report at once). Figures:

a. Throughput N / elapsed. Budget: >= 0.95 x the sum of the lines' capacities.
b. Bridge overhead per SMS: on each line, the time from one SMS reaching its modem to the next
   one reaching it (``FakeModem.submitted_at``), less the modem's 1 s send, averaged over every
   pair of consecutive sends of every line: the time a line with SMS waiting is not in its
   modem's send (the outcome's journaling, the next claim over HTTP, the AT exchange before
   the PDU). Budget: <= 2 % of MODEM_SECONDS. Reported besides: the same over the whole
   run, (LINES x elapsed / N - MODEM_SECONDS) / MODEM_SECONDS, which also holds the start
   (the lines' first sends are spread while the first messages arrive from SQS) and the
   last report.
c. CPU (reported): the bridge process's user + system CPU (/proc/<pid>/stat) from the first
   SMS at a modem to the last report, per SMS and per line per minute.
d. The same run with every answer of the API and of SQS REMOTE_SECONDS late (reported): a
   bridge in Nouakchott, its API and queues in eu-west-1.
e. SQS calls the bridge made, counted by the moto server.

    python -m bench.sim_bank    # about 30 s; not part of make test
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator

from bench import Report, main_for

LINES = 16
PER_LINE = 8
N = LINES * PER_LINE
MODEM_SECONDS = 1.0
PACE = 120.0  # SMS a minute a line may send (send_burst 1): faster than its modem
THROUGHPUT_SHARE = 0.95  # of the sum of the lines' capacities
OVERHEAD_BUDGET = 0.02  # of a 1 s modem send
# Reported, not budgeted: each answer of the fake API and of SQS delayed this long, as from a
# bridge in Nouakchott to eu-west-1. Every claim is a round trip before its send.
REMOTE_SECONDS = 0.1
WAIT = float(os.environ.get("BENCH_WAIT", 90.0))


def _process_cpu(pid: int) -> float:
    """CPU seconds (user + system) process ``pid`` has used so far (Linux /proc)."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextlib.contextmanager
def _sqs_answers(latency: float) -> Iterator[dict[str, int]]:
    """Count the SQS calls moto answers, by action, each ``latency`` seconds late."""
    from moto.sqs.responses import SQSResponse

    calls: dict[str, int] = {}
    call_action = SQSResponse.call_action

    def counted(self):
        action = self._get_action()
        calls[action] = calls.get(action, 0) + 1
        time.sleep(latency)
        return call_action(self)

    SQSResponse.call_action = counted
    try:
        yield calls
    finally:
        SQSResponse.call_action = call_action


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


def _queue_messages(sqs, url: str) -> list[str]:
    ids = [str(uuid.uuid4()) for _ in range(N)]
    for start in range(0, N, 10):
        sqs.send_message_batch(
            QueueUrl=url,
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
    return ids


def _bank_config(api_url: str, names: dict[str, str], ports: list[str], tmp: str) -> str:
    """The bridge's TOML file: one [[line]] per modem, as on a modem-pool host."""
    lines = "".join(
        f'\n[[line]]\nnumber = "+2223800{slot:04d}"\n'
        f'[line.driver]\nname = "modem"\nport = "{port}"\nsend_timeout = 10.0\n'
        for slot, port in enumerate(ports, 1)
    )
    path = os.path.join(tmp, "bank.toml")
    with open(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600), "w") as file:
        file.write(
            f'api_url = "{api_url}"\n'
            "allow_insecure_http = true\n"
            'aws_credentials = "environment"\n'
            f'outbound_queue = "{names["bulk"]}"\n'
            f'priority_queue = "{names["priority"]}"\n'
            f'journal = "{os.path.join(tmp, "journal.sqlite3")}"\n'
            "wait_time_seconds = 1\n"  # a long poll, as in production (20 s), but short
            "retry_delay = 0.0\n"
            f"sends_per_minute = {PACE}\n"
            "send_burst = 1\n"
            'log_level = "WARNING"\n' + lines
        )
    return path


def measure(latency: float = 0.0) -> dict:
    """One run; ``latency``: seconds each answer of the API and of SQS is late."""
    import boto3
    from moto.server import ThreadedMotoServer

    from tests.integration.bridge.fakes import DEVICE_KEY, FakeApi
    from tests.integration.drivers.fake_modem import FakeModem

    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    environment = {
        **os.environ,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "SMSGW_BRIDGE_DEVICE_KEY": DEVICE_KEY,
    }
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    environment["AWS_ENDPOINT_URL"] = f"http://{host}:{port}"
    api = FakeApi()
    api.latency = latency
    reported = _time_reports(api)
    modems = [FakeModem("sim800") for _ in range(LINES)]
    for modem in modems:
        modem.send_seconds = MODEM_SECONDS
    try:
        sqs = boto3.client(
            "sqs",
            endpoint_url=environment["AWS_ENDPOINT_URL"],
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        prefix = f"bench-bank-{uuid.uuid4().hex[:8]}"
        names = {"bulk": f"{prefix}-outbound", "priority": f"{prefix}-outbound-priority"}
        urls = {
            kind: sqs.create_queue(QueueName=name, Attributes={"VisibilityTimeout": "60"})[
                "QueueUrl"
            ]
            for kind, name in names.items()
        }
        ids = _queue_messages(sqs, urls["bulk"])
        with tempfile.TemporaryDirectory() as tmp, _sqs_answers(latency) as sqs_calls:
            config = _bank_config(api.url, names, [m.port for m in modems], tmp)
            bridge = subprocess.Popen(
                [sys.executable, "-m", "device_bridge", "--config", config], env=environment
            )
            try:
                marks = _watch(bridge, modems, api, ids)
            finally:
                _stop(bridge)
            calls = dict(sqs_calls)
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
    return {
        "elapsed": max(reported.values()) - min(firsts),
        "bridge_cpu": marks["bridge_end"] - marks["bridge"],
        "fakes_cpu": marks["fakes_end"] - marks["fakes"],
        "per_modem": per_modem,
        "gaps": gaps,
        "sqs_calls": calls,
        "start_spread": max(firsts) - min(firsts),
    }


def _stop(bridge: subprocess.Popen) -> None:
    bridge.send_signal(signal.SIGTERM)
    try:
        bridge.wait(timeout=60)
    except subprocess.TimeoutExpired:
        bridge.kill()
        bridge.wait()


def _watch(bridge: subprocess.Popen, modems: list, api, ids: list[str]) -> dict[str, float]:
    """Wait for every SMS to be reported sent; CPU marks from the first send to the last."""
    marks: dict[str, float] = {}
    deadline = time.monotonic() + WAIT
    pid = bridge.pid
    while True:
        if bridge.poll() is not None:
            raise RuntimeError(f"the bridge exited with {bridge.returncode} (its log is above)")
        if "bridge" not in marks and any(m.segments for m in modems):
            marks.update(bridge=_process_cpu(pid), fakes=time.process_time())
        if all(api.statuses.get(i) in ("sent", "delivered") for i in ids):
            marks.update(bridge_end=_process_cpu(pid), fakes_end=time.process_time())
            return marks
        if time.monotonic() > deadline:
            raise TimeoutError(f"the bridge did not send {N} SMS within {WAIT} s")
        time.sleep(0.005)


def run() -> Report:
    m = measure()
    remote = measure(latency=REMOTE_SECONDS)
    capacity = LINES * min(PACE / 60.0, 1.0 / MODEM_SECONDS)  # SMS/s
    rate = N / m["elapsed"]
    budget = THROUGHPUT_SHARE * capacity
    overhead = sum(m["gaps"]) / len(m["gaps"]) / MODEM_SECONDS
    whole_run = (LINES * m["elapsed"] / N - MODEM_SECONDS) / MODEM_SECONDS
    minutes = m["elapsed"] / 60.0
    away = f"the API and SQS {REMOTE_SECONDS * 1000:g} ms away"
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
    report.add(f"aggregate SMS/s with {away}", f"{N / remote['elapsed']:.2f}")
    report.add(
        f"bridge overhead per SMS with {away}",
        f"{sum(remote['gaps']) / len(remote['gaps']) / MODEM_SECONDS:.1%}",
    )
    calls = m["sqs_calls"]
    report.add(
        f"SQS calls per SMS (receive + delete + visibility), {N} queued at once",
        f"{sum(calls.values()) / N:.2f}",
    )
    report.add("bridge process CPU per SMS", f"{m['bridge_cpu'] / N * 1000:.1f} ms")
    report.add(
        "bridge process CPU per line per minute", f"{m['bridge_cpu'] / LINES / minutes:.2f} s"
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
        f"CPU over the run: the bridge process {m['bridge_cpu']:.2f} s; this process (16 fake "
        f"modems, moto, the fake API) {m['fakes_cpu']:.2f} s",
    ]
    return report


if __name__ == "__main__":
    sys.exit(main_for(run))
