"""The phone's bridge on the local stack: the device_watch schedule (run every second
here) sees it go silent and come back and tells the operator; when it crashes, the stack
starts it again."""

import os
import signal
import time

import pytest

from devstack.harness import start
from devstack.proctree import descendants


@pytest.fixture
def quick_stack(tmp_path):
    running = start(
        tmp_path / "stack",
        SMSGW_LOCAL_SCHEDULE_SECONDS="1",
        SMSGW_DEVICE_OFFLINE_SECONDS="4",
        SMSGW_BRIDGE_HEARTBEAT_INTERVAL="1",
    )
    try:
        yield running
    finally:
        assert running.stop().returncode == 0, running.log_tail()


def wait_for_log(stack, text: str, since: int, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while text not in stack.log_since(since):
        assert time.monotonic() < deadline, f"{text!r} not logged\n{stack.log_tail()}"
        time.sleep(0.2)


def test_a_silent_bridge_is_reported_offline_then_back_online(quick_stack):
    (bridge,) = [p for p in descendants(quick_stack.pid) if "-m device_bridge" in p.cmdline]
    wait_for_log(quick_stack, "POST /device/heartbeat -> 200", 0)  # the API has seen it
    start_of_test = quick_stack.log_size()
    os.kill(bridge.pid, signal.SIGSTOP)  # frozen: no more heartbeats
    try:
        wait_for_log(quick_stack, "(shared pool) is offline", start_of_test)
    finally:
        os.kill(bridge.pid, signal.SIGCONT)
    wait_for_log(quick_stack, "(shared pool) is back online", start_of_test)
    assert "scheduled handler" not in quick_stack.log_since(start_of_test)  # it never failed


def test_a_crashed_bridge_is_started_again_and_sends(quick_stack):
    (bridge,) = [p for p in descendants(quick_stack.pid) if "-m device_bridge" in p.cmdline]
    since = quick_stack.log_size()
    os.kill(bridge.pid, signal.SIGKILL)
    wait_for_log(quick_stack, "device bridge exited with -9; starting it again", since)
    sent = quick_stack.post(
        "/messages/send", {"message": "après la panne", "phoneNumber": "38089336"}
    )
    message_id = sent.json()["messageId"]
    assert quick_stack.wait_outbox([message_id], 30)[message_id]["text"] == "après la panne"
    (again,) = [p for p in descendants(quick_stack.pid) if "-m device_bridge" in p.cmdline]
    assert again.pid != bridge.pid
