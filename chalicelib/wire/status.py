"""Message statuses: the words the API, the device bridges and webhooks all use."""

from __future__ import annotations

from enum import StrEnum


class Status(StrEnum):
    """Where a message stands. Outbound: queued -> sending -> sent -> delivered (-> read, on
    WhatsApp), or failed /
    expired; a scheduled one waits for its time first (or is cancelled). Inbound messages
    are received."""

    SCHEDULED = "scheduled"
    CANCELLED = "cancelled"
    QUEUED = "queued"
    SENDING = "sending"
    SENT = "sent"
    DELIVERED = "delivered"
    READ = "read"  # WhatsApp only: the recipient opened it
    FAILED = "failed"
    EXPIRED = "expired"
    RECEIVED = "received"


# What a device bridge may report about an outbound message it was given.
DEVICE_REPORTS = (Status.SENDING, Status.SENT, Status.DELIVERED, Status.FAILED, Status.EXPIRED)
