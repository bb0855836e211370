"""Fixed-window rate limits and quotas counted atomically inside a DynamoDB transaction.

Each window is one counter item incremented with a condition ``count <= limit - cost``;
the transaction that holds the counters also holds the write they protect, so concurrent
requests can never get more than the limit through, and a refused request counts nothing.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from pynamodb.exceptions import TransactWriteError
from pynamodb.transactions import TransactWrite

from . import clock
from .errors import RateLimited
from .models import RateCounter
from .models import transaction as new_transaction

SECONDS = {"minute": 60, "hour": 3600, "day": 86400}


@dataclass(frozen=True)
class Limit:
    per: str  # "minute", "hour", "day": used in the bucket key and the error text
    seconds: int
    max_requests: int


def limits(**per: int) -> tuple[Limit, ...]:
    """``limits(minute=3, hour=10)``: one Limit per window, shortest first."""
    return tuple(Limit(name, SECONDS[name], n) for name, n in per.items())


# The seed's OTP limits per phone number (now per account and phone number)
OTP_LIMITS = limits(minute=3, hour=10, day=20)


@dataclass(frozen=True)
class Quota:
    """Limits on one kind of request for one scope (an account, a phone, a device)."""

    scope: str  # counter key prefix, e.g. "otp#acme#+22238089336"
    limits: tuple[Limit, ...]
    what: str  # how the 429 names what is counted: "{n} OTP requests per {per} ..."
    cost: int = 1  # how many requests this one counts for (bulk: its recipients)


@dataclass(frozen=True)
class Window:
    quota: Quota
    limit: Limit
    resets_at: datetime


def count(transaction, quotas: Iterable[Quota], now: datetime) -> list[Window]:
    """Add each quota's cost to every one of its windows, in ``transaction``."""
    windows = []
    epoch = int(now.timestamp())
    for quota in quotas:
        for limit in quota.limits:
            start = epoch - epoch % limit.seconds
            resets_at = datetime.fromtimestamp(start + limit.seconds, UTC)
            transaction.update(
                RateCounter(f"{quota.scope}#{limit.per}#{start}"),
                actions=[
                    RateCounter.requests.add(quota.cost),
                    RateCounter.expires_at.set(resets_at + timedelta(minutes=1)),
                ],
                condition=_room_for(quota.cost, limit.max_requests),
            )
            windows.append(Window(quota, limit, resets_at))
    return windows


def _room_for(cost: int, maximum: int):
    if cost > maximum:  # can never fit: the condition fails whatever is counted
        return RateCounter.requests.does_not_exist() & RateCounter.requests.exists()
    return RateCounter.requests.does_not_exist() | (RateCounter.requests <= maximum - cost)


def raise_if_exceeded(error: TransactWriteError, windows: list[Window], now: datetime) -> None:
    """Turn a cancelled transaction into a 429 when one of its counters refused it.

    PynamoDB sends a transaction's updates last, in the order they were added, and the
    counters are the only updates of the transactions that use this module.
    """
    reasons = (error.cancellation_reasons or [])[-len(windows) :] if windows else []
    full = [
        w
        for w, reason in zip(windows, reasons, strict=False)
        if reason is not None and reason.code == "ConditionalCheckFailed"
    ]
    if not full:
        return
    longest = max(full, key=lambda w: w.resets_at)
    raise RateLimited(
        f"Rate limit exceeded: at most {longest.limit.max_requests} {longest.quota.what} per "
        + longest.limit.per
        + _suffix(longest.quota),
        retry_after=(longest.resets_at - now).total_seconds() + 0.999,
    )


def _suffix(quota: Quota) -> str:
    return "" if quota.cost == 1 else f" (this request counts for {quota.cost})"


TRANSACTION_ATTEMPTS = 3


def write_counted(quotas: list[Quota], add_writes: Callable[[TransactWrite], None]) -> None:
    """One transaction: the counters of ``quotas`` and the writes ``add_writes`` adds.

    DynamoDB cancels concurrent transactions on the same counter with TransactionConflict:
    those are retried, so a burst gets 200s and 429s, never 500s.
    """
    now = clock.now()
    for attempt in range(1, TRANSACTION_ATTEMPTS + 1):
        windows: list[Window] = []
        try:
            with new_transaction() as transaction:
                add_writes(transaction)
                windows = count(transaction, quotas, now)
            return
        except TransactWriteError as exc:
            raise_if_exceeded(exc, windows, now)
            if attempt == TRANSACTION_ATTEMPTS or not _conflicted(exc):
                raise
            time.sleep(random.uniform(0.01, 0.05) * attempt)


def take(quotas: list[Quota]) -> None:
    """Count a request that writes nothing else (429 when a window is full)."""
    write_counted(quotas, lambda _transaction: None)


def _conflicted(error: TransactWriteError) -> bool:
    return any(
        reason is not None and reason.code == "TransactionConflict"
        for reason in error.cancellation_reasons or []
    )
