"""A local fake of the SMSGate app's Local Server (capcom6/android-sms-gateway, v1.68).

A real HTTP server on 127.0.0.1 answering like the app: Basic auth (401 otherwise; /health
is open), ``POST /message`` (202 with state Pending, 409 for an id it already has), ``GET
/message/{id}``, ``GET /device`` with its SIM cards, ``POST/GET/DELETE /webhooks`` (https://
or http://127.0.0.1 only), and webhooks really POSTed to the registered URLs, signed like
the app (X-Signature = hex HMAC-SHA256 of body + X-Timestamp). Its radio is a fake network
the test controls: ``sent``, ``receive``, ``refuse_next_send``, ``hold_sends``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
import urllib.error
import urllib.request
from datetime import datetime
from http.server import BaseHTTPRequestHandler
from urllib.parse import urlsplit

from tests.loopback import LoopbackServer

SIGNING_KEY = "k3yFr0mApp"
USERNAME, PASSWORD = "sms", "Xw7-password"
RETRY_DELAY = 0.1  # the app waits 5 s and more; tests do not
# the app's texts for SmsManager results (MessagesService.resultToErrorMessage)
RESULT_TEXTS = {
    "RESULT_ERROR_GENERIC_FAILURE": "Generic failure cause",
    "RESULT_ERROR_RADIO_OFF": "Failed because radio was explicitly turned off",
    "RESULT_ERROR_NO_SERVICE": "Failed because service is currently unavailable",
    "RESULT_ERROR_LIMIT_EXCEEDED": "Failed because we reached the sending queue limit",
    "RESULT_ERROR_SHORT_CODE_NEVER_ALLOWED": "Failed because the user has denied this app "
    "ever send premium short codes",
}


class FakeSmsGateApp:
    def __init__(self, sims: int = 2):
        self.sims = sims
        self.network: list[dict] = []  # what left the phone: to, text, simNumber
        self.messages: dict[str, dict] = {}
        self.webhooks: dict[str, dict] = {}
        self.webhook_answers: list[int] = []  # HTTP status of each webhook post
        self.refuse_next: str | None = None  # Android result for the next send
        self.held = False  # sends stay Pending
        self.signing_key = SIGNING_KEY
        self.retries = 2
        self.workers: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._server = LoopbackServer(("127.0.0.1", 0), _handler(self))
        self.url = f"http://127.0.0.1:{self._server.server_port}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    # --- the test's controls -----------------------------------------------------------

    def refuse_next_send(self, result: str) -> None:
        """The next send fails with this SmsManager result (a name, or a bare code)."""
        self.refuse_next = result

    def hold_sends(self, held: bool = True) -> None:
        self.held = held
        if not held:
            for message in list(self.messages.values()):
                if message["state"] == "Pending":
                    self._process(message)

    def receive(self, sender: str, text: str, sim_number: int | None = 1) -> dict:
        """The phone receives an SMS: posts sms:received to each webhook, like the app."""
        received_at = datetime.now().astimezone().isoformat(timespec="milliseconds")
        payload = {
            "messageId": format(hash((sender, text, received_at)) & 0xFFFFFFFF, "x"),
            "message": text,
            "sender": sender,
            "recipient": None,
            "phoneNumber": sender,
            "simNumber": sim_number,
            "receivedAt": received_at,
        }
        self.emit("sms:received", payload)
        return payload

    def deliver(self, app_id: str, delivered: bool = True) -> None:
        message = self.messages[app_id]
        message["state"] = "Delivered" if delivered else "Failed"
        payload = {"messageId": app_id, "phoneNumber": message["to"], "simNumber": None}
        if delivered:
            self.emit("sms:delivered", {**payload, "deliveredAt": _now()})
        else:
            reason = "Delivery result from SC +22200000000: 70"
            self.emit("sms:failed", {**payload, "failedAt": _now(), "reason": reason})

    def emit(self, event: str, payload: dict, signing_key: str | None = None) -> None:
        """Posts ``event`` to its webhooks from a worker, as the app's queue does, posting
        again (up to ``retries`` times) while the answer is not 2xx."""
        worker = threading.Thread(target=self._emit, args=(event, payload, signing_key))
        self.workers.append(worker)
        worker.start()

    def wait_for_posts(self) -> list[int]:
        """Every webhook post done; their HTTP answers."""
        for worker in self.workers:
            worker.join(timeout=10)
        return self.webhook_answers

    def _emit(self, event: str, payload: dict, signing_key: str | None) -> None:
        for webhook in [w for w in self.webhooks.values() if w["event"] == event]:
            body = json.dumps(
                {
                    "deviceId": "ffffffffceb0b1db0000018e937c815b",
                    "event": event,
                    "id": f"evt-{time.monotonic_ns()}",
                    "payload": payload,
                    "webhookId": webhook["id"],
                }
            )
            for _ in range(self.retries + 1):
                answer = self.post(webhook["url"], body, signing_key)
                self.webhook_answers.append(answer)
                if 200 <= answer < 300:
                    break
                time.sleep(RETRY_DELAY)

    def post(self, url: str, body: str, signing_key: str | None = None) -> int:
        timestamp = str(int(time.time()))
        key = self.signing_key if signing_key is None else signing_key
        signature = hmac.new(key.encode(), (body + timestamp).encode(), hashlib.sha256)
        request = urllib.request.Request(
            url,
            data=body.encode("utf-8"),
            headers={
                "Content-Type": "application/json",
                "X-Timestamp": timestamp,
                "X-Signature": signature.hexdigest(),
            },
        )
        try:
            with urllib.request.urlopen(request, timeout=5) as answer:
                return answer.status
        except urllib.error.HTTPError as error:
            return error.code
        except OSError:
            return 0  # nobody listening: the app retries later

    # --- the app -----------------------------------------------------------------------

    def handle(self, method: str, path: str, authorized: bool, body) -> tuple[int, object]:
        if path == "/health":
            return 200, self._health()
        if not authorized:
            return 401, "Unauthorized"
        parts = path.strip("/").split("/")
        with self._lock:
            if (method, parts[0]) == ("GET", "device"):
                return 200, [self._device()]
            if (method, parts) == ("POST", ["message"]):
                return self._post_message(body)
            if method == "GET" and parts[0] == "message" and len(parts) == 2:
                message = self.messages.get(parts[1])
                return (200, _view(message)) if message else (404, "Not Found")
            if (method, parts) == ("POST", ["webhooks"]):
                return self._post_webhook(body)
            if (method, parts) == ("GET", ["webhooks"]):
                return 200, list(self.webhooks.values())
            if method == "DELETE" and parts[0] == "webhooks" and len(parts) == 2:
                self.webhooks.pop(parts[1], None)
                return 204, None
        return 404, "Not Found"

    def _post_message(self, body: dict) -> tuple[int, object]:
        if body["id"] in self.messages:
            return 409, {"message": "Message with the same ID already exists"}
        sim = body.get("simNumber")
        if sim is not None and sim < 1:
            return 400, {"message": "SIM number cannot be less than 1"}
        message = {
            "id": body["id"],
            "to": body["phoneNumbers"][0],
            "text": body["textMessage"]["text"],
            "simNumber": sim,
            "withDeliveryReport": body.get("withDeliveryReport", True),
            "state": "Pending",
            "error": None,
        }
        self.messages[message["id"]] = message
        answer = _view(message)
        if not self.held:
            threading.Timer(0.05, self._process, (message,)).start()
        return 202, answer

    def _process(self, message: dict) -> None:
        with self._lock:
            if self.refuse_next:
                result, self.refuse_next = self.refuse_next, None
                message["state"] = "Failed"
                message["error"] = "Send result: " + _result_text(result)
            elif message["simNumber"] is not None and message["simNumber"] > self.sims:
                message["state"] = "Failed"
                message["error"] = f"Can't send message: SIM {message['simNumber']} not found"
            else:
                message["state"] = "Sent"
                self.network.append(
                    {
                        "to": message["to"],
                        "text": message["text"],
                        "simNumber": message["simNumber"],
                    }
                )

    def _post_webhook(self, body: dict) -> tuple[int, object]:
        url = body["url"]
        if not (url.startswith("https://") or urlsplit(url).hostname == "127.0.0.1"):
            return 400, {"message": "url must start with https:// or http://127.0.0.1"}
        webhook = {"id": body.get("id") or f"wh{len(self.webhooks)}", "url": url}
        webhook.update(deviceId=None, event=body["event"], source="Local")
        self.webhooks[webhook["id"]] = webhook
        return 201, webhook

    def _device(self) -> dict:
        sims = [
            {"slotIndex": slot, "simNumber": slot + 1, "phoneNumber": None, "carrierName": "Mattel"}
            for slot in range(self.sims)
        ]
        return {"id": "PyDmBQZZXYmyxMwED8Fzy", "name": "samsung/a10", "simCards": sims}

    def _health(self) -> dict:
        return {
            "status": "pass",
            "version": "1.68.0",
            "releaseId": 68,
            "checks": {
                "battery:level": {
                    "status": "pass",
                    "observedValue": 64,
                    "observedUnit": "percent",
                    "description": "Battery level in percent",
                }
            },
        }


def _result_text(result: str) -> str:
    if result in RESULT_TEXTS:
        return f"{result} ({RESULT_TEXTS[result]})"
    return f"Unknown error code: {result}."


def _view(message: dict) -> dict:
    return {
        "id": message["id"],
        "deviceId": "PyDmBQZZXYmyxMwED8Fzy",
        "state": message["state"],
        "isHashed": False,
        "isEncrypted": False,
        "recipients": [
            {"phoneNumber": message["to"], "state": message["state"], "error": message["error"]}
        ],
        "states": {},
    }


def _now() -> str:
    return datetime.now().astimezone().isoformat(timespec="milliseconds")


def _handler(app: FakeSmsGateApp) -> type[BaseHTTPRequestHandler]:
    expected = "Basic " + base64.b64encode(f"{USERNAME}:{PASSWORD}".encode()).decode()

    class Handler(BaseHTTPRequestHandler):
        def _serve(self):
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            body = json.loads(raw) if raw else None
            authorized = self.headers.get("Authorization") == expected
            status, answer = app.handle(self.command, urlsplit(self.path).path, authorized, body)
            data = b"" if answer is None else json.dumps(answer).encode("utf-8")
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_DELETE = _serve

        def log_message(self, format, *args):  # noqa: A002 - the stdlib's name
            pass

    return Handler
