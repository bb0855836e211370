"""Meta's webhook for the WhatsApp Business account: GET /whatsapp/webhook is the
subscription handshake, POST /whatsapp/webhook brings statuses of the messages sent
(sent, delivered, read, failed) and the messages customers send.

Every POST is checked first: ``X-Hub-Signature-256`` must be ``sha256=`` and the hex
HMAC-SHA256 of the raw body under the app secret (compared in constant time). Meta
retries a POST that is not answered 200 for days, so the handling is idempotent: status
changes are conditional writes, an inbound message is stored under an id derived from its
``wamid``. One item that cannot be used is logged and skipped; an AWS outage answers 500,
so that Meta posts it again.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
import uuid
from datetime import UTC, datetime, timedelta

from .. import accounts, aws, clock
from ..config import settings
from ..devices import new_inbound, report_time, store_received
from ..errors import Forbidden, SignatureInvalid, ValidationError
from ..messages import lifecycle
from ..models import Message
from ..wire.status import Status
from . import window
from .messages import fall_back

log = logging.getLogger("chinqit.whatsapp")

WAMID_NAMESPACE = uuid.UUID("0c4f5d0e-8f3a-4b7e-a1d2-5e6f7a8b9c0d")
_CHALLENGE = re.compile(r"[A-Za-z0-9_.\-]{1,256}")
_WA_ID = re.compile(r"[1-9][0-9]{6,14}")
STATUSES = {
    "sent": Status.SENT,
    "delivered": Status.DELIVERED,
    "read": Status.READ,
    "failed": Status.FAILED,
}
REPLY_CLAIMS_READ = 50


def handshake(params: dict) -> str:
    """The ``hub.challenge`` to answer when ``hub.verify_token`` is ours."""
    expected = settings().whatsapp_verify_token
    if not expected:
        raise Forbidden("The WhatsApp webhook is not configured on this gateway")
    token = params.get("hub.verify_token")
    if params.get("hub.mode") != "subscribe" or not isinstance(token, str):
        raise Forbidden("hub.mode must be subscribe, with hub.verify_token")
    if not hmac.compare_digest(token.encode(), expected.encode()):
        raise Forbidden("hub.verify_token does not match")
    challenge = params.get("hub.challenge")
    if not isinstance(challenge, str) or not _CHALLENGE.fullmatch(challenge):
        raise ValidationError.field("hub.challenge", "must be Meta's challenge string")
    return challenge


def check_signature(raw_body: bytes, header: str | None) -> None:
    secret = settings().whatsapp_app_secret
    if not secret:
        raise Forbidden("The WhatsApp webhook is not configured on this gateway")
    expected = "sha256=" + hmac.new(secret.encode(), raw_body, hashlib.sha256).hexdigest()
    if not isinstance(header, str) or not hmac.compare_digest(header.encode(), expected.encode()):
        raise SignatureInvalid("X-Hub-Signature-256 is missing or does not match the body")


def receive(raw_body: bytes, signature: str | None) -> dict:
    """Apply one signed POST; how many statuses and messages it carried."""
    check_signature(raw_body, signature)
    try:
        payload = json.loads(raw_body)
    except (ValueError, UnicodeError):
        raise ValidationError("The body must be Meta's JSON webhook payload") from None
    counts = {"statuses": 0, "messages": 0}
    for value in _values(payload):
        for status in _list(value.get("statuses")):
            counts["statuses"] += _each(apply_status, status)
        for message in _list(value.get("messages")):
            counts["messages"] += _each(store_inbound, message)
    return counts


def _list(value) -> list:
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def _values(payload) -> list[dict]:
    """The ``value`` of each ``messages`` change of each entry."""
    if not isinstance(payload, dict):
        return []
    changes = [c for entry in _list(payload.get("entry")) for c in _list(entry.get("changes"))]
    return [
        c["value"]
        for c in changes
        if c.get("field") == "messages" and isinstance(c.get("value"), dict)
    ]


def _each(apply, item: dict) -> int:
    """1 when ``item`` was used; a bad one is logged and skipped, unless AWS is out."""
    try:
        return 1 if apply(item) else 0
    except Exception as error:
        if aws.unreachable(error):
            raise
        log.exception("whatsapp webhook item skipped (%s)", type(error).__name__)
        return 0


def _at(item: dict) -> datetime:
    try:
        return report_time(datetime.fromtimestamp(int(item["timestamp"]), UTC))
    except (KeyError, TypeError, ValueError, OverflowError):
        return clock.now()


def apply_status(status: dict) -> bool:
    """Move our message (``biz_opaque_callback_data``) to the status Meta reports."""
    message_id, wamid = status.get("biz_opaque_callback_data"), status.get("id")
    target = STATUSES.get(str(status.get("status")))
    if target is None or not isinstance(wamid, str) or not isinstance(message_id, str):
        log.info("whatsapp status ignored: not one of ours or not a known status")
        return False
    lifecycle.require_message_id(message_id)
    try:
        message = Message.get(message_id)
    except Message.DoesNotExist:
        return False
    if message.channel != "whatsapp" or message.provider_message_id not in (None, wamid):
        return False  # sent as SMS since, or another message's status
    at = _at(status)
    if target is Status.FAILED:
        return _failed(message, _reason(status.get("errors")), at)
    outcome = lifecycle.transition(
        message_id, target, at=at, provider_message_id=wamid, channel="whatsapp"
    )
    return outcome.changed


def _failed(message: Message, reason: str, at: datetime) -> bool:
    if message.fallback == "sms":
        return fall_back(message.message_id, message.text, reason)["channel"] == "sms"
    outcome = lifecycle.transition(
        message.message_id, Status.FAILED, reason=reason, at=at, channel="whatsapp"
    )
    return outcome.changed


def _reason(errors) -> str:
    """``errors[0]`` of a failed status, as a short reason."""
    first = _list(errors)[:1]
    if not first:
        return "WhatsApp reported the message failed"
    error = first[0]
    data = error.get("error_data")
    detail = data.get("details") if isinstance(data, dict) else None
    text = " ".join(str(part) for part in (error.get("title"), detail) if part) or "failed"
    code = error.get("code")
    return (f"WhatsApp: {text}" + (f" (code {code})" if isinstance(code, int) else ""))[:300]


def _text(message: dict) -> str:
    """What the log shows of an inbound message of any type."""
    kind = message.get("type")
    body = message.get(kind) if isinstance(kind, str) else None
    body = body if isinstance(body, dict) else {}
    if kind == "text":
        text = body.get("body")
    elif kind == "button":
        text = body.get("text")
    elif kind == "interactive":
        reply = body.get("button_reply") or body.get("list_reply") or {}
        text = reply.get("title") if isinstance(reply, dict) else None
    else:
        caption = body.get("caption")
        text = f"[{kind}] {caption}" if caption else f"[{kind}]"
    if not isinstance(text, str) or not text.strip():
        raise ValueError("an inbound WhatsApp message without text")
    return text


def store_inbound(item: dict) -> bool:
    """Store a customer's message (once per wamid), open its window with its account."""
    wamid, sender = item.get("id"), item.get("from")
    if not isinstance(wamid, str) or not wamid or not isinstance(sender, str):
        raise ValueError("an inbound WhatsApp message without id or sender")
    if not _WA_ID.fullmatch(sender):
        raise ValueError("an inbound WhatsApp message from an unusable number")
    phone_number = "+" + sender
    received_at = _at(item)
    owner = owner_of(phone_number)
    message = new_inbound(
        str(uuid.uuid5(WAMID_NAMESPACE, wamid)),
        owner,
        phone_number,
        _text(item),
        received_at,
        channel="whatsapp",
        provider_message_id=wamid,
    )
    if owner not in accounts.RESERVED:
        window.open_from(owner, phone_number, received_at)
    return not store_received(message)[1]


def owner_of(phone_number: str) -> str:
    """Whose customer wrote? The account whose WhatsApp message went to them most
    recently, within the reply window (one WhatsApp number serves every account); none:
    the operator's unassigned inbox."""
    since = clock.now() - timedelta(days=settings().reply_window_days)
    latest = Message.by_sent_to.query(
        phone_number, Message.sent_at >= since, scan_index_forward=False, limit=REPLY_CLAIMS_READ
    )
    claim = next((m for m in latest if m.device_id is None), None)
    return claim.account_id if claim else accounts.UNASSIGNED
