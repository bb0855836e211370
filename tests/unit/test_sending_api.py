"""Bulk sending, SMSMobileAPI-compatible /sendsms, and OAuth2 client credentials."""

import base64
from datetime import timedelta
from urllib.parse import urlencode

import pytest

from chalicelib import oauth
from chalicelib.clock import now as utcnow
from chalicelib.config import settings
from chalicelib.models import Credential
from tests.conftest import queued_bodies

PHONE = "+22238089336"
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def test_bulk_queues_valid_numbers_and_reports_the_rest(api):
    response = api.post(
        "/messages/bulk",
        {
            "message": "Promo",
            "phoneNumbers": ["38089336", "12345678", "+22248089336", "22238089336"],
        },
    )
    assert response.status_code == 200
    assert response.json["queued"] == 2
    assert [m["phoneNumber"] for m in response.json["messages"]] == [PHONE, "+22248089336"]
    assert [e["field"] for e in response.json["errors"]] == ["phoneNumbers[1]", "phoneNumbers[3]"]
    assert {b["to"] for b in queued_bodies(settings().outbound_queue)} == {PHONE, "+22248089336"}


@pytest.mark.parametrize(
    "body, field",
    [
        ({"message": "x", "phoneNumbers": []}, "phoneNumbers"),
        ({"message": "x", "phoneNumbers": "38089336"}, "phoneNumbers"),
        ({"message": "x", "phoneNumbers": ["38089336"] * 101}, "phoneNumbers"),
        ({"phoneNumbers": ["38089336"]}, "message"),
        ({"message": "x", "phoneNumbers": ["1"]}, "phoneNumbers[0]"),
    ],
)
def test_bulk_validation(api, body, field):
    response = api.post("/messages/bulk", body)
    assert response.status_code == 400 and response.json["errors"][0]["field"] == field


def test_sendsms_get_with_apikey_parameter(api):
    query = urlencode(
        {"apikey": api.key, "recipients": "+22238089336,48089336", "message": "Hello World"}
    )
    response = api.call("GET", f"/sendsms?{query}", key=None)
    assert response.status_code == 200
    assert [m["recipient"] for m in response.json["messages"]] == [PHONE, "+22248089336"]
    assert all(m["messageId"] for m in response.json["messages"])


def test_sendsms_post_form(api):
    body = urlencode({"apikey": api.key, "recipients": "38089336", "message": "Bonjour"})
    response = api.call("POST", "/sendsms", key=None, raw=body, headers=FORM)
    assert response.status_code == 200 and len(response.json["messages"]) == 1


def test_sendsms_auth_errors(api):
    assert api.call("GET", "/sendsms?recipients=38089336&message=x", key=None).status_code == 401
    assert (
        api.call("GET", "/sendsms?apikey=nope&recipients=38089336&message=x", key=None).status_code
        == 403
    )
    response = api.call(
        "GET", f"/sendsms?apikey={api.key}&recipients=+1234567890&message=x", key=None
    )
    assert response.status_code == 400 and response.json["errors"][0]["field"] == "recipients[0]"


@pytest.fixture
def client_credentials(aws):
    return oauth.create_client("acme", name="tests")


def token_request(api, form, headers=None):
    return api.call(
        "POST", "/oauth2/token", key=None, raw=urlencode(form), headers={**FORM, **(headers or {})}
    )


def test_token_in_body_works_like_an_api_key(api, client_credentials):
    client_id, secret = client_credentials
    response = token_request(
        api, {"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret}
    )
    assert response.status_code == 200 and response.headers["Cache-Control"] == "no-store"
    assert response.json["token_type"] == "Bearer" and response.json["expires_in"] == 3600
    bearer = {"Authorization": f"Bearer {response.json['access_token']}"}
    sent = api.post(
        "/messages/send", {"message": "x", "phoneNumber": PHONE}, key=None, headers=bearer
    )
    assert sent.status_code == 200
    assert api.get(f"/messages/{sent.json['messageId']}").status_code == 200, (
        "same account as the key"
    )


def test_token_with_http_basic(api, client_credentials):
    client_id, secret = client_credentials
    basic = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    response = token_request(
        api, {"grant_type": "client_credentials"}, {"Authorization": f"Basic {basic}"}
    )
    assert response.status_code == 200 and response.json["access_token"].startswith("cq_tok_")


def test_otps_survive_token_renewal(api, client_credentials):
    client_id, secret = client_credentials
    form = {"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret}
    first, second = (token_request(api, form).json["access_token"] for _ in range(2))
    api.post(
        "/otp/send", {"phoneNumber": PHONE}, key=None, headers={"Authorization": f"Bearer {first}"}
    )
    code = (
        __import__("re")
        .search(r"\d{6}", queued_bodies(settings().priority_queue)[0]["text"])
        .group()
    )
    verified = api.post(
        "/otp/verify",
        {"phoneNumber": PHONE, "otp": code},
        key=None,
        headers={"Authorization": f"Bearer {second}"},
    )
    assert verified.status_code == 200


@pytest.mark.parametrize(
    "form, status, error",
    [
        ({"grant_type": "password"}, 400, "unsupported_grant_type"),
        ({}, 400, "invalid_request"),
        ({"grant_type": "client_credentials"}, 401, "invalid_client"),
        (
            {"grant_type": "client_credentials", "client_id": "cq_client_x", "client_secret": "y"},
            401,
            "invalid_client",
        ),
    ],
)
def test_token_errors_follow_rfc_6749(api, client_credentials, form, status, error):
    response = token_request(api, form)
    assert response.status_code == status
    assert response.json["error"] == error and response.json["success"] is False


def test_wrong_secret_is_invalid_client(api, client_credentials):
    client_id, _ = client_credentials
    response = token_request(
        api, {"grant_type": "client_credentials", "client_id": client_id, "client_secret": "wrong"}
    )
    assert response.status_code == 401 and response.headers["WWW-Authenticate"].startswith("Basic")


def test_expired_and_revoked_bearer_tokens_are_401_with_an_rfc_6750_challenge(
    api, client_credentials
):
    client_id, secret = client_credentials
    form = {"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret}
    expired, revoked = (token_request(api, form).json["access_token"] for _ in range(2))
    from chalicelib.auth import hash_key

    Credential.get(hash_key(expired)).update(
        actions=[Credential.expires_at.set(utcnow() - timedelta(seconds=1))]
    )
    oauth.revoke_client(client_id)
    for token in (expired, revoked):
        response = api.get("/messages", key=None, headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 401
        assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]
        assert response.headers["WWW-Authenticate"].startswith("Bearer ")
        assert response.json["success"] is False and response.json["error"] == "invalid_token"
        assert response.json["errors"] == [] and response.json["message"]
    assert token_request(api, form).status_code == 401


def test_an_unknown_bearer_token_is_401_while_a_wrong_api_key_stays_the_seeds_403(api):
    bearer = api.get("/messages", key=None, headers={"Authorization": "Bearer " + "x" * 40})
    assert bearer.status_code == 401 and "invalid_token" in bearer.headers["WWW-Authenticate"]
    keyed = api.get("/messages", key="cq_live_" + "x" * 40)
    assert keyed.status_code == 403
    assert keyed.json == {"success": False, "message": "Invalid API key"}


def test_token_answers_and_their_errors_are_never_cached(api, client_credentials):
    client_id, secret = client_credentials
    good = {"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret}
    for form in (good, {"grant_type": "password"}, {**good, "client_secret": "wrong"}):
        response = token_request(api, form)
        assert response.headers["Cache-Control"] == "no-store", form
        assert response.headers["Pragma"] == "no-cache", form


@pytest.mark.parametrize("repeated", ["grant_type", "client_id", "client_secret"])
def test_a_repeated_token_parameter_is_invalid_request(api, client_credentials, repeated):
    client_id, secret = client_credentials
    form = {"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret}
    response = token_request(api, [*form.items(), (repeated, form[repeated])])
    assert response.status_code == 400 and response.json["error"] == "invalid_request"
    assert repeated in response.json["error_description"]


def test_basic_and_body_credentials_together_are_invalid_request(api, client_credentials):
    client_id, secret = client_credentials
    basic = {
        "Authorization": "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    }
    both = token_request(
        api,
        {"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret},
        basic,
    )
    assert both.status_code == 400 and both.json["error"] == "invalid_request"
    other_id = token_request(
        api, {"grant_type": "client_credentials", "client_id": "cq_client_other"}, basic
    )
    assert other_id.status_code == 400 and other_id.json["error"] == "invalid_request"
    same_id = token_request(
        api, {"grant_type": "client_credentials", "client_id": client_id}, basic
    )
    assert same_id.status_code == 200, "RFC 6749 §3.2.1: client_id may identify the client"


def test_a_token_request_that_is_not_a_form_is_invalid_request(api, client_credentials):
    client_id, secret = client_credentials
    response = api.post(
        "/oauth2/token",
        {"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret},
        key=None,
    )
    assert response.status_code == 400 and response.json["error"] == "invalid_request"


def test_every_queued_sms_is_tagged_with_its_account_for_fair_queueing(api):
    from chalicelib import queue
    from chalicelib.config import settings

    api.post("/messages/send", {"message": "x", "phoneNumber": "38089336"})
    api.post("/messages/bulk", {"message": "y", "phoneNumbers": ["38089336", "48089336"]})
    api.post("/otp/send", {"phoneNumber": "38089336"})
    for name, count in ((settings().outbound_queue, 3), (settings().priority_queue, 1)):
        received = queue.sqs().receive_message(
            QueueUrl=queue.queue_url(name),
            MaxNumberOfMessages=10,
            MessageSystemAttributeNames=["MessageGroupId"],
        )["Messages"]
        assert [m["Attributes"]["MessageGroupId"] for m in received] == ["acme"] * count


def test_bulk_counts_only_what_the_queue_took(api):
    """The queue refuses: the answer says so, and the messages are failed, not queued."""
    from chalicelib import queue
    from chalicelib.models import Message

    def refuse(params, **_):
        raise RuntimeError("simulated SQS outage")

    queue.sqs().meta.events.register("provide-client-params.sqs.SendMessageBatch", refuse)
    body = {"message": "Promo", "phoneNumbers": ["38089336", "48089336"]}
    response = api.post("/messages/bulk", body)
    assert response.status_code == 200
    assert response.json["queued"] == 0 and response.json["messages"] == []
    assert [e["message"] for e in response.json["errors"]] == [
        f"{PHONE}: could not be queued",
        "+22248089336: could not be queued",
    ]
    stored = list(Message.scan())
    assert len(stored) == 2 and {m.status for m in stored} == {"failed"}
