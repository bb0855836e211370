"""The webhook secret and the ``webhook-signature`` header (Standard Webhooks, v1).

The secret (``whsec_`` + base64 of 32 bytes) is not stored: it is derived with HMAC from
the server secret (SMSGW_SECRET_KEY or its SSM parameter, chalicelib/server_secret.py) and
a random per-webhook salt that the table keeps, so a copy of the table alone cannot sign.
Changing the server secret changes every webhook secret (customers must rotate).
"""

from __future__ import annotations

import base64
import hashlib
import hmac

from ..server_secret import server_secret

SECRET_PREFIX = "whsec_"


def secret_for(account_id: str, salt: str) -> str:
    """The webhook secret of an account: derived, never stored."""
    digest = hmac.new(
        server_secret(),
        b"chinqit-webhook-secret\0" + account_id.encode() + b"\0" + salt.encode(),
        hashlib.sha256,
    ).digest()
    return SECRET_PREFIX + base64.b64encode(digest).decode()


def sign(secret: str, event_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` header value (v1 = HMAC-SHA256)."""
    key = base64.b64decode(secret.removeprefix(SECRET_PREFIX))
    mac = hmac.new(key, f"{event_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()
