"""Scheduled sends: ``sendAt`` on /messages/send and /messages/bulk (``schedule_timestamp``
on /sendsms), up to MAX_AHEAD ahead; OTPs are never scheduled.

A scheduled SMS is stored ``scheduled`` with its ``send_at`` and goes on its queue with an
SQS delay (at most 15 minutes, queue.delay_of): at once when its time is that close, else
when the outbox sweep (once a minute, chalicelib/outbox.py) finds it that close on the
sparse ``waiting`` index (``scheduled#N`` keys, ordered by time). SQS never hands it out
earlier, so it leaves at its time, give or take the bridge's pace. It stays ``scheduled``
until a bridge takes it; cancelling it before then (``cancelled``) makes every copy on a
queue a no-op. A copy lost on the way is queued again from 2 minutes after its time.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from .. import clock
from ..errors import BadRequest, ValidationError
from ..wire.status import Status
from . import lifecycle

MAX_AHEAD = timedelta(days=35)
QUEUE_AHEAD = timedelta(seconds=900)  # SQS's longest delay: queued this close to its time


def send_at(field: str = "sendAt"):
    """A parser of an ISO-8601 date-time (UTC unless it says otherwise) in the future."""

    def parse(value) -> datetime | None:
        if value is None:
            return None
        try:
            parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        except ValueError:
            raise ValidationError.field(field, "must be an ISO-8601 date-time") from None
        return check(parsed.replace(tzinfo=parsed.tzinfo or UTC).astimezone(UTC), field)

    return parse


def check(when: datetime, field: str) -> datetime:
    now = clock.now()
    if when <= now:
        raise ValidationError.field(field, "is in the past: leave it out to send now")
    if when > now + MAX_AHEAD:
        raise ValidationError.field(field, f"is more than {MAX_AHEAD.days} days ahead")
    return when


def from_unix(value, field: str = "schedule_timestamp") -> datetime | None:
    """SMSMobileAPI's ``schedule_timestamp``: Unix seconds from which it may go (now or
    earlier: send now)."""
    if value in (None, ""):
        return None
    if not str(value).isascii() or not str(value).isdigit():
        raise ValidationError.field(field, "must be a Unix time in seconds")
    try:
        when = datetime.fromtimestamp(int(value), UTC)
    except (OverflowError, ValueError):
        raise ValidationError.field(field, "is out of range") from None
    return None if when <= clock.now() else check(when, field)


def near(when: datetime | None, now: datetime) -> bool:
    """Close enough to its time to go on its queue now (with a delay)."""
    return when is not None and when - now <= QUEUE_AHEAD


def cancel(account_id: str, message_id: str):
    """POST /messages/{id}/cancel: a scheduled SMS that has not gone never will."""
    from .store import get_for_account

    message = get_for_account(account_id, message_id)
    if message.status != Status.SCHEDULED:
        raise BadRequest(f"Only scheduled messages can be cancelled; this one is {message.status}")
    outcome = lifecycle.transition(
        message_id, Status.CANCELLED, only_from=(Status.SCHEDULED,), account_id=account_id
    )
    if not outcome.changed:
        raise BadRequest(f"It could not be cancelled: it is {outcome.message.status} now")
    return outcome.message
