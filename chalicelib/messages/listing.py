"""The account's message log: one DynamoDB Query per page, on the account-created index.

Filters other than the time range are applied by DynamoDB after it reads a page, so a
page can hold fewer than ``limit`` messages while ``nextCursor`` is still set: keep
following the cursor until it is null.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta

from .. import clock
from ..errors import ValidationError
from ..models import Message
from ..server_secret import server_secret
from ..validation import Fields, choice
from ..wire.status import Status
from .views import to_json

DEFAULT_LIMIT = 20
MAX_LIMIT = 100
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
LATEST = datetime(9999, 1, 1, tzinfo=UTC)


def _cursor_key() -> bytes:
    return hmac.new(server_secret(), b"message-log-cursor", hashlib.sha256).digest()


def encode_cursor(account_id: str, query: str, last_key: dict) -> str:
    """``query`` names the filters: a cursor only continues the listing it came from."""
    payload = json.dumps(
        {"a": account_id, "q": query, "k": last_key}, separators=(",", ":")
    ).encode()
    signature = hmac.new(_cursor_key(), payload, hashlib.sha256).digest()[:16]
    return base64.urlsafe_b64encode(signature + payload).decode().rstrip("=")


def decode_cursor(account_id: str, query: str, cursor: str) -> dict:
    """The DynamoDB key a cursor resumes from; any change to the cursor is a 400."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        signature, payload = raw[:16], raw[16:]
        expected = hmac.new(_cursor_key(), payload, hashlib.sha256).digest()[:16]
        if not hmac.compare_digest(signature, expected):
            raise ValueError("bad signature")
        decoded = json.loads(payload)
        if decoded["a"] != account_id or decoded["q"] != query:
            raise ValueError("another account's or another listing's cursor")
        return decoded["k"]
    except (ValueError, KeyError, TypeError, binascii.Error):
        raise ValidationError.field("cursor", "is not a cursor this API returned") from None


def _limit(value):
    if value is None:
        return DEFAULT_LIMIT
    if not (value.isascii() and value.isdigit()) or not 1 <= int(value) <= MAX_LIMIT:
        raise ValidationError.field("limit", f"must be a whole number from 1 to {MAX_LIMIT}")
    return int(value)


def _time(name, end_of_day: bool = False):
    """An ISO-8601 date-time (UTC unless it says otherwise); a bare date means its start,
    or with ``end_of_day`` its end, so ``from=D&to=D`` is the whole day D."""

    def parse(value):
        if value is None:
            return None
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
            if end_of_day and len(value) == 10:
                parsed += timedelta(days=1, microseconds=-1)
            return parsed.replace(tzinfo=parsed.tzinfo or UTC).astimezone(UTC)
        except (ValueError, OverflowError):
            raise ValidationError.field(name, "must be an ISO-8601 date or date-time") from None

    return parse


def _boolean(name):
    def parse(value):
        if value is None:
            return None
        if value.lower() not in ("true", "false"):
            raise ValidationError.field(name, "must be true or false")
        return value.lower() == "true"

    return parse


def _phone_filter(value):
    if value is None:
        return None
    from ..devices import sender_number

    return sender_number(value)


def list_page(account_id: str, query: dict) -> dict:
    fields = Fields(query)
    direction = fields.check("direction", choice("direction", ("outbound", "inbound"), None))
    status = fields.check("status", choice("status", tuple(Status), None))
    phone_number = fields.check("phoneNumber", _phone_filter)
    since = fields.check("from", _time("from"))
    until = fields.check("to", _time("to", end_of_day=True))
    unread = fields.check("unread", _boolean("unread"))
    limit = fields.check("limit", _limit)
    listing = json.dumps([direction, status, phone_number, str(since), str(until), unread])
    start_key = fields.check("cursor", lambda c: c and decode_cursor(account_id, listing, c))
    if since and until and since > until:
        fields.errors.append({"field": "from", "message": "must not be after to"})
    if unread is not None and direction == "outbound":
        fields.errors.append({"field": "unread", "message": "applies to inbound messages only"})
    fields.done()

    # TTL deletion is lazy: leave out what is past its retention.
    conditions = [Message.purge_at.does_not_exist() | (Message.purge_at > clock.now())]
    if direction or unread is not None:
        conditions.append(Message.direction == (direction or "inbound"))
    if status:
        conditions.append(Message.status == status)
    if phone_number:
        conditions.append(Message.phone_number == phone_number)
    if unread is not None:
        conditions.append((Message.read == False) if unread else (Message.read == True))  # noqa: E712
    results = Message.by_account.query(
        account_id,
        Message.created_at.between(since or EARLIEST, until or LATEST),
        filter_condition=_all(conditions),
        scan_index_forward=False,
        page_size=limit,
        last_evaluated_key=start_key or None,
    )
    page = next(results.page_iter)  # exactly one Query per page
    last_key = results.page_iter.last_evaluated_key
    return {
        "success": True,
        "messages": [to_json(Message.from_raw_data(item)) for item in page.get("Items", [])],
        "nextCursor": encode_cursor(account_id, listing, last_key) if last_key else None,
    }


def _all(conditions):
    combined = None
    for condition in conditions:
        combined = condition if combined is None else combined & condition
    return combined
