"""chalicelib.whatsapp against a real local HTTP server that answers like the Cloud API."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from chalicelib import whatsapp
from chalicelib.config import settings
from chalicelib.errors import BadRequest, ProviderError, ValidationError
from tests.logcapture import capture_all, text

from .whatsapp_fake import CODE, PHONE_ID, TOKEN

ROOT = Path(__file__).resolve().parents[2]


def _assert_clean(err: ProviderError):
    text = str(err) + json.dumps(err.body())
    assert CODE not in text
    assert TOKEN not in text
    assert err.status == 502


def test_success_sends_authentication_template(provider):
    message_id = whatsapp.send_otp("+22238089336", CODE, "fr")

    assert message_id == "wamid.HBgLMjIyMzgwODkzMzYVAgARGBI"
    assert len(provider.requests) == 1
    req = provider.requests[0]
    assert req["path"] == f"/v21.0/{PHONE_ID}/messages"
    assert req["headers"]["Authorization"] == f"Bearer {TOKEN}"
    assert req["headers"]["Content-Type"] == "application/json"
    body = req["body"]
    assert body["messaging_product"] == "whatsapp"
    assert body["recipient_type"] == "individual"
    assert body["to"] == "22238089336"
    assert body["type"] == "template"
    template = body["template"]
    assert template["name"] == "chinqit_otp"
    assert template["language"] == {"code": "fr"}
    assert template["components"] == [
        {"type": "body", "parameters": [{"type": "text", "text": CODE}]},
        {
            "type": "button",
            "sub_type": "url",
            "index": "0",
            "parameters": [{"type": "text", "text": CODE}],
        },
    ]


@pytest.mark.parametrize("language", ["en", "ar"])
def test_language_code_passed_through(provider, language):
    whatsapp.send_otp("+22238089336", CODE, language)
    assert provider.requests[0]["body"]["template"]["language"] == {"code": language}


def test_session_is_reused(provider):
    whatsapp.send_otp("+22238089336", CODE, "en")
    first = whatsapp.cloud._session
    whatsapp.send_otp("+22238089336", CODE, "en")
    assert first is not None and whatsapp.cloud._session is first
    assert len(provider.requests) == 2


def test_graph_error_becomes_provider_error_with_details(provider):
    provider.mode = "failure"
    with pytest.raises(ProviderError) as info:
        whatsapp.send_otp("+22238089336", CODE, "fr")
    message = str(info.value)
    assert "HTTP 400" in message
    assert "Number of parameters does not match" in message
    assert "132000" in message and "2494010" in message
    _assert_clean(info.value)


def test_provider_text_is_scrubbed_of_code_and_token(provider):
    provider.mode = "echo"
    with pytest.raises(ProviderError) as info:
        whatsapp.send_otp("+22238089336", CODE, "fr")
    assert "Bad param" in str(info.value)
    _assert_clean(info.value)


def test_unauthorized(provider):
    provider.mode = "unauthorized"
    with pytest.raises(ProviderError) as info:
        whatsapp.send_otp("+22238089336", CODE, "fr")
    assert "HTTP 401" in str(info.value) and "190" in str(info.value)
    _assert_clean(info.value)


def test_server_error_without_json(provider):
    provider.mode = "500"
    with pytest.raises(ProviderError) as info:
        whatsapp.send_otp("+22238089336", CODE, "fr")
    assert "HTTP 500" in str(info.value)
    assert "html" not in str(info.value).lower()
    _assert_clean(info.value)


def test_slow_provider_times_out(provider):
    provider.mode = "slow"
    with pytest.raises(ProviderError) as info:
        whatsapp.send_otp("+22238089336", CODE, "fr")
    assert "did not answer in time" in str(info.value)
    assert info.value.__cause__ is None and info.value.__suppress_context__
    _assert_clean(info.value)


def test_redirect_is_not_followed(provider):
    provider.mode = "redirect"
    with pytest.raises(ProviderError) as info:
        whatsapp.send_otp("+22238089336", CODE, "fr")
    assert "redirect" in str(info.value) and "302" in str(info.value)
    assert [r["path"] for r in provider.requests] == [f"/v21.0/{PHONE_ID}/messages"]
    _assert_clean(info.value)


@pytest.mark.parametrize("mode", ["no_id", "not_json"])
def test_success_without_message_id(provider, mode):
    provider.mode = mode
    with pytest.raises(ProviderError) as info:
        whatsapp.send_otp("+22238089336", CODE, "fr")
    assert "without a message id" in str(info.value)
    _assert_clean(info.value)


def test_unreachable_provider(provider, monkeypatch):
    provider.server.shutdown()
    provider.server.server_close()  # port is now closed: connection refused
    with pytest.raises(ProviderError) as info:
        whatsapp.send_otp("+22238089336", CODE, "fr")
    assert "could not be reached" in str(info.value) or "did not answer" in str(info.value)
    _assert_clean(info.value)


def test_not_configured(monkeypatch):
    monkeypatch.delenv("SMSGW_WHATSAPP_TOKEN", raising=False)
    monkeypatch.delenv("SMSGW_WHATSAPP_PHONE_NUMBER_ID", raising=False)
    settings.cache_clear()
    try:
        with pytest.raises(BadRequest) as info:
            whatsapp.send_otp("+22238089336", CODE, "fr")
        assert info.value.status == 400
        assert info.value.message == "WhatsApp channel is not configured on this gateway"
        assert info.value.errors[0]["field"] == "channel"
    finally:
        settings.cache_clear()


@pytest.mark.parametrize(
    "phone, code, language, field",
    [
        ("+0123", CODE, "fr", "phone"),
        ("22238089336abc", CODE, "fr", "phone"),
        ("+22238089336", "", "fr", "code"),
        ("+22238089336", CODE, "de", "language"),
    ],
)
def test_invalid_input_is_rejected_before_any_request(provider, phone, code, language, field):
    with pytest.raises(ValidationError) as info:
        whatsapp.send_otp(phone, code, language)
    assert info.value.errors[0]["field"] == field
    assert provider.requests == []


def test_import_does_not_import_requests():
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; import chalicelib.whatsapp; print('requests' in sys.modules)",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"


@pytest.mark.parametrize(
    "mode", ["success", "failure", "echo", "unauthorized", "500", "slow", "redirect", "no_id"]
)
def test_logs_never_contain_code_or_token(provider, mode):
    provider.mode = mode
    with capture_all() as records:
        try:
            whatsapp.send_otp("+22238089336", CODE, "fr")
        except ProviderError:
            pass
    assert any(r.name == whatsapp.logger.name for r in records), "chinqit.whatsapp logged nothing"
    for record in records:
        assert CODE not in text(record) and TOKEN not in text(record), text(record)
