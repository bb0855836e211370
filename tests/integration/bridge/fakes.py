"""Test doubles for the bridge: a phone in memory, a clock tests move, and the device API
on a real local HTTP server."""

from __future__ import annotations

import json
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from pathlib import Path

from device_bridge.drivers.base import DeviceInfo, Driver, InboundSms, OutboundSms, SendResult
from tests.loopback import LoopbackServer

DEVICE_KEY = "dk_test_device_key_never_logged"
CRASH_EXIT = 137  # what a shell reports for a process killed with -9


class FakeDriver(Driver):
    """A phone in memory: records what reached the network, refuses on demand, and hands
    poll() whatever the test queued. With ``sent_log`` every send is also appended to a
    file as JSON lines ``{"event": "start" | "sent", "messageId": ...}`` (for tests that run
    the bridge in another process)."""

    name = "fake"

    def __init__(
        self,
        sent_log: str | None = None,
        send_delay: float = 0.0,
        crash_after_send: bool = False,
        segments: int = 1,
    ):
        self.sent: list[OutboundSms] = []  # SMS that reached the network, in order
        self.attempts: list[str] = []  # messageId of every send call, refused or not
        self.refusals: deque = deque()  # exceptions the next send calls raise, in order
        self.events: deque = deque()  # InboundSms / DeliveryReport the next poll returns
        # (device_ref, whether the journal had it then) of each acknowledge call
        self.acknowledged: list[tuple[str, bool]] = []
        self.journal = None  # set by a test that checks what acknowledge comes after
        self.during_send: Callable[[OutboundSms], None] | None = None
        self.opened = self.closed = False
        self.sent_log = Path(sent_log) if sent_log else None
        self.send_delay = send_delay
        self.crash_after_send = crash_after_send
        self.segments = segments

    def open(self) -> None:
        self.opened = True

    def send(self, sms: OutboundSms) -> SendResult:
        self.attempts.append(sms.message_id)
        self._log("start", sms)
        if self.during_send:
            self.during_send(sms)
        if self.refusals:
            raise self.refusals.popleft()
        time.sleep(self.send_delay)
        self.sent.append(sms)
        self._log("sent", sms)
        if self.crash_after_send:
            os._exit(CRASH_EXIT)  # like kill -9: before the bridge can journal anything
        return SendResult(
            self.segments, tuple(f"{sms.message_id}/{part}" for part in range(self.segments))
        )

    def poll(self) -> list:
        events = list(self.events)
        self.events.clear()
        return events

    def acknowledge(self, sms: InboundSms) -> None:
        journaled = self.journal is not None and sms.device_ref in [
            body["deviceRef"] for body in self.journal.pending_inbound(100)
        ]
        self.acknowledged.append((sms.device_ref, journaled))

    def info(self) -> DeviceInfo:
        return DeviceInfo(signal_percent=70, battery_percent=80)

    def close(self) -> None:
        self.closed = True

    def _log(self, event: str, sms: OutboundSms) -> None:
        if self.sent_log:
            with open(self.sent_log, "a") as log:
                log.write(json.dumps({"event": event, "messageId": sms.message_id}) + "\n")
                log.flush()
                os.fsync(log.fileno())


@dataclass
class Options:
    """Options of ``--driver fake`` (typed by drivers.load from --driver-option text)."""

    sent_log: str | None = None  # JSON-lines file recording every send
    send_delay: float = 0.0  # seconds each send takes
    crash_after_send: bool = False  # die like kill -9 right after the SMS left
    segments: int = 1


def create(**options) -> FakeDriver:
    return FakeDriver(**vars(Options(**options)))


def read_sent_log(path: Path, event: str = "sent") -> list[str]:
    if not path.exists():
        return []
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    return [line["messageId"] for line in lines if line["event"] == event]


class FakeClock:
    """A monotonic clock that only moves when the test says so."""

    def __init__(self, start: float = 1000.0):
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


PROGRESS = ("queued", "sending", "sent", "delivered")


def _advances(stored: str, status: str) -> bool:
    """The API's rule: statuses only move forward; failed and expired end a message."""
    if status == "failed":
        return stored in ("queued", "sending", "sent")
    if status == "expired":
        return stored in ("queued", "sending")
    return stored in PROGRESS and PROGRESS.index(stored) < PROGRESS.index(status)


class FakeApi:
    """The /device endpoints on a real HTTP server on 127.0.0.1, recording every call.

    Unknown messages count as ``queued``; ``unknown`` lists messageIds answered 404.
    ``fail_with`` answers every call with that HTTP status; ``latency`` (seconds) delays
    every answer, as the network to a remote API does; ``meet[status]``, a barrier, holds
    each post of that status until as many are in flight; stop() / start() takes the
    server down and back up on the same port.
    """

    def __init__(self):
        self.calls: list[tuple[str, dict]] = []  # (path, body) of every authenticated call
        self.statuses: dict[str, str] = {}  # messageId -> stored status
        self.credentials: Callable[[], dict] | None = None  # answers POST /device/credentials
        self.claims: dict[str, str] = {}  # messageId -> device key that posted "sending" first
        self.inbound: dict[str, dict] = {}  # deviceRef -> body, stored once
        self.unknown: set[str] = set()
        self.fail_with: int | None = None
        self.latency = 0.0
        self.meet: dict[str, threading.Barrier] = {}
        self._lock = threading.Lock()
        self._server: LoopbackServer | None = None
        self.port = 0
        self.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self._server = LoopbackServer(("127.0.0.1", self.port), self._handler())
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True).start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def posted_statuses(self, message_id: str) -> list[str]:
        return [body["status"] for path, body in self.status_calls(message_id)]

    def status_calls(self, message_id: str) -> list[tuple[str, dict]]:
        return [
            (path, body)
            for path, body in self.calls
            if path == f"/device/messages/{message_id}/status"
        ]

    def heartbeats(self) -> list[dict]:
        return [body for path, body in self.calls if path == "/device/heartbeat"]

    def answer(self, path: str, key: str, body: dict) -> tuple[int, dict]:
        with self._lock:
            if key != DEVICE_KEY:
                return 403, {"success": False, "message": "Invalid device key"}
            if self.fail_with:
                return self.fail_with, {"success": False, "message": "Internal server error"}
            self.calls.append((path, body))
            return self._route(path, body, key)

    def _route(self, path: str, body: dict, key: str) -> tuple[int, dict]:
        if path == "/device/heartbeat":  # as the API does, it names the queues of credentials
            named = {"queues": self.credentials()["queues"]} if self.credentials else {}
            return 200, {"success": True, **named}
        if path == "/device/credentials" and self.credentials is not None:
            return 200, {"success": True, **self.credentials()}
        if path == "/device/inbound":
            duplicate = body["deviceRef"] in self.inbound
            self.inbound.setdefault(body["deviceRef"], body)
            return 200, {
                "success": True,
                "messageId": "in-" + body["deviceRef"],
                "duplicate": duplicate,
            }
        parts = path.split("/")
        if len(parts) == 5 and parts[1:3] == ["device", "messages"] and parts[4] == "status":
            message_id = parts[3]
            if message_id in self.unknown:
                return 404, {"success": False, "message": "Message not found"}
            stored = self.statuses.get(message_id, "queued")
            if _advances(stored, body["status"]):
                stored = self.statuses[message_id] = body["status"]
            answer = {"success": True, "messageId": message_id, "status": stored}
            if body["status"] == "sending":
                answer["claimed"] = (
                    stored == "sending" and self.claims.setdefault(message_id, key) == key
                )
            return 200, answer
        return 404, {"success": False, "message": "Not found"}

    def _handler(self):
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # connections kept open, as the gateway keeps them
            disable_nagle_algorithm = True  # headers and body are two writes

            def handle_one_request(self):
                super().handle_one_request()
                if self.server is not api._server:  # taken down: its clients see it gone
                    self.close_connection = True

            def do_GET(self):  # GET /health, as the gateway answers it
                payload = json.dumps({"success": True, "status": "ok"}).encode()
                self.send_response(200 if self.path == "/health" else 404)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                if self.server is not api._server:  # a request on a connection kept open
                    self.close_connection = True  # while it was taken down: no answer
                    return
                time.sleep(api.latency)
                if body.get("status") in api.meet:
                    api.meet[body["status"]].wait()
                status, answer = api.answer(self.path, self.headers.get("X-Device-Key", ""), body)
                payload = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args):  # keep test output quiet
                pass

        return Handler
