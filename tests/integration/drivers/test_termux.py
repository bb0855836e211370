"""The Termux driver's own promises: restarts, SIM slot, setup problems, device info."""

import json
from datetime import datetime

import pytest

from device_bridge.drivers import load
from device_bridge.drivers.base import DriverError, InboundSms, OutboundSms, SendError
from tests.integration.drivers.harnesses import TermuxHarness, poll_until

CUSTOMER = "+22238089336"


@pytest.fixture
def phone(tmp_path, monkeypatch):
    harness = TermuxHarness(tmp_path, monkeypatch)
    yield harness
    harness.close()


def texts(events):
    return [event.text for event in events if isinstance(event, InboundSms)]


def poll_texts(driver, count):
    return texts(poll_until(driver, lambda events: len(texts(events)) >= count))


def test_sms_received_while_the_bridge_was_down_is_delivered_after_restart(phone):
    phone.receive(CUSTOMER, "before")
    assert poll_texts(phone.driver, 1) == ["before"]
    phone.driver.poll()  # the bridge took the batch: the state file moves on
    phone.driver.close()

    phone.receive(CUSTOMER, "while down")
    phone.driver = phone.open_driver()

    assert poll_texts(phone.driver, 1) == ["while down"]
    assert texts(phone.driver.poll()) == []


def test_batch_not_yet_taken_by_the_bridge_is_replayed_after_a_crash(phone):
    phone.receive(CUSTOMER, "in flight")
    [sms] = poll_until(phone.driver, lambda events: len(events) == 1)
    # The bridge dies before its next poll or close: no state saved for that batch.

    restarted = phone.open_driver()

    [again] = poll_until(restarted, lambda events: len(events) == 1)
    assert again.device_ref == sms.device_ref


def test_history_is_not_replayed_on_first_run(tmp_path, monkeypatch):
    phone = TermuxHarness(tmp_path, monkeypatch)
    phone.fake_api.add_to_inbox(CUSTOMER, "old history")
    phone.driver.close()
    (tmp_path / "termux-state.json").unlink()

    phone.driver = phone.open_driver()
    phone.receive(CUSTOMER, "fresh")

    assert poll_texts(phone.driver, 1) == ["fresh"]


def test_long_downtime_is_caught_up_across_pages(phone):
    phone.driver.close()
    for number in range(7):
        phone.receive(CUSTOMER, f"missed {number}")

    phone.driver = phone.open_driver(list_limit=3)

    assert poll_texts(phone.driver, 7) == [f"missed {number}" for number in range(7)]


def test_device_ref_is_the_android_sms_id(phone):
    phone.receive(CUSTOMER, "hi")

    [sms] = poll_until(phone.driver, lambda events: len(events) == 1)

    assert sms.device_ref == "termux:1"


def test_old_termux_api_without_ids_still_delivers_each_sms_once(phone):
    phone.fake_api.add_to_inbox(CUSTOMER, "no id", received="2025-01-20 24:05", with_id=False)

    [sms] = poll_until(phone.driver, lambda events: len(events) == 1)

    assert sms.device_ref.startswith("termux:") and sms.device_ref != "termux:1"
    assert sms.received_at == datetime(2025, 1, 20, 0, 5).astimezone()
    assert texts(phone.driver.poll()) == []


def test_received_time_is_the_phone_local_time(phone):
    phone.fake_api.add_to_inbox(CUSTOMER, "dated", received="2025-01-20 10:14:50")

    [sms] = poll_until(phone.driver, lambda events: len(events) == 1)

    assert sms.received_at == datetime(2025, 1, 20, 10, 14, 50).astimezone()
    assert sms.received_at.tzinfo is not None


def test_inbox_is_read_at_most_every_poll_interval(phone):
    slow = phone.open_driver(poll_interval=3600)
    assert slow.poll() == []  # the first poll reads the inbox

    phone.receive(CUSTOMER, "waits for the next interval")

    assert slow.poll() == []


def test_sim_slot_is_passed_to_termux_sms_send(tmp_path, monkeypatch):
    phone = TermuxHarness(tmp_path, monkeypatch, sim_slot=1)

    phone.driver.send(OutboundSms(message_id="msg-1", to=CUSTOMER, text="hi"))

    [sms] = phone.fake_api.sent()
    assert (sms["to"], sms["text"], sms["slot"]) == (CUSTOMER, "hi", "1")


def test_dual_sim_phone_reports_two_lines_and_sends_from_the_asked_one(tmp_path, monkeypatch):
    phone = TermuxHarness(tmp_path, monkeypatch, sims=2)

    phone.driver.send(OutboundSms(message_id="msg-1", to=CUSTOMER, text="hi", sim_slot=2))
    phone.driver.send(OutboundSms(message_id="msg-2", to=CUSTOMER, text="hi", sim_slot=1))

    assert phone.driver.sim_slots() == (1, 2)
    assert [sms["slot"] for sms in phone.fake_api.sent()] == ["1", "0"]


def test_single_sim_phone_refuses_a_second_line_for_good(phone):
    with pytest.raises(SendError) as refusal:
        phone.driver.send(OutboundSms(message_id="msg-1", to=CUSTOMER, text="hi", sim_slot=2))

    assert phone.driver.sim_slots() == (1,)
    assert refusal.value.retryable is False
    assert phone.fake_api.sent() == []


def test_default_sim_is_used_without_sim_slot(phone):
    phone.driver.send(OutboundSms(message_id="msg-1", to=CUSTOMER, text="hi"))

    assert phone.fake_api.sent()[0]["slot"] is None


@pytest.mark.parametrize("text", ["-n +22200000000", "C:\\code\\new", '"quoted" $HOME `id`'])
def test_text_goes_on_stdin_so_the_scripts_echo_cannot_mangle_it(phone, text):
    phone.driver.send(OutboundSms(message_id="msg-1", to=CUSTOMER, text=text))

    [sms] = phone.fake_api.sent()
    assert (sms["text"], sms["textFrom"]) == (text, "stdin")


def test_missing_termux_api_raises_driver_error_with_install_hint(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    driver = load("termux", state_file=tmp_path / "state.json")

    with pytest.raises(DriverError, match="pkg install termux-api"):
        driver.open()


def test_unresponsive_termux_api_raises_driver_error_with_battery_hint(phone):
    driver = phone.open_driver(command_timeout=0.5)
    phone.fake_api.configure(hang=True)

    with pytest.raises(DriverError, match="battery"):
        driver.poll()


def test_error_printed_by_termux_api_refuses_the_send(phone):
    phone.fake_api.configure(jsonError="Sending SMS is no longer permitted by Google")

    with pytest.raises(SendError, match="no longer permitted"):
        phone.driver.send(OutboundSms(message_id="msg-1", to=CUSTOMER, text="hi"))


def test_error_printed_by_termux_api_on_inbox_read_is_a_driver_error(phone):
    phone.fake_api.configure(jsonError="Reading SMS is no longer permitted by Google")

    with pytest.raises(DriverError, match="no longer permitted"):
        phone.driver.poll()


def test_send_reports_segments_and_no_delivery_references(phone):
    result = phone.driver.send(OutboundSms(message_id="msg-1", to=CUSTOMER, text="x" * 161))

    assert (result.segments, result.references) == (2, ())


def test_info_reads_battery_and_signal_of_the_registered_cell(phone):
    info = phone.driver.info()

    assert info.battery_percent == 87
    assert info.signal_percent == 75
    assert info.extra == {"plugged": "PLUGGED_AC", "status": "CHARGING"}


def test_info_without_cell_info_command_has_no_signal(phone):
    (phone.fake_api.bin_dir / "termux-telephony-cellinfo").unlink()

    assert phone.driver.info().signal_percent is None


def test_unreadable_state_file_raises_driver_error(phone, tmp_path):
    (tmp_path / "termux-state.json").write_text("{not json")

    with pytest.raises(DriverError, match="delete it"):
        phone.open_driver()


def test_state_file_records_the_highest_id_handed_over(phone, tmp_path):
    phone.receive(CUSTOMER, "one")
    phone.receive(CUSTOMER, "two")
    poll_texts(phone.driver, 2)
    phone.driver.close()

    state = json.loads((tmp_path / "termux-state.json").read_text())

    assert state["lastId"] == 2
