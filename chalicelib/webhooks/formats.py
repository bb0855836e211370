"""What a webhook POST looks like: its body and headers, by the webhook's ``format``.

- ``standard`` (the default): the event's payload as the body, signed as Standard
  Webhooks say (``webhook-id``, ``webhook-timestamp``, ``webhook-signature: v1,<base64>``).
- ``smsmobileapi-v2``: SMSMobileAPI's Webhook V2, for receivers written for them: the
  envelope ``{id, type, api_version, created_at, occurred_at, data}`` with
  ``X-SMSMobileAPI-Event``, ``-Event-ID``, ``-Timestamp``, ``-Signature: v1=<hex
  HMAC-SHA256(secret, "{timestamp}.{body}")>`` and ``Idempotency-Key`` (their webhook
  examples, SmsMobileApi/smsmobileapi-webhook-examples). The HMAC key is the secret as
  shown (``whsec_...``), its UTF-8 bytes, as their examples use it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from datetime import UTC, datetime

from .signing import sign

FORMATS = ("standard", "smsmobileapi-v2")
V2_API_VERSION = "2026-09-22"  # the version of their fixtures this envelope follows


def render(
    webhook_format: str | None, event: dict, secret: str, timestamp: int
) -> tuple[bytes, dict]:
    """The body and the format's headers of one delivery attempt of ``event``."""
    if webhook_format == "smsmobileapi-v2":
        return _smsmobileapi_v2(event, secret, timestamp)
    body = _json(event["payload"])
    return body, {
        "webhook-id": event["eventId"],
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(secret, event["eventId"], timestamp, body),
    }


def _json(value) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


def _stamp(unix: float) -> str:
    return datetime.fromtimestamp(unix, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def event_uuid(event_id: str) -> str:
    """Their event ids are UUIDs: ours are ``evt_`` + 32 hex digits, the same UUID."""
    return str(uuid.UUID(hex=event_id.removeprefix("evt_")))


def _smsmobileapi_v2(event: dict, secret: str, timestamp: int) -> tuple[bytes, dict]:
    event_id = event_uuid(event["eventId"])
    payload = event["payload"]
    envelope = {
        "id": event_id,
        "type": event["type"],
        "api_version": V2_API_VERSION,
        "created_at": _stamp(event["createdAt"]),
        "occurred_at": _occurred_at(payload) or _stamp(event["createdAt"]),
        "data": _v2_data(event["type"], payload),
    }
    body = _json(envelope)
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return body, {
        "X-SMSMobileAPI-Event": event["type"],
        "X-SMSMobileAPI-Event-ID": event_id,
        "X-SMSMobileAPI-Timestamp": str(timestamp),
        "X-SMSMobileAPI-Signature": "v1=" + mac.hexdigest(),
        "Idempotency-Key": event_id,
    }


def _occurred_at(payload: dict) -> str | None:
    if payload.get("timestamp"):
        return payload["timestamp"]
    if payload.get("time_received"):
        return payload["time_received"].replace(" ", "T") + "Z"
    return None


def _v2_data(event_type: str, payload: dict) -> dict:
    """Their ``data`` fields for SMS events (``guid``, ``from``/``to``...), ours kept too."""
    if event_type == "sms.received":
        return {
            "guid": payload["guid"],
            "from": payload["number"],
            "message": payload["message"],
            "received_at": _occurred_at(payload),
            "alias": None,
            "device_id": payload.get("deviceId"),
            "messageId": payload["messageId"],
        }
    if event_type.startswith("sms."):
        return {
            "guid": payload["messageId"],
            "to": payload["phoneNumber"],
            "status": payload["status"],
            "error": payload.get("statusReason"),
            "at": payload.get("timestamp"),
            "messageId": payload["messageId"],
        }
    return dict(payload)
