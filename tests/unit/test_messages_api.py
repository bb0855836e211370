"""POST /messages/send and GET /messages/{id} through the Chalice handlers."""

import uuid

from chalicelib.config import settings
from tests.conftest import queued_bodies


def test_send_queues_the_message_and_answers_as_the_seed(api):
    response = api.post(
        "/messages/send",
        {"message": "Bonjour, ceci est un message de test", "phoneNumber": "38089336"},
    )
    assert response.status_code == 200
    assert set(response.json) == {"success", "messageId", "queued"}
    assert response.json["success"] is True and response.json["queued"] is True
    assert uuid.UUID(response.json["messageId"]).version == 4
    [queued] = queued_bodies(settings().outbound_queue)
    assert queued["messageId"] == response.json["messageId"]
    assert queued["to"] == "+22238089336"
    assert queued["text"] == "Bonjour, ceci est un message de test"
    assert queued["kind"] == "sms"


def test_get_returns_status_encoding_and_segments(api):
    sent = api.post("/messages/send", {"message": "Salam", "phoneNumber": "+22238089336"}).json
    response = api.get(f"/messages/{sent['messageId']}")
    assert response.status_code == 200
    body = response.json
    assert body["success"] is True
    assert body["messageId"] == sent["messageId"]
    assert body["status"] == "queued"
    assert body["phoneNumber"] == "+22238089336"
    assert body["message"] == "Salam"
    assert body["channel"] == "sms" and body["direction"] == "outbound"
    assert body["encoding"] == "GSM-7" and body["segments"] == 1
    assert body["createdAt"].endswith("Z") and body["updatedAt"].endswith("Z")


def test_arabic_and_long_texts_report_ucs2_and_segment_count(api):
    arabic = api.post("/messages/send", {"message": "مرحبا بكم", "phoneNumber": "22238089336"}).json
    long_text = api.post("/messages/send", {"message": "a" * 161, "phoneNumber": "38089336"}).json
    assert api.get(f"/messages/{arabic['messageId']}").json["encoding"] == "UCS-2"
    got = api.get(f"/messages/{long_text['messageId']}").json
    assert (got["encoding"], got["segments"]) == ("GSM-7", 2)


def test_unknown_and_foreign_messages_are_404(api, other_key):
    sent = api.post("/messages/send", {"message": "x", "phoneNumber": "38089336"}).json
    for key, message_id in ((api.key, str(uuid.uuid4())), (other_key, sent["messageId"])):
        response = api.get(
            f"/messages/{message_id}", key=other_key if key == other_key else api.key
        )
        assert response.status_code == 404
        assert response.json == {"success": False, "message": "Message not found", "errors": []}


def test_every_invalid_field_is_listed(api):
    response = api.post("/messages/send", {"message": "", "phoneNumber": "+222 27 63 56 42"})
    assert response.status_code == 400
    assert response.json["success"] is False
    fields = {e["field"]: e["message"] for e in response.json["errors"]}
    assert fields == {"message": "must not be empty", "phoneNumber": "spaces are not allowed"}
    assert queued_bodies(settings().outbound_queue) == []


def test_missing_fields_are_required(api):
    response = api.post("/messages/send", {})
    assert response.status_code == 400
    assert {e["field"] for e in response.json["errors"]} == {"message", "phoneNumber"}


def test_too_long_message_is_refused(api):
    response = api.post(
        "/messages/send", {"message": "b" * (153 * 10 + 1), "phoneNumber": "38089336"}
    )
    assert response.status_code == 400
    assert response.json["errors"][0]["field"] == "message"
    assert "11 SMS segments" in response.json["errors"][0]["message"]


def test_message_of_wrong_type_is_refused(api):
    response = api.post("/messages/send", {"message": 42, "phoneNumber": "38089336"})
    assert response.status_code == 400
    assert response.json["errors"] == [{"field": "message", "message": "must be a string"}]
