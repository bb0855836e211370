"""The device side of the API: what a device bridge reports back."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, TypeVar

from . import clock, phone, ratelimit, receipts, routing
from .accounts import UNASSIGNED
from .config import settings
from .errors import NotFound, ValidationError
from .messages import lifecycle
from .messages.views import iso
from .models import Device, LineAttribute, Message
from .wire import protocol
from .wire.sms_encoding import analyze
from .wire.status import Status

log = logging.getLogger("chinqit.devices")

INBOUND_NAMESPACE = uuid.UUID("6f1b7c1e-33c8-4d4e-9a53-6c1f1f0c2a10")
# What one phone line can really receive; beyond it a device key is being abused.
INBOUND_LIMITS = ratelimit.limits(minute=60, day=5_000)
T = TypeVar("T")


def _parsed(parse: Callable[[Any], T], body: dict) -> T:
    """A device payload checked by the wire protocol; its field errors become a 400."""
    try:
        return parse(body)
    except protocol.PayloadError as error:
        raise ValidationError(str(error), errors=error.errors) from None


def heartbeat(device_id: str, body: dict) -> None:
    beat = _parsed(protocol.parse_heartbeat, body)
    info = {
        "signalPercent": beat.signal_percent,
        "batteryPercent": beat.battery_percent,
        "version": beat.version,
    }
    actions: list = [
        Device.last_seen_at.set(clock.now()),
        Device.driver.set(beat.driver) if beat.driver else Device.driver.remove(),
        Device.info.set({k: v for k, v in info.items() if v is not None}),
        Device.polls_own_queue.set(beat.own_queue),
    ]
    if beat.lines is not None:
        actions.append(Device.lines.set(_lines(beat.lines)))
    Device(device_id).update(actions=actions)


def _lines(reported: tuple[protocol.Line, ...]) -> list[LineAttribute]:
    """Reported lines with their numbers normalised and their operators known."""
    lines = []
    for index, line in enumerate(sorted(reported, key=lambda line: line.slot)):
        number = phone.normalize(line.number, f"lines[{index}].number")
        lines.append(
            LineAttribute(
                slot=line.slot,
                number=number,
                operator=line.operator or phone.operator_of(number),
                operator_reported=line.operator is not None,
            )
        )
    return lines


def to_json(device: Device) -> dict:
    info = device.info.as_dict() if device.info is not None else {}
    return {
        "deviceId": device.device_id,
        "name": device.name,
        "online": routing.is_online(device),
        "lastSeenAt": iso(device.last_seen_at),
        "driver": device.driver,
        "signalPercent": info.get("signalPercent"),
        "batteryPercent": info.get("batteryPercent"),
        "bridgeVersion": info.get("version"),
        "lines": [
            {"slot": int(line.slot), "number": line.number, "operator": line.operator}
            for line in device.lines or []
        ],
    }


def of_account(account_id: str) -> list[dict]:
    """The devices dedicated to an account (shared-pool devices belong to no account)."""
    devices = sorted(Device.by_account.query(account_id), key=lambda d: d.device_id)
    return [to_json(device) for device in devices]


def report_status(device_id: str, message_id: str, body: dict) -> dict:
    """Move an outbound message forward; stale or repeated reports change nothing.

    ``sending`` is a claim: it succeeds from ``queued`` only, so of two bridges that got
    the same message (an SQS redelivery) only one sends. ``claimed`` tells the caller
    whether it holds the claim (a repeat by the same device still does). A device that
    neither presents the queue body's claim token nor already holds the message gets 404,
    as for a message that does not exist.
    """
    report = _parsed(protocol.parse_status_report, body)
    lifecycle.require_message_id(message_id)
    status = Status(report.status)
    received = receipts.received(
        report.claim, message_id, routing.queues_of_device(device_id).values()
    )
    message = lifecycle.transition(
        message_id,
        status,
        reason=report.reason,
        at=report_time(report.at),
        device_id=device_id,
        device_received=received,
    ).message
    if not received and message.device_id != device_id:
        raise NotFound("Message not found")
    answer: dict[str, object] = {"messageId": message.message_id, "status": message.status}
    if status == Status.SENDING:
        answer["claimed"] = message.status == Status.SENDING and message.device_id == device_id
    return answer


def report_time(at: datetime | None) -> datetime:
    """When a report says it happened, never later than the server's now: a device clock
    ahead, or a forged date, cannot put a message in the future. The report is kept."""
    now = clock.now()
    return now if at is None or at > now else at


def sender_number(raw: str) -> str:
    """Mauritanian numbers as +222XXXXXXXX, other numbers as E.164, names as sent."""
    try:
        return phone.normalize(raw)
    except ValidationError:
        pass
    import phonenumbers  # heavy metadata: loaded only by the inbound path

    try:
        parsed = phonenumbers.parse(raw, phone.REGION)
    except phonenumbers.NumberParseException:
        return raw.strip()
    if phonenumbers.is_possible_number(parsed):
        return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
    return raw.strip()


def store_inbound(device_id: str, body: dict) -> tuple[Message, bool]:
    """Store an SMS the device received; the same (device, deviceRef) is stored once."""
    sms = _parsed(protocol.parse_inbound_sms, body)
    message_id = str(uuid.uuid5(INBOUND_NAMESPACE, f"{device_id}\n{sms.device_ref}"))
    now = clock.now()
    analysis = analyze(sms.text)
    sender = sender_number(sms.sender)
    message = Message(
        message_id,
        account_id=owner_of_inbound(sender, device_id),
        direction="inbound",
        phone_number=sender,
        text=sms.text,
        read=False,
        encoding=analysis.encoding,
        segments=analysis.segments,
        status=Status.RECEIVED,
        device_id=device_id,
        created_at=report_time(sms.received_at),
        updated_at=now,
        purge_at=now + timedelta(days=settings().message_retention_days),
    )
    if lifecycle.create(message, counted=[inbound_quota(device_id)]):
        log.info("inbound sms stored message=%s device=%s", message_id, device_id)
        return message, False
    message = Message.get(message_id)
    lifecycle.announce_created(message)  # a repost: the first announcement may have been lost
    return message, True


def inbound_quota(device_id: str) -> ratelimit.Quota:
    return ratelimit.Quota(f"inbound#{device_id}", INBOUND_LIMITS, "received SMS for this device")


def owner_of_inbound(sender: str, device_id: str) -> str:
    """Whose reply is this? The account whose SMS this device handed to the network for
    ``sender`` most recently, within the reply window; without one, the account the device
    is dedicated to; else nobody (the operator's unassigned inbox). A message that never
    left a phone (failed, expired, still queued) claims nothing."""
    since = clock.now() - timedelta(days=settings().reply_window_days)
    sent = Message.by_sent_to.query(
        sender, Message.sent_at >= since, scan_index_forward=False, page_size=25
    )
    for message in sent:
        if message.device_id == device_id:
            return message.account_id
    try:
        return Device.get(device_id).account_id or UNASSIGNED
    except Device.DoesNotExist:
        return UNASSIGNED
