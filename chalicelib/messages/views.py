"""A message as the API shows it."""

from __future__ import annotations

from datetime import datetime

from ..models import Message


def iso(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value else None


def to_json(message: Message) -> dict:
    return {
        "messageId": message.message_id,
        "direction": message.direction,
        "kind": message.kind,
        "channel": message.channel,
        "phoneNumber": message.phone_number,
        "message": message.text,
        "status": message.status,
        "statusReason": message.status_reason,
        "encoding": message.encoding,
        "segments": message.segments,
        "deviceId": message.device_id,
        "createdAt": iso(message.created_at),
        "updatedAt": iso(message.updated_at),
        "sentAt": iso(message.sent_at),
        "deliveredAt": iso(message.delivered_at),
        "sendAt": iso(message.send_at),
        **({"fallback": message.fallback} if message.fallback else {}),
        **({"fallbackReason": message.fallback_reason} if message.fallback_reason else {}),
        **({"read": bool(message.read)} if message.direction == "inbound" else {}),
    }
