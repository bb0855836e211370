"""Chinqit SMS Gateway API: thin views over chalicelib.

Modules that only some routes or handlers use are imported inside them: a cold start
loads what its first request needs (bench/cold_start.py).
"""

import gc

gc.disable()  # nothing the imports build is garbage: collected never, frozen below

from chalice import Chalice, Rate, Response  # noqa: E402

from chalicelib import (  # noqa: E402
    aws,
    devices,
    idempotency,
    logs,
    metrics,
    oauth,
    optout,
    otp,
    readiness,
    routing,
    smsmobileapi,
    webhooks,
)
from chalicelib.config import settings  # noqa: E402
from chalicelib.http import Router  # noqa: E402
from chalicelib.messages import events, lifecycle, listing, outbound, schedule, store, views  # noqa: E402

logs.configure()
events.subscribe(webhooks.on_message_event)
events.subscribe(metrics.on_message_event)
app = Chalice(app_name="chinqit-sms-gateway")
api = Router(app)
aws.settled(app)


@api.route("/health", "GET", auth=None)
def health(call):
    """Liveness: the Lambda answers (no AWS call)."""
    return {"success": True, "status": "ok"}


@api.route("/ready", "GET", auth=None)
def ready(call):
    """Readiness: DynamoDB and SQS answer (checked at most every 5 s per container)."""
    return {"success": True, "status": "ready", "checks": readiness.check()}


@api.route("/messages/send", "POST")
def send_message(call):
    return outbound.send_sms(call.account_id, call.json(), idempotency.of(call))


@api.route("/messages/bulk", "POST")
def send_bulk(call):
    body = call.json()
    route = routing.requested(call.account_id, body.get("deviceId"), body.get("simSlot"))
    return outbound.send_many(
        call.account_id,
        body.get("message"),
        body.get("phoneNumbers"),
        _bulk_answer,
        route=route,
        key=idempotency.of(call),
        send_at=schedule.send_at()(body.get("sendAt")),
    )


def _bulk_answer(queued, errors) -> dict:
    send_at = queued[0].send_at if queued else None
    return {
        "success": True,
        "queued": 0 if send_at else len(queued),
        **({"scheduled": len(queued), "sendAt": views.iso(send_at)} if send_at else {}),
        "errors": errors,
        "messages": [{"phoneNumber": m.phone_number, "messageId": m.message_id} for m in queued],
    }


@api.route("/sendsms", "GET", key_param="apikey")
@api.route("/sendsms", "POST", key_param="apikey")
def sendsms(call):
    """SMSMobileAPI-compatible sending: apikey, recipients (comma separated), message; by
    SMS and/or WhatsApp (sendwa, sendsms, waonly, url_media)."""
    params = call.query_and_body()
    with smsmobileapi.results():
        route = routing.requested(
            call.account_id, params.get("sIdentifiant"), params.get("port"), "sIdentifiant", "port"
        )
        send_at = schedule.from_unix(params.get("schedule_timestamp"))
        return smsmobileapi.send(call.account_id, params, route, idempotency.of(call), send_at)


@api.route("/getsms", "GET", key_param="apikey")
def getsms(call):
    """SMSMobileAPI-compatible list of received SMS."""
    with smsmobileapi.results():
        return smsmobileapi.received(call.account_id, call.query_and_body())


@api.route("/log/sent/sms", "GET", key_param="apikey")
def sent_sms_log(call):
    """SMSMobileAPI-compatible log of the SMS sent through the API."""
    with smsmobileapi.results():
        return smsmobileapi.sent(call.account_id, call.query_and_body())


@api.route("/gateway/mobile/list", "GET", key_param="apikey")
def gateway_mobiles(call):
    """SMSMobileAPI-compatible list of the account's devices."""
    with smsmobileapi.results():
        return smsmobileapi.mobiles(devices.of_account(call.account_id), call.query_and_body())


@api.route("/messages", "GET")
def list_messages(call):
    return listing.list_page(call.account_id, call.query_params)


@api.route("/stats", "GET")
def message_stats(call):
    """Per-day counts by status, delivery rate, median delays, OTP conversion, unread."""
    from chalicelib.messages import stats

    return stats.summary(call.account_id, call.query_params)


@api.route("/messages/{message_id}", "GET")
def get_message(call):
    message = store.get_for_account(call.account_id, call.path_params["message_id"])
    return {"success": True, **views.to_json(message)}


@api.route("/messages/{message_id}", "DELETE")
def delete_message(call):
    lifecycle.delete(call.account_id, call.path_params["message_id"])
    return {"success": True, "messageId": call.path_params["message_id"], "deleted": True}


@api.route("/messages/{message_id}/cancel", "POST")
def cancel_message(call):
    message = schedule.cancel(call.account_id, call.path_params["message_id"])
    return {"success": True, **views.to_json(message)}


@api.route("/messages/{message_id}/resend", "POST")
def resend_message(call):
    message = outbound.resend(call.account_id, call.path_params["message_id"])
    return {"success": True, **views.to_json(message)}


@api.route("/messages/{message_id}/read", "POST")
def mark_message_read(call):
    message = store.mark_read(call.account_id, call.path_params["message_id"])
    return {"success": True, **views.to_json(message)}


@api.route("/oauth2/token", "POST", auth=None)
def oauth2_token(call):
    token = oauth.issue_token(
        call.form_fields(), call.content_type, call.request.headers.get("authorization")
    )
    return Response({"success": True, **token}, headers=oauth.NO_STORE)


@api.route("/otp/send", "POST")
def send_otp(call):
    return otp.send(call.principal, call.json(), idempotency.of(call))


@api.route("/otp/verify", "POST")
def verify_otp(call):
    otp.verify(call.principal, call.json())
    return {"success": True, "message": "OTP verified successfully", "verified": True}


@api.route("/contacts/opted-out", "GET")
def opted_out_numbers(call):
    return {"success": True, "phoneNumbers": optout.listed(call.account_id)}


@api.route("/contacts/opt-out", "GET")
def opt_out_settings(call):
    return optout.settings_view(call.account_id)


@api.route("/contacts/opt-out", "PUT")
def configure_opt_out(call):
    return optout.configure(call.account_id, call.json())


@api.route("/contacts/opted-out/{phone_number}", "PUT")
def opt_out_number(call):
    return optout.edit(call.account_id, call.path_params["phone_number"], suppressed=True)


@api.route("/contacts/opted-out/{phone_number}", "DELETE")
def opt_in_number(call):
    return optout.edit(call.account_id, call.path_params["phone_number"], suppressed=False)


@api.route("/whatsapp/webhook", "GET", auth=None)
def whatsapp_handshake(call):
    """Meta's subscription check: answers hub.challenge when hub.verify_token is ours."""
    from chalicelib.whatsapp import webhook

    challenge = webhook.handshake(call.query_params)
    return Response(challenge, headers={"Content-Type": "text/plain; charset=utf-8"})


@api.route("/whatsapp/webhook", "POST", auth=None)
def whatsapp_events(call):
    """Meta's statuses and inbound WhatsApp messages, signed with the app secret."""
    from chalicelib.whatsapp import webhook

    signature = call.request.headers.get("x-hub-signature-256")
    return {"success": True, **webhook.receive(call.request.raw_body or b"", signature)}


@api.route("/devices", "GET")
def list_devices(call):
    return {"success": True, "devices": devices.of_account(call.account_id)}


@api.route("/device/credentials", "POST", auth="device")
def device_aws_credentials(call):
    from chalicelib import device_credentials

    answer = device_credentials.issue(call.device_id)
    return Response({"success": True, **answer}, headers={"Cache-Control": "no-store"})


@api.route("/device/heartbeat", "POST", auth="device")
def device_heartbeat(call):
    devices.heartbeat(call.device_id, call.json())
    return {"success": True, "queues": devices.queues_to_poll(call.device_id)}


@api.route("/device/messages/{message_id}/status", "POST", auth="device")
def device_status(call):
    return {
        "success": True,
        **devices.report_status(call.device_id, call.path_params["message_id"], call.json()),
    }


@api.route("/device/inbound", "POST", auth="device")
def device_inbound(call):
    message, duplicate = devices.store_inbound(call.device_id, call.json())
    return {"success": True, "messageId": message.message_id, "duplicate": duplicate}


@api.route("/webhook", "PUT")
def put_webhook(call):
    return {"success": True, **webhooks.configure(call.account_id, call.json())}


@api.route("/webhook", "GET")
def get_webhook(call):
    return {"success": True, **webhooks.to_json(webhooks.get(call.account_id))}


@api.route("/webhook", "DELETE")
def delete_webhook(call):
    webhooks.delete(call.account_id)
    return {"success": True, "deleted": True}


@api.route("/webhook/test", "POST")
def test_webhook(call):
    return {"success": True, "eventId": webhooks.send_test(call.account_id), "queued": True}


@api.route("/openapi.json", "GET", auth=None)
def openapi_document(call):
    from chalicelib import apidoc

    return apidoc.document_response()


@api.route("/docs", "GET", auth=None)
def docs_page(call):
    from chalicelib import apidoc

    return apidoc.page_response()


@api.route("/docs/{asset}", "GET", auth=None)
def docs_asset(call):
    from chalicelib import apidoc

    return apidoc.asset_response(call.path_params["asset"])


@api.route("/console", "GET", auth=None)
def console_page(call):
    """The web console (also at /console/: API Gateway drops the trailing slash)."""
    from chalicelib import console

    return console.page_response(call.request.context.get("path"))


@api.route("/console/{asset}", "GET", auth=None)
def console_asset(call):
    from chalicelib import console

    return console.asset_response(call.path_params["asset"], call.query_params)


api.not_found("/{proxy+}", smsmobileapi.not_offered)


@app.schedule(Rate(1, unit=Rate.MINUTES))
def outbox_sweep(event):
    """SMS stored but never queued are queued again; OTPs that waited past expiry expire;
    webhook events SQS could not take are queued."""
    from chalicelib import outbox
    from chalicelib.webhooks import kept

    try:
        outbox.sweep()
    finally:
        kept.queue_kept()


@app.schedule(Rate(1, unit=Rate.MINUTES))
def device_watch(event):
    """Devices that went offline or came back: webhooks to their accounts, operator alert."""
    from chalicelib import presence

    presence.watch()


# Lambda finds each handler by its name in this module, hence one function per queue.
@app.on_sqs_message(queue=settings().outbound_queue + "-dlq", batch_size=10)
def outbound_dead_letters(event):
    from chalicelib import batches, dlq

    return batches.each_record(event, dlq.settle)


@app.on_sqs_message(queue=settings().priority_queue + "-dlq", batch_size=10)
def priority_dead_letters(event):
    from chalicelib import batches, dlq

    return batches.each_record(event, dlq.settle)


@app.on_sqs_message(queue=settings().webhook_queue, batch_size=10)
def webhook_worker(event):
    """Deliver webhook events (signed POSTs); retries and dead letters are handled inside."""
    from chalicelib import batches

    return batches.each_record(event, webhooks.handle_record, parallel=True)
