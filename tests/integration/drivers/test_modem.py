"""The modem driver against a fake modem on a pseudo-terminal, in both modem profiles."""

import os
import threading
import time
import tty
from datetime import UTC, datetime, timedelta, timezone

import pytest

from device_bridge.drivers import load
from device_bridge.drivers.base import (
    DeliveryReport,
    DriverError,
    InboundSms,
    OutboundSms,
    SendError,
)
from device_bridge.drivers.modem import ModemDriver
from device_bridge.serial_link import SerialLink

from .fake_modem import FakeModem
from .modem_harness import ModemHarness

TO = "+22238089336"
ARABIC_OTP = "رمز التحقق الخاص بك هو 123456"
LONG_TEXT = ("Bonjour, ceci est un long message de Chinqit pour tester les SMS concaténés. " * 6)[
    :400
]
FAST = {"command_timeout": 2.0, "send_timeout": 5.0}


@pytest.fixture(params=["sim800", "quectel"])
def harness(request):
    harness = ModemHarness(request.param)
    yield harness
    harness.close()


@pytest.fixture
def fake_modem():
    """A fake modem the test sets up before a driver opens it."""
    modems = []

    def build(profile="sim800", **options):
        modems.append(FakeModem(profile, **options))
        return modems[-1]

    yield build
    for modem in modems:
        modem.close()


@pytest.fixture
def opened():
    """Open a driver on a fake modem, closed after the test."""
    drivers = []

    def open_driver(modem, **options):
        driver = load("modem", port=modem.port, **{**FAST, **options})
        driver.open()
        drivers.append(driver)
        return driver

    yield open_driver
    for driver in drivers:
        driver.close()


def wait_until(condition, timeout=5.0):
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"still not true after {timeout} s")
        time.sleep(0.01)


def poll_until(driver, count, timeout=5.0):
    """Poll like the bridge does until ``count`` events came."""
    events = []
    deadline = time.monotonic() + timeout
    while len(events) < count:
        events += driver.poll()
        if time.monotonic() > deadline:
            pytest.fail(f"{len(events)} of {count} events after {timeout} s: {events}")
        time.sleep(0.01)
    return events


def sms(text, to=TO):
    return OutboundSms(message_id="m-1", to=to, text=text)


# ---------------------------------------------------------------------------- set-up


def test_open_runs_the_init_sequence(harness):
    commands = harness.modem.commands
    expected = ["AT+CPIN?", "ATE0", "AT+CMEE=1", "AT+CMGF=0", "AT+CNMI=2,1,0,1,0", "AT+CMGL=4"]
    assert [command for command in commands if command in expected] == expected
    assert isinstance(harness.driver, ModemDriver)


def test_open_reads_where_new_messages_are_stored(fake_modem, opened):
    modem = fake_modem("quectel")  # +CMTI names "ME" while AT+CMGR reads "SM" at power-on
    opened(modem)
    assert modem.commands.index('AT+CPMS="ME"') < modem.commands.index("AT+CMGL=4")


def test_open_enters_the_sim_pin(fake_modem, opened):
    modem = fake_modem(pin="1234")
    opened(modem, pin="1234")
    assert 'AT+CPIN="1234"' in modem.commands
    assert modem.commands.index('AT+CPIN="1234"') < modem.commands.index("AT+CMGF=0")


@pytest.mark.parametrize(
    "profile", ["zte-k3565z", "qualcomm-m6280", "wavecom-900e", "huawei-k3715"]
)
def test_pin_locked_profiles_start_send_and_receive(profile):
    harness = ModemHarness(profile, sim_pin="1234")
    try:
        commands = harness.modem.commands
        assert commands.index('AT+CPIN="1234"') < commands.index("ATE0")
        result = harness.driver.send(sms("hello"))
        assert result.segments == 1
        assert harness.network_sent() == [(TO, "hello")]
        harness.receive("+22236000001", "bonjour")
        events = poll_until(harness.driver, 2)  # the delivery report and the SMS
        assert [event.text for event in events if isinstance(event, InboundSms)] == ["bonjour"]
    finally:
        harness.close()


def test_open_fails_without_the_pin_it_needs(fake_modem):
    driver = load("modem", port=fake_modem(pin="1234").port, **FAST)
    with pytest.raises(DriverError, match="PIN"):
        driver.open()


def test_open_fails_with_a_wrong_pin(fake_modem):
    driver = load("modem", port=fake_modem(pin="1234").port, pin="0000", **FAST)
    with pytest.raises(DriverError, match="refused the PIN"):
        driver.open()


def test_open_leaves_a_prompt_left_by_an_interrupted_send(fake_modem, opened):
    modem = fake_modem(stuck_at_prompt=True)
    driver = opened(modem)
    driver.send(sms("after the restart"))
    assert modem.network_sent() == [(TO, "after the restart")]


def test_open_fails_on_a_missing_port():
    with pytest.raises(DriverError):
        load("modem", port="/dev/does-not-exist-ttyUSB9", **FAST).open()


def test_a_second_driver_cannot_take_the_same_modem(fake_modem, opened):
    modem = fake_modem()
    opened(modem)
    with pytest.raises(DriverError):
        load("modem", port=modem.port, **FAST).open()


def test_without_delivery_reports(fake_modem, opened):
    modem = fake_modem()
    driver = opened(modem, delivery_reports=False)
    assert "AT+CNMI=2,1,0,0,0" in modem.commands
    result = driver.send(sms("no report please"))
    assert result.references == ()
    assert not modem.segments[0].status_report_requested


# ---------------------------------------------------------------------------- sending


def test_send_gsm7(harness):
    text = "Votre code Chinqit est 123456. Valable 10 min {€}"
    result = harness.driver.send(sms(text))
    assert harness.network_sent() == [(TO, text)]
    assert result.segments == 1
    assert result.references == (str(harness.modem.segments[0].reference),)
    assert harness.modem.segments[0].concat is None


def test_send_arabic_as_ucs2(harness):
    harness.driver.send(sms(ARABIC_OTP))
    assert harness.network_sent() == [(TO, ARABIC_OTP)]


def test_send_long_text_in_three_concatenated_segments(harness):
    result = harness.driver.send(sms(LONG_TEXT))
    segments = harness.modem.segments
    assert result.segments == len(segments) == 3
    assert len({segment.concat[0] for segment in segments}) == 1
    assert [segment.concat[1:] for segment in segments] == [(3, 1), (3, 2), (3, 3)]
    assert result.references == tuple(str(segment.reference) for segment in segments)
    assert harness.network_sent() == [(TO, LONG_TEXT)]


def test_consecutive_long_texts_get_different_concatenation_references(harness):
    harness.driver.send(sms(LONG_TEXT))
    harness.driver.send(sms(LONG_TEXT))
    assert harness.modem.segments[0].concat[0] != harness.modem.segments[3].concat[0]
    assert harness.network_sent() == [(TO, LONG_TEXT), (TO, LONG_TEXT)]


def test_status_report_becomes_a_delivery_report_for_the_send(harness):
    result = harness.driver.send(sms("hello"))
    [report] = poll_until(harness.driver, 1)
    assert report == DeliveryReport(
        result.references[0], True, "status 0x00: received by the recipient"
    )
    assert all(segment.status_report_requested for segment in harness.modem.segments)


def test_every_segment_gets_its_delivery_report(harness):
    result = harness.driver.send(sms(LONG_TEXT))
    reports = poll_until(harness.driver, 3)
    assert sorted(report.reference for report in reports) == sorted(result.references)
    assert all(report.delivered for report in reports)


@pytest.mark.parametrize(
    "code, retryable", [("42", True), ("332", True), ("1", False), ("304", False)]
)
def test_network_refusal_raises_send_error_with_the_code(harness, code, retryable):
    harness.refuse_next_send(code)
    with pytest.raises(SendError) as refused:
        harness.driver.send(sms("refused"))
    assert refused.value.code == code
    assert refused.value.retryable is retryable
    assert harness.network_sent() == []
    harness.driver.send(sms("accepted"))
    assert harness.network_sent() == [(TO, "accepted")]


def test_invalid_number_is_not_retryable(harness):
    with pytest.raises(SendError) as refused:
        harness.driver.send(sms("hi", to="+222 38 08 93 36"))
    assert not refused.value.retryable
    assert harness.modem.segments == []


def test_a_send_with_no_prompt_is_retryable_and_nothing_left(harness):
    harness.modem.give_no_prompt_next_send()
    with pytest.raises(SendError, match="no prompt") as refused:
        harness.driver.send(sms("premier essai"))
    assert refused.value.retryable
    assert harness.network_sent() == []
    harness.driver.send(sms("premier essai"))
    assert harness.network_sent() == [(TO, "premier essai")]


def test_a_send_the_modem_never_confirms_fails_as_outcome_unknown_and_is_not_resent(
    fake_modem, opened
):
    modem = fake_modem()
    driver = opened(modem, send_timeout=0.5)
    modem.keep_silent_next_send()
    with pytest.raises(SendError, match="outcome unknown") as unknown:
        driver.send(sms("Votre code est 4821"))
    assert not unknown.value.retryable
    assert modem.network_sent() == [(TO, "Votre code est 4821")]
    driver.send(sms("suivant"))  # the modem is usable again
    assert modem.network_sent()[-1] == (TO, "suivant")


def test_a_late_confirmation_is_read_from_the_modem_after_the_timeout(fake_modem, opened):
    modem = fake_modem()
    driver = opened(modem, send_timeout=0.5)
    modem.answer_next_send_late(0.75)  # after the timeout (0.5 s), while the modem is asked
    result = driver.send(sms("Votre code est 4821"))
    assert result.references == (str(modem.segments[-1].reference),)
    assert modem.network_sent() == [(TO, "Votre code est 4821")]
    [report] = poll_until(driver, 1)
    assert report == DeliveryReport(result.references[0], True, report.detail)


def test_a_long_sms_refused_midway_is_resumed_not_sent_again(harness):
    harness.modem.refuse_next_send("42", after=1)  # network congestion on segment 2
    message = OutboundSms(message_id="m-long", to=TO, text=LONG_TEXT)
    with pytest.raises(SendError) as refused:
        harness.driver.send(message)
    assert refused.value.retryable
    result = harness.driver.send(message)  # the bridge's retry
    assert result.segments == 3 and len(result.references) == 3
    assert [segment.concat[2] for segment in harness.modem.segments] == [1, 2, 3]
    assert len({segment.concat[0] for segment in harness.modem.segments}) == 1
    assert harness.network_sent() == [(TO, LONG_TEXT)]


# ---------------------------------------------------------------------------- receiving


def test_inbound_sms_is_read_and_deleted_once_acknowledged(harness):
    sent_at = datetime(2025, 1, 20, 10, 14, 50, tzinfo=timezone(timedelta(hours=1)))
    harness.modem.receive(TO, "Bonjour {€}", timestamp=sent_at)
    [inbound] = poll_until(harness.driver, 1)
    assert isinstance(inbound, InboundSms)
    assert (inbound.sender, inbound.text, inbound.received_at) == (TO, "Bonjour {€}", sent_at)
    assert inbound.received_at.utcoffset() == timedelta(hours=1)
    assert harness.modem.stored_count() == 1  # until the bridge's journal has it
    harness.driver.acknowledge(inbound)
    assert harness.modem.stored_count() == 0


def test_an_sms_not_acknowledged_is_read_again_after_a_restart_with_the_same_ref(
    fake_modem, opened
):
    modem = fake_modem()
    driver = opened(modem)
    modem.receive(TO, LONG_TEXT)
    [first] = poll_until(driver, 1)
    driver.close()  # the bridge died before its journal had the SMS

    restarted = opened(modem)
    [again] = restarted.poll()
    assert (again.text, again.device_ref) == (LONG_TEXT, first.device_ref)
    restarted.acknowledge(again)
    assert modem.stored_count() == 0


def test_inbound_arabic(harness):
    harness.receive(TO, ARABIC_OTP)
    [inbound] = poll_until(harness.driver, 1)
    assert inbound.text == ARABIC_OTP


def test_inbound_from_an_alphanumeric_sender(harness):
    harness.receive("Chinqit", "Bienvenue")
    [inbound] = poll_until(harness.driver, 1)
    assert inbound.sender == "Chinqit"


@pytest.mark.parametrize("text", [LONG_TEXT, ARABIC_OTP * 4])
def test_inbound_long_sms_is_reassembled(harness, text):
    harness.receive(TO, text)
    [inbound] = poll_until(harness.driver, 1)
    assert inbound.text == text
    harness.driver.acknowledge(inbound)
    assert harness.modem.stored_count() == 0


def test_inbound_parts_wait_on_the_sim_until_the_message_is_complete(fake_modem, opened):
    modem = fake_modem()
    driver = opened(modem)
    modem.receive(TO, LONG_TEXT, only_parts=[1, 3])  # part 2 is late
    wait_until(lambda: driver.poll() == [] and _count(modem.commands, "AT+CMGR=") == 2)
    assert _count(modem.commands, "AT+CMGD=") == 0
    driver.close()

    restarted = opened(modem, incomplete_timeout=0)  # the parts are read again at open
    [inbound] = poll_until(restarted, 1)  # and passed on as they are once the wait is over
    assert inbound.text == LONG_TEXT[:153] + LONG_TEXT[306:]
    restarted.acknowledge(inbound)
    assert modem.stored_count() == 0


def _count(commands, prefix):
    return sum(command.startswith(prefix) for command in commands)


def test_identical_sms_in_the_same_second_are_two_sms(harness):
    sent_at = datetime(2025, 1, 20, 10, 14, 50, tzinfo=UTC)
    harness.modem.receive(TO, "code 1", timestamp=sent_at)
    harness.modem.receive(TO, "code 1", timestamp=sent_at)
    harness.modem.receive(TO, "code 2", timestamp=sent_at)
    events = poll_until(harness.driver, 3)
    assert [event.text for event in events] == ["code 1", "code 1", "code 2"]
    assert len({event.device_ref for event in events}) == 3


@pytest.mark.parametrize("profile", ["sim800", "quectel"])
def test_messages_stored_before_open_are_read_at_open(fake_modem, opened, profile):
    modem = fake_modem(profile)
    modem.receive(TO, "while you were away")
    modem.receive("+22227635642", LONG_TEXT)
    driver = opened(modem)
    assert "AT+CMGL=4" in modem.commands
    events = driver.poll()
    assert sorted((event.sender, event.text) for event in events) == [
        ("+22227635642", LONG_TEXT),
        (TO, "while you were away"),
    ]
    for event in events:
        driver.acknowledge(event)
    assert modem.stored_count() == 0


# ---------------------------------------------------------------------------- device info


def test_info_sim800(fake_modem, opened):
    info = opened(fake_modem("sim800", rssi=31)).info()
    assert (info.signal_percent, info.battery_percent) == (100, 87)


def test_info_quectel_without_battery(fake_modem, opened):
    driver = opened(fake_modem("quectel", rssi=20))
    info = driver.info()
    assert (info.signal_percent, info.battery_percent) == (65, None)
    assert driver.info().battery_percent is None


def test_info_unknown_signal(fake_modem, opened):
    assert opened(fake_modem(rssi=99)).info().signal_percent is None


# ---------------------------------------------------------------------------- serial framing


def test_link_frames_output_that_arrives_byte_by_byte():
    master, slave = os.openpty()
    tty.setraw(slave)
    unsolicited = []
    link = SerialLink(os.ttyname(slave), 115200, unsolicited.append)
    link.open()
    received = bytearray()

    def trickle(data: bytes, until: bytes) -> None:
        while until not in received:
            received.extend(os.read(master, 64))
        for byte in data:
            os.write(master, bytes([byte]))

    def modem():
        trickle(b"\r\n+CDS: 6\r\n0006070B9122\r\n\r\n> ", until=b"AT+CMGS=5\r")
        trickle(b"\r\n^RSSI: 3\r\n\r\n+CMGS: 7\r\n\r\nOK\r\n", until=b"\x1a")

    thread = threading.Thread(target=modem)
    thread.start()
    try:
        assert link.command_with_prompt("AT+CMGS=5", "ABCD", timeout=5) == ["+CMGS: 7", "OK"]
        wait_until(lambda: len(unsolicited) == 2)
        assert unsolicited == [["+CDS: 6", "0006070B9122"], ["^RSSI: 3"]]
        assert received.endswith(b"ABCD\x1a")
    finally:
        thread.join(timeout=5)
        link.close()
        os.close(master)
        os.close(slave)


def test_an_idle_link_does_not_wake_its_reader_and_closes_at_once():
    master, slave = os.openpty()
    tty.setraw(slave)
    link = SerialLink(os.ttyname(slave), 115200, lambda lines: None)
    link.open()
    reads = []
    port = link._port
    read = port.read
    port.read = lambda size: reads.append(size) or read(size)
    try:
        time.sleep(0.5)
        assert len(reads) <= 2, "the reader woke while nothing came from the modem"
    finally:
        started = time.monotonic()
        link.close()
        closed_in = time.monotonic() - started
        os.close(master)
        os.close(slave)
    assert closed_in < 0.9  # the reader's wait is cancelled, not waited out (1 s)
