"""Which devices went offline or came back: the ``device_watch`` Lambda, once a minute.

A device is offline when its bridge sent no heartbeat for SMSGW_DEVICE_OFFLINE_SECONDS.
Each change is written once (a conditional update of ``offline_since``), so two watchers
never announce it twice; it goes to the webhook of the account the device is dedicated to
(``device.offline``, ``device.online``) and to the operator as a WARNING log line and a
``DevicesOffline`` metric. Heartbeats stay a single write: they never read the flag.

When a device goes offline, the SMS waiting on its own queues are routed again (to an
online on-net line, else the pool): only those the sender addressed to that device stay.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from datetime import datetime

from pynamodb.exceptions import UpdateError

from . import clock, queue, routing, webhooks
from .messages.views import iso
from .models import Device, Message
from .routing import is_online
from .wire.protocol import OutboundSms, WireError

log = logging.getLogger("chinqit.presence")


def watch() -> dict[str, list[str]]:
    """Announce every change since the last run; returns the device ids by change."""
    now = clock.now()
    changes: dict[str, list[str]] = {"offline": [], "online": []}
    offline = 0
    routing.forget()  # route with who is online now
    for device in Device.scan():
        online = is_online(device)
        if online and device.offline_since is not None and _mark_online(device):
            changes["online"].append(device.device_id)
            _announce(device, "device.online", device.offline_since, now)
        elif not online and device.last_seen_at is not None:
            offline += 1
            if device.offline_since is None and _mark_offline(device, now):
                changes["offline"].append(device.device_id)
                _announce(device, "device.offline", now, now)
                try:
                    _reroute(device.device_id)
                except Exception:  # one device's queues never stop the watch of the others
                    log.exception("could not route the SMS of offline device %s", device.device_id)
    _metric(offline, now)
    return changes


MAX_REROUTED = 1000  # per device and run: bounds the Lambda's time; the rest waits
HOLD_SECONDS = 60  # how long a message being moved stays hidden from the device's queue


def _reroute(device_id: str) -> int:
    """Move what waits on an offline device's queues elsewhere; returns how many moved.

    What must stay is kept hidden until the queue is drained, then released: each message
    is received once by this, which counts one receive towards its dead-letter limit.
    """
    own = set(routing.own_queues(device_id).values())
    moved = 0
    for name in sorted(own):
        url = queue.queue_url(name)
        kept: list[str] = []
        seen = 0
        while seen < MAX_REROUTED:
            batch = (
                queue.sqs()
                .receive_message(
                    QueueUrl=url,
                    MaxNumberOfMessages=10,
                    WaitTimeSeconds=0,
                    VisibilityTimeout=HOLD_SECONDS,
                )
                .get("Messages", [])
            )
            if not batch:
                break
            seen += len(batch)
            for received in batch:
                if _move(url, received, own):
                    moved += 1
                else:
                    kept.append(received["ReceiptHandle"])
        for receipt in kept:
            queue.sqs().change_message_visibility(
                QueueUrl=url, ReceiptHandle=receipt, VisibilityTimeout=0
            )
    log.info("device %s offline: %d waiting SMS routed elsewhere", device_id, moved)
    return moved


def _move(url: str, received: dict, own: set[str]) -> bool:
    """Route one waiting SMS again; False when it must wait for this device."""
    try:
        sms = OutboundSms.from_json(received["Body"])
        message = Message.get(sms.message_id)
    except (WireError, Message.DoesNotExist):
        return False  # not ours to judge: it stays, and the dead-letter queue settles it
    target = None if message.route_device else routing.queue_name(message)
    if target is None or target in own:
        return False
    queue.enqueue_sms(message, sms.text, target)  # sent before deleted: never lost
    queue.sqs().delete_message(QueueUrl=url, ReceiptHandle=received["ReceiptHandle"])
    return True


def _mark_offline(device: Device, since: datetime) -> bool:
    """Record that it went offline unless another watcher did; True when this one did."""
    return _first(
        lambda: Device(device.device_id).update(
            actions=[Device.offline_since.set(since)],
            condition=Device.offline_since.does_not_exist(),
        )
    )


def _mark_online(device: Device) -> bool:
    return _first(
        lambda: Device(device.device_id).update(
            actions=[Device.offline_since.remove()], condition=Device.offline_since.exists()
        )
    )


def _first(update) -> bool:
    try:
        update()
    except UpdateError as exc:
        if exc.cause_response_code == "ConditionalCheckFailedException":
            return False
        raise
    return True


def _announce(device: Device, event_type: str, offline_since: datetime, now: datetime) -> None:
    state = "offline" if event_type == "device.offline" else "back online"
    log.warning(
        "device %s (%s) is %s; last heartbeat %s",
        device.device_id,
        device.account_id or "shared pool",
        state,
        iso(device.last_seen_at),
    )
    payload = {
        "event": event_type,
        "deviceId": device.device_id,
        "name": device.name,
        "lastSeenAt": iso(device.last_seen_at),
        "offlineSince": iso(offline_since),
        "timestamp": iso(now),
    }
    fact = f"{event_type}\n{device.device_id}\n{iso(offline_since)}"
    webhooks.notify(device.account_id, event_type, payload, event_id=webhooks.new_event_id(fact))


def _metric(offline: int, now: datetime) -> None:
    """Offline devices as an Embedded Metric Format line (only inside Lambda)."""
    if "AWS_LAMBDA_FUNCTION_NAME" not in os.environ:
        return
    line = {
        "_aws": {
            "Timestamp": int(now.timestamp() * 1000),
            "CloudWatchMetrics": [
                {
                    "Namespace": "Chinqit/Devices",
                    "Dimensions": [[]],
                    "Metrics": [{"Name": "DevicesOffline", "Unit": "Count"}],
                }
            ],
        },
        "DevicesOffline": offline,
    }
    sys.stdout.write(json.dumps(line) + "\n")
