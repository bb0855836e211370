"""POST /otp/send with channel whatsapp, through the handlers to a local fake Cloud API."""

import pytest

from chalicelib.config import settings

PHONE = "+22238089336"


def test_whatsapp_otp_reaches_the_provider_and_verifies(api, provider):
    response = api.post(
        "/otp/send", {"phoneNumber": "38089336", "channel": "whatsapp", "language": "ar"}
    )
    assert response.status_code == 200
    assert response.json["expiresIn"] == 600
    [request] = provider.requests
    template = request["body"]["template"]
    code = template["components"][0]["parameters"][0]["text"]
    assert request["body"]["to"] == "22238089336" and template["language"]["code"] == "ar"
    stored = api.get(f"/messages/{response.json['messageId']}").json
    assert stored["status"] == "sent" and stored["channel"] == "whatsapp"
    assert code not in stored["message"]
    sms_only = api.post("/otp/verify", {"phoneNumber": PHONE, "otp": code})
    assert sms_only.status_code == 400, "an OTP sent on whatsapp is not valid on the sms channel"
    verified = api.post("/otp/verify", {"phoneNumber": PHONE, "otp": code, "channel": "whatsapp"})
    assert verified.status_code == 200 and verified.json["verified"] is True


@pytest.mark.parametrize("mode", ["failure", "500", "slow"])
def test_provider_failure_is_502_and_the_message_failed(api, provider, mode):
    provider.mode = mode
    response = api.post("/otp/send", {"phoneNumber": PHONE, "channel": "whatsapp"})
    assert response.status_code == 502
    assert response.json["success"] is False and response.json["errors"] == []
    assert "WhatsApp provider" in response.json["message"]
    [request] = provider.requests
    code = request["body"]["template"]["components"][0]["parameters"][0]["text"]
    assert code not in response.body.decode()


def test_sms_queue_untouched_by_whatsapp_otps(api, provider):
    from tests.conftest import queued_bodies

    api.post("/otp/send", {"phoneNumber": PHONE, "channel": "whatsapp"})
    assert queued_bodies(settings().priority_queue) == []


@pytest.mark.parametrize("mode, event", [("ok", "sms.sent"), ("failure", "sms.failed")])
def test_whatsapp_otps_tell_the_webhook_like_sms_do(api, provider, mode, event):
    from chalicelib.models import Webhook
    from tests.conftest import queued_bodies

    Webhook(
        "acme",
        url="https://hooks.example.com/in",
        events=["sms.sent", "sms.failed"],
        secret_salt="salt",
    ).save()
    if mode != "ok":
        provider.mode = mode
    message_id = api.post("/otp/send", {"phoneNumber": PHONE, "channel": "whatsapp"}).json.get(
        "messageId"
    )
    [queued] = queued_bodies(settings().webhook_queue)
    assert queued["type"] == event and queued["payload"]["phoneNumber"] == PHONE
    if message_id:
        assert queued["payload"]["messageId"] == message_id
