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


@pytest.fixture
def dual_sim(aws):
    """A shared phone with two SIM lines, as its heartbeat reported them."""
    Device("shared-dual", name="dual SIM").save()
    return auth.create_key("device", "shared-dual")[0]


def heartbeat_lines(api, device_key, *numbers):
    lines = [{"slot": slot, "number": number} for slot, number in enumerate(numbers, 1)]
    response = api.device_post("/device/heartbeat", {"lines": lines}, device_key)
    assert response.status_code == 200, response.json


def report_from(api, device_key, message_id, slot):
    body = {"status": "sent", "simSlot": slot}
    response = api.device_post(f"/device/messages/{message_id}/status", body, device_key)
    assert response.status_code == 200, response.json


def reply_on(api, device_key, ref, slot=None):
    body = {"from": CUSTOMER, "text": "OUI", "deviceRef": ref}
    if slot is not None:
        body["simSlot"] = slot
    return api.device_post("/device/inbound", body, device_key)


def test_on_a_dual_sim_phone_each_line_has_its_own_claims(api, other_key, dual_sim):
    heartbeat_lines(api, dual_sim, "+22238000001", "+22244000002")
    report_from(api, dual_sim, send(api), 1)  # acme's SMS left SIM 1
    report_from(api, dual_sim, send(api, other_key), 2)  # then globex's left SIM 2
    assert Message.get(reply_on(api, dual_sim, "r1", 1).json["messageId"]).account_id == "acme"
    on_two = reply_on(api, dual_sim, "r2", 2).json["messageId"]
    assert Message.get(on_two).account_id == "globex"
    assert Message.get(on_two).sim_slot == 2


def test_a_reply_of_unknown_line_goes_only_to_an_unambiguous_claim(api, other_key, dual_sim):
    heartbeat_lines(api, dual_sim, "+22238000001", "+22244000002")
    report_from(api, dual_sim, send(api), 1)
    assert Message.get(reply_on(api, dual_sim, "r1").json["messageId"]).account_id == "acme"
    report_from(api, dual_sim, send(api, other_key), 2)
    unknown = reply_on(api, dual_sim, "r2").json["messageId"]
    assert Message.get(unknown).account_id == UNASSIGNED  # acme or globex: never a guess


def test_an_inbound_sms_for_a_line_the_device_does_not_have_is_refused(api, dual_sim):
    heartbeat_lines(api, dual_sim, "+22238000001", "+22244000002")
    response = reply_on(api, dual_sim, "r1", 3)
    assert response.status_code == 400
    assert response.json["errors"] == [
        {"field": "simSlot", "message": "is not a line of this device: [1, 2]"}
    ]
    assert reply_on(api, dual_sim, "r1", 17).json["errors"][0]["field"] == "simSlot"
    assert list(Message.scan(Message.direction == "inbound")) == []
