"""The /device endpoints a bridge calls, and the dead-letter handler."""

import json
from datetime import UTC, datetime

import pytest

from chalicelib import auth, dlq, queue
from chalicelib.config import settings
from chalicelib.models import Device, Message
from tests.conftest import queued_bodies
from tests.events import failed_bodies, sqs_event

PHONE = "+22238089336"


def queued_message(api):
    return api.post("/messages/send", {"message": "Salam", "phoneNumber": PHONE}).json["messageId"]


def test_status_moves_forward_to_delivered(api, device_key):
    message_id = queued_message(api)
    for status in ("sending", "sent", "delivered"):
        response = api.device_post(
            f"/device/messages/{message_id}/status", {"status": status}, device_key
        )
        assert response.status_code == 200 and response.json["status"] == status
    shown = api.get(f"/messages/{message_id}").json
    assert shown["status"] == "delivered" and shown["deviceId"] == "phone-1"
    assert shown["sentAt"] and shown["deliveredAt"]


def test_stale_and_repeated_reports_change_nothing(api, device_key):
    message_id = queued_message(api)
    path = f"/device/messages/{message_id}/status"
    api.device_post(path, {"status": "sent"}, device_key)
    for late in ("sending", "sent", "expired"):
        assert api.device_post(path, {"status": late}, device_key).json["status"] == "sent"
    api.device_post(path, {"status": "delivered"}, device_key)
    assert (
        api.device_post(path, {"status": "failed", "reason": "late"}, device_key).json["status"]
        == "delivered"
    )


def test_failure_keeps_its_reason(api, device_key):
    message_id = queued_message(api)
    api.device_post(
        f"/device/messages/{message_id}/status",
        {"status": "failed", "reason": "+CMS ERROR: 38 network out of order"},
        device_key,
    )
    shown = api.get(f"/messages/{message_id}").json
    assert (
        shown["status"] == "failed"
        and shown["statusReason"] == "+CMS ERROR: 38 network out of order"
    )


@pytest.mark.parametrize(
    "body, field",
    [
        ({}, "status"),
        ({"status": "lost"}, "status"),
        ({"status": "sent", "at": "yesterday"}, "at"),
        ({"status": "sent", "at": "2025-01-20T10:00:00"}, "at"),
    ],
)
def test_status_validation(api, device_key, body, field):
    message_id = queued_message(api)
    response = api.device_post(f"/device/messages/{message_id}/status", body, device_key)
    assert response.status_code == 400 and response.json["errors"][0]["field"] == field


def test_unknown_message_is_404(api, device_key):
    response = api.device_post("/device/messages/nope/status", {"status": "sent"}, device_key)
    assert response.status_code == 404


def test_keys_do_not_cross_sides(api, device_key):
    api_key_on_device_side = api.post("/device/heartbeat", {}, headers={})
    assert api_key_on_device_side.status_code == 401
    assert api_key_on_device_side.json == {"success": False, "message": "Device key is required"}
    forged = api.device_post("/device/heartbeat", {}, api.key)
    assert forged.status_code == 403 and forged.json["message"] == "Invalid Device key"
    assert api.get("/messages/x", key=device_key).status_code == 403


def test_inbound_is_stored_once_with_normalised_sender(api, device_key):
    body = {
        "from": "38089336",
        "text": "Oui, merci",
        "receivedAt": "2025-01-20T10:14:50Z",
        "deviceRef": "sim:1",
    }
    first = api.device_post("/device/inbound", body, device_key)
    again = api.device_post("/device/inbound", body, device_key)
    assert first.status_code == 200 and first.json["duplicate"] is False
    assert again.json == {"success": True, "messageId": first.json["messageId"], "duplicate": True}
    stored = Message.get(first.json["messageId"])
    assert (stored.direction, stored.phone_number, stored.account_id) == ("inbound", PHONE, "acme")
    assert stored.device_id == "phone-1" and stored.created_at.isoformat().startswith(
        "2025-01-20T10:14:50"
    )


@pytest.mark.parametrize(
    "sender, stored",
    [("+33612345678", "+33612345678"), ("Mauritel", "Mauritel"), ("22238089336", PHONE)],
)
def test_senders_from_anywhere(api, device_key, sender, stored):
    body = {"from": sender, "text": "x", "receivedAt": "2025-01-20T10:14:50Z", "deviceRef": sender}
    message_id = api.device_post("/device/inbound", body, device_key).json["messageId"]
    assert Message.get(message_id).phone_number == stored


def test_inbound_validation(api, device_key):
    response = api.device_post("/device/inbound", {"text": 3}, device_key)
    assert response.status_code == 400
    assert {e["field"] for e in response.json["errors"]} == {"from", "text", "deviceRef"}


def test_heartbeat_records_last_seen_and_info(api, device_key):
    response = api.device_post(
        "/device/heartbeat",
        {"driver": "modem", "signalPercent": 70, "batteryPercent": None},
        device_key,
    )
    assert response.status_code == 200
    device = Device.get("phone-1")
    assert device.last_seen_at is not None and device.driver == "modem"
    assert device.info.as_dict() == {"signalPercent": 70}


def test_heartbeat_validation(api, device_key):
    response = api.device_post("/device/heartbeat", {"signalPercent": 140}, device_key)
    assert response.status_code == 400 and response.json["errors"][0]["field"] == "signalPercent"


def test_dead_letters_fail_unsettled_messages_only(api, device_key):
    claimed, delivered = queued_message(api), queued_message(api)
    api.device_post(f"/device/messages/{claimed}/status", {"status": "sending"}, device_key)
    api.device_post(f"/device/messages/{delivered}/status", {"status": "delivered"}, device_key)
    bodies = [json.dumps({"messageId": m}) for m in (claimed, delivered, "unknown", "{bad", 5)]
    assert dead_letters(*bodies) == []
    assert dead_letters(*bodies) == []
    assert Message.get(claimed).status == "failed"  # a bridge took it, never said how it went
    assert "dead-letter queue" in Message.get(claimed).status_reason
    assert Message.get(delivered).status == "delivered"


def test_a_dead_letter_never_handed_to_a_phone_is_queued_again(api):
    waiting = queued_message(api)
    body = json.dumps({"messageId": waiting})
    for _ in range(dlq.MAX_DEAD_LETTERS):
        dead_letters(body)
        assert Message.get(waiting).status == "queued"
    assert [b["messageId"] for b in queued_bodies(settings().outbound_queue)] == [waiting] * (
        1 + dlq.MAX_DEAD_LETTERS
    )
    dead_letters(body)  # its chances are used up
    assert Message.get(waiting).status == "failed"


def test_a_dead_lettered_otp_goes_back_with_its_code_until_it_expires(api, manual_clock):
    message_id = api.post("/otp/send", {"phoneNumber": "38089336"}).json["messageId"]
    [body] = queued_bodies(settings().priority_queue)
    dead_letters(json.dumps(body))
    [copy] = queued_bodies(settings().priority_queue)  # (the first read hid the original)
    assert copy["text"] == body["text"] and copy["messageId"] == message_id  # its code
    manual_clock.advance(settings().otp_ttl_seconds + 1)
    dead_letters(json.dumps(body))
    assert Message.get(message_id).status == "expired"


def test_a_dead_letter_that_cannot_be_settled_now_comes_again_alone(api):
    waiting, other = queued_message(api), queued_message(api)
    queue.sqs().delete_queue(QueueUrl=queue.queue_url(settings().outbound_queue))
    Message(other).update(actions=[Message.status.set("sending")])  # settled without SQS
    bodies = [json.dumps({"messageId": waiting}), "not json", json.dumps({"messageId": other})]
    assert dead_letters(*bodies) == [bodies[0]]
    assert Message.get(other).status == "failed"


def dead_letters(*bodies) -> list[str]:
    """Run the outbound dead-letter Lambda on one batch; the bodies it reports failed."""
    from app import outbound_dead_letters

    event = sqs_event(settings().outbound_queue + "-dlq", *bodies)
    return failed_bodies(event, outbound_dead_letters(event, None))


def test_sending_is_a_claim_only_one_device_wins(api, device_key):
    Device("phone-2", account_id="acme").save()
    other_key, _ = auth.create_key("device", "phone-2")
    message_id = queued_message(api)
    path = f"/device/messages/{message_id}/status"
    first = api.device_post(path, {"status": "sending"}, device_key).json
    second = api.device_post(path, {"status": "sending"}, other_key).json
    again = api.device_post(path, {"status": "sending"}, device_key).json
    assert (first["status"], first["claimed"]) == ("sending", True)
    assert (second["status"], second["claimed"]) == ("sending", False)
    assert again["claimed"] is True, "a retry by the claiming device keeps its claim"
    assert "claimed" not in api.device_post(path, {"status": "sent"}, device_key).json


# --- reports bound to what a device received -------------------------------------------------


@pytest.fixture
def intruder_key(aws):
    """A device of the fleet that never received the message under test."""
    Device("phone-9", account_id="globex").save()
    return auth.create_key("device", "phone-9")[0]


def test_a_device_that_never_received_a_message_cannot_touch_it(api, device_key, intruder_key):
    message_id = queued_message(api)
    path = f"/device/messages/{message_id}/status"
    for status in ("sending", "sent", "delivered", "failed", "expired"):
        forged = api.device_post(
            path, {"status": status, "at": "2030-01-01T00:00:00Z"}, intruder_key, received=False
        )
        assert forged.status_code == 404, status
        assert forged.json == {"success": False, "message": "Message not found", "errors": []}
    assert Message.get(message_id).status == "queued" and Message.get(message_id).device_id is None
    # the device that got it from the queue still sends it
    assert api.device_post(path, {"status": "sending"}, device_key).json["claimed"] is True


def test_a_forged_or_borrowed_claim_is_refused(api, device_key, intruder_key):
    first, second = queued_message(api), queued_message(api)
    from tests.conftest import claim_token

    borrowed = {"status": "sending", "claim": claim_token(second)}
    assert (
        api.device_post(f"/device/messages/{first}/status", borrowed, intruder_key).status_code
        == 404
    )
    bogus = {"status": "sending", "claim": "A" * 32}
    assert (
        api.device_post(f"/device/messages/{first}/status", bogus, intruder_key).status_code == 404
    )


def test_once_bound_only_its_device_settles_it(api, device_key, intruder_key):
    message_id = queued_message(api)
    path = f"/device/messages/{message_id}/status"
    assert api.device_post(path, {"status": "sent"}, device_key).status_code == 200
    # a later report of the bound device needs no token (delivery reports come late)
    assert (
        api.device_post(path, {"status": "delivered"}, device_key, received=False).json["status"]
        == "delivered"
    )
    # another device, even with the message's claim (a redelivered copy), cannot settle it
    late = api.device_post(path, {"status": "failed", "reason": "x"}, intruder_key)
    assert late.status_code == 200 and late.json["status"] == "delivered"
    assert Message.get(message_id).device_id == "phone-1"


def test_a_report_dated_in_the_future_is_clamped_to_now(api, device_key):
    message_id = queued_message(api)
    before = datetime.now(UTC)
    path = f"/device/messages/{message_id}/status"
    api.device_post(path, {"status": "delivered", "at": "2030-01-01T00:00:00Z"}, device_key)
    delivered_at = datetime.fromisoformat(
        api.get(f"/messages/{message_id}").json["deliveredAt"].replace("Z", "+00:00")
    )
    assert before <= delivered_at <= datetime.now(UTC)


def test_a_resent_message_can_be_taken_by_another_device(api, device_key, intruder_key):
    message_id = queued_message(api)
    path = f"/device/messages/{message_id}/status"
    api.device_post(path, {"status": "failed", "reason": "no credit"}, device_key)
    assert api.post(f"/messages/{message_id}/resend").status_code == 200
    assert api.device_post(path, {"status": "sending"}, intruder_key).json["claimed"] is True


def test_inbound_text_is_size_checked(api, device_key):
    body = {"from": "38089336", "text": "x" * 2001, "deviceRef": "sim:big"}
    response = api.device_post("/device/inbound", body, device_key)
    assert response.status_code == 400 and response.json["errors"][0]["field"] == "text"
    assert (
        api.device_post("/device/inbound", {**body, "text": "x" * 2000}, device_key).status_code
        == 200
    )


def test_inbound_is_rate_limited_per_device(api, device_key, intruder_key, manual_clock):
    # manual_clock: the 61 posts fall in one minute window, wherever the test starts
    statuses = [
        api.device_post(
            "/device/inbound", {"from": "38089336", "text": "x", "deviceRef": f"r{i}"}, device_key
        ).status_code
        for i in range(61)
    ]
    assert statuses == [200] * 60 + [429]
    again = api.device_post(
        "/device/inbound", {"from": "38089336", "text": "x", "deviceRef": "r0"}, device_key
    )
    assert again.status_code == 429  # a repost too: the limit is checked in the same write
    other = {"from": "38089336", "text": "x", "deviceRef": "r0"}
    assert api.device_post("/device/inbound", other, intruder_key).status_code == 200


def test_an_inbound_sms_dated_in_the_future_is_stored_as_received_now(api, device_key):
    body = {"from": "38089336", "text": "x", "receivedAt": "2030-01-01T00:00:00Z", "deviceRef": "f"}
    message_id = api.device_post("/device/inbound", body, device_key).json["messageId"]
    assert Message.get(message_id).created_at <= datetime.now(UTC)


# --- GET /devices: an account's own devices ----------------------------------------------------


def test_an_account_sees_only_its_own_devices_online_or_offline(
    api, device_key, other_key, intruder_key, manual_clock
):
    Device("shared-1", name="pool phone").save()
    beat = {"driver": "modem", "signalPercent": 70, "batteryPercent": 55, "version": "1.2.0"}
    assert api.device_post("/device/heartbeat", beat, device_key).status_code == 200
    shown = api.get("/devices")
    assert shown.status_code == 200
    [phone] = shown.json["devices"]
    assert phone["deviceId"] == "phone-1" and phone["online"] is True
    assert (phone["driver"], phone["signalPercent"], phone["batteryPercent"]) == ("modem", 70, 55)
    assert phone["bridgeVersion"] == "1.2.0" and phone["lastSeenAt"].endswith("Z")
    assert [d["deviceId"] for d in api.get("/devices", key=other_key).json["devices"]] == [
        "phone-9"
    ]
    manual_clock.advance(181)
    assert api.get("/devices").json["devices"][0]["online"] is False


def test_devices_need_an_api_key(api, device_key):
    assert api.get("/devices", key=None).status_code == 401
    assert api.get("/devices", key=device_key).status_code == 403


def test_a_heartbeat_reports_the_sim_lines_with_their_operators(api, device_key):
    lines = [
        {"slot": 2, "number": "44000002", "signalPercent": 35},
        {"slot": 1, "number": "+22238000001"},
        {"slot": 3, "number": "+22222000003", "operator": "mattel"},  # overrides the prefix
    ]
    assert api.device_post("/device/heartbeat", {"lines": lines}, device_key).status_code == 200
    [phone] = api.get("/devices").json["devices"]
    assert phone["lines"] == [
        {
            "slot": 1,
            "number": "+22238000001",
            "operator": "mattel",
            "signalPercent": None,
            **UNSTATED,
        },
        {
            "slot": 2,
            "number": "+22244000002",
            "operator": "mauritel",
            "signalPercent": 35,
            **UNSTATED,
        },
        {
            "slot": 3,
            "number": "+22222000003",
            "operator": "mattel",
            "signalPercent": None,
            **UNSTATED,
        },
    ]
    # a heartbeat without lines (an older bridge) keeps what was reported
    assert api.device_post("/device/heartbeat", {"driver": "modem"}, device_key).status_code == 200
    assert len(api.get("/devices").json["devices"][0]["lines"]) == 3


UNSTATED = {"state": None, "stateReason": None, "resumesAt": None}  # an older bridge's lines


def test_the_console_sees_why_a_line_is_paused_and_when_it_resumes(api, device_key):
    lines = [
        {"slot": 1, "number": "+22238000001", "state": "active"},
        {
            "slot": 2,
            "number": "+22244000002",
            "state": "paused",
            "stateReason": "+CMS ERROR 8: operator determined barring",
            "resumesAt": "2026-12-07T10:05:00+01:00",
        },
    ]
    assert api.device_post("/device/heartbeat", {"lines": lines}, device_key).status_code == 200
    first, second = api.get("/devices").json["devices"][0]["lines"]
    assert (first["state"], first["stateReason"], first["resumesAt"]) == ("active", None, None)
    assert second["state"] == "paused"
    assert second["stateReason"] == "+CMS ERROR 8: operator determined barring"
    assert second["resumesAt"] == "2026-12-07T09:05:00Z"


def test_a_line_with_a_bad_number_stores_nothing(api, device_key):
    good = {"lines": [{"slot": 1, "number": "+22238000001"}]}
    api.device_post("/device/heartbeat", good, device_key)
    bad = {"signalPercent": 10, "lines": [{"slot": 1, "number": "+33612345678"}]}
    response = api.device_post("/device/heartbeat", bad, device_key)
    assert response.status_code == 400 and response.json["errors"][0]["field"] == "lines[0].number"
    [phone] = api.get("/devices").json["devices"]
    assert phone["lines"][0]["number"] == "+22238000001" and phone["signalPercent"] is None
