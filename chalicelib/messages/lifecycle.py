"""The message lifecycle: which status may follow which, and the one place a message changes.

    queued ──> sending ──> sent ──> delivered ──> read   (read: WhatsApp only)
      │  └────────┴────────┴──> failed     (after "sent": a delivery report said it never arrived)
      └──> expired <── sending
    failed, expired ──> queued             (resend)
    sending, sent ──> queued               (a WhatsApp message falling back to SMS)
    received                               (inbound: stored once, never changes)

A message is created in a status the table allows to start from (``None`` below), and
every later change is one conditional UpdateItem whose condition is the table: reports
racing from several bridges, or SQS redeliveries, can never move a message backwards.
Each write that succeeds publishes exactly one event (chalicelib.messages.events).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from pynamodb.exceptions import DeleteError, PutError, TransactWriteError, UpdateError
from pynamodb.transactions import TransactWrite

from .. import clock, ratelimit
from ..errors import NotFound
from ..models import Message, waiting_shard
from ..wire.status import Status
from .events import Change, MessageEvent, publish

# status -> the statuses it may follow; None means a message may be created in it
# A scheduled SMS goes on its queue (with an SQS delay) while it is still scheduled: a
# bridge that gets it, at its time, moves it on as it would a queued one.
TRANSITIONS: dict[Status, frozenset[Status | None]] = {
    Status.SCHEDULED: frozenset({None}),
    Status.CANCELLED: frozenset({Status.SCHEDULED}),
    Status.QUEUED: frozenset({None, Status.FAILED, Status.EXPIRED}),
    Status.SENDING: frozenset({None, Status.QUEUED, Status.SCHEDULED}),  # None: a provider
    Status.SENT: frozenset({Status.QUEUED, Status.SCHEDULED, Status.SENDING}),
    Status.DELIVERED: frozenset({Status.QUEUED, Status.SCHEDULED, Status.SENDING, Status.SENT}),
    Status.READ: frozenset({Status.SENDING, Status.SENT, Status.DELIVERED}),
    Status.FAILED: frozenset({Status.QUEUED, Status.SCHEDULED, Status.SENDING, Status.SENT}),
    Status.EXPIRED: frozenset({Status.QUEUED, Status.SCHEDULED, Status.SENDING}),
    Status.RECEIVED: frozenset({None}),
}
# Statuses that mean a phone gave the SMS to the network
HANDED_TO_NETWORK = (Status.SENT, Status.DELIVERED, Status.READ)
# The moment a status is reached is kept for these
REACHED_AT = {Status.SENT: Message.sent_at, Status.DELIVERED: Message.delivered_at}


def allowed(source: Status | None, target: Status) -> bool:
    """May a message in ``source`` (None: not stored yet) move to ``target``?"""
    return source in TRANSITIONS[target]


@dataclass(frozen=True)
class Outcome:
    message: Message  # as stored now
    changed: bool  # False: the table refused the change; nothing was written or published


class TransitionNotAllowed(ValueError):
    """A programming error: the code asked for a change the table never allows."""


def require_message_id(message_id: str) -> None:
    """Message ids are UUIDs: anything else is unknown, and never reaches DynamoDB."""
    try:
        valid = str(uuid.UUID(message_id)) == message_id
    except (ValueError, TypeError, AttributeError):  # not a string at all
        valid = False
    if not valid:
        raise NotFound("Message not found")


# --- creation -------------------------------------------------------------------------------


def _check_initial(message: Message) -> None:
    if not allowed(None, Status(message.status)):
        raise TransitionNotAllowed(f"a message cannot be created {message.status}")
    if message.status == Status.QUEUED:  # the outbox sweep watches it until it moves on
        message.waiting_shard = waiting_shard(message.message_id)
        message.waiting_since = message.created_at
    elif message.status == Status.SCHEDULED:  # and picks this one up near its time
        message.waiting_shard = waiting_shard(message.message_id, "scheduled")
        message.waiting_since = message.send_at


def create(
    message: Message,
    counted: Sequence[ratelimit.Quota] = (),
    also: Callable[[TransactWrite], None] | None = None,
) -> bool:
    """Store a new message; False (nothing written) when its id is stored already.

    ``counted``: quotas the creation counts against, in the same write (429 when full);
    ``also`` adds more writes to it (an idempotency record).
    """
    _check_initial(message)
    new = Message.message_id.does_not_exist()

    def writes(transaction: TransactWrite) -> None:
        transaction.save(message, condition=new)
        if also is not None:
            also(transaction)

    try:
        if counted or also:
            ratelimit.write_counted(list(counted), writes)
        else:
            message.save(new)
    except PutError as exc:
        if exc.cause_response_code == "ConditionalCheckFailedException":
            return False
        raise
    except TransactWriteError as exc:  # the put comes first in the transaction
        reasons = exc.cancellation_reasons or []
        if reasons and reasons[0] is not None and reasons[0].code == "ConditionalCheckFailed":
            return False
        raise
    announce_created(message)
    return True


def create_in(transaction, message: Message) -> None:
    """Add a new message to a DynamoDB transaction; call announce_created once it committed."""
    _check_initial(message)
    transaction.save(message, condition=Message.message_id.does_not_exist())


def create_many(batch: list[Message]) -> None:
    """Store new messages (fresh random ids) with batched writes, then announce each."""
    for message in batch:
        _check_initial(message)
    with Message.batch_write() as writer:
        for message in batch:
            writer.save(message)
    for message in batch:
        announce_created(message)


def announce_created(message: Message) -> None:
    """Publish a stored message's creation. Also for a repost of a message already stored:
    its first announcement may have been lost, and subscribers are idempotent per message."""
    publish(MessageEvent(Change.CREATED, message, message.created_at))


# --- status changes -------------------------------------------------------------------------


def transition(
    message_id: str,
    target: Status,
    *,
    reason: str | None = None,
    at: datetime | None = None,
    only_from: Iterable[Status] | None = None,
    account_id: str | None = None,
    device_id: str | None = None,
    device_received: bool = False,
    sim_slot: int | None = None,
    provider_message_id: str | None = None,
    channel: str | None = None,
) -> Outcome:
    """Move an outbound message to ``target`` if the table allows it from where it stands.

    ``reason`` replaces the status reason (none: removed); ``at`` is when it happened;
    ``only_from`` narrows the statuses it may start from; ``account_id`` requires the
    message to be that account's. ``device_id``: the device reporting; the message must be
    bound to it already, or be bound to none when ``device_received`` (it proved receipt),
    and is bound to it from now on; ``sim_slot``: the device's line it left from;
    ``provider_message_id``: the provider (WhatsApp) that took it, and ``channel`` the one
    it must still be on. A refused change returns the stored message unchanged.
    """
    require_message_id(message_id)
    sources = [
        s
        for s in TRANSITIONS[target]
        if s is not None and (only_from is None or s in set(only_from))
    ]
    if not sources:
        raise TransitionNotAllowed(f"{target} cannot follow {list(only_from or [])}")
    at = at or clock.now()
    condition = (Message.direction == "outbound") & Message.status.is_in(*sources)
    if account_id is not None:
        condition &= Message.account_id == account_id
    if channel is not None:
        condition &= Message.channel == channel
    if device_id is not None:
        bound_here = Message.device_id == device_id
        condition &= (
            (Message.device_id.does_not_exist() | bound_here) if device_received else bound_here
        )
    actions = _actions(message_id, target, reason, at, device_id, sim_slot, provider_message_id)
    return _update(message_id, actions, condition, at)


def _update(message_id: str, actions: list, condition, at: datetime) -> Outcome:
    """One conditional write of a status change, and its event when the table took it."""
    message = Message(message_id)
    try:
        message.update(actions=actions, condition=condition)
    except UpdateError as exc:
        if exc.cause_response_code != "ConditionalCheckFailedException":
            raise
        return Outcome(_stored_outbound(message_id), changed=False)
    publish(MessageEvent(Change.STATUS, message, at))
    return Outcome(message, changed=True)


def _actions(
    message_id: str, target: Status, reason, at, device_id, sim_slot, provider_message_id
) -> list:
    actions = [
        Message.status.set(target),
        Message.updated_at.set(clock.now()),
        Message.status_reason.set(reason) if reason is not None else Message.status_reason.remove(),
    ]
    if target in REACHED_AT:
        actions.append(REACHED_AT[target].set(at))
    if device_id is not None:
        actions.append(Message.device_id.set(device_id))
    if target == Status.QUEUED:
        actions.append(Message.waiting_shard.set(waiting_shard(message_id)))
        actions.append(Message.waiting_since.set(clock.now()))
    else:
        actions += [Message.waiting_shard.remove(), Message.waiting_since.remove()]
    handed_over = device_id is not None or provider_message_id is not None
    if handed_over and target in HANDED_TO_NETWORK:
        # The claim on the recipient's replies (devices.owner_of_inbound, and without a
        # device whatsapp.webhook's); a delivery report without a "sent" before it dates
        # the sending too.
        actions.append(Message.sent_to.set(Message.phone_number))
        if sim_slot is not None:
            actions.append(Message.sent_slot.set(sim_slot))
        if target != Status.SENT:
            actions.append(Message.sent_at.set(Message.sent_at | at))
        if target == Status.READ:  # read without a delivery report: delivered then
            actions.append(Message.delivered_at.set(Message.delivered_at | at))
    elif target == Status.QUEUED:  # a resend: any device of the pool may take it again
        actions.append(Message.device_id.remove())
    if provider_message_id is not None:
        actions.append(Message.provider_message_id.set(provider_message_id))
    return actions


def fall_back_to_sms(message_id: str, reason: str) -> Outcome:
    """A WhatsApp message sent with ``fallback: "sms"`` that WhatsApp could not take (or
    reported failed) becomes a queued SMS under the same id; the caller queues it. Once:
    the condition is that it is still on WhatsApp."""
    condition = (
        (Message.channel == "whatsapp")
        & (Message.fallback == "sms")
        & Message.status.is_in(Status.SENDING, Status.SENT)
    )
    now = clock.now()
    actions = [
        Message.channel.set("sms"),
        Message.status.set(Status.QUEUED),
        Message.status_reason.remove(),
        Message.fallback_reason.set(reason),
        Message.updated_at.set(now),
        Message.waiting_shard.set(waiting_shard(message_id)),
        Message.waiting_since.set(now),
        Message.provider_message_id.remove(),
        Message.sent_to.remove(),
        Message.sent_at.remove(),
    ]
    return _update(message_id, actions, condition, now)


def _stored_outbound(message_id: str) -> Message:
    try:
        message = Message.get(message_id)
    except Message.DoesNotExist:
        raise NotFound("Message not found") from None
    if message.direction != "outbound":
        raise NotFound("Message not found")
    return message


# --- deletion -------------------------------------------------------------------------------


def delete(account_id: str, message_id: str) -> None:
    """Remove an account's message from the server log (a phone keeps its own copy)."""
    require_message_id(message_id)
    try:
        Message(message_id).delete(condition=Message.account_id == account_id)
    except DeleteError as exc:
        raise NotFound("Message not found") from exc
    publish(MessageEvent(Change.DELETED, Message(message_id, account_id=account_id), clock.now()))
