"""Claim tokens: proof that a device received a message from one of its pool's queues.

Each queue body carries ``claim``, an HMAC (server secret) of the message id and the queue
it was put on. A device's first report on a message must present it; the API checks it
against the queues the device polls. From then on the message is bound to that device:
its later reports (sent, delivered, failed) need no token, and no other device can
settle it. So a device key alone cannot touch messages it never received.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

from .config import settings
from .server_secret import server_secret


def token(message_id: str, queue_name: str) -> str:
    mac = hmac.new(
        server_secret(), f"claim\0{message_id}\0{queue_name}".encode(), hashlib.sha256
    ).digest()
    return base64.urlsafe_b64encode(mac[:24]).decode()


def queues_of_device(device_id: str) -> tuple[str, ...]:
    """The queues a device polls: every device serves the shared pool's two queues."""
    config = settings()
    return (config.priority_queue, config.outbound_queue)


def received(device_id: str, message_id: str, claim: str | None) -> bool:
    """Did ``device_id`` get ``message_id`` from one of its queues? (constant-time checks)"""
    if not claim:
        return False
    matches = [
        hmac.compare_digest(claim, token(message_id, name)) for name in queues_of_device(device_id)
    ]
    return any(matches)
