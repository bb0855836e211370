"""Message statuses: the words the API, the device bridges and webhooks all use."""

from __future__ import annotations

from enum import StrEnum


class Status(StrEnum):
    """Where a message stands. Outbound: queued -> sending -> sent -> delivered, or failed /
    expired. Inbound messages are received."""

    QUEUED = "queued"
    SENDING = "sending"
    SENT = "sent"
    DELIVERED = "delivered"
    FAILED = "failed"
    EXPIRED = "expired"
    RECEIVED = "received"


# What a device bridge may report about an outbound message it was given.
DEVICE_REPORTS = (Status.SENDING, Status.SENT, Status.DELIVERED, Status.FAILED, Status.EXPIRED)
