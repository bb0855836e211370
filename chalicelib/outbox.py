"""The outbox sweep: no SMS stays ``queued`` without being on a queue.

Sending stores a message, then puts it on its queue: two calls. When the second never
happens (the Lambda died in between; SQS failed and so did marking the message failed),
the message would wait forever. Once a minute (the ``outbox_sweep`` Lambda) the messages
``queued`` for more than SMSGW_OUTBOX_STALE_SECONDS (120; the sparse ``waiting`` index)
are put on their queue again. An extra copy on a queue is harmless: a bridge claims a message before it sends
(only one claim wins) and skips a copy of a message already settled. A message waiting
for its pool's phones is copied again at growing intervals (2, 4, 8 ... minutes, at most
LONGEST_WAIT), a few copies a day at most.

An OTP's code is not stored (only its hash), so an OTP is never copied: one still queued
at its ``send_before`` is marked ``expired`` here, as a bridge would.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from pynamodb.exceptions import UpdateError

from . import clock, queue, routing
from .config import settings
from .messages import lifecycle, schedule
from .models import WAITING_SHARDS, Message
from .queue import PRIORITY_KINDS
from .wire.status import Status

log = logging.getLogger("chinqit.outbox")

LONGEST_WAIT = timedelta(hours=6)
MAX_PER_RUN = 500  # bounds the Lambda's time; the rest waits for the next run
NOT_SENT_IN_TIME = "not sent before it expired"


def sweep() -> dict[str, int]:
    """Queue again, or expire, what waits too long, and queue scheduled SMS near their
    time; returns how many of each."""
    now = clock.now()
    done = {"requeued": 0, "expired": 0, "scheduled": 0}
    looked = 0
    watched = (  # (index key prefix, which of its messages, what to do with each)
        ("waiting", Message.waiting_since < now - _stale_after(), _settle),
        ("scheduled", Message.waiting_since <= now + schedule.QUEUE_AHEAD, _pick_up),
    )
    for kind, due, handle in watched:
        for shard in range(WAITING_SHARDS):
            for key in Message.waiting.query(f"{kind}#{shard}", due, limit=MAX_PER_RUN - looked):
                looked += 1
                try:
                    outcome = handle(key.message_id, now)
                except Exception:  # one message never stops the sweep of the others
                    log.exception("outbox sweep: message %s", key.message_id)
                    continue
                if outcome:
                    done[outcome] += 1
            if looked >= MAX_PER_RUN:
                break
    if done["requeued"] or done["expired"]:
        log.warning("outbox sweep: %(requeued)d queued again, %(expired)d expired", done)
    return done


def _stored_in(message_id: str, status: Status) -> Message | None:
    """The message as stored now, if it is still ``status`` (the index lags the table)."""
    try:
        message = Message.get(message_id, consistent_read=True)
    except Message.DoesNotExist:
        return None
    return message if message.status == status else None


def _pick_up(message_id: str, now: datetime) -> str | None:
    """A scheduled SMS within 15 minutes of its time goes on its queue, delayed until then;
    one still scheduled 2 minutes after its time (its copy was lost) goes again."""
    message = _stored_in(message_id, Status.SCHEDULED)
    if message is None:
        return None
    first = message.requeued_at is None
    if not first and (now < message.send_at + _stale_after() or not _due(message, now)):
        return None
    stamp = [Message.requeued_at.set(now)]
    if not queue_again(message, message.text, Message.requeues, stamp, Status.SCHEDULED):
        return None
    return "scheduled" if first else "requeued"


def _settle(message_id: str, now: datetime) -> str | None:
    message = _stored_in(message_id, Status.QUEUED)
    if message is None:
        return None
    if expire_if_late(message, now):
        return "expired"
    if message.kind in PRIORITY_KINDS or not _due(message, now):
        return None
    stamp = [Message.requeued_at.set(now)]
    if not queue_again(message, message.text, Message.requeues, also=stamp):
        return None
    log.info("outbox sweep: message %s queued again", message_id)
    return "requeued"


def expire_if_late(message: Message, now: datetime) -> bool:
    """A queued message past its ``send_before`` becomes expired (True) instead of sent."""
    if message.send_before is None or message.send_before > now:
        return False
    lifecycle.transition(
        message.message_id, Status.EXPIRED, reason=NOT_SENT_IN_TIME, only_from=(Status.QUEUED,)
    )
    return True


def queue_again(
    message: Message, text: str, counter, also: list | None = None, status=Status.QUEUED
) -> bool:
    """Put a queued message on its (current) queue once more, counting it in ``counter``
    (a NumberAttribute of Message), on the condition that nothing moved since it was read:
    two runs at once never both copy it. False when it moved on. (Not a status change:
    lifecycle is not involved.)"""
    seen = getattr(message, counter.attr_name)
    unchanged = (Message.status == status) & (
        counter.does_not_exist() if seen is None else counter == seen
    )
    try:
        message.update(actions=[counter.add(1), *(also or [])], condition=unchanged)
    except UpdateError as exc:
        if exc.cause_response_code == "ConditionalCheckFailedException":
            return False
        raise
    queue.enqueue_sms(message, text, routing.queue_name(message))
    return True


def _stale_after() -> timedelta:
    return timedelta(seconds=settings().outbox_stale_seconds)


def _due(message: Message, now: datetime) -> bool:
    if message.requeued_at is None:
        return True
    wait = min(LONGEST_WAIT, _stale_after() * 2 ** int(message.requeues or 0))
    return now - message.requeued_at >= wait
