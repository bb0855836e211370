"""Webhooks: one signed HTTPS callback per account, fed by an SQS queue and a worker Lambda.

- ``configuration``: ``PUT/GET/DELETE /webhook`` and ``POST /webhook/test`` (the Webhook table).
- ``events``: what becomes an event (the lifecycle's subscriber), the per-account
  subscription cache, event ids and the webhook queue.
- ``worker``: the ``webhook_worker`` Lambda: claims, retries, dead letters, health.
- ``transport``: one POST to an address the SSRF guard checked (no second DNS lookup).
- ``netguard``: the SSRF guard for customer-supplied URLs.
- ``signing``: the derived per-webhook secret and the Standard Webhooks signature:

    webhook-id: <event id, the same on every retry>
    webhook-timestamp: <unix seconds of this attempt>
    webhook-signature: v1,<base64 HMAC-SHA256(secret, "{id}.{timestamp}.{body}")>
"""

from .configuration import EVENTS, configure, delete, get, send_test, to_json
from .events import (
    forget,
    new_event_id,
    notify,
    notify_inbound,
    notify_status,
    on_message_event,
)
from .signing import secret_for, sign
from .worker import handle_record

__all__ = [
    "EVENTS",
    "configure",
    "delete",
    "forget",
    "get",
    "handle_record",
    "new_event_id",
    "notify",
    "notify_inbound",
    "notify_status",
    "on_message_event",
    "secret_for",
    "send_test",
    "sign",
    "to_json",
]
