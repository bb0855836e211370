"""Recovery of the modem driver: a fake modem that hangs, wedges, is unplugged and replugged
behind a /dev/serial/by-id style symlink, on pseudo-terminals."""

import time

import pytest

from device_bridge.drivers import load
from device_bridge.drivers.base import DriverError, InboundSms, OutboundSms

from .fake_modem import FakeModem

TO = "+22238089336"
FAST = {"command_timeout": 1.0, "send_timeout": 2.0, "reset_timeout": 2.0}


@pytest.fixture
def rig(tmp_path):
    made = []

    def build(**options):
        modem = FakeModem("sim800")
        port = modem.link(str(tmp_path / "usb-modem-if00-port0"))
        driver = load("modem", port=port, **{**FAST, **options})
        driver.open()
        made.append((modem, driver))
        return modem, driver

    yield build
    for modem, driver in made:
        driver.close()
        modem.close()


def sms(message_id: str = "m1", text: str = "code 123456") -> OutboundSms:
    return OutboundSms(message_id=message_id, to=TO, text=text)


def poll_until(driver, count: int = 1, timeout: float = 5.0) -> list:
    events, deadline = [], time.monotonic() + timeout
    while len(events) < count and time.monotonic() < deadline:
        events += driver.poll()
        time.sleep(0.05)
    return events


def test_a_hung_modem_fails_sends_and_recovers_once_it_answers(rig):
    modem, driver = rig(reset_command="")
    modem.hang()
    started = time.monotonic()
    with pytest.raises(DriverError):
        driver.send(sms())
    # no prompt within send_timeout, then the watchdog AT within command_timeout
    assert time.monotonic() - started < FAST["send_timeout"] + FAST["command_timeout"] + 0.5
    with pytest.raises(DriverError):
        driver.recover()
    modem.resume()
    driver.recover()
    driver.send(sms("m2"))
    assert modem.network_sent() == [(TO, "code 123456")]


def test_a_wedged_modem_is_reset_and_comes_back(rig):
    modem, driver = rig()
    modem.wedge()  # answers AT, its set-up fails: reopening is not enough
    driver.recover()
    assert "AT+CFUN=1,1" in modem.commands
    driver.send(sms())
    assert modem.network_sent() == [(TO, "code 123456")]


def test_unplug_and_replug_behind_the_symlink(rig):
    modem, driver = rig()
    modem.unplug()
    with pytest.raises(DriverError):
        driver.send(sms())
    with pytest.raises(DriverError):
        driver.recover()
    modem.receive("+22236111111", "arrived while unplugged")  # on the SIM
    modem.replug()
    driver.recover()
    events = poll_until(driver)
    assert [e.text for e in events if isinstance(e, InboundSms)] == ["arrived while unplugged"]
    driver.acknowledge(events[0])
    driver.send(sms())
    assert modem.network_sent() == [(TO, "code 123456")]
    modem.receive("+22236111111", "after")
    events = poll_until(driver, 2)  # the delivery report of the send, the SMS
    assert [e.text for e in events if isinstance(e, InboundSms)] == ["after"]


def test_the_idle_watchdog_finds_a_hang_on_poll(rig):
    modem, driver = rig(watchdog_interval=0.2, reset_command="")
    assert driver.poll() == []
    modem.hang()
    time.sleep(0.25)
    with pytest.raises(DriverError):
        driver.poll()
    modem.resume()
    driver.recover()
    assert driver.poll() == []
