"""Per-account quotas across keys and OAuth clients, limits on tokens and test events,
and keys refused before any AWS call."""

from urllib.parse import urlencode

import pytest

from chalicelib import auth, oauth, quotas
from chalicelib.config import settings
from chalicelib.models import Credential, Message

from ..conftest import queued_bodies

PHONE = "+22238089336"
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


@pytest.fixture
def second_key(aws):
    """Another API key of the same account (acme)."""
    return auth.create_key("api", "acme", name="second")[0]


def token(api, client_id, secret):
    form = {"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret}
    return api.call("POST", "/oauth2/token", key=None, raw=urlencode(form), headers=FORM)


def stored_messages(account_id="acme"):
    return [m for m in Message.scan() if m.account_id == account_id]


def assert_429(response, words):
    assert response.status_code == 429, response.json
    assert response.json["success"] is False and words in response.json["message"]
    assert int(response.headers["Retry-After"]) >= 1


# --- OTP: the seed's per-phone limits count per account --------------------------------------


def test_every_key_of_an_account_shares_the_per_phone_otp_limit(api, second_key, manual_clock):
    client_id, secret = oauth.create_client("acme")
    bearer = {"Authorization": "Bearer " + token(api, client_id, secret).json["access_token"]}
    assert api.post("/otp/send", {"phoneNumber": PHONE}).status_code == 200
    assert api.post("/otp/send", {"phoneNumber": PHONE}, key=second_key).status_code == 200
    assert (
        api.post("/otp/send", {"phoneNumber": PHONE}, key=None, headers=bearer).status_code == 200
    )
    assert_429(
        api.post("/otp/send", {"phoneNumber": PHONE}, key=second_key), "for this phone number"
    )
    assert len(queued_bodies(settings().priority_queue)) == 3


def test_account_otp_quota_spans_phone_numbers(api, other_key, manual_clock):
    quotas.set_quotas("acme", {"otpPerMinute": 2})
    phones = ["+22238089336", "+22248089336", "+22228089336"]
    statuses = [api.post("/otp/send", {"phoneNumber": p}).status_code for p in phones]
    assert statuses == [200, 200, 429]
    assert api.post("/otp/send", {"phoneNumber": phones[2]}, key=other_key).status_code == 200


# --- SMS --------------------------------------------------------------------------------------


def test_sms_quota_counts_across_keys_and_stores_nothing_over_it(
    api, second_key, other_key, manual_clock
):
    quotas.set_quotas("acme", {"smsPerMinute": 3})
    body = {"message": "Salam", "phoneNumber": PHONE}
    statuses = [
        api.post("/messages/send", body, key=k).status_code for k in ("default", second_key)
    ]
    statuses.append(api.post("/messages/send", body).status_code)
    assert statuses == [200, 200, 200]
    assert_429(
        api.post("/messages/send", body, key=second_key), "3 SMS for this account per minute"
    )
    assert len(stored_messages()) == 3 and len(queued_bodies(settings().outbound_queue)) == 3
    assert api.post("/messages/send", body, key=other_key).status_code == 200  # globex unaffected


def test_sms_quota_frees_up_in_the_next_window(api, manual_clock):
    quotas.set_quotas("acme", {"smsPerMinute": 1})
    body = {"message": "Salam", "phoneNumber": PHONE}
    assert api.post("/messages/send", body).status_code == 200
    refused = api.post("/messages/send", body)
    assert refused.status_code == 429
    manual_clock.advance(int(refused.headers["Retry-After"]))
    assert api.post("/messages/send", body).status_code == 200


def test_a_bulk_over_quota_queues_nothing(api):
    quotas.set_quotas("acme", {"bulkRecipientsPerDay": 5})
    numbers = [f"+2223808933{i}" for i in range(6)]
    response = api.post("/messages/bulk", {"message": "Promo", "phoneNumbers": numbers})
    assert_429(response, "5 bulk recipients for this account per day")
    assert "counts for 6" in response.json["message"]
    assert stored_messages() == [] and queued_bodies(settings().outbound_queue) == []
    ok = api.post("/messages/bulk", {"message": "Promo", "phoneNumbers": numbers[:5]})
    assert ok.status_code == 200 and ok.json["queued"] == 5
    assert_429(
        api.post("/messages/bulk", {"message": "Promo", "phoneNumbers": numbers[:2]}),
        "bulk recipients",
    )


def test_a_bulk_counts_every_recipient_as_an_sms(api):
    quotas.set_quotas("acme", {"smsPerMinute": 4})
    numbers = [f"+2223808933{i}" for i in range(3)]
    assert api.post("/messages/bulk", {"message": "x", "phoneNumbers": numbers}).status_code == 200
    assert api.post("/messages/send", {"message": "x", "phoneNumber": PHONE}).status_code == 200
    assert api.post("/messages/send", {"message": "x", "phoneNumber": PHONE}).status_code == 429


def test_a_quota_of_zero_stops_sending(api):
    quotas.set_quotas("acme", {"smsPerDay": 0})
    assert_429(api.post("/messages/send", {"message": "x", "phoneNumber": PHONE}), "at most 0")
    response = api.call("GET", f"/sendsms?apikey={api.key}&recipients=38089336&message=x", key=None)
    assert response.status_code == 429 and stored_messages() == []


@pytest.mark.parametrize(
    "values, words",
    [
        ({"smsPerHour": 5}, "unknown quota 'smsPerHour'"),
        ({"smsPerMinute": -1}, "from 0 to 10000000"),
        ({"smsPerMinute": "many"}, "whole number"),
        ({"smsPerMinute": 10, "otpPerDay": 2.5}, "otpPerDay"),
        ({"smsPerDay": 10**9}, "from 0 to"),
    ],
)
def test_quota_values_are_checked_and_nothing_is_half_written(aws, values, words):
    with pytest.raises(quotas.QuotaValueError, match=words):
        quotas.set_quotas("acme", values)
    assert quotas.of("acme") == {name: default for name, (_, default) in quotas.DEFAULTS.items()}


def test_overrides_are_kept_one_by_one(aws):
    quotas.set_quotas("acme", {"smsPerMinute": 7})
    shown = quotas.set_quotas("acme", {"otpPerDay": 9})
    assert shown["smsPerMinute"] == 7 and shown["otpPerDay"] == 9
    assert shown["smsPerDay"] == quotas.DEFAULTS["smsPerDay"][1]


# --- limits on what costs a write -------------------------------------------------------------


def test_token_minting_is_limited_per_client(api, manual_clock):
    client_id, secret = oauth.create_client("acme")
    statuses = [token(api, client_id, secret).status_code for _ in range(11)]
    assert statuses == [200] * 10 + [429]
    other_id, other_secret = oauth.create_client("acme")
    assert token(api, other_id, other_secret).status_code == 200


def test_webhook_test_events_are_limited(api, public_dns, manual_clock):
    assert api.call("PUT", "/webhook", {"url": "https://hooks.example.com/sms"}).status_code == 200
    statuses = [api.post("/webhook/test").status_code for _ in range(6)]
    assert statuses == [200] * 5 + [429]
    assert len(queued_bodies(settings().webhook_queue)) == 5


# --- keys ---------------------------------------------------------------------------------------


@pytest.fixture
def key_reads(monkeypatch):
    reads = []
    original = Credential.get

    def counting(*args, **kwargs):
        reads.append(args[0])
        return original(*args, **kwargs)

    monkeypatch.setattr(Credential, "get", counting)
    return reads


@pytest.mark.parametrize(
    "key", ["short", "cq_live_" + "a" * 300, "cq_live_" + "é" * 40, "cq_live_ " + "a" * 40]
)
def test_a_malformed_key_is_refused_without_a_read(api, key_reads, key):
    response = api.get("/messages", key=key)
    assert response.status_code == 403
    assert response.json == {"success": False, "message": "Invalid API key"}
    assert key_reads == []


def test_an_unknown_key_is_remembered_briefly(api, key_reads, manual_clock):
    unknown = "cq_live_" + "u" * 43
    for _ in range(3):
        assert api.get("/messages", key=unknown).status_code == 403
    assert len(key_reads) == 1
    manual_clock.advance(auth.UNKNOWN_KEY_SECONDS)
    assert api.get("/messages", key=unknown).status_code == 403
    assert len(key_reads) == 2


def test_a_new_key_works_at_once_even_after_an_unknown_answer(api, key_reads):
    key, _ = auth.create_key("api", "acme")
    assert api.get("/messages", key=key).status_code == 200


def test_the_key_cache_is_capped(api, key_reads, monkeypatch):
    monkeypatch.setattr(auth.KEY_CACHE, "max_entries", 2)
    keys = ["cq_live_" + c * 43 for c in "abc"]
    for key in keys:
        api.get("/messages", key=key)
    api.get("/messages", key=keys[0])  # evicted by the third: read again
    assert len(key_reads) == 4
    api.get("/messages", key=keys[2])  # still cached
    assert len(key_reads) == 4
