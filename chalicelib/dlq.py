"""Outbound SMS that no bridge could send: SQS moved them to a dead-letter queue."""
from __future__ import annotations

import json
import logging

from . import messages
from .errors import NotFound
from .queue import MAX_RECEIVES

log = logging.getLogger("chinqit.dlq")
REASON = f"not sent: moved to the dead-letter queue after {MAX_RECEIVES} delivery attempts"


def mark_dead_letters(bodies) -> None:
    """Mark each message failed unless a bridge already settled it (idempotent)."""
    for body in bodies:
        message_id = json.loads(body)["messageId"]
        try:
            # Only a message no bridge reported on: a "sent" one reached the phone network.
            message = messages.advance(message_id, "failed", reason=REASON,
                                       only_from=("queued", "sending"))
        except NotFound:
            log.warning("dead letter for unknown message %s dropped", message_id)
            continue
        log.info("dead letter message=%s status=%s", message_id, message.status)
