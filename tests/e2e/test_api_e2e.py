"""Seed 000 over the wire: every example of the API reference against the running local stack.

The in-process tests (tests/unit) cover each rule in depth; these prove the same answers
reach a real HTTP client through the local server, the embedded AWS and the queues.
"""

import json
import re
import uuid

import pytest
import requests

from devstack.harness import OUTBOUND_QUEUE, fresh_local_number

from .helpers import wait_for_otp_code, wait_for_sms

pytestmark = pytest.mark.e2e

SEED_PHONE = "+22238089336"
SEED_TEXT = "Bonjour, ceci est un message de test"
QUEUED_OR_LATER = ("queued", "sending", "sent", "delivered")


def is_uuid(value) -> bool:
    try:
        return str(uuid.UUID(value)) == value
    except (TypeError, ValueError):
        return False


def test_health_answers_without_a_key(stack):
    response = requests.get(stack.url + "/health", timeout=10)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("application/json")
    assert response.json()["success"] is True


def test_send_answers_exactly_as_the_seed(stack):
    response = stack.post("/messages/send", {"message": SEED_TEXT, "phoneNumber": SEED_PHONE})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body == {"success": True, "messageId": body["messageId"], "queued": True}
    assert is_uuid(body["messageId"])


@pytest.mark.parametrize("raw", ["+22238089336", "22238089336", "38089336"])
def test_accepted_formats_are_normalised_and_read_back(stack, raw):
    sent = stack.post("/messages/send", {"message": SEED_TEXT, "phoneNumber": raw})
    assert sent.status_code == 200, sent.text
    message_id = sent.json()["messageId"]

    response = stack.get(f"/messages/{message_id}")
    assert response.status_code == 200, response.text
    got = response.json()
    assert got["success"] is True and got["messageId"] == message_id
    assert got["phoneNumber"] == SEED_PHONE
    assert got["message"] == SEED_TEXT
    # Nothing sends it yet; once the device bridge runs in the stack it may already move on.
    assert got["status"] in QUEUED_OR_LATER
    assert (got["direction"], got["channel"]) == ("outbound", "sms")
    assert (got["encoding"], got["segments"]) == ("GSM-7", 1)
    assert got["createdAt"].endswith("Z") and got["updatedAt"].endswith("Z")


def test_queued_message_reaches_the_outbound_queue_normalised(stack):
    message_id = stack.post(
        "/messages/send", {"message": SEED_TEXT, "phoneNumber": "38089336"}
    ).json()["messageId"]
    body = wait_for_sms(stack, OUTBOUND_QUEUE, message_id)
    assert body["to"] == SEED_PHONE and body["text"] == SEED_TEXT


def test_arabic_text_survives_the_wire_as_ucs2(stack):
    text = "مرحبا بكم في شنقيط"
    message_id = stack.post("/messages/send", {"message": text, "phoneNumber": SEED_PHONE}).json()[
        "messageId"
    ]
    got = stack.get(f"/messages/{message_id}").json()
    assert got["message"] == text
    assert (got["encoding"], got["segments"]) == ("UCS-2", 1)


@pytest.mark.parametrize(
    "raw, problem",
    [
        ("12345678", "must start with 2, 3 or 4"),
        ("+222 27 63 56 42", "spaces are not allowed"),
        ("+1234567890", "not a valid Mauritanian number"),
    ],
)
def test_rejected_formats_are_400_with_a_field_error(stack, raw, problem):
    for path, body in (
        ("/messages/send", {"message": SEED_TEXT, "phoneNumber": raw}),
        ("/otp/send", {"phoneNumber": raw}),
    ):
        response = stack.post(path, body)
        assert response.status_code == 400, (path, response.text)
        got = response.json()
        assert got["success"] is False and isinstance(got["message"], str) and got["message"]
        [error] = got["errors"]
        assert error["field"] == "phoneNumber"
        assert problem in error["message"]


def test_otp_send_answers_exactly_as_the_seed(stack):
    response = stack.post(
        "/otp/send",
        {
            "phoneNumber": fresh_local_number(),
            "hash": "ABC123XYZ45",
            "language": "en",
            "channel": "sms",
        },
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body == {"success": True, "messageId": body["messageId"], "expiresIn": 600}
    assert is_uuid(body["messageId"])


def test_otp_round_trip_over_the_wire(stack):
    local = fresh_local_number()
    sent = stack.post("/otp/send", {"phoneNumber": local, "hash": "ABC123XYZ45", "language": "en"})
    assert sent.status_code == 200, sent.text
    message_id = sent.json()["messageId"]

    code, text = wait_for_otp_code(stack, message_id)
    assert text.startswith("Your Chinqit verification code is ")
    assert text.endswith("\nABC123XYZ45")

    stored = stack.get(f"/messages/{message_id}").json()
    assert stored["kind"] == "otp" and stored["phoneNumber"] == "+222" + local
    assert code not in stored["message"] and "******" in stored["message"]

    verified = stack.post("/otp/verify", {"phoneNumber": "222" + local, "otp": code})
    assert verified.status_code == 200, verified.text
    assert verified.json() == {
        "success": True,
        "message": "OTP verified successfully",
        "verified": True,
    }

    again = stack.post("/otp/verify", {"phoneNumber": "+222" + local, "otp": code})
    assert again.status_code == 400
    assert again.json()["success"] is False and again.json()["verified"] is False
    assert "already been used" in again.json()["message"]

    # Codes are never written to a log line: the stack's whole output saw this round trip.
    assert not re.search(rf"(?<![0-9A-Za-z]){code}(?![0-9A-Za-z])", stack.log_text())


def test_wrong_code_counts_down_retries(stack):
    local = fresh_local_number()
    message_id = stack.post("/otp/send", {"phoneNumber": local}).json()["messageId"]
    code, text = wait_for_otp_code(stack, message_id)
    assert text.startswith("Votre code de vérification Chinqit est ")  # fr by default
    wrong = f"{(int(code) + 1) % 10**6:06d}"
    response = stack.post("/otp/verify", {"phoneNumber": local, "otp": wrong})
    assert response.status_code == 400
    got = response.json()
    assert {k: got.get(k) for k in ("success", "message", "retriesLeft")} == {
        "success": False,
        "message": "Invalid OTP",
        "retriesLeft": 2,
    }  # the seed's fields
    assert stack.post("/otp/verify", {"phoneNumber": local, "otp": code}).status_code == 200


@pytest.mark.parametrize(
    "method, path, body",
    [
        ("POST", "/messages/send", {"message": "x", "phoneNumber": SEED_PHONE}),
        ("GET", "/messages/00000000-0000-4000-8000-000000000000", None),
        ("POST", "/otp/send", {"phoneNumber": SEED_PHONE}),
        ("POST", "/otp/verify", {"phoneNumber": SEED_PHONE, "otp": "123456"}),
    ],
)
def test_missing_and_invalid_keys_get_the_seed_bodies(stack, method, path, body):
    def call(key):
        if method == "GET":
            return stack.get(path, key=key)
        return stack.post(path, body, key=key)

    missing = call(None)
    assert missing.status_code == 401
    assert missing.json() == {"success": False, "message": "API key is required"}
    for key in ("", "nope", "cq_live_" + "x" * 43):
        invalid = call(key)
        expected = (
            (401, {"success": False, "message": "API key is required"})
            if key == ""
            else (403, {"success": False, "message": "Invalid API key"})
        )
        assert (invalid.status_code, invalid.json()) == expected, key


@pytest.mark.parametrize(
    "method, path, key",
    [
        ("GET", "/nowhere", None),
        ("GET", "/", None),
        ("POST", "/no-such-route", "default"),
        ("GET", "/no/such/route", "default"),
        ("DELETE", "/otp/send/no-such-part", "default"),
    ],
)
def test_unknown_routes_are_404_in_the_error_format(stack, method, path, key):
    response = requests.request(method, stack.url + path, headers=stack.headers(key), timeout=10)
    assert response.status_code == 404
    assert response.json() == {"success": False, "message": "Route not found", "errors": []}


@pytest.mark.parametrize("raw", ["{not json", "[1, 2]", ""])
def test_malformed_json_is_400(stack, raw):
    response = stack.post(
        "/messages/send", data=raw.encode(), headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400
    got = response.json()
    assert got["success"] is False
    assert [e["field"] for e in got["errors"]] == ["body"]


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", None])
def test_wrong_content_type_is_400(stack, content_type):
    headers = {"Content-Type": content_type} if content_type else {}
    response = stack.post(
        "/messages/send",
        data=json.dumps({"message": "x", "phoneNumber": SEED_PHONE}).encode(),
        headers=headers,
    )
    assert response.status_code == 400
    got = response.json()
    assert got["success"] is False
    assert got["errors"] == [{"field": "Content-Type", "message": f"got {content_type or 'none'}"}]


def test_another_account_cannot_see_the_message(stack, other_key):
    mine = stack.post("/messages/send", {"message": SEED_TEXT, "phoneNumber": SEED_PHONE}).json()
    assert stack.get(f"/messages/{mine['messageId']}").status_code == 200

    theirs = stack.get(f"/messages/{mine['messageId']}", key=other_key)
    assert theirs.status_code == 404
    assert theirs.json() == {"success": False, "message": "Message not found", "errors": []}

    # The operator's new key works for its own account, and the first account cannot see it.
    own = stack.post("/messages/send", {"message": "x", "phoneNumber": SEED_PHONE}, key=other_key)
    assert own.status_code == 200, own.text
    assert stack.get(f"/messages/{own.json()['messageId']}", key=other_key).status_code == 200
    assert stack.get(f"/messages/{own.json()['messageId']}").status_code == 404


def test_unknown_message_id_is_404(stack):
    response = stack.get(f"/messages/{uuid.uuid4()}")
    assert response.status_code == 404
    assert response.json() == {"success": False, "message": "Message not found", "errors": []}
