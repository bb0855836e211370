"""Chinqit SMS Gateway API: thin views over chalicelib."""
from chalice import Chalice

from chalicelib import logs, messages, otp
from chalicelib.config import settings
from chalicelib.http import Router

logs.configure()
app = Chalice(app_name="chinqit-sms-gateway")
api = Router(app)


@api.route("/health", "GET", auth=None)
def health(call):
    return {"success": True, "status": "ok"}


@api.route("/messages/send", "POST")
def send_message(call):
    message = messages.send_sms(call.principal.owner_id, call.json())
    return {"success": True, "messageId": message.message_id, "queued": True}


@api.route("/messages/{message_id}", "GET")
def get_message(call):
    message = messages.get_for_account(call.principal.owner_id, call.params["message_id"])
    return {"success": True, **messages.to_json(message)}


@api.route("/otp/send", "POST")
def send_otp(call):
    message = otp.send(call.principal, call.json())
    return {"success": True, "messageId": message.message_id, "expiresIn": settings().otp_ttl_seconds}


@api.route("/otp/verify", "POST")
def verify_otp(call):
    otp.verify(call.principal, call.json())
    return {"success": True, "message": "OTP verified successfully", "verified": True}


api.not_found("/{proxy+}")
