"""GSM/LTE modem driver: a USB modem or a SIM800/Quectel module driven by AT commands.

The modem works in PDU mode. New SMS are stored by the modem and announced with +CMTI;
the driver reads and decodes them, and deletes them once the bridge has them in its
journal (``acknowledge``): until then a restart reads them again, under the same
``device_ref``. Status reports come straight as +CDS. Parts of a long SMS stay on the SIM
until the whole message is there, so a restart loses none.

A send whose AT+CMGS got no result is never resent blindly: the modem's answer to the
next command tells whether it left (a late +CMGS) or was refused; when it cannot tell,
the send fails as "outcome unknown". A long SMS refused in its middle is resumed, not
sent again from its first segment.
"""

from __future__ import annotations

import hashlib
import logging
import queue
import random
import re
import time
from dataclasses import dataclass, field

import serial

from .. import pdu
from ..serial_link import LinkError, LinkTimeout, PayloadUnconfirmed, SerialLink
from .base import (
    DeliveryReport,
    DeviceInfo,
    Driver,
    DriverError,
    InboundSms,
    OutboundSms,
    SendError,
    SendResult,
)

log = logging.getLogger(__name__)

_WAKE_TIMEOUT = 1.0
_WAKE_ATTEMPTS = 3
_SIM_READY_TIMEOUT = 15.0
_RECEIVED_STATUSES = (0, 1)  # +CMGL <stat>: REC UNREAD, REC READ (2 and 3 are outgoing)
_RESUMABLE_SENDS = 64  # long SMS interrupted mid-way whose sent segments are remembered
OUTCOME_UNKNOWN = "outcome unknown"

# +CMS ERROR codes (3GPP TS 24.011 RP causes, TS 23.040 TP-FCS, TS 27.005 ME errors) that
# blame the message or its destination: sending it again would fail again.
_PERMANENT_SEND_ERRORS = frozenset(
    {1, 8, 10, 21, 29, 50, 69, 95, 96, 97, 98, 99, 111, 195, 196, 304, 305}
    | set(range(0x80, 0xB1))  # TP-PID, TP-DCS and TP-Command errors, TPDU not supported
)
# RP causes (TS 24.011 §8.2.5.4) that bar or limit the SIM rather than the recipient: the
# bridge pauses the line and the SMS goes by another line or later.
_LINE_BARRING_ERRORS = frozenset({8, 10, 21, 29, 50})
_SEND_ERROR_REASONS = {
    1: "unassigned number",
    8: "operator determined barring",
    10: "call barred",
    21: "short message transfer rejected",
    27: "destination out of service",
    28: "unidentified subscriber",
    29: "facility rejected",
    30: "unknown subscriber",
    38: "network out of order",
    41: "temporary network failure",
    42: "network congestion",
    47: "network resources unavailable",
    50: "SMS not subscribed",
    96: "invalid mandatory information",
    195: "invalid destination address",
    196: "destination barred",
    300: "modem failure",
    302: "operation not allowed",
    304: "invalid PDU",
    310: "SIM not inserted",
    311: "SIM PIN required",
    313: "SIM failure",
    314: "SIM busy",
    330: "SMSC address unknown",
    331: "no network service",
    332: "network timeout",
    500: "unknown modem error",
}


@dataclass
class Options:
    # Serial device of the modem's AT port, e.g. /dev/ttyUSB0 (USB modems expose several
    # ports; only one or two answer AT commands).
    port: str
    # Serial speed; USB modems ignore it, UART modules such as the SIM800 need theirs.
    baudrate: int = 115200
    # SIM PIN, entered at start when the SIM asks for one; leave unset for a SIM without.
    pin: str | None = None
    # Ask the network for a status report per segment, returned by poll() as DeliveryReport.
    delivery_reports: bool = True
    # Seconds an ordinary AT command may take to be answered.
    command_timeout: float = 5.0
    # Seconds the network may take to accept one segment (AT+CMGS), slow on a weak signal.
    send_timeout: float = 60.0
    # Seconds the parts of a long inbound SMS wait for the missing ones; after that the
    # parts that did arrive are passed on as one SMS.
    incomplete_timeout: float = 3600.0
    # Seconds without any exchange after which poll() checks that the modem still answers
    # (a plain AT): a modem that stopped answering is found even when the line is idle.
    watchdog_interval: float = 60.0
    # Command that fully resets a modem that does not come back by reopening its port
    # (recover()); "" never resets it.
    reset_command: str = "AT+CFUN=1,1"
    # Seconds a reset modem may take to answer AT again (its USB port may vanish meanwhile).
    reset_timeout: float = 30.0


def create(**options) -> ModemDriver:
    return ModemDriver(Options(**options))


class SimLocked(DriverError):
    """The SIM will not work until someone acts (no PIN, a wrong or unanswered one, its PUK):
    resetting the modem would not help, and trying the PIN again may lock the SIM for good."""


class _ModemError(Exception):
    """The modem answered a command with an error result."""

    def __init__(self, command: str, result: str):
        super().__init__(f"{command} failed: {result}")
        self.result = result


@dataclass(frozen=True)
class _Slot:
    """Where the modem keeps one received SMS."""

    storage: str | None
    index: int


@dataclass
class _PartlySent:
    """A long SMS being sent: its concatenation reference and the segments that left."""

    concat_reference: int
    references: list = field(default_factory=list)


class _PartialMessage:
    """Parts of one long inbound SMS, by sequence number, waiting for the rest."""

    def __init__(self):
        self.first_seen = time.monotonic()
        self.parts: dict[int, pdu.Deliver] = {}
        self.slots: list[_Slot] = []


class ModemDriver(Driver):
    name = "modem"

    def __init__(self, options: Options):
        self.options = options
        self._unsolicited: queue.SimpleQueue = queue.SimpleQueue()  # URCs from the reader thread
        self._link = SerialLink(options.port, options.baudrate, self._unsolicited.put)
        self._events: list = []
        self._partial_messages: dict[tuple, _PartialMessage] = {}
        self._read_storage: str | None = None  # <mem1> of AT+CPMS, None until known
        self._concat_reference = random.randrange(256)
        self._battery_supported = True
        # Received SMS passed on and not acknowledged yet: where they are kept, by device_ref
        self._unacknowledged: dict[str, list[_Slot]] = {}
        # messageId -> the segments of a long SMS that left before a later one was refused
        self._interrupted: dict[str, _PartlySent] = {}
        self._last_exchange = time.monotonic()  # when the modem last answered (watchdog)

    # ------------------------------------------------------------------ Driver interface

    def open(self) -> None:
        self._connect(reset_allowed=False)

    def send(self, sms: OutboundSms) -> SendResult:
        if sms.sim_slot not in (None, 1):
            raise SendError(f"this modem has one SIM; slot {sms.sim_slot} asked", retryable=False)
        progress = self._interrupted.pop(sms.message_id, None) or _PartlySent(
            self._next_concat_reference()
        )
        try:
            pdus = pdu.encode_submit(
                sms.to,
                sms.text,
                status_report=self.options.delivery_reports,
                concat_reference=progress.concat_reference,
            )
        except pdu.PduError as error:
            raise SendError(str(error), retryable=False) from error
        for submit_pdu in pdus[len(progress.references) :]:
            try:
                progress.references.append(self._submit(submit_pdu))
            except SendError as error:
                if error.retryable and progress.references:
                    self._remember_interrupted(sms.message_id, progress)
                raise
            except DriverError:  # the modem stopped answering: resumed after recover()
                if progress.references:
                    self._remember_interrupted(sms.message_id, progress)
                raise
        references = tuple(progress.references)
        return SendResult(
            segments=len(pdus), references=references if self.options.delivery_reports else ()
        )

    def acknowledge(self, sms: InboundSms) -> None:
        for slot in self._unacknowledged.pop(sms.device_ref, []):
            try:
                self._delete(slot)
            except LinkError as error:
                raise DriverError(
                    f"modem on {self.options.port} is not answering: {error}"
                ) from error

    def poll(self) -> list:
        while not self._unsolicited.empty():
            lines = self._unsolicited.get()
            try:
                self._handle_unsolicited(lines)
            except LinkError as error:
                self._unsolicited.put(lines)  # handled again by the next poll
                raise DriverError(
                    f"modem on {self.options.port} is not answering: {error}"
                ) from error
        self._pass_on_expired_partials()
        if time.monotonic() - self._last_exchange >= self.options.watchdog_interval:
            self._check_alive()
        events, self._events = self._events, []
        return events

    def recover(self) -> None:
        """Reopen the port by its path (a /dev/serial/by-id link follows a replugged modem
        to its new node) and set the modem up again; when it does not answer AT or its
        set-up fails, reset it (``reset_command``) and wait for it. Unacknowledged SMS are
        read again from the SIM, under the same device_ref; partial long SMS and
        interrupted sends are kept."""
        self._link.close()
        self._connect(reset_allowed=True)

    def _connect(self, reset_allowed: bool) -> None:
        try:
            self._link.open()
        except serial.SerialException as error:
            raise DriverError(f"cannot open {self.options.port}: {error}") from error
        try:
            try:
                self._start_up()
            except (LinkError, _ModemError, DriverError) as error:
                if not (reset_allowed and self.options.reset_command):
                    raise
                if isinstance(error, SimLocked):
                    raise
                log.warning("modem on %s: %s; resetting it", self.options.port, error)
                self._reset()
                self._start_up()
        except (LinkError, _ModemError) as error:
            self._link.close()
            raise DriverError(
                f"modem on {self.options.port} could not be set up: {error}"
            ) from error
        except DriverError:
            self._link.close()
            raise

    def info(self) -> DeviceInfo:
        try:
            rssi = self._signal_rssi()
            return DeviceInfo(
                signal_percent=_rssi_percent(rssi),
                battery_percent=self._battery_percent(),
                extra={"rssi": rssi},
            )
        except LinkError as error:
            raise DriverError(f"modem on {self.options.port} is not answering: {error}") from error

    def close(self) -> None:
        self._link.close()

    # ------------------------------------------------------------------ watchdog, recovery

    def _check_alive(self) -> None:
        try:
            self._link.command("AT", self.options.command_timeout)
        except LinkError as error:
            raise DriverError(f"modem on {self.options.port} is not answering: {error}") from error
        self._last_exchange = time.monotonic()

    def _start_up(self) -> None:
        self._initialise()
        self._read_stored_messages()
        self._last_exchange = time.monotonic()

    def _reset(self) -> None:
        try:
            self._link.command(self.options.reset_command, self.options.command_timeout)
        except LinkError:
            pass  # a wedged modem may still take it; it may also drop its port at once
        self._link.close()
        deadline = time.monotonic() + self.options.reset_timeout
        while time.monotonic() < deadline:
            try:
                self._link.open()
            except serial.SerialException:
                time.sleep(0.2)  # the USB port is not back yet
                continue
            try:
                self._link.command("AT", _WAKE_TIMEOUT)
                return
            except LinkError:
                self._link.close()
                time.sleep(0.1)
        raise DriverError(
            f"modem on {self.options.port} did not come back within "
            f"{self.options.reset_timeout:g} s of {self.options.reset_command}"
        )

    # ------------------------------------------------------------------ set-up

    def _initialise(self) -> None:
        self._wake()
        # The SIM first: some modems (ZTE K3565-Z, Qualcomm M6280) refuse everything else,
        # ATE0 included, with +CME ERROR: 11 while the SIM waits for its PIN. Echo is still
        # on until ATE0; the echoed command is just one more line of the answer.
        self._unlock_sim()
        self._command("ATE0")
        self._command("AT+CMEE=1")  # numeric +CME/+CMS error codes
        self._command("AT+CMGF=0")  # PDU mode
        # New SMS stored and announced with +CMTI; status reports sent as +CDS
        reports = 1 if self.options.delivery_reports else 0
        self._command(f"AT+CNMI=2,1,0,{reports},0")
        self._read_where_new_messages_go()

    def _wake(self) -> None:
        for _ in range(_WAKE_ATTEMPTS):
            try:
                self._link.command("AT", _WAKE_TIMEOUT)
                return
            except LinkTimeout:
                self._link.abort_prompt()
        raise DriverError(f"no modem answers AT commands on {self.options.port}")

    def _unlock_sim(self) -> None:
        state = self._sim_state()
        if state == "READY":
            return
        if state == "SIM PUK":
            raise SimLocked(
                "the SIM is locked by its PUK (too many wrong PINs); unlock it in a phone first"
            )
        if state != "SIM PIN":
            raise SimLocked(f"the SIM is locked ({state}); unlock it in a phone first")
        if not self.options.pin:
            raise SimLocked("the SIM asks for a PIN; set the modem's pin option")
        try:
            result = self._link.command(
                f'AT+CPIN="{self.options.pin}"', self.options.command_timeout
            )[-1]
        except LinkTimeout:
            # it may have taken it: entering it again after a reset could spend a try
            raise SimLocked("the modem did not answer the PIN") from None
        if result != "OK":
            raise SimLocked(
                f"the SIM refused the PIN ({result}); check the pin option "
                "before more wrong tries lock the SIM (after three it asks for its PUK)"
            )
        self._wait_for_sim()

    def _wait_for_sim(self) -> None:
        deadline = time.monotonic() + _SIM_READY_TIMEOUT
        while True:
            try:
                state = self._sim_state()
            except _ModemError:  # SIM busy while it starts
                state = "busy"
            if state == "READY":
                return
            if time.monotonic() > deadline:
                raise DriverError(f"the SIM is not ready ({state})")
            time.sleep(0.5)

    def _sim_state(self) -> str:
        # "+CPIN: READY" is the answer even without the OK (Wavecom Multiband 900E)
        lines = self._link.command("AT+CPIN?", self.options.command_timeout, "+CPIN:")
        state = _field_line(lines, "+CPIN:")
        if not state and lines[-1] != "OK":
            raise _ModemError("AT+CPIN?", lines[-1])
        return state or "unknown"

    def _read_where_new_messages_go(self) -> None:
        """Read and delete in the storage +CMTI names (<mem3>), which may not be <mem1>."""
        try:
            storages = re.findall(r'"(\w+)"', _field_line(self._command("AT+CPMS?"), "+CPMS:"))
        except _ModemError as error:
            log.warning("cannot tell the SMS storage (%s); using the modem's default", error)
            return
        if len(storages) >= 3:
            self._read_storage = storages[0]
            self._select_storage(storages[2])

    def _read_stored_messages(self) -> None:
        """Take in what arrived while the bridge was down."""
        for header, pdu_line in _pdus_in(self._command("AT+CMGL=4"), "+CMGL:"):
            index, status, length = int(header[0]), int(header[1]), int(header[-1])
            if status in _RECEIVED_STATUSES:
                self._take_in(_Slot(self._read_storage, index), pdu_line, length)

    # ------------------------------------------------------------------ sending

    def _next_concat_reference(self) -> int:
        self._concat_reference = (self._concat_reference + 1) % 256
        return self._concat_reference

    def _remember_interrupted(self, message_id: str, progress: _PartlySent) -> None:
        if len(self._interrupted) >= _RESUMABLE_SENDS:
            del self._interrupted[next(iter(self._interrupted))]  # the oldest
        self._interrupted[message_id] = progress

    def _submit(self, submit_pdu: pdu.SubmitPdu) -> str:
        """Send one segment; return the message reference the network gave it."""
        try:
            lines = self._link.command_with_prompt(
                f"AT+CMGS={submit_pdu.tpdu_length}", submit_pdu.hex, self.options.send_timeout
            )
        except PayloadUnconfirmed as error:
            lines = self._late_submit_result(error)
        except LinkTimeout as error:
            self._check_alive()  # DriverError when the modem stopped answering altogether
            raise SendError(f"the modem gave no prompt for the SMS: {error}") from error
        except LinkError as error:
            raise DriverError(f"modem on {self.options.port} is not reachable: {error}") from error
        self._last_exchange = time.monotonic()
        if lines[-1] != "OK":
            raise _send_error(lines[-1])
        return _field_line(lines, "+CMGS:").split(",")[0]

    def _late_submit_result(self, unconfirmed: PayloadUnconfirmed) -> list:
        """Ask the modem how a segment it took without answering went: a modem still busy
        with it answers the next command once the network has, and its late +CMGS or
        +CMS ERROR comes first. An idle or silent modem cannot tell: the segment may have
        left, so sending it again risks a duplicate (an OTP twice)."""
        try:
            lines = self._link.command("AT", self.options.send_timeout)
        except LinkError:
            lines = []
        if _field_line(lines, "+CMGS:") or (lines and lines[-1].startswith("+CMS ERROR:")):
            log.warning("the modem answered a send late: %s", lines)
            return lines
        raise SendError(
            f"{OUTCOME_UNKNOWN}: the modem took the SMS but never said whether the network "
            f"accepted it ({unconfirmed}); not resent",
            retryable=False,
        )

    # ------------------------------------------------------------------ receiving

    def _handle_unsolicited(self, lines: list) -> None:
        new_message = re.match(r'\+CMTI:\s*"(\w+)",\s*(\d+)', lines[0])
        status_report = re.match(r"\+CDS:\s*(\d+)", lines[0])
        if new_message:
            self._read_new_message(_Slot(new_message.group(1), int(new_message.group(2))))
        elif status_report and len(lines) == 2:
            self._take_status_report(lines[1], int(status_report.group(1)))
        else:
            log.debug("modem said %r", lines)

    def _read_new_message(self, slot: _Slot) -> None:
        try:
            self._select_storage(slot.storage)
            entries = _pdus_in(self._command(f"AT+CMGR={slot.index}"), "+CMGR:")
        except _ModemError as error:
            log.warning("cannot read SMS %s: %s", slot, error)
            return
        for header, pdu_line in entries:
            self._take_in(slot, pdu_line, int(header[-1]))

    def _take_status_report(self, pdu_line: str, length: int) -> None:
        try:
            report = pdu.decode(pdu_line, length)
        except pdu.PduError as error:
            log.warning("unreadable status report %r: %s", pdu_line, error)
            return
        if isinstance(report, pdu.StatusReport):
            self._report(report)

    def _take_in(self, slot: _Slot, pdu_line: str, length: int) -> None:
        try:
            message = pdu.decode(pdu_line, length)
        except pdu.PduError as error:
            log.warning("deleting unreadable SMS %s %r: %s", slot, pdu_line, error)
            self._delete(slot)
            return
        if isinstance(message, pdu.StatusReport):
            self._report(message)
            self._delete(slot)
        elif message.concat and message.concat.total > 1:
            self._add_part(slot, message, message.concat)
        else:
            self._pass_on_sms([message], [slot])

    def _report(self, report: pdu.StatusReport) -> None:
        if not report.final:
            log.info("message %s not delivered yet: %s", report.reference, report.describe())
            return
        self._events.append(
            DeliveryReport(str(report.reference), report.delivered, report.describe())
        )

    def _add_part(self, slot: _Slot, part: pdu.Deliver, concat: pdu.Concat) -> None:
        key = (part.sender, concat.reference, concat.total)
        partial = self._partial_messages.setdefault(key, _PartialMessage())
        if concat.sequence in partial.parts:
            self._delete(slot)  # the same part twice
            return
        partial.parts[concat.sequence] = part
        partial.slots.append(slot)
        if len(partial.parts) == concat.total:
            self._pass_on(key)

    def _pass_on_expired_partials(self) -> None:
        now = time.monotonic()
        for key, partial in list(self._partial_messages.items()):
            if now - partial.first_seen > self.options.incomplete_timeout:
                log.warning(
                    "long SMS from %s still misses parts; passing on %d of %d",
                    key[0],
                    len(partial.parts),
                    key[2],
                )
                self._pass_on(key)

    def _pass_on(self, key: tuple) -> None:
        partial = self._partial_messages.pop(key)
        self._pass_on_sms([partial.parts[seq] for seq in sorted(partial.parts)], partial.slots)

    def _pass_on_sms(self, parts: list, slots: list[_Slot]) -> None:
        """An SMS for the bridge; its parts stay on the SIM until it is acknowledged."""
        sms = _inbound(parts, slots)
        if sms.device_ref in self._unacknowledged:
            return  # read again (a second +CMTI for the same slot): passed on already
        self._unacknowledged[sms.device_ref] = slots
        self._events.append(sms)

    def _delete(self, slot: _Slot) -> None:
        try:
            self._select_storage(slot.storage)
            self._command(f"AT+CMGD={slot.index}")
        except _ModemError as error:
            log.warning("cannot delete SMS %s: %s", slot, error)

    def _select_storage(self, storage: str | None) -> None:
        if storage and storage != self._read_storage:
            self._command(f'AT+CPMS="{storage}"')
            self._read_storage = storage

    # ------------------------------------------------------------------ device info

    def _signal_rssi(self) -> int | None:
        try:
            return int(_field_line(self._command("AT+CSQ"), "+CSQ:").split(",")[0])
        except (_ModemError, ValueError) as error:
            log.warning("cannot read the signal: %s", error)
            return None

    def _battery_percent(self) -> int | None:
        if not self._battery_supported:
            return None
        try:
            return int(_field_line(self._command("AT+CBC"), "+CBC:").split(",")[1])
        except (_ModemError, ValueError, IndexError):
            self._battery_supported = False  # USB modems have no battery to report
            return None

    # ------------------------------------------------------------------ helpers

    def _command(self, line: str) -> list:
        lines = self._link.command(line, self.options.command_timeout)
        self._last_exchange = time.monotonic()
        if lines[-1] != "OK":
            raise _ModemError(line, lines[-1])
        return lines


def _field_line(lines: list, prefix: str) -> str:
    """What follows ``prefix`` on the first line starting with it, or ""."""
    for line in lines:
        if line.startswith(prefix):
            return line[len(prefix) :].strip()
    return ""


def _pdus_in(lines: list, prefix: str) -> list:
    """(header fields, PDU line) of every "<prefix> fields" line followed by a PDU line."""
    return [
        (lines[i][len(prefix) :].strip().split(","), lines[i + 1])
        for i in range(len(lines) - 1)
        if lines[i].startswith(prefix)
    ]


def _inbound(parts: list, slots: list[_Slot]) -> InboundSms:
    """The SMS, with a device_ref unique per received PDU yet the same when a restart reads
    it again: where it is stored (its storage indexes), the service centre's time stamp and
    what it says. Two identical SMS in the same second are two SMS, kept in two places."""
    first = parts[0]
    text = pdu.join_parts([part.text for part in parts])
    places = ",".join(str(index) for index in sorted(slot.index for slot in slots))
    fingerprint = f"{places}\n{first.sender}\n{first.timestamp.isoformat()}\n{text}".encode()
    return InboundSms(
        sender=first.sender,
        text=text,
        received_at=first.timestamp,
        device_ref=hashlib.sha256(fingerprint).hexdigest()[:32],
    )


def _send_error(result: str) -> SendError:
    code = result.split(":", 1)[1].strip() if ":" in result else None
    if code is None or not result.startswith("+CMS ERROR:"):
        return SendError(f"the modem refused the SMS ({result})", code=code)
    number = int(code) if code.isdigit() else None
    reason = _SEND_ERROR_REASONS.get(number) if number is not None else None
    barred = number in _LINE_BARRING_ERRORS
    return SendError(
        reason or "the network refused the SMS",
        code=code,
        retryable=barred or number not in _PERMANENT_SEND_ERRORS,
        pause_line=barred,
    )


def _rssi_percent(rssi: int | None) -> int | None:
    """+CSQ <rssi> 0..31 (-113..-51 dBm) as a percentage; 99 means unknown."""
    if rssi is None or not 0 <= rssi <= 31:
        return None
    return round(rssi * 100 / 31)
