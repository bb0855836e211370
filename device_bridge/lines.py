"""A bridge's SIM lines and the ports (drivers) they send through.

A port is one driver (a modem, a phone) with a thread of its own: every call to the driver
(send, poll, acknowledge, info, recover) is made on it, so ports work in parallel and a
port that hangs or fails holds up only its lines. The claim of an SMS (a round trip to the
API) is made on the port's thread too, just before its send: lines claim in parallel, and a
slow API delays each line by one round trip, not by one per line. What a port learns (an
SMS sent, refused or not claimed, received SMS and delivery reports) goes back to the
bridge's main thread through ``done``.

A line is what the API knows as a line of the device: a slot, a number, a pace and a SIM
guard. A bank has one port per line; a dual-SIM phone is one port with two lines.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from chalicelib.wire import protocol

from .config import BridgeConfig
from .drivers.base import DeviceInfo, Driver, DriverError, InboundSms, OutboundSms, SendError
from .guard import Hold, SimGuard

log = logging.getLogger("chinqit.bridge")

_STOP = object()


class TokenBucket:
    """Send pacing: ``burst`` sends back to back, then one every 60/per_minute seconds."""

    def __init__(self, per_minute: float, burst: int, clock: Callable[[], float]):
        self.interval = 60.0 / per_minute
        self.burst = burst
        self.clock = clock
        self.tokens = float(burst)
        self.updated = clock()

    def delay(self) -> float:
        """Seconds until a send is allowed (0 when one is allowed now)."""
        self._refill()
        return max(0.0, (1 - self.tokens) * self.interval)

    def take(self) -> None:
        self._refill()
        self.tokens -= 1

    def give_back(self) -> None:
        """A send taken but never made (its claim was refused): the pace is as before."""
        self._refill()
        self.tokens = min(self.burst, self.tokens + 1)

    def _refill(self) -> None:
        now = self.clock()
        self.tokens = min(self.burst, self.tokens + (now - self.updated) / self.interval)
        self.updated = now


class Backoff:
    """Pauses after consecutive failures: 1 s, 2 s, 4 s ... up to ``maximum``. Failures
    during a pause count once (ports and outbox threads fail together when the API does);
    safe from several threads."""

    def __init__(self, maximum: float, clock: Callable[[], float]):
        self.maximum = maximum
        self.clock = clock
        self.failures = 0
        self.retry_at = float("-inf")
        self._lock = threading.Lock()

    def ready(self) -> bool:
        return self.clock() >= self.retry_at

    def failed(self) -> float:
        """Count a failure; returns the pause before the next try."""
        with self._lock:
            now = self.clock()
            if now < self.retry_at:
                return self.retry_at - now
            pause = min(self.maximum, 2.0**self.failures)
            self.failures += 1
            self.retry_at = now + pause
            return pause

    def succeeded(self) -> None:
        with self._lock:
            self.failures = 0
            self.retry_at = float("-inf")


@dataclass(frozen=True)
class Sent:
    job: Any
    line: Line
    result: Any  # the driver's SendResult


@dataclass(frozen=True)
class Refused:
    job: Any
    line: Line
    error: Exception  # SendError or DriverError


@dataclass(frozen=True)
class NotClaimed:
    """The API did not grant the claim: the SMS did not go to the driver."""

    job: Any
    line: Line
    answer: Any  # what Agent._claim answered


@dataclass(frozen=True)
class PhoneEvents:
    port: Port
    events: list


@dataclass(eq=False)
class Line:
    """One SIM line: the port it sends through, the SIM the driver knows it as, its pace
    and its guard. ``reported`` is None for a device whose lines are not configured."""

    slot: int | None
    reported: protocol.Line | None
    port: Port
    driver_slot: int | None
    settings: BridgeConfig
    bucket: TokenBucket
    guard: SimGuard

    def hold(self) -> Hold | None:
        """Why the line takes no SMS now, port trouble first."""
        if self.port.down is not None:
            return Hold("down", self.port.down, None)
        return self.guard.hold()

    def idle(self) -> bool:
        return not self.port.busy and self.port.down is None

    def heartbeat_line(self) -> protocol.Line | None:
        if self.reported is None:
            return None
        hold = self.hold()
        signal = self.port.info.signal_percent if len(self.port.lines) == 1 else None
        return protocol.Line(
            self.reported.slot,
            self.reported.number,
            self.reported.operator,
            signal_percent=signal,
            state="active" if hold is None else hold.state,
            state_reason=None if hold is None else hold.reason[: protocol.LINE_REASON_LIMIT],
            resumes_at=None
            if hold is None or hold.until is None
            else datetime.fromtimestamp(hold.until, UTC),
        )


class Port:
    """One driver and the thread that calls it."""

    def __init__(
        self,
        name: str,
        driver: Driver,
        done: Callable[[object], None],
        claim: Callable[[Any, Line], OutboundSms | None],
        config: BridgeConfig,
        stopping: threading.Event,
    ):
        """``claim(job, line)``, called on the port's thread before each send: the SMS to
        send, or None when it must not go (``claim`` has reported why through ``done``)."""
        self.name = name
        self.driver = driver
        self.lines: list[Line] = []
        self.busy = False  # an SMS handed to it and not reported back yet (main thread)
        self.down: str | None = None  # why the driver cannot be reached; None: up
        self.info = DeviceInfo()
        self._done = done
        self._claim = claim
        self._config = config
        self._stopping = stopping
        self._tasks: queue.SimpleQueue = queue.SimpleQueue()
        self._recovery = Backoff(config.backoff_max, time.monotonic)
        self._thread = threading.Thread(target=self._run, name=f"port-{name}", daemon=True)

    def open(self, strict: bool) -> None:
        """Open the driver (on the caller's thread, before ``start``). ``strict``: a
        failure is raised; else the port starts down and keeps trying to recover."""
        try:
            self.driver.open()
            self.info = self.driver.info()
        except DriverError as error:
            if strict:
                raise
            self._went_down(error)

    def start(self) -> None:
        self._thread.start()

    def send(self, job, line: Line) -> None:
        """Claim ``job`` and send it through ``line`` (on the port's thread)."""
        self.busy = True
        self._tasks.put(("send", job, line))

    def acknowledge(self, sms: InboundSms) -> None:
        self._tasks.put(("acknowledge", sms))

    def stop(self) -> None:
        """Let the SMS being sent finish, then end the thread and close the driver."""
        self._tasks.put(_STOP)
        if self._thread.is_alive():
            self._thread.join()
        self.driver.close()

    # ------------------------------------------------------------------ on the port's thread

    def _run(self) -> None:
        interval = self._config.poll_interval
        next_poll = next_info = time.monotonic()
        while True:
            try:
                task = self._tasks.get(timeout=max(0.0, next_poll - time.monotonic()))
            except queue.Empty:
                task = None
            if task is _STOP:
                return
            try:
                if task is not None:
                    self._do(task)
                if self.down is not None:
                    self._recover_if_due()
                    next_poll = time.monotonic() + interval
                    continue
                now = time.monotonic()
                if now >= next_poll:
                    next_poll = now + interval
                    events = self.driver.poll()
                    if events:
                        self._done(PhoneEvents(self, events))
                if now >= next_info:
                    next_info = now + self._config.heartbeat_interval / 2
                    self.info = self.driver.info()
            except DriverError as error:
                self._went_down(error)
            except Exception:  # noqa: BLE001 - a driver bug must not end the port's thread
                log.exception("port %s: the driver failed unexpectedly; going on", self.name)
                self._stopping.wait(1.0)

    def _do(self, task: tuple) -> None:
        if task[0] == "acknowledge":
            if self.down is None:  # else kept on the phone, read again after recovery
                self.driver.acknowledge(task[1])
            return
        _, job, line = task
        if self.down is not None:
            self._done(Refused(job, line, DriverError(self.down)))
            return
        sms = self._claim(job, line)
        if sms is None:
            return
        try:
            result = self.driver.send(sms)
        except (SendError, DriverError) as error:
            self._done(Refused(job, line, error))
            if isinstance(error, DriverError):
                raise
            return
        except Exception as error:  # noqa: BLE001 - a driver bug: settled, never retried
            log.exception("message %s: the driver failed unexpectedly", sms.message_id)
            reason = f"driver error: {type(error).__name__}: {error}"[:300]
            self._done(Refused(job, line, SendError(reason, retryable=False)))
            return
        self._done(Sent(job, line, result))

    def _went_down(self, error: Exception) -> None:
        if self.down is None:
            log.warning("port %s: the phone cannot be reached (%s)", self.name, error)
        self.down = str(error)[: protocol.LINE_REASON_LIMIT] or type(error).__name__
        if self._recovery.ready():
            self._recovery.failed()

    def _recover_if_due(self) -> None:
        if not self._recovery.ready():
            return
        try:
            self.driver.recover()
            self.info = self.driver.info()
        except DriverError as error:
            pause = self._recovery.failed()
            self.down = str(error)[: protocol.LINE_REASON_LIMIT] or type(error).__name__
            log.warning(
                "port %s: still unreachable (%s); next try in %.0f s", self.name, error, pause
            )
            return
        self._recovery.succeeded()
        self.down = None
        log.info("port %s: the phone answers again", self.name)
