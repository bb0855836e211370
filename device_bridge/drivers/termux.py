"""An Android phone running Termux with the Termux:API add-on.

Phone setup:
- Install Termux and Termux:API from the same source (F-Droid or GitHub; the Google Play
  builds may not send or read SMS), then ``pkg install termux-api`` in Termux, and grant
  Termux:API the SMS and phone permissions.
- Android's battery optimisation stops background apps: set Termux *and* Termux:API to
  "Unrestricted" (Settings → Apps → … → Battery) and run ``termux-wake-lock``, or sends
  and inbox reads hang while the screen is off. A termux-api command that does not answer
  within ``command_timeout`` raises DriverError saying so.

Sending runs ``termux-sms-send -n <number> [-s <slot>]`` with the text on stdin: given as
an argument, the text would go through ``echo`` in the script, which mangles backslashes
and a leading "-". Termux:API trims spaces and newlines around the text either way.

Dual SIM: set ``sims = 2``; an SMS for line 2 goes out with ``-s 1`` (Termux:API counts
slots from 0 and silently uses the default SIM for a slot it cannot find). termux-sms-list
prints no subscription id, so received SMS carry no sim_slot.

Receiving polls ``termux-sms-list -t inbox``. The state file remembers the highest inbox
``_id`` handed to the bridge, so a restart delivers what arrived while the bridge was down
without replaying older history; on the very first run the current inbox is the baseline
and is not delivered. The state file moves forward at the next poll (or at close), once
the bridge has had the events, so a crash replays the last batch rather than losing it;
the API deduplicates by ``device_ref``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from chalicelib.wire.sms_encoding import analyze

from .base import DeviceInfo, Driver, DriverError, InboundSms, OutboundSms, SendError, SendResult

log = logging.getLogger(__name__)

SEND_COMMAND = "termux-sms-send"
LIST_COMMAND = "termux-sms-list"
BATTERY_COMMAND = "termux-battery-status"
CELL_INFO_COMMAND = "termux-telephony-cellinfo"  # optional: signal is None without it
REQUIRED_COMMANDS = (SEND_COMMAND, LIST_COMMAND, BATTERY_COMMAND)

INSTALL_HINT = "install the Termux:API app and run `pkg install termux-api` in Termux"
UNRESPONSIVE_HINT = (
    "is the Termux:API app installed and allowed to run in the background? Set Termux and "
    "Termux:API to 'Unrestricted' in Android's battery settings and run termux-wake-lock"
)
# Termux:API writes dates with SimpleDateFormat: "yyyy-MM-dd HH:mm:ss" today, and
# "yyyy-MM-dd kk:mm" (no seconds, midnight written as hour 24) in old versions.
RECEIVED_FORMATS = ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M")
CELL_LEVELS = 4  # Android signal levels run 0 (none) to 4 (great)


def _default_state_file() -> Path:
    state_home = os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state"
    return Path(state_home) / "chinqit-smsgw" / "termux-inbox.json"


@dataclass
class Options:
    # SIM slot to send from (0 = first SIM); None lets Android use its default SMS SIM
    sim_slot: int | None = None
    # SIM lines of the phone (2 on a dual-SIM phone): each is a line of the device, and an
    # SMS asking for slot N leaves from SIM N (termux-sms-send -s N-1)
    sims: int = 1
    # seconds between two reads of the phone's inbox (each read runs termux-sms-list)
    poll_interval: float = 5.0
    # SMS per termux-sms-list call; after a long downtime older pages are read too
    list_limit: int = 50
    # JSON file remembering the newest inbox SMS handed to the bridge, across restarts
    state_file: Path = field(default_factory=_default_state_file)
    # seconds a termux-api command may take before Termux:API counts as unreachable
    command_timeout: float = 30.0

    def __post_init__(self):
        self.state_file = Path(self.state_file)
        self.poll_interval = float(self.poll_interval)
        self.list_limit = int(self.list_limit)
        self.command_timeout = float(self.command_timeout)
        self.sims = int(self.sims)
        if self.list_limit < 1:
            raise ValueError("list_limit must be at least 1")
        if self.sims < 1:
            raise ValueError("sims must be at least 1")


@dataclass(frozen=True)
class InboxCursor:
    """Which inbox SMS were handed over: ids up to ``last_id``, and for the id-less
    entries of old Termux:API versions, the refs seen in the latest listing."""

    last_id: int = 0
    refs_without_id: frozenset = frozenset()

    def is_new(self, entry: dict) -> bool:
        if "_id" in entry:
            return int(entry["_id"]) > self.last_id
        return _device_ref(entry) not in self.refs_without_id

    def after(self, listing: list) -> InboxCursor:
        ids = [int(entry["_id"]) for entry in listing if "_id" in entry]
        return InboxCursor(
            last_id=max([self.last_id, *ids]),
            refs_without_id=frozenset(
                _device_ref(entry) for entry in listing if "_id" not in entry
            ),
        )

    def to_json(self) -> dict:
        return {"lastId": self.last_id, "refsWithoutId": sorted(self.refs_without_id)}

    @classmethod
    def from_json(cls, data: dict) -> InboxCursor:
        return cls(int(data["lastId"]), frozenset(data.get("refsWithoutId", ())))


class TermuxDriver(Driver):
    name = "termux"

    def __init__(self, options: Options):
        self.options = options
        self._cursor = InboxCursor()
        self._cursor_saved = True
        self._next_list_at = 0.0  # time.monotonic() when the inbox is read next

    def open(self) -> None:
        _require_commands()
        saved = self._load_cursor()
        if saved is None:
            # First run: what the phone holds now is history, not news.
            self._cursor = InboxCursor().after(self._list_page(offset=0))
            self._save_cursor()
        else:
            self._cursor = saved

    def check(self) -> DeviceInfo:
        """Termux:API's commands, without saving the inbox cursor a first ``open`` saves."""
        _require_commands()
        return self.info()

    def sim_slots(self) -> tuple[int, ...]:
        return tuple(range(1, self.options.sims + 1))

    def send(self, sms: OutboundSms) -> SendResult:
        if sms.sim_slot is not None and sms.sim_slot not in self.sim_slots():
            raise SendError(
                f"this phone has {self.options.sims} SIM(s) (option sims); slot "
                f"{sms.sim_slot} asked",
                retryable=False,
            )
        command = [SEND_COMMAND, "-n", sms.to]
        slot = sms.sim_slot - 1 if sms.sim_slot else self.options.sim_slot  # Android counts from 0
        if slot is not None:
            command += ["-s", str(slot)]
        result = self._run(command, stdin=sms.text)
        problem = result.stderr.strip() or _reported_error(_parse_json(result.stdout))
        if result.returncode != 0 or problem:
            raise SendError(
                f"{SEND_COMMAND} failed (exit {result.returncode}): {problem or 'no message'}"
            )
        return SendResult(segments=analyze(sms.text).segments, references=())

    def poll(self) -> list:
        if not self._cursor_saved:
            self._save_cursor()  # the bridge has taken the previous batch
        if time.monotonic() < self._next_list_at:
            return []
        self._next_list_at = time.monotonic() + self.options.poll_interval
        listing = self._list_since_cursor()
        events = [_inbound_sms(entry) for entry in listing if self._cursor.is_new(entry)]
        cursor = self._cursor.after(listing)
        self._cursor_saved = cursor == self._cursor
        self._cursor = cursor
        return events

    def info(self) -> DeviceInfo:
        battery = self._optional_json([BATTERY_COMMAND])
        if not isinstance(battery, dict):
            battery = {}
        return DeviceInfo(
            signal_percent=self._signal_percent(),
            battery_percent=battery.get("percentage"),
            extra={key: battery[key] for key in ("plugged", "status") if key in battery},
        )

    def close(self) -> None:
        if not self._cursor_saved:
            self._save_cursor()

    # --- inbox -------------------------------------------------------------------------

    def _list_since_cursor(self) -> list:
        """The newest page of the inbox, plus older pages while every entry is new
        (the bridge was down for long), oldest first."""
        pages = [self._list_page(offset=0)]
        limit = self.options.list_limit
        while len(pages[-1]) == limit and all(map(self._cursor.is_new, pages[-1])):
            pages.append(self._list_page(offset=len(pages) * limit))
        return [entry for page in reversed(pages) for entry in page]

    def _list_page(self, offset: int) -> list:
        # Termux:API sorts by date, newest first, cuts the page, then prints it oldest first.
        listing = self._run_json(
            [LIST_COMMAND, "-t", "inbox", "-l", str(self.options.list_limit), "-o", str(offset)]
        )
        if not isinstance(listing, list):
            raise DriverError(f"{LIST_COMMAND} printed {listing!r}, not a list of SMS")
        return listing

    def _load_cursor(self) -> InboxCursor | None:
        try:
            saved = json.loads(self.options.state_file.read_text(encoding="utf-8"))
            return InboxCursor.from_json(saved)
        except FileNotFoundError:
            return None
        except (ValueError, KeyError, TypeError) as error:
            raise DriverError(
                f"unreadable state file {self.options.state_file} ({error}); delete it to start "
                "again from the phone's current inbox"
            ) from error

    def _save_cursor(self) -> None:
        path = self.options.state_file
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(path.name + ".tmp")
        temporary.write_text(json.dumps(self._cursor.to_json()), encoding="utf-8")
        os.replace(temporary, path)  # never a half-written state file
        self._cursor_saved = True

    # --- device info -------------------------------------------------------------------

    def _signal_percent(self) -> int | None:
        if shutil.which(CELL_INFO_COMMAND) is None:
            return None
        cells = self._optional_json([CELL_INFO_COMMAND])
        if not isinstance(cells, list):
            return None
        registered = [cell for cell in cells if isinstance(cell, dict) and cell.get("registered")]
        levels = [cell["level"] for cell in registered if isinstance(cell.get("level"), int)]
        return round(100 * max(levels) / CELL_LEVELS) if levels else None

    def _optional_json(self, command: list):
        """Output of an informational command; None (and a warning) when it fails."""
        try:
            return self._run_json(command)
        except DriverError as error:
            log.warning("%s", error)
            return None

    # --- commands ----------------------------------------------------------------------

    def _run_json(self, command: list):
        result = self._run(command)
        if result.returncode != 0:
            raise DriverError(
                f"{command[0]} failed (exit {result.returncode}): {result.stderr.strip()}"
            )
        output = _parse_json(result.stdout)
        if output is None:
            raise DriverError(f"{command[0]} printed no JSON: {result.stdout[:200]!r}")
        if _reported_error(output):
            raise DriverError(f"{command[0]}: {_reported_error(output)}")
        return output

    def _run(self, command: list, stdin: str = "") -> subprocess.CompletedProcess:
        try:
            return subprocess.run(
                command,
                input=stdin,
                capture_output=True,
                text=True,
                encoding="utf-8",
                timeout=self.options.command_timeout,
            )
        except FileNotFoundError:
            raise DriverError(f"{command[0]} not found: {INSTALL_HINT}") from None
        except subprocess.TimeoutExpired:
            raise DriverError(
                f"{command[0]} did not answer within {self.options.command_timeout:g} s: "
                + UNRESPONSIVE_HINT
            ) from None


def _parse_json(text: str):
    try:
        return json.loads(text)
    except ValueError:
        return None


def _reported_error(output) -> str:
    """The ``{"error": ...}`` some Termux:API builds print instead of failing."""
    return str(output["error"]) if isinstance(output, dict) and "error" in output else ""


def _inbound_sms(entry: dict) -> InboundSms:
    return InboundSms(
        sender=entry.get("number") or entry.get("address") or "",
        text=entry.get("body") or "",
        received_at=_parse_received(entry.get("received")),
        device_ref=_device_ref(entry),
    )


def _parse_received(text) -> datetime:
    """Termux:API's phone-local date string as an aware datetime in the local zone."""
    text = str(text)
    if text[11:13] == "24":  # old versions write midnight as hour 24
        text = text[:11] + "00" + text[13:]
    for date_format in RECEIVED_FORMATS:
        try:
            return datetime.strptime(text, date_format).astimezone()
        except ValueError:
            continue
    log.warning("unknown date %r in %s output; using the current time", text, LIST_COMMAND)
    return datetime.now().astimezone()


def _device_ref(entry: dict) -> str:
    if "_id" in entry:
        return f"termux:{entry['_id']}"
    fingerprint = "\0".join(str(entry.get(key, "")) for key in ("number", "received", "body"))
    return "termux:" + hashlib.sha256(fingerprint.encode("utf-8")).hexdigest()[:32]


def create(**options) -> TermuxDriver:
    return TermuxDriver(Options(**options))


def _require_commands() -> None:
    missing = [command for command in REQUIRED_COMMANDS if shutil.which(command) is None]
    if missing:
        raise DriverError(f"{', '.join(missing)} not found: {INSTALL_HINT}")
