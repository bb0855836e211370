"""GET /stats: the console's overview figures, read from the account's own message log."""

import pytest

from chalicelib.models import Message
from tests.unit.test_otp_api import sent_code
from tests.unit.test_schedule import schedule

PHONE = "+22238089336"


def send(api, key="default"):
    return api.post("/messages/send", {"message": "x", "phoneNumber": PHONE}, key=key).json[
        "messageId"
    ]


def report(api, device_key, message_id, *statuses):
    for status in statuses:
        path = f"/device/messages/{message_id}/status"
        assert api.device_post(path, {"status": status}, device_key).status_code == 200


def test_figures_count_the_callers_messages_by_day_and_status(
    api, device_key, other_key, manual_clock
):
    delivered = send(api)
    report(api, device_key, delivered, "sending")
    manual_clock.advance(4)
    report(api, device_key, delivered, "sent")
    manual_clock.advance(10)
    report(api, device_key, delivered, "delivered")
    failed = send(api)
    report(api, device_key, failed, "sending", "failed")
    send(api)  # still queued
    send(api, key=other_key)
    inbound = api.device_post(
        "/device/inbound", {"from": PHONE, "text": "hi", "deviceRef": "r1"}, device_key
    )
    assert inbound.status_code == 200

    figures = api.get("/stats").json
    assert figures["success"] is True and figures["complete"] is True
    assert len(figures["days"]) == 14
    today = figures["days"][-1]
    assert today["date"] == manual_clock.now().date().isoformat()
    assert {k: today[k] for k in ("outbound", "delivered", "failed", "pending", "received")} == {
        "outbound": 3,
        "delivered": 1,
        "failed": 1,
        "pending": 1,
        "received": 1,
    }
    assert figures["totals"]["outbound"] == 3
    assert figures["deliveryRate"] == 0.5  # 1 delivered of 2 settled
    assert figures["medianSeconds"] == {"queuedToSent": 4.0, "sentToDelivered": 10.0}
    assert figures["unreadInbound"] == 1


def test_days_before_the_window_are_left_out(api, manual_clock):
    send(api)
    manual_clock.advance(3 * 86400)
    figures = api.get("/stats?days=2").json
    assert [d["outbound"] for d in figures["days"]] == [0, 0]
    assert api.get("/stats?days=4").json["totals"]["outbound"] == 1


def test_otp_conversion_counts_verified_codes(api):
    api.post("/otp/send", {"phoneNumber": PHONE})
    code, _ = sent_code()
    api.post("/otp/send", {"phoneNumber": "+22238089337"})
    assert api.post("/otp/verify", {"phoneNumber": PHONE, "otp": code}).status_code == 200
    otp = api.get("/stats").json["otp"]
    assert otp == {"requested": 2, "sent": 0, "verified": 1, "conversion": 0.5}


def test_a_code_whose_message_was_deleted_still_verifies(api):
    message_id = api.post("/otp/send", {"phoneNumber": PHONE}).json["messageId"]
    code, _ = sent_code()
    Message(message_id).delete()
    answer = api.post("/otp/verify", {"phoneNumber": PHONE, "otp": code})
    assert answer.status_code == 200
    with pytest.raises(Message.DoesNotExist):
        Message.get(message_id)  # the verification did not bring the message back


@pytest.mark.parametrize("days", ["0", "91", "two", "1.5"])
def test_days_must_be_a_whole_number_from_1_to_90(api, days):
    answer = api.get(f"/stats?days={days}")
    assert answer.status_code == 400
    assert answer.json["errors"] == [
        {"field": "days", "message": "must be a whole number from 1 to 90"}
    ]


def test_stats_need_a_key(api):
    assert api.get("/stats", key=None).status_code == 401


def test_a_cancelled_scheduled_sms_counts_as_cancelled_not_pending(api):
    kept = schedule(api, 60).json["messageId"]
    cancelled = schedule(api, 60).json["messageId"]
    assert api.post(f"/messages/{cancelled}/cancel").status_code == 200
    totals = api.get("/stats").json["totals"]
    assert kept != cancelled
    assert {k: totals[k] for k in ("outbound", "pending", "cancelled")} == {
        "outbound": 2,
        "pending": 1,
        "cancelled": 1,
    }
