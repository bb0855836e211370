"""Who owns a received SMS: the account whose SMS left that line for that number last."""

from datetime import timedelta

import pytest

from chalicelib import auth
from chalicelib.accounts import UNASSIGNED
from chalicelib.models import Device, Message

CUSTOMER = "+22238089336"


@pytest.fixture
def shared_line(aws):
    """A device of the shared pool (dedicated to no account)."""
    Device("shared-1", name="shared phone").save()
    return auth.create_key("device", "shared-1")[0]


@pytest.fixture
def second_line(aws):
    Device("shared-2", name="another shared phone").save()
    return auth.create_key("device", "shared-2")[0]


def send(api, key="default", to=CUSTOMER) -> str:
    response = api.post("/messages/send", {"message": "Votre commande", "phoneNumber": to}, key=key)
    assert response.status_code == 200, response.json
    return response.json["messageId"]


def report(api, device_key, message_id, *statuses):
    for status in statuses:
        response = api.device_post(
            f"/device/messages/{message_id}/status", {"status": status}, device_key
        )
        assert response.status_code == 200, response.json


def reply(api, device_key, ref, sender=CUSTOMER) -> Message:
    body = {"from": sender, "text": "OUI je confirme, carte 4242", "deviceRef": ref}
    response = api.device_post("/device/inbound", body, device_key)
    assert response.status_code == 200, response.json
    return Message.get(response.json["messageId"])


def test_the_reply_goes_to_the_account_whose_sms_left_that_line(api, other_key, shared_line):
    report(api, shared_line, send(api), "sending", "sent")
    assert reply(api, shared_line, "r1").account_id == "acme"
    report(api, shared_line, send(api, other_key), "sent", "delivered")
    assert reply(api, shared_line, "r2").account_id == "globex"  # the latest one sent


@pytest.mark.parametrize("fate", [(), ("sending",), ("failed",), ("sending", "expired")])
def test_a_message_that_never_left_a_phone_claims_nothing(api, other_key, shared_line, fate):
    report(api, shared_line, send(api), "sent")
    report(api, shared_line, send(api, other_key), *fate)  # globex: queued, failed, expired...
    assert reply(api, shared_line, "r1").account_id == "acme"


def test_a_claim_holds_only_for_its_own_line(api, shared_line, second_line):
    report(api, shared_line, send(api), "sent")
    stored = reply(api, second_line, "r1")
    assert stored.account_id == UNASSIGNED
    assert api.get("/messages?direction=inbound").json["messages"] == []


def test_no_claim_on_a_shared_line_is_the_unassigned_inbox(api, shared_line):
    assert reply(api, shared_line, "r1", sender="+22248089336").account_id == UNASSIGNED


def test_a_dedicated_line_keeps_its_account_without_a_claim(api, device_key):
    # device_key: phone-1, dedicated to acme
    assert reply(api, device_key, "r1", sender="+22248089336").account_id == "acme"


def test_the_claim_ends_with_the_reply_window(api, other_key, shared_line, manual_clock):
    report(api, shared_line, send(api), "sent")
    manual_clock.advance(timedelta(days=7, seconds=1).total_seconds())
    assert reply(api, shared_line, "r1").account_id == UNASSIGNED


def test_a_delivery_report_without_sent_still_claims(api, shared_line):
    message_id = send(api)
    report(api, shared_line, message_id, "delivered")
    assert Message.get(message_id).sent_at is not None
    assert reply(api, shared_line, "r1").account_id == "acme"
