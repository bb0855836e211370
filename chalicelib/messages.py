"""Outbound SMS: validation, storage and queueing; reading a message back."""
from __future__ import annotations

import logging
import uuid
from datetime import timedelta

from pynamodb.exceptions import DeleteError, UpdateError

from . import clock, phone, queue, webhooks
from .config import settings
from .errors import BadRequest, NotFound, ValidationError
from .models import Message, is_expired
from .wire.sms_encoding import analyze
from .validation import Fields, required_text

log = logging.getLogger("chinqit.messages")

# Outbound statuses in the order they happen; reports can only move a message forward.
PROGRESS = ("queued", "sending", "sent", "delivered")


def check_length(text: str, field: str = "message") -> None:
    limit = settings().max_segments
    analysis = analyze(text)
    if analysis.segments > limit:
        raise ValidationError.field(
            field, f"is too long: {analysis.segments} SMS segments ({analysis.encoding}), "
                   f"at most {limit}")


def new_outbound(account_id: str, phone_number: str, text: str, *, kind: str = "sms",
                 channel: str = "sms", stored_text: str | None = None,
                 send_before=None) -> Message:
    """Build (not save) a queued outbound message; ``stored_text`` masks secrets."""
    now = clock.now()
    analysis = analyze(text)
    return Message(
        str(uuid.uuid4()), account_id=account_id, direction="outbound", kind=kind,
        channel=channel, phone_number=phone_number, outbound_phone=phone_number,
        text=stored_text or text,
        encoding=analysis.encoding, segments=analysis.segments, status="queued",
        created_at=now, updated_at=now, send_before=send_before,
        purge_at=now + timedelta(days=settings().message_retention_days),
    )


def _text(fields: Fields) -> str | None:
    text = fields.check("message", required_text("message"))
    if text is not None:
        fields.check("message", check_length)
    return text


def send_sms(account_id: str, body: dict) -> Message:
    fields = Fields(body)
    text = _text(fields)
    phone_number = fields.check("phoneNumber", phone.normalize)
    fields.done()
    message = new_outbound(account_id, phone_number, text)
    message.save(Message.message_id.does_not_exist())
    dispatch(message, text)
    return message


MAX_RECIPIENTS = 100


def send_many(account_id: str, text, numbers, field: str = "phoneNumbers") -> tuple[list, list]:
    """Queue one text to many numbers; invalid numbers are reported, not fatal.

    Returns the queued messages and the field errors of the numbers left out.
    """
    fields = Fields({"message": text})
    text = _text(fields)
    fields.done()
    if not isinstance(numbers, list) or not numbers:
        raise ValidationError.field(field, "must be a non-empty list of phone numbers")
    if len(numbers) > MAX_RECIPIENTS:
        raise ValidationError.field(field, f"at most {MAX_RECIPIENTS} numbers per request")
    accepted, errors = {}, []
    for index, raw in enumerate(numbers):
        name = f"{field}[{index}]"
        try:
            number = phone.normalize(raw, name)
        except ValidationError as exc:
            errors += exc.errors
            continue
        if number in accepted:
            errors.append({"field": name, "message": f"duplicate of {number}, sent once"})
            continue
        accepted[number] = new_outbound(account_id, number, text)
    if not accepted:
        raise ValidationError("No valid phone number to send to", errors=errors)
    batch = list(accepted.values())
    with Message.batch_write() as writer:
        for message in batch:
            writer.save(message)
    for message in queue.enqueue_many(batch, text):
        mark(message, "failed", reason="could not be queued")
        errors.append({"field": field, "message": f"{message.phone_number}: could not be queued"})
    return batch, errors


def dispatch(message: Message, text: str) -> None:
    """Queue a stored message; if the queue refuses it, record the failure and re-raise."""
    try:
        queue.enqueue_sms(message, text)
    except Exception:
        log.exception("could not queue message %s", message.message_id)
        mark(message, "failed", reason="could not be queued")
        raise


def mark(message: Message, status: str, reason: str | None = None, **timestamps) -> None:
    actions = [Message.status.set(status), Message.updated_at.set(clock.now())]
    if reason is not None:
        actions.append(Message.status_reason.set(reason))
    actions += [getattr(Message, name).set(value) for name, value in timestamps.items()]
    message.update(actions=actions)


def _advancing_from(status: str) -> list[str]:
    """The stored statuses from which ``status`` is a step forward."""
    if status == "failed":  # also after "sent": a delivery report can say it never arrived
        return ["queued", "sending", "sent"]
    if status == "expired":
        return ["queued", "sending"]
    return list(PROGRESS[:PROGRESS.index(status)])


def advance(message_id: str, status: str, reason: str | None = None, at=None,
            device_id: str | None = None, only_from: tuple | None = None) -> Message:
    """Move an outbound message forward; a stale or repeated report changes nothing.

    One conditional UpdateItem, so reports racing from several bridges (or SQS
    redeliveries) can never move a message backwards. ``only_from`` narrows the statuses
    the change may start from.
    """
    require_message_id(message_id)
    at = at or clock.now()
    message = Message(message_id)
    actions = [Message.status.set(status), Message.updated_at.set(clock.now())]
    if device_id is not None:
        actions.append(Message.device_id.set(device_id))
    if reason is not None:
        actions.append(Message.status_reason.set(reason))
    if status in ("sent", "delivered"):
        actions.append(getattr(Message, f"{status}_at").set(at))
    starts = [s for s in _advancing_from(status) if only_from is None or s in only_from]
    condition = (Message.direction == "outbound") & Message.status.is_in(*starts)
    try:
        message.update(actions=actions, condition=condition)
    except UpdateError:
        try:
            message = Message.get(message_id)
        except Message.DoesNotExist:
            raise NotFound("Message not found") from None
        if message.direction != "outbound":
            raise NotFound("Message not found") from None
    else:  # the status did change (UpdateItem returned the whole item): tell the webhook
        webhooks.notify_status(message, at)
    return message


def require_message_id(message_id: str) -> None:
    """Message ids are UUIDs: anything else is unknown, and never reaches DynamoDB."""
    try:
        valid = str(uuid.UUID(message_id)) == message_id
    except ValueError:
        valid = False
    if not valid:
        raise NotFound("Message not found")


def get_for_account(account_id: str, message_id: str) -> Message:
    """The account's own message; another account's message is indistinguishable from none.

    TTL deletion is lazy, so a message past its retention is treated as gone, and an OTP
    still queued after its code expired is settled as expired on the way.
    """
    require_message_id(message_id)
    try:
        message = Message.get(message_id, consistent_read=True)
    except Message.DoesNotExist:
        message = None
    if message is None or message.account_id != account_id or is_expired(message.purge_at):
        raise NotFound("Message not found")
    if message.status == "queued" and is_expired(message.send_before):
        message = advance(message_id, "expired", reason="not sent before the code expired",
                          only_from=("queued",))
    return message


RESENDABLE = ("failed", "expired")


def resend(account_id: str, message_id: str) -> Message:
    """Queue a failed or expired outbound SMS again, under the same messageId."""
    message = get_for_account(account_id, message_id)
    if message.direction != "outbound":
        raise BadRequest("Only outbound messages can be resent")
    if message.kind == "otp":
        raise BadRequest("OTP messages cannot be resent: the code is not kept; send a new OTP")
    if message.status not in RESENDABLE:
        raise BadRequest(f"Only failed or expired messages can be resent; this one is {message.status}")
    try:
        message.update(
            actions=[Message.status.set("queued"), Message.status_reason.remove(),
                     Message.updated_at.set(clock.now())],
            condition=Message.status.is_in(*RESENDABLE) & (Message.account_id == account_id))
    except UpdateError as exc:
        raise BadRequest("The message changed while resending it; read it again") from exc
    dispatch(message, message.text)
    return message


def delete(account_id: str, message_id: str) -> None:
    """Remove a message from the server log (the phone keeps its own copy)."""
    require_message_id(message_id)
    try:
        Message(message_id).delete(condition=Message.account_id == account_id)
    except DeleteError as exc:
        raise NotFound("Message not found") from exc


def mark_read(account_id: str, message_id: str, read: bool = True) -> Message:
    message = get_for_account(account_id, message_id)
    if message.direction != "inbound":
        raise BadRequest("Only received messages can be marked as read")
    message.update(actions=[Message.read.set(read), Message.updated_at.set(clock.now())])
    return message


def to_json(message: Message) -> dict:
    def iso(value):
        return value.isoformat().replace("+00:00", "Z") if value else None

    return {
        "messageId": message.message_id,
        "direction": message.direction,
        "kind": message.kind,
        "channel": message.channel,
        "phoneNumber": message.phone_number,
        "message": message.text,
        "status": message.status,
        "statusReason": message.status_reason,
        "encoding": message.encoding,
        "segments": message.segments,
        "deviceId": message.device_id,
        "createdAt": iso(message.created_at),
        "updatedAt": iso(message.updated_at),
        "sentAt": iso(message.sent_at),
        "deliveredAt": iso(message.delivered_at),
        **({"read": bool(message.read)} if message.direction == "inbound" else {}),
    }
