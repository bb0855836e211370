"""The account's figures for the last days (``GET /stats``), computed from its message log.

Nothing is counted on the way in, so sending costs no extra AWS call: the figures are read
from the account-created index, a few attributes per message, one Query per 1 MB page.
Days are UTC days, and a message counts on the day it was created, in its status now.
"""

from __future__ import annotations

import statistics
from collections import Counter
from datetime import UTC, datetime, timedelta

from .. import clock
from ..errors import ValidationError
from ..models import Message, is_expired
from ..wire.status import Status
from .views import iso

DEFAULT_DAYS = 14
MAX_DAYS = 90
# About 6,000 messages fit a page of projected attributes: a bound that keeps the answer
# inside the Lambda timeout; past it the answer says "complete": false.
MAX_PAGES = 40
ATTRIBUTES = [
    "created_at",
    "direction",
    "kind",
    "status",
    "sent_at",
    "delivered_at",
    "verified_at",
    "read",
    "purge_at",
]
# What each day shows, by the status a message has now.
OUTBOUND_COLUMNS: dict[str, str] = {
    Status.SCHEDULED: "pending",
    Status.CANCELLED: "cancelled",  # never went out: neither pending nor settled
    Status.QUEUED: "pending",
    Status.SENDING: "pending",
    Status.SENT: "sent",
    Status.DELIVERED: "delivered",
    Status.READ: "delivered",  # WhatsApp: delivered, then opened
    Status.FAILED: "failed",
    Status.EXPIRED: "expired",
}


def _days(value) -> int:
    if value is None:
        return DEFAULT_DAYS
    if not (value.isascii() and value.isdigit()) or not 1 <= int(value) <= MAX_DAYS:
        raise ValidationError.field("days", f"must be a whole number from 1 to {MAX_DAYS}")
    return int(value)


def summary(account_id: str, query: dict) -> dict:
    days = _days(query.get("days"))
    now = clock.now()
    first_day = now.astimezone(UTC).date() - timedelta(days=days - 1)
    since = datetime.combine(first_day, datetime.min.time(), tzinfo=UTC)
    messages, complete = _messages_since(account_id, since)
    figures = _Figures(first_day, days)
    for message in messages:
        if not is_expired(message.purge_at, now):
            figures.add(message)
    return {
        "success": True,
        "from": iso(since),
        "to": iso(now),
        "complete": complete,
        **figures.json(),
    }


def _messages_since(account_id: str, since: datetime) -> tuple[list[Message], bool]:
    results = Message.by_account.query(
        account_id, Message.created_at >= since, attributes_to_get=ATTRIBUTES
    )
    messages: list[Message] = []
    for pages, page in enumerate(results.page_iter, start=1):
        messages += [Message.from_raw_data(item) for item in page.get("Items", [])]
        if pages == MAX_PAGES and results.page_iter.last_evaluated_key:
            return messages, False
    return messages, True


class _Figures:
    def __init__(self, first_day, days: int):
        self.days: dict[str, Counter] = {
            (first_day + timedelta(days=n)).isoformat(): Counter() for n in range(days)
        }
        self.queued_to_sent: list[float] = []
        self.sent_to_delivered: list[float] = []
        self.otp: Counter = Counter()
        self.unread = 0

    def add(self, message: Message) -> None:
        day = self.days.get(message.created_at.astimezone(UTC).date().isoformat())
        if day is None:
            return
        if message.direction == "inbound":
            day["received"] += 1
            self.unread += not message.read
            return
        day["outbound"] += 1
        day[OUTBOUND_COLUMNS.get(message.status, "pending")] += 1
        if message.sent_at:
            self.queued_to_sent.append((message.sent_at - message.created_at).total_seconds())
        if message.sent_at and message.delivered_at:
            self.sent_to_delivered.append((message.delivered_at - message.sent_at).total_seconds())
        if message.kind == "otp":
            self.otp["sent"] += message.status in (Status.SENT, Status.DELIVERED, Status.READ)
            self.otp["requested"] += 1
            self.otp["verified"] += message.verified_at is not None

    def json(self) -> dict:
        columns = (
            "outbound",
            "pending",
            "sent",
            "delivered",
            "failed",
            "expired",
            "cancelled",
            "received",
        )
        days = [
            {"date": date, **{c: counts[c] for c in columns}} for date, counts in self.days.items()
        ]
        totals = {c: sum(counts[c] for counts in self.days.values()) for c in columns}
        settled = totals["sent"] + totals["delivered"] + totals["failed"]
        return {
            "days": days,
            "totals": totals,
            "deliveryRate": _ratio(totals["delivered"], settled),
            "medianSeconds": {
                "queuedToSent": _median(self.queued_to_sent),
                "sentToDelivered": _median(self.sent_to_delivered),
            },
            "otp": {
                "requested": self.otp["requested"],
                "sent": self.otp["sent"],
                "verified": self.otp["verified"],
                "conversion": _ratio(self.otp["verified"], self.otp["requested"]),
            },
            "unreadInbound": self.unread,
        }


def _ratio(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def _median(values: list[float]) -> float | None:
    return round(statistics.median(values), 1) if values else None
