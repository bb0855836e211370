"""The whole path on the local stack: API -> SQS -> device bridge -> simulated phone, and back."""

import re
import time

import pytest

from devstack.harness import fresh_local_number

pytestmark = pytest.mark.e2e


def wait_until(predicate, seconds=20.0, interval=0.1):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"not true within {seconds} s")


def test_sent_sms_reaches_the_phone_and_is_reported_delivered(stack):
    phone = fresh_local_number()
    message_id = stack.post(
        "/messages/send", {"message": "Bonjour de Nouakchott", "phoneNumber": phone}
    ).json()["messageId"]
    [line] = wait_until(lambda: [x for x in stack.outbox_lines() if x["messageId"] == message_id])
    assert (line["to"], line["text"]) == ("+222" + phone, "Bonjour de Nouakchott")
    shown = wait_until(
        lambda: (lambda m: m if m["status"] == "delivered" else None)(
            stack.get(f"/messages/{message_id}").json()
        )
    )
    assert shown["deviceId"] == "local-phone" and shown["sentAt"] and shown["deliveredAt"]


def test_otp_goes_out_in_arabic_and_verifies(stack):
    phone = fresh_local_number()
    sent = stack.post("/otp/send", {"phoneNumber": phone, "language": "ar"}).json()
    [line] = wait_until(
        lambda: [x for x in stack.outbox_lines() if x["messageId"] == sent["messageId"]]
    )
    code = re.search(r"\b\d{6}\b", line["text"]).group()
    assert line["text"].startswith("رمز التحقق")
    verified = stack.post("/otp/verify", {"phoneNumber": phone, "otp": code})
    assert verified.status_code == 200 and verified.json()["verified"] is True


def test_sms_received_by_the_phone_appears_in_the_api(stack):
    phone = fresh_local_number()
    sent = stack.post("/messages/send", {"message": "Vous venez ?", "phoneNumber": phone})
    message_id = sent.json()["messageId"]
    # the reply belongs to this account once its SMS left the phone
    wait_until(
        lambda: stack.get(f"/messages/{message_id}").json()["status"] in ("sent", "delivered")
    )
    stack.receive_sms(phone, "Oui, j'arrive")

    def received():
        listing = stack.get(f"/messages?direction=inbound&phoneNumber={phone}").json()["messages"]
        return listing[0] if listing else None

    message = wait_until(received)
    assert message["message"] == "Oui, j'arrive" and message["status"] == "received"
    assert message["deviceId"] == "local-phone" and message["read"] is False
