"""The small interface every phone driver implements.

A driver owns one phone or modem. The bridge calls ``send`` for each outbound SMS and
``poll`` a few times a second to collect what the phone received (inbound SMS and
delivery reports), and ``acknowledge`` each received SMS once its journal has it. Drivers never talk to SQS or the API; the bridge does.

When ``send``, ``poll``, ``acknowledge`` or ``info`` raise DriverError the phone stopped
answering: the bridge calls ``recover`` with a backoff until it returns, and the line
resumes. Its default closes and opens the driver again.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from datetime import datetime
from typing import ClassVar


@dataclass(frozen=True)
class OutboundSms:
    """One SMS to hand to the phone network."""

    message_id: str
    to: str  # E.164, e.g. +22238089336
    text: str
    sim_slot: int | None = None  # the SIM it must leave from, 1 first; None: the driver's choice


@dataclass(frozen=True)
class SendResult:
    """What the phone network answered for a submitted SMS."""

    segments: int = 1
    # Network references (one per segment) that later delivery reports name; empty when
    # the driver gets no delivery reports.
    references: tuple = ()


@dataclass(frozen=True)
class InboundSms:
    """An SMS the phone received, reassembled when it came in several parts."""

    sender: str
    text: str
    received_at: datetime  # timezone-aware
    # Stable id on the device, so the API can deduplicate a repost of the same SMS.
    device_ref: str
    sim_slot: int | None = None  # the SIM it arrived on, 1 first; None: the phone does not tell


@dataclass(frozen=True)
class DeliveryReport:
    """Status report from the network for a segment sent earlier."""

    reference: str
    delivered: bool
    detail: str = ""


@dataclass(frozen=True)
class DeviceInfo:
    """What the driver knows about the phone; None where it cannot tell."""

    signal_percent: int | None = None
    battery_percent: int | None = None
    extra: dict = field(default_factory=dict)


Event = InboundSms | DeliveryReport


class SendError(Exception):
    """The phone or network refused an SMS."""

    def __init__(
        self,
        reason: str,
        code: str | None = None,
        retryable: bool = True,
        pause_line: bool = False,
    ):
        super().__init__(reason if code is None else f"{reason} (code {code})")
        self.reason = reason
        self.code = code
        self.retryable = retryable
        # The network refused because of a limit or a bar on the SIM (e.g. +CMS ERROR 8,
        # Android's RESULT_ERROR_LIMIT_EXCEEDED): the bridge pauses the line, and the SMS
        # goes by another line or later.
        self.pause_line = pause_line


class DriverError(Exception):
    """The driver cannot reach or set up its phone or modem."""


class Driver(abc.ABC):
    """Base class of the drivers in this package; one module per driver."""

    name: ClassVar[str]

    def open(self) -> None:  # noqa: B027 (optional hook: drivers without setup keep it)
        """Connect to the phone or modem; called once before any other call."""

    @abc.abstractmethod
    def send(self, sms: OutboundSms) -> SendResult:
        """Submit one SMS to the network; raise SendError when it is refused."""

    @abc.abstractmethod
    def poll(self) -> list:
        """Return the InboundSms and DeliveryReport events received since the last call.

        Never blocks for long: the bridge calls it between sends.
        """

    def acknowledge(self, sms: InboundSms) -> None:  # noqa: B027 (optional hook)
        """The bridge has ``sms`` in its journal: the phone may forget it (a modem deletes it
        from the SIM). Until then a restart may pass it on again, with the same device_ref.
        Raises DriverError when the phone cannot be reached."""

    def info(self) -> DeviceInfo:
        """Signal and battery, where the driver can read them."""
        return DeviceInfo()

    def sim_slots(self) -> tuple[int, ...]:
        """The SIM lines this phone sends from, 1 first: what ``OutboundSms.sim_slot`` may
        name and the lines the bridge reports. A dual-SIM phone answers ``(1, 2)``."""
        return (1,)

    def recover(self) -> None:
        """The phone stopped answering (a call raised DriverError): get it back, e.g. after
        a USB modem was unplugged and plugged in again. The bridge calls it with growing
        pauses until it returns; raises DriverError while the phone cannot be reached."""
        self.close()
        self.open()

    def check(self) -> DeviceInfo:
        """Reach the phone as ``chinqit-bridge doctor`` does, instead of ``open``: its info,
        or DriverError saying what is wrong. Opens and closes it; a driver whose ``open``
        changes something on the phone or the host overrides this with reads only."""
        self.open()
        try:
            return self.info()
        finally:
            self.close()

    def close(self) -> None:  # noqa: B027 (optional hook)
        """Release the phone or modem."""
