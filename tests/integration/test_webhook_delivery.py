"""The webhook worker against a real HTTP(S) receiver on 127.0.0.1 (allow-local on).

AWS is moto in-process; the worker runs through app.webhook_worker with a Lambda-shaped SQS
event. Time is a fake clock: retries are checked by what the worker puts back on SQS (delay,
attempt, notBefore) and then fed to it again "later", without sleeping.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess

import pytest

from chalicelib import auth, queue
from chalicelib import clock as clocks
from chalicelib.config import settings
from chalicelib.models import Device, KeptWebhookEvents, WebhookDelivery
from chalicelib.webhooks import kept
from devstack.sqs_trigger import scheduled_event

from ..clocks import ManualClock
from ..events import failed_bodies, sqs_event
from .webhook_receiver import Receiver, verify

START = 1_750_000_000


@pytest.fixture(autouse=True)
def webhook_env(monkeypatch):
    """Before the aws fixture (autouse runs first): settings are read fresh from these."""
    monkeypatch.setenv("SMSGW_STAGE", "dev")  # local webhooks: the local stack only
    monkeypatch.setenv("SMSGW_WEBHOOK_ALLOW_LOCAL", "1")
    monkeypatch.setenv("SMSGW_WEBHOOK_TIMEOUT", "0.5")
    monkeypatch.delenv("SMSGW_WEBHOOK_RETRY_DELAYS", raising=False)
    settings.cache_clear()


@pytest.fixture(autouse=True)
def clock():
    fake = ManualClock(start=START)
    clocks.use(fake)
    yield fake
    clocks.use(clocks.SYSTEM)


@pytest.fixture
def sent(aws):
    """Every message put on the webhook queues (read off the SQS client's SendMessage calls)."""
    calls = []
    webhook_queues = settings().webhook_queue

    def record(params, **_):
        if params["QueueUrl"].rsplit("/", 1)[-1].startswith(webhook_queues):
            calls.append(
                {
                    "event": json.loads(params["MessageBody"]),
                    "delay": params.get("DelaySeconds", 0),
                    "dead": params["QueueUrl"].endswith("-dlq"),
                }
            )

    hooks = queue.sqs().meta.events
    hooks.register("provide-client-params.sqs.SendMessage", record)
    yield calls
    hooks.unregister("provide-client-params.sqs.SendMessage", record)


@pytest.fixture
def receiver():
    with Receiver([200]) as running:
        yield running


@pytest.fixture
def device_key(aws):
    Device("phone-1", name="test phone", account_id="acme").save()
    key, _ = auth.create_key("device", "phone-1")
    return key


def set_webhook(api, url, **extra) -> str:
    response = api.call("PUT", "/webhook", {"url": url, **extra})
    assert response.status_code == 200, response.json
    return response.json["secret"]


def take_queued(name=None) -> list[str]:
    """Receive and delete every visible message of the webhook queue (or ``name``)."""
    sqs, url = queue.sqs(), queue.queue_url(name or settings().webhook_queue)
    bodies = []
    while True:
        batch = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0).get(
            "Messages", []
        )
        if not batch:
            return bodies
        for message in batch:
            bodies.append(message["Body"])
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])


def run_worker(*bodies) -> list[str]:
    """Invoke the worker Lambda as the SQS event source would; the bodies it reports failed."""
    from app import webhook_worker

    event = sqs_event(settings().webhook_queue, *bodies)
    return failed_bodies(event, webhook_worker(event, None))


def retries(sent) -> list[dict]:
    return [c for c in sent if c["delay"] and not c["dead"]]


def inbound(api, device_key, ref="sim:1", text="Bonjour"):
    body = {
        "from": "+22238089336",
        "text": text,
        "receivedAt": "2025-01-20T10:14:50Z",
        "deviceRef": ref,
    }
    response = api.post("/device/inbound", body, key=None, headers={"X-Device-Key": device_key})
    assert response.status_code == 200
    return response.json["messageId"]


# --- delivery --------------------------------------------------------------------------------


def test_inbound_sms_is_posted_signed_with_the_seed_fields(api, device_key, receiver, clock):
    secret = set_webhook(api, receiver.url())
    message_id = inbound(api, device_key, text="Bonjour, ça va ?")
    [body] = take_queued()
    run_worker(body)

    [request] = receiver.requests
    headers = request["headers"]
    assert request["method"] == "POST" and request["path"] == "/hook"
    assert headers["content-type"] == "application/json"
    assert headers["user-agent"] == "Chinqit-Webhooks/1"
    assert headers["host"] == f"127.0.0.1:{receiver.port}"
    assert headers["webhook-id"] == json.loads(body)["eventId"]
    assert headers["webhook-timestamp"] == str(START)
    assert headers["webhook-signature"].startswith("v1,")
    payload = verify(secret, headers, request["body"])
    assert payload == {
        "event": "sms.received",
        "messageId": message_id,
        "date": payload["date"],
        "hour": payload["hour"],
        "time_received": "2025-01-20 10:14:50",
        "message": "Bonjour, ça va ?",
        "number": "+22238089336",
        "guid": message_id,
        "deviceId": "phone-1",
        "channel": "sms",
    }
    with pytest.raises(ValueError):  # a tampered body fails the check
        verify(secret, headers, request["body"].replace(b"Bonjour", b"Bonsoir"))

    health = api.get("/webhook").json["health"]
    assert health["lastSuccessAt"] == "2025-06-15T15:06:40Z" and health["consecutiveFailures"] == 0
    assert WebhookDelivery.get(headers["webhook-id"]).state == "delivered"


def test_status_and_test_events(api, device_key, receiver):
    secret = set_webhook(api, receiver.url(), events=["sms.delivered"])
    message_id = api.post("/messages/send", {"message": "Salam", "phoneNumber": "38089336"}).json[
        "messageId"
    ]
    api.device_post(f"/device/messages/{message_id}/status", {"status": "delivered"}, device_key)
    event_id = api.post("/webhook/test").json["eventId"]
    run_worker(*take_queued())

    payloads = {
        r["headers"]["webhook-id"]: verify(secret, r["headers"], r["body"])
        for r in receiver.requests
    }
    assert payloads[event_id]["event"] == "webhook.test"
    [status] = [p for p in payloads.values() if p["event"] == "sms.delivered"]
    assert (
        status["messageId"],
        status["status"],
        status["phoneNumber"],
        status["statusReason"],
    ) == (message_id, "delivered", "+22238089336", None)
    assert status["timestamp"].endswith("Z")


def test_redirects_are_not_followed(api, sent):
    with Receiver([("redirect", 302, "http://127.0.0.1:1/elsewhere")]) as receiver:
        set_webhook(api, receiver.url())
        api.post("/webhook/test")
        run_worker(*take_queued())
        assert len(receiver.requests) == 1  # nothing asked for /elsewhere
    [retry] = retries(sent)
    assert retry["delay"] == 60 and retry["event"]["attempt"] == 2
    assert (
        "302" in retry["event"]["lastError"]
        and "redirect not followed" in retry["event"]["lastError"]
    )
    health = api.get("/webhook").json["health"]
    assert health["consecutiveFailures"] == 1 and "redirect" in health["lastFailureReason"]


def test_failures_are_retried_with_growing_delays_until_the_receiver_recovers(api, sent, clock):
    with Receiver([500, 503, ("sleep", 1.5, 200), 204]) as receiver:
        secret = set_webhook(api, receiver.url())
        event_id = api.post("/webhook/test").json["eventId"]
        run_worker(*take_queued())  # attempt 1: 500
        for delay, attempt in ((60, 2), (300, 3), (1800, 4)):
            retry = retries(sent)[-1]
            assert (retry["delay"], retry["event"]["attempt"]) == (min(delay, 900), attempt)
            assert retry["event"]["eventId"] == event_id
            if delay > 900:  # past SQS's cap: hop via notBefore
                assert retry["event"]["notBefore"] == int(clock.unix()) + delay
            clock.advance(delay)
            run_worker(json.dumps(retry["event"]))  # attempts 2: 503, 3: timeout, 4: 204
        requests = receiver.wait_for(4)
    assert [r["headers"]["webhook-id"] for r in requests] == [event_id] * 4
    stamps = [int(r["headers"]["webhook-timestamp"]) for r in requests]
    assert stamps == [START, START + 60, START + 360, START + 2160]
    for request in requests:  # each attempt signed for its own timestamp
        verify(secret, request["headers"], request["body"])
    reasons = [r["event"]["lastError"] for r in retries(sent)]
    assert reasons == ["HTTP 500", "HTTP 503", "timed out after 0.5s"]
    assert WebhookDelivery.get(event_id).state == "delivered"
    health = api.get("/webhook").json["health"]
    assert (
        health["consecutiveFailures"] == 0 and health["lastFailureReason"] == "timed out after 0.5s"
    )


def test_long_delays_hop_through_sqs_without_posting(api, sent, clock, monkeypatch):
    monkeypatch.setenv("SMSGW_WEBHOOK_RETRY_DELAYS", "2000")
    settings.cache_clear()
    with Receiver([500, 200]) as receiver:
        set_webhook(api, receiver.url())
        api.post("/webhook/test")
        run_worker(*take_queued())
        [retry] = retries(sent)
        assert retry["delay"] == 900 and retry["event"]["notBefore"] == START + 2000
        clock.advance(900)
        run_worker(json.dumps(retry["event"]))  # too early: one more hop, no POST
        hop = retries(sent)[-1]
        assert hop["delay"] == 900 and hop["event"] == retry["event"]
        clock.advance(900)
        run_worker(json.dumps(hop["event"]))
        last = retries(sent)[-1]
        assert last["delay"] == 200
        clock.advance(200)
        run_worker(json.dumps(last["event"]))
        assert len(receiver.wait_for(2)) == 2


def test_idempotent_on_the_event_id(api, sent, receiver):
    set_webhook(api, receiver.url())
    api.post("/webhook/test")
    [body] = take_queued()
    run_worker(body)
    run_worker(body)  # SQS redelivers the same message
    run_worker(body, body)  # ...or twice in one batch
    assert len(receiver.requests) == 1
    assert retries(sent) == []


def refuse_webhook_sends(monkeypatch, error: Exception) -> None:
    """SQS refuses every SendMessage of the webhook queue (the SMS queues still work)."""
    real = queue.sqs().send_message

    def send(**params):
        if params["QueueUrl"].endswith(settings().webhook_queue):
            raise error
        return real(**params)

    monkeypatch.setattr(queue.sqs(), "send_message", send)


def kept_events() -> list[dict]:
    buckets = [kept._bucket(shard) for shard in range(kept.SHARDS)]
    lists = KeptWebhookEvents.batch_get(buckets)
    return [json.loads(body) for item in lists for body in item.events]


def test_an_event_sqs_refused_is_kept_and_the_sweep_queues_it_once(
    api, device_key, receiver, monkeypatch
):
    from botocore.exceptions import ClientError

    from app import outbox_sweep

    set_webhook(api, receiver.url(), events=["sms.delivered"])
    text = {"message": "Salam", "phoneNumber": "38089336"}
    message_id = api.post("/messages/send", text).json["messageId"]
    with monkeypatch.context() as patched:
        throttled = ClientError({"Error": {"Code": "ThrottlingException"}}, "SendMessage")
        refuse_webhook_sends(patched, throttled)
        path = f"/device/messages/{message_id}/status"
        assert api.device_post(path, {"status": "delivered"}, device_key).status_code == 200
    assert take_queued() == []
    assert [event["payload"]["messageId"] for event in kept_events()] == [message_id]
    outbox_sweep(scheduled_event("outbox-sweep"), None)
    queued = take_queued()
    assert kept_events() == []
    outbox_sweep(scheduled_event("outbox-sweep"), None)
    assert take_queued() == [], "taken off the kept list once queued"
    run_worker(*queued)
    [request] = receiver.requests
    assert json.loads(request["body"])["messageId"] == message_id


def test_an_event_is_not_kept_when_aws_did_not_answer(api, device_key, monkeypatch, caplog):
    from botocore.exceptions import ReadTimeoutError

    set_webhook(api, "http://127.0.0.1:9999/hook", events=["sms.delivered"])
    text = {"message": "Salam", "phoneNumber": "38089336"}
    message_id = api.post("/messages/send", text).json["messageId"]
    refuse_webhook_sends(monkeypatch, ReadTimeoutError(endpoint_url="sqs"))
    path = f"/device/messages/{message_id}/status"
    assert api.device_post(path, {"status": "delivered"}, device_key).status_code == 200
    assert "lost: AWS did not answer" in caplog.text
    assert kept_events() == [], "no second call, that would wait as long"


def test_duplicates_never_fork_the_retry_chain(api, sent, clock):
    with Receiver([500, 200]) as receiver:
        set_webhook(api, receiver.url())
        api.post("/webhook/test")
        [body] = take_queued()
        run_worker(body, body)  # two copies of attempt 1: one POST, one retry
        assert len(receiver.requests) == 1 and len(retries(sent)) == 1
        run_worker(body)  # a late copy of attempt 1
        assert len(receiver.requests) == 1 and len(retries(sent)) == 1
        retry = json.dumps(retries(sent)[0]["event"])
        clock.advance(60)
        run_worker(retry, retry)
        run_worker(body)
        assert len(receiver.wait_for(2)) == 2
    assert len(retries(sent)) == 1


def test_gives_up_after_the_schedule_into_the_dead_letter_queue(api, sent, clock, monkeypatch):
    monkeypatch.setenv("SMSGW_WEBHOOK_RETRY_DELAYS", "60,300")
    settings.cache_clear()
    with Receiver([500]) as receiver:
        set_webhook(api, receiver.url())
        event_id = api.post("/webhook/test").json["eventId"]
        body = take_queued()[0]
        for delay in (60, 300, None):
            run_worker(body)
            if delay:
                body = json.dumps(retries(sent)[-1]["event"])
                clock.advance(delay)
        assert len(receiver.requests) == 3
        run_worker(body)  # a copy after giving up: nothing more
        assert len(receiver.requests) == 3
    [dead] = [json.loads(b) for b in take_queued(settings().webhook_queue + "-dlq")]
    assert (dead["eventId"], dead["attempt"], dead["reason"]) == (event_id, 3, "HTTP 500")
    assert WebhookDelivery.get(event_id).state == "dead"
    health = api.get("/webhook").json["health"]
    assert health["deadLettered"] == 1 and health["lastDeadLetterEventId"] == event_id
    assert health["lastFailureReason"] == "HTTP 500" and health["consecutiveFailures"] == 3
    assert health["lastDeadLetterAt"] == "2025-06-15T15:12:40Z"


def test_refused_at_delivery_time_is_permanent(api, sent, monkeypatch):
    """DNS rebinding: public when set, metadata address when delivering -> dead-lettered at once."""
    monkeypatch.setenv("SMSGW_WEBHOOK_ALLOW_LOCAL", "")
    settings.cache_clear()
    answers = {"hooks.example.com": "93.184.216.34"}

    def getaddrinfo(host, port, *args, **kwargs):
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (answers[host], port))]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    set_webhook(api, "https://hooks.example.com/hook")
    api.post("/webhook/test")
    answers["hooks.example.com"] = "169.254.169.254"
    run_worker(*take_queued())
    assert retries(sent) == []  # a connection tried (and failed) would have been retried
    [dead] = [json.loads(b) for b in take_queued(settings().webhook_queue + "-dlq")]
    assert dead["reason"] == (
        "hooks.example.com does not resolve to a public address; "
        "webhooks only go to public addresses"
    )
    assert api.get("/webhook").json["health"]["deadLettered"] == 1


def test_the_checked_address_is_the_one_connected_to(api, receiver, monkeypatch):
    """The worker resolves once and connects to that address: no second lookup to rebind."""
    lookups = []

    def getaddrinfo(host, port, *args, **kwargs):
        lookups.append(host)
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port))]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    set_webhook(api, receiver.url(host="hooks.localtest"))
    api.post("/webhook/test")
    lookups.clear()
    run_worker(*take_queued())
    [request] = receiver.requests
    assert lookups.count("hooks.localtest") == 1  # the name: once, for the check
    assert set(lookups) <= {"hooks.localtest", "127.0.0.1"}  # the socket gets the checked address
    assert request["headers"]["host"] == f"hooks.localtest:{receiver.port}"


def test_deleted_webhook_drops_queued_events(api, receiver, sent):
    set_webhook(api, receiver.url())
    api.post("/webhook/test")
    api.call("DELETE", "/webhook")
    run_worker(*take_queued())
    assert receiver.requests == [] and retries(sent) == []


def test_one_bad_record_does_not_disturb_the_others(api, receiver, sent):
    set_webhook(api, receiver.url())
    api.post("/webhook/test")
    api.post("/webhook/test")
    good, other = take_queued()
    # DynamoDB refuses a key over 2048 bytes: claiming this event fails inside the worker.
    bad = json.loads(other)
    bad["eventId"] = "evt_" + "x" * 2100
    assert run_worker("not json", good, json.dumps(bad)) == []  # nothing comes again
    assert [r["headers"]["webhook-id"] for r in receiver.requests] == [json.loads(good)["eventId"]]
    requeued = [c for c in sent if c["event"].get("internalErrors")]
    assert [(c["event"]["eventId"], c["delay"]) for c in requeued] == [(bad["eventId"], 30)]
    [malformed] = [c for c in sent if c["dead"]]
    assert malformed["event"] == {"malformed": "not json"}
    body = json.dumps(requeued[0]["event"])
    for _ in range(5):  # it never succeeds: after MAX_INTERNAL_ERRORS it is dead-lettered
        sent.clear()
        run_worker(body)
        [copy] = sent
        body = json.dumps(copy["event"])
    assert copy["dead"] and copy["event"]["reason"] == "internal errors"
    assert len(receiver.requests) == 1


def test_a_record_that_cannot_even_be_requeued_comes_back_alone(api, receiver):
    set_webhook(api, receiver.url())
    api.post("/webhook/test")
    api.post("/webhook/test")
    good, other = take_queued()
    bad = json.loads(other)
    bad["eventId"] = "evt_" + "x" * 2100  # fails inside the worker...
    queue.sqs().delete_queue(QueueUrl=queue.queue_url(settings().webhook_queue))  # ...for good
    assert run_worker(good, json.dumps(bad)) == [json.dumps(bad)]
    assert [r["headers"]["webhook-id"] for r in receiver.requests] == [json.loads(good)["eventId"]]


# --- HTTPS: the name is verified on the certificate even though we connect to an address ----


@pytest.fixture(scope="module")
def certificate(tmp_path_factory):
    if not shutil.which("openssl"):
        pytest.skip("openssl is needed to make a test certificate")
    folder = tmp_path_factory.mktemp("tls")
    pem = folder / "hooks.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=hooks.localtest",
            "-addext",
            "subjectAltName=DNS:hooks.localtest",
            "-keyout",
            str(pem),
            "-out",
            str(pem),
        ],
        check=True,
        capture_output=True,
    )
    return str(pem)


@pytest.fixture
def tls_dns(monkeypatch, certificate):
    monkeypatch.setattr(
        socket,
        "getaddrinfo",
        lambda host, port, *a, **k: [
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port))
        ],
    )
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", certificate)


def test_https_with_sni_and_certificate_check(api, tls_dns, certificate):
    with Receiver([200], certfile=certificate) as receiver:
        secret = set_webhook(api, receiver.url(host="hooks.localtest"))
        api.post("/webhook/test")
        run_worker(*take_queued())
        [request] = receiver.wait_for(1)
    verify(secret, request["headers"], request["body"])
    assert request["headers"]["host"] == f"hooks.localtest:{receiver.port}"


def test_https_certificate_for_another_name_fails(api, tls_dns, certificate, sent):
    with Receiver([200], certfile=certificate) as receiver:
        set_webhook(api, receiver.url(host="other.localtest"))
        api.post("/webhook/test")
        run_worker(*take_queued())
        assert receiver.requests == []
    [retry] = retries(sent)
    assert retry["event"]["lastError"].startswith("TLS error")
