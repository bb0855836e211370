"""The bridge as a process (`python -m device_bridge` with the fake phone): killed at the
worst moments, restarted, and stopped with SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from device_bridge.agent import INTERRUPTED
from tests.integration.bridge.conftest import wait_until
from tests.integration.bridge.fakes import CRASH_EXIT, DEVICE_KEY, read_sent_log

PROJECT = Path(__file__).resolve().parents[3]


@pytest.fixture
def sent_log(tmp_path) -> Path:
    return tmp_path / "sent.jsonl"


@pytest.fixture
def start_bridge(queues, api, moto_endpoint, tmp_path, sent_log):
    processes = []

    def start(*driver_options: str, **environment: str) -> subprocess.Popen:
        env = {
            **os.environ,
            "AWS_ENDPOINT_URL": moto_endpoint,
            "SMSGW_BRIDGE_API_URL": api.url,
            "SMSGW_BRIDGE_ALLOW_INSECURE_HTTP": "true",
            "SMSGW_BRIDGE_DEVICE_KEY": DEVICE_KEY,
            "SMSGW_BRIDGE_DRIVER": "fake",
            "SMSGW_BRIDGE_AWS_CREDENTIALS": "environment",
            "SMSGW_BRIDGE_OUTBOUND_QUEUE": queues.names["bulk"],
            "SMSGW_BRIDGE_PRIORITY_QUEUE": queues.urls["priority"],  # a URL works too
            "SMSGW_BRIDGE_JOURNAL": str(tmp_path / "journal.sqlite3"),
            "SMSGW_BRIDGE_WAIT_TIME_SECONDS": "0",
            "SMSGW_BRIDGE_POLL_INTERVAL": "0.02",
            "SMSGW_BRIDGE_SENDS_PER_MINUTE": "60000",
            "SMSGW_BRIDGE_SEND_BURST": "100",
            **environment,
        }
        options = [
            f"--driver-option={option}" for option in (f"sent_log={sent_log}", *driver_options)
        ]
        with open(tmp_path / f"bridge-{len(processes)}.log", "w") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "tests.integration.bridge.bridge_process", *options],
                cwd=PROJECT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        processes.append(process)
        return process

    yield start
    for process in processes:
        if process.poll() is None:
            process.kill()
            process.wait()


def stop(process: subprocess.Popen) -> int:
    process.send_signal(signal.SIGTERM)
    return process.wait(timeout=15)


def test_killed_after_sending_before_the_sqs_delete_sends_nothing_twice(
    queues, api, start_bridge, sent_log
):
    message_id = queues.put()
    crashed = start_bridge(BRIDGE_TEST_EXIT_BEFORE_DELETE="1", SMSGW_BRIDGE_VISIBILITY_TIMEOUT="1")
    assert crashed.wait(timeout=20) == CRASH_EXIT
    assert read_sent_log(sent_log) == [message_id]
    # the outbox may have posted "sent" on its thread before the deletes' thread died
    assert api.statuses.get(message_id) in ("sending", "sent")

    restarted = start_bridge(SMSGW_BRIDGE_VISIBILITY_TIMEOUT="1")
    wait_until(
        lambda: api.statuses.get(message_id) == "sent" and queues.counts() == (0, 0),
        timeout=20,
        message="the redelivered message deleted and 'sent' posted",
    )
    assert stop(restarted) == 0
    assert read_sent_log(sent_log) == [message_id], "the SMS left the phone exactly once"
    assert api.posted_statuses(message_id) == ["sending", "sent"]


def test_killed_inside_the_send_is_reported_failed_and_not_resent(
    queues, api, start_bridge, sent_log
):
    message_id = queues.put()
    crashed = start_bridge("crash_after_send=true", SMSGW_BRIDGE_VISIBILITY_TIMEOUT="1")
    assert crashed.wait(timeout=20) == CRASH_EXIT
    assert read_sent_log(sent_log) == [message_id]

    restarted = start_bridge(SMSGW_BRIDGE_VISIBILITY_TIMEOUT="1")
    wait_until(
        lambda: api.statuses.get(message_id) == "failed" and queues.counts() == (0, 0),
        timeout=20,
        message="the interrupted send reported and its message deleted",
    )
    assert stop(restarted) == 0
    assert read_sent_log(sent_log) == [message_id], "not sent again"
    assert api.status_calls(message_id)[-1][1]["reason"] == INTERRUPTED


def test_sigterm_finishes_the_send_in_flight_and_releases_the_rest(
    queues, api, start_bridge, sent_log
):
    ids = {queues.put() for _ in range(3)}
    bridge = start_bridge("send_delay=1")
    wait_until(lambda: read_sent_log(sent_log, "start"), timeout=20, message="a send started")
    assert stop(bridge) == 0
    in_flight = read_sent_log(sent_log, "start")
    assert read_sent_log(sent_log) == in_flight and len(in_flight) == 1
    assert api.statuses.get(in_flight[0]) == "sent"
    assert queues.counts() == (2, 0), "the others are back on the queue at once"
    assert {body["messageId"] for body in queues.take_visible()} == ids - set(in_flight)
