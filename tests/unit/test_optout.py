"""Opt-out: a STOP (in French, Arabic or English) ends an account's SMS to that number."""

from urllib.parse import quote

import pytest

from chalicelib import optout
from chalicelib.config import settings
from tests.conftest import queued_bodies

CUSTOMER = "+22238089336"


def reply(api, device_key, text, ref, sender=CUSTOMER):
    body = {"from": sender, "text": text, "deviceRef": ref}
    response = api.device_post("/device/inbound", body, device_key)
    assert response.status_code == 200, response.json
    return response.json["messageId"]


def own_reply(api, device_key, text, ref="r1"):
    """A reply on acme's dedicated phone: it belongs to acme."""
    return reply(api, device_key, text, ref)


def send(api, to=CUSTOMER):
    return api.post("/messages/send", {"message": "Promo", "phoneNumber": to})


@pytest.mark.parametrize(
    "keyword", ["STOP", "stop", "Stop.", "ARRÊT", "arret", "Désabonner", "توقف", "إيقاف", "ايقاف"]
)
def test_a_stop_keyword_ends_the_accounts_sms_to_that_number(api, device_key, keyword):
    own_reply(api, device_key, keyword)
    refused = send(api)
    assert refused.status_code == 400 and refused.json["success"] is False
    assert refused.json["errors"][0]["field"] == "phoneNumber"
    assert "opted out" in refused.json["message"]
    assert send(api, "48089336").status_code == 200, "other numbers still get SMS"


@pytest.mark.parametrize("keyword", ["START", "Démarrer", "ابدأ"])
def test_a_start_keyword_opts_back_in(api, device_key, keyword):
    own_reply(api, device_key, "STOP", "r1")
    own_reply(api, device_key, keyword, "r2")
    assert send(api).status_code == 200


def test_a_message_that_only_contains_a_keyword_changes_nothing(api, device_key):
    own_reply(api, device_key, "Please don't stop sending")
    assert send(api).status_code == 200


def test_otps_still_go_to_an_opted_out_number(api, device_key):
    own_reply(api, device_key, "STOP")
    assert api.post("/otp/send", {"phoneNumber": CUSTOMER}).status_code == 200


def test_bulk_and_sendsms_leave_the_opted_out_number_out(api, device_key):
    own_reply(api, device_key, "STOP")
    bulk = api.post("/messages/bulk", {"message": "x", "phoneNumbers": [CUSTOMER, "48089336"]})
    assert bulk.status_code == 200 and bulk.json["queued"] == 1
    assert "opted out" in bulk.json["errors"][0]["message"]
    compat = api.get(f"/sendsms?apikey={api.key}&recipients=38089336&message=x", key=None)
    assert compat.status_code == 400 and compat.json["result"]["sent"] == "0"


def test_the_list_is_the_accounts_own_and_editable(api, device_key, other_key):
    own_reply(api, device_key, "STOP")
    assert api.get("/contacts/opted-out").json["phoneNumbers"] == [CUSTOMER]
    theirs = api.get("/contacts/opted-out", key=other_key).json["phoneNumbers"]
    assert theirs == [], "another account's list is its own"
    assert (
        api.post(
            "/messages/send", {"message": "x", "phoneNumber": CUSTOMER}, key=other_key
        ).status_code
        == 200
    ), "a STOP to acme does not silence globex"

    removed = api.call("DELETE", "/contacts/opted-out/" + quote(CUSTOMER))
    assert removed.status_code == 200 and removed.json["optedOut"] is False
    assert send(api).status_code == 200
    added = api.call("PUT", "/contacts/opted-out/48089336")
    assert added.json == {"success": True, "phoneNumber": "+22248089336", "optedOut": True}
    assert send(api, "48089336").status_code == 400
    bad = api.call("PUT", "/contacts/opted-out/bonjour")
    assert bad.status_code == 400 and bad.json["errors"][0]["field"] == "phoneNumber"


def test_a_failed_sms_to_a_number_that_opted_out_since_is_not_resent(api, device_key):
    message_id = send(api).json["messageId"]
    api.device_post(f"/device/messages/{message_id}/status", {"status": "failed"}, device_key)
    own_reply(api, device_key, "STOP")
    refused = api.post(f"/messages/{message_id}/resend")
    assert refused.status_code == 400 and "opted out" in refused.json["message"]


def test_each_change_is_a_webhook_event(api, device_key, public_dns):
    events = ["sms.received", "contact.opted_out", "contact.opted_in"]
    put = api.call("PUT", "/webhook", {"url": "https://hooks.example.com/in", "events": events})
    assert put.status_code == 200, put.json
    stop = own_reply(api, device_key, "STOP", "r1")
    own_reply(api, device_key, "STOP", "r2")  # already out: no second event
    api.call("DELETE", "/contacts/opted-out/" + quote(CUSTOMER))
    queued = [b for b in queued_bodies(settings().webhook_queue) if b["type"].startswith("contact")]
    assert [b["type"] for b in queued] == ["contact.opted_out", "contact.opted_in"]
    first, second = (b["payload"] for b in queued)
    assert first["phoneNumber"] == CUSTOMER and first["source"] == "sms"
    assert first["messageId"] == stop and second["source"] == "api"


def test_keywords_ignore_case_accents_and_harakat():
    assert optout.keyword_of(" ARRÊT ! ") == "out"
    assert optout.keyword_of("تَوَقَّفْ") == "out"
    assert optout.keyword_of("أبدأ") == optout.keyword_of("ابدأ") == "in"  # hamza or not
    assert optout.keyword_of("stopper") is None


def test_an_accounts_own_keywords_and_confirmations(api, device_key):
    answer = api.call(
        "PUT",
        "/contacts/opt-out",
        {
            "stopKeywords": ["Halte"],
            "startKeywords": ["Reprendre"],
            "stopReply": "Vous ne recevrez plus nos SMS. Envoyez START pour revenir.",
            "startReply": None,
        },
    )
    assert answer.status_code == 200 and answer.json["stopKeywords"] == ["Halte"]
    assert "STOP" in answer.json["defaultStopKeywords"], "the defaults always count"
    assert api.get("/contacts/opt-out").json["stopReply"].startswith("Vous ne recevrez")

    own_reply(api, device_key, "halte", "r1")
    assert send(api).status_code == 400
    confirmations = [
        b for b in queued_bodies(settings().outbound_queue) if b["text"].startswith("Vous ne")
    ]
    assert len(confirmations) == 1 and confirmations[0]["to"] == CUSTOMER
    own_reply(api, device_key, "REPRENDRE", "r2")
    assert send(api).status_code == 200


@pytest.mark.parametrize(
    "body, field",
    [
        ({"stopKeywords": "STOP"}, "stopKeywords"),
        ({"stopKeywords": ["x" * 21]}, "stopKeywords"),
        ({"startKeywords": ["stop"]}, "startKeywords"),
        ({"stopKeywords": ["start"]}, "startKeywords"),
        ({"stopReply": ""}, "stopReply"),
        ({"startReply": "x" * 321}, "startReply"),
    ],
)
def test_opt_out_settings_refuse_what_cannot_work(api, body, field):
    answer = api.call("PUT", "/contacts/opt-out", body)
    assert answer.status_code == 400 and field in [e["field"] for e in answer.json["errors"]]
