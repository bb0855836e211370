"""Which queue an SMS goes to: the device asked for, on-net lines, dedicated devices."""

import pytest

from chalicelib import auth, quotas, routing
from chalicelib.config import settings
from chalicelib.models import Account, Device
from chinqit_admin import provision

from ..conftest import queued_bodies

MATTEL_CUSTOMER = "38089336"
MAURITEL_CUSTOMER = "48089336"


def device(api, device_id, account=None, lines=("+22238000001",), beat=True):
    """A registered device whose bridge polls its own queues (device credentials)."""
    Device(device_id, name=device_id, account_id=account).save()
    provision.device_queues(device_id)
    key = auth.create_key("device", device_id)[0]
    if beat:
        body = {
            "ownQueue": True,
            "lines": [{"slot": i, "number": n} for i, n in enumerate(lines, 1)],
        }
        assert api.device_post("/device/heartbeat", body, key).status_code == 200
    return key


def on(device_id, kind="sms"):
    return [b["messageId"] for b in queued_bodies(routing.device_queue(device_id, kind))]


def shared(kind="sms"):
    name = settings().outbound_queue if kind == "sms" else settings().priority_queue
    return [b["messageId"] for b in queued_bodies(name)]


def send(api, to=MATTEL_CUSTOMER, key="default", **extra):
    response = api.post("/messages/send", {"message": "Salam", "phoneNumber": to, **extra}, key=key)
    assert response.status_code == 200, response.json
    return response.json["messageId"]


# --- on-net in the shared pool ------------------------------------------------------------------


def test_an_sms_leaves_from_a_line_of_the_recipients_operator(api):
    device(api, "mattel-1", lines=["+22238000001"])
    device(api, "mauritel-1", lines=["+22244000001"])
    to_mattel = [send(api, MATTEL_CUSTOMER) for _ in range(10)]
    to_mauritel = [send(api, MAURITEL_CUSTOMER) for _ in range(5)]
    assert sorted(on("mattel-1")) == sorted(to_mattel)
    assert sorted(on("mauritel-1")) == sorted(to_mauritel)
    assert shared() == []


def test_with_no_on_net_line_online_it_goes_to_the_shared_queue_at_once(api, manual_clock):
    device(api, "mattel-1", lines=["+22238000001"])
    device(api, "mauritel-1", lines=["+22244000001"])
    manual_clock.advance(settings().device_offline_seconds + 1)  # both offline now
    chinguitel = send(api, "22089336")  # no Chinguitel line at all
    mattel = send(api, MATTEL_CUSTOMER)
    assert sorted(shared()) == sorted([chinguitel, mattel])


def test_otps_keep_their_priority_on_a_device(api):
    device(api, "mattel-1")
    sent = api.post("/otp/send", {"phoneNumber": MATTEL_CUSTOMER}).json["messageId"]
    assert on("mattel-1", "otp") == [sent] and on("mattel-1") == []


def test_a_device_without_its_own_queue_is_never_routed_to(api):
    device(api, "old-bridge", beat=False)
    assert shared() == [] and [send(api)] == shared()


# --- the device and SIM the sender asks for -----------------------------------------------------


def test_device_id_and_sim_slot(api):
    device(api, "acme-phone", account="acme", lines=["+22238000001", "+22244000002"])
    message_id = send(api, MAURITEL_CUSTOMER, deviceId="acme-phone", simSlot=1)
    [body] = queued_bodies(routing.device_queue("acme-phone", "sms"))
    assert (body["messageId"], body["simSlot"]) == (message_id, 1)


def test_sendsms_maps_sidentifiant_and_port(api):
    device(api, "acme-phone", account="acme", lines=["+22238000001", "+22244000002"])
    response = api.call(
        "GET",
        f"/sendsms?apikey={api.key}&recipients=38089336&message=x&sIdentifiant=acme-phone&port=2",
        key=None,
    )
    assert response.status_code == 200, response.json
    [body] = queued_bodies(routing.device_queue("acme-phone", "sms"))
    assert body["simSlot"] == 2


def test_bulk_to_a_device(api):
    device(api, "acme-phone", account="acme")
    body = {
        "message": "x",
        "phoneNumbers": [MATTEL_CUSTOMER, MAURITEL_CUSTOMER],
        "deviceId": "acme-phone",
    }
    assert api.post("/messages/bulk", body).json["queued"] == 2
    assert len(on("acme-phone")) == 2


@pytest.mark.parametrize(
    "extra, status, field",
    [
        ({"deviceId": "ghost"}, 404, "deviceId"),
        ({"deviceId": "globex-phone"}, 404, "deviceId"),  # another tenant's
        ({"deviceId": "acme-old"}, 400, "deviceId"),  # its bridge takes no addressed SMS
        ({"deviceId": "acme-phone", "simSlot": 3}, 400, "simSlot"),
        ({"deviceId": "acme-phone", "simSlot": "one"}, 400, "simSlot"),
        ({"simSlot": 1}, 400, "simSlot"),
        ({"deviceId": 7}, 400, "deviceId"),
    ],
)
def test_bad_routes_are_refused_and_nothing_is_stored(api, extra, status, field):
    device(api, "acme-phone", account="acme", lines=["+22238000001", "+22244000002"])
    device(api, "globex-phone", account="globex")
    device(api, "acme-old", account="acme", beat=False)
    response = api.post("/messages/send", {"message": "x", "phoneNumber": MATTEL_CUSTOMER, **extra})
    assert response.status_code == status, response.json
    assert [e["field"] for e in response.json["errors"]] == [field]
    assert on("acme-phone") == [] and shared() == []


# --- dedicated devices -----------------------------------------------------------------------


def test_a_dedicated_account_is_served_only_by_its_devices(api, other_key):
    device(api, "acme-phone", account="acme", lines=["+22244000001"])  # a Mauritel line
    device(api, "pool-mattel", lines=["+22238000001"])
    acme = send(api, MATTEL_CUSTOMER)  # off-net, but on its own phone
    globex = send(api, MATTEL_CUSTOMER, key=other_key)
    assert on("acme-phone") == [acme] and on("pool-mattel") == [globex]
    # and the dedicated phone takes nothing from the shared pool
    answer = api.device_post(
        "/device/credentials", {}, auth.create_key("device", "acme-phone")[0]
    ).json
    assert set(answer["queues"]) == {"device-priority", "device-bulk"}


def test_a_dedicated_device_cannot_claim_a_shared_message(api, other_key):
    key = device(api, "acme-phone", account="acme")
    message_id = send(api, key=other_key)  # globex: shared pool
    token = {"status": "sending", "claim": _claim(message_id, settings().outbound_queue)}
    assert api.device_post(f"/device/messages/{message_id}/status", token, key).status_code == 404


def _claim(message_id, queue_name):
    from chalicelib import receipts

    return receipts.token(message_id, queue_name)


def test_offline_dedicated_devices_keep_the_accounts_sms_unless_fallback(api, manual_clock):
    device(api, "acme-phone", account="acme")
    manual_clock.advance(settings().device_offline_seconds + 1)
    waiting = send(api)
    assert on("acme-phone") == [waiting] and shared() == []
    Account("acme", shared_fallback=True).save()
    quotas.forget()
    routing.forget()
    fallback = send(api)
    assert shared() == [fallback]
