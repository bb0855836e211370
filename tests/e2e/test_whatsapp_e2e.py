"""WhatsApp over the wire: an API process on the local stack's AWS, pointed at a local
server that answers like the Cloud API; Meta's webhook posted to it over HTTP, signed;
a fallback SMS going all the way to the stack's simulated phone."""

import time

import pytest
import requests

from devstack.harness import fresh_local_number, start_api
from tests.integration.whatsapp_fake import (
    APP_SECRET,
    PHONE_ID,
    TOKEN,
    VERIFY_TOKEN,
    FakeProvider,
    message_event,
    signed,
    status_event,
    wamid,
)

pytestmark = pytest.mark.e2e


def wait_until(predicate, seconds=20.0):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"not true within {seconds} s")


@pytest.fixture(scope="module")
def cloud():
    with FakeProvider() as fake:
        yield fake


@pytest.fixture(scope="module")
def gateway(stack, cloud, tmp_path_factory):
    """The API with WhatsApp configured, on the stack's AWS (its bridge sends the SMS)."""
    api = start_api(
        tmp_path_factory.mktemp("whatsapp-api"),
        stack.aws_endpoint,
        SMSGW_WHATSAPP_API_URL=cloud.url,
        SMSGW_WHATSAPP_TOKEN=TOKEN,
        SMSGW_WHATSAPP_PHONE_NUMBER_ID=PHONE_ID,
        SMSGW_WHATSAPP_APP_SECRET=APP_SECRET,
        SMSGW_WHATSAPP_VERIFY_TOKEN=VERIFY_TOKEN,
        SMSGW_WHATSAPP_TIMEOUT="2",
        NO_PROXY="127.0.0.1,localhost",
    )
    yield api
    api.kill()


def call(gateway, stack, method, path, body=None):
    headers = {"X-API-Key": stack.key}
    return requests.request(method, gateway.url + path, json=body, headers=headers, timeout=30)


def meta(gateway, payload):
    raw, headers = signed(payload)
    headers["Content-Type"] = "application/json"
    return requests.post(
        gateway.url + "/whatsapp/webhook", data=raw.encode(), headers=headers, timeout=30
    )


def test_handshake_over_http(gateway):
    query = {"hub.mode": "subscribe", "hub.verify_token": VERIFY_TOKEN, "hub.challenge": "987654"}
    answer = requests.get(gateway.url + "/whatsapp/webhook", params=query, timeout=30)
    assert answer.status_code == 200 and answer.text == "987654"
    query["hub.verify_token"] = "wrong"
    assert (
        requests.get(gateway.url + "/whatsapp/webhook", params=query, timeout=30).status_code == 403
    )


def test_template_statuses_and_the_customers_reply(gateway, stack, cloud):
    cloud.mode = "success"
    local = fresh_local_number()
    template = {"name": "order_ready", "language": "fr", "parameters": ["A-7"]}
    sent = call(
        gateway,
        stack,
        "POST",
        "/messages/send",
        {"phoneNumber": local, "channel": "whatsapp", "template": template},
    )
    assert sent.status_code == 200, sent.text
    message_id = sent.json()["messageId"]
    assert sent.json()["status"] == "sent"
    request = cloud.requests[-1]
    assert request["body"]["biz_opaque_callback_data"] == message_id
    assert request["body"]["to"] == "222" + local
    provider_id = wamid(len(cloud.requests))  # the id the fake answered it
    for status in ("delivered", "read"):
        event = status_event(message_id, status, "222" + local, provider_id)
        assert meta(gateway, event).status_code == 200
    shown = stack.get(f"/messages/{message_id}").json()
    assert shown["status"] == "read" and shown["channel"] == "whatsapp"
    reply = meta(gateway, message_event("222" + local, "Merci !", f"wamid.E2E{local}"))
    assert reply.status_code == 200 and reply.json()["messages"] == 1
    inbound = stack.get(f"/messages?direction=inbound&phoneNumber=%2B222{local}").json()["messages"]
    assert [(m["channel"], m["message"]) for m in inbound] == [("whatsapp", "Merci !")]
    free = call(
        gateway,
        stack,
        "POST",
        "/messages/send",
        {"phoneNumber": local, "channel": "whatsapp", "message": "Avec plaisir"},
    )
    assert free.status_code == 200, free.text
    assert cloud.requests[-1]["body"]["text"]["body"] == "Avec plaisir"


def test_a_refused_template_falls_back_to_an_sms_that_reaches_the_phone(gateway, stack, cloud):
    cloud.mode = "no_template"
    local = fresh_local_number()
    body = {
        "phoneNumber": local,
        "channel": "whatsapp",
        "template": {"name": "promo"},
        "fallback": "sms",
        "message": "Promo: -20% ce week-end",
    }
    sent = call(gateway, stack, "POST", "/messages/send", body)
    assert sent.status_code == 200, sent.text
    assert sent.json()["channel"] == "sms"
    message_id = sent.json()["messageId"]
    [line] = wait_until(lambda: [x for x in stack.outbox_lines() if x["messageId"] == message_id])
    assert (line["to"], line["text"]) == ("+222" + local, "Promo: -20% ce week-end")
    shown = wait_until(
        lambda: (lambda m: m if m["status"] == "delivered" else None)(
            stack.get(f"/messages/{message_id}").json()
        )
    )
    assert shown["channel"] == "sms" and "132001" in shown["fallbackReason"]
