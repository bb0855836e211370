"""WhatsApp messages end to end through the handlers: POST /messages/send and /sendsms to a
local server that answers like the Cloud API, and Meta's signed webhook posts back."""

from __future__ import annotations

import json

import pytest

from chalicelib.config import settings
from chalicelib.models import Message, Webhook
from tests.conftest import queued_bodies

from .whatsapp_fake import VERIFY_TOKEN, message_event, signed, status_event, wamid

PHONE = "+22238089336"
TEMPLATE = {"name": "order_ready", "language": "fr", "parameters": ["Aïcha", "A-1042"]}


def meta_post(api, payload, headers=None):
    raw, signature = signed(payload)
    return api.call("POST", "/whatsapp/webhook", key=None, raw=raw, headers=headers or signature)


def subscribe(events):
    Webhook("acme", url="https://hooks.example.com/in", events=events, secret_salt="s").save()


def webhook_events():
    return queued_bodies(settings().webhook_queue)


def sms_queued():
    return queued_bodies(settings().outbound_queue)


def customer_writes(api, text="Bonjour", message_id="wamid.IN1", sender="22238089336"):
    answer = meta_post(api, message_event(sender, text, message_id))
    assert answer.status_code == 200, answer.json
    return answer


def send(api, body, **kw):
    return api.post("/messages/send", {"phoneNumber": PHONE, "channel": "whatsapp", **body}, **kw)


# --- sending ------------------------------------------------------------------------------


def test_a_template_goes_outside_the_window(api, provider):
    answer = send(api, {"template": TEMPLATE})
    assert answer.status_code == 200, answer.json
    assert answer.json["channel"] == "whatsapp" and answer.json["status"] == "sent"
    [request] = provider.requests
    body = request["body"]
    assert body["to"] == "22238089336" and body["type"] == "template"
    assert body["biz_opaque_callback_data"] == answer.json["messageId"]
    assert body["template"] == {
        "name": "order_ready",
        "language": {"code": "fr"},
        "components": [
            {
                "type": "body",
                "parameters": [
                    {"type": "text", "text": "Aïcha"},
                    {"type": "text", "text": "A-1042"},
                ],
            }
        ],
    }
    stored = api.get(f"/messages/{answer.json['messageId']}").json
    assert stored["channel"] == "whatsapp" and stored["status"] == "sent"
    assert "order_ready" in stored["message"]
    assert sms_queued() == []


def test_free_text_outside_the_window_is_refused_and_nothing_is_sent(api, provider):
    answer = send(api, {"message": "Votre commande est prête"})
    assert answer.status_code == 400
    assert answer.json["errors"][0]["field"] == "template"
    assert "24 hours" in answer.json["errors"][0]["message"]
    assert provider.requests == [] and list(Message.scan()) == []


def test_the_customers_message_opens_the_window_for_free_text(api, provider):
    send(api, {"template": TEMPLATE})
    customer_writes(api, "Merci, j'arrive")
    answer = send(api, {"message": "À tout de suite"})
    assert answer.status_code == 200, answer.json
    body = provider.requests[-1]["body"]
    assert body["type"] == "text" and body["text"]["body"] == "À tout de suite"


def test_a_media_goes_with_its_caption(api, provider):
    send(api, {"template": TEMPLATE})
    customer_writes(api)
    answer = send(api, {"mediaUrl": "https://cdn.example.com/recu.PNG", "message": "Reçu"})
    assert answer.status_code == 200, answer.json
    body = provider.requests[-1]["body"]
    assert body["type"] == "image"
    assert body["image"] == {"link": "https://cdn.example.com/recu.PNG", "caption": "Reçu"}
    document = send(api, {"mediaUrl": "https://cdn.example.com/facture.pdf"})
    assert document.status_code == 200
    assert provider.requests[-1]["body"]["document"] == {
        "link": "https://cdn.example.com/facture.pdf"
    }


@pytest.mark.parametrize(
    "body, field",
    [
        ({"template": {"name": "Order Ready"}}, "template.name"),
        ({"template": {"name": "ok", "language": "français"}}, "template.language"),
        ({"template": {"name": "ok", "parameters": "Aïcha"}}, "template.parameters"),
        ({"template": {"name": "ok", "parameters": [""]}}, "template.parameters"),
        ({"template": {"name": "ok", "header": "x"}}, "template"),
        ({"template": "order_ready"}, "template"),
        ({"mediaUrl": "http://cdn.example.com/a.jpg"}, "mediaUrl"),
        ({"mediaUrl": "https://cdn.example.com/a.mp3", "message": "caption"}, "message"),
        ({"template": TEMPLATE, "mediaUrl": "https://cdn.example.com/a.jpg"}, "mediaUrl"),
        ({}, "message"),
        ({"template": TEMPLATE, "fallback": "sms"}, "message"),
        ({"template": TEMPLATE, "fallback": "email", "message": "x"}, "fallback"),
        ({"template": TEMPLATE, "sendAt": "2099-01-01T00:00:00Z"}, "sendAt"),
        ({"template": TEMPLATE, "phoneNumber": "12"}, "phoneNumber"),
    ],
)
def test_bad_input_is_a_400_and_nothing_is_sent(api, provider, body, field):
    answer = send(api, body)
    assert answer.status_code in (400, 404), answer.json
    assert field in [error["field"] for error in answer.json["errors"]], answer.json
    assert provider.requests == [] and list(Message.scan()) == []


@pytest.mark.parametrize("field", ["template", "mediaUrl", "fallback"])
def test_whatsapp_fields_are_refused_on_an_sms(api, field):
    value = {"template": TEMPLATE, "mediaUrl": "https://cdn.example.com/a.jpg", "fallback": "sms"}
    answer = api.post("/messages/send", {"phoneNumber": PHONE, "message": "x", field: value[field]})
    assert answer.status_code == 400
    assert answer.json["errors"] == [{"field": field, "message": 'only with channel "whatsapp"'}]


def test_an_unknown_template_is_a_400_that_names_it_and_the_message_failed(api, provider):
    provider.mode = "no_template"
    answer = send(api, {"template": {"name": "promo"}})
    assert answer.status_code == 400
    assert answer.json["errors"][0]["field"] == "template"
    assert "does not exist" in answer.json["errors"][0]["message"]
    stored = api.get(f"/messages/{answer.json['messageId']}").json
    assert stored["status"] == "failed" and "132001" in stored["statusReason"]
    assert sms_queued() == []


@pytest.mark.parametrize("mode", ["no_template", "500", "slow"])
def test_fallback_sends_an_sms_under_the_same_id_when_whatsapp_cannot_take_it(api, provider, mode):
    provider.mode = mode
    answer = send(api, {"template": {"name": "promo"}, "fallback": "sms", "message": "Promo -20%"})
    assert answer.status_code == 200, answer.json
    assert answer.json["channel"] == "sms" and answer.json["status"] == "queued"
    [queued] = sms_queued()
    assert queued["messageId"] == answer.json["messageId"] and queued["text"] == "Promo -20%"
    stored = api.get(f"/messages/{answer.json['messageId']}").json
    assert stored["channel"] == "sms" and stored["status"] == "queued"
    assert stored["fallbackReason"].startswith("WhatsApp provider")


def test_outside_the_window_a_fallback_goes_as_sms_without_calling_whatsapp(api, provider):
    answer = send(api, {"message": "Votre code client: 88", "fallback": "sms"})
    assert answer.status_code == 200 and answer.json["channel"] == "sms"
    assert provider.requests == []
    [queued] = sms_queued()
    assert queued["text"] == "Votre code client: 88"


def test_provider_trouble_without_fallback_is_a_502_and_the_message_failed(api, provider):
    provider.mode = "500"
    answer = send(api, {"template": TEMPLATE})
    assert answer.status_code == 502
    stored = api.get(f"/messages/{answer.json['messageId']}").json
    assert stored["status"] == "failed"


def test_opted_out_numbers_are_refused_on_whatsapp_too(api, provider):
    api.call("PUT", f"/contacts/opted-out/{PHONE}")
    answer = send(api, {"template": TEMPLATE})
    assert answer.status_code == 400 and provider.requests == []


def test_not_configured_is_a_400_naming_the_channel(api, monkeypatch):
    monkeypatch.delenv("SMSGW_WHATSAPP_TOKEN", raising=False)
    settings.cache_clear()
    answer = send(api, {"template": TEMPLATE})
    assert answer.status_code == 400 and answer.json["errors"][0]["field"] == "channel"


# --- Meta's webhook -----------------------------------------------------------------------


def test_the_handshake_answers_the_challenge_as_text(api, provider):
    query = f"hub.mode=subscribe&hub.verify_token={VERIFY_TOKEN}&hub.challenge=1158201444"
    answer = api.get(f"/whatsapp/webhook?{query}", key=None)
    assert answer.status_code == 200
    assert answer.body == b"1158201444"
    assert answer.headers["Content-Type"].startswith("text/plain")


@pytest.mark.parametrize(
    "query",
    [
        "hub.mode=subscribe&hub.verify_token=guess&hub.challenge=1",
        "hub.mode=unsubscribe&hub.verify_token=" + VERIFY_TOKEN + "&hub.challenge=1",
        "hub.challenge=1",
    ],
)
def test_a_wrong_handshake_is_refused(api, provider, query):
    answer = api.get(f"/whatsapp/webhook?{query}", key=None)
    assert answer.status_code == 403 and answer.json["success"] is False


def test_a_challenge_is_never_echoed_as_markup(api, provider):
    query = f"hub.mode=subscribe&hub.verify_token={VERIFY_TOKEN}&hub.challenge=<script>"
    answer = api.get(f"/whatsapp/webhook?{query}", key=None)
    assert answer.status_code == 400 and b"<script>" not in answer.body


@pytest.mark.parametrize("signature", [None, "sha256=" + "0" * 64, "deadbeef"])
def test_unsigned_or_badly_signed_posts_are_refused_and_change_nothing(api, provider, signature):
    sent = send(api, {"template": TEMPLATE}).json["messageId"]
    raw = json.dumps(status_event(sent, "read"))
    headers = {"X-Hub-Signature-256": signature} if signature else {"X-Other": "1"}
    answer = api.call("POST", "/whatsapp/webhook", key=None, raw=raw, headers=headers)
    assert answer.status_code == 401
    assert api.get(f"/messages/{sent}").json["status"] == "sent"


def test_a_post_signed_with_another_secret_is_refused(api, provider):
    raw, headers = signed(message_event(), secret="not-the-app-secret")
    answer = api.call("POST", "/whatsapp/webhook", key=None, raw=raw, headers=headers)
    assert answer.status_code == 401
    assert list(Message.scan()) == []


def test_statuses_move_the_message_and_reach_the_customers_webhook_once(api, provider):
    subscribe(["sms.delivered", "sms.read"])
    sent = send(api, {"template": TEMPLATE}).json["messageId"]
    for status in ("sent", "delivered", "read", "read", "delivered"):
        assert meta_post(api, status_event(sent, status)).status_code == 200
    stored = api.get(f"/messages/{sent}").json
    assert stored["status"] == "read" and stored["deliveredAt"]
    events = webhook_events()
    assert [e["type"] for e in events] == ["sms.delivered", "sms.read"]
    assert events[1]["payload"]["channel"] == "whatsapp"


def test_a_status_of_another_wamid_changes_nothing(api, provider):
    sent = send(api, {"template": TEMPLATE}).json["messageId"]
    meta_post(api, status_event(sent, "failed", provider_id="wamid.SOMEONE-ELSE"))
    assert api.get(f"/messages/{sent}").json["status"] == "sent"


def test_a_failed_status_fails_the_message_with_metas_reason(api, provider):
    sent = send(api, {"template": TEMPLATE}).json["messageId"]
    errors = [
        {
            "code": 131026,
            "title": "Message undeliverable",
            "error_data": {"details": "not on WhatsApp"},
        }
    ]
    meta_post(api, status_event(sent, "failed", errors=errors))
    stored = api.get(f"/messages/{sent}").json
    assert stored["status"] == "failed"
    assert stored["statusReason"] == "WhatsApp: Message undeliverable not on WhatsApp (code 131026)"


def test_a_failed_status_with_fallback_sends_the_sms_once(api, provider):
    body = {"template": TEMPLATE, "fallback": "sms", "message": "Votre commande A-1042 est prête"}
    sent = send(api, body).json["messageId"]
    failed = status_event(
        sent, "failed", errors=[{"code": 131047, "title": "Re-engagement message"}]
    )
    meta_post(api, failed)
    meta_post(api, failed)  # Meta posts again: still one SMS
    [queued] = sms_queued()
    assert queued["messageId"] == sent and queued["text"] == body["message"]
    stored = api.get(f"/messages/{sent}").json
    assert stored["channel"] == "sms" and stored["status"] == "queued"
    assert "131047" in stored["fallbackReason"]
    meta_post(api, status_event(sent, "delivered"))  # late news of the WhatsApp copy
    assert api.get(f"/messages/{sent}").json["status"] == "queued"


def test_an_inbound_message_joins_the_log_of_the_account_that_wrote_last(api, provider, other_key):
    subscribe(["sms.received"])
    send(api, {"template": TEMPLATE})
    customer_writes(api, "Bonjour, c'est pour la commande")
    [inbound] = [m for m in api.get("/messages").json["messages"] if m["direction"] == "inbound"]
    assert inbound["channel"] == "whatsapp" and inbound["phoneNumber"] == PHONE
    assert inbound["message"] == "Bonjour, c'est pour la commande"
    [event] = webhook_events()
    assert event["type"] == "sms.received" and event["payload"]["channel"] == "whatsapp"
    assert event["payload"]["number"] == PHONE
    others = api.get("/messages", key=other_key).json["messages"]
    assert others == [], "another account sees nothing of it"
    other = send(api, {"message": "Salut"}, key=other_key)
    assert other.status_code == 400, "the window is the first account's only"


def test_the_same_inbound_posted_twice_is_stored_once(api, provider):
    send(api, {"template": TEMPLATE})
    customer_writes(api, message_id="wamid.SAME")
    second = customer_writes(api, message_id="wamid.SAME")
    assert second.json["messages"] == 0
    assert len([m for m in Message.scan() if m.direction == "inbound"]) == 1


def test_a_stranger_is_nobodys_customer(api, provider):
    customer_writes(api, "Qui êtes-vous ?", sender="22249000000")
    [stored] = list(Message.scan())
    assert stored.account_id == "unassigned"
    assert api.get("/messages").json["messages"] == []


def test_a_stop_on_whatsapp_opts_out(api, provider):
    send(api, {"template": TEMPLATE})
    customer_writes(api, "STOP")
    assert PHONE in api.get("/contacts/opted-out").json["phoneNumbers"]


def test_one_bad_item_does_not_stop_the_others(api, provider):
    sent = send(api, {"template": TEMPLATE}).json["messageId"]
    payload = status_event(sent, "delivered")
    value = payload["entry"][0]["changes"][0]["value"]
    value["statuses"].insert(
        0, {"id": "x", "status": "delivered", "biz_opaque_callback_data": "../x"}
    )
    value["messages"] = [{"from": "not-a-number", "id": "wamid.BAD", "type": "text"}]
    answer = meta_post(api, payload)
    assert answer.status_code == 200 and answer.json["statuses"] == 1
    assert api.get(f"/messages/{sent}").json["status"] == "delivered"


# --- /sendsms ------------------------------------------------------------------------------


def sendsms(api, **params):
    """A form POST, as their PHP examples make it."""
    from urllib.parse import urlencode

    form = urlencode({"apikey": api.key, **params})
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    return api.call("POST", "/sendsms", key=None, raw=form, headers=headers)


def test_sendwa_sends_a_whatsapp_message_next_to_the_sms(api, provider):
    send(api, {"template": TEMPLATE})
    customer_writes(api)
    answer = sendsms(api, recipients="38089336", message="Salam", sendwa="1")
    body = answer.json
    assert answer.status_code == 200, body
    assert body["result"]["error"] == 0 and body["result"]["sent"] == "2"
    assert body["result"]["send_with_whatsapp"] == "1"
    channels = sorted(m.get("channel", "sms") for m in body["messages"])
    assert channels == ["sms", "whatsapp"]
    assert provider.requests[-1]["body"]["text"]["body"] == "Salam"
    assert len(sms_queued()) == 1


def test_waonly_sends_no_sms_and_url_media_rides_along(api, provider):
    send(api, {"template": TEMPLATE})
    customer_writes(api)
    answer = sendsms(
        api,
        recipients="38089336",
        message="Facture",
        waonly="yes",
        url_media="https://cdn.example.com/facture.pdf",
    )
    body = answer.json
    assert answer.status_code == 200, body
    assert body["result"]["sent"] == "1" and sms_queued() == []
    assert provider.requests[-1]["body"]["document"]["link"].endswith("facture.pdf")


def test_waonly_outside_the_window_says_why_in_their_result(api, provider):
    answer = sendsms(api, recipients="38089336", message="Salam", sendwa="1", sendsms="0")
    body = answer.json
    assert answer.status_code == 400
    assert body["result"]["sent"] == "0" and "24 hours" in body["result"]["error"] + json.dumps(
        body["errors"]
    )
    assert provider.requests == [] and sms_queued() == []


def test_wamid_numbers_are_distinct():
    assert wamid(1) != wamid(2)
