"""Domain events of the message lifecycle, published in-process to whoever subscribed.

The lifecycle publishes one event per change it wrote; subscribers (webhooks, metrics)
are registered once per container by the app. A subscriber that fails is logged and never
fails the change: the change is already stored.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

log = logging.getLogger("chinqit.events")


class Change(StrEnum):
    CREATED = "created"  # stored for the first time, in its first status
    STATUS = "status"  # moved to another status
    DELETED = "deleted"  # removed from the server log by its account


@dataclass(frozen=True)
class MessageEvent:
    change: Change
    message: object  # the chalicelib.models.Message as stored after the change
    at: datetime  # when it happened (a device's report time for its reports)


Subscriber = Callable[[MessageEvent], None]
_subscribers: list[Subscriber] = []


def subscribe(subscriber: Subscriber) -> None:
    if subscriber not in _subscribers:
        _subscribers.append(subscriber)


def unsubscribe(subscriber: Subscriber) -> None:
    if subscriber in _subscribers:
        _subscribers.remove(subscriber)


def publish(event: MessageEvent) -> None:
    for subscriber in list(_subscribers):
        try:
            subscriber(event)
        except Exception:
            log.exception(
                "subscriber %s failed on %s event of message %s",
                getattr(subscriber, "__qualname__", subscriber),
                event.change,
                getattr(event.message, "message_id", "?"),
            )
