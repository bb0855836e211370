"""Fixed-window rate limits counted atomically inside a DynamoDB transaction.

Each window is one counter item incremented with a condition ``count < limit``; the
transaction that holds the counters also holds the write they protect, so concurrent
requests can never get more than the limit through, and a refused request counts nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from pynamodb.exceptions import TransactWriteError

from .errors import RateLimited
from .models import RateCounter


@dataclass(frozen=True)
class Limit:
    per: str  # "minute", "hour", "day": used in the bucket key and the error text
    seconds: int
    max_requests: int


OTP_LIMITS = (Limit("minute", 60, 3), Limit("hour", 3600, 10), Limit("day", 86400, 20))


@dataclass(frozen=True)
class Window:
    limit: Limit
    resets_at: datetime


def count(transaction, scope: str, limits, now: datetime) -> list[Window]:
    """Add one request to every window of ``limits`` for ``scope`` in ``transaction``."""
    windows = []
    epoch = int(now.timestamp())
    for limit in limits:
        start = epoch - epoch % limit.seconds
        resets_at = datetime.fromtimestamp(start + limit.seconds, UTC)
        transaction.update(
            RateCounter(f"{scope}#{limit.per}#{start}"),
            actions=[
                RateCounter.requests.add(1),
                RateCounter.expires_at.set(resets_at + timedelta(minutes=1)),
            ],
            condition=RateCounter.requests.does_not_exist()
            | (RateCounter.requests < limit.max_requests),
        )
        windows.append(Window(limit, resets_at))
    return windows


def raise_if_exceeded(error: TransactWriteError, windows: list[Window], now: datetime) -> None:
    """Turn a cancelled transaction into a 429 when one of its counters refused it.

    PynamoDB sends a transaction's updates last, in the order they were added, and the
    counters are the only updates of the transactions that use this module.
    """
    reasons = (error.cancellation_reasons or [])[-len(windows) :]
    full = [
        w
        for w, reason in zip(windows, reasons, strict=False)
        if reason is not None and reason.code == "ConditionalCheckFailed"
    ]
    if not full:
        return
    longest = max(full, key=lambda w: w.resets_at)
    raise RateLimited(
        f"Rate limit exceeded: at most {longest.limit.max_requests} OTP requests per "
        f"{longest.limit.per} for this phone number",
        retry_after=(longest.resets_at - now).total_seconds() + 0.999,
    )
