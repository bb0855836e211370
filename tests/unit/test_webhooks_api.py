"""PUT/GET/DELETE /webhook and POST /webhook/test: configuration, tenancy, SSRF guard, producers."""

import base64
import json
import re
import socket

import pytest

from chalicelib import queue, webhooks
from chalicelib.config import settings
from chalicelib.models import Webhook

from ..conftest import queued_bodies

PHONE = "+22238089336"
HOOK = "https://hooks.example.com/sms"

# Fake DNS for names the tests use; anything else (IP literals, localhost) resolves for real.
FAKE_DNS = {
    "hooks.example.com": ["93.184.216.34"],
    "other.example.com": ["93.184.216.35", "2606:2800:220:1::248"],
    "internal.example.com": ["10.0.0.5"],
    "metadata.example.com": ["169.254.169.254"],
    "mixed.example.com": ["93.184.216.34", "192.168.1.10"],
    "loopback6.example.com": ["::1"],
}


@pytest.fixture(autouse=True)
def resolver(monkeypatch):
    real = socket.getaddrinfo

    def getaddrinfo(host, port, *args, **kwargs):
        if host in FAKE_DNS:
            return [
                (
                    socket.AF_INET6 if ":" in ip else socket.AF_INET,
                    socket.SOCK_STREAM,
                    6,
                    "",
                    (ip, port),
                )
                for ip in FAKE_DNS[host]
            ]
        if host.endswith(".invalid"):
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


@pytest.fixture
def allow_local(monkeypatch):
    monkeypatch.setenv("SMSGW_STAGE", "dev")  # local webhooks: the local stack only
    monkeypatch.setenv("SMSGW_WEBHOOK_ALLOW_LOCAL", "1")
    settings.cache_clear()
    yield
    settings.cache_clear()


def put(api, body, **kw):
    return api.call("PUT", "/webhook", body, **kw)


def delete(api, **kw):
    return api.call("DELETE", "/webhook", **kw)


def webhook_events():
    return queued_bodies(settings().webhook_queue)


# --- configuration ---------------------------------------------------------------------------


def test_put_sets_webhook_and_shows_secret_once(api):
    response = put(api, {"url": HOOK})
    assert response.status_code == 200, response.json
    body = response.json
    assert body["success"] is True and body["url"] == HOOK
    assert body["events"] == ["sms.received"]  # status events are opt-in
    secret = body["secret"]
    assert re.fullmatch(r"whsec_[A-Za-z0-9+/]+={0,2}", secret)
    assert len(base64.b64decode(secret.removeprefix("whsec_"))) >= 24

    shown = api.get("/webhook")
    assert shown.status_code == 200
    assert secret not in shown.body.decode() and "secret" not in shown.json
    assert shown.json["url"] == HOOK and shown.json["events"] == ["sms.received"]
    assert shown.json["health"] == {
        "lastSuccessAt": None,
        "lastFailureAt": None,
        "lastFailureReason": None,
        "consecutiveFailures": 0,
        "deadLettered": 0,
        "lastDeadLetterAt": None,
        "lastDeadLetterEventId": None,
    }
    assert shown.json["createdAt"].endswith("Z")
    # Not stored: the table holds a salt, the secret needs the server key too.
    stored = Webhook.get("acme")
    assert secret not in json.dumps(stored.attribute_values, default=str)
    assert webhooks.secret_for("acme", stored.secret_salt) == secret


def test_changing_the_url_keeps_the_secret_unless_rotated(api):
    first = put(api, {"url": HOOK}).json["secret"]
    changed = put(
        api, {"url": "https://other.example.com/v2", "events": ["sms.received", "sms.failed"]}
    )
    assert changed.status_code == 200
    assert changed.json["secret"] is None
    assert changed.json["events"] == ["sms.received", "sms.failed"]
    stored = Webhook.get("acme")
    assert stored.url == "https://other.example.com/v2"
    assert webhooks.secret_for("acme", stored.secret_salt) == first

    rotated = put(api, {"url": HOOK, "rotateSecret": True}).json["secret"]
    assert rotated and rotated != first
    assert webhooks.secret_for("acme", Webhook.get("acme").secret_salt) == rotated
    assert api.get("/webhook").json["events"] == ["sms.received"]  # PUT replaces: default again


def test_all_events_and_duplicates(api):
    every = ["sms.received", "sms.sent", "sms.delivered", "sms.failed", "sms.sent"]
    response = put(api, {"url": HOOK, "events": every})
    assert response.json["events"] == ["sms.received", "sms.sent", "sms.delivered", "sms.failed"]


@pytest.mark.parametrize(
    "body, field, words",
    [
        ({}, "url", "required"),
        ({"url": 42}, "url", "URL"),
        ({"url": ""}, "url", "URL"),
        ({"url": "not a url"}, "url", "spaces"),
        ({"url": "hooks.example.com/sms"}, "url", "https://"),
        ({"url": "ftp://hooks.example.com/"}, "url", "https://"),
        ({"url": "https://"}, "url", "https://"),
        ({"url": "https://nowhere.invalid/hook"}, "url", "does not resolve"),
        ({"url": HOOK, "events": "sms.received"}, "events", "list"),
        ({"url": HOOK, "events": []}, "events", "at least one"),
        ({"url": HOOK, "events": ["sms.received", "sms.bogus"]}, "events", "sms.bogus"),
        ({"url": HOOK, "events": [1]}, "events", "unknown"),
        ({"url": HOOK, "rotateSecret": "yes"}, "rotateSecret", "true or false"),
    ],
)
def test_validation(api, body, field, words):
    response = put(api, body)
    assert response.status_code == 400, response.json
    assert response.json["success"] is False
    assert [e["field"] for e in response.json["errors"]] == [field]
    assert words in response.json["errors"][0]["message"]
    assert api.get("/webhook").status_code == 404


def test_body_must_be_json(api):
    response = api.call(
        "PUT",
        "/webhook",
        raw="url=https://hooks.example.com",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 400


def test_no_webhook_is_404_everywhere(api):
    for response in (api.get("/webhook"), delete(api), api.post("/webhook/test")):
        assert response.status_code == 404
        assert response.json == {
            "success": False,
            "message": "No webhook is set for this account",
            "errors": [],
        }


def test_delete(api):
    put(api, {"url": HOOK})
    response = delete(api)
    assert response.status_code == 200 and response.json == {"success": True, "deleted": True}
    assert api.get("/webhook").status_code == 404
    assert delete(api).status_code == 404


def test_needs_an_api_key(api):
    assert put(api, {"url": HOOK}, key=None).status_code == 401
    assert api.get("/webhook", key="cq_live_nope").status_code == 403


def test_tenancy(api, other_key):
    put(api, {"url": HOOK})
    for response in (
        api.get("/webhook", key=other_key),
        delete(api, key=other_key),
        api.post("/webhook/test", key=other_key),
    ):
        assert response.status_code == 404
    assert api.get("/webhook").json["url"] == HOOK  # untouched
    assert put(api, {"url": "https://other.example.com/b"}, key=other_key).status_code == 200
    assert api.get("/webhook").json["url"] == HOOK
    assert api.get("/webhook", key=other_key).json["url"] == "https://other.example.com/b"
    assert webhook_events() == []


def test_test_event_is_queued(api):
    put(api, {"url": HOOK})
    response = api.post("/webhook/test")
    assert response.status_code == 200
    event_id = response.json["eventId"]
    assert re.fullmatch(r"evt_[0-9a-f]{32}", event_id)
    [event] = webhook_events()
    assert (event["eventId"], event["accountId"], event["type"], event["attempt"]) == (
        event_id,
        "acme",
        "webhook.test",
        1,
    )
    assert event["payload"]["event"] == "webhook.test"


# --- SSRF guard ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url, words",
    [
        ("http://hooks.example.com/sms", "https"),
        ("https://127.0.0.1/hook", "loopback"),
        ("https://127.1.2.3:8443/hook", "loopback"),
        ("https://localhost/hook", "localhost does not resolve to a public address"),
        (
            "https://2130706433/hook",
            "does not resolve to a public address",
        ),  # 127.0.0.1 spelled as a number
        ("https://10.0.0.1/hook", "private"),
        ("https://172.16.5.4/hook", "private"),
        ("https://192.168.1.1/hook", "private"),
        ("https://169.254.169.254/latest/meta-data/", "link-local"),
        ("https://[::1]/hook", "loopback"),
        ("https://[fe80::1]/hook", "link-local"),
        ("https://[::ffff:127.0.0.1]/hook", "IPv4-mapped"),
        ("https://[::ffff:169.254.169.254]/hook", "link-local"),
        ("https://[fd00::1]/hook", "private"),
        ("https://100.64.0.1/hook", "carrier-grade NAT"),
        ("https://0.0.0.0/hook", "unspecified"),
        ("https://224.0.0.1/hook", "multicast"),
        ("https://240.0.0.1/hook", "reserved"),
        ("https://192.0.2.10/hook", "public"),  # documentation range
        ("https://[2001:db8::1]/hook", "public"),  # IPv6 documentation ranges
        ("https://[3fff::1]/hook", "public"),
        ("https://[3fff:fff:ffff::1]/hook", "public"),
        (
            "https://internal.example.com/hook",
            "internal.example.com does not resolve to a public address",
        ),
        ("https://metadata.example.com/hook", "does not resolve to a public address"),
        (
            "https://mixed.example.com/hook",
            "does not resolve to a public address",
        ),  # one bad address is enough
        ("https://loopback6.example.com/hook", "does not resolve to a public address"),
        ("https://user:pass@hooks.example.com/hook", "user name or password"),
        ("https://hooks.example.com:22/hook", "port 22"),
        ("https://hooks.example.com/hook#top", "fragment"),
        ("https://hooks.example.com\\@10.0.0.1/", "backslash"),
    ],
)
def test_ssrf_refusals(api, url, words):
    response = put(api, {"url": url})
    assert response.status_code == 400, response.json
    error = response.json["errors"][0]
    assert error["field"] == "url" and words in error["message"], error
    if "resolve" in error["message"]:  # a name: what it resolved to is never shown
        assert not any(
            address in error["message"]
            for address in ("127.0.0.1", "10.0.0.5", "192.168.1.10", "169.254", "::1")
        )


def test_a_missing_name_and_an_internal_one_get_the_same_answer(api):
    """Otherwise the answer would tell which internal names exist."""
    answers = [
        put(api, {"url": f"https://{host}/hook"}).json
        for host in ("a.invalid", "internal.example.com")
    ]
    assert answers[0] == json.loads(
        json.dumps(answers[1]).replace("internal.example.com", "a.invalid")
    )
    assert answers[0]["errors"][0]["message"] == (
        "a.invalid does not resolve to a public address; webhooks only go to public addresses"
    )


@pytest.mark.parametrize(
    "url",
    [
        HOOK,
        "https://hooks.example.com:8443/a?token=x",
        "https://other.example.com/",
        "https://93.184.216.34/hook",
        "https://[2606:2800:220:1::248]/hook",
    ],
)
def test_public_urls_are_accepted(api, url):
    assert put(api, {"url": url}).status_code == 200


def test_allow_local_permits_http_and_loopback_only(api, allow_local):
    for url in (
        "http://127.0.0.1:9999/hook",
        "http://localhost:8080/hook",
        "http://[::1]:8080/",
        "https://127.0.0.1:8443/hook",
        "http://hooks.example.com/sms",
    ):
        assert put(api, {"url": url}).status_code == 200, url
    for url, words in (
        ("http://169.254.169.254/latest/meta-data/", "link-local"),
        ("http://10.0.0.1/hook", "private"),
        ("http://192.168.0.10/", "private"),
        ("http://[fe80::1]:8080/", "link-local"),
        ("http://metadata.example.com/", "does not resolve to a public address"),
        ("http://100.64.0.1/", "carrier-grade NAT"),
    ):
        response = put(api, {"url": url})
        assert response.status_code == 400 and words in response.json["errors"][0]["message"], url


def test_allow_local_is_off_by_default(monkeypatch):
    monkeypatch.delenv("SMSGW_WEBHOOK_ALLOW_LOCAL", raising=False)
    settings.cache_clear()
    assert settings().webhook_allow_local is False


# --- producers -------------------------------------------------------------------------------


def inbound(api, device_key, ref="sim:1", text="Oui, merci"):
    body = {
        "from": "38089336",
        "text": text,
        "receivedAt": "2025-01-20T10:14:50Z",
        "deviceRef": ref,
    }
    return api.device_post("/device/inbound", body, device_key)


def test_inbound_sms_queues_one_event_with_seed_fields(api, device_key):
    put(api, {"url": HOOK})
    first = inbound(api, device_key).json
    assert inbound(api, device_key).json["duplicate"] is True
    events = webhook_events()
    assert len({e["eventId"] for e in events}) == 1, "a repost queues the same event again"
    event = events[0]
    assert event["type"] == "sms.received" and event["accountId"] == "acme"
    assert event["eventId"].startswith("evt_")
    payload = event["payload"]
    assert set(payload) == {
        "event",
        "messageId",
        "date",
        "hour",
        "time_received",
        "message",
        "number",
        "guid",
        "deviceId",
        "channel",
    }
    assert payload["event"] == "sms.received" and payload["deviceId"] == "phone-1"
    assert payload["channel"] == "sms"
    assert payload["messageId"] == payload["guid"] == first["messageId"]
    assert payload["time_received"] == "2025-01-20 10:14:50"
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", payload["date"])
    assert re.fullmatch(r"\d{2}:\d{2}:\d{2}", payload["hour"])
    assert (payload["message"], payload["number"]) == ("Oui, merci", PHONE)


def test_no_webhook_means_no_queue_message_and_one_read_per_cache_period(
    api, device_key, monkeypatch
):
    reads = []
    original = Webhook.get

    def counting_get(*args, **kwargs):
        reads.append(args)
        return original(*args, **kwargs)

    monkeypatch.setattr(Webhook, "get", counting_get)
    for ref in ("a", "b", "c"):
        inbound(api, device_key, ref=ref)
    assert webhook_events() == []
    assert len(reads) == 1  # the negative answer is cached
    put(api, {"url": HOOK})  # the Lambda that sets a webhook forgets its cached answer
    inbound(api, device_key, ref="d")
    assert len(webhook_events()) == 1


def test_status_events_are_opt_in(api, device_key):
    put(api, {"url": HOOK})  # sms.received only
    message_id = api.post("/messages/send", {"message": "Salam", "phoneNumber": PHONE}).json[
        "messageId"
    ]
    api.device_post(f"/device/messages/{message_id}/status", {"status": "sent"}, device_key)
    assert webhook_events() == []


def test_status_changes_queue_events_once(api, device_key):
    put(api, {"url": HOOK, "events": ["sms.sent", "sms.delivered", "sms.failed"]})
    message_id = api.post("/messages/send", {"message": "Salam", "phoneNumber": PHONE}).json[
        "messageId"
    ]
    path = f"/device/messages/{message_id}/status"
    for status in ("sending", "sent", "sent", "delivered", "delivered", "failed"):
        api.device_post(path, {"status": status, "at": "2025-01-20T10:15:00Z"}, device_key)
    events = webhook_events()
    assert [e["type"] for e in events] == ["sms.sent", "sms.delivered"]
    assert events[1]["payload"] == {
        "event": "sms.delivered",
        "messageId": message_id,
        "status": "delivered",
        "phoneNumber": PHONE,
        "channel": "sms",
        "statusReason": None,
        "timestamp": "2025-01-20T10:15:00Z",
    }

    failing = api.post("/messages/send", {"message": "Salam", "phoneNumber": PHONE}).json[
        "messageId"
    ]
    api.device_post(
        f"/device/messages/{failing}/status",
        {"status": "failed", "reason": "no credit"},
        device_key,
    )
    [failed] = [e for e in webhook_events() if e["type"] == "sms.failed"]
    assert (
        failed["payload"]["statusReason"] == "no credit" and failed["payload"]["status"] == "failed"
    )


def test_a_queue_outage_does_not_fail_the_sms_path(api, device_key):
    put(api, {"url": HOOK})
    queue.sqs().delete_queue(QueueUrl=queue.queue_url(settings().webhook_queue))
    response = inbound(api, device_key)
    assert response.status_code == 200 and response.json["duplicate"] is False
    assert api.get(f"/messages/{response.json['messageId']}").status_code == 200


def test_signature_and_default_schedule(monkeypatch):
    monkeypatch.delenv("SMSGW_WEBHOOK_RETRY_DELAYS", raising=False)
    secret = "whsec_" + base64.b64encode(b"k" * 32).decode()
    assert (
        webhooks.sign(secret, "evt_1", 1700000000, b'{"a":1}')
        == "v1,xsrKrSc6Z9cAn/br4kO7TvhjtnkMIFoZTCPnw3cDwF4="
    )  # openssl dgst -hmac
    settings.cache_clear()
    delays = settings().webhook_retry_delays
    assert delays == (60, 300, 1800, 7200, 21600, 43200, 86400)
    assert sum(delays) >= 24 * 3600 and list(delays) == sorted(delays)


def test_the_webhook_format_is_chosen_shown_and_checked(api, public_dns):
    url = "https://hooks.example.com/in"
    assert put(api, {"url": url}).json["format"] == "standard"
    chosen = put(api, {"url": url, "format": "smsmobileapi-v2"})
    assert chosen.status_code == 200 and chosen.json["format"] == "smsmobileapi-v2"
    assert api.get("/webhook").json["format"] == "smsmobileapi-v2"
    wrong = put(api, {"url": url, "format": "twilio"})
    assert wrong.status_code == 400 and wrong.json["errors"][0]["field"] == "format"
    assert api.get("/webhook").json["format"] == "smsmobileapi-v2", "a refused PUT changes nothing"


def test_the_smsmobileapi_v2_rendering_is_their_envelope_signed_in_hex():
    import hashlib
    import hmac

    from chalicelib.webhooks import formats

    event = {
        "eventId": "evt_" + "ab" * 16,
        "type": "sms.failed",
        "createdAt": 1796530000,
        "payload": {
            "event": "sms.failed",
            "messageId": "m-1",
            "status": "failed",
            "phoneNumber": "+22238089336",
            "statusReason": "+CMS ERROR: 38",
            "timestamp": "2026-12-06T04:00:00Z",
        },
    }
    body, headers = formats.render("smsmobileapi-v2", event, "whsec_c2VjcmV0", 1796530005)
    envelope = json.loads(body)
    assert envelope["id"] == "abababab-abab-abab-abab-abababababab" == headers["Idempotency-Key"]
    assert envelope["occurred_at"] == "2026-12-06T04:00:00Z"
    assert (
        envelope["data"]["error"] == "+CMS ERROR: 38" and envelope["data"]["to"] == "+22238089336"
    )
    mac = hmac.new(b"whsec_c2VjcmV0", b"1796530005." + body, hashlib.sha256).hexdigest()
    assert headers["X-SMSMobileAPI-Signature"] == "v1=" + mac
    standard_body, standard = formats.render(None, event, "whsec_c2VjcmV0", 1796530005)
    assert json.loads(standard_body) == event["payload"] and standard["webhook-signature"]
