"""An Android phone running the SMSGate app (capcom6/android-sms-gateway) in Local Server mode.

Followed: the app's source at v1.68 (routes in modules/localserver, webhooks in
modules/webhooks) and docs.sms-gate.app. The phone serves a REST API on
``http://<phone>:8080`` with Basic auth (username and password shown under "Local Server"
in the app); the bridge runs a small webhook receiver the phone posts its events to.

Sending: ``POST /message`` with our messageId as the app's ``id``, then ``GET
/message/{id}`` until the app says ``Sent`` (the SMS centre took it), ``Failed``, or
``send_timeout`` passes. Waiting for ``Sent`` rather than returning at ``Pending`` is what
tells the bridge the SMS left: an accepted request only means it is queued on the phone.
A retry posts the same id: the app answers 409 (1.58 and later; older versions ignore the
copy), so nothing is sent twice, and the driver follows the first request's state. A
retry after ``Failed`` is a new attempt under the next id (``<id>.2``, ``.3``, ...).

Receiving: webhooks ``sms:received``, ``sms:delivered`` and ``sms:failed`` (``sms:sent``
is not needed: send reads the state itself). The app signs each post (X-Signature: hex
HMAC-SHA256 of body + X-Timestamp with the key under Settings → Webhooks); unsigned or
wrongly signed posts are refused. An ``sms:received`` post is answered 200 only once the
bridge has the SMS in its journal (``acknowledge``); otherwise 503 and the app posts it
again later, so an SMS is never lost between the phone and the journal.

The app takes webhook URLs on https:// only, except http://127.0.0.1 (the bridge on the
phone itself, or ``adb reverse``): give ``tls_cert``/``tls_key`` from ``smsgate-ca
webhooks <bridge IP>`` for a bridge on another host.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import queue
import re
import ssl
import threading
import time
import urllib.error
import urllib.request
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import quote, urlsplit

from chalicelib.wire.sms_encoding import analyze

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

EVENTS = ("sms:received", "sms:delivered", "sms:failed")
WEBHOOK_ID_PREFIX = "chinqit-"  # the app upserts by id: a restart replaces, never duplicates
MAX_BODY = 64 * 1024  # an SMS webhook is well under 2 KiB; longer bodies are refused
SIGNATURE_MAX_AGE = 300  # seconds X-Timestamp may differ from the bridge's clock
ACK_WAIT = 3.0  # seconds a received-SMS post waits for the journal; the app gives up at 5
REMEMBERED_ACKS = 1024  # device refs of stored SMS, to answer reposts at once
STATE_POLL_INTERVAL = 0.2
MAX_ATTEMPT_IDS = 50
APP_ID_LENGTH = 36  # the app's limit for a message id
LEFT_THE_PHONE = ("Sent", "Delivered")
# Android SmsManager results that blame the message or the phone's setup: the same send
# would fail again. Every other failure (radio off, no service, limits, generic) is retried.
# Android's answers that mean the SIM (not the recipient) hit a limit or was refused by the
# network: the bridge pauses the line.
LINE_LIMIT_RESULTS = frozenset({"RESULT_ERROR_LIMIT_EXCEEDED", "RESULT_NETWORK_REJECT"})
PERMANENT_RESULTS = frozenset(
    {
        "RESULT_ERROR_NULL_PDU",
        "RESULT_ERROR_FDN_CHECK_FAILURE",
        "RESULT_ERROR_SHORT_CODE_NOT_ALLOWED",
        "RESULT_ERROR_SHORT_CODE_NEVER_ALLOWED",
        "RESULT_INVALID_ARGUMENTS",
        "RESULT_INVALID_SMS_FORMAT",
        "RESULT_ENCODING_ERROR",
        "RESULT_INVALID_SMSC_ADDRESS",
        "RESULT_REQUEST_NOT_SUPPORTED",
        "RESULT_RIL_INVALID_ARGUMENTS",
        "RESULT_RIL_INVALID_SMS_FORMAT",
        "RESULT_RIL_ENCODING_ERR",
        "RESULT_RIL_INVALID_SMSC_ADDRESS",
        "RESULT_RIL_REQUEST_NOT_SUPPORTED",
    }
)
RESULT_NAME = re.compile(r"\bRESULT_[A-Z_]+\b")
UNREACHABLE_HINT = (
    "is the app open with Local Server online, on the same network, and exempt from "
    "battery optimisation?"
)


@dataclass
class Options:
    # the phone's Local Server as the app shows it, e.g. http://192.168.1.20:8080
    url: str = "http://127.0.0.1:8080"
    # Basic auth credentials shown under "Local Server" in the app
    username: str = "sms"
    password: str = ""
    # address and port the bridge's webhook receiver listens on
    listen_host: str = "127.0.0.1"
    listen_port: int = 8787
    # URL the phone posts to, reaching listen_host:listen_port (it may differ: NAT, a
    # proxy); the app takes https://... or http://127.0.0.1:...
    webhook_url: str = "http://127.0.0.1:8787/smsgate"
    # certificate and key files serving the receiver over HTTPS (smsgate-ca webhooks <IP>)
    tls_cert: str = ""
    tls_key: str = ""
    # the app's Settings → Webhooks → Signing Key; required, posts are checked against it
    signing_key: str = ""
    # seconds one request to the phone may take
    request_timeout: float = 10.0
    # seconds send waits for the app to report Sent before giving up (retryable)
    send_timeout: float = 60.0
    # SIM lines of the phone; 0: as many as the app lists (GET /device), at least 1
    sims: int = 0
    # ask the network for delivery reports (sms:delivered / sms:failed)
    delivery_reports: bool = True

    def __post_init__(self):
        self.url = self.url.rstrip("/")
        self.listen_port = int(self.listen_port)
        self.sims = int(self.sims)
        self.request_timeout = float(self.request_timeout)
        self.send_timeout = float(self.send_timeout)
        if bool(self.tls_cert) != bool(self.tls_key):
            raise ValueError("tls_cert and tls_key go together")


class PhoneUnreachable(Exception):
    """The phone's Local Server did not answer."""


class _WebhookServer(ThreadingHTTPServer):
    """The phone's webhooks: a thread per post; a listen backlog of 64, not socketserver's 5,
    so a burst (delivery reports of a bulk send) is not held a second by SYN retries."""

    daemon_threads = True
    request_queue_size = 64


class SmsGateDriver(Driver):
    name = "smsgate"

    def __init__(self, options: Options):
        self.options = options
        self._sims = max(options.sims, 1)
        self._events: queue.SimpleQueue = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._waiting: dict[str, threading.Event] = {}  # device_ref -> set once journaled
        self._acked: OrderedDict[str, None] = OrderedDict()
        self._server: _WebhookServer | None = None
        self._authorization = "Basic " + base64.b64encode(
            f"{options.username}:{options.password}".encode()
        ).decode("ascii")

    # --- lifecycle ---------------------------------------------------------------------

    def open(self) -> None:
        self._read_device()
        self._start_receiver()
        try:
            for event in EVENTS:
                self._register(event)
        except DriverError:
            self.close()
            raise

    def check(self) -> DeviceInfo:
        """The app's API and credentials, without registering webhooks (a running bridge
        keeps its own) nor listening for them."""
        self._read_device()
        return self.info()

    def _read_device(self) -> None:
        if not self.options.signing_key:
            raise DriverError(
                "signing_key is required: copy it from the app's Settings → Webhooks → "
                "Signing Key, so the bridge can tell the phone's posts from anyone else's"
            )
        status, devices = self._call_for_setup("GET", "/device")
        if status == 401:
            raise DriverError(
                f"{self.options.url} refused the username and password: copy them from the "
                "app's Local Server section"
            )
        if status != 200:
            raise DriverError(f"{self.options.url}/device answered HTTP {status}: {devices}")
        if self.options.sims == 0:
            sim_cards = devices[0].get("simCards") if devices else None
            self._sims = max(len(sim_cards or ()), 1)

    def close(self) -> None:
        for event in EVENTS:
            try:
                self._call("DELETE", f"/webhooks/{_webhook_id(event)}")
            except PhoneUnreachable as error:
                log.warning("cannot remove webhook %s from the phone: %s", event, error)
        with self._lock:
            unstored = list(self._waiting.values())
        for waiting in unstored:
            waiting.set()  # answered 503: the app posts them again to the next bridge run
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def sim_slots(self) -> tuple[int, ...]:
        return tuple(range(1, self._sims + 1))

    # --- sending -----------------------------------------------------------------------

    def send(self, sms: OutboundSms) -> SendResult:
        if sms.sim_slot is not None and sms.sim_slot not in self.sim_slots():
            raise SendError(
                f"this phone has {self._sims} SIM(s); slot {sms.sim_slot} asked", retryable=False
            )
        try:
            app_id = self._submit(sms)
            message = self._wait_until_out(app_id)
        except PhoneUnreachable as error:
            raise SendError(f"phone unreachable: {error}; {UNREACHABLE_HINT}") from None
        if message["state"] == "Failed":
            raise _send_error(message)
        return SendResult(segments=analyze(sms.text).segments, references=(app_id,))

    def _submit(self, sms: OutboundSms) -> str:
        """The app id of this send: a new request, or an earlier one still in progress."""
        base = _app_id_base(sms.message_id)
        for attempt in range(1, MAX_ATTEMPT_IDS + 1):
            app_id = base if attempt == 1 else f"{base}.{attempt}"
            status, answer = self._call("POST", "/message", self._message_body(app_id, sms))
            if status == 202:
                return app_id
            if status != 409:
                raise SendError(f"the app refused the SMS (HTTP {status}): {_said(answer)}")
            status, earlier = self._call("GET", f"/message/{quote(app_id)}")
            if status == 200 and earlier["state"] != "Failed":
                return app_id  # a copy of a request the app already has: follow it
        raise SendError(f"{MAX_ATTEMPT_IDS} failed attempts of this SMS", retryable=False)

    def _message_body(self, app_id: str, sms: OutboundSms) -> dict:
        body = {
            "id": app_id,
            "textMessage": {"text": sms.text},
            "phoneNumbers": [sms.to],
            "withDeliveryReport": self.options.delivery_reports,
        }
        if sms.sim_slot is not None:
            body["simNumber"] = sms.sim_slot
        return body

    def _wait_until_out(self, app_id: str) -> dict:
        deadline = time.monotonic() + self.options.send_timeout
        while True:
            status, message = self._call("GET", f"/message/{quote(app_id)}")
            if status != 200:
                raise SendError(f"the app lost SMS {app_id} (HTTP {status}): {_said(message)}")
            if message["state"] in (*LEFT_THE_PHONE, "Failed"):
                return message
            if time.monotonic() > deadline:
                raise SendError(
                    f"still {message['state']} on the phone after {self.options.send_timeout:g} "
                    f"s; {UNREACHABLE_HINT}"
                )
            time.sleep(STATE_POLL_INTERVAL)

    # --- receiving ---------------------------------------------------------------------

    def poll(self) -> list:
        events = []
        while True:
            try:
                events.append(self._events.get_nowait())
            except queue.Empty:
                return events

    def acknowledge(self, sms: InboundSms) -> None:
        with self._lock:
            self._acked[sms.device_ref] = None
            while len(self._acked) > REMEMBERED_ACKS:
                self._acked.popitem(last=False)
            stored = self._waiting.pop(sms.device_ref, None)
        if stored is not None:
            stored.set()

    def handle_webhook(self, body: bytes, timestamp: str, signature: str) -> int:
        """The HTTP status answering one post of the phone."""
        if not self._signed(body, timestamp, signature):
            return 401
        try:
            post = json.loads(body)
            event, payload = post["event"], post["payload"]
            if event == "sms:received":
                return self._received(_inbound_sms(payload))
            if event in ("sms:delivered", "sms:failed"):
                self._events.put(
                    DeliveryReport(
                        reference=payload["messageId"],
                        delivered=event == "sms:delivered",
                        detail=payload.get("reason", ""),
                    )
                )
        except (ValueError, KeyError, TypeError):
            return 400
        return 200

    def _received(self, sms: InboundSms) -> int:
        with self._lock:
            if sms.device_ref in self._acked:
                return 200
            stored = self._waiting.get(sms.device_ref)
            if stored is None:
                stored = self._waiting[sms.device_ref] = threading.Event()
                self._events.put(sms)
        stored.wait(ACK_WAIT)
        with self._lock:
            if sms.device_ref in self._acked:
                return 200
            self._waiting.pop(sms.device_ref, None)  # the repost hands it over again
        return 503

    def _signed(self, body: bytes, timestamp: str, signature: str) -> bool:
        try:
            age = abs(time.time() - int(timestamp))
        except ValueError:
            return False
        expected = hmac.new(
            self.options.signing_key.encode(), body + timestamp.encode(), hashlib.sha256
        ).hexdigest()
        return age <= SIGNATURE_MAX_AGE and hmac.compare_digest(expected, signature.lower())

    def _start_receiver(self) -> None:
        try:
            server = _WebhookServer(
                (self.options.listen_host, self.options.listen_port), _webhook_handler(self)
            )
        except OSError as error:
            raise DriverError(
                f"cannot listen on {self.options.listen_host}:{self.options.listen_port} for "
                f"the phone's webhooks: {error}"
            ) from error
        if self.options.tls_cert:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(self.options.tls_cert, self.options.tls_key)
            server.socket = context.wrap_socket(server.socket, server_side=True)
        threading.Thread(target=server.serve_forever, name="smsgate-webhooks", daemon=True).start()
        self._server = server

    def _register(self, event: str) -> None:
        webhook = {"id": _webhook_id(event), "url": self.options.webhook_url, "event": event}
        status, answer = self._call_for_setup("POST", "/webhooks", webhook)
        if status not in (200, 201):
            raise DriverError(
                f"the phone refused webhook {event} for {self.options.webhook_url} "
                f"(HTTP {status}): {_said(answer)}"
            )

    # --- device info -------------------------------------------------------------------

    def info(self) -> DeviceInfo:
        try:
            _, health = self._call("GET", "/health")  # HTTP 500 when a check fails
        except PhoneUnreachable as error:
            log.warning("cannot read the phone's health: %s", error)
            return DeviceInfo()
        if not isinstance(health, dict):
            health = {}
        battery = (health.get("checks", {}).get("battery:level") or {}).get("observedValue")
        return DeviceInfo(
            battery_percent=battery,
            extra={"health": health.get("status"), "app_version": health.get("version")},
        )

    # --- HTTP --------------------------------------------------------------------------

    def _call_for_setup(self, method: str, path: str, body: dict | None = None):
        try:
            return self._call(method, path, body)
        except PhoneUnreachable as error:
            raise DriverError(f"{error}; {UNREACHABLE_HINT}") from None

    def _call(self, method: str, path: str, body: dict | None = None):
        """(HTTP status, decoded JSON answer or text) of one request to the phone."""
        request = urllib.request.Request(
            self.options.url + path,
            method=method,
            data=None if body is None else json.dumps(body).encode("utf-8"),
            headers={"Authorization": self._authorization, "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=self.options.request_timeout) as answer:
                return answer.status, _decoded(answer.read())
        except urllib.error.HTTPError as error:
            return error.code, _decoded(error.read())
        except (urllib.error.URLError, OSError) as error:
            reason = getattr(error, "reason", error)
            raise PhoneUnreachable(f"{self.options.url} did not answer: {reason}") from None


def _webhook_handler(driver: SmsGateDriver) -> type[BaseHTTPRequestHandler]:
    path = urlsplit(driver.options.webhook_url).path or "/"

    class WebhookHandler(BaseHTTPRequestHandler):
        def do_POST(self):
            if urlsplit(self.path).path != path:
                return self._answer(404)
            try:
                length = int(self.headers.get("Content-Length", ""))
            except ValueError:
                return self._answer(411)
            if not 0 <= length <= MAX_BODY:
                return self._answer(413)
            body = self.rfile.read(length)
            self._answer(
                driver.handle_webhook(
                    body, self.headers.get("X-Timestamp", ""), self.headers.get("X-Signature", "")
                )
            )

        def do_GET(self):
            self._answer(405)

        do_PUT = do_DELETE = do_PATCH = do_GET

        def _answer(self, status: int) -> None:
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format, *args):  # noqa: A002 - the stdlib's name
            log.debug("webhook %s", format % args)

    return WebhookHandler


def _inbound_sms(payload: dict) -> InboundSms:
    sender = payload.get("sender") or payload["phoneNumber"]
    received_at = payload["receivedAt"]
    # The app's messageId is a 32-bit hash of the SMS: stable across reposts, but two SMS
    # may share it, so the ref adds what tells them apart.
    fingerprint = "\0".join((payload["messageId"], sender, received_at, payload["message"]))
    return InboundSms(
        sender=sender,
        text=payload["message"],
        received_at=datetime.fromisoformat(received_at.replace("Z", "+00:00")),
        device_ref="smsgate:" + hashlib.sha256(fingerprint.encode("utf-8")).hexdigest()[:32],
        sim_slot=payload.get("simNumber"),
    )


def _send_error(message: dict) -> SendError:
    errors = [r.get("error") for r in message.get("recipients", ()) if r.get("error")]
    reason = errors[0] if errors else "the app reports Failed without a reason"
    code = RESULT_NAME.search(reason)
    result = code.group(0) if code else None
    return SendError(
        reason,
        code=result,
        retryable=result not in PERMANENT_RESULTS,
        pause_line=result in LINE_LIMIT_RESULTS,
    )


def _app_id_base(message_id: str) -> str:
    room = APP_ID_LENGTH - 3  # the attempt suffix ".NN"
    if len(message_id) <= room:
        return message_id
    return hashlib.sha256(message_id.encode("utf-8")).hexdigest()[:room]


def _webhook_id(event: str) -> str:
    return WEBHOOK_ID_PREFIX + event.replace(":", "-")


def _decoded(raw: bytes):
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode("utf-8", "replace")[:200]


def _said(answer) -> str:
    return answer.get("message", str(answer)) if isinstance(answer, dict) else str(answer)


def create(**options) -> SmsGateDriver:
    return SmsGateDriver(Options(**options))
