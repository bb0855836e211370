"""The wire protocol's contract: what one side writes the other reads, old bodies included."""

import ast
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from chalicelib.wire import protocol
from chalicelib.wire.protocol import OutboundSms, PayloadError, UnsupportedVersion, WireError

AT = datetime(2025, 1, 20, 10, 14, 50, tzinfo=UTC)
SMS = OutboundSms("m-1", "+22238089336", "Votre code: 123456", "otp", AT + timedelta(minutes=10))
CLAIMED = OutboundSms(
    "m-1", "+22238089336", "Votre code: 123456", "otp", AT + timedelta(minutes=10), "tok"
)


def test_outbound_sms_round_trips_with_the_current_version():
    body = CLAIMED.to_json()
    assert json.loads(body)["v"] == protocol.PROTOCOL_VERSION == 3
    assert json.loads(body)["claim"] == "tok"
    assert OutboundSms.from_json(body) == CLAIMED


def test_a_version_2_body_is_read_without_a_claim():
    body = json.loads(CLAIMED.to_json())
    del body["claim"]
    assert OutboundSms.from_json(json.dumps({**body, "v": 2})) == SMS


def test_the_claim_is_never_in_the_repr():
    assert "tok" not in repr(CLAIMED).replace("otp", "")


def test_outbound_sms_without_deadline_round_trips():
    sms = OutboundSms("m-2", "+22238089336", "Hello")
    assert OutboundSms.from_json(sms.to_json()) == sms


def test_a_version_1_body_is_read():
    body = json.dumps(
        {
            "messageId": "m-1",
            "to": "+22238089336",
            "text": "Votre code: 123456",
            "kind": "otp",
            "sendBefore": "2025-01-20T10:24:50+00:00",
        }
    )
    assert OutboundSms.from_json(body) == SMS


def test_a_version_1_deadline_without_time_zone_means_utc():
    body = json.dumps(
        {"messageId": "m-1", "to": "+22238089336", "text": "x", "sendBefore": "2025-01-20T10:24:50"}
    )
    assert OutboundSms.from_json(body).send_before == AT + timedelta(minutes=10)


def test_the_text_is_never_in_the_repr():
    assert "123456" not in repr(SMS)


@pytest.mark.parametrize("version", [4, 0])
def test_an_unknown_version_is_refused(version):
    body = json.dumps({**json.loads(SMS.to_json()), "v": version})
    with pytest.raises(UnsupportedVersion, match=f"protocol version {version} is not supported"):
        OutboundSms.from_json(body)


@pytest.mark.parametrize(
    "body",
    [
        "not json",
        "[]",
        json.dumps({"to": "+22238089336", "text": "x"}),
        json.dumps({"messageId": 1, "to": "+22238089336", "text": "x"}),
        json.dumps({"messageId": "m", "to": "+22238089336", "text": "x", "kind": 3}),
        json.dumps({"messageId": "m", "to": "+22238089336", "text": "x", "sendBefore": "soon"}),
        json.dumps({"v": "2", "messageId": "m", "to": "+22238089336", "text": "x"}),
        json.dumps({"messageId": "m", "to": "+22238089336", "text": "x", "claim": 7}),
    ],
)
def test_a_body_that_is_not_an_outbound_sms_is_refused(body):
    with pytest.raises(WireError):
        OutboundSms.from_json(body)


def test_status_report_round_trips():
    body = protocol.status_report("failed", reason="CMS ERROR 500", segments=2, at=AT)
    assert body == {
        "status": "failed",
        "reason": "CMS ERROR 500",
        "segments": 2,
        "at": "2025-01-20T10:14:50.000Z",
    }
    assert protocol.parse_status_report(body) == protocol.StatusReport(
        "failed", "CMS ERROR 500", AT
    )


def test_status_report_carries_the_claim():
    body = protocol.status_report("sending", claim="tok")
    assert body == {"status": "sending", "claim": "tok"}
    assert protocol.parse_status_report(body).claim == "tok"


def test_reports_name_the_line_they_concern():
    sent = protocol.status_report("sent", sim_slot=2)
    assert sent == {"status": "sent", "simSlot": 2}
    assert protocol.parse_status_report(sent).sim_slot == 2
    received = protocol.inbound_sms("+22238089336", "Oui", "sim:8", AT, sim_slot=1)
    assert received["simSlot"] == 1
    assert protocol.parse_inbound_sms(received).sim_slot == 1


@pytest.mark.parametrize("slot", [0, 33, "1", True, 1.5])
def test_a_line_is_a_slot_from_1_to_32(slot):
    with pytest.raises(PayloadError) as caught:
        protocol.parse_status_report({"status": "sent", "simSlot": slot})
    assert caught.value.errors == [
        {"field": "simSlot", "message": "must be a whole number from 1 to 32"}
    ]
    with pytest.raises(PayloadError):
        protocol.parse_inbound_sms({"from": "x", "text": "", "deviceRef": "r", "simSlot": slot})


def test_status_report_leaves_out_what_it_does_not_know():
    assert protocol.status_report("sending") == {"status": "sending"}
    assert protocol.parse_status_report({"status": "SENT"}) == protocol.StatusReport(
        "sent", None, None
    )


def test_inbound_sms_round_trips():
    body = protocol.inbound_sms("+22238089336", "Bonjour", "sim:7", AT)
    assert body == {
        "from": "+22238089336",
        "text": "Bonjour",
        "receivedAt": "2025-01-20T10:14:50.000Z",
        "deviceRef": "sim:7",
    }
    assert protocol.parse_inbound_sms(body) == protocol.InboundReport(
        "+22238089336", "Bonjour", "sim:7", AT
    )


def test_heartbeat_round_trips():
    body = protocol.heartbeat("modem", 80, None, "1.1.0")
    assert protocol.parse_heartbeat(body) == protocol.Heartbeat("modem", 80, None, "1.1.0")
    assert protocol.parse_heartbeat({}) == protocol.Heartbeat(None, None, None, None)


def errors_of(parse, body) -> list[dict]:
    with pytest.raises(PayloadError) as caught:
        parse(body)
    assert str(caught.value).startswith("Validation failed: ")
    return caught.value.errors


def test_status_report_errors_are_all_listed():
    assert errors_of(
        protocol.parse_status_report, {"status": "lost", "reason": "x" * 501, "at": "yesterday"}
    ) == [
        {"field": "status", "message": "must be one of sending, sent, delivered, failed, expired"},
        {"field": "reason", "message": "must be a string of at most 500 characters"},
        {"field": "at", "message": "must be an ISO-8601 date-time"},
    ]


def test_status_is_required_only_when_nothing_else_is_wrong():
    assert errors_of(protocol.parse_status_report, {}) == [
        {"field": "status", "message": "is required"}
    ]
    assert errors_of(protocol.parse_status_report, {"at": "2025-01-20T10:14:50"}) == [
        {"field": "at", "message": "must include a time zone, e.g. Z"}
    ]


def test_inbound_sms_errors_are_all_listed():
    assert errors_of(
        protocol.parse_inbound_sms,
        {"from": " ", "text": 5, "receivedAt": 7, "deviceRef": "r" * 201},
    ) == [
        {"field": "from", "message": "must not be empty"},
        {"field": "text", "message": "must be a string of at most 2000 characters"},
        {"field": "receivedAt", "message": "must be an ISO-8601 date-time"},
        {"field": "deviceRef", "message": "must be at most 200 characters"},
    ]


def test_inbound_sms_needs_sender_text_and_reference():
    assert errors_of(protocol.parse_inbound_sms, {"from": 3}) == [
        {"field": "from", "message": "must be a string"},
        {"field": "deviceRef", "message": "is required"},
        {"field": "text", "message": "is required"},
    ]


def test_heartbeat_errors_are_all_listed():
    assert errors_of(
        protocol.parse_heartbeat,
        {"driver": "d" * 41, "signalPercent": 101, "batteryPercent": True, "version": 1},
    ) == [
        {"field": "driver", "message": "must be a string of at most 40 characters"},
        {"field": "signalPercent", "message": "must be a whole number from 0 to 100"},
        {"field": "batteryPercent", "message": "must be a whole number from 0 to 100"},
        {"field": "version", "message": "must be a string of at most 40 characters"},
    ]


def test_a_payload_that_is_not_an_object_is_refused():
    assert errors_of(protocol.parse_heartbeat, ["modem"]) == [
        {"field": "body", "message": "must be a JSON object"}
    ]


def imported_modules(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_the_bridge_imports_nothing_from_chalicelib_but_the_wire_package():
    bridge = Path(__file__).resolve().parents[2] / "device_bridge"
    imported = set().union(*(imported_modules(path) for path in bridge.rglob("*.py")))
    from_chalicelib = {name for name in imported if name.split(".")[0] == "chalicelib"}
    assert from_chalicelib and all(name.startswith("chalicelib.wire") for name in from_chalicelib)


def test_heartbeat_lines_round_trip():
    lines = [protocol.Line(1, "+22238000001"), protocol.Line(2, "+22244000002", "mauritel")]
    body = protocol.heartbeat("modem", 80, None, "1.1.0", lines=lines)
    assert body["lines"] == [
        {"slot": 1, "number": "+22238000001"},
        {"slot": 2, "number": "+22244000002", "operator": "mauritel"},
    ]
    assert protocol.parse_heartbeat(body).lines == tuple(lines)
    assert protocol.parse_heartbeat({"driver": "modem"}).lines is None


def test_heartbeat_lines_carry_the_sim_guards_state():
    paused = protocol.Line(
        2, "+22244000002", state="paused", state_reason="+CMS ERROR 8: barred", resumes_at=AT
    )
    body = protocol.heartbeat(
        "modem", None, None, "1.2.0", lines=[protocol.Line(1, "+1", state="active"), paused]
    )
    assert body["lines"][1] == {
        "slot": 2,
        "number": "+22244000002",
        "state": "paused",
        "stateReason": "+CMS ERROR 8: barred",
        "resumesAt": protocol.iso_utc(AT),
    }
    assert protocol.parse_heartbeat(body).lines[1] == paused


@pytest.mark.parametrize(
    "lines, words",
    [
        ("+22238000001", "must be a list"),
        ([{"slot": 0, "number": "+22238000001"}], "slot must be a whole number from 1 to 32"),
        ([{"slot": 1}], "number must be a phone number"),
        ([{"slot": 1, "number": "+22238000001", "operator": "orange"}], "operator must be one of"),
        ([{"slot": 1, "number": "1"}, {"slot": 1, "number": "2"}], "same slot"),
        ([{"slot": 1, "number": "1", "signalPercent": 101}], "signalPercent must be a whole"),
        ([{"slot": i, "number": "1"} for i in range(1, 34)], "at most 32"),
        ([{"slot": 1, "number": "1", "state": "asleep"}], "state must be one of active"),
        ([{"slot": 1, "number": "1", "stateReason": "x" * 201}], "stateReason must be"),
        ([{"slot": 1, "number": "1", "resumesAt": "tomorrow"}], "resumesAt must be an ISO"),
    ],
)
def test_heartbeat_lines_are_checked(lines, words):
    [error] = errors_of(protocol.parse_heartbeat, {"lines": lines})
    assert error["field"] == "lines" and words in error["message"]
