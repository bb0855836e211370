"""Webhook events the webhook queue could not take, kept in DynamoDB until it can.

A status change is written, then its webhook event is queued: two calls. When SQS fails
the second, the event is appended to one of SHARDS lists in the rate-limits table (one
UpdateItem), and the outbox sweep, once a minute, queues the oldest of each list and
removes them. Two sweeps at once (a slow minute) may both queue the same events: the
webhook worker delivers an event id once. At most MAX_KEPT events wait per shard (an item
stays far under DynamoDB's 400 KB); past that, or when DynamoDB fails too, the event is
logged as lost.
"""

from __future__ import annotations

import hashlib
import json
import logging
from datetime import timedelta
from typing import cast

from pynamodb.exceptions import UpdateError
from pynamodb.expressions.condition import size

from .. import clock, queue
from ..config import settings
from ..models import KeptWebhookEvents

log = logging.getLogger("chinqit.webhooks")

SHARDS = 4
MAX_KEPT = 400  # per shard
PER_SWEEP = 100  # per shard and sweep: bounds the update expression and the sweep's time
KEPT_FOR = timedelta(days=14)  # SQS's longest retention: a sweep stopped longer loses them


class KeptListFull(Exception):
    """The shard's list holds MAX_KEPT events already."""


def keep(event: dict) -> None:
    """Append a queue body to its shard's list; raises KeptListFull, or PynamoDB's error."""
    model = KeptWebhookEvents
    try:
        model(_bucket(_shard(event["eventId"]))).update(
            actions=[
                model.events.set((model.events | []).append([json.dumps(event)])),
                model.taken.set(model.taken | 0),
                model.expires_at.set(clock.now() + KEPT_FOR),
            ],
            condition=model.events.does_not_exist() | (size(model.events) < MAX_KEPT),
        )
    except UpdateError as exc:
        if exc.cause_response_code == "ConditionalCheckFailedException":
            raise KeptListFull(event["eventId"]) from exc
        raise


def queue_kept() -> int:
    """Put the oldest kept events of each shard on the webhook queue; returns how many."""
    queued = 0
    for shard_list in KeptWebhookEvents.batch_get([_bucket(shard) for shard in range(SHARDS)]):
        queued += _queue_oldest(shard_list)
    if queued:
        log.warning("webhook events kept while SQS failed: %d queued now", queued)
    return queued


def _queue_oldest(shard_list: KeptWebhookEvents) -> int:
    bodies = cast(list[str], shard_list.events)  # PynamoDB types a list's items as their attribute
    sent = _send(bodies[:PER_SWEEP])
    if not sent:
        return 0
    model = KeptWebhookEvents
    try:
        model(shard_list.bucket).update(
            actions=[model.events[i].remove() for i in range(sent)] + [model.taken.add(1)],
            condition=model.taken == shard_list.taken,
        )
    except UpdateError as exc:
        if exc.cause_response_code != "ConditionalCheckFailedException":
            raise
        log.info("kept webhook events of %s taken by another sweep meanwhile", shard_list.bucket)
    return sent


def _send(bodies: list[str]) -> int:
    """How many of ``bodies``, from the first on, are on the webhook queue now."""
    url = queue.queue_url(settings().webhook_queue)
    for start in range(0, len(bodies), queue.SQS_BATCH):
        chunk = bodies[start : start + queue.SQS_BATCH]
        entries = [{"Id": str(i), "MessageBody": body} for i, body in enumerate(chunk)]
        failed = queue.sqs().send_message_batch(QueueUrl=url, Entries=entries).get("Failed")
        if failed:
            return start + min(int(f["Id"]) for f in failed)
    return len(bodies)


def _shard(event_id: str) -> int:
    return hashlib.sha256(event_id.encode()).digest()[0] % SHARDS


def _bucket(shard: int) -> str:
    return f"webhook-kept#{shard}"
