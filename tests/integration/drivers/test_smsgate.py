"""The SMSGate driver's own promises, against the local fake of the app's Local Server."""

import socket

import pytest

from device_bridge.drivers import load
from device_bridge.drivers.base import DeliveryReport, DriverError, OutboundSms, SendError
from tests.integration.drivers.harnesses import poll_until
from tests.integration.drivers.smsgate_fake import SIGNING_KEY
from tests.integration.drivers.smsgate_harness import SmsGateHarness, free_port

CUSTOMER = "+22238089336"


@pytest.fixture
def phone():
    harness = SmsGateHarness()
    yield harness
    harness.close()


def send(phone, text="hi", message_id="msg-1", sim_slot=None):
    return phone.driver.send(OutboundSms(message_id, CUSTOMER, text, sim_slot))


def reports(events):
    return [event for event in events if isinstance(event, DeliveryReport)]


def test_wrong_password_is_a_driver_error_at_open(phone):
    with pytest.raises(DriverError, match="username and password"):
        phone.open_driver(password="wrong")


def test_missing_signing_key_is_a_driver_error_at_open(phone):
    with pytest.raises(DriverError, match="Signing Key"):
        phone.open_driver(signing_key="")


def test_unreachable_phone_at_open_is_a_driver_error_with_a_hint(phone):
    with pytest.raises(DriverError, match="battery optimisation"):
        phone.open_driver(url=f"http://127.0.0.1:{free_port()}")


def test_webhooks_are_registered_at_open_and_removed_at_close(phone):
    events = sorted(webhook["event"] for webhook in phone.app.webhooks.values())
    assert events == ["sms:delivered", "sms:failed", "sms:received"]

    phone.driver.close()

    assert phone.app.webhooks == {}


def test_reopening_replaces_the_webhooks_instead_of_adding_copies(phone):
    second = phone.open_driver()

    assert len(phone.app.webhooks) == 3
    second.close()


def test_plain_http_webhook_url_off_loopback_is_refused_by_the_app(phone):
    with pytest.raises(DriverError, match="https://"):
        phone.open_driver(webhook_url="http://192.168.1.50:8787/smsgate")


def test_received_sms_carries_sender_sim_and_a_ref_stable_across_reposts(phone):
    phone.app.receive(CUSTOMER, "STOP", sim_number=2)
    [sms] = poll_until(phone.driver, lambda events: len(events) == 1)
    phone.driver.acknowledge(sms)

    assert (sms.sender, sms.text, sms.sim_slot) == (CUSTOMER, "STOP", 2)
    assert sms.device_ref.startswith("smsgate:")
    assert phone.app.wait_for_posts() == [200]


def test_received_sms_not_acknowledged_is_posted_again_under_the_same_ref(phone):
    phone.app.receive(CUSTOMER, "again")
    [first] = poll_until(phone.driver, lambda events: len(events) == 1)
    [second] = poll_until(phone.driver, lambda events: len(events) == 1, timeout=8)
    phone.driver.acknowledge(second)

    assert first.device_ref == second.device_ref
    assert phone.app.wait_for_posts() == [503, 200]


def test_wrongly_signed_post_is_refused_and_not_delivered(phone):
    phone.app.retries = 0
    phone.app.emit(
        "sms:received",
        {
            "messageId": "1",
            "message": "x",
            "phoneNumber": CUSTOMER,
            "receivedAt": "2026-12-06T10:00:00.000+00:00",
        },
        signing_key="not-the-key",
    )

    assert phone.app.wait_for_posts() == [401]
    assert phone.driver.poll() == []


def test_other_paths_and_methods_are_refused(phone):
    url = phone.app.webhooks["chinqit-sms-received"]["url"]

    assert phone.app.post(url.replace("/smsgate", "/other"), "{}") == 404
    assert phone.app.post(url, "x" * (70 * 1024)) == 413


def test_a_burst_of_webhook_connections_is_taken_in_while_the_receiver_is_busy(phone):
    """A busy bridge accepts late (its receiver waits for the GIL): the kernel holds the
    phone's connections meanwhile, rather than dropping them to a SYN retry 1 s later."""
    server = phone.driver._server
    server.shutdown()  # no more accepts; the socket still listens
    clients = [socket.create_connection(server.server_address[:2], timeout=0.5) for _ in range(32)]
    for client in clients:
        client.close()


def test_delivered_and_failed_reports_name_the_sends_reference(phone):
    first = send(phone, message_id="msg-1")
    second = send(phone, message_id="msg-2")

    phone.app.deliver(first.references[0])
    phone.app.deliver(second.references[0], delivered=False)
    events = reports(poll_until(phone.driver, lambda events: len(reports(events)) == 2))

    by_reference = {report.reference: report for report in events}
    assert by_reference["msg-1"].delivered is True
    assert by_reference["msg-2"].delivered is False
    assert "Delivery result" in by_reference["msg-2"].detail


def test_sim_slot_is_the_apps_sim_number(phone):
    send(phone, sim_slot=2)

    assert phone.app.network[0]["simNumber"] == 2


def test_sim_slots_are_the_phones_sim_cards():
    harness = SmsGateHarness(sims=2)
    single = harness.open_driver(sims=1)

    assert harness.driver.sim_slots() == (1, 2)
    assert single.sim_slots() == (1,)
    single.close()
    harness.close()


def test_sim_slot_beyond_the_phones_sims_is_refused_for_good(phone):
    with pytest.raises(SendError) as refusal:
        send(phone, sim_slot=3)

    assert refusal.value.retryable is False


def test_repeated_message_id_is_not_sent_twice(phone):
    send(phone, message_id="msg-1")
    send(phone, message_id="msg-1")

    assert phone.network_sent() == [(CUSTOMER, "hi")]


def test_send_still_pending_times_out_retryable_and_the_retry_follows_it(phone):
    driver = phone.open_driver(send_timeout=0.3)
    phone.app.hold_sends()
    with pytest.raises(SendError) as timeout:
        driver.send(OutboundSms("msg-1", CUSTOMER, "hi"))
    assert timeout.value.retryable
    phone.app.hold_sends(False)

    result = driver.send(OutboundSms("msg-1", CUSTOMER, "hi"))

    assert result.references == ("msg-1",)
    assert phone.network_sent() == [(CUSTOMER, "hi")]
    driver.close()


def test_retry_after_a_failure_is_a_new_attempt(phone):
    phone.app.refuse_next_send("RESULT_ERROR_NO_SERVICE")
    with pytest.raises(SendError) as refusal:
        send(phone, message_id="msg-1")

    result = send(phone, message_id="msg-1")

    assert (refusal.value.code, refusal.value.retryable) == ("RESULT_ERROR_NO_SERVICE", True)
    assert result.references == ("msg-1.2",)
    assert phone.network_sent() == [(CUSTOMER, "hi")]


@pytest.mark.parametrize(
    ("result", "retryable"),
    [
        ("RESULT_ERROR_LIMIT_EXCEEDED", True),
        ("RESULT_ERROR_RADIO_OFF", True),
        ("RESULT_ERROR_GENERIC_FAILURE", True),
        ("RESULT_ERROR_SHORT_CODE_NEVER_ALLOWED", False),
    ],
)
def test_android_results_name_the_code_and_whether_to_retry(phone, result, retryable):
    phone.app.refuse_next_send(result)

    with pytest.raises(SendError) as refusal:
        send(phone)

    assert (refusal.value.code, refusal.value.retryable) == (result, retryable)


def test_unreachable_phone_is_a_retryable_send_error(phone):
    phone.app.close()

    with pytest.raises(SendError) as refusal:
        send(phone)

    assert refusal.value.retryable
    assert "unreachable" in str(refusal.value)


def test_info_reads_the_battery_from_health(phone):
    info = phone.driver.info()

    assert info.battery_percent == 64
    assert info.extra == {"health": "pass", "app_version": "1.68.0"}


def test_loaded_by_name_with_options_given_as_text():
    driver = load("smsgate", url="http://127.0.0.1:1", signing_key=SIGNING_KEY, sims="2")

    assert driver.sim_slots() == (1, 2)
