"""Webhooks over the wire: an SMS written to the simulated phone's inbox reaches a local
receiver as a signed POST; a receiver that fails first is retried, then succeeds.

Needs the local stack with its device bridge on the simulator (`stack`, tests/e2e/conftest.py).
The stack turns SMSGW_WEBHOOK_ALLOW_LOCAL on (so http://127.0.0.1 is a valid target) and
retries after 1, 2, 5, 10, 30 s (SMSGW_WEBHOOK_RETRY_DELAYS, devstack/__main__.py).
"""

from __future__ import annotations

import json
import secrets
import time

import pytest

from tests.integration.webhook_receiver import Receiver, verify

pytestmark = pytest.mark.e2e

SEED_PHONE = "+22238089336"
ARRIVAL_SECONDS = 30
LEFT = ("sent", "delivered")  # the SMS left the phone


@pytest.fixture
def running(request):
    try:
        return request.getfixturevalue("stack")
    except pytest.FixtureLookupError:
        pytest.skip("no `stack` fixture (tests/e2e/conftest.py) to start the local stack")


def receive_sms(stack, text: str) -> None:
    """The simulated phone receives an SMS: one JSON line appended to its inbox file."""
    # The inbound SMS belongs to whoever wrote to the number last: make that this account.
    sent = stack.post("/messages/send", {"message": "Salam", "phoneNumber": SEED_PHONE})
    assert sent.status_code == 200, sent.text
    deadline = time.monotonic() + ARRIVAL_SECONDS  # until it left the phone, a reply is not ours
    while stack.get(f"/messages/{sent.json()['messageId']}").json()["status"] not in LEFT:
        assert time.monotonic() < deadline, "the SMS that makes the reply ours was not sent"
        time.sleep(0.1)
    with open(stack.inbox, "a", encoding="utf-8") as inbox:
        inbox.write(json.dumps({"from": SEED_PHONE, "text": text}, ensure_ascii=False) + "\n")


def stored_inbound(stack, text: str):
    listing = stack.get("/messages", params={"direction": "inbound", "phoneNumber": SEED_PHONE})
    if listing.status_code != 200:
        return None
    return next((m for m in listing.json().get("messages", []) if m.get("message") == text), None)


def wait_requests(stack, receiver: Receiver, count: int, text: str) -> list[dict]:
    requests = receiver.wait_for(count, ARRIVAL_SECONDS)
    if len(requests) >= count:
        return requests
    assert stored_inbound(stack, text) is not None, (
        f"the inbox line never reached the API within {ARRIVAL_SECONDS}s"
        f"\n--- stack log ---\n{stack.log_text()[-4000:]}"
    )
    raise AssertionError(
        f"the SMS was stored but the receiver got {len(requests)} of {count} "
        f"webhook POSTs\n--- stack log ---\n{stack.log_text()[-4000:]}"
    )


def put_webhook(stack, url: str, **extra):
    import requests

    response = requests.put(
        stack.url + "/webhook", json={"url": url, **extra}, headers=stack.headers(), timeout=30
    )
    assert response.status_code == 200, response.text
    return response.json()


def test_inbound_sms_reaches_the_receiver_signed_and_failures_are_retried(running):
    stack = running
    import requests

    try:
        with Receiver([200]) as receiver:
            secret = put_webhook(stack, receiver.url(), rotateSecret=True)["secret"]
            assert secret.startswith("whsec_")
            text = "Bonjour"
            started = time.monotonic()
            receive_sms(stack, text)
            [request] = wait_requests(stack, receiver, 1, text)
            latency = time.monotonic() - started
            payload = verify(secret, request["headers"], request["body"], tolerance=300)
            assert payload["event"] == "sms.received"
            assert (payload["message"], payload["number"]) == (text, SEED_PHONE)
            assert payload["guid"] == payload["messageId"]
            assert {"date", "hour", "time_received"} <= set(payload)
            assert request["headers"]["user-agent"] == "Chinqit-Webhooks/1"
            print(f"inbox -> webhook receiver: {latency:.2f}s")

        with Receiver([500, 200]) as flaky:
            put_webhook(stack, flaky.url())  # same secret: not rotated
            text = "Bonjour encore " + secrets.token_hex(3)
            receive_sms(stack, text)
            first, second = wait_requests(stack, flaky, 2, text)[:2]
            assert first["headers"]["webhook-id"] == second["headers"]["webhook-id"]
            for attempt in (first, second):
                assert (
                    verify(secret, attempt["headers"], attempt["body"], tolerance=300)["message"]
                    == text
                )
            assert int(second["headers"]["webhook-timestamp"]) >= int(
                first["headers"]["webhook-timestamp"]
            )

            deadline = time.monotonic() + 10
            while True:  # the worker records the outcome right after the POST
                health = stack.get("/webhook").json()["health"]
                if (
                    health["consecutiveFailures"] == 0
                    and health["lastSuccessAt"]
                    or time.monotonic() > deadline
                ):
                    break
                time.sleep(0.1)
            assert health["consecutiveFailures"] == 0 and health["lastSuccessAt"]
            assert health["lastFailureReason"] == "HTTP 500"
    finally:
        requests.delete(stack.url + "/webhook", headers=stack.headers(), timeout=30)


def test_each_webhook_format_verifies_with_its_own_method(running):
    """standard: the standardwebhooks library; smsmobileapi-v2: their hex HMAC of
    "{timestamp}.{body}" (SmsMobileApi/smsmobileapi-webhook-examples)."""
    import hashlib
    import hmac

    import requests
    from standardwebhooks.webhooks import Webhook

    stack = running
    try:
        with Receiver([200, 200]) as receiver:
            secret = put_webhook(stack, receiver.url(), rotateSecret=True)["secret"]
            text = "Standard " + secrets.token_hex(3)
            receive_sms(stack, text)
            [standard] = wait_requests(stack, receiver, 1, text)
            assert Webhook(secret).verify(standard["body"], standard["headers"])["message"] == text

            answer = put_webhook(stack, receiver.url(), format="smsmobileapi-v2")
            assert answer["format"] == "smsmobileapi-v2" and answer["secret"] is None
            text = "V2 " + secrets.token_hex(3)
            receive_sms(stack, text)
            v2 = wait_requests(stack, receiver, 2, text)[1]
        headers = v2["headers"]
        signed = headers["x-smsmobileapi-timestamp"].encode() + b"." + v2["body"]
        expected = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
        assert hmac.compare_digest(headers["x-smsmobileapi-signature"], "v1=" + expected)
        envelope = json.loads(v2["body"])
        assert set(envelope) == {"id", "type", "api_version", "created_at", "occurred_at", "data"}
        assert envelope["type"] == headers["x-smsmobileapi-event"] == "sms.received"
        assert envelope["id"] == headers["x-smsmobileapi-event-id"] == headers["idempotency-key"]
        data = envelope["data"]
        assert (data["from"], data["message"]) == (SEED_PHONE, text) and data["guid"]
        assert data["device_id"] and data["received_at"].endswith("Z")
        assert "webhook-signature" not in headers
    finally:
        requests.delete(stack.url + "/webhook", headers=stack.headers(), timeout=30)
