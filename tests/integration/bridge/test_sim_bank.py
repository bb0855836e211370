"""A SIM bank: many lines in one bridge, each with its driver, pace and SIM guard, against
the moto server's queues and the fake API."""

from __future__ import annotations

import threading
import time

from device_bridge.agent import Agent
from device_bridge.config import LineSpec
from device_bridge.drivers.base import DriverError, SendError
from tests.integration.bridge.conftest import running, wait_until
from tests.integration.bridge.fakes import FakeDriver


def bank(*numbers: str, **settings) -> tuple[LineSpec, ...]:
    return tuple(
        LineSpec(slot, number, "fake", {}, settings=dict(settings))
        for slot, number in enumerate(numbers, 1)
    )


def make_bank(make_config, drivers: list[FakeDriver], **options) -> Agent:
    numbers = [f"+2223800000{slot}" for slot in range(1, len(drivers) + 1)]
    line_settings = options.pop("line_settings", {})
    config = make_config(driver="", bank=bank(*numbers, **line_settings), **options)
    return Agent.build(config, drivers)


def last_lines(api) -> dict[int, dict]:
    return {line["slot"]: line for line in api.heartbeats()[-1]["lines"]}


def test_lines_of_a_bank_send_in_parallel_each_from_its_own_number(queues, api, make_config):
    both_sending = threading.Barrier(2, timeout=5)  # each send waits for the other line's
    drivers = [FakeDriver(), FakeDriver()]
    for driver in drivers:
        driver.during_send = lambda sms: both_sending.wait()
    ids = [queues.put(), queues.put()]
    with running(make_bank(make_config, drivers)) as agent:
        agent.run_until(lambda: all(api.statuses.get(i) == "sent" for i in ids), timeout=10)
    assert [len(driver.sent) for driver in drivers] == [1, 1]
    slots = sorted(api.status_calls(i)[-1][1]["simSlot"] for i in ids)
    assert slots == [1, 2]  # replies to each SMS belong to the line it left from


def test_lines_claim_their_sms_at_once_and_the_outbox_posts_their_statuses_at_once(
    queues, api, make_config
):
    """Each claim and status post is a round trip to the API: a bank whose lines waited for
    each other's would fall behind a remote API. Each barrier lets a post through only once
    the other line's is in flight too."""
    api.meet = {"sending": threading.Barrier(2, timeout=5), "sent": threading.Barrier(2, timeout=5)}
    drivers = [FakeDriver(), FakeDriver()]
    ids = [queues.put(), queues.put()]
    with running(make_bank(make_config, drivers)) as agent:
        agent.run_until(lambda: all(api.statuses.get(i) == "sent" for i in ids), timeout=10)
    assert not any(barrier.broken for barrier in api.meet.values())
    assert [api.posted_statuses(i) for i in ids] == [["sending", "sent"]] * 2


def test_a_bank_receives_at_once_only_the_batches_its_idle_lines_need(queues, api, make_config):
    """With a backlog, 12 idle lines need two of SQS's batches of 10 at once; once the hand
    holds enough for every line, one receive at a time (more would compete with the lines'
    claims for the host)."""
    release = threading.Event()
    drivers = [FakeDriver() for _ in range(12)]
    for driver in drivers:
        driver.during_send = lambda sms: release.wait(10)
    ids = [queues.put() for _ in range(40)]
    agent = make_bank(make_config, drivers)
    queue = agent.queues["bulk"]
    receive, lock = queue.receive, threading.Lock()
    in_flight, most = [0], [0]

    def counted(*args):
        with lock:
            in_flight[0] += 1
            most[0] = max(most[0], in_flight[0])
        try:
            time.sleep(0.1)  # time for any receive made at once with this one to start
            return receive(*args)
        finally:
            with lock:
                in_flight[0] -= 1

    queue.receive = counted  # type: ignore[method-assign]
    with running(agent):
        agent.run_until(lambda: agent.hand.count() == 40, timeout=10)
        release.set()
        agent.run_until(lambda: all(api.statuses.get(i) == "sent" for i in ids), timeout=20)
    assert most[0] == 2


def test_a_line_whose_modem_fails_leaves_the_others_sending(queues, api, make_config):
    broken, working = FakeDriver(), FakeDriver()
    broken.refusals.append(DriverError("no modem answers AT commands on /dev/ttyUSB0"))
    broken.recover = lambda: (_ for _ in ()).throw(DriverError("still unplugged"))
    ids = [queues.put() for _ in range(4)]
    agent = make_bank(make_config, [broken, working], heartbeat_interval=1)
    with running(agent):
        agent.run_until(lambda: all(api.statuses.get(i) == "sent" for i in ids), timeout=15)
        agent.run_until(
            lambda: last_lines(api)[1].get("stateReason") == "still unplugged", timeout=10
        )
    assert len(working.sent) == 4 and broken.sent == []
    assert last_lines(api)[1]["state"] == "down"
    assert last_lines(api)[2]["state"] == "active"


def test_a_barred_line_pauses_and_its_sms_goes_by_another_line(queues, api, make_config):
    barred, other = FakeDriver(), FakeDriver()
    barred.refusals.append(
        SendError("operator determined barring", "8", retryable=True, pause_line=True)
    )
    other.during_send = lambda sms: wait_until(lambda: barred.attempts)  # line 1 goes first
    message_id = queues.put()
    agent = make_bank(make_config, [barred, other], heartbeat_interval=1)
    with running(agent):
        agent.run_until(lambda: api.statuses.get(message_id) == "sent", timeout=10)
        agent.run_until(lambda: last_lines(api)[1].get("state") == "paused", timeout=10)
        later = queues.put()
        agent.run_until(lambda: api.statuses.get(later) == "sent", timeout=10)
    assert [sms.message_id for sms in other.sent] == [message_id, later]
    assert barred.sent == [] and barred.attempts == [message_id]  # paused: nothing more
    line = last_lines(api)[1]
    assert line["stateReason"] == "operator determined barring (code 8)"
    assert "resumesAt" in line


def test_a_line_at_its_daily_cap_takes_no_more_and_says_when_it_resumes(queues, api, make_config):
    driver = FakeDriver()
    ids = [queues.put(to=f"+2223808933{n}") for n in range(3)]
    agent = make_bank(make_config, [driver], heartbeat_interval=1, line_settings={"max_per_day": 2})
    with running(agent):
        agent.run_until(lambda: len(driver.sent) == 2, timeout=10)
        agent.run_until(lambda: last_lines(api)[1].get("state") == "capped", timeout=10)
        for _ in range(20):
            agent.step()
    assert len(driver.sent) == 2
    held = [i for i in ids if api.statuses.get(i) != "sent"]
    assert len(held) == 1 and api.posted_statuses(held[0]) == []  # held, never claimed
    assert last_lines(api)[1]["stateReason"] == "2 SMS parts in a day reached"


def test_a_line_never_takes_a_text_longer_than_its_max_segments(queues, api, make_config):
    short_only, any_length = FakeDriver(), FakeDriver()
    config = make_config(
        driver="",
        bank=(
            LineSpec(1, "+22238000001", "fake", {}, settings={"max_segments": 1}),
            LineSpec(2, "+22238000002", "fake", {}),
        ),
    )
    long_id = queues.put(text="x" * 300)
    with running(Agent.build(config, [short_only, any_length])) as agent:
        agent.run_until(lambda: api.statuses.get(long_id) == "sent", timeout=10)
    assert short_only.attempts == [] and [s.message_id for s in any_length.sent] == [long_id]
