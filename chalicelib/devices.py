"""The device side of the API: what a device bridge reports back."""
from __future__ import annotations

import logging
import uuid
from datetime import datetime, timedelta, timezone

from pynamodb.exceptions import PutError

from . import clock, messages, phone, webhooks
from .accounts import UNASSIGNED
from .config import settings
from .errors import ValidationError
from .models import Device, Message
from .wire.sms_encoding import analyze
from .validation import Fields, choice, required_text

log = logging.getLogger("chinqit.devices")

DEVICE_STATUSES = ("sending", "sent", "delivered", "failed", "expired")
INBOUND_NAMESPACE = uuid.UUID("6f1b7c1e-33c8-4d4e-9a53-6c1f1f0c2a10")


def _timestamp(name: str):
    def parse(value):
        if value is None:
            return None
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
            utc = parsed.astimezone(timezone.utc) if parsed.tzinfo else None
        except (AttributeError, ValueError, OverflowError):
            raise ValidationError.field(name, "must be an ISO-8601 date-time") from None
        if utc is None:
            raise ValidationError.field(name, "must include a time zone, e.g. Z")
        return utc
    return parse


def _optional_int(name: str, low: int, high: int):
    def parse(value):
        if value is None:
            return None
        if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
            raise ValidationError.field(name, f"must be a whole number from {low} to {high}")
        return value
    return parse


def _optional_text(name: str, longest: int):
    def parse(value):
        if value is None:
            return None
        if not isinstance(value, str) or len(value) > longest:
            raise ValidationError.field(name, f"must be a string of at most {longest} characters")
        return value
    return parse


def heartbeat(device_id: str, body: dict) -> None:
    fields = Fields(body)
    driver = fields.check("driver", _optional_text("driver", 40))
    info = {"signalPercent": fields.check("signalPercent", _optional_int("signalPercent", 0, 100)),
            "batteryPercent": fields.check("batteryPercent", _optional_int("batteryPercent", 0, 100)),
            "version": fields.check("version", _optional_text("version", 40))}
    fields.done()
    Device(device_id).update(actions=[
        Device.last_seen_at.set(clock.now()),
        Device.driver.set(driver),
        Device.info.set({k: v for k, v in info.items() if v is not None}),
    ])


def report_status(device_id: str, message_id: str, body: dict) -> dict:
    """Move an outbound message forward; stale or repeated reports change nothing.

    ``sending`` is a claim: it succeeds from ``queued`` only, so of two bridges that got
    the same message (an SQS redelivery) only one sends. ``claimed`` tells the caller
    whether it holds the claim (a repeat by the same device still does).
    """
    fields = Fields(body)
    status = fields.check("status", choice("status", DEVICE_STATUSES, None))
    reason = fields.check("reason", _optional_text("reason", 500))
    at = fields.check("at", _timestamp("at")) or clock.now()
    if status is None and not fields.errors:
        fields.errors.append({"field": "status", "message": "is required"})
    fields.done()
    message = messages.advance(message_id, status, reason=reason, at=at, device_id=device_id)
    answer = {"messageId": message.message_id, "status": message.status}
    if status == "sending":
        answer["claimed"] = message.status == "sending" and message.device_id == device_id
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
    fields = Fields(body)
    sender = fields.check("from", required_text("from", longest=64))
    text = fields.check("text", _optional_text("text", 10_000))
    received_at = fields.check("receivedAt", _timestamp("receivedAt"))
    device_ref = fields.check("deviceRef", required_text("deviceRef", longest=200))
    if text is None and not any(e["field"] == "text" for e in fields.errors):
        fields.errors.append({"field": "text", "message": "is required"})
    fields.done()
    message_id = str(uuid.uuid5(INBOUND_NAMESPACE, f"{device_id}\n{device_ref}"))
    now = clock.now()
    analysis = analyze(text)
    sender = sender_number(sender)
    message = Message(
        message_id, account_id=owner_of_inbound(sender, device_id), direction="inbound",
        phone_number=sender, text=text, read=False, encoding=analysis.encoding,
        segments=analysis.segments, status="received", device_id=device_id,
        created_at=received_at or now, updated_at=now,
        purge_at=now + timedelta(days=settings().message_retention_days))
    try:
        message.save(Message.message_id.does_not_exist())
    except PutError as exc:
        if exc.cause_response_code != "ConditionalCheckFailedException":
            raise
        duplicate = True
        message = Message.get(message_id)
    else:
        duplicate = False
        log.info("inbound sms stored message=%s device=%s", message_id, device_id)
    # Also on a repost: the first notify may have failed; the event id is the same, so the
    # worker never delivers it twice.
    webhooks.notify_inbound(message)
    return message, duplicate


def owner_of_inbound(sender: str, device_id: str) -> str:
    """Replies go to whoever wrote to the sender last; else to the device's account."""
    for latest in Message.by_outbound_phone.query(sender, scan_index_forward=False, limit=1):
        return latest.account_id
    try:
        return Device.get(device_id).account_id or UNASSIGNED
    except Device.DoesNotExist:
        return UNASSIGNED
