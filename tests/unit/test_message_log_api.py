"""GET /messages (the log), inbound ownership, read marks, resend and delete."""

import base64
from datetime import timedelta

import pytest

from chalicelib import models
from chalicelib.clock import now as utcnow
from chalicelib.messages import listing as message_log
from chalicelib.models import Message

PHONE = "+22238089336"


def send(api, text="x", phone=PHONE, key="default"):
    return api.post("/messages/send", {"message": text, "phoneNumber": phone}, key=key).json[
        "messageId"
    ]


def receive(api, device_key, sender, text, ref):
    return api.device_post(
        "/device/inbound", {"from": sender, "text": text, "deviceRef": ref}, device_key
    ).json["messageId"]


def ids(response):
    return [m["messageId"] for m in response.json["messages"]]


def test_log_is_newest_first_and_only_the_callers(api, other_key):
    mine = [send(api, f"m{i}") for i in range(3)]
    send(api, key=other_key)
    response = api.get("/messages")
    assert response.status_code == 200
    assert ids(response) == mine[::-1]
    assert response.json["nextCursor"] is None


def test_cursor_pages_through_everything(api):
    sent = [send(api, f"m{i}") for i in range(5)]
    seen, cursor = [], None
    for _ in range(5):
        response = api.get("/messages?limit=2" + (f"&cursor={cursor}" if cursor else ""))
        seen += ids(response)
        cursor = response.json["nextCursor"]
        if not cursor:
            break
    assert seen == sent[::-1]


def test_filters(api, device_key):
    first = send(api, phone="+22248089336")
    second = send(api)
    inbound = receive(api, device_key, "38089336", "Oui", "r1")
    Message.get(first).update(actions=[Message.status.set("failed")])
    assert ids(api.get("/messages?direction=outbound")) == [second, first]
    assert ids(api.get("/messages?direction=inbound")) == [inbound]
    assert ids(api.get("/messages?status=failed")) == [first]
    assert ids(api.get("/messages?phoneNumber=48089336")) == [first]
    assert ids(api.get("/messages?unread=true")) == [inbound]
    future = (utcnow() + timedelta(hours=1)).isoformat().replace("+00:00", "Z")
    assert ids(api.get(f"/messages?from={future}")) == []


def test_read_marks(api, device_key):
    inbound = receive(api, device_key, PHONE, "Oui", "r1")
    response = api.post(f"/messages/{inbound}/read")
    assert response.status_code == 200 and response.json["read"] is True
    assert ids(api.get("/messages?unread=true")) == []
    assert ids(api.get("/messages?unread=false")) == [inbound]
    outbound = send(api)
    assert api.post(f"/messages/{outbound}/read").status_code == 400


@pytest.mark.parametrize(
    "query, field",
    [
        ("limit=0", "limit"),
        ("limit=101", "limit"),
        ("limit=ten", "limit"),
        ("direction=sideways", "direction"),
        ("status=lost", "status"),
        ("from=yesterday", "from"),
        ("from=2025-02-01&to=2025-01-01", "from"),
        ("unread=maybe", "unread"),
        ("direction=outbound&unread=true", "unread"),
        ("cursor=garbage", "cursor"),
    ],
)
def test_listing_validation(api, query, field):
    response = api.get(f"/messages?{query}")
    assert response.status_code == 400
    assert response.json["errors"][0]["field"] == field


def test_tampered_or_foreign_cursor_is_400(api, other_key):
    for i in range(3):
        send(api, f"m{i}")
    cursor = api.get("/messages?limit=1").json["nextCursor"]
    raw = bytearray(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    raw[-3] ^= 1
    tampered = base64.urlsafe_b64encode(bytes(raw)).decode().rstrip("=")
    assert api.get(f"/messages?cursor={tampered}").status_code == 400
    assert api.get(f"/messages?cursor={cursor}", key=other_key).status_code == 400


def test_one_query_per_page(api):
    send(api)
    calls = []

    def count_log_queries(params, **_):
        if params.get("IndexName") == Message.by_account.Meta.index_name:
            calls.append(1)

    events = models.connection().client.meta.events  # the client every model shares
    events.register("before-parameter-build.dynamodb.Query", count_log_queries)
    try:
        api.get("/messages?status=sent")
    finally:
        events.unregister("before-parameter-build.dynamodb.Query", count_log_queries)
    assert calls == [1]
    assert message_log.MAX_LIMIT == 100


def test_inbound_on_a_dedicated_line_belongs_to_its_account(api, other_key, device_key):
    # device_key: phone-1, dedicated to acme; globex's SMS left it before it was dedicated
    message_id = send(api, key=other_key)
    path = f"/device/messages/{message_id}/status"
    assert api.device_post(path, {"status": "sent"}, device_key).status_code == 200
    reply = receive(api, device_key, PHONE, "Merci", "r1")
    assert ids(api.get("/messages?direction=inbound")) == [reply]
    assert ids(api.get("/messages?direction=inbound", key=other_key)) == []


def test_resend_only_failed_or_expired(api, other_key):
    message_id = send(api, "Bonjour")
    response = api.post(f"/messages/{message_id}/resend")
    assert response.status_code == 400 and "queued" in response.json["message"]
    Message.get(message_id).update(
        actions=[Message.status.set("failed"), Message.status_reason.set("x")]
    )
    assert api.post(f"/messages/{message_id}/resend", key=other_key).status_code == 404
    resent = api.post(f"/messages/{message_id}/resend")
    assert resent.status_code == 200
    assert resent.json["status"] == "queued" and resent.json["statusReason"] is None
    from chalicelib.config import settings
    from tests.conftest import queued_bodies

    assert [b["messageId"] for b in queued_bodies(settings().outbound_queue)] == [
        message_id,
        message_id,
    ]


def test_otp_is_not_resendable(api):
    message_id = api.post("/otp/send", {"phoneNumber": PHONE}).json["messageId"]
    Message.get(message_id).update(actions=[Message.status.set("expired")])
    response = api.post(f"/messages/{message_id}/resend")
    assert response.status_code == 400 and "OTP" in response.json["message"]


def test_delete_removes_from_log_only_for_owner(api, other_key):
    message_id = send(api)
    assert api.call("DELETE", f"/messages/{message_id}", key=other_key).status_code == 404
    response = api.call("DELETE", f"/messages/{message_id}")
    assert response.status_code == 200 and response.json["deleted"] is True
    assert api.get(f"/messages/{message_id}").status_code == 404
    assert ids(api.get("/messages")) == []
    assert api.call("DELETE", f"/messages/{message_id}").status_code == 404
