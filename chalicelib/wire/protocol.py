"""What travels between the Lambdas and the device bridges, defined once for both sides.

- The outbound SMS body on the SQS queues (``OutboundSms``): built by the Lambdas,
  read by the bridges.
- The device API payloads (status report, inbound SMS, heartbeat): built by the bridges
  (``status_report``, ``inbound_sms``, ``heartbeat``), checked by the API
  (``parse_status_report``, ``parse_inbound_sms``, ``parse_heartbeat``), which report
  every bad field at once in a ``PayloadError``.

Versioning. Every queue body carries ``"v": PROTOCOL_VERSION``. Version 1 is the body
without a ``"v"`` field (gateway 1.0.0); version 2 adds ``"v"`` and nothing else; version 3
adds ``"claim"``, the token a bridge hands back with its reports (chalicelib/receipts.py),
and ``"simSlot"``, the SIM an SMS must leave from.
Upgrade the bridges first: a version 3 bridge reads every version and sends a claim only
when the body had one, which an older API ignores. A
bridge reads every version from ``OLDEST_VERSION`` to its own ``PROTOCOL_VERSION``, so
bridges can be upgraded after the Lambdas: a new version may only add fields that older
bridges can ignore, and the Lambdas send the new version only once no bridge older than
the previous one is in service. A body of a version newer than the bridge knows is refused
(``UnsupportedVersion``): the bridge leaves it on the queue, which moves it to the
dead-letter queue, rather than guess at it.

Standard library only, no AWS imports: the bridge's distribution ships this module too.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeGuard

from .status import DEVICE_REPORTS

PROTOCOL_VERSION = 3
OLDEST_VERSION = 1  # bodies without "v"
DEVICE_STATUSES = tuple(DEVICE_REPORTS)  # what a bridge may report of an outbound SMS
OPERATORS = ("chinguitel", "mattel", "mauritel")  # Mauritania's mobile networks
MAX_LINES = 32  # SIM lines one bridge reports (a 32-port modem pool)
# What a line is doing: sending, paused by its SIM guard (a network error meaning a limit
# or a bar), at one of its caps until a window ends, or its phone or modem unreachable.
LINE_STATES = ("active", "paused", "capped", "down")
LINE_REASON_LIMIT = 200
INBOUND_TEXT_LIMIT = 2000  # characters: a received SMS of about 13 concatenated segments

# The first digit of a Mauritanian mobile number names its network (ITU notice of 2010;
# libphonenumber's carrier data agrees); 25, 35 and 45 are fixed lines. No number
# portability is known. Here because both sides need it: the API routes by it, a bridge
# picks the line of the recipient's network by it.
OPERATOR_BY_DIGIT = dict(zip("234", OPERATORS, strict=True))
FIXED_PREFIXES = ("25", "35", "45")


def operator_of(number: str) -> str | None:
    """The mobile network of a Mauritanian number (+222XXXXXXXX or its 8 local digits);
    None for a fixed line or a number of another country."""
    local = number[-8:]
    foreign = len(number) > 8 and not number.lstrip("+").startswith("222")
    if foreign or local.startswith(FIXED_PREFIXES):
        return None
    return OPERATOR_BY_DIGIT.get(local[:1])


class WireError(ValueError):
    """A queue body or device payload that does not follow the protocol."""


class UnsupportedVersion(WireError):
    """A queue body of a protocol version this side does not know."""


class PayloadError(WireError):
    """A device payload with bad fields; ``errors`` lists all of them as
    ``{"field": ..., "message": ...}``, in the contract's error list format."""

    def __init__(self, errors: list[dict]):
        detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors)
        super().__init__(f"Validation failed: {detail}")
        self.errors = errors


def iso_utc(moment: datetime) -> str:
    """An aware date-time as ISO-8601 in UTC with milliseconds, e.g. 2025-01-20T10:14:50.000Z."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


# ---------------------------------------------------------------------- the queue body


@dataclass(frozen=True)
class OutboundSms:
    """One SMS for a bridge to send; ``text`` is the full text (OTP codes: never log it)."""

    message_id: str
    to: str
    text: str = field(repr=False)
    kind: str = "sms"
    send_before: datetime | None = None
    claim: str | None = field(default=None, repr=False)  # proof of receipt (version 3)
    sim_slot: int | None = None  # the SIM it must leave from (version 3); None: any

    def to_json(self) -> str:
        return json.dumps(
            {
                "v": PROTOCOL_VERSION,
                "messageId": self.message_id,
                "to": self.to,
                "text": self.text,
                "kind": self.kind,
                "sendBefore": self.send_before.isoformat() if self.send_before else None,
                "claim": self.claim,
                "simSlot": self.sim_slot,
            }
        )

    @classmethod
    def from_json(cls, body: str) -> OutboundSms:
        """Read a body of any version from OLDEST_VERSION on; raises WireError."""
        try:
            fields = json.loads(body)
        except ValueError:
            raise WireError("the body is not JSON") from None
        if not isinstance(fields, dict):
            raise WireError("the body is not a JSON object")
        _check_version(fields.get("v", OLDEST_VERSION))
        message_id, to, text = (fields.get(name) for name in ("messageId", "to", "text"))
        if not (isinstance(message_id, str) and isinstance(to, str) and isinstance(text, str)):
            raise WireError("messageId, to and text must be strings")
        kind, claim = fields.get("kind", "sms"), fields.get("claim")
        if not isinstance(kind, str):
            raise WireError("kind must be a string")
        if claim is not None and not isinstance(claim, str):
            raise WireError("claim must be a string")
        slot = fields.get("simSlot")
        if slot is not None and not _is_slot(slot):
            raise WireError(f"simSlot must be a whole number from 1 to {MAX_LINES}")
        send_before = _send_before(fields.get("sendBefore"))
        return cls(message_id, to, text, kind, send_before, claim, slot)


def _check_version(version: Any) -> None:
    if not isinstance(version, int) or isinstance(version, bool):
        raise WireError(f"protocol version {version!r} is not a number")
    if not OLDEST_VERSION <= version <= PROTOCOL_VERSION:
        raise UnsupportedVersion(
            f"protocol version {version} is not supported (this side "
            f"reads {OLDEST_VERSION} to {PROTOCOL_VERSION})"
        )


def _send_before(value: Any) -> datetime | None:
    """The deadline; a version 1 body may carry it without a time zone, which means UTC."""
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except (TypeError, ValueError):
        raise WireError("sendBefore must be an ISO-8601 date-time") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


# ---------------------------------------------------------------------- device payloads: bridge side


def status_report(
    status: str,
    *,
    reason: str | None = None,
    segments: int | None = None,
    at: datetime | None = None,
    claim: str | None = None,
    sim_slot: int | None = None,
) -> dict:
    """POST /device/messages/{id}/status. ``segments`` is informational: the API ignores it.

    ``claim`` is the queue body's token: needed on a device's first report of a message.
    ``sim_slot``: the line a ``sent`` SMS left from (replies to it belong to its sender)."""
    body = {
        "status": status,
        "reason": reason,
        "segments": segments,
        "at": iso_utc(at) if at else None,
        "claim": claim,
        "simSlot": sim_slot,
    }
    return {name: value for name, value in body.items() if value is not None}


def inbound_sms(
    sender: str,
    text: str,
    device_ref: str,
    received_at: datetime,
    sim_slot: int | None = None,
) -> dict:
    """POST /device/inbound: an SMS the phone received; ``device_ref`` makes reposts harmless;
    ``sim_slot``: the line it arrived on, when the phone tells."""
    body: dict[str, Any] = {
        "from": sender,
        "text": text,
        "receivedAt": iso_utc(received_at),
        "deviceRef": device_ref,
    }
    if sim_slot is not None:
        body["simSlot"] = sim_slot
    return body


@dataclass(frozen=True)
class Line:
    """One SIM line of a device: its slot (1 first), number, and operator when the
    prefix would give the wrong one (None: the API derives it from the number)."""

    slot: int
    number: str
    operator: str | None = None
    signal_percent: int | None = None  # of this SIM's network, when the bridge knows it
    state: str | None = None  # one of LINE_STATES; None: not reported (an older bridge)
    state_reason: str | None = None  # why it is not active, e.g. "+CMS ERROR 8: barred"
    resumes_at: datetime | None = None  # when a paused or capped line takes SMS again

    def to_json(self) -> dict:
        body = {
            "slot": self.slot,
            "number": self.number,
            "operator": self.operator,
            "signalPercent": self.signal_percent,
            "state": self.state,
            "stateReason": self.state_reason,
            "resumesAt": None if self.resumes_at is None else iso_utc(self.resumes_at),
        }
        return {name: value for name, value in body.items() if value is not None}


def heartbeat(
    driver: str,
    signal_percent: int | None,
    battery_percent: int | None,
    version: str,
    lines: list[Line] | None = None,
    own_queue: bool = False,
) -> dict:
    """POST /device/heartbeat; ``lines`` only when the bridge knows its SIM lines;
    ``own_queue``: it polls the device's own queues, so SMS may be addressed to it."""
    body: dict[str, Any] = {
        "driver": driver,
        "signalPercent": signal_percent,
        "batteryPercent": battery_percent,
        "version": version,
        "ownQueue": own_queue,
    }
    if lines is not None:
        body["lines"] = [line.to_json() for line in lines]
    return body


# ---------------------------------------------------------------------- device payloads: API side


@dataclass(frozen=True)
class StatusReport:
    status: str
    reason: str | None
    at: datetime | None  # None: the API uses the time it received the report
    claim: str | None = None  # the queue body's token (protocol version 3)
    sim_slot: int | None = None  # the line it left from (None: not said)


@dataclass(frozen=True)
class InboundReport:
    sender: str  # as the phone shows it; the API normalises it
    text: str
    device_ref: str
    received_at: datetime | None
    sim_slot: int | None = None  # the line it arrived on (None: the phone does not tell)


@dataclass(frozen=True)
class Heartbeat:
    driver: str | None
    signal_percent: int | None
    battery_percent: int | None
    version: str | None
    lines: tuple[Line, ...] | None = None  # None: not reported (an older bridge)
    own_queue: bool = False


def parse_status_report(body: Any) -> StatusReport:
    """Raises PayloadError listing every bad field."""
    fields = _Fields(body)
    status = fields.check("status", _choice(DEVICE_STATUSES))
    reason = fields.check("reason", _optional_text(500))
    at = fields.check("at", _timestamp)
    claim = fields.check("claim", _optional_text(100))
    sim_slot = fields.check("simSlot", _slot)
    if status is None and not fields.errors:
        fields.errors.append({"field": "status", "message": "is required"})
    fields.done()
    return StatusReport(status, reason, at, claim, sim_slot)


def parse_inbound_sms(body: Any) -> InboundReport:
    """Raises PayloadError listing every bad field."""
    fields = _Fields(body)
    sender = fields.check("from", _required_text(64))
    text = fields.check("text", _optional_text(INBOUND_TEXT_LIMIT))
    received_at = fields.check("receivedAt", _timestamp)
    device_ref = fields.check("deviceRef", _required_text(200))
    sim_slot = fields.check("simSlot", _slot)
    if text is None and not any(e["field"] == "text" for e in fields.errors):
        fields.errors.append({"field": "text", "message": "is required"})
    fields.done()
    return InboundReport(sender, text, device_ref, received_at, sim_slot)


def parse_heartbeat(body: Any) -> Heartbeat:
    """Raises PayloadError listing every bad field; every field is optional."""
    fields = _Fields(body)
    heartbeat_ = Heartbeat(
        driver=fields.check("driver", _optional_text(40)),
        signal_percent=fields.check("signalPercent", _percent),
        battery_percent=fields.check("batteryPercent", _percent),
        version=fields.check("version", _optional_text(40)),
        lines=fields.check("lines", _lines),
        own_queue=fields.check("ownQueue", _flag) or False,
    )
    fields.done()
    return heartbeat_


def _lines(value: Any) -> tuple[Line, ...] | None:
    if value is None:
        return None
    if not isinstance(value, list) or len(value) > MAX_LINES:
        raise _Problem(f"must be a list of at most {MAX_LINES} lines")
    lines = []
    for index, item in enumerate(value):
        where = f"line {index + 1}"
        if not isinstance(item, dict):
            raise _Problem(f"{where} must be an object with slot, number and operator")
        slot, number, operator = item.get("slot"), item.get("number"), item.get("operator")
        if not _is_slot(slot):
            raise _Problem(f"{where}: slot must be a whole number from 1 to {MAX_LINES}")
        if not isinstance(number, str) or not 1 <= len(number) <= 20:
            raise _Problem(f"{where}: number must be a phone number")
        if operator is not None and operator not in OPERATORS:
            raise _Problem(f"{where}: operator must be one of {', '.join(OPERATORS)}")
        lines.append(Line(slot, number, operator, **_line_details(item, where)))
    if len({line.slot for line in lines}) != len(lines):
        raise _Problem("two lines have the same slot")
    return tuple(lines)


def _line_details(item: dict, where: str) -> dict:
    """A reported line's signal and state, each checked; a problem names its field."""
    checks = {
        "signal_percent": ("signalPercent", _percent),
        "state": ("state", _choice(LINE_STATES)),
        "state_reason": ("stateReason", _optional_text(LINE_REASON_LIMIT)),
        "resumes_at": ("resumesAt", _timestamp),
    }
    details = {}
    for name, (key, check) in checks.items():
        try:
            details[name] = check(item.get(key))
        except _Problem as problem:
            raise _Problem(f"{where}: {key} {problem}") from None
    return details


def _is_slot(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= MAX_LINES


def _slot(value: Any) -> int | None:
    if value is not None and not _is_slot(value):
        raise _Problem(f"must be a whole number from 1 to {MAX_LINES}")
    return value


class _Problem(Exception):
    """One field's problem, caught by _Fields.check."""


class _Fields:
    """Run field checks on a payload, keep their errors, raise them together."""

    def __init__(self, body: Any):
        self.body = body if isinstance(body, dict) else {}
        self.errors: list[dict] = []
        if not isinstance(body, dict):
            self.errors.append({"field": "body", "message": "must be a JSON object"})

    def check(self, name: str, parse: Callable[[Any], Any]) -> Any:
        try:
            return parse(self.body.get(name))
        except _Problem as problem:
            self.errors.append({"field": name, "message": str(problem)})
            return None

    def done(self) -> None:
        if self.errors:
            raise PayloadError(self.errors)


def _timestamp(value: Any) -> datetime | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        utc = parsed.astimezone(UTC) if parsed.tzinfo else None
    except (AttributeError, ValueError, OverflowError):
        raise _Problem("must be an ISO-8601 date-time") from None
    if utc is None:
        raise _Problem("must include a time zone, e.g. Z")
    return utc


def _flag(value: Any) -> bool | None:
    if value is not None and not isinstance(value, bool):
        raise _Problem("must be true or false")
    return value


def _percent(value: Any) -> int | None:
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 100:
        raise _Problem("must be a whole number from 0 to 100")
    return value


def _optional_text(longest: int) -> Callable[[Any], str | None]:
    def parse(value: Any) -> str | None:
        if value is None:
            return None
        if not isinstance(value, str) or len(value) > longest:
            raise _Problem(f"must be a string of at most {longest} characters")
        return value

    return parse


def _required_text(longest: int) -> Callable[[Any], str]:
    def parse(value: Any) -> str:
        if value is None:
            raise _Problem("is required")
        if not isinstance(value, str):
            raise _Problem("must be a string")
        if not value.strip():
            raise _Problem("must not be empty")
        if len(value) > longest:
            raise _Problem(f"must be at most {longest} characters")
        return value

    return parse


def _choice(options: tuple[str, ...]) -> Callable[[Any], str | None]:
    def parse(value: Any) -> str | None:
        if value is None:
            return None
        if not isinstance(value, str) or value.lower() not in options:
            raise _Problem(f"must be one of {', '.join(options)}")
        return value.lower()

    return parse
