"""An HTTP proxy on 127.0.0.1 that tests put between the gateway and its AWS (moto) to
inject faults, per AWS operation (the ``X-Amz-Target`` of the JSON protocols, e.g.
``DynamoDB_20120810.TransactWriteItems`` or ``AmazonSQS.SendMessage``; ``Action`` of
the query protocols, e.g. ``AssumeRole``):

- ``freeze()`` forwards nothing either way until ``thaw()`` (connections stay open and
  silent, as when a network path or an endpoint hangs);
- ``fail(prefix, rate)`` answers that share of the matching calls with the service's own
  500 InternalServerError, as AWS does on a bad day (``fail(prefix, 0)`` stops); with
  ``after_forwarding`` the call is carried out first and only its answer is lost, so the
  caller's retry repeats a call that took effect;
- ``hold(prefix)`` keeps matching calls waiting, unforwarded, until ``release()``; with
  ``release(forward=False)`` they are dropped (their connection closed unanswered), as
  when the caller dies while its call is on the wire.
"""

from __future__ import annotations

import http.client
import json
import random
import sys
import threading
from http.server import BaseHTTPRequestHandler
from urllib.parse import parse_qs

from tests.loopback import LoopbackServer

HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "proxy-connection", "te"}
UPSTREAM_TIMEOUT = 60.0


class _Server(LoopbackServer):
    def handle_error(self, request, client_address):
        if not isinstance(sys.exc_info()[1], ConnectionError):  # a client killed mid-call
            super().handle_error(request, client_address)


class FaultProxy:
    def __init__(self, target_host: str, target_port: int, seed: int = 7):
        self.target = (target_host, target_port)
        self._flowing = threading.Event()
        self._flowing.set()
        self._lock = threading.Lock()
        # operation prefix -> (share of calls failed, whether they are forwarded first)
        self._failing: dict[str, tuple[float, bool]] = {}
        self._held: dict[str, threading.Event] = {}  # operation prefix -> set on release
        self._forward_held = True
        self._rng = random.Random(seed)
        self.calls: dict[str, int] = {}  # operation -> calls seen
        self.injected: dict[str, int] = {}  # operation -> errors answered
        self.waiting = 0  # calls held now
        self._server = _Server(("127.0.0.1", 0), _handler(self))
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def freeze(self) -> None:
        self._flowing.clear()

    def thaw(self) -> None:
        self._flowing.set()

    def fail(self, prefix: str, rate: float, after_forwarding: bool = False) -> None:
        with self._lock:
            if rate > 0:
                self._failing[prefix] = (rate, after_forwarding)
            else:
                self._failing.pop(prefix, None)

    def hold(self, prefix: str) -> None:
        with self._lock:
            self._held[prefix] = threading.Event()
            self._forward_held = True

    def release(self, forward: bool = True) -> None:
        with self._lock:
            self._forward_held = forward
            released, self._held = self._held, {}
        for event in released.values():
            event.set()

    def close(self) -> None:
        self.release()
        self.thaw()
        self._server.shutdown()
        self._server.server_close()

    # ------------------------------------------------------------------ per call

    def fate(self, operation: str) -> str:
        """What happens to one call: "forward", "fail", "fail after forwarding" or, after a
        hold, "drop"."""
        with self._lock:
            self.calls[operation] = self.calls.get(operation, 0) + 1
            hold = next((e for p, e in self._held.items() if operation.startswith(p)), None)
            rate, after_forwarding = next(
                (f for p, f in self._failing.items() if operation.startswith(p)), (0.0, False)
            )
            if rate > 0 and self._rng.random() < rate:
                self.injected[operation] = self.injected.get(operation, 0) + 1
                return "fail after forwarding" if after_forwarding else "fail"
            if hold is None:
                return "forward"
            self.waiting += 1
        hold.wait()
        with self._lock:
            self.waiting -= 1
            return "forward" if self._forward_held else "drop"

    def wait_flowing(self) -> None:
        self._flowing.wait()


def _operation(headers, body: bytes) -> str:
    target = headers.get("X-Amz-Target")
    if target:
        return target
    action = parse_qs(body.decode("utf-8", "replace")).get("Action")
    return action[0] if action else "unknown"


def _handler(proxy: FaultProxy):
    local = threading.local()  # one upstream connection per client connection's thread

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *_args):
            pass

        def _any(self):
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            operation = _operation(self.headers, body)
            proxy.wait_flowing()  # a frozen path does not even forward the request
            fate = proxy.fate(operation)
            if fate == "drop":
                self.close_connection = True
                return
            if fate == "fail":
                self._answer(500, _error_headers(self.headers), _error_body(operation))
                return
            try:
                status, headers, answer = self._forward(body)
            except (OSError, http.client.HTTPException):
                self.close_connection = True  # as a dead endpoint would
                return
            proxy.wait_flowing()
            if fate == "fail after forwarding":
                self._answer(500, _error_headers(self.headers), _error_body(operation))
            else:
                self._answer(status, headers, answer)

        def _forward(self, body: bytes) -> tuple[int, list, bytes]:
            try:
                return self._exchange(body)
            except (OSError, http.client.HTTPException):  # a kept-alive upstream closed
                local.upstream.close()
                local.upstream = None
                return self._exchange(body)

        def _exchange(self, body: bytes) -> tuple[int, list, bytes]:
            if getattr(local, "upstream", None) is None:
                local.upstream = http.client.HTTPConnection(*proxy.target, timeout=UPSTREAM_TIMEOUT)
            headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
            local.upstream.request(self.command, self.path, body=body, headers=headers)
            response = local.upstream.getresponse()
            return response.status, response.getheaders(), response.read()

        def _answer(self, status: int, headers: list, body: bytes) -> None:
            try:
                self.send_response(status)
                for name, value in headers:
                    if name.lower() not in HOP_BY_HOP | {"content-length"}:
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            except OSError:  # the caller gave up (its read timeout) meanwhile
                self.close_connection = True

        do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _any

    return Handler


def _error_headers(request_headers) -> list:
    if request_headers.get("X-Amz-Target"):
        return [("Content-Type", "application/x-amz-json-1.0")]
    return [("Content-Type", "text/xml")]


def _error_body(operation: str) -> bytes:
    message = f"injected by the fault proxy ({operation})"
    if "." in operation:  # a JSON protocol
        return json.dumps({"__type": "InternalServerError", "message": message}).encode()
    return (
        "<ErrorResponse><Error><Type>Receiver</Type><Code>InternalFailure</Code>"
        f"<Message>{message}</Message></Error></ErrorResponse>"
    ).encode()
