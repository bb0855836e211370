"""The ``phone`` fixture: one harness per driver, so the contract suite runs on each."""

import pytest

from tests.integration.drivers.harnesses import SimulatorHarness, TermuxHarness
from tests.integration.drivers.modem_harness import ModemHarness
from tests.integration.drivers.smsgate_harness import SmsGateHarness

PHONES = ["simulator", "termux", "modem-sim800", "modem-quectel", "smsgate"]


@pytest.fixture(params=PHONES)
def phone(request, tmp_path, monkeypatch):
    harness = _harness(request.param, tmp_path, monkeypatch)
    yield harness
    harness.close()


def _harness(name: str, tmp_path, monkeypatch):
    if name == "simulator":
        return SimulatorHarness(tmp_path)
    if name == "termux":
        return TermuxHarness(tmp_path, monkeypatch)
    if name == "smsgate":
        return SmsGateHarness()
    return ModemHarness(name.removeprefix("modem-"))
