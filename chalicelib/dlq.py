"""Outbound SMS that no bridge could send: SQS moved them to a dead-letter queue."""

from __future__ import annotations

import json
import logging

from .errors import NotFound
from .messages import lifecycle
from .queue import MAX_RECEIVES
from .wire.status import Status

log = logging.getLogger("chinqit.dlq")
REASON = f"not sent: moved to the dead-letter queue after {MAX_RECEIVES} delivery attempts"


def mark_dead_letters(bodies) -> None:
    """Mark each message failed unless a bridge already settled it (idempotent)."""
    for body in bodies:
        try:
            message_id = json.loads(body)["messageId"]
        except (ValueError, KeyError, TypeError):
            log.error("dead letter that is not an outbound SMS dropped: %.100s", body)
            continue
        try:
            # Only a message no bridge reported on: a "sent" one reached the phone network.
            message = lifecycle.transition(
                message_id, Status.FAILED, reason=REASON, only_from=(Status.QUEUED, Status.SENDING)
            ).message
        except NotFound:
            log.warning("dead letter for unknown message %s dropped", message_id)
            continue
        log.info("dead letter message=%s status=%s", message_id, message.status)
