"""Inputs a caller can get wrong or forge: each is a 4xx in the contract's format, never a 500."""

import json
from datetime import timedelta

import pytest

from chalicelib import dlq, oauth
from chalicelib.clock import now as utcnow
from chalicelib.config import settings
from chalicelib.models import Message

PHONE = "+22238089336"


@pytest.mark.parametrize(
    "raw",
    [
        '{"message": "\\ud800", "phoneNumber": "38089336"}',  # lone surrogate
        "[" * 100_000,  # nesting past the recursion limit
        b'{"message": "\xff", "phoneNumber": "38089336"}',  # not UTF-8
    ],
)
def test_unreadable_json_is_400(api, raw):
    response = api.post("/messages/send", raw=raw)
    assert response.status_code == 400 and response.json["message"] == "Malformed JSON body"


@pytest.mark.parametrize("apikey", [123, ["a"], {"k": 1}, None])
def test_sendsms_apikey_of_the_wrong_type_is_missing(api, apikey):
    body = {"apikey": apikey, "recipients": "38089336", "message": "x"}
    assert api.post("/sendsms", body, key=None).status_code == 401


def test_key_with_a_lone_surrogate_is_just_invalid(api):
    body = {"apikey": "\ud800x", "recipients": "38089336", "message": "x"}
    response = api.call("POST", "/sendsms", key=None, raw=json.dumps(body))
    assert response.status_code in (400, 403)


@pytest.mark.parametrize(
    "query", ["limit=²", "from=0001-01-01T00:00:00%2B01:00", "to=9999-12-31T23:59:59-01:00"]
)
def test_listing_parameters_at_the_edges_are_400(api, query):
    assert api.get(f"/messages?{query}").status_code == 400


@pytest.mark.parametrize("at", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"])
def test_device_timestamps_at_the_edges_are_400(api, device_key, at):
    message_id = api.post("/messages/send", {"message": "x", "phoneNumber": PHONE}).json[
        "messageId"
    ]
    response = api.device_post(
        f"/device/messages/{message_id}/status", {"status": "sent", "at": at}, device_key
    )
    assert response.status_code == 400 and response.json["errors"][0]["field"] == "at"


@pytest.mark.parametrize(
    "message_id", ["x" * 3000, "not-a-uuid", "6F1B7C1E-33C8-4D4E-9A53-6C1F1F0C2A10"]
)
def test_ids_that_are_not_uuids_are_404_without_a_lookup(api, device_key, message_id):
    assert api.get(f"/messages/{message_id}").status_code == 404
    assert api.call("DELETE", f"/messages/{message_id}").status_code == 404
    assert (
        api.device_post(
            f"/device/messages/{message_id}/status", {"status": "sent"}, device_key
        ).status_code
        == 404
    )


def test_oversized_inbound_sender_is_400(api, device_key):
    body = {"from": "9" * 65, "text": "x", "deviceRef": "r"}
    response = api.device_post("/device/inbound", body, device_key)
    assert response.status_code == 400 and response.json["errors"][0]["field"] == "from"


def test_cursor_only_continues_its_own_listing(api):
    for i in range(3):
        api.post("/messages/send", {"message": f"m{i}", "phoneNumber": PHONE})
    cursor = api.get("/messages?limit=1&direction=outbound").json["nextCursor"]
    assert api.get(f"/messages?limit=1&direction=outbound&cursor={cursor}").status_code == 200
    assert api.get(f"/messages?limit=1&direction=inbound&cursor={cursor}").status_code == 400
    assert (
        api.get(f"/messages?limit=1&direction=outbound&from=2025-01-01&cursor={cursor}").status_code
        == 400
    )


def test_date_only_range_covers_the_whole_day(api):
    message_id = api.post("/messages/send", {"message": "x", "phoneNumber": PHONE}).json[
        "messageId"
    ]
    today = utcnow().date().isoformat()
    listed = api.get(f"/messages?from={today}&to={today}").json["messages"]
    assert [m["messageId"] for m in listed] == [message_id]


def test_messages_past_their_retention_are_gone_before_dynamodb_deletes_them(api):
    message_id = api.post("/messages/send", {"message": "x", "phoneNumber": PHONE}).json[
        "messageId"
    ]
    Message.get(message_id).update(actions=[Message.purge_at.set(utcnow() - timedelta(seconds=1))])
    assert api.get(f"/messages/{message_id}").status_code == 404
    assert api.get("/messages").json["messages"] == []


def test_an_otp_still_queued_after_its_code_expired_reads_as_expired(api):
    message_id = api.post("/otp/send", {"phoneNumber": PHONE}).json["messageId"]
    Message.get(message_id).update(
        actions=[Message.send_before.set(utcnow() - timedelta(seconds=1))]
    )
    shown = api.get(f"/messages/{message_id}").json
    assert shown["status"] == "expired" and "expired" in shown["statusReason"]


def test_dead_letters_never_fail_a_message_that_was_sent(api, device_key):
    message_id = api.post("/messages/send", {"message": "x", "phoneNumber": PHONE}).json[
        "messageId"
    ]
    api.device_post(f"/device/messages/{message_id}/status", {"status": "sent"}, device_key)
    dlq.settle(json.dumps({"messageId": message_id}))
    assert Message.get(message_id).status == "sent"


def test_a_token_stops_working_when_it_expires_even_while_cached(api, monkeypatch, manual_clock):
    monkeypatch.setenv("SMSGW_KEY_CACHE_SECONDS", str(2 * oauth.TOKEN_SECONDS))
    settings.cache_clear()
    client_id, secret = oauth.create_client("acme")
    form = {"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret}
    token = oauth.issue_token(list(form.items()), "application/x-www-form-urlencoded", None)[
        "access_token"
    ]
    bearer = {"Authorization": f"Bearer {token}"}
    assert api.get("/messages", key=None, headers=bearer).status_code == 200  # now cached
    manual_clock.advance(
        oauth.TOKEN_SECONDS + 1
    )  # past the token's expiry, within the key cache period
    assert api.get("/messages", key=None, headers=bearer).status_code == 401
