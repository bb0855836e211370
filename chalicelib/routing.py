"""Which queue an outbound SMS goes to, and which queues a device may take SMS from.

Every device has two queues of its own (OTP and bulk, ``<queue>-device-<id>``), polled
with its pool's. An SMS goes to:

1. the device the sender named (``deviceId``: one of the account's own devices);
2. for an account with dedicated devices: one of them, on-net when a line of the
   recipient's operator is online, else any online one; with none online, the shared
   pool only if the operator allowed it for that account (``shared_fallback``), else it
   waits on its own devices' queues;
3. otherwise the shared pool: an online shared device with a line of the recipient's
   operator (on-net), else the shared queues, which every shared device polls (off-net,
   at once).

Only devices whose bridge polls its own queues (``aws_credentials = device``, said in its
heartbeat) are routed to. Dedicated ones poll nothing else, so an account's SMS never
reach another tenant's phones and never the other way round. (A dedicated device whose
bridge uses environment credentials still polls the shared queues it was configured with.)
Who is online and with which lines is read
once per SMSGW_KEY_CACHE_SECONDS per pool (routing data cached in the Lambda).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import timedelta

from . import clock, phone
from .config import settings
from .errors import NotFound, ValidationError
from .models import Account, Device
from .queue import PRIORITY_KINDS, queue_for
from .ttlcache import TtlCache


def is_online(device: Device) -> bool:
    """Its bridge sent a heartbeat within SMSGW_DEVICE_OFFLINE_SECONDS (it beats every minute)."""
    seen = device.last_seen_at
    limit = timedelta(seconds=settings().device_offline_seconds)
    return seen is not None and clock.now() - seen <= limit


MAX_QUEUE_NAME = 80  # SQS's limit
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")


def device_queue(device_id: str, kind: str) -> str:
    """The name of a device's own queue for SMS of ``kind`` ("otp" or "sms")."""
    base = queue_for(kind).rsplit("/", 1)[-1]
    name = f"{base}-device-{_UNSAFE.sub('-', device_id)}"
    if len(name) > MAX_QUEUE_NAME:
        name = f"{base}-device-{hashlib.sha256(device_id.encode()).hexdigest()[:20]}"
    return name


def own_queues(device_id: str) -> dict[str, str]:
    return {
        "device-priority": device_queue(device_id, "otp"),
        "device-bulk": device_queue(device_id, "sms"),
    }


def queues_of_device(device_id: str) -> dict[str, str]:
    """What a device polls: its own queues, and the shared pool's unless it is dedicated
    (a dedicated device whose bridge takes its credentials from its environment polls
    whatever it was configured with: it keeps the shared queues)."""
    queues = own_queues(device_id)
    dedicated_to, polls_own_queue = _pool_of(device_id)
    if dedicated_to is None or not polls_own_queue:
        config = settings()
        queues |= {"priority": config.priority_queue, "bulk": config.outbound_queue}
    return queues


@dataclass(frozen=True)
class Candidate:
    device_id: str
    online: bool
    operators: frozenset[str]


def _cached(_value) -> float:
    return settings().key_cache_seconds


# pool (account id, or "" for the shared pool) -> its devices; device id -> its pool
_pools: TtlCache[list[Candidate]] = TtlCache(_cached)
_device_pools: TtlCache[tuple[str | None, bool]] = TtlCache(_cached)


def forget() -> None:
    _pools.forget()
    _device_pools.forget()


def _pool_of(device_id: str) -> tuple[str | None, bool]:
    """The account a device is dedicated to (None: the shared pool), and whether its
    bridge polls the device's own queues."""
    return _device_pools.get(device_id, lambda: _read_pool(device_id))


def _read_pool(device_id: str) -> tuple[str | None, bool]:
    try:
        device = Device.get(device_id, attributes_to_get=["account_id", "polls_own_queue"])
    except Device.DoesNotExist:
        return (None, False)
    return (device.account_id, bool(device.polls_own_queue))


def _candidates(account_id: str | None) -> list[Candidate]:
    """The devices of a pool that take SMS from their own queues, online or not."""
    return _pools.get(account_id or "", lambda: _read_candidates(account_id))


def _read_candidates(account_id: str | None) -> list[Candidate]:
    devices = (
        Device.by_account.query(account_id)
        if account_id
        else Device.scan(Device.account_id.does_not_exist())
    )
    candidates = [
        Candidate(
            d.device_id,
            is_online(d),
            frozenset(line.operator for line in d.lines or [] if line.operator),
        )
        for d in devices
        if d.polls_own_queue  # only these take SMS from their own queues
    ]
    return sorted(candidates, key=lambda c: c.device_id)


def _spread(choices: list[Candidate], message_id: str) -> Candidate | None:
    if not choices:
        return None
    return choices[int(hashlib.sha256(message_id.encode()).hexdigest(), 16) % len(choices)]


@dataclass(frozen=True)
class Route:
    """Where the sender asked an SMS to leave from (nothing: the gateway chooses)."""

    device_id: str | None = None
    sim_slot: int | None = None


ANYWHERE = Route()


def requested(
    account_id: str,
    device_id,
    sim_slot,
    device_field: str = "deviceId",
    slot_field: str = "simSlot",
) -> Route:
    """Check a sender's ``deviceId`` / ``simSlot``: one of its own devices, one of its lines."""
    if device_id in (None, ""):
        if sim_slot not in (None, ""):
            raise ValidationError.field(slot_field, f"needs {device_field}")
        return ANYWHERE
    if not isinstance(device_id, str) or len(device_id) > 200:
        raise ValidationError.field(device_field, "must be the id of one of your devices")
    try:
        device = Device.get(device_id)
    except Device.DoesNotExist:
        device = None
    if device is None or device.account_id != account_id:
        raise NotFound(
            "Device not found",
            errors=[{"field": device_field, "message": "is not one of your devices"}],
        )
    if not device.polls_own_queue:
        raise ValidationError.field(
            device_field,
            "this device's bridge does not take SMS addressed to it "
            "(it needs aws_credentials = device)",
        )
    return Route(device_id, _slot(device, sim_slot, slot_field))


def _slot(device: Device, raw, field: str) -> int | None:
    if raw in (None, ""):
        return None
    slots = sorted(int(line.slot) for line in device.lines or []) or [1]
    try:
        slot = int(raw) if not isinstance(raw, bool) else None
    except (TypeError, ValueError):
        slot = None
    if slot not in slots:
        raise ValidationError.field(field, f"must be one of this device's SIM slots: {slots}")
    return slot


def queue_name(message) -> str:
    """The queue ``message`` goes to (see the module's docstring)."""
    kind = "otp" if message.kind in PRIORITY_KINDS else "sms"
    if message.route_device:
        return device_queue(message.route_device, kind)
    operator = phone.operator_of(message.phone_number)
    own = _candidates(message.account_id)
    if own:
        online = [c for c in own if c.online]
        pick = _spread([c for c in online if operator in c.operators], message.message_id)
        pick = pick or _spread(online, message.message_id)
        if pick is None and not _shared_fallback(message.account_id):
            pick = _spread(own, message.message_id)
        if pick is not None:
            return device_queue(pick.device_id, kind)
    on_net = [c for c in _candidates(None) if c.online and operator in c.operators]
    pick = _spread(on_net, message.message_id)
    return device_queue(pick.device_id, kind) if pick else queue_for(message.kind)


def _shared_fallback(account_id: str) -> bool:
    try:
        return bool(Account.get(account_id, attributes_to_get=["shared_fallback"]).shared_fallback)
    except Account.DoesNotExist:
        return False
