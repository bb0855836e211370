"""One message of an account: read it back, mark it read."""

from __future__ import annotations

from .. import clock
from ..errors import BadRequest, NotFound
from ..models import Message, is_expired
from ..wire.status import Status
from . import lifecycle


def get_for_account(account_id: str, message_id: str) -> Message:
    """The account's own message; another account's message is indistinguishable from none.

    TTL deletion is lazy, so a message past its retention is treated as gone, and an OTP
    still queued after its code expired is settled as expired on the way.
    """
    lifecycle.require_message_id(message_id)
    try:
        message = Message.get(message_id, consistent_read=True)
    except Message.DoesNotExist:
        message = None
    if message is None or message.account_id != account_id or is_expired(message.purge_at):
        raise NotFound("Message not found")
    if message.status == Status.QUEUED and is_expired(message.send_before):
        message = lifecycle.transition(
            message_id,
            Status.EXPIRED,
            reason="not sent before the code expired",
            only_from=(Status.QUEUED,),
        ).message
    return message


def mark_read(account_id: str, message_id: str, read: bool = True) -> Message:
    message = get_for_account(account_id, message_id)
    if message.direction != "inbound":
        raise BadRequest("Only received messages can be marked as read")
    message.update(actions=[Message.read.set(read), Message.updated_at.set(clock.now())])
    return message
