"""The ``phone`` fixture: one harness per driver, so the contract suite runs on each."""

import pytest

from tests.integration.drivers.harnesses import SimulatorHarness, TermuxHarness
from tests.integration.drivers.modem_harness import ModemHarness
from tests.integration.drivers.smsgate_harness import SmsGateHarness

MODEM_PROFILES = [
    "sim800",
    "quectel",
    "huawei-k3715",
    "huawei-e1752",
    "wavecom-900e",
    "zte-k3565z",
    "nokia-n79",
    "qualcomm-m6280",
]
PHONES = ["simulator", "termux", *(f"modem-{name}" for name in MODEM_PROFILES), "smsgate"]


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
