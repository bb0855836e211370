"""The 24-hour customer-service window: free-form WhatsApp messages may go to a customer
only within 24 hours of their last message; outside it only an approved template may."""

from __future__ import annotations

from datetime import datetime, timedelta

from pynamodb.exceptions import PutError

from .. import clock
from ..models import WhatsAppWindow, is_expired

LENGTH = timedelta(hours=24)


def _bucket(account_id: str, phone_number: str) -> str:
    return f"wa-window#{account_id}#{phone_number}"


def is_open(account_id: str, phone_number: str) -> bool:
    try:
        window = WhatsAppWindow.get(_bucket(account_id, phone_number))
    except WhatsAppWindow.DoesNotExist:
        return False
    return not is_expired(window.expires_at)


def open_from(account_id: str, phone_number: str, at: datetime) -> None:
    """The customer wrote at ``at``: the window runs 24 hours from then (never shortened
    by an older message delivered late)."""
    closes = min(at, clock.now()) + LENGTH
    window = WhatsAppWindow(_bucket(account_id, phone_number), expires_at=closes)
    try:
        window.save(
            condition=WhatsAppWindow.bucket.does_not_exist() | (WhatsAppWindow.expires_at < closes)
        )
    except PutError as exc:
        if exc.cause_response_code != "ConditionalCheckFailedException":
            raise  # else a later message opened it until later already
