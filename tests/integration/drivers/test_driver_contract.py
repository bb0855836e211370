"""What every driver promises the bridge, checked against each through the ``phone`` fixture."""

import time

import pytest

from device_bridge.drivers.base import InboundSms, OutboundSms, SendError
from tests.integration.drivers.harnesses import poll_until

CUSTOMER = "+22238089336"
OTHER_CUSTOMER = "+22245123456"
ARABIC_OTP = "رمز التحقق الخاص بك هو 123456"
LONG_TEXT = " ".join(f"Part {number:03d} of a long message." for number in range(16))


def send(phone, text, to=CUSTOMER, message_id="msg-1"):
    return phone.driver.send(OutboundSms(message_id=message_id, to=to, text=text))


def inbound(events):
    return [event for event in events if isinstance(event, InboundSms)]


def poll_inbound(phone):
    return inbound(poll_until(phone.driver, lambda events: inbound(events) != []))


def test_gsm7_sms_reaches_the_network_with_exact_recipient_and_text(phone):
    send(phone, "Your code is 123456. Valid 10 min @ Chinqit!")

    assert phone.network_sent() == [(CUSTOMER, "Your code is 123456. Valid 10 min @ Chinqit!")]


def test_arabic_text_arrives_intact(phone):
    send(phone, ARABIC_OTP)

    assert phone.network_sent() == [(CUSTOMER, ARABIC_OTP)]


def test_long_text_arrives_whole(phone):
    assert len(LONG_TEXT) > 400

    result = send(phone, LONG_TEXT)

    assert phone.network_sent() == [(CUSTOMER, LONG_TEXT)]
    assert result.segments >= 3


def test_sends_reach_the_network_in_order(phone):
    send(phone, "first", message_id="msg-1")
    send(phone, "second", to=OTHER_CUSTOMER, message_id="msg-2")

    assert phone.network_sent() == [(CUSTOMER, "first"), (OTHER_CUSTOMER, "second")]


def test_refused_send_raises_send_error_naming_the_code(phone):
    phone.refuse_next_send("331")

    with pytest.raises(SendError) as refusal:
        send(phone, "Hello")

    # Termux reports no structured code, only the phone's message, so check the text.
    assert "331" in str(refusal.value)
    assert phone.network_sent() == []


def test_send_after_a_refusal_goes_through(phone):
    phone.refuse_next_send("331")
    with pytest.raises(SendError):
        send(phone, "refused", message_id="msg-1")

    send(phone, "accepted", message_id="msg-2")

    assert phone.network_sent() == [(CUSTOMER, "accepted")]


def test_received_sms_comes_out_of_poll_once(phone):
    phone.receive(CUSTOMER, "STOP")

    [sms] = poll_inbound(phone)

    assert (sms.sender, sms.text) == (CUSTOMER, "STOP")
    assert sms.received_at.tzinfo is not None and sms.received_at.utcoffset() is not None
    assert sms.device_ref
    assert inbound(phone.driver.poll() + phone.driver.poll()) == []


def test_received_arabic_sms_is_intact(phone):
    phone.receive(CUSTOMER, ARABIC_OTP)

    [sms] = poll_inbound(phone)

    assert sms.text == ARABIC_OTP


def wait_for_the_next_second():
    """Network time stamps (SCTS) count whole seconds: a modem cannot tell apart two
    identical SMS from one sender within the same second, so the contract starts there."""
    started = int(time.time())
    deadline = time.monotonic() + 2
    while int(time.time()) == started and time.monotonic() < deadline:
        time.sleep(0.01)


def test_identical_sms_received_at_different_times_have_different_device_refs(phone):
    phone.receive(CUSTOMER, "OK")
    [first] = poll_inbound(phone)
    wait_for_the_next_second()
    phone.receive(CUSTOMER, "OK")
    [second] = poll_inbound(phone)

    assert first.text == second.text == "OK"
    assert first.device_ref != second.device_ref


def test_poll_returns_quickly_when_nothing_arrived(phone):
    started = time.monotonic()

    events = phone.driver.poll()

    assert inbound(events) == []
    assert time.monotonic() - started < 2.0
