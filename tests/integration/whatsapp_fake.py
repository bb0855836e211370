"""A local HTTP server that answers like the WhatsApp Cloud API, Meta's signed webhook
posts (statuses and customers' messages), and the fixture that points the gateway at them."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from http.server import BaseHTTPRequestHandler

import pytest

from chalicelib.config import settings
from tests.loopback import LoopbackServer

TOKEN = "EAAG-test-token-s3cr3t"
PHONE_ID = "109876543210"
CODE = "482916"
TIMEOUT = 0.3
APP_SECRET = "meta-app-secret-0123456789abcdef"
VERIFY_TOKEN = "chinqit-verify-token"

SUCCESS = {
    "messaging_product": "whatsapp",
    "contacts": [{"input": "22238089336", "wa_id": "22238089336"}],
    "messages": [{"id": "wamid.HBgLMjIyMzgwODkzMzYVAgARGBI"}],
}
GRAPH_ERROR = {
    "error": {
        "message": "(#132000) Number of parameters does not match the expected number of params",
        "type": "OAuthException",
        "code": 132000,
        "error_subcode": 2494010,
        "fbtrace_id": "AbCdEfGhIjK",
    }
}
NO_TEMPLATE = {
    "error": {
        "message": "(#132001) Template name does not exist in the translation",
        "type": "OAuthException",
        "code": 132001,
        "error_data": {
            "messaging_product": "whatsapp",
            "details": "template name (promo) does not exist in fr",
        },
        "fbtrace_id": "AbCdEfGhIjK",
    }
}


def wamid(number: int) -> str:
    """The id the fake gives its ``number``-th accepted message (the first: SUCCESS's)."""
    first = SUCCESS["messages"][0]["id"]
    return first if number == 1 else f"{first}{number}"


class FakeProvider:
    def __init__(self):
        self.mode = "success"
        self.requests: list[dict] = []
        self.release = threading.Event()
        state = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep pytest output quiet
                pass

            def _send(self, status, body, content_type="application/json", headers=None):
                raw = body if isinstance(body, bytes) else json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(raw)))
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(raw)

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                state.requests.append(
                    {
                        "path": self.path,
                        "headers": dict(self.headers),
                        "body": json.loads(raw) if raw else None,
                    }
                )
                try:
                    state.answer(self)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            do_GET = do_POST

        self.server = LoopbackServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v21.0"
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def answer(self, h):
        mode = self.mode
        if mode == "success":
            h._send(200, {**SUCCESS, "messages": [{"id": wamid(len(self.requests))}]})
        elif mode == "no_template":
            h._send(400, NO_TEMPLATE)
        elif mode == "failure":
            h._send(400, GRAPH_ERROR)
        elif mode == "echo":  # error text echoing the code and the token
            h._send(400, {"error": {"message": f"Bad param {CODE} for token {TOKEN}", "code": 100}})
        elif mode == "unauthorized":
            h._send(
                401,
                {
                    "error": {
                        "message": "Error validating access token",
                        "type": "OAuthException",
                        "code": 190,
                        "fbtrace_id": "X",
                    }
                },
            )
        elif mode == "500":
            h._send(500, b"<html>Internal Server Error</html>", content_type="text/html")
        elif mode == "slow":
            self.release.wait(TIMEOUT * 10)
            if not self.release.is_set():
                h._send(200, SUCCESS)
        elif mode == "redirect":
            h._send(302, b"", headers={"Location": f"{self.url}/elsewhere"})
        elif mode == "no_id":
            h._send(200, {"messaging_product": "whatsapp", "messages": []})
        elif mode == "not_json":
            h._send(200, b"ok", content_type="text/plain")
        else:  # pragma: no cover
            h._send(418, {})

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def provider(monkeypatch):
    for name in (
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "ALL_PROXY",
        "http_proxy",
        "https_proxy",
        "all_proxy",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    with FakeProvider() as fake:
        monkeypatch.setenv("SMSGW_WHATSAPP_API_URL", fake.url + "/")
        monkeypatch.setenv("SMSGW_WHATSAPP_TOKEN", TOKEN)
        monkeypatch.setenv("SMSGW_WHATSAPP_PHONE_NUMBER_ID", PHONE_ID)
        monkeypatch.setenv("SMSGW_WHATSAPP_TEMPLATE", "chinqit_otp")
        monkeypatch.setenv("SMSGW_WHATSAPP_TIMEOUT", str(TIMEOUT))
        monkeypatch.setenv("SMSGW_WHATSAPP_APP_SECRET", APP_SECRET)
        monkeypatch.setenv("SMSGW_WHATSAPP_VERIFY_TOKEN", VERIFY_TOKEN)
        settings.cache_clear()
        yield fake
    settings.cache_clear()


# --- Meta's webhook -----------------------------------------------------------------------


def _envelope(value: dict) -> dict:
    return {
        "object": "whatsapp_business_account",
        "entry": [
            {
                "id": "102290129340398",
                "changes": [
                    {
                        "field": "messages",
                        "value": {
                            "messaging_product": "whatsapp",
                            "metadata": {
                                "display_phone_number": "22245000000",
                                "phone_number_id": PHONE_ID,
                            },
                            **value,
                        },
                    }
                ],
            }
        ],
    }


def status_event(message_id, status, recipient="22238089336", provider_id=None, errors=None):
    """Meta's post of one status of the message we sent as ``message_id``."""
    item = {
        "id": provider_id or wamid(1),
        "status": status,
        "timestamp": str(int(time.time())),
        "recipient_id": recipient,
        "biz_opaque_callback_data": message_id,
        **({"errors": errors} if errors else {}),
    }
    if status in ("sent", "delivered"):
        item["pricing"] = {"billable": True, "pricing_model": "PMP", "category": "marketing"}
    return _envelope({"statuses": [item]})


def message_event(sender="22238089336", text="Bonjour", message_id="wamid.IN1", kind="text"):
    """Meta's post of a customer's message to the gateway's number."""
    item = {"from": sender, "id": message_id, "timestamp": str(int(time.time())), "type": kind}
    item[kind] = (
        {"body": text}
        if kind == "text"
        else {"caption": text, "mime_type": "image/jpeg", "id": "1"}
    )
    return _envelope(
        {"contacts": [{"profile": {"name": "Aïcha"}, "wa_id": sender}], "messages": [item]}
    )


def signed(payload: dict, secret: str = APP_SECRET) -> tuple[str, dict]:
    """The raw body and the X-Hub-Signature-256 header Meta sends with it."""
    raw = json.dumps(payload, separators=(",", ":"), ensure_ascii=False)
    digest = hmac.new(secret.encode(), raw.encode(), hashlib.sha256).hexdigest()
    return raw, {"X-Hub-Signature-256": f"sha256={digest}"}
