"""Chinqit SMS Gateway API: thin views over chalicelib."""
from chalice import Chalice

from chalicelib import devices, dlq, logs, messages, otp
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


@api.route("/device/heartbeat", "POST", auth="device")
def device_heartbeat(call):
    devices.heartbeat(call.principal.owner_id, call.json())
    return {"success": True}


@api.route("/device/messages/{message_id}/status", "POST", auth="device")
def device_status(call):
    message = devices.report_status(call.principal.owner_id, call.params["message_id"], call.json())
    return {"success": True, "messageId": message.message_id, "status": message.status}


@api.route("/device/inbound", "POST", auth="device")
def device_inbound(call):
    message, duplicate = devices.store_inbound(call.principal.owner_id, call.json())
    return {"success": True, "messageId": message.message_id, "duplicate": duplicate}


api.not_found("/{proxy+}")


# Lambda finds each handler by its name in this module, hence one function per queue.
@app.on_sqs_message(queue=settings().outbound_queue + "-dlq", batch_size=10)
def outbound_dead_letters(event):
    dlq.mark_dead_letters(record.body for record in event)


@app.on_sqs_message(queue=settings().priority_queue + "-dlq", batch_size=10)
def priority_dead_letters(event):
    dlq.mark_dead_letters(record.body for record in event)
