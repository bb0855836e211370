"""Idempotency-Key on the sending routes: a retry gets the first answer and sends nothing
again; the key with another request is a 422; without the header nothing changes."""

import re
from datetime import timedelta
from urllib.parse import urlencode

import pytest

from chalicelib import quotas
from chalicelib.config import settings
from tests.conftest import queued_bodies

SEND = {"message": "Votre commande est prête", "phoneNumber": "38089336"}
KEY = {"Idempotency-Key": '"8e03978e-40d5-43e8-bc93-6894a57f9324"'}  # the draft's sf-string


def queued(kind: str = "sms") -> list[dict]:
    name = settings().priority_queue if kind == "otp" else settings().outbound_queue
    return queued_bodies(name)


def test_a_retry_gets_the_first_answer_and_sends_nothing_again(api):
    first = api.post("/messages/send", SEND, headers=KEY)
    again = api.post("/messages/send", SEND, headers=KEY)
    assert first.status_code == again.status_code == 200
    assert again.json == first.json
    assert again.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.headers
    assert [body["messageId"] for body in queued()] == [first.json["messageId"]]


def test_the_key_with_another_request_is_refused(api):
    api.post("/messages/send", SEND, headers=KEY)
    other = api.post("/messages/send", {**SEND, "message": "Autre chose"}, headers=KEY)
    assert other.status_code == 422
    assert other.json == {
        "success": False,
        "message": "Idempotency-Key was already used with another request",
        "errors": [{"field": "Idempotency-Key", "message": "was used with another request body"}],
    }
    assert len(queued()) == 1


def test_the_same_body_written_otherwise_is_the_same_request(api):
    first = api.post("/messages/send", SEND, headers=KEY)
    spaced = '{ "phoneNumber": "38089336",  "message": "Votre commande est prête" }'
    again = api.post("/messages/send", headers=KEY, raw=spaced)
    assert again.json["messageId"] == first.json["messageId"]


def test_without_the_header_each_request_sends(api):
    ids = {api.post("/messages/send", SEND).json["messageId"] for _ in range(2)}
    assert len(ids) == 2 and len(queued()) == 2


def test_keys_belong_to_an_account_and_a_route(api, other_key):
    mine = api.post("/messages/send", SEND, headers=KEY).json["messageId"]
    theirs = api.post("/messages/send", SEND, headers=KEY, key=other_key).json["messageId"]
    bulk = api.post("/messages/bulk", {"message": "x", "phoneNumbers": ["38089336"]}, headers=KEY)
    assert mine != theirs and bulk.status_code == 200 and len(queued()) == 3


def test_a_key_lives_24_hours(api, manual_clock):
    first = api.post("/messages/send", SEND, headers=KEY).json["messageId"]
    manual_clock.advance(timedelta(hours=24, seconds=1).total_seconds())
    later = api.post("/messages/send", SEND, headers=KEY)
    assert later.status_code == 200 and later.json["messageId"] != first


def test_a_retry_is_answered_even_when_the_quota_is_now_full(api):
    quotas.set_quotas("acme", {"smsPerMinute": 1})
    first = api.post("/messages/send", SEND, headers=KEY)
    assert api.post("/messages/send", {**SEND, "phoneNumber": "48089336"}).status_code == 429
    again = api.post("/messages/send", SEND, headers=KEY)
    assert again.status_code == 200 and again.json["messageId"] == first.json["messageId"]


@pytest.mark.parametrize("value", ["", '""', "x" * 256, "clé-é", "a\tb"])
def test_a_malformed_key_is_a_400(api, value):
    response = api.post("/messages/send", SEND, headers={"Idempotency-Key": value})
    assert response.status_code == 400
    assert response.json["errors"][0]["field"] == "Idempotency-Key"
    assert queued() == []


def test_bulk_and_sendsms_replay_their_answer(api):
    body = {"message": "Promo", "phoneNumbers": ["38089336", "48089336"]}
    first = api.post("/messages/bulk", body, headers=KEY)
    assert api.post("/messages/bulk", body, headers=KEY).json == first.json
    form = urlencode({"recipients": "22089336", "message": "Bonjour"})
    headers = {**KEY, "Content-Type": "application/x-www-form-urlencoded"}
    sent = api.post("/sendsms", raw=form, headers=headers)
    assert api.post("/sendsms", raw=form, headers=headers).json == sent.json
    assert len(queued()) == 3


def test_an_otp_retry_sends_no_second_code(api):
    first = api.post("/otp/send", {"phoneNumber": "38089336"}, headers=KEY)
    again = api.post("/otp/send", {"phoneNumber": "38089336"}, headers=KEY)
    assert again.json == first.json and again.status_code == 200
    [body] = queued("otp")  # one code reached the queue: the one that verifies
    code = re.search(r"\b(\d{6})\b", body["text"]).group(1)
    assert api.post("/otp/verify", {"phoneNumber": "38089336", "otp": code}).json["verified"]


def test_a_request_whose_sms_could_not_be_queued_runs_again(api):
    from chalicelib import queue

    queue.sqs().delete_queue(QueueUrl=queue.queue_url(settings().outbound_queue))
    assert api.post("/messages/send", SEND, headers=KEY).status_code == 500
    queue.sqs().create_queue(QueueName=settings().outbound_queue)
    queue.queue_url.cache_clear()
    again = api.post("/messages/send", SEND, headers=KEY)
    assert again.status_code == 200 and "Idempotent-Replayed" not in again.headers
    assert [b["messageId"] for b in queued()] == [again.json["messageId"]]
