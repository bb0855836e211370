"""Claim tokens: proof that a device received a message from one of its pool's queues.

Each queue body carries ``claim``, an HMAC (server secret) of the message id and the queue
it was put on. A device's first report on a message must present it; the API checks it
against the queues the device polls (chalicelib.routing). From then on the message is bound to that device:
its later reports (sent, delivered, failed) need no token, and no other device can
settle it. So a device key alone cannot touch messages it never received.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterable

from .server_secret import server_secret


def token(message_id: str, queue_name: str) -> str:
    mac = hmac.new(
        server_secret(), f"claim\0{message_id}\0{queue_name}".encode(), hashlib.sha256
    ).digest()
    return base64.urlsafe_b64encode(mac[:24]).decode()


def received(claim: str | None, message_id: str, queue_names: Iterable[str]) -> bool:
    """Is ``claim`` the token of ``message_id`` on one of ``queue_names``? (constant time)"""
    if not claim:
        return False
    matches = [hmac.compare_digest(claim, token(message_id, name)) for name in queue_names]
    return any(matches)
