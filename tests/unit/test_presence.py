"""device.offline / device.online: once per change, to the device's account."""

import json

import pytest

from chalicelib import auth, presence
from chalicelib.config import settings
from chalicelib.models import Account, Device

from ..conftest import queued_bodies


@pytest.fixture
def hooked(api, public_dns):
    """acme's webhook, subscribed to the device events."""
    body = {"url": "https://hooks.example.com/sms", "events": ["device.offline", "device.online"]}
    assert api.call("PUT", "/webhook", body).status_code == 200


def events():
    return [(e["type"], e["payload"]["deviceId"]) for e in queued_bodies(settings().webhook_queue)]


def test_offline_then_online_each_announced_once(api, device_key, hooked, manual_clock):
    assert api.device_post("/device/heartbeat", {}, device_key).status_code == 200
    assert presence.watch() == {"offline": [], "online": []}
    manual_clock.advance(settings().device_offline_seconds + 1)
    assert presence.watch() == {"offline": ["phone-1"], "online": []}
    assert presence.watch() == {"offline": [], "online": []}  # said once
    assert Device.get("phone-1").offline_since is not None
    api.device_post("/device/heartbeat", {}, device_key)
    assert presence.watch() == {"offline": [], "online": ["phone-1"]}
    assert presence.watch() == {"offline": [], "online": []}
    assert events() == [("device.offline", "phone-1"), ("device.online", "phone-1")]


def test_the_payload_says_which_device_and_since_when(api, device_key, hooked, manual_clock):
    api.device_post("/device/heartbeat", {}, device_key)
    manual_clock.advance(600)
    presence.watch()
    [event] = queued_bodies(settings().webhook_queue)
    payload = event["payload"]
    assert payload["event"] == "device.offline" and payload["name"] == "test phone"
    assert payload["lastSeenAt"] < payload["offlineSince"] == payload["timestamp"]


def test_shared_pool_devices_and_never_seen_ones_reach_no_account(
    api, device_key, hooked, manual_clock, caplog
):
    Device("shared-1", name="pool phone", last_seen_at=None).save()
    Device("shared-2", name="pool phone 2").save()
    from chalicelib import clock

    Device("shared-2").update(actions=[Device.last_seen_at.set(clock.now())])
    manual_clock.advance(3600)
    changes = presence.watch()
    assert changes["offline"] == ["shared-2"]  # never seen: never online, never offline
    assert events() == []  # phone-1 never sent a heartbeat either
    assert "device shared-2 (shared pool) is offline" in caplog.text


def test_a_device_event_needs_a_subscription(api, device_key, manual_clock, public_dns):
    api.call("PUT", "/webhook", {"url": "https://hooks.example.com/sms"})  # sms.received only
    api.device_post("/device/heartbeat", {}, device_key)
    manual_clock.advance(3600)
    assert presence.watch()["offline"] == ["phone-1"]
    assert events() == []


def test_sms_waiting_on_a_device_that_went_offline_are_routed_again(api, manual_clock):
    from .test_routing import MAURITEL_CUSTOMER, device, on, send, shared

    device(api, "acme-phone", account="acme", lines=["+22244000001"])
    device(api, "mauritel-1", lines=["+22244000002"])
    Account("acme", shared_fallback=True).save()
    waiting = [send(api, MAURITEL_CUSTOMER) for _ in range(3)]
    addressed = send(api, MAURITEL_CUSTOMER, deviceId="acme-phone")
    manual_clock.advance(settings().device_offline_seconds + 1)
    key = auth.create_key("device", "mauritel-1")[0]  # the pool's phone is still there
    api.device_post("/device/heartbeat", {"ownQueue": True}, key)
    assert presence.watch()["offline"] == ["acme-phone"]
    assert sorted(on("mauritel-1")) == sorted(waiting)  # moved, on-net, via the fallback
    assert shared() == []
    from chalicelib import queue, routing

    [kept] = queue.sqs().receive_message(
        QueueUrl=queue.queue_url(routing.device_queue("acme-phone", "sms")),
        MaxNumberOfMessages=10,
        MessageSystemAttributeNames=["ApproximateReceiveCount"],
    )["Messages"]
    assert json.loads(kept["Body"])["messageId"] == addressed  # addressed to it: it waits
    assert kept["Attributes"]["ApproximateReceiveCount"] == "2"  # the watcher's one + ours
