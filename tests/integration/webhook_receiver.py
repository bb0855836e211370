"""A real HTTP(S) webhook receiver on 127.0.0.1 for the webhook tests (standard library only).

``answers`` is a script: each request pops the next answer (the last one repeats):
an int status, ("redirect", status, location), or ("sleep", seconds, status).
``verify`` is an independent Standard Webhooks signature check.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import ssl
import threading
import time
from http.server import BaseHTTPRequestHandler

from tests.loopback import LoopbackServer


def verify(secret: str, headers: dict, body: bytes, tolerance: float | None = None) -> dict:
    """Check a webhook the way a receiver should; return the JSON payload or raise."""
    event_id, timestamp = headers["webhook-id"], headers["webhook-timestamp"]
    if tolerance is not None and abs(time.time() - int(timestamp)) > tolerance:
        raise ValueError("timestamp outside the tolerance")
    key = base64.b64decode(secret.split("_", 1)[1])
    expected = base64.b64encode(
        hmac.new(key, f"{event_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    ).decode()
    signatures = [
        s.split(",", 1)[1] for s in headers["webhook-signature"].split(" ") if s.startswith("v1,")
    ]
    if not any(hmac.compare_digest(expected, s) for s in signatures):
        raise ValueError("bad signature")
    return json.loads(body)


class Receiver:
    def __init__(self, answers=(200,), certfile: str | None = None):
        self.answers = list(answers)
        self.requests: list[dict] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *_args):
                pass

            def _any(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                with receiver.lock:
                    receiver.requests.append(
                        {
                            "method": self.command,
                            "path": self.path,
                            "headers": {k.lower(): v for k, v in self.headers.items()},
                            "body": body,
                        }
                    )
                    answer = (
                        receiver.answers.pop(0)
                        if len(receiver.answers) > 1
                        else receiver.answers[0]
                    )
                extra = {}
                if isinstance(answer, tuple) and answer[0] == "sleep":
                    time.sleep(answer[1])
                    answer = answer[2]
                elif isinstance(answer, tuple) and answer[0] == "redirect":
                    extra["Location"] = answer[2]
                    answer = answer[1]
                payload = b'{"ok": true}'
                try:
                    self.send_response(answer)
                    for name, value in extra.items():
                        self.send_header(name, value)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            do_POST = do_GET = do_PUT = _any

        self.server = LoopbackServer(("127.0.0.1", 0), Handler)
        self.scheme = "http"
        if certfile:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(certfile)
            self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
            self.scheme = "https"
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def url(self, path: str = "/hook", host: str = "127.0.0.1") -> str:
        return f"{self.scheme}://{host}:{self.port}{path}"

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *_exc):
        self.server.shutdown()
        self.server.server_close()

    def wait_for(self, count: int, seconds: float = 10) -> list[dict]:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.requests) >= count:
                    return list(self.requests)
            time.sleep(0.02)
        with self.lock:
            return list(self.requests)
