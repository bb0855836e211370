"""Outbound SMS: validate a send, store it, queue it for the device bridges; resend."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta

from .. import aws, clock, idempotency, optout, phone, queue, quotas, ratelimit, routing
from ..config import settings
from ..errors import BadRequest, ValidationError
from ..models import Message
from ..validation import Fields, choice, required_text
from ..wire.sms_encoding import analyze
from ..wire.status import Status
from . import lifecycle, schedule, store
from .views import iso

log = logging.getLogger("chinqit.messages")

MAX_RECIPIENTS = 100
RESENDABLE = (Status.FAILED, Status.EXPIRED)
NOT_QUEUED = "could not be queued"


def check_length(text: str, field: str = "message") -> None:
    limit = settings().max_segments
    analysis = analyze(text)
    if analysis.segments > limit:
        raise ValidationError.field(
            field,
            f"is too long: {analysis.segments} SMS segments ({analysis.encoding}), at most {limit}",
        )


def new_outbound(
    account_id: str,
    phone_number: str,
    text: str,
    *,
    kind: str = "sms",
    channel: str = "sms",
    status: Status = Status.QUEUED,
    stored_text: str | None = None,
    send_before: datetime | None = None,
    route: routing.Route = routing.ANYWHERE,
    send_at: datetime | None = None,
) -> Message:
    """Build (not save) an outbound message; ``stored_text`` masks secrets; ``send_at``
    schedules it (chalicelib/messages/schedule.py)."""
    now = clock.now()
    analysis = analyze(text)
    if send_at is not None:
        status = Status.SCHEDULED
    return Message(
        str(uuid.uuid4()),
        account_id=account_id,
        direction="outbound",
        kind=kind,
        channel=channel,
        phone_number=phone_number,
        text=stored_text or text,
        encoding=analysis.encoding,
        segments=analysis.segments,
        status=status,
        created_at=now,
        updated_at=now,
        send_before=send_before,
        send_at=send_at,
        # queued with its delay right after it is stored (else the outbox sweep does it)
        requeued_at=now if schedule.near(send_at, now) else None,
        route_device=route.device_id,
        sim_slot=route.sim_slot,
        purge_at=now + timedelta(days=settings().message_retention_days),
    )


def _text(fields: Fields) -> str | None:
    text = fields.check("message", required_text("message"))
    if text is not None:
        fields.check("message", check_length)
    return text


CHANNELS = ("sms", "whatsapp")
WHATSAPP_FIELDS = ("template", "mediaUrl", "fallback")


def send_sms(account_id: str, body: dict, key: idempotency.Key = idempotency.NO_KEY) -> dict:
    """Store and queue one SMS, or send a WhatsApp message (``channel``); the answer of
    POST /messages/send."""
    fields = Fields(body)
    if fields.check("channel", choice("channel", CHANNELS, "sms")) == "whatsapp":
        from ..whatsapp import messages

        return messages.send(account_id, body, key)
    for name in WHATSAPP_FIELDS:
        if body.get(name) is not None:
            fields.errors.append({"field": name, "message": 'only with channel "whatsapp"'})
    text = _text(fields)
    phone_number = fields.check("phoneNumber", phone.normalize)
    device_id, sim_slot = fields.body.get("deviceId"), fields.body.get("simSlot")
    send_at = fields.check("sendAt", schedule.send_at())
    fields.done()
    assert text is not None  # fields.done() raised otherwise
    optout.check(account_id, phone_number)
    route = routing.requested(account_id, device_id, sim_slot)
    message = new_outbound(account_id, phone_number, text, route=route, send_at=send_at)
    answer = {"success": True, "messageId": message.message_id, "queued": send_at is None}
    if send_at is not None:
        answer |= {"status": Status.SCHEDULED.value, "sendAt": iso(send_at)}
    idempotency.once(
        key,
        lambda: lifecycle.create(
            message, counted=quotas.sms(account_id), also=lambda t: key.add(t, answer)
        ),
    )
    if send_at is not None:
        queue_scheduled([message], text)
        return answer
    try:
        dispatch(message, text)
    except Exception as error:
        if not aws.unreachable(error):
            key.forget()  # the message is failed: a retry with this key sends anew
        raise
    return answer


def queue_scheduled(batch: list[Message], text: str) -> None:
    """Scheduled SMS near their time go on their queues now, delayed until then. One that
    SQS refuses stays scheduled, not failed (it was not due): the outbox sweep queues it
    from 2 minutes after its time."""
    near = [message for message in batch if message.requeued_at is not None]
    if near and queue.enqueue_many(near, text, [routing.queue_name(m) for m in near]):
        log.warning("scheduled SMS left for the outbox sweep: SQS refused them")


def send_confirmation(account_id: str, phone_number: str, text: str) -> Message:
    """The SMS that confirms an opt-out or opt-in (chalicelib.optout): it goes to an
    opted-out number too, counted against the account's SMS quotas."""
    message = new_outbound(account_id, phone_number, text)
    lifecycle.create(message, counted=quotas.sms(account_id))
    dispatch(message, text)
    return message


Answer = Callable[[list[Message], list[dict]], dict]


def send_many(
    account_id: str,
    text,
    numbers,
    answer_of: Answer,
    field: str = "phoneNumbers",
    route: routing.Route = routing.ANYWHERE,
    key: idempotency.Key = idempotency.NO_KEY,
    send_at: datetime | None = None,
) -> dict:
    """Queue (or schedule, with ``send_at``) one text to many numbers; invalid numbers are
    reported, not fatal.

    ``answer_of(queued, errors)`` makes the answer from the messages queued and the errors
    of the numbers left out (or refused by the queue, then marked failed).
    """
    fields = Fields({"message": text})
    text = _text(fields)
    fields.done()
    if not isinstance(numbers, list) or not numbers:
        raise ValidationError.field(field, "must be a non-empty list of phone numbers")
    if len(numbers) > MAX_RECIPIENTS:
        raise ValidationError.field(field, f"at most {MAX_RECIPIENTS} numbers per request")
    accepted: dict[str, Message] = {}
    errors: list[dict] = []
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
        if optout.is_suppressed(account_id, number):
            errors.append(optout.refusal(number, name))
            continue
        accepted[number] = new_outbound(account_id, number, text, route=route, send_at=send_at)
    if not accepted:
        raise ValidationError("No valid phone number to send to", errors=errors)
    batch = list(accepted.values())
    answer = answer_of(batch, errors)
    # Counted (and the key recorded) before anything is stored: over quota, nothing is.
    counted = quotas.bulk(account_id, len(batch)) if len(batch) > 1 else quotas.sms(account_id)
    idempotency.once(key, lambda: ratelimit.write_counted(counted, lambda t: key.add(t, answer)))
    lifecycle.create_many(batch)
    if send_at is not None:
        queue_scheduled(batch, text)
        return answer
    names = [routing.queue_name(message) for message in batch]
    refused = queue.enqueue_many(batch, text, names)
    if not refused:
        return answer
    for message in refused:
        _not_queued(message)
        errors.append({"field": field, "message": f"{message.phone_number}: {NOT_QUEUED}"})
    refused_ids = {message.message_id for message in refused}
    answer = answer_of([m for m in batch if m.message_id not in refused_ids], errors)
    key.settle(answer)
    return answer


def dispatch(message: Message, text: str) -> None:
    """Queue a stored message; if the queue refuses it, record the failure and re-raise.

    If SQS did not answer at all, AWS is in trouble and marking the message would wait as
    long again: it stays ``queued`` and the outbox sweep queues it (the answer is a 500
    within the time budget; a retry with its Idempotency-Key gets the first answer)."""
    try:
        queue.enqueue_sms(message, text, routing.queue_name(message))
    except Exception as error:
        log.exception("could not queue message %s", message.message_id)
        if not aws.unreachable(error):
            _not_queued(message)
        raise


def _not_queued(message: Message) -> None:
    outcome = lifecycle.transition(
        message.message_id, Status.FAILED, reason=NOT_QUEUED, only_from=(Status.QUEUED,)
    )
    message.status, message.status_reason = outcome.message.status, outcome.message.status_reason


def resend(account_id: str, message_id: str) -> Message:
    """Queue a failed or expired outbound SMS again, under the same messageId."""
    message = store.get_for_account(account_id, message_id)
    if message.direction != "outbound":
        raise BadRequest("Only outbound messages can be resent")
    if message.kind == "otp":
        raise BadRequest("OTP messages cannot be resent: the code is not kept; send a new OTP")
    if message.status not in RESENDABLE:
        raise BadRequest(
            f"Only failed or expired messages can be resent; this one is {message.status}"
        )
    optout.check(account_id, message.phone_number)
    ratelimit.take(quotas.sms(account_id))
    outcome = lifecycle.transition(
        message_id, Status.QUEUED, only_from=RESENDABLE, account_id=account_id
    )
    if not outcome.changed:
        raise BadRequest("The message changed while resending it; read it again")
    dispatch(outcome.message, outcome.message.text)
    return outcome.message
