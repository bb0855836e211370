"""The simulator's own promises: the outbox and inbox files of the local stack."""

import json
import logging
import time
from datetime import UTC, datetime, timedelta

import pytest

from device_bridge.drivers import load
from device_bridge.drivers.base import DeliveryReport, InboundSms, OutboundSms, SendError
from tests.integration.drivers.harnesses import SimulatorHarness, poll_until, read_json_lines

CUSTOMER = "+22238089336"


@pytest.fixture
def phone(tmp_path):
    harness = SimulatorHarness(tmp_path)
    yield harness
    harness.close()


def inbound(events):
    return [event for event in events if isinstance(event, InboundSms)]


def test_outbox_line_has_the_contract_fields(phone):
    phone.driver.send(OutboundSms(message_id="msg-42", to=CUSTOMER, text="رمز 123456"))

    [record] = read_json_lines(phone.outbox)
    assert record["messageId"] == "msg-42"
    assert (record["to"], record["text"], record["segments"]) == (CUSTOMER, "رمز 123456", 1)
    assert datetime.fromisoformat(record["sentAt"]).utcoffset() == timedelta(0)
    assert phone.outbox.read_text(encoding="utf-8").endswith("\n")


def test_outbox_counts_segments(phone):
    result = phone.driver.send(OutboundSms(message_id="msg-1", to=CUSTOMER, text="x" * 161))

    assert result.segments == 2
    assert read_json_lines(phone.outbox)[0]["segments"] == 2


def test_paths_default_to_the_local_stack_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("SMSGW_OUTBOX", str(tmp_path / "from-env" / "out.jsonl"))
    monkeypatch.setenv("SMSGW_INBOX", str(tmp_path / "from-env" / "in.jsonl"))

    driver = load("simulator")
    driver.open()

    assert (tmp_path / "from-env" / "out.jsonl").exists()
    assert (tmp_path / "from-env" / "in.jsonl").exists()


def test_paths_default_to_var_without_environment(tmp_path, monkeypatch):
    monkeypatch.delenv("SMSGW_OUTBOX", raising=False)
    monkeypatch.delenv("SMSGW_INBOX", raising=False)
    monkeypatch.chdir(tmp_path)

    load("simulator").open()

    assert (tmp_path / "var" / "outbox.jsonl").exists()
    assert (tmp_path / "var" / "inbox.jsonl").exists()


def test_inbox_line_without_newline_waits_until_complete(phone):
    line = json.dumps({"from": CUSTOMER, "text": "half written"}).encode()
    phone.append_to_inbox(line[:20])
    assert phone.driver.poll() == []

    phone.append_to_inbox(line[20:])
    assert phone.driver.poll() == []

    phone.append_to_inbox(b"\n")
    [sms] = inbound(phone.driver.poll())
    assert sms.text == "half written"


@pytest.mark.parametrize(
    "bad_line",
    [
        b"not json at all\n",
        b'["a", "list"]\n',
        b'{"text": "no sender"}\n',
        b'{"from": "", "text": "empty sender"}\n',
        b'{"from": "+22238089336", "text": 42}\n',
        b'{"from": "+22238089336", "text": "bad date", "receivedAt": "yesterday"}\n',
        b"\xff\xfe not utf-8\n",
    ],
)
def test_malformed_inbox_line_is_skipped_with_a_warning(phone, caplog, bad_line):
    phone.append_to_inbox(bad_line)
    phone.receive(CUSTOMER, "after the bad line")

    with caplog.at_level(logging.WARNING, logger="device_bridge.drivers.simulator"):
        events = inbound(phone.driver.poll())

    assert [sms.text for sms in events] == ["after the bad line"]
    assert "skipping inbox line" in caplog.text


def test_blank_inbox_lines_are_ignored_silently(phone, caplog):
    phone.append_to_inbox(b"\n  \n")
    phone.receive(CUSTOMER, "hi")

    with caplog.at_level(logging.WARNING):
        assert [sms.text for sms in inbound(phone.driver.poll())] == ["hi"]
    assert caplog.text == ""


def test_received_at_is_taken_from_the_line(phone):
    for received_at in ("2025-01-20T10:14:50Z", "2025-01-20 10:14:50"):
        line = {"from": CUSTOMER, "text": "dated", "receivedAt": received_at}
        phone.append_to_inbox(json.dumps(line).encode() + b"\n")

    first, second = inbound(phone.driver.poll())

    expected = datetime(2025, 1, 20, 10, 14, 50, tzinfo=UTC)
    assert first.received_at == second.received_at == expected


def test_restarted_simulator_rereads_the_inbox_with_the_same_refs(tmp_path):
    first = SimulatorHarness(tmp_path)
    first.receive(CUSTOMER, "hello")
    before = inbound(first.driver.poll())
    first.close()

    second = SimulatorHarness(tmp_path)
    after = inbound(second.driver.poll())

    assert [sms.device_ref for sms in after] == [sms.device_ref for sms in before]


def test_replaced_inbox_is_read_from_the_start(phone, tmp_path):
    phone.receive(CUSTOMER, "old")
    inbound(phone.driver.poll())
    replacement = tmp_path / "replacement.jsonl"
    replacement.write_text(json.dumps({"from": CUSTOMER, "text": "new"}) + "\n", encoding="utf-8")

    replacement.replace(phone.inbox)

    assert [sms.text for sms in inbound(phone.driver.poll())] == ["new"]


def test_truncated_inbox_is_read_from_the_start(phone):
    phone.receive(CUSTOMER, "a rather long first message")
    inbound(phone.driver.poll())

    phone.inbox.write_text(json.dumps({"from": CUSTOMER, "text": "short"}) + "\n", encoding="utf-8")

    assert [sms.text for sms in inbound(phone.driver.poll())] == ["short"]


def test_missing_files_and_directories_are_created(tmp_path):
    outbox, inbox = tmp_path / "a" / "out.jsonl", tmp_path / "b" / "in.jsonl"
    driver = load("simulator", outbox=outbox, inbox=str(inbox))

    driver.open()

    assert outbox.exists() and inbox.exists()


def test_every_segment_gets_a_delivery_report(phone):
    result = phone.driver.send(OutboundSms(message_id="msg-1", to=CUSTOMER, text="x" * 200))

    reports = [event for event in phone.driver.poll() if isinstance(event, DeliveryReport)]

    assert len(result.references) == result.segments == 2
    assert [(report.reference, report.delivered) for report in reports] == [
        (reference, True) for reference in result.references
    ]
    assert phone.driver.poll() == []


def test_no_delivery_reports_when_disabled(tmp_path):
    phone = SimulatorHarness(tmp_path, delivery_reports=False)

    phone.driver.send(OutboundSms(message_id="msg-1", to=CUSTOMER, text="hi"))

    assert phone.driver.poll() == []


def test_fail_numbers_are_refused_and_nothing_is_sent(tmp_path):
    phone = SimulatorHarness(tmp_path, fail_numbers=["+22220000000"])

    with pytest.raises(SendError) as refusal:
        phone.driver.send(OutboundSms(message_id="msg-1", to="+22220000000", text="hi"))
    phone.driver.send(OutboundSms(message_id="msg-2", to=CUSTOMER, text="hi"))

    assert refusal.value.code == "simulated"
    assert phone.network_sent() == [(CUSTOMER, "hi")]
    assert [event.reference for event in phone.driver.poll()] == ["msg-2/1"]


def test_fail_numbers_may_be_a_comma_separated_string(tmp_path):
    phone = SimulatorHarness(tmp_path, fail_numbers="+22220000000, +22230000000")

    with pytest.raises(SendError):
        phone.driver.send(OutboundSms(message_id="msg-1", to="+22230000000", text="hi"))


def test_send_delay_is_respected(tmp_path):
    phone = SimulatorHarness(tmp_path, send_delay=0.2)
    started = time.monotonic()

    phone.driver.send(OutboundSms(message_id="msg-1", to=CUSTOMER, text="hi"))

    assert time.monotonic() - started >= 0.2  # a lower bound only: a slow machine cannot fail it


def test_lines_from_a_writer_holding_the_inbox_open_are_read_in_order(phone):
    with open(phone.inbox, "a", encoding="utf-8") as inbox:
        inbox.write(json.dumps({"from": CUSTOMER, "text": "first"}) + "\n")
        inbox.flush()
        events = poll_until(phone.driver, lambda events: len(events) == 1)
        inbox.write(json.dumps({"from": CUSTOMER, "text": "second"}) + "\n")
        inbox.flush()
        events += poll_until(phone.driver, lambda events: len(events) == 1)

    assert [sms.text for sms in events] == ["first", "second"]
