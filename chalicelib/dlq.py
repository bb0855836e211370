"""Outbound SMS that SQS moved to a dead-letter queue after MAX_RECEIVES deliveries.

A message no bridge ever claimed (still ``queued``) was never handed to a phone: bridges
were stopped, killed or handing it back while it was received again and again. It goes
back on a queue, at most MAX_DEAD_LETTERS times (an OTP with the text its dead letter
carries, since codes are not stored), or ``expired`` once past its ``send_before``. Only
a message a bridge claimed (``sending``) and never reported on, or one dead-lettered too
often, ends ``failed``.

Records are handled one by one: a malformed or unknown one is logged and dropped. One that
could not be handled now (AWS trouble) raises, and the partial batch response
(chalicelib/batches.py) brings back that record alone; every step is idempotent
(conditional writes, bounded copies).
"""

from __future__ import annotations

import json
import logging

from . import clock, outbox
from .errors import NotFound
from .messages import lifecycle
from .models import Message
from .queue import MAX_RECEIVES, PRIORITY_KINDS
from .wire import protocol
from .wire.status import Status

log = logging.getLogger("chinqit.dlq")
MAX_DEAD_LETTERS = 3
REASON = f"not sent: moved to the dead-letter queue after {MAX_RECEIVES} delivery attempts"


def settle(body: str) -> None:
    """One dead letter: queued again, expired, failed or dropped; raises if not now."""
    try:
        message_id = json.loads(body)["messageId"]
        lifecycle.require_message_id(message_id)  # a UUID, or NotFound (never to DynamoDB)
        message = Message.get(message_id, consistent_read=True)
    except (ValueError, KeyError, TypeError):
        log.error("dead letter that is not an outbound SMS dropped: %.100s", body)
        return
    except (NotFound, Message.DoesNotExist):
        log.warning("dead letter for unknown message %s dropped", message_id)
        return
    if message.direction != "outbound":
        return
    if message.status == Status.QUEUED and _again(message, body):
        return
    # Only a message no bridge reported on: a "sent" one reached the phone network.
    outcome = lifecycle.transition(
        message_id, Status.FAILED, reason=REASON, only_from=(Status.QUEUED, Status.SENDING)
    )
    log.info("dead letter message=%s status=%s", message_id, outcome.message.status)


def _again(message: Message, body: str) -> bool:
    """Give a never-tried message another chance; False when it has had its chances."""
    if outbox.expire_if_late(message, clock.now()):
        return True
    text = _text_of(body) if message.kind in PRIORITY_KINDS else message.text
    if text is None or int(message.dead_letters or 0) >= MAX_DEAD_LETTERS:
        return False
    if outbox.queue_again(message, text, Message.dead_letters):
        log.info("dead letter message=%s never tried: queued again", message.message_id)
    return True  # queued again, or it moved on meanwhile


def _text_of(body: str) -> str | None:
    try:
        return protocol.OutboundSms.from_json(body).text
    except protocol.WireError:
        return None
