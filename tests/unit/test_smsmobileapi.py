"""SMSMobileAPI compatibility: their result object, their read routes, and their options
refused rather than ignored."""

import time
from urllib.parse import urlencode

import pytest

from chalicelib import smsmobileapi
from chalicelib.models import Message

FORM = {"Content-Type": "application/x-www-form-urlencoded"}
CUSTOMER = "+22238089336"


def sendsms(api, key=None, method="GET", **params):
    params = {"apikey": key or api.key, "recipients": "38089336", "message": "Bonjour", **params}
    if method == "GET":
        return api.call("GET", "/sendsms?" + urlencode(params), key=None)
    return api.call("POST", "/sendsms/", key=None, raw=urlencode(params), headers=FORM)


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_one_recipient_gets_the_result_object(api, method):
    answer = sendsms(api, method=method)
    assert answer.status_code == 200 and answer.json["success"] is True
    result = answer.json["result"]
    assert result["error"] == 0 and result["sent"] == "1"
    assert result["id"] == answer.json["messages"][0]["messageId"]
    assert result["datetime"].endswith("Z") and result["send_with_whatsapp"] == "0"


def test_several_recipients_list_their_ids_in_order_and_the_bad_ones_in_the_note(api):
    answer = sendsms(api, recipients="38089336,48089336,12")
    result = answer.json["result"]
    assert result["error"] == 0 and result["sent"] == "2"
    assert result["id"].split(",") == [m["messageId"] for m in answer.json["messages"]]
    assert "recipients[2]" in result["note"]


def test_a_json_post_gets_the_result_object_too(api):
    answer = api.post("/sendsms", {"recipients": "38089336", "message": "Bonjour"})
    assert answer.status_code == 200 and answer.json["result"]["sent"] == "1"


def test_an_error_carries_the_result_object_with_the_reason(api):
    answer = sendsms(api, recipients="12,34")
    assert answer.status_code == 400 and answer.json["success"] is False
    assert answer.json["result"]["sent"] == "0"
    assert answer.json["result"]["error"] == answer.json["message"]


def test_wrong_keys_keep_the_seeds_bodies(api):
    answer = sendsms(api, key="cq_live_" + "x" * 40)
    assert answer.status_code == 403
    assert answer.json == {"success": False, "message": "Invalid API key"}


@pytest.mark.parametrize(
    "options, field",
    [
        ({"sendwa": "1", "sendsms": "0"}, "sendwa"),
        ({"waonly": "yes"}, "waonly"),
        ({"sendwa": "1"}, "sendwa"),
        ({"sendwa": "0", "sendsms": "0"}, "sendsms"),
        ({"sendwa": "2"}, "sendwa"),
        ({"waonly": "oui"}, "waonly"),
        ({"url_media": "https://example.com/a.jpg"}, "url_media"),
        ({"shorturl": "1"}, "shorturl"),
        ({"schedule_timestamp": str(int(time.time()) + 36 * 86400)}, "schedule_timestamp"),
        ({"schedule_timestamp": "demain"}, "schedule_timestamp"),
    ],
)
def test_options_that_cannot_be_honoured_are_refused_and_nothing_is_sent(api, options, field):
    answer = sendsms(api, **options)
    assert answer.status_code == 400, answer.json
    assert field in [error["field"] for error in answer.json["errors"]]
    assert answer.json["result"]["sent"] == "0"
    assert not list(Message.scan()), "nothing stored, nothing queued"


def test_their_default_options_and_a_past_schedule_send_now(api):
    past = str(int(time.time()) - 60)
    answer = sendsms(api, sendwa="0", sendsms="1", schedule_timestamp=past, shorturl="0")
    assert answer.status_code == 200 and answer.json["result"]["sent"] == "1"
    assert sendsms(api, **{"from": "python"}).status_code == 200


def inbound(api, device_key, ref, text="Salut"):
    body = {"from": CUSTOMER, "text": text, "deviceRef": ref}
    response = api.device_post("/device/inbound", body, device_key)
    assert response.status_code == 200, response.json
    return response.json["messageId"]


def test_getsms_lists_received_sms_in_their_fields(api, device_key, other_key):
    first = inbound(api, device_key, "r1", "Premier")
    second = inbound(api, device_key, "r2", "Deuxième")
    answer = api.get(f"/getsms/?apikey={api.key}", key=None)
    assert answer.status_code == 200 and answer.json["result"]["error"] == ""
    sms = answer.json["result"]["sms"]
    assert [s["guid"] for s in sms] == [second, first]
    assert sms[0]["message"] == "Deuxième" and sms[0]["number"] == CUSTOMER
    assert sms[0]["sIdentifiantPhone"] == "phone-1" and isinstance(sms[0]["timestamp_unix"], int)
    assert sms[0]["id"] == smsmobileapi.number_id(second) < 2**53
    other = api.get(f"/getsms?apikey={other_key}", key=None).json["result"]["sms"]
    assert other == [], "another account sees none of them"


def test_getsms_filters_unread_time_and_device(api, device_key):
    read, unread = inbound(api, device_key, "r1"), inbound(api, device_key, "r2")
    api.post(f"/messages/{read}/read")
    only_unread = api.get("/getsms?onlyunread=yes").json["result"]["sms"]
    assert [s["guid"] for s in only_unread] == [unread]
    later = int(time.time()) + 10
    assert api.get(f"/getsms?after_timestamp_unix={later}").json["result"]["sms"] == []
    assert api.get("/getsms?sIdentifiantPhone=phone-9").json["result"]["sms"] == []
    assert len(api.get("/getsms?sIdentifiantPhone=phone-1").json["result"]["sms"]) == 2
    assert api.get("/getsms?onlyunread=yes").json["result"]["sms"], "reading marks nothing read"


@pytest.mark.parametrize(
    "query, field",
    [("after_timestamp_unix=hier", "after_timestamp_unix"), ("onlyunread=1", "onlyunread")],
)
def test_getsms_refuses_odd_parameters(api, query, field):
    answer = api.get(f"/getsms?{query}")
    assert answer.status_code == 400 and answer.json["errors"][0]["field"] == field
    assert answer.json["result"]["error"]


def test_the_sent_log_finds_by_guid_keyword_and_error_kind(api, device_key):
    ids = [m["messageId"] for m in sendsms(api, recipients="38089336,48089336").json["messages"]]
    api.device_post(f"/device/messages/{ids[1]}/status", {"status": "failed"}, device_key)
    sendsms(api, message="Code promo NOEL")
    log = api.get("/log/sent/sms/").json["result"]["sms"]
    assert len(log) == 3 and log[0]["message"] == "Code promo NOEL"
    by_guid = api.get(f"/log/sent/sms?guid_message={ids[0]}").json["result"]["sms"]
    assert [row["guid"] for row in by_guid] == [ids[0]] and by_guid[0]["status"] == "queued"
    assert len(api.get("/log/sent/sms?keyword=NOEL").json["result"]["sms"]) == 1
    failed = api.get("/log/sent/sms?error_mobile=1").json["result"]["sms"]
    assert [row["guid"] for row in failed] == [ids[1]] and failed[0]["error_mobile"] == 1
    assert len(api.get("/log/sent/sms?error_mobile=0").json["result"]["sms"]) == 2
    assert api.get("/log/sent/sms?error_api=1").json["result"]["sms"] == []


def test_the_sent_log_does_not_show_another_accounts_message(api, other_key):
    theirs = sendsms(api, key=other_key).json["messages"][0]["messageId"]
    answer = api.get(f"/log/sent/sms?guid_message={theirs}")
    assert answer.status_code == 404 and answer.json["result"]["sent"] == "0"


def test_the_mobile_list_shows_the_accounts_devices(api, device_key, other_key):
    mobiles = api.get("/gateway/mobile/list/").json["result"]["mobiles"]
    assert [m["sid"] for m in mobiles] == ["phone-1"] and mobiles[0]["online"] in (0, 1)
    assert api.get("/gateway/mobile/list?search=TEST").json["result"]["mobiles"], "by name"
    assert api.get("/gateway/mobile/list?sid=phone-2").json["result"]["mobiles"] == []
    theirs = api.get(f"/gateway/mobile/list?apikey={other_key}", key=None)
    assert theirs.json["result"]["mobiles"] == []


@pytest.mark.parametrize(
    "path, what",
    [("/sendemail/", "e-mail"), ("/getemail", "e-mail"), ("/getwa/", "WhatsApp")],
)  # one segment: chalice's local router cannot match {proxy+} on more (API Gateway does)
def test_their_routes_for_what_the_gateway_does_not_do_say_so(api, path, what):
    answer = api.get(path)
    assert answer.status_code == 404 and what in answer.json["message"]
    assert api.get("/nothing").json["message"] == "Route not found"
