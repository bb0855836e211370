"""Line framing on a modem's serial port: commands out, responses and URCs in.

A reader thread splits what the modem writes into lines. Lines answering the command in
progress go to that command; unsolicited result codes (URCs: +CMTI, +CDS and its PDU line,
RING, ^RSSI ...) go to a callback, called on the reader thread. This module knows how AT
responses are framed, not what the commands mean.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable

import serial

log = logging.getLogger(__name__)

_CTRL_Z = b"\x1a"
_ANSWER_GRACE = 0.3  # seconds a final result may follow a line that answers on its own
# The reader waits this long for a byte before it looks whether the link is closing (close()
# also cancels its wait). Short waits cost: 16 idle lines waking 20 times a second each took
# the bridge's GIL 320 times a second, in the way of the lines that send.
_READ_WAKE = 1.0
_ESC = b"\x1b"
_FINAL_RESULTS = ("OK", "ERROR", "+CMS ERROR:", "+CME ERROR:", "NO CARRIER", "COMMAND NOT SUPPORT")
_URC_PREFIXES = (
    "+CMTI:",
    "+CDSI:",
    "+CMT:",
    "+CDS:",
    "+CBM:",
    "RING",
    "+CRING:",
    "+CLIP:",
    "+CUSD:",
    "+CPIN:",
    "+CREG:",
    "+CGREG:",
    "+CEREG:",
    "+CFUN:",
    "+QIND:",
    "+QUSIM:",
    "^",
    "Call Ready",
    "SMS Ready",
    "RDY",
    "NORMAL POWER DOWN",
    "UNDER-VOLTAGE",
    "OVER-VOLTAGE",
)
# URCs whose PDU (or text) comes on the next line
_TWO_LINE_URCS = ("+CMT:", "+CDS:", "+CBM:")

UnsolicitedHandler = Callable[[list], None]


class LinkError(Exception):
    """The serial port failed or is closed."""


class LinkTimeout(LinkError):
    """The modem did not finish answering in time."""


class PayloadUnconfirmed(LinkError):
    """The payload of a prompted command went out, and then the modem gave no final result
    (in time, or at all: the link failed): the command may have taken effect."""


class _Exchange:
    """One command waiting for its response."""

    def __init__(self, command: str, answered_by: str | None = None):
        self.command = command
        # a line starting with this answers the command even when no final result follows
        # (the Wavecom Multiband 900E ends "+CPIN: READY" with no OK)
        self.answered_by = answered_by
        self.answered = False
        # "AT+CPIN?" is answered by "+CPIN: ...", which is otherwise a URC
        match = re.match(r"AT([+^][A-Z0-9]+)", command.upper())
        self.response_prefix = match.group(1) + ":" if match else None
        self.lines: list[str] = []
        self.prompted = False
        self.finished = False

    def owns(self, line: str) -> bool:
        return self.response_prefix is not None and line.startswith(self.response_prefix)


class SerialLink:
    def __init__(self, port: str, baudrate: int, on_unsolicited: UnsolicitedHandler):
        self._port_name = port
        self._baudrate = baudrate
        self._on_unsolicited = on_unsolicited
        self._port: serial.Serial | None = None
        self._reader: threading.Thread | None = None
        self._running = False
        self._failure: str | None = None
        self._state = threading.Condition()  # guards _exchange and _failure
        self._exchange: _Exchange | None = None
        self._one_command_at_a_time = threading.Lock()
        self._unfinished_urc: str | None = None  # first line of a two-line URC

    def open(self) -> None:
        """Open the port; raises serial.SerialException when it cannot."""
        # exclusive: a second process on the same modem would garble both
        self._port = serial.Serial(
            self._port_name, self._baudrate, timeout=_READ_WAKE, exclusive=True
        )
        self._failure = None
        self._running = True
        self._reader = threading.Thread(
            target=self._read_forever, name=f"serial-link {self._port_name}", daemon=True
        )
        self._reader.start()

    def close(self) -> None:
        self._running = False
        if self._port:
            self._port.cancel_read()  # the reader's wait ends now, not at its timeout
        if self._reader:
            self._reader.join(timeout=2)
        if self._port:
            self._port.close()
        self._fail("link closed")

    def command(self, line: str, timeout: float, answered_by: str | None = None) -> list[str]:
        """Send ``line`` and return the lines answering it, the final result code last.

        With ``answered_by``, a line starting with it also ends the exchange, after a short
        grace for the final result that most modems do send (so that a late OK does not
        answer the next command); the lines then end with that line.
        """
        with self._one_command_at_a_time:
            exchange = self._start(line, answered_by)
            self._wait(exchange, lambda: exchange.finished or exchange.answered, timeout)
            if not exchange.finished:
                with self._state:
                    self._state.wait_for(lambda: exchange.finished, _ANSWER_GRACE)
                    if self._exchange is exchange:
                        self._exchange = None
            return exchange.lines

    def command_with_prompt(self, line: str, payload: str, timeout: float) -> list[str]:
        """Send ``line``, then at the "> " prompt ``payload`` and Ctrl-Z (as AT+CMGS wants).

        When the modem answers with a final result instead of the prompt, the payload is
        not sent and that answer is returned. LinkTimeout: no prompt, nothing was sent;
        PayloadUnconfirmed: the payload was sent and its result never came.
        """
        with self._one_command_at_a_time:
            exchange = self._start(line)
            try:
                self._wait(exchange, lambda: exchange.prompted or exchange.finished, timeout)
            except LinkTimeout:
                self.abort_prompt()  # or the modem takes the next command for the PDU
                raise
            if not exchange.finished:
                self._write(payload.encode("ascii") + _CTRL_Z)
                try:
                    self._wait(exchange, lambda: exchange.finished, timeout)
                except LinkError as error:
                    raise PayloadUnconfirmed(str(error)) from error
            return exchange.lines

    def abort_prompt(self) -> None:
        """Leave a "> " prompt that an interrupted send may have left the modem in."""
        self._write(_ESC)

    def _start(self, line: str, answered_by: str | None = None) -> _Exchange:
        exchange = _Exchange(line, answered_by)
        with self._state:
            if self._failure:
                raise LinkError(self._failure)
            self._exchange = exchange
        self._write(line.encode("ascii") + b"\r")
        return exchange

    def _wait(self, exchange: _Exchange, condition, timeout: float) -> None:
        with self._state:
            self._state.wait_for(lambda: condition() or self._failure, timeout)
            if condition():
                return
            if self._exchange is exchange:
                self._exchange = None  # what comes late must not answer the next command
            if self._failure:
                raise LinkError(self._failure)
            raise LinkTimeout(f"{exchange.command} got no answer within {timeout:g} s")

    def _write(self, data: bytes) -> None:
        port = self._opened()
        try:
            port.write(data)
        except (serial.SerialException, OSError) as error:
            self._fail(f"cannot write to {self._port_name}: {error}")
            raise LinkError(self._failure) from error

    def _opened(self) -> serial.Serial:
        if self._port is None:
            raise LinkError(f"{self._port_name} is not open")
        return self._port

    def _fail(self, reason: str) -> None:
        with self._state:
            self._failure = self._failure or reason
            self._state.notify_all()

    # ------------------------------------------------------------------- reader thread

    def _read_forever(self) -> None:
        port = self._opened()
        pending = b""
        while self._running:
            try:
                pending += port.read(port.in_waiting or 1)
            except (serial.SerialException, OSError) as error:
                if self._running:
                    log.error("reading %s failed: %s", self._port_name, error)
                    self._fail(f"cannot read from {self._port_name}: {error}")
                return
            *lines, pending = pending.replace(b"\r", b"\n").split(b"\n")
            for line in lines:
                if line.strip():
                    self._dispatch(line.decode("ascii", "replace").strip())
            if pending.strip() == b">":  # the prompt of AT+CMGS ends no line
                pending = self._take_prompt(pending)

    def _take_prompt(self, pending: bytes) -> bytes:
        with self._state:
            if not self._exchange:
                return pending
            self._exchange.prompted = True
            self._state.notify_all()
        return b""

    def _dispatch(self, line: str) -> None:
        if self._unfinished_urc is not None:
            first, self._unfinished_urc = self._unfinished_urc, None
            self._deliver_unsolicited([first, line])
            return
        with self._state:
            exchange = self._exchange
            if exchange and (exchange.owns(line) or not line.startswith(_URC_PREFIXES)):
                exchange.lines.append(line)
                if exchange.answered_by and line.startswith(exchange.answered_by):
                    exchange.answered = True
                if line.startswith(_FINAL_RESULTS):
                    exchange.finished = True
                    self._exchange = None
                self._state.notify_all()
                return
        if line.startswith(_TWO_LINE_URCS):
            self._unfinished_urc = line
        else:
            self._deliver_unsolicited([line])

    def _deliver_unsolicited(self, lines: list) -> None:
        try:
            self._on_unsolicited(lines)
        except Exception:  # a handler bug must not stop the reader
            log.exception("unsolicited %r could not be handled", lines)
