"""The device side of the API: what a device bridge reports back."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any, TypeVar

from . import clock, phone
from .accounts import UNASSIGNED
from .config import settings
from .errors import ValidationError
from .messages import lifecycle
from .models import Device, Message
from .wire import protocol
from .wire.sms_encoding import analyze
from .wire.status import Status

log = logging.getLogger("chinqit.devices")

INBOUND_NAMESPACE = uuid.UUID("6f1b7c1e-33c8-4d4e-9a53-6c1f1f0c2a10")
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
    Device(device_id).update(
        actions=[
            Device.last_seen_at.set(clock.now()),
            Device.driver.set(beat.driver) if beat.driver else Device.driver.remove(),
            Device.info.set({k: v for k, v in info.items() if v is not None}),
        ]
    )


def report_status(device_id: str, message_id: str, body: dict) -> dict:
    """Move an outbound message forward; stale or repeated reports change nothing.

    ``sending`` is a claim: it succeeds from ``queued`` only, so of two bridges that got
    the same message (an SQS redelivery) only one sends. ``claimed`` tells the caller
    whether it holds the claim (a repeat by the same device still does).
    """
    report = _parsed(protocol.parse_status_report, body)
    status = Status(report.status)
    message = lifecycle.transition(
        message_id, status, reason=report.reason, at=report.at or clock.now(), device_id=device_id
    ).message
    answer: dict[str, object] = {"messageId": message.message_id, "status": message.status}
    if status == Status.SENDING:
        answer["claimed"] = message.status == Status.SENDING and message.device_id == device_id
    return answer


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
        created_at=sms.received_at or now,
        updated_at=now,
        purge_at=now + timedelta(days=settings().message_retention_days),
    )
    if lifecycle.create(message):
        log.info("inbound sms stored message=%s device=%s", message_id, device_id)
        return message, False
    message = Message.get(message_id)
    lifecycle.announce_created(message)  # a repost: the first announcement may have been lost
    return message, True


def owner_of_inbound(sender: str, device_id: str) -> str:
    """Replies go to whoever wrote to the sender last; else to the device's account."""
    for latest in Message.by_outbound_phone.query(sender, scan_index_forward=False, limit=1):
        return latest.account_id
    try:
        return Device.get(device_id).account_id or UNASSIGNED
    except Device.DoesNotExist:
        return UNASSIGNED
