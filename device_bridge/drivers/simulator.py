"""The simulated phone of the local stack: JSON-lines files instead of a radio.

Every SMS it "sends" is appended to the outbox, one JSON object a line::

    {"messageId": "...", "to": "+22238089336", "text": "...",
     "sentAt": "2025-01-20T10:14:50.123456+00:00", "segments": 1, "simSlot": 1}

and every line appended to the inbox is an SMS the phone receives::

    {"from": "+22238089336", "text": "...", "receivedAt": "2025-01-20T10:14:50Z", "simSlot": 2}

``receivedAt`` is optional: ISO 8601, read as UTC when it has no offset; when absent, the
time the line is read. ``simSlot`` (optional) is the line it arrived on. A line is taken once its newline is written; a line that is not
such a JSON object is skipped with a warning.

The read position in the inbox is kept in memory only: a restarted bridge reads the inbox
again from the start and reposts every SMS with the same ``device_ref``, which the API
deduplicates. A state file would save those reposts but would silently skip new SMS
whenever the inbox is truncated or replaced by hand, which happens in development.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from chalicelib.wire.sms_encoding import analyze

from .base import (
    DeliveryReport,
    Driver,
    DriverError,
    InboundSms,
    OutboundSms,
    SendError,
    SendResult,
)

log = logging.getLogger(__name__)

SIMULATED_REFUSAL = "simulated"


def _path_from_env(variable: str, default: str) -> Path:
    return Path(os.environ.get(variable) or default)


def _number_set(numbers) -> frozenset:
    # A single comma-separated string (from a config file or the command line) is allowed.
    if isinstance(numbers, str):
        numbers = numbers.split(",")
    return frozenset(number.strip() for number in numbers if number.strip())


@dataclass
class Options:
    # JSON-lines file where each sent SMS is appended (env SMSGW_OUTBOX, else var/outbox.jsonl)
    outbox: Path = field(default_factory=lambda: _path_from_env("SMSGW_OUTBOX", "var/outbox.jsonl"))
    # JSON-lines file watched for received SMS (env SMSGW_INBOX, else var/inbox.jsonl)
    inbox: Path = field(default_factory=lambda: _path_from_env("SMSGW_INBOX", "var/inbox.jsonl"))
    # seconds each send takes, to imitate a real modem (1-3 s); 0 sends at once
    send_delay: float = 0.0
    # numbers whose sends are refused with SendError code "simulated" (failure-path tests)
    fail_numbers: frozenset = frozenset()
    # after each send, poll() reports every segment delivered
    delivery_reports: bool = True

    def __post_init__(self):
        self.outbox = Path(self.outbox)
        self.inbox = Path(self.inbox)
        self.send_delay = float(self.send_delay)
        self.fail_numbers = _number_set(self.fail_numbers)


class SimulatorDriver(Driver):
    name = "simulator"

    def __init__(self, options: Options):
        self.options = options
        self._inbox_offset = 0  # bytes of the inbox already turned into events
        self._inbox_identity: tuple[int, int] | None = None  # (device, inode) of the inbox
        self._pending_reports: list[DeliveryReport] = []
        self._refusal_code: str | None = None

    def open(self) -> None:
        for path in (self.options.outbox, self.options.inbox):
            path.parent.mkdir(parents=True, exist_ok=True)
            path.touch(exist_ok=True)

    def refuse_next_send(self, code: str) -> None:
        """Make the next send fail with SendError ``code``, as a network error would."""
        self._refusal_code = code

    def send(self, sms: OutboundSms) -> SendResult:
        time.sleep(self.options.send_delay)
        self._refuse_if_asked(sms)
        segments = analyze(sms.text).segments
        self._append_to_outbox(sms, segments)
        references = tuple(f"{sms.message_id}/{part}" for part in range(1, segments + 1))
        if self.options.delivery_reports:
            self._pending_reports += [DeliveryReport(ref, delivered=True) for ref in references]
        return SendResult(segments=segments, references=references)

    def _refuse_if_asked(self, sms: OutboundSms) -> None:
        code, self._refusal_code = self._refusal_code, None
        if code is not None:
            raise SendError(f"simulated network refusal for {sms.to}", code=code)
        if sms.to in self.options.fail_numbers:
            raise SendError(f"{sms.to} is in fail_numbers", code=SIMULATED_REFUSAL, retryable=False)

    def _append_to_outbox(self, sms: OutboundSms, segments: int) -> None:
        record = {
            "messageId": sms.message_id,
            "to": sms.to,
            "text": sms.text,
            "sentAt": datetime.now(UTC).isoformat(),
            "segments": segments,
            "simSlot": sms.sim_slot,
        }
        line = (json.dumps(record, ensure_ascii=False) + "\n").encode("utf-8")
        # One write on an O_APPEND file, then fsync: a reader never sees half a line.
        try:
            with open(self.options.outbox, "ab", buffering=0) as outbox:
                outbox.write(line)
                os.fsync(outbox.fileno())
        except OSError as error:
            raise DriverError(f"cannot write the outbox {self.options.outbox}: {error}") from error

    def poll(self) -> list:
        events = self._read_inbox() + self._pending_reports
        self._pending_reports = []
        return events

    def _read_inbox(self) -> list:
        try:
            with open(self.options.inbox, "rb") as inbox:
                self._rewind_if_replaced(os.fstat(inbox.fileno()))
                inbox.seek(self._inbox_offset)
                unread = inbox.read()
        except FileNotFoundError:
            return []
        # A line without its "\n" is still being written: leave it for the next poll.
        complete = unread[: unread.rfind(b"\n") + 1]
        events = []
        offset = self._inbox_offset
        for line in complete.splitlines(keepends=True):
            sms = self._parse_inbox_line(offset, line)
            if sms is not None:
                events.append(sms)
            offset += len(line)
        self._inbox_offset = offset
        return events

    def _rewind_if_replaced(self, status: os.stat_result) -> None:
        identity = (status.st_dev, status.st_ino)
        if status.st_size < self._inbox_offset or identity != self._inbox_identity:
            if self._inbox_offset:
                log.warning(
                    "inbox %s was replaced or truncated; reading it from the start",
                    self.options.inbox,
                )
            self._inbox_offset = 0
        self._inbox_identity = identity

    def _parse_inbox_line(self, offset: int, line: bytes) -> InboundSms | None:
        if not line.strip():
            return None
        try:
            record = json.loads(line)
            return InboundSms(
                sender=_text_field(record, "from", allow_empty=False),
                text=_text_field(record, "text", allow_empty=True),
                received_at=_received_at(record.get("receivedAt")),
                device_ref=_device_ref(offset, line),
                sim_slot=_sim_slot(record.get("simSlot")),
            )
        except (ValueError, TypeError, AttributeError) as error:
            log.warning(
                "skipping inbox line at byte %d of %s: %s", offset, self.options.inbox, error
            )
            return None


def _text_field(record: dict, key: str, allow_empty: bool) -> str:
    value = record.get(key)
    if not isinstance(value, str) or not (value or allow_empty):
        raise ValueError(f'"{key}" must be a {"string" if allow_empty else "non-empty string"}')
    return value


def _sim_slot(value) -> int | None:
    if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
        raise ValueError('"simSlot" must be a whole number from 1')
    return value


def _received_at(value) -> datetime:
    if value is None:
        return datetime.now(UTC)
    received_at = datetime.fromisoformat(value)
    return received_at if received_at.tzinfo else received_at.replace(tzinfo=UTC)


def _device_ref(offset: int, line: bytes) -> str:
    # Same line at the same place gives the same ref, so a reread inbox is deduplicated;
    # the same text received twice sits at two offsets, so both are kept.
    digest = hashlib.sha256(b"%d:" % offset + line.rstrip(b"\r\n")).hexdigest()
    return f"simulator:{digest[:32]}"


def create(**options) -> SimulatorDriver:
    return SimulatorDriver(Options(**options))
