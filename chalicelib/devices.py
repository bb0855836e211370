"""The device side of the API: what a device bridge reports back."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, TypeVar

from . import clock, optout, phone, queue, ratelimit, receipts, routing
from .accounts import UNASSIGNED
from .config import settings
from .errors import NotFound, ValidationError
from .messages import lifecycle
from .messages.views import iso
from .models import Device, LineAttribute, Message
from .wire import protocol
from .wire.sms_encoding import analyze
from .wire.status import Status

log = logging.getLogger("chinqit.devices")

INBOUND_NAMESPACE = uuid.UUID("6f1b7c1e-33c8-4d4e-9a53-6c1f1f0c2a10")
# What one phone line can really receive; beyond it a device key is being abused.
INBOUND_LIMITS = ratelimit.limits(minute=60, day=5_000)
# The latest SMS sent to a number (by any device) read to find whose reply an SMS is:
# one query page, however busy the number. Claims older than these are not honoured.
REPLY_CLAIMS_READ = 50
T = TypeVar("T")


def _parsed(parse: Callable[[Any], T], body: dict) -> T:
    """A device payload checked by the wire protocol; its field errors become a 400."""
    try:
        return parse(body)
    except protocol.PayloadError as error:
        raise ValidationError(str(error), errors=error.errors) from None


def heartbeat(device_id: str, body: dict) -> None:
    beat = _parsed(protocol.parse_heartbeat, body)
    info = {
        "signalPercent": beat.signal_percent,
        "batteryPercent": beat.battery_percent,
        "version": beat.version,
    }
    actions: list = [
        Device.last_seen_at.set(clock.now()),
        Device.driver.set(beat.driver) if beat.driver else Device.driver.remove(),
        Device.info.set({k: v for k, v in info.items() if v is not None}),
        Device.polls_own_queue.set(beat.own_queue),
    ]
    if beat.lines is not None:
        actions.append(Device.lines.set(_lines(beat.lines)))
    Device(device_id).update(actions=actions)


def queues_to_poll(device_id: str) -> dict[str, str]:
    """The URLs of the queues the device takes SMS from now (its pool's and its own): a
    bridge that gets its credentials from the API follows a change of pool without a
    restart. Cached per Lambda container: no AWS call on most heartbeats. A queue that was
    never provisioned is left out (and logged): the heartbeat still counts."""
    urls = {}
    for kind, name in routing.queues_of_device(device_id).items():
        try:
            urls[kind] = queue.queue_url(name)
        except queue.sqs().exceptions.QueueDoesNotExist:
            log.warning("device %s: queue %s does not exist (run provision)", device_id, name)
    return urls


def _lines(reported: tuple[protocol.Line, ...]) -> list[LineAttribute]:
    """Reported lines with their numbers normalised and their operators known."""
    lines = []
    for index, line in enumerate(sorted(reported, key=lambda line: line.slot)):
        number = phone.normalize(line.number, f"lines[{index}].number")
        lines.append(
            LineAttribute(
                slot=line.slot,
                number=number,
                operator=line.operator or phone.operator_of(number),
                operator_reported=line.operator is not None,
                signal_percent=line.signal_percent,
                state=line.state,
                state_reason=line.state_reason,
                resumes_at=line.resumes_at,
            )
        )
    return lines


def to_json(device: Device) -> dict:
    info = device.info.as_dict() if device.info is not None else {}
    return {
        "deviceId": device.device_id,
        "name": device.name,
        "online": routing.is_online(device),
        "lastSeenAt": iso(device.last_seen_at),
        "driver": device.driver,
        "signalPercent": info.get("signalPercent"),
        "batteryPercent": info.get("batteryPercent"),
        "bridgeVersion": info.get("version"),
        "lines": [
            {
                "slot": int(line.slot),
                "number": line.number,
                "operator": line.operator,
                "signalPercent": _whole(line.signal_percent),
                "state": line.state,
                "stateReason": line.state_reason,
                "resumesAt": iso(line.resumes_at),
            }
            for line in device.lines or []
        ],
    }


def _whole(number) -> int | None:
    return None if number is None else int(number)


def of_account(account_id: str) -> list[dict]:
    """The devices dedicated to an account (shared-pool devices belong to no account)."""
    devices = sorted(Device.by_account.query(account_id), key=lambda d: d.device_id)
    return [to_json(device) for device in devices]


def report_status(device_id: str, message_id: str, body: dict) -> dict:
    """Move an outbound message forward; stale or repeated reports change nothing.

    ``sending`` is a claim: it succeeds from ``queued`` only, so of two bridges that got
    the same message (an SQS redelivery) only one sends. ``claimed`` tells the caller
    whether it holds the claim (a repeat by the same device still does). A device that
    neither presents the queue body's claim token nor already holds the message gets 404,
    as for a message that does not exist. One that does present it for a message no longer
    stored (its owner deleted it, a scheduled SMS before its time) learns it is ``deleted``.
    """
    report = _parsed(protocol.parse_status_report, body)
    lifecycle.require_message_id(message_id)
    status = Status(report.status)
    received = receipts.received(
        report.claim, message_id, routing.queues_of_device(device_id).values()
    )
    try:
        message = lifecycle.transition(
            message_id,
            status,
            reason=report.reason,
            at=report_time(report.at),
            device_id=device_id,
            device_received=received,
            sim_slot=report.sim_slot,
        ).message
    except NotFound:
        if not received:
            raise
        # A settled status: every bridge, older ones too, skips the copy and deletes it
        # from its queue, instead of handing it on until it dead-letters.
        return _answer(message_id, "deleted", status, claimed=False)
    if not received and message.device_id != device_id:
        raise NotFound("Message not found")
    held = message.status == Status.SENDING and message.device_id == device_id
    return _answer(message_id, message.status, status, claimed=held)


def _answer(message_id: str, stored: str, reported: Status, claimed: bool) -> dict:
    answer: dict[str, object] = {"messageId": message_id, "status": stored}
    if reported == Status.SENDING:
        answer["claimed"] = claimed
    return answer


def report_time(at: datetime | None) -> datetime:
    """When a report says it happened, never later than the server's now: a device clock
    ahead, or a forged date, cannot put a message in the future. The report is kept."""
    now = clock.now()
    return now if at is None or at > now else at


def sender_number(raw: str) -> str:
    """Mauritanian numbers as +222XXXXXXXX, other numbers as E.164, names as sent."""
    try:
        return phone.normalize(raw)
    except ValidationError:
        pass
    import phonenumbers  # heavy metadata: loaded only by the inbound path

    try:
        parsed = phonenumbers.parse(raw, phone.REGION)
    except phonenumbers.NumberParseException:
        return raw.strip()
    if phonenumbers.is_possible_number(parsed):
        return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
    return raw.strip()


def store_inbound(device_id: str, body: dict) -> tuple[Message, bool]:
    """Store an SMS the device received; the same (device, deviceRef) is stored once."""
    sms = _parsed(protocol.parse_inbound_sms, body)
    device = Device.get(device_id)  # its key was just checked: it exists
    slot = _own_line(device, sms.sim_slot)
    message_id = str(uuid.uuid5(INBOUND_NAMESPACE, f"{device_id}\n{sms.device_ref}"))
    sender = sender_number(sms.sender)
    message = new_inbound(
        message_id,
        owner_of_inbound(sender, device, slot),
        sender,
        sms.text,
        report_time(sms.received_at),
        device_id=device_id,
        sim_slot=slot,
    )
    return store_received(message, [inbound_quota(device_id)])


def new_inbound(
    message_id: str, account_id: str, sender: str, text: str, received_at: datetime, **more
) -> Message:
    """Build (not save) a received message; ``more``: its channel's own attributes."""
    now = clock.now()
    analysis = analyze(text)
    return Message(
        message_id,
        account_id=account_id,
        direction="inbound",
        phone_number=sender,
        text=text,
        read=False,
        encoding=analysis.encoding,
        segments=analysis.segments,
        status=Status.RECEIVED,
        created_at=received_at,
        updated_at=now,
        purge_at=now + timedelta(days=settings().message_retention_days),
        **more,
    )


def store_received(
    message: Message, counted: list[ratelimit.Quota] | None = None
) -> tuple[Message, bool]:
    """Store a received message once (True: it was stored before) and apply its keywords."""
    if lifecycle.create(message, counted=counted or []):
        log.info("inbound %s stored message=%s", message.channel, message.message_id)
        optout.on_inbound(message)
        return message, False
    message = Message.get(message.message_id)
    lifecycle.announce_created(message)  # a repost: the first announcement may have been lost
    return message, True


def _own_line(device: Device, slot: int | None) -> int | None:
    """The line an SMS arrived on: one the device reported in its heartbeat. A device of a
    single line (or that reported none: a bridge that drives one) received it on that line;
    None: one of several lines, the phone did not say which."""
    slots = sorted(int(line.slot) for line in device.lines or []) or [1]
    if slot is None:
        return slots[0] if len(slots) == 1 else None
    if device.lines and slot not in slots:
        raise ValidationError.field("simSlot", f"is not a line of this device: {slots}")
    return slot


def inbound_quota(device_id: str) -> ratelimit.Quota:
    return ratelimit.Quota(f"inbound#{device_id}", INBOUND_LIMITS, "received SMS for this device")


def owner_of_inbound(sender: str, device: Device, slot: int | None) -> str:
    """Whose reply is this? On a dedicated device, the account it is dedicated to. On a
    shared one, the account whose SMS left this device's line ``slot`` for ``sender`` most
    recently, within the reply window; a message that never left a phone (failed, expired,
    still queued) claims nothing. When the phone does not say which line (``slot`` None),
    the device's last messages to ``sender`` must all be one account's. No claim: nobody
    (the operator's unassigned inbox), never a guess."""
    if device.account_id:
        return device.account_id
    since = clock.now() - timedelta(days=settings().reply_window_days)
    latest = Message.by_sent_to.query(
        sender, Message.sent_at >= since, scan_index_forward=False, limit=REPLY_CLAIMS_READ
    )
    sent_here = [m for m in latest if m.device_id == device.device_id]
    if slot is not None:
        # A message reported without its line left a bridge that drove one line: slot 1.
        claim = next((m for m in sent_here if (m.sent_slot or 1) == slot), None)
        return claim.account_id if claim else UNASSIGNED
    accounts = {m.account_id for m in sent_here}
    return accounts.pop() if len(accounts) == 1 else UNASSIGNED
