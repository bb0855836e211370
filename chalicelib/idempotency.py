"""Idempotency-Key (IETF httpapi draft "The Idempotency-Key HTTP Header Field") on the
sending routes: a retry with the same key and request within 24 h gets the first answer
again, and nothing is stored or sent twice.

The record of a request (its fingerprint and its answer) is written in the same DynamoDB
transaction as what the request stores (the message, the OTP, the quota counters), under
the condition that no live record has this key: a first request costs no extra AWS call,
and a request is recorded exactly when its effect is. When such a transaction is refused,
one read tells a retry (same fingerprint: ``Replayed``, answered with the stored body and
``Idempotent-Replayed: true``) from a reuse of the key for another request (422). Without
the header, nothing changes.

Keys are scoped to the account and the route. The fingerprint covers the method, the path,
the query parameters and the body (JSON compared by content, not by its spacing or key
order).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from datetime import timedelta
from typing import TypeVar

from pynamodb.exceptions import TransactWriteError

from . import aws, clock
from .errors import GatewayError, RateLimited, ValidationError
from .models import RequestRecord

HEADER = "Idempotency-Key"
LIFETIME = timedelta(hours=24)
LONGEST_KEY = 255
T = TypeVar("T")


class KeyReused(GatewayError):
    """The key was used before with another request."""

    status = 422
    message = "Idempotency-Key was already used with another request"


class Replayed(Exception):
    """This request was made before with this key: ``answer`` is what it got."""

    def __init__(self, answer: dict):
        super().__init__("replayed")
        self.answer = answer


class Key:
    """The Idempotency-Key of one request (``NO_KEY``: the request had none)."""

    def __init__(self, record_id: str | None, fingerprint: str = ""):
        self.record_id = record_id
        self.fingerprint = fingerprint

    def add(self, transaction, answer: dict) -> None:
        """Record ``answer`` in ``transaction``; it fails if a live record has this key."""
        if self.record_id is None:
            return
        fresh = RequestRecord.bucket.does_not_exist() | (RequestRecord.expires_at < clock.now())
        transaction.save(self._record(answer), condition=fresh)

    def settle(self, answer: dict) -> None:
        """The answer changed after the transaction (a queue refused some SMS): keep the
        final one. Only on that failure path: one more write."""
        if self.record_id is not None:
            self._record(answer).save()

    def forget(self) -> None:
        """The request failed after its transaction: a retry with this key runs again."""
        if self.record_id is not None:
            RequestRecord(self.record_id).delete()

    def replay_if_done(self) -> None:
        """Raise Replayed (or KeyReused) when a live record has this key."""
        if self.record_id is None:
            return
        try:
            record = RequestRecord.get(self.record_id, consistent_read=True)
        except RequestRecord.DoesNotExist:
            return
        if record.expires_at <= clock.now():
            return
        if record.fingerprint != self.fingerprint:
            raise KeyReused(
                errors=[{"field": HEADER, "message": "was used with another request body"}]
            )
        raise Replayed(json.loads(record.answer))

    def _record(self, answer: dict) -> RequestRecord:
        return RequestRecord(
            self.record_id,
            fingerprint=self.fingerprint,
            answer=json.dumps(answer, ensure_ascii=False),
            expires_at=clock.now() + LIFETIME,
        )


NO_KEY = Key(None)


def once(key: Key, run: Callable[[], T]) -> T:
    """Run ``run``, whose transaction records ``key``; when the transaction is refused,
    a request already done with this key is replayed instead of failing."""
    try:
        return run()
    except (TransactWriteError, RateLimited) as error:
        if not aws.unreachable(error):  # else it waits again
            key.replay_if_done()
        raise


def of(call) -> Key:
    """The Idempotency-Key of ``call`` (a chalicelib.http.Call of an API key), or NO_KEY."""
    raw = call.request.headers.get(HEADER.lower())
    if raw is None:
        return NO_KEY
    value = _parse(raw)
    scope = f"{call.account_id}\n{call.route}\n{value}"
    record_id = "idempotency#" + hashlib.sha256(scope.encode()).hexdigest()
    return Key(record_id, _fingerprint(call))


def _parse(raw: str) -> str:
    """The draft's sf-string ("...") or, as most clients send it, the bare value."""
    value = raw.strip()
    if len(value) >= 2 and value[0] == value[-1] == '"':
        value = value[1:-1]
    if not value or len(value) > LONGEST_KEY or not value.isascii() or not value.isprintable():
        raise ValidationError.field(
            HEADER, f"must be 1 to {LONGEST_KEY} printable ASCII characters, e.g. a UUID"
        )
    return value


def _fingerprint(call) -> str:
    request = call.request
    body = request.raw_body or b""
    try:
        body = json.dumps(json.loads(body), sort_keys=True, separators=(",", ":")).encode()
    except (ValueError, UnicodeError, RecursionError):
        pass  # not JSON (a form): compared as sent
    query = json.dumps(sorted((request.query_params or {}).items()))
    digest = hashlib.sha256()
    for part in (request.method, request.context.get("path", ""), query):
        digest.update(part.encode() + b"\n")
    digest.update(body)
    return digest.hexdigest()
