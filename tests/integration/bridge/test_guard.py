"""The SIM guard's caps, warm-up and pauses, on a real journal with a clock the test moves."""

from __future__ import annotations

import dataclasses

import pytest

from device_bridge.config import BridgeConfig
from device_bridge.guard import DAY, FIRST_PAUSE, LONGEST_PAUSE, SimGuard
from device_bridge.journal import Journal


class Wall:
    def __init__(self):
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def wall():
    return Wall()


@pytest.fixture
def make_guard(tmp_path, wall):
    journal = Journal(str(tmp_path / "journal.sqlite3"), wall_clock=wall)
    base = BridgeConfig(api_url="https://x", device_key="k", driver="fake")

    def make(**settings) -> SimGuard:
        return SimGuard(1, dataclasses.replace(base, **settings), journal, wall_clock=wall)

    yield make
    journal.close()


def test_per_minute_cap_counts_parts_and_lifts_when_the_oldest_leave(make_guard, wall):
    guard = make_guard(max_per_minute=3)
    guard.sent("+22238000001", 2)
    wall.now += 10
    assert guard.refuses("+22238000002", 1) is None
    guard.sent("+22238000002", 1)
    hold = guard.refuses("+22238000003", 1)
    assert hold.state == "capped" and hold.reason == "3 SMS parts in a minute reached"
    assert hold.until == pytest.approx(wall.now - 10 + 60)
    wall.now += 51
    assert guard.refuses("+22238000003", 1) is None


def test_unique_recipients_cap_still_lets_known_recipients_through(make_guard, wall):
    guard = make_guard(max_recipients_per_day=2)
    guard.sent("+22238000001", 1)
    guard.sent("+22238000002", 1)
    assert guard.refuses("+22238000001", 1) is None
    hold = guard.refuses("+22238000003", 1)
    assert hold.reason == "2 different recipients in a day reached"
    assert guard.hold() is None  # not line-wide: replies to known numbers still go
    wall.now += DAY + 1
    assert guard.refuses("+22238000003", 1) is None


def test_a_new_sim_warms_up_to_its_daily_cap(make_guard, wall):
    guard = make_guard(max_per_day=100, warmup_days=10, warmup_per_day=10)
    for _ in range(10):
        guard.sent("+22238000001", 1)
    assert guard.hold().reason == "10 SMS parts in a day reached"
    wall.now += 5 * DAY  # half way: 10 + 90 / 2
    for _ in range(55):
        assert guard.refuses("+22238000001", 1) is None
        guard.sent("+22238000001", 1)
    assert guard.hold().reason == "55 SMS parts in a day reached"


def test_pauses_double_up_to_six_hours_and_a_send_resets_them(make_guard, wall):
    guard = make_guard()
    pauses = []
    for _ in range(9):
        hold = guard.barred("+CMS ERROR: 8")
        pauses.append(hold.until - wall.now)
        assert guard.hold().state == "paused"
        wall.now = hold.until
        assert guard.hold() is None
    assert pauses[:3] == [FIRST_PAUSE, 2 * FIRST_PAUSE, 4 * FIRST_PAUSE]
    assert pauses[-1] == LONGEST_PAUSE
    guard.sent("+22238000001", 1)
    assert guard.barred("+CMS ERROR: 8").until - wall.now == FIRST_PAUSE


def test_counts_and_pauses_survive_a_restart(tmp_path, wall):
    path = str(tmp_path / "journal.sqlite3")
    settings = BridgeConfig(api_url="https://x", device_key="k", driver="fake", max_per_hour=1)
    journal = Journal(path, wall_clock=wall)
    SimGuard(1, settings, journal, wall).sent("+22238000001", 1)
    SimGuard(2, settings, journal, wall).barred("limit")
    journal.close()
    journal = Journal(path, wall_clock=wall)
    assert SimGuard(1, settings, journal, wall).hold().state == "capped"
    assert SimGuard(2, settings, journal, wall).hold().reason == "limit"
    journal.close()
