"""One-time codes: sent by SMS or WhatsApp, stored as keyed hashes, verified once."""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import secrets
from datetime import timedelta

from pynamodb.exceptions import TransactWriteError, UpdateError

from . import aws, clock, idempotency, metrics, phone, quotas, ratelimit, whatsapp
from .config import settings
from .errors import BadRequest, ProviderError, ValidationError
from .messages import lifecycle, outbound
from .models import Message, Otp, is_expired
from .models import transaction as new_transaction
from .server_secret import server_secret
from .validation import Fields, choice
from .wire.status import Status

MAX_ATTEMPTS = 3
CHANNELS = ("sms", "whatsapp")
TEXTS = {
    "fr": "Votre code de vérification {brand} est {code}. Il expire dans {minutes} minutes. "
    "Ne le partagez avec personne.",
    "en": "Your {brand} verification code is {code}. It expires in {minutes} minutes. "
    "Do not share it with anyone.",
    "ar": "رمز التحقق الخاص بك لدى {brand} هو {code}. تنتهي صلاحيته خلال {minutes} دقائق. "
    "لا تشاركه مع أي شخص.",
}
_APP_HASH = re.compile(r"[A-Za-z0-9+/]{11}")
_CODE = re.compile(r"[0-9]{6}")
MASK = "******"
log = logging.getLogger("chinqit.otp")


class OtpRejected(BadRequest):
    """The code cannot be verified: wrong, expired, used, exhausted or never sent."""

    def __init__(self, message: str, **extra):
        super().__init__(message, extra={"verified": False, **extra})


def otp_key(key_id: str, phone_number: str, channel: str) -> str:
    return f"{key_id}#{phone_number}#{channel}"


def hash_code(otp_id: str, code: str) -> str:
    return hmac.new(server_secret(), f"{otp_id}:{code}".encode(), hashlib.sha256).hexdigest()


def render(language: str, code: str, app_hash: str | None) -> str:
    minutes = settings().otp_ttl_seconds // 60
    text = TEXTS[language].format(brand=settings().otp_brand, code=code, minutes=minutes)
    return f"{text}\n{app_hash}" if app_hash else text


def _parse_hash(value):
    if value is None:
        return None
    if not isinstance(value, str) or not _APP_HASH.fullmatch(value):
        raise ValidationError.field("hash", "must be the 11-character SMS Retriever app hash")
    return value


def _parse_code(value):
    if value is None or value == "":
        raise ValidationError.field("otp", "is required")
    if not isinstance(value, str) or not _CODE.fullmatch(value):
        raise ValidationError.field("otp", "must be a string of 6 digits")
    return value


def send(principal, body: dict, key: idempotency.Key = idempotency.NO_KEY) -> dict:
    """Store and send a new code; the answer of POST /otp/send."""
    fields = Fields(body)
    phone_number = fields.check("phoneNumber", phone.normalize)
    language = fields.check("language", choice("language", TEXTS, "fr"))
    channel = fields.check("channel", choice("channel", CHANNELS, "sms"))
    app_hash = fields.check("hash", _parse_hash)
    if fields.body.get("sendAt") is not None:
        fields.errors.append({"field": "sendAt", "message": "OTPs cannot be scheduled"})
    fields.done()
    if app_hash and channel != "sms":
        raise ValidationError.field("hash", "is only used with the sms channel")
    if channel == "whatsapp":
        whatsapp.require_configured()

    code = f"{secrets.randbelow(10**6):06d}"
    now = clock.now()
    expires_at = now + timedelta(seconds=settings().otp_ttl_seconds)
    # A provider channel sends right away: the message starts as "sending".
    message = outbound.new_outbound(
        principal.account_id,
        phone_number,
        render(language, code, app_hash),
        kind="otp",
        channel=channel,
        status=Status.QUEUED if channel == "sms" else Status.SENDING,
        stored_text=render(language, MASK, app_hash),
        send_before=expires_at,
    )
    otp_id = otp_key(principal.key_id, phone_number, channel)
    record = Otp(
        otp_id,
        code_hash=hash_code(otp_id, code),
        attempts_left=MAX_ATTEMPTS,
        used=False,
        message_id=message.message_id,
        created_at=now,
        expires_at=expires_at,
    )
    answer = {
        "success": True,
        "messageId": message.message_id,
        "expiresIn": settings().otp_ttl_seconds,
    }
    idempotency.once(
        key, lambda: _store(record, message, principal.account_id, phone_number, key, answer)
    )
    lifecycle.announce_created(message)
    try:
        if channel == "sms":
            outbound.dispatch(message, render(language, code, app_hash))
        else:
            _send_whatsapp(message, code, language)
    except Exception as error:
        if not aws.unreachable(error):
            key.forget()  # the OTP's message failed: a retry with this key sends a new code
        raise
    log.info(
        "otp sent message=%s to=%s channel=%s",
        message.message_id,
        phone.mask(phone_number),
        channel,
    )
    return answer


def _store(
    record: Otp,
    message: Message,
    account_id: str,
    phone_number: str,
    key: idempotency.Key,
    answer: dict,
) -> None:
    """Count the quotas, replace the OTP, save the message and record the request's key
    in one transaction."""

    def writes(transaction) -> None:
        transaction.save(record)
        lifecycle.create_in(transaction, message)
        key.add(transaction, answer)

    ratelimit.write_counted(quotas.otp(account_id, phone_number), writes)


def _send_whatsapp(message: Message, code: str, language: str) -> None:
    try:
        provider_id = whatsapp.send_otp(
            message.phone_number, code, language, reference=message.message_id
        )
    except ProviderError as exc:
        lifecycle.transition(
            message.message_id, Status.FAILED, reason=exc.message, only_from=(Status.SENDING,)
        )
        raise
    lifecycle.transition(
        message.message_id,
        Status.SENT,
        provider_message_id=provider_id,
        only_from=(Status.SENDING,),
    )


def verify(principal, body: dict) -> None:
    fields = Fields(body)
    phone_number = fields.check("phoneNumber", phone.normalize)
    code = fields.check("otp", _parse_code)
    channel = fields.check("channel", choice("channel", CHANNELS, "sms"))
    fields.done()
    otp_id = otp_key(principal.key_id, phone_number, channel)
    try:
        record = Otp.get(otp_id, consistent_read=True)
    except Otp.DoesNotExist:
        raise _rejected("none", "No OTP was sent to this phone number on this channel") from None
    if record.used:
        raise _rejected("used", "OTP has already been used")
    if is_expired(record.expires_at):
        raise _rejected("expired", "OTP has expired")
    if record.attempts_left <= 0:
        raise _rejected("locked", "Too many failed attempts: request a new OTP", retriesLeft=0)

    unchanged = (Otp.code_hash == record.code_hash) & (Otp.used == False) & (Otp.attempts_left > 0)  # noqa: E712
    if hmac.compare_digest(record.code_hash, hash_code(otp_id, code)):
        _use(record, unchanged)
        log.info("otp verified to=%s channel=%s", phone.mask(phone_number), channel)
        metrics.count("OtpVerifications", Outcome="verified")
        return
    try:
        record.update(actions=[Otp.attempts_left.add(-1)], condition=unchanged)
        retries_left = record.attempts_left
    except UpdateError:
        retries_left = 0  # a concurrent attempt used the last try or replaced the code
    log.info(
        "otp rejected to=%s channel=%s retries_left=%s",
        phone.mask(phone_number),
        channel,
        retries_left,
    )
    raise _rejected("wrong", "Invalid OTP", retriesLeft=retries_left)


def _rejected(outcome: str, message: str, **extra) -> OtpRejected:
    metrics.count("OtpVerifications", Outcome=outcome)
    return OtpRejected(message, **extra)


def _use(record: Otp, unchanged) -> None:
    """Mark the code used and its message verified (the console's conversion) in one write.

    A message its account deleted from the log does not stop the verification.
    """
    try:
        with new_transaction() as transaction:
            transaction.update(record, actions=[Otp.used.set(True)], condition=unchanged)
            transaction.update(
                Message(record.message_id),
                actions=[Message.verified_at.set(clock.now())],
                condition=Message.message_id.exists(),
            )
        return
    except TransactWriteError as exc:
        reasons = [reason and reason.code for reason in exc.cancellation_reasons or []]
        if reasons[:1] == ["ConditionalCheckFailed"]:
            raise OtpRejected("OTP has already been used") from exc
        if reasons[1:2] != ["ConditionalCheckFailed"]:
            raise
    try:
        record.update(actions=[Otp.used.set(True)], condition=unchanged)
    except UpdateError as exc:
        raise OtpRejected("OTP has already been used") from exc
