"""POST /otp/send and /otp/verify: every OTP rule of seed 000."""

import logging
import re
from datetime import timedelta

import pytest

from chalicelib import logs, otp
from chalicelib.clock import now as utcnow
from chalicelib.config import settings
from chalicelib.models import Message, Otp
from tests.conftest import queued_bodies
from tests.logcapture import capture_all, text

PHONE = "+22238089336"


def sent_code():
    """The code as it reached the queue (the only place it exists in clear)."""
    [body] = queued_bodies(settings().priority_queue)[-1:]
    return re.search(r"\b(\d{6})\b", body["text"]).group(1), body


def test_send_answers_as_the_seed_and_queues_a_priority_sms(api):
    response = api.post("/otp/send", {"phoneNumber": "38089336"})
    assert response.status_code == 200
    assert response.json == {
        "success": True,
        "messageId": response.json["messageId"],
        "expiresIn": 600,
    }
    code, body = sent_code()
    assert body["to"] == PHONE and body["kind"] == "otp"
    assert body["messageId"] == response.json["messageId"]
    assert body["text"].startswith("Votre code de vérification Chinqit est ")
    assert body["sendBefore"] is not None
    assert queued_bodies(settings().outbound_queue) == []


@pytest.mark.parametrize(
    "language, opening",
    [
        ("fr", "Votre code de vérification"),
        ("en", "Your Chinqit verification code is"),
        ("ar", "رمز التحقق الخاص بك"),
    ],
)
def test_each_language_has_its_own_text(api, language, opening):
    assert api.post("/otp/send", {"phoneNumber": PHONE, "language": language}).status_code == 200
    code, body = sent_code()
    assert body["text"].startswith(opening) and code in body["text"]


def test_sms_retriever_hash_goes_on_a_new_line(api):
    api.post("/otp/send", {"phoneNumber": PHONE, "hash": "ABC123XYZ45", "language": "en"})
    _, body = sent_code()
    assert body["text"].endswith("\nABC123XYZ45")


def test_stored_message_masks_the_code(api):
    message_id = api.post("/otp/send", {"phoneNumber": PHONE}).json["messageId"]
    code, _ = sent_code()
    stored = api.get(f"/messages/{message_id}").json
    assert code not in stored["message"] and "******" in stored["message"]
    assert stored["kind"] == "otp" and stored["status"] == "queued"
    record = Otp.get(otp.otp_key(otp_key_id(api), PHONE, "sms"))
    assert code not in record.code_hash and len(record.code_hash) == 64


def otp_key_id(api):
    from chalicelib.auth import hash_key

    return hash_key(api.key)[:24]


def test_right_code_verifies_once(api):
    api.post("/otp/send", {"phoneNumber": PHONE})
    code, _ = sent_code()
    first = api.post("/otp/verify", {"phoneNumber": "22238089336", "otp": code})
    assert first.status_code == 200
    assert first.json == {"success": True, "message": "OTP verified successfully", "verified": True}
    again = api.post("/otp/verify", {"phoneNumber": PHONE, "otp": code})
    assert again.status_code == 400
    assert again.json["verified"] is False and "already been used" in again.json["message"]


def wrong(code):
    return f"{(int(code) + 1) % 10**6:06d}"


def test_three_wrong_codes_kill_it_even_if_the_right_one_follows(api):
    api.post("/otp/send", {"phoneNumber": PHONE})
    code, _ = sent_code()
    answers = [
        api.post("/otp/verify", {"phoneNumber": PHONE, "otp": wrong(code)}) for _ in range(3)
    ]
    assert [a.status_code for a in answers] == [400, 400, 400]
    assert [a.json["retriesLeft"] for a in answers] == [2, 1, 0]
    assert all(a.json["message"] == "Invalid OTP" for a in answers)
    final = api.post("/otp/verify", {"phoneNumber": PHONE, "otp": code})
    assert final.status_code == 400 and final.json["verified"] is False
    assert final.json["retriesLeft"] == 0


def test_expired_code_is_refused(api):
    api.post("/otp/send", {"phoneNumber": PHONE})
    code, _ = sent_code()
    record = Otp.get(otp.otp_key(otp_key_id(api), PHONE, "sms"))
    record.update(actions=[Otp.expires_at.set(utcnow() - timedelta(seconds=1))])
    response = api.post("/otp/verify", {"phoneNumber": PHONE, "otp": code})
    assert response.status_code == 400
    assert response.json["message"] == "OTP has expired" and response.json["verified"] is False


def test_never_sent_is_refused(api):
    response = api.post("/otp/verify", {"phoneNumber": PHONE, "otp": "123456"})
    assert response.status_code == 400 and response.json["verified"] is False
    assert "No OTP was sent" in response.json["message"]


def test_a_new_send_replaces_the_previous_code(api):
    api.post("/otp/send", {"phoneNumber": PHONE})
    old, _ = sent_code()
    api.post("/otp/send", {"phoneNumber": PHONE})
    new, _ = sent_code()
    if old != new:
        assert api.post("/otp/verify", {"phoneNumber": PHONE, "otp": old}).status_code == 400
    assert api.post("/otp/verify", {"phoneNumber": PHONE, "otp": new}).status_code == 200


def test_codes_are_per_api_key(api, other_key):
    api.post("/otp/send", {"phoneNumber": PHONE})
    code, _ = sent_code()
    response = api.post("/otp/verify", {"phoneNumber": PHONE, "otp": code}, key=other_key)
    assert response.status_code == 400 and "No OTP was sent" in response.json["message"]


def test_channel_of_verify_must_match_send(api):
    api.post("/otp/send", {"phoneNumber": PHONE})
    code, _ = sent_code()
    response = api.post("/otp/verify", {"phoneNumber": PHONE, "otp": code, "channel": "whatsapp"})
    assert response.status_code == 400


def test_fourth_send_in_a_minute_is_429_with_retry_after(api):
    statuses = [api.post("/otp/send", {"phoneNumber": PHONE}).status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    refused = api.post("/otp/send", {"phoneNumber": PHONE})
    assert refused.json["success"] is False and "per minute" in refused.json["message"]
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    assert len(queued_bodies(settings().priority_queue)) == 3


def test_limits_are_per_phone_number_and_per_account(api, other_key):
    for _ in range(3):
        api.post("/otp/send", {"phoneNumber": PHONE})
    assert api.post("/otp/send", {"phoneNumber": "+22248089336"}).status_code == 200
    assert api.post("/otp/send", {"phoneNumber": PHONE}, key=other_key).status_code == 200


def test_hour_and_day_limits(api, manual_clock):
    from chalicelib import ratelimit

    start = utcnow().replace(minute=0, second=0, microsecond=0, hour=1)
    manual_clock.advance((start - utcnow()).total_seconds())
    statuses = []
    for _ in range(11):
        statuses.append(api.post("/otp/send", {"phoneNumber": PHONE}).status_code)
        manual_clock.advance(60)
    assert statuses == [200] * 10 + [429]
    assert ratelimit.OTP_LIMITS[2].max_requests == 20
    manual_clock.advance(3600)
    statuses = []
    for _ in range(11):
        statuses.append(api.post("/otp/send", {"phoneNumber": PHONE}).status_code)
        manual_clock.advance(60)
    assert statuses == [200] * 10 + [429]
    manual_clock.advance(3600)
    refused = api.post("/otp/send", {"phoneNumber": PHONE})
    assert refused.status_code == 429 and "per day" in refused.json["message"]


@pytest.mark.parametrize(
    "body, field",
    [
        ({"phoneNumber": "12345678"}, "phoneNumber"),
        ({"phoneNumber": PHONE, "language": "de"}, "language"),
        ({"phoneNumber": PHONE, "channel": "pigeon"}, "channel"),
        ({"phoneNumber": PHONE, "hash": "short"}, "hash"),
        ({"phoneNumber": PHONE, "hash": "ABC123XYZ45", "channel": "whatsapp"}, "hash"),
        ({"phoneNumber": PHONE, "hash": "ABC123XYZ4!"}, "hash"),
    ],
)
def test_send_validation(api, body, field):
    response = api.post("/otp/send", body)
    assert response.status_code == 400
    assert response.json["errors"][0]["field"] == field


@pytest.mark.parametrize("value", ["12345", "1234567", "12a456", 123456, "", None])
def test_verify_needs_a_six_digit_string(api, value):
    body = {"phoneNumber": PHONE} if value is None else {"phoneNumber": PHONE, "otp": value}
    response = api.post("/otp/verify", body)
    assert response.status_code == 400
    assert response.json["errors"][0]["field"] == "otp"


def test_whatsapp_not_configured_is_400(api, monkeypatch):
    monkeypatch.delenv("SMSGW_WHATSAPP_TOKEN", raising=False)
    settings.cache_clear()
    response = api.post("/otp/send", {"phoneNumber": PHONE, "channel": "whatsapp"})
    assert response.status_code == 400
    assert "WhatsApp channel is not configured" in response.json["message"]


def test_code_never_reaches_a_log_line(api):
    # The OTP text travels in an SQS body, which botocore logs at DEBUG: held at INFO as deployed.
    with capture_all(held={name: logging.INFO for name in logs.WIRE_LOGGERS}) as records:
        api.post("/otp/send", {"phoneNumber": PHONE})
        code, _ = sent_code()
        api.post("/otp/verify", {"phoneNumber": PHONE, "otp": wrong(code)})
        api.post("/otp/verify", {"phoneNumber": PHONE, "otp": code})
    assert records, "the round trip logged nothing: the test would prove nothing"
    assert all(code not in text(record) for record in records)
    assert all(api.key not in text(record) for record in records)


def test_message_record_for_the_otp_exists(api):
    message_id = api.post("/otp/send", {"phoneNumber": PHONE}).json["messageId"]
    assert Message.get(message_id).send_before is not None


def test_transaction_conflicts_are_retried_not_500(api, monkeypatch):
    from pynamodb.exceptions import CancellationReason, TransactWriteError
    from pynamodb.transactions import TransactWrite

    class Conflict(TransactWriteError):
        cancellation_reasons = [
            None,
            None,
            CancellationReason(code="TransactionConflict"),
            None,
            None,
        ]

    original = TransactWrite._commit
    conflicts = [Conflict("Transaction cancelled")] * 2

    def commit(self):
        if conflicts:
            raise conflicts.pop()
        return original(self)

    monkeypatch.setattr(TransactWrite, "_commit", commit)
    response = api.post("/otp/send", {"phoneNumber": PHONE})
    assert response.status_code == 200 and conflicts == []


def test_short_imported_keys_are_refused(aws):
    from chalicelib import auth

    with pytest.raises(ValueError):
        auth.import_key("api", "dev", "k123")


def test_every_transaction_carries_a_client_request_token_of_its_own(api):
    """An SDK retry after a lost success is then answered as the first call was."""
    from chalicelib import models

    tokens = []

    def record(params, **_):
        tokens.append(params.get("ClientRequestToken"))

    events = models.connection().client.meta.events
    events.register("provide-client-params.dynamodb.TransactWriteItems", record)
    try:
        api.post("/otp/send", {"phoneNumber": PHONE})
        code, _ = sent_code()
        api.post("/messages/send", {"phoneNumber": PHONE, "message": "x"})
        assert api.post("/otp/verify", {"phoneNumber": PHONE, "otp": code}).status_code == 200
    finally:
        events.unregister("provide-client-params.dynamodb.TransactWriteItems", record)
    assert len(tokens) == 3 and all(tokens) and len(set(tokens)) == 3
