"""SMSMobileAPI compatibility: their parameters, and their ``result`` object in every answer.

Integrations written for SMSMobileAPI (their PyPI client, their PHP examples) read
``result.error`` (0 when all went well), ``result.sent``, ``result.id``, ``result.sms``.
The answers here carry that object next to the contract's ``success`` fields, so both
kinds of client read the same answer. Their OpenAPI description (SmsMobileApi/
smsmobileapi-openapi) is the reference for names and types.

What the gateway does not offer answers a clear 400 (see the README): calls, e-mail,
notifications, short URLs. ``schedule_timestamp`` schedules (chalicelib/messages/
schedule.py); ``sendwa``, ``waonly`` and ``url_media`` send through WhatsApp
(chalicelib/whatsapp/messages.py).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import islice

from . import clock, idempotency, routing
from .config import settings
from .errors import GatewayError, NotFound, ValidationError
from .models import Message
from .validation import Fields
from .whatsapp.messages import media_url
from .wire.status import Status

LISTED = 100  # messages per answer of /getsms and /log/sent/sms (newest first)
PAGE_SIZE, PAGES = 500, 4  # they look through the latest 2,000 messages of the time range


# SMSMobileAPI's routes for what this gateway does not do (README): path prefix -> what.
NOT_OFFERED = {
    "/call/": "calls",
    "/notification/": "notifications",
    "/sendemail": "e-mail",
    "/getemail": "e-mail",
    "/getwa": "WhatsApp retrieval",
    "/whatsapp/": "WhatsApp number checks",
    "/log/sent/frommobile": "the log of SMS typed on the phone",
}


def not_offered(path: str) -> str | None:
    """Why an SMSMobileAPI route people look for is not here (None: an unknown path)."""
    for prefix, what in NOT_OFFERED.items():
        if path.startswith(prefix):
            return f"Not offered: this gateway does not do SMSMobileAPI's {what} (see the README)"
    return None


def _stamp(value: datetime | None) -> str | None:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ") if value else None


def number_id(message_id: str) -> int:
    """SMSMobileAPI's numeric ``id``: 52 bits of the message id's hash (exact in JavaScript
    too); ``guid`` carries the message id itself."""
    return int.from_bytes(hashlib.sha256(message_id.encode()).digest()[:7], "big") >> 4


# --- sending ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Channels:
    sms: bool
    whatsapp: bool
    media_url: str | None
    asked_by: str  # the parameter that asked for WhatsApp


def send_options(params: dict) -> Channels:
    """``sendwa=1``: a WhatsApp message too; ``sendsms=0`` or ``waonly=yes``: WhatsApp
    only; ``url_media``: a media on the WhatsApp message."""
    fields = Fields(params)
    sendwa = fields.check("sendwa", _flag("sendwa")) or False
    sendsms = fields.check("sendsms", _flag("sendsms"))
    waonly = fields.check("waonly", _yes("waonly"))
    fields.check("shorturl", _shorturl)
    link = fields.check("url_media", lambda value: media_url(value, "url_media"))
    fields.done()
    if sendsms is False and not sendwa and not waonly:
        raise ValidationError.field("sendsms", "sendsms=0 with sendwa=0 sends nothing")
    whatsapp = bool(sendwa or waonly)
    if link and not whatsapp:
        raise ValidationError.field("url_media", "media go with WhatsApp messages: add sendwa=1")
    return Channels(
        sms=not waonly and sendsms is not False,
        whatsapp=whatsapp,
        media_url=link,
        asked_by="waonly" if waonly else "sendwa",
    )


def send(
    account_id: str,
    params: dict,
    route: routing.Route,
    key: idempotency.Key,
    send_at: datetime | None,
) -> dict:
    """/sendsms: the SMS (queued or scheduled) and the WhatsApp messages it asks for."""
    from .messages import outbound

    channels = send_options(params)
    recipients = params.get("recipients")
    numbers = recipients.split(",") if isinstance(recipients, str) and recipients else recipients
    if channels.whatsapp:
        if not settings().whatsapp_enabled:
            raise ValidationError.field(
                channels.asked_by, "WhatsApp is not configured on this gateway; send the SMS alone"
            )
        if send_at is not None:
            raise ValidationError.field(
                "schedule_timestamp", "WhatsApp messages cannot be scheduled: send the SMS alone"
            )
    text = params.get("message")
    if channels.sms:
        answer = outbound.send_many(
            account_id, text, numbers, send_answer, "recipients", route, key, send_at
        )
    else:
        key.replay_if_done()
        if not isinstance(numbers, list) or not numbers:
            raise ValidationError.field("recipients", "must be a non-empty list of phone numbers")
        if len(numbers) > outbound.MAX_RECIPIENTS:
            raise ValidationError.field(
                "recipients", f"at most {outbound.MAX_RECIPIENTS} numbers per request"
            )
        answer = send_answer([], [])
    if channels.whatsapp:
        _add_whatsapp(answer, account_id, text, numbers, channels.media_url)
        if not channels.sms:
            if answer["result"]["sent"] == "0":
                raise ValidationError("No WhatsApp message could be sent", errors=answer["errors"])
            key.settle(answer)
    return answer


def _add_whatsapp(answer: dict, account_id: str, text, numbers, link: str | None) -> None:
    """Send one WhatsApp message per recipient (each on its own: one refused does not stop
    the others) and add them to the answer."""
    from .whatsapp import messages

    sent: dict[str, str] = {}
    for index, raw in enumerate(dict.fromkeys(numbers)):
        body = {"phoneNumber": raw, "message": text, "mediaUrl": link}
        try:
            outcome = messages.send(account_id, {k: v for k, v in body.items() if v is not None})
        except GatewayError as error:
            problems = error.errors or [{"message": error.message}]
            field = f"recipients[{index}]"
            answer["errors"] += [
                {"field": field, "message": f"WhatsApp: {p['message']}"} for p in problems
            ]
            continue
        sent[str(raw)] = outcome["messageId"]
    result = answer["result"]
    answer["messages"] += [
        {"recipient": number, "messageId": message_id, "channel": "whatsapp"}
        for number, message_id in sent.items()
    ]
    result["sent"] = str(int(result["sent"]) + len(sent))
    result["id"] = ",".join(part for part in (result["id"], *sent.values()) if part)
    result["send_with_whatsapp"] = "1" if sent else "0"
    result["note"] = _note(answer["errors"]) or result["note"]


def _shorturl(value) -> None:
    if value in (None, "", "0", 0):
        return
    if value in ("1", 1):
        raise ValidationError.field(
            "shorturl", "links are sent as written: short URLs are not offered"
        )
    raise ValidationError.field("shorturl", "must be 0 or 1")


def send_answer(queued: list[Message], errors: list[dict]) -> dict:
    """/sendsms's answer: the contract's fields, and SMSMobileAPI's ``result``."""
    note = _note(errors)
    return {
        "success": True,
        "errors": errors,
        "messages": [{"recipient": m.phone_number, "messageId": m.message_id} for m in queued],
        "result": {
            "error": 0,
            "sent": str(len(queued)),
            "id": ",".join(m.message_id for m in queued),
            "note": note
            or (
                f"scheduled for {_stamp(queued[0].send_at)}"
                if queued and queued[0].send_at
                else "queued"
            ),
            "datetime": _stamp(clock.now()),
            "send_with_whatsapp": "0",
        },
    }


def _note(errors: list[dict]) -> str:
    return "; ".join(f"{e['field']}: {e['message']}" for e in errors)


@contextmanager
def results() -> Iterator[None]:
    """An error leaves with SMSMobileAPI's ``result`` too: ``error`` says what went wrong
    (``sent`` "0" on a send: nothing was queued)."""
    try:
        yield
    except GatewayError as error:
        error.extra["result"] = {"error": error.message, "sent": "0"}
        raise


# --- reading ------------------------------------------------------------------------------


def _since(value) -> datetime | None:
    if value in (None, ""):
        return None
    if not str(value).isascii() or not str(value).isdigit():
        raise ValidationError.field("after_timestamp_unix", "must be a Unix time in seconds")
    try:
        return datetime.fromtimestamp(int(value), UTC)
    except (OverflowError, ValueError):
        raise ValidationError.field("after_timestamp_unix", "is out of range") from None


def _yes(name: str):
    def parse(value) -> bool:
        if value in (None, "", "no"):
            return False
        if value != "yes":
            raise ValidationError.field(name, "must be yes (or left out)")
        return True

    return parse


def _identifier(name: str):
    def parse(value) -> str | None:
        if value in (None, ""):
            return None
        if not isinstance(value, str) or len(value) > 200:
            raise ValidationError.field(name, "must be a device id from /gateway/mobile/list")
        return value

    return parse


def _flag(name: str):
    def parse(value) -> bool | None:
        if value in (None, ""):
            return None
        if str(value) not in ("0", "1"):
            raise ValidationError.field(name, "must be 0 or 1")
        return str(value) == "1"

    return parse


def _messages(account_id: str, since: datetime | None, conditions: list) -> list[Message]:
    """The account's messages after ``since`` that meet ``conditions``, newest first: at
    most LISTED, found among the latest PAGES x PAGE_SIZE (at most PAGES Queries)."""
    combined = Message.purge_at.does_not_exist() | (Message.purge_at > clock.now())
    for condition in conditions:
        combined = combined & condition
    pages = Message.by_account.query(
        account_id,
        Message.created_at > since if since else None,
        filter_condition=combined,
        scan_index_forward=False,
        page_size=PAGE_SIZE,
    ).page_iter
    found: list[Message] = []
    for page in islice(pages, PAGES):
        found += [Message.from_raw_data(item) for item in page.get("Items", [])]
        if len(found) >= LISTED:
            break
    return found[:LISTED]


def received(account_id: str, params: dict) -> dict:
    """GET /getsms: received SMS, newest first; reading does not mark them read."""
    fields = Fields(params)
    since = fields.check("after_timestamp_unix", _since)
    unread = fields.check("onlyunread", _yes("onlyunread"))
    device = fields.check("sIdentifiantPhone", _identifier("sIdentifiantPhone"))
    fields.done()
    conditions: list = [Message.direction == "inbound"]
    if unread:
        conditions.append(Message.read.does_not_exist() | (Message.read == False))  # noqa: E712
    if device:
        conditions.append(Message.device_id == device)
    sms = [
        {
            "id": number_id(m.message_id),
            "guid": m.message_id,
            "sIdentifiantPhone": m.device_id,
            "timestamp_unix": int(m.created_at.timestamp()),
            "datetime": _stamp(m.created_at),
            "message": m.text,
            "number": m.phone_number,
            "alias": None,
            "read": bool(m.read),
        }
        for m in _messages(account_id, since, conditions)
    ]
    return {"success": True, "result": {"error": "", "sms": sms}}


def _error_api(message: Message) -> bool:
    """The gateway could not hand it to a phone (failed or expired before any device)."""
    return message.status in (Status.FAILED, Status.EXPIRED) and message.device_id is None


def _error_mobile(message: Message) -> bool:
    """A phone took it and reported that the network refused it."""
    return message.status == Status.FAILED and message.device_id is not None


def sent(account_id: str, params: dict) -> dict:
    """GET /log/sent/sms: SMS sent through the API, newest first."""
    fields = Fields(params)
    guid = fields.check("guid_message", _identifier("guid_message"))
    keyword = fields.check("keyword", lambda v: v if v not in (None, "") else None)
    error_api = fields.check("error_api", _flag("error_api"))
    error_mobile = fields.check("error_mobile", _flag("error_mobile"))
    since = fields.check("after_timestamp_unix", _since)
    fields.done()
    if guid:
        return {
            "success": True,
            "result": {"error": "", "sms": [_sent_row(_own_sent(account_id, guid))]},
        }
    conditions: list = [Message.direction == "outbound"]
    if keyword:
        conditions.append(Message.text.contains(str(keyword)))
    wanted = [
        m
        for m in _messages(account_id, since, conditions)
        if (error_api is None or _error_api(m) == error_api)
        and (error_mobile is None or _error_mobile(m) == error_mobile)
    ]
    return {"success": True, "result": {"error": "", "sms": [_sent_row(m) for m in wanted]}}


def _own_sent(account_id: str, message_id: str) -> Message:
    from .messages import store

    message = store.get_for_account(account_id, message_id)
    if message.direction != "outbound":
        raise NotFound("Message not found")
    return message


def _sent_row(m: Message) -> dict:
    return {
        "id": number_id(m.message_id),
        "guid": m.message_id,
        "number": m.phone_number,
        "message": m.text,
        "kind": m.kind,
        "status": str(m.status),
        "error_api": int(_error_api(m)),
        "error_mobile": int(_error_mobile(m)),
        "note": m.status_reason or "",
        "sIdentifiant": m.device_id,
        "port": None if m.sent_slot is None else int(m.sent_slot),
        "timestamp_unix": int(m.created_at.timestamp()),
        "datetime": _stamp(m.created_at),
        "sent_at": _stamp(m.sent_at),
        "delivered_at": _stamp(m.delivered_at),
    }


def mobiles(devices: list[dict], params: dict) -> dict:
    """GET /gateway/mobile/list: the account's devices (``devices``: /devices' entries)."""
    fields = Fields(params)
    sid = fields.check("sid", _identifier("sid"))
    search = fields.check("search", lambda v: str(v).casefold() if v not in (None, "") else None)
    fields.done()

    def matches(device: dict) -> bool:
        words = [device["deviceId"], device["name"] or ""]
        words += [line["number"] or "" for line in device["lines"]]
        return (sid is None or device["deviceId"] == sid) and (
            search is None or any(search in word.casefold() for word in words)
        )

    listed = [
        {
            "sid": d["deviceId"],
            "sIdentifiant": d["deviceId"],
            "name": d["name"],
            "online": int(d["online"]),
            "last_seen": d["lastSeenAt"],
            "battery": d["batteryPercent"],
            "signal": d["signalPercent"],
            "ports": [
                {"port": line["slot"], "number": line["number"], "operator": line["operator"]}
                for line in d["lines"]
            ],
        }
        for d in devices
        if matches(d)
    ]
    return {"success": True, "result": {"error": "", "mobiles": listed}}
