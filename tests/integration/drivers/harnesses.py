"""Phone harnesses: an opened driver wired to a fake phone network the test controls.

Every harness has the same interface (``PhoneHarness``) so one contract suite runs against
every driver. ``FakeTermuxApi`` also runs inside the fake ``termux-*`` executables it
installs: see ``run_fake_termux_command``.
"""

from __future__ import annotations

import abc
import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from device_bridge.drivers import simulator, termux
from device_bridge.drivers.base import Driver

REPO_ROOT = Path(__file__).resolve().parents[3]


class PhoneHarness(abc.ABC):
    """A phone as the contract tests see it."""

    driver: Driver  # opened

    @abc.abstractmethod
    def network_sent(self) -> list[tuple[str, str]]:
        """(to, text) of every SMS that reached the network, in order."""

    @abc.abstractmethod
    def receive(self, sender: str, text: str) -> None:
        """The phone receives an SMS."""

    @abc.abstractmethod
    def refuse_next_send(self, code: str) -> None:
        """The next send fails at the network with this code."""

    def close(self) -> None:
        self.driver.close()


def poll_until(driver: Driver, condition: Callable[[list], bool], timeout: float = 5.0) -> list:
    """Poll until the events collected so far satisfy ``condition``; return them all."""
    events: list = []
    deadline = time.monotonic() + timeout
    while True:
        events += driver.poll()
        if condition(events):
            return events
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s; events: {events}")
        time.sleep(0.01)


def read_json_lines(path: Path) -> list[dict]:
    lines = path.read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


# --- simulator ---------------------------------------------------------------------------


class SimulatorHarness(PhoneHarness):
    """The simulator with its outbox and inbox in ``directory``; its network is the outbox."""

    def __init__(self, directory: Path, **options):
        self.outbox = directory / "outbox.jsonl"
        self.inbox = directory / "inbox.jsonl"
        self.driver = simulator.create(outbox=self.outbox, inbox=self.inbox, **options)
        self.driver.open()

    def network_sent(self) -> list[tuple[str, str]]:
        return [(record["to"], record["text"]) for record in read_json_lines(self.outbox)]

    def receive(self, sender: str, text: str) -> None:
        self.append_to_inbox((json.dumps({"from": sender, "text": text}) + "\n").encode("utf-8"))

    def append_to_inbox(self, raw: bytes) -> None:
        with open(self.inbox, "ab") as inbox:
            inbox.write(raw)

    def refuse_next_send(self, code: str) -> None:
        self.driver.refuse_next_send(code)


# --- termux ------------------------------------------------------------------------------

FAKE_TERMUX_COMMANDS = (
    termux.SEND_COMMAND,
    termux.LIST_COMMAND,
    termux.BATTERY_COMMAND,
    termux.CELL_INFO_COMMAND,
)
WRAPPER_SOURCE = """#!{python}
import sys
sys.path.insert(0, {repo_root!r})
from tests.integration.drivers.harnesses import run_fake_termux_command
sys.exit(run_fake_termux_command({command!r}, {state_file!r}, sys.argv[1:]))
"""


class FakeTermuxApi:
    """Fake termux-api executables first on PATH, sharing one JSON file: the phone."""

    def __init__(self, directory: Path, monkeypatch):
        self.bin_dir = directory / "termux-bin"
        self.state_file = directory / "fake-phone.json"
        self.bin_dir.mkdir()
        self._save(
            {
                "sent": [],
                "inbox": [],
                "nextId": 1,
                "refuseNext": None,
                "jsonError": None,
                "hang": False,
                "battery": 87,
            }
        )
        for command in FAKE_TERMUX_COMMANDS:
            self._install(command)
        monkeypatch.setenv("PATH", f"{self.bin_dir}{os.pathsep}{os.environ.get('PATH', '')}")

    def _install(self, command: str) -> None:
        executable = self.bin_dir / command
        executable.write_text(
            WRAPPER_SOURCE.format(
                python=sys.executable,
                repo_root=str(REPO_ROOT),
                command=command,
                state_file=str(self.state_file),
            )
        )
        executable.chmod(0o755)

    def sent(self) -> list[dict]:
        return self._load()["sent"]

    def add_to_inbox(
        self,
        sender: str,
        text: str,
        received: str | None = None,
        with_id: bool = True,
    ) -> None:
        """A received SMS; ``with_id=False`` imitates Termux:API versions without ``_id``."""
        state = self._load()
        entry = {
            "threadid": 1,
            "type": "inbox",
            "read": False,
            "number": sender,
            "body": text,
            "received": received or datetime.now().strftime("%Y-%m-%d %H:%M:%S"),
        }
        if with_id:
            entry["_id"] = state["nextId"]
            state["nextId"] += 1
        state["inbox"].append(entry)
        self._save(state)

    def configure(self, **changes) -> None:
        """Change the fake's behaviour: refuseNext (code), jsonError (text), hang (bool)."""
        self._save({**self._load(), **changes})

    def _load(self) -> dict:
        return json.loads(self.state_file.read_text(encoding="utf-8"))

    def _save(self, state: dict) -> None:
        _write_atomically(self.state_file, state)


class TermuxHarness(PhoneHarness):
    def __init__(self, directory: Path, monkeypatch, **options):
        self.directory = directory
        self.fake_api = FakeTermuxApi(directory, monkeypatch)
        self.driver = self.open_driver(**options)

    def open_driver(self, **options) -> termux.TermuxDriver:
        """A new opened driver on the same phone and state file, as after a restart."""
        options = {
            "state_file": self.directory / "termux-state.json",
            "poll_interval": 0,
            "command_timeout": 20,
            **options,
        }
        driver = termux.create(**options)
        driver.open()
        return driver

    def network_sent(self) -> list[tuple[str, str]]:
        return [(sms["to"], sms["text"]) for sms in self.fake_api.sent()]

    def receive(self, sender: str, text: str) -> None:
        self.fake_api.add_to_inbox(sender, text)

    def refuse_next_send(self, code: str) -> None:
        self.fake_api.configure(refuseNext=code)


def _write_atomically(path: Path, state: dict) -> None:
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(json.dumps(state, ensure_ascii=False), encoding="utf-8")
    os.replace(temporary, path)


# --- inside the fake termux-* executables --------------------------------------------------


def run_fake_termux_command(command: str, state_file: str, argv: list[str]) -> int:
    """What the fake ``command`` does with its arguments; returns the exit status."""
    path = Path(state_file)
    state = json.loads(path.read_text(encoding="utf-8"))
    if state["hang"]:
        time.sleep(600)  # Termux:API not answering, as when Android has stopped it
    if state["jsonError"]:
        print(json.dumps({"error": state["jsonError"]}))
        return 0
    status = FAKE_COMMANDS[command](state, argv)
    _write_atomically(path, state)
    return status


def _fake_send(state: dict, argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("-n", dest="numbers", required=True)
    parser.add_argument("-s", dest="slot")
    parser.add_argument("words", nargs="*")
    arguments = parser.parse_args(argv)
    # Like the real script: text from the arguments, else stdin; Android trims it.
    text_from = "arguments" if arguments.words else "stdin"
    text = " ".join(arguments.words) if arguments.words else sys.stdin.buffer.read().decode("utf-8")
    if state["refuseNext"]:
        print(f"SMS refused by the network (error {state['refuseNext']})", file=sys.stderr)
        state["refuseNext"] = None
        return 1
    for number in arguments.numbers.split(","):
        state["sent"].append(
            {"to": number, "text": text.strip(), "slot": arguments.slot, "textFrom": text_from}
        )
    return 0


def _fake_list(state: dict, argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("-t", dest="type", default="all")
    parser.add_argument("-l", dest="limit", type=int, default=10)
    parser.add_argument("-o", dest="offset", type=int, default=0)
    arguments = parser.parse_args(argv)
    assert arguments.type == "inbox", "the fake phone only has an inbox"
    # Like Termux:API: newest first, cut the page, print it oldest first.
    newest_first = state["inbox"][::-1]
    page = newest_first[arguments.offset : arguments.offset + arguments.limit]
    print(json.dumps(page[::-1], indent=2, ensure_ascii=False))
    return 0


def _fake_battery(state: dict, argv: list[str]) -> int:
    print(
        json.dumps(
            {
                "health": "GOOD",
                "percentage": state["battery"],
                "plugged": "PLUGGED_AC",
                "status": "CHARGING",
                "temperature": 31.5,
            }
        )
    )
    return 0


def _fake_cell_info(state: dict, argv: list[str]) -> int:
    print(
        json.dumps(
            [
                {"type": "lte", "registered": True, "asu": 30, "dbm": -95, "level": 3},
                {"type": "lte", "registered": False, "asu": 40, "dbm": -80, "level": 4},
            ]
        )
    )
    return 0


FAKE_COMMANDS = {
    termux.SEND_COMMAND: _fake_send,
    termux.LIST_COMMAND: _fake_list,
    termux.BATTERY_COMMAND: _fake_battery,
    termux.CELL_INFO_COMMAND: _fake_cell_info,
}
