"""A simulated GSM modem that speaks AT commands over a pseudo-terminal.

The driver opens ``FakeModem.port`` with pyserial as it would /dev/ttyUSB0; the fake answers
on the master side of the pty in its own thread. PDUs are read and built here with code of
its own, independent of device_bridge.pdu, so the two check each other: SMS-SUBMIT PDUs are
decoded into what "reached the network", and SMS-DELIVER / SMS-STATUS-REPORT PDUs are built
for what the phone receives. Only the GSM alphabet table is shared.
"""

from __future__ import annotations

import os
import re
import select
import threading
import time
import tty
from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, datetime

from chalicelib.wire.sms_encoding import UCS2, gsm7_decode, gsm7_encode, split

SERVICE_CENTRE = "+22236000000"
_CTRL_Z = 0x1A
_ESC = 0x1B
_STORAGE_SIZE = 50
_SMS_COMMANDS = ("AT+CMGF", "AT+CNMI", "AT+CPMS", "AT+CMGS", "AT+CMGR", "AT+CMGD", "AT+CMGL")


@dataclass(frozen=True)
class Profile:
    echo_at_start: bool  # commands echoed back until ATE0
    new_sms_storage: str  # <mem3>: where received SMS go, as named in +CMTI
    first_index: int  # index of the first slot of a storage
    read_storage_at_start: str  # <mem1> at power-on
    battery_percent: int | None  # AT+CBC answer; None when the modem has no AT+CBC
    unsupported_reply: str  # result code for a command the modem lacks
    concat_16bit: bool  # long inbound SMS carry 16-bit concatenation references
    smsc_in_status_report: bool  # the +CDS PDU starts with the SMSC address
    noise: tuple = ()  # unsolicited lines slipped in while some commands are answered
    cpin_ok: bool = True  # AT+CPIN? ends with OK (the Wavecom Multiband 900E sends none)
    # With a PIN-locked SIM: None, only SMS commands are refused (+CMS ERROR: 311); else
    # the commands (besides AT and AT+CPIN) still answered, all others get +CME ERROR: 11
    allowed_while_locked: tuple | None = None


PROFILES = {
    "sim800": Profile(
        echo_at_start=True,
        new_sms_storage="SM",
        first_index=1,
        read_storage_at_start="SM",
        battery_percent=87,
        unsupported_reply="ERROR",
        concat_16bit=False,
        smsc_in_status_report=True,
    ),
    # Quectel / Huawei style: URC noise, SMS in ME from index 0, no battery
    "quectel": Profile(
        echo_at_start=False,
        new_sms_storage="ME",
        first_index=0,
        read_storage_at_start="SM",
        battery_percent=None,
        unsupported_reply="+CME ERROR: 4",
        concat_16bit=True,
        smsc_in_status_report=False,
        noise=("^RSSI: 20", '+QIND: "csq",20,99'),
    ),
    # Behaviours of python-gsmmodem's fake modems (test/fakemodems.py of
    # python-gsmmodem-new 0.13, LGPL-3.0, https://github.com/babca/python-gsmmodem):
    # their replies to AT, ATE0, AT+CMEE, AT+CPIN? and locked-SIM commands.
    "huawei-k3715": Profile(
        echo_at_start=True,
        new_sms_storage="SM",
        first_index=0,
        read_storage_at_start="SM",
        battery_percent=None,
        unsupported_reply="ERROR",
        concat_16bit=False,
        smsc_in_status_report=False,
        noise=("^RSSI: 20",),
        allowed_while_locked=("ATZ", "ATE0", "AT+CFUN?", "AT+CFUN=1", "AT+CMEE=1"),
    ),
    "huawei-e1752": Profile(
        echo_at_start=True,
        new_sms_storage="ME",
        first_index=0,
        read_storage_at_start="SM",
        battery_percent=None,
        unsupported_reply="COMMAND NOT SUPPORT",
        concat_16bit=True,
        smsc_in_status_report=False,
        noise=("^BOOT:20952548,0,0,0,72", "^RSSI: 20"),
        allowed_while_locked=("ATZ", "ATE0", "AT+CFUN?", "AT+CFUN=1", "AT+CMEE=1"),
    ),
    "wavecom-900e": Profile(
        echo_at_start=True,
        new_sms_storage="SM",
        first_index=1,
        read_storage_at_start="SM",
        battery_percent=None,
        unsupported_reply="ERROR",
        concat_16bit=False,
        smsc_in_status_report=True,
        cpin_ok=False,  # "+CPIN: READY" with no OK after it
        allowed_while_locked=("ATZ", "ATE0", "AT+CFUN?", "AT+CFUN=1", "AT+CMEE=1"),
    ),
    "zte-k3565z": Profile(
        echo_at_start=True,
        new_sms_storage="SM",
        first_index=0,
        read_storage_at_start="SM",
        battery_percent=None,
        unsupported_reply="ERROR",
        concat_16bit=False,
        smsc_in_status_report=False,
        allowed_while_locked=(),  # ATE0 too: the PIN first
    ),
    "nokia-n79": Profile(
        echo_at_start=True,
        new_sms_storage="SM",
        first_index=1,
        read_storage_at_start="SM",
        battery_percent=60,
        unsupported_reply="ERROR",
        concat_16bit=False,
        smsc_in_status_report=True,
        allowed_while_locked=("ATZ", "ATE0", "AT+CFUN?", "AT+CFUN=1", "AT+CMEE=1"),
    ),
    "qualcomm-m6280": Profile(
        echo_at_start=True,
        new_sms_storage="SM",
        first_index=0,
        read_storage_at_start="SM",
        battery_percent=None,
        unsupported_reply="ERROR",
        concat_16bit=False,
        smsc_in_status_report=False,
        allowed_while_locked=(),  # ATE0 too: the PIN first
    ),
}


@dataclass(frozen=True)
class Segment:
    """One SMS-SUBMIT the network accepted."""

    to: str
    text: str
    concat: tuple | None  # (reference, total, sequence)
    status_report_requested: bool
    reference: int  # TP-MR given back in +CMGS


@dataclass
class _Stored:
    status: int  # 0 REC UNREAD, 1 REC READ
    pdu_hex: str
    tpdu_length: int


class FakeModem:
    _hung = False  # takes nothing in, answers nothing (hang(), a reset under way)
    _wedged = False  # answers AT, fails everything else until AT+CFUN=1,1 (wedge())
    _link_path: str | None = None  # a /dev/serial/by-id style symlink to the pty (link())
    reset_seconds = 0.3  # silence after AT+CFUN=1,1
    # The network takes this long to accept every SMS (like answer_next_send_late(), on each
    # +CMGS unless another fault is set); a real modem takes 1-3 s. Set after construction.
    send_seconds = 0.0

    def __init__(
        self,
        profile: str = "sim800",
        *,
        pin: str | None = None,
        rssi: int = 20,
        stuck_at_prompt: bool = False,
    ):
        self.profile = PROFILES[profile]
        self.rssi = rssi
        self.registration = "1"  # +CREG <stat>: 1 home, 5 roaming, 2 searching, 3 denied
        self.operator = "MATTEL"
        self.service_centre = SERVICE_CENTRE
        self.commands: list[str] = []  # every command received, in order
        self.segments: list[Segment] = []  # every SMS-SUBMIT the network accepted
        self.submitted_at: list[float] = []  # time.monotonic() each SMS-SUBMIT arrived
        self._lock = threading.RLock()
        self._pin = pin
        self._sim_locked = pin is not None
        self._echo = self.profile.echo_at_start
        self._pdu_mode = False
        self._new_message_indications = ["0"] * 5  # AT+CNMI parameters
        self._read_storage = self.profile.read_storage_at_start
        self._storages: dict[str, dict[int, _Stored]] = {"SM": {}, "ME": {}}
        self._refusal: str | None = None
        self._refuse_after = 0  # submits accepted before the refusal
        self._submit_fault: str | None = None  # "no prompt", "silent" or "late"
        self._late_seconds = 0.0
        self._backlog: bytearray | None = None  # bytes received while busy with a late send
        self._next_message_reference = 1
        self._next_concat_reference = 0x1F0
        self._input = bytearray()
        # TPDU length announced by AT+CMGS while the PDU is being typed, else None
        self._awaited_tpdu_length: int | None = 0 if stuck_at_prompt else None
        self._master, self._slave = os.openpty()
        tty.setraw(self._slave)
        self.port = os.ttyname(self._slave)
        self._running = True
        self._thread = threading.Thread(target=self._serve, name="fake-modem", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------------ test controls

    def receive(
        self,
        sender: str,
        text: str,
        *,
        timestamp: datetime | None = None,
        only_parts: Collection[int] | None = None,
    ) -> None:
        """The phone receives an SMS: stored in parts, each announced with +CMTI.

        ``only_parts`` (1-based) lets the other parts of a long SMS get lost.
        """
        timestamp = timestamp or datetime.now(UTC).replace(microsecond=0)
        with self._lock:
            storage = self._storages[self.profile.new_sms_storage]
            pdus = self._deliver_pdus(sender, text, timestamp)
            for sequence, (pdu_hex, tpdu_length) in enumerate(pdus, start=1):
                if only_parts is not None and sequence not in only_parts:
                    continue
                index = self._free_index(storage)
                storage[index] = _Stored(0, pdu_hex, tpdu_length)
                if self._new_message_indications[1] == "1":
                    self._write_lines(f'+CMTI: "{self.profile.new_sms_storage}",{index}')

    def refuse_next_send(self, code: str, after: int = 0) -> None:
        """Refuse a send with +CMS ERROR ``code``, once ``after`` more were accepted."""
        with self._lock:
            self._refusal, self._refuse_after = code, after

    def give_no_prompt_next_send(self) -> None:
        """The next AT+CMGS gets no answer at all: nothing reaches the network."""
        with self._lock:
            self._submit_fault = "no prompt"

    def keep_silent_next_send(self) -> None:
        """The network accepts the next SMS, and the modem never says so."""
        with self._lock:
            self._submit_fault = "silent"

    def answer_next_send_late(self, seconds: float) -> None:
        """The network takes ``seconds`` to accept the next SMS; the modem, busy meanwhile,
        answers commands only after it has given the +CMGS result."""
        with self._lock:
            self._submit_fault, self._late_seconds = "late", seconds

    def network_sent(self) -> list[tuple[str, str]]:
        """(to, text) of every SMS that reached the network, parts joined, in order."""
        sent, waiting = [], {}
        with self._lock:
            segments = list(self.segments)
        for segment in segments:
            if not segment.concat:
                sent.append((segment.to, segment.text))
                continue
            reference, total, sequence = segment.concat
            parts = waiting.setdefault((segment.to, reference, total), {})
            parts[sequence] = segment.text
            if len(parts) == total:
                sent.append((segment.to, "".join(parts[i] for i in sorted(parts))))
                del waiting[(segment.to, reference, total)]
        return sent

    def hang(self) -> None:
        """Stop answering anything, the port kept open."""
        with self._lock:
            self._hung = True

    def resume(self) -> None:
        with self._lock:
            self._hung = False

    def wedge(self) -> None:
        """Answer AT, fail every other command (+CME ERROR: 13), until AT+CFUN=1,1."""
        with self._lock:
            self._wedged = True

    def link(self, path: str) -> str:
        """A symlink at ``path`` to the pty, re-pointed on replug (like /dev/serial/by-id)."""
        self._link_path = path
        os.symlink(self.port, path)
        return path

    def unplug(self) -> None:
        """The USB modem is pulled out: the pty closes (reads on it fail with EIO) and the
        symlink goes. The SIM keeps its SMS."""
        self.close()
        self._new_message_indications = ["0"] * 5  # powered off: SMS stored, not announced
        if self._link_path and os.path.lexists(self._link_path):
            os.unlink(self._link_path)

    def replug(self) -> None:
        """Plugged in again: a new pty, the symlink to it, the modem freshly powered on."""
        with self._lock:
            self._power_on()
            self._input.clear()
            self._awaited_tpdu_length = None
            self._backlog = None
            self._master, self._slave = os.openpty()
            tty.setraw(self._slave)
            self.port = os.ttyname(self._slave)
        if self._link_path:
            os.symlink(self.port, self._link_path)
        self._running = True
        self._thread = threading.Thread(target=self._serve, name="fake-modem", daemon=True)
        self._thread.start()

    def _power_on(self) -> None:
        self._sim_locked = self._pin is not None
        self._echo = self.profile.echo_at_start
        self._pdu_mode = False
        self._new_message_indications = ["0"] * 5
        self._read_storage = self.profile.read_storage_at_start
        self._wedged = False

    def _full_reset(self, _parameters: str) -> None:
        self._write_result()
        self._hung = True

        def back() -> None:
            with self._lock:
                self._power_on()
                self._input.clear()
                self._hung = False

        timer = threading.Timer(self.reset_seconds, back)
        timer.daemon = True
        timer.start()

    def stored_count(self) -> int:
        with self._lock:
            return sum(len(storage) for storage in self._storages.values())

    def close(self) -> None:
        if not self._running:
            return
        self._running = False
        self._thread.join(timeout=2)
        os.close(self._master)
        os.close(self._slave)

    # ------------------------------------------------------------------ serving

    def _serve(self) -> None:
        while self._running:
            readable, _, _ = select.select([self._master], [], [], 0.05)
            if not readable:
                continue
            try:
                data = os.read(self._master, 4096)
            except OSError:
                return
            with self._lock:
                for byte in data:
                    self._take_byte(byte)

    def _take_byte(self, byte: int) -> None:
        if self._hung:
            return
        if self._backlog is not None:
            self._backlog.append(byte)
        elif self._awaited_tpdu_length is not None:
            self._take_pdu_byte(byte)
        elif byte == ord("\r"):
            command = self._input.decode("ascii").strip()
            self._input.clear()
            if command:
                self._answer(command)
        elif byte not in (ord("\n"), _ESC):  # ESC outside a prompt is ignored
            self._input.append(byte)

    def _take_pdu_byte(self, byte: int) -> None:
        if byte == _CTRL_Z:
            self._submit(self._input.decode("ascii").strip(), self._awaited_tpdu_length)
        elif byte != _ESC:
            self._input.append(byte)
            return
        self._input.clear()
        self._awaited_tpdu_length = None

    def _answer(self, command: str) -> None:
        self.commands.append(command)
        if self._echo:
            self._write(command + "\r")
        allowed = self.profile.allowed_while_locked
        if (
            self._sim_locked
            and allowed is not None
            and command.upper() not in ("AT", "AT+CPIN?", *allowed)
            and not command.upper().startswith("AT+CPIN=")
        ):
            self._write_result(final="+CME ERROR: 11")
            return
        if self._sim_locked and command.upper().startswith(_SMS_COMMANDS):
            self._write_result(final="+CMS ERROR: 311")
            return
        if self._wedged and command.upper() not in ("AT", "AT+CFUN=1,1"):
            self._write_result(final="+CME ERROR: 13")
            return
        for pattern, handler in self._handlers():
            match = re.fullmatch(pattern, command, re.IGNORECASE)
            if match:
                handler(*match.groups())
                return
        self._write_result(final=self.profile.unsupported_reply)

    def _handlers(self):
        return (
            (r"AT", lambda: self._write_result()),
            (r"ATE([01])", self._set_echo),
            (r"AT\+CMEE=\d", lambda: self._write_result()),
            (r"AT\+CPIN\?", self._sim_state),
            (r'AT\+CPIN="(\w+)"', self._enter_pin),
            (r"AT\+CMGF=([01])", self._set_pdu_mode),
            (r"AT\+CNMI=([\d,]+)", self._set_new_message_indications),
            (r"AT\+CPMS\?", self._storage_state),
            (r'AT\+CPMS="(\w+)"(?:,.*)?', self._select_storage),
            (r"AT\+CMGS=(\d+)", self._start_submit),
            (r"AT\+CMGR=(\d+)", self._read_message),
            (r"AT\+CMGD=(\d+)(?:,0)?", self._delete_message),
            (r"AT\+CMGL=4", self._list_messages),
            (r"AT\+CSQ", self._signal_quality),
            (r"AT\+CBC", self._battery),
            (r"AT\+CFUN=(1,1)", self._full_reset),
            (r"AT\+CREG\?", lambda: self._write_result(f"+CREG: 0,{self.registration}")),
            (r"AT\+COPS\?", lambda: self._write_result(f'+COPS: 0,0,"{self.operator}"')),
            (r"AT\+CSCA\?", lambda: self._write_result(f'+CSCA: "{self.service_centre}",145')),
        )

    def _set_echo(self, flag: str) -> None:
        self._echo = flag == "1"
        self._write_result()

    def _sim_state(self) -> None:
        state = "+CPIN: SIM PIN" if self._sim_locked else "+CPIN: READY"
        if not self.profile.cpin_ok:
            self._write(f"\r\n{state}\r\n")
            return
        self._write_result(state)

    def _enter_pin(self, pin: str) -> None:
        if pin != self._pin:
            self._write_result(final="+CME ERROR: 16")
            return
        self._sim_locked = False
        self._write_result()

    def _set_pdu_mode(self, mode: str) -> None:
        self._pdu_mode = mode == "0"
        self._write_result()

    def _set_new_message_indications(self, parameters: str) -> None:
        values = parameters.split(",")
        self._new_message_indications = values + ["0"] * (5 - len(values))
        self._write_result()

    def _storage_state(self) -> None:
        read, new = self._read_storage, self.profile.new_sms_storage
        self._write_result(
            f'+CPMS: "{read}",{self._used(read)},{_STORAGE_SIZE},'
            f'"{read}",{self._used(read)},{_STORAGE_SIZE},'
            f'"{new}",{self._used(new)},{_STORAGE_SIZE}'
        )

    def _select_storage(self, storage: str) -> None:
        if storage not in self._storages:
            self._write_result(final="+CMS ERROR: 302")
            return
        self._read_storage = storage
        used = self._used(storage)
        self._write_result(
            f"+CPMS: {used},{_STORAGE_SIZE},{used},{_STORAGE_SIZE},{used},{_STORAGE_SIZE}"
        )

    def _start_submit(self, tpdu_length: str) -> None:
        if not self._pdu_mode:
            self._write_result(final="+CMS ERROR: 302")
            return
        if self._submit_fault == "no prompt":
            self._submit_fault = None
            return
        self._awaited_tpdu_length = int(tpdu_length)
        self._write("\r\n> ")

    def _submit(self, pdu_hex: str, tpdu_length: int) -> None:
        if self._refusal is not None and self._refuse_after == 0:
            code, self._refusal = self._refusal, None
            self._write_result(final=f"+CMS ERROR: {code}")
            return
        self._refuse_after = max(0, self._refuse_after - 1)
        try:
            to, text, concat, report_requested = _read_submit(bytes.fromhex(pdu_hex), tpdu_length)
        except (ValueError, IndexError):
            self._write_result(final="+CMS ERROR: 304")
            return
        reference = self._next_message_reference
        self._next_message_reference = reference % 255 + 1
        self.segments.append(Segment(to, text, concat, report_requested, reference))
        self.submitted_at.append(time.monotonic())
        fault, self._submit_fault = self._submit_fault, None
        if fault is None and self.send_seconds:
            fault, self._late_seconds = "late", self.send_seconds
        if fault == "silent":
            return
        if fault == "late":
            self._backlog = bytearray()
            timer = threading.Timer(self._late_seconds, self._answer_late, (reference, to))
            timer.daemon = True
            timer.start()
            return
        self._answer_submit(reference, to, report_requested)

    def _answer_late(self, reference: int, to: str) -> None:
        with self._lock:
            self._answer_submit(reference, to, self.segments[-1].status_report_requested)
            backlog, self._backlog = self._backlog or b"", None
            for byte in backlog:
                self._take_byte(byte)

    def _answer_submit(self, reference: int, to: str, report_requested: bool) -> None:
        self._write_lines(*self.profile.noise)
        self._write_result(f"+CMGS: {reference}")
        if report_requested and self._new_message_indications[3] == "1":
            self._write_status_report(reference, to)

    def _write_status_report(self, reference: int, recipient: str) -> None:
        now = _timestamp(datetime.now(UTC))
        tpdu = bytes([0x06, reference]) + _address(recipient) + now + now + bytes([0x00])
        smsc = _service_centre_field() if self.profile.smsc_in_status_report else b""
        self._write_lines(f"+CDS: {len(tpdu)}", (smsc + tpdu).hex().upper())

    def _read_message(self, index: str) -> None:
        stored = self._storages[self._read_storage].get(int(index))
        if stored is None:
            self._write_result(final="+CMS ERROR: 321")
            return
        self._write_result(f"+CMGR: {stored.status},,{stored.tpdu_length}", stored.pdu_hex)
        stored.status = 1

    def _delete_message(self, index: str) -> None:
        self._storages[self._read_storage].pop(int(index), None)
        self._write_result()

    def _list_messages(self) -> None:
        lines = []
        for index, stored in sorted(self._storages[self._read_storage].items()):
            lines += [f"+CMGL: {index},{stored.status},,{stored.tpdu_length}", stored.pdu_hex]
            stored.status = 1
        self._write_result(*lines)

    def _signal_quality(self) -> None:
        self._write_lines(*self.profile.noise)
        self._write_result(f"+CSQ: {self.rssi},99")

    def _battery(self) -> None:
        if self.profile.battery_percent is None:
            self._write_result(final=self.profile.unsupported_reply)
        else:
            self._write_result(f"+CBC: 0,{self.profile.battery_percent},4012")

    def _used(self, storage: str) -> int:
        return len(self._storages[storage])

    def _free_index(self, storage: dict) -> int:
        index = self.profile.first_index
        while index in storage:
            index += 1
        return index

    # ------------------------------------------------------------------ inbound PDUs

    def _deliver_pdus(self, sender: str, text: str, timestamp: datetime) -> list:
        encoding, parts = split(text)
        reference = self._next_concat_reference
        self._next_concat_reference += 1
        return [
            self._deliver_pdu(
                sender,
                encoding,
                part,
                self._concat_header(reference, len(parts), sequence),
                timestamp,
            )
            for sequence, part in enumerate(parts, start=1)
        ]

    def _concat_header(self, reference: int, total: int, sequence: int) -> bytes:
        if total == 1:
            return b""
        if self.profile.concat_16bit:
            return bytes([6, 0x08, 4, reference >> 8, reference & 0xFF, total, sequence])
        return bytes([5, 0x00, 3, reference & 0xFF, total, sequence])

    @staticmethod
    def _deliver_pdu(
        sender: str, encoding: str, text: str, header: bytes, timestamp: datetime
    ) -> tuple[str, int]:
        if encoding == UCS2:
            data_coding, user_data = 0x08, header + text.encode("utf-16-be")
            user_data_length = len(user_data)
        else:
            data_coding = 0x00
            bits = _bits(header, 8)
            while len(bits) % 7:  # fill bits: text starts on a septet boundary
                bits.append(0)
            septets = gsm7_encode(text)
            user_data_length = len(bits) // 7 + len(septets)
            user_data = _octets(bits + _bits(septets, 7))
        first_octet = 0x04 | (0x40 if header else 0)  # SMS-DELIVER, no more messages, UDHI
        tpdu = (
            bytes([first_octet])
            + _address(sender)
            + bytes([0x00, data_coding])
            + _timestamp(timestamp)
            + bytes([user_data_length])
            + user_data
        )
        return (_service_centre_field() + tpdu).hex().upper(), len(tpdu)

    # ------------------------------------------------------------------ writing

    def _write_result(self, *lines: str, final: str = "OK") -> None:
        self._write_lines(*lines, final)

    def _write_lines(self, *lines: str) -> None:
        self._write("".join(f"\r\n{line}\r\n" for line in lines))

    def _write(self, text: str) -> None:
        data = text.encode("ascii")
        with self._lock:
            while data:
                _, writable, _ = select.select([], [self._master], [], 1.0)
                if not writable:
                    return  # nobody reads the port: drop, like a modem would
                data = data[os.write(self._master, data) :]


# ---------------------------------------------------------------------- PDU pieces


def _read_submit(pdu: bytes, announced_tpdu_length: int) -> tuple:
    """(to, text, concat, status report requested) of an SMS-SUBMIT; ValueError if bad."""
    tpdu = pdu[1 + pdu[0] :]
    if len(tpdu) != announced_tpdu_length:
        raise ValueError("AT+CMGS announced another length")
    first_octet = tpdu[0]
    if first_octet & 0x03 != 0x01:
        raise ValueError("not an SMS-SUBMIT")
    digit_count, address_type = tpdu[2], tpdu[3]
    address_end = 4 + (digit_count + 1) // 2
    digits = "".join(f"{octet & 0x0F:X}{octet >> 4:X}" for octet in tpdu[4:address_end])
    to = ("+" if address_type == 0x91 else "") + digits[:digit_count]
    data_coding = tpdu[address_end + 1]
    validity_length = {0: 0, 2: 1}.get((first_octet >> 3) & 0x03, 7)
    length_position = address_end + 2 + validity_length
    user_data_length, user_data = tpdu[length_position], tpdu[length_position + 1 :]
    header = user_data[: user_data[0] + 1] if first_octet & 0x40 else b""
    if data_coding == 0x08:
        if len(user_data) != user_data_length:
            raise ValueError("TP-UDL does not match the user data")
        text = user_data[len(header) :].decode("utf-16-be")
    elif data_coding == 0x00:
        if len(user_data) != (user_data_length * 7 + 7) // 8:
            raise ValueError("TP-UDL does not match the user data")
        bits = _bits(user_data, 8)
        start = -(-len(header) * 8 // 7) * 7  # first septet boundary after the header
        text = gsm7_decode(
            [sum(bits[p + i] << i for i in range(7)) for p in range(start, user_data_length * 7, 7)]
        )
    else:
        raise ValueError(f"unexpected TP-DCS {data_coding:#x}")
    return to, text, _concat(header), bool(first_octet & 0x20)


def _concat(header: bytes) -> tuple | None:
    position = 1
    while position < len(header):
        identifier, length = header[position], header[position + 1]
        value = header[position + 2 : position + 2 + length]
        if identifier == 0x00:
            return value[0], value[1], value[2]
        if identifier == 0x08:
            return value[0] << 8 | value[1], value[2], value[3]
        position += 2 + length
    return None


def _address(number: str) -> bytes:
    if re.fullmatch(r"\+?\d+", number):
        digits = number.lstrip("+")
        address_type = 0x91 if number.startswith("+") else 0x81
        return bytes([len(digits), address_type]) + _semi_octets(digits)
    septets = gsm7_encode(number)  # alphanumeric sender
    useful_semi_octets = -(-len(septets) * 7 // 4)
    return bytes([useful_semi_octets, 0xD0]) + _octets(_bits(septets, 7))


def _service_centre_field() -> bytes:
    digits = _semi_octets(SERVICE_CENTRE.lstrip("+"))
    return bytes([1 + len(digits), 0x91]) + digits


def _semi_octets(digits: str) -> bytes:
    if len(digits) % 2:
        digits += "F"
    return bytes(int(digits[i + 1] + digits[i], 16) for i in range(0, len(digits), 2))


def _timestamp(moment: datetime) -> bytes:
    fields = [
        moment.year % 100,
        moment.month,
        moment.day,
        moment.hour,
        moment.minute,
        moment.second,
    ]
    quarters = int(moment.utcoffset().total_seconds()) // 900
    zone = _swap(abs(quarters)) | (0x08 if quarters < 0 else 0)
    return bytes(_swap(value) for value in fields) + bytes([zone])


def _swap(value: int) -> int:
    """Two decimal digits as swapped semi-octets: 42 -> 0x24."""
    return (value % 10) << 4 | value // 10


def _bits(values, width: int) -> list[int]:
    return [(value >> i) & 1 for value in values for i in range(width)]


def _octets(bits: list[int]) -> bytes:
    bits = bits + [0] * (-len(bits) % 8)
    return bytes(sum(bits[p + i] << i for i in range(8)) for p in range(0, len(bits), 8))
