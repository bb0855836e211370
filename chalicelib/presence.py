"""Which devices went offline or came back: the ``device_watch`` Lambda, once a minute.

A device is offline when its bridge sent no heartbeat for SMSGW_DEVICE_OFFLINE_SECONDS.
Each change is written once (a conditional update of ``offline_since``), so two watchers
never announce it twice; it goes to the webhook of the account the device is dedicated to
(``device.offline``, ``device.online``) and to the operator as a WARNING log line and a
``DevicesOffline`` metric. Heartbeats stay a single write: they never read the flag.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from datetime import datetime

from pynamodb.exceptions import UpdateError

from . import clock, webhooks
from .messages.views import iso
from .models import Device
from .routing import is_online

log = logging.getLogger("chinqit.presence")


def watch() -> dict[str, list[str]]:
    """Announce every change since the last run; returns the device ids by change."""
    now = clock.now()
    changes: dict[str, list[str]] = {"offline": [], "online": []}
    offline = 0
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
    _metric(offline, now)
    return changes


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
