"""What becomes a webhook event, and how it reaches the webhook queue.

The lifecycle publishes message events (chalicelib.messages.events); :func:`on_message_event`
turns received SMS and outbound status changes into webhook events for the accounts whose
webhook is subscribed to them. The producers' cost: one GetItem per account per
SMSGW_WEBHOOK_CACHE_SECONDS (cached in the Lambda, negative answers too), and one
SendMessage only when an event is subscribed.
"""

from __future__ import annotations

import json
import logging
import uuid
from datetime import UTC, datetime

from .. import aws, clock, queue
from ..config import settings
from ..messages.events import Change, MessageEvent
from ..messages.views import iso
from ..models import Message, Webhook
from ..ttlcache import TtlCache
from ..wire.status import Status
from . import kept

log = logging.getLogger("chinqit.webhooks")

EVENTS = (
    "sms.received",
    "sms.sent",
    "sms.delivered",
    "sms.read",
    "sms.failed",
    "device.offline",
    "device.online",
    "contact.opted_out",
    "contact.opted_in",
)
DEFAULT_EVENTS = ("sms.received",)
STATUS_EVENTS: dict[str, str] = {
    Status.SENT: "sms.sent",
    Status.DELIVERED: "sms.delivered",
    Status.READ: "sms.read",
    Status.FAILED: "sms.failed",
}
TEST_EVENT = "webhook.test"
SQS_MAX_DELAY = 900  # seconds: SQS's DelaySeconds limit
EVENT_NAMESPACE = uuid.UUID("2f0b8c1e-5a4d-4f7e-9c61-0e7d5b2a9c33")

# account id -> its subscribed events (None: no webhook), read once per cache period
_cache: TtlCache[frozenset | None] = TtlCache(lambda _: settings().webhook_cache_seconds)


def forget(account_id: str | None = None) -> None:
    """Drop cached webhook configs (one account, or all)."""
    _cache.forget(account_id)


def subscribed_events(account_id: str) -> frozenset | None:
    """The account's subscribed events (None: no webhook); one GetItem per cache period."""
    return _cache.get(account_id, lambda: _read_events(account_id))


def _read_events(account_id: str) -> frozenset | None:
    try:
        return frozenset(Webhook.get(account_id, attributes_to_get=["events"]).events or ())
    except Webhook.DoesNotExist:
        return None


def new_event_id(fact: str | None = None) -> str:
    """``evt_`` + 32 hex digits; a ``fact`` makes it deterministic (one event per fact)."""
    raw = uuid.uuid5(EVENT_NAMESPACE, fact) if fact else uuid.uuid4()
    return "evt_" + raw.hex


def new_event(account_id: str, event_id: str, event_type: str, payload: dict) -> dict:
    """The body of a webhook queue message: one event, first attempt."""
    return {
        "eventId": event_id,
        "accountId": account_id,
        "type": event_type,
        "payload": payload,
        "attempt": 1,
        "createdAt": int(clock.unix()),
    }


def enqueue(event: dict, delay: float = 0, dead: bool = False) -> None:
    """Put an event on the webhook queue (after ``delay`` seconds), or on its dead-letter queue."""
    name = settings().webhook_queue + ("-dlq" if dead else "")
    params: dict = {"QueueUrl": queue.queue_url(name), "MessageBody": json.dumps(event)}
    if delay > 0:
        params["DelaySeconds"] = int(min(SQS_MAX_DELAY, delay))
    queue.sqs().send_message(**params)


def notify(
    account_id: str | None, event_type: str, payload: dict, event_id: str | None = None
) -> str | None:
    """Queue ``payload`` for the account's webhook if it is subscribed to ``event_type``.

    Never raises: a webhook problem must not fail the SMS path. When SQS (or the webhook's
    config) cannot be reached, the event is kept in DynamoDB for the outbox sweep
    (chalicelib.webhooks.kept). Returns the event id, or None when nothing was queued.
    """
    if not account_id:
        return None

    def event() -> dict:  # only built when it may go: most status changes have no webhook
        return new_event(account_id, event_id or new_event_id(), event_type, payload)

    try:
        events = subscribed_events(account_id)
    except Exception as error:  # noqa: BLE001 - kept (the worker drops it if unsubscribed)
        return _keep(event(), error)
    if not events or event_type not in events:
        return None
    queued = event()
    try:
        enqueue(queued)
    except Exception as error:  # noqa: BLE001 - kept, or logged as lost
        return _keep(queued, error)
    log.info(
        "webhook event queued account=%s event=%s id=%s", account_id, event_type, queued["eventId"]
    )
    return queued["eventId"]


def _keep(event: dict, error: Exception) -> str | None:
    """The event could not be queued: keep it for the sweep (the worker drops it then if
    the account is not subscribed), unless AWS did not answer at all, which another call
    now would wait out again."""
    what = f"webhook event {event['type']} {event['eventId']} for account {event['accountId']}"
    if aws.unreachable(error):
        log.error("%s lost: AWS did not answer (%s)", what, error)
        return None
    try:
        kept.keep(event)
    except Exception:
        log.exception("%s lost: not queued (%s) and not kept", what, error)
        return None
    log.warning("%s not queued (%s): kept for the outbox sweep", what, error)
    return event["eventId"]


def inbound_payload(message: Message) -> dict:
    """SMSMobileAPI's fields (date/hour: when the gateway stored it), plus event, messageId,
    the receiving device and the channel (sms, whatsapp)."""
    added = (message.updated_at or message.created_at).astimezone(UTC)
    received = message.created_at.astimezone(UTC)
    return {
        "event": "sms.received",
        "messageId": message.message_id,
        "date": added.strftime("%Y-%m-%d"),
        "hour": added.strftime("%H:%M:%S"),
        "time_received": received.strftime("%Y-%m-%d %H:%M:%S"),
        "message": message.text,
        "number": message.phone_number,
        "guid": message.message_id,
        "deviceId": message.device_id,
        "channel": message.channel,
    }


def notify_inbound(message: Message) -> str | None:
    return notify(
        message.account_id,
        "sms.received",
        inbound_payload(message),
        event_id=new_event_id("sms.received\n" + message.message_id),
    )


def notify_status(message: Message, at: datetime | None = None) -> str | None:
    """An outbound message's status just changed: tell the webhook if it is subscribed."""
    event_type = STATUS_EVENTS.get(message.status)
    if event_type is None:
        return None
    payload = {
        "event": event_type,
        "messageId": message.message_id,
        "status": message.status,
        "phoneNumber": message.phone_number,
        "channel": message.channel,
        "statusReason": message.status_reason,
        "timestamp": iso(at or message.updated_at),
    }
    return notify(message.account_id, event_type, payload)


def on_message_event(event: MessageEvent) -> None:
    """The lifecycle's subscriber: received SMS and outbound status changes become events."""
    message = event.message
    if event.change is Change.DELETED or not isinstance(message, Message):
        return
    if message.direction == "inbound":
        notify_inbound(message)
    elif event.change is Change.STATUS:
        notify_status(message, event.at)
