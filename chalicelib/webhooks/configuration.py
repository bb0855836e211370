"""The account's webhook: ``PUT/GET/DELETE /webhook`` and ``POST /webhook/test``.

A PUT that creates the webhook or sets ``rotateSecret`` answers with the new secret, the
only time it is shown; a PUT that changes the URL or events keeps the secret.
"""

from __future__ import annotations

import logging
import secrets

from pynamodb.exceptions import DeleteError, PutError

from .. import clock, ratelimit
from ..config import settings
from ..errors import NotFound, ValidationError
from ..messages.views import iso
from ..models import Webhook
from ..validation import Fields, choice
from . import netguard
from .events import DEFAULT_EVENTS, EVENTS, TEST_EVENT, enqueue, forget, new_event, new_event_id
from .formats import FORMATS
from .signing import secret_for

log = logging.getLogger("chinqit.webhooks")

NO_WEBHOOK = "No webhook is set for this account"
TEST_EVENT_LIMITS = ratelimit.limits(minute=5, day=100)


def _url(value):
    if value is None:
        raise ValidationError.field("url", "is required")
    if not isinstance(value, str) or not value.strip():
        raise ValidationError.field("url", "must be a URL string")
    try:
        return netguard.check(value.strip(), settings().webhook_allow_local).url
    except netguard.Refused as exc:
        raise ValidationError.field("url", str(exc)) from None


def _events(value):
    if value is None:
        return list(DEFAULT_EVENTS)
    if not isinstance(value, list):
        raise ValidationError.field(
            "events", f"must be a list of event names ({', '.join(EVENTS)})"
        )
    if not value:
        raise ValidationError.field("events", "must name at least one event")
    unknown = [repr(v) for v in value if v not in EVENTS]
    if unknown:
        raise ValidationError.field(
            "events", f"unknown event {', '.join(unknown)}; known events: {', '.join(EVENTS)}"
        )
    return list(dict.fromkeys(value))


def _rotate_secret(value):
    if value is None:
        return False
    if not isinstance(value, bool):
        raise ValidationError.field("rotateSecret", "must be true or false")
    return value


def configure(account_id: str, body: dict) -> dict:
    """Set the account's webhook; the secret is in the answer only when it is new."""
    fields = Fields(body)
    url = fields.check("url", _url)
    events = fields.check("events", _events)
    rotate = fields.check("rotateSecret", _rotate_secret)
    webhook_format = fields.check("format", choice("format", FORMATS, FORMATS[0]))
    fields.done()
    now = clock.now()
    salt = secrets.token_urlsafe(24)
    webhook = Webhook(
        account_id,
        url=url,
        events=events,
        secret_salt=salt,
        format=webhook_format,
        created_at=now,
        updated_at=now,
    )
    try:
        webhook.save(Webhook.account_id.does_not_exist())
        new_secret = True
    except PutError as exc:
        if exc.cause_response_code != "ConditionalCheckFailedException":
            raise
        actions: list = [
            Webhook.url.set(url),
            Webhook.events.set(events),
            Webhook.format.set(webhook_format),
            Webhook.updated_at.set(now),
            Webhook.consecutive_failures.set(0),
        ]
        if rotate:
            actions.append(Webhook.secret_salt.set(salt))
        Webhook(account_id).update(actions=actions, condition=Webhook.account_id.exists())
        new_secret = rotate
    forget(account_id)
    log.info(
        "webhook set account=%s events=%s new_secret=%s", account_id, ",".join(events), new_secret
    )
    return {
        "url": url,
        "events": events,
        "format": webhook_format,
        "secret": secret_for(account_id, salt) if new_secret else None,
    }


def get(account_id: str) -> Webhook:
    try:
        return Webhook.get(account_id, consistent_read=True)
    except Webhook.DoesNotExist:
        raise NotFound(NO_WEBHOOK) from None


def to_json(webhook: Webhook) -> dict:
    return {
        "url": webhook.url,
        "events": list(webhook.events),
        "format": webhook.format or FORMATS[0],
        "createdAt": iso(webhook.created_at),
        "updatedAt": iso(webhook.updated_at),
        "health": {
            "lastSuccessAt": iso(webhook.last_success_at),
            "lastFailureAt": iso(webhook.last_failure_at),
            "lastFailureReason": webhook.last_failure_reason,
            "consecutiveFailures": int(webhook.consecutive_failures or 0),
            "deadLettered": int(webhook.dead_lettered or 0),
            "lastDeadLetterAt": iso(webhook.last_dead_letter_at),
            "lastDeadLetterEventId": webhook.last_dead_letter_event,
        },
    }


def delete(account_id: str) -> None:
    try:
        Webhook(account_id).delete(condition=Webhook.account_id.exists())
    except DeleteError as exc:
        if exc.cause_response_code == "ConditionalCheckFailedException":
            raise NotFound(NO_WEBHOOK) from None
        raise
    finally:
        forget(account_id)


def send_test(account_id: str) -> str:
    """Queue a ``webhook.test`` event (whatever the subscribed events); return its id."""
    get(account_id)
    ratelimit.take(
        [ratelimit.Quota(f"webhook-test#{account_id}", TEST_EVENT_LIMITS, "test events")]
    )
    event_id = new_event_id()
    payload = {
        "event": TEST_EVENT,
        "message": "Test event from Chinqit SMS Gateway",
        "timestamp": iso(clock.now()),
    }
    enqueue(new_event(account_id, event_id, TEST_EVENT, payload))
    return event_id
