"""WhatsApp Business Cloud API: send an OTP as an *authentication template* message.

One public function, :func:`send_otp`. The template must be an approved authentication
template with a copy-code (URL) button; Meta requires the code both as the body parameter
and as the button's URL parameter, which is the shape built by :func:`_payload`.

Cold start: ``requests`` is imported inside the function that needs it, never at module
import, and one ``requests.Session`` (connection pool) is created on first use and reused
for the life of the Lambda container.

Secrets: the OTP code and the access token are never logged and never put in an error
message; provider error texts are scrubbed of both before they reach an exception.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from chalicelib.config import settings
from chalicelib.errors import BadRequest, ProviderError, ValidationError

logger = logging.getLogger("chinqit.whatsapp")

LANGUAGES = frozenset({"fr", "en", "ar"})
_PHONE_DIGITS = re.compile(r"^[1-9][0-9]{6,14}$")  # E.164 without "+": at most 15 digits
_MAX_PROVIDER_TEXT = 300  # longest provider error text copied into our message

_session: Any = None  # requests.Session, created lazily by _get_session()


def _get_session() -> Any:
    global _session
    if _session is None:
        import requests

        _session = requests.Session()
    return _session


def _payload(to: str, code: str, language: str, template: str) -> dict:
    parameters = [{"type": "text", "text": code}]
    return {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": to,
        "type": "template",
        "template": {
            "name": template,
            "language": {"code": language},
            "components": [
                {"type": "body", "parameters": list(parameters)},
                {"type": "button", "sub_type": "url", "index": "0", "parameters": list(parameters)},
            ],
        },
    }


def _scrub(text: str, secrets: tuple) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text[:_MAX_PROVIDER_TEXT]


def _provider_detail(response: Any, secrets: tuple) -> str:
    """``error.message`` and codes from a Graph-style error body, scrubbed; '' if none."""
    try:
        body = response.json()
    except ValueError:
        return ""
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return ""
    parts = []
    message = error.get("message")
    if isinstance(message, str) and message.strip():
        parts.append(_scrub(message.strip(), secrets))
    codes = []
    for name in ("code", "error_subcode"):
        value = error.get(name)
        if isinstance(value, (int, str)) and not isinstance(value, bool) and str(value):
            codes.append(f"{name} {_scrub(str(value), secrets)}")
    if codes:
        parts.append(f"({', '.join(codes)})")
    return " ".join(parts)


def require_configured() -> None:
    """A 400 naming the channel when this gateway has no WhatsApp credentials."""
    if not settings().whatsapp_enabled:
        raise BadRequest(
            "WhatsApp channel is not configured on this gateway",
            errors=[
                {
                    "field": "channel",
                    "message": "WhatsApp is not configured on this gateway; use another channel",
                }
            ],
        )


def send_otp(phone_e164: str, code: str, language: str) -> str:
    """Send ``code`` to ``phone_e164`` on WhatsApp; return the provider's message id.

    Raises ``BadRequest`` if the channel is not configured, ``ValidationError`` for a
    malformed phone, empty code or unsupported language, and ``ProviderError`` (HTTP 502)
    for timeouts, connection failures, redirects, non-2xx answers or a 2xx without id.
    """
    require_configured()
    cfg = settings()
    to = (phone_e164 or "").strip()
    to = to[1:] if to.startswith("+") else to
    if not _PHONE_DIGITS.match(to):
        raise ValidationError.field("phone", "must be an E.164 number, e.g. +22238089336")
    if not isinstance(code, str) or not code.strip():
        raise ValidationError.field("code", "must be a non-empty string")
    if language not in LANGUAGES:
        raise ValidationError.field("language", f"must be one of {', '.join(sorted(LANGUAGES))}")

    import requests

    url = f"{cfg.whatsapp_api_url}/{cfg.whatsapp_phone_number_id}/messages"
    secrets = (code, cfg.whatsapp_token)
    try:
        response = _get_session().post(
            url,
            json=_payload(to, code, language, cfg.whatsapp_template),
            headers={"Authorization": f"Bearer {cfg.whatsapp_token}", "Accept": "application/json"},
            timeout=(cfg.whatsapp_timeout, cfg.whatsapp_timeout),
            allow_redirects=False,
        )
    except requests.Timeout:
        logger.warning("whatsapp send timed out after %.1fs", cfg.whatsapp_timeout)
        raise ProviderError("WhatsApp provider did not answer in time") from None
    except requests.ConnectionError:
        logger.warning("whatsapp provider unreachable")
        raise ProviderError("WhatsApp provider could not be reached") from None
    except requests.RequestException as exc:
        logger.warning("whatsapp request failed: %s", type(exc).__name__)
        raise ProviderError("WhatsApp provider request failed") from None

    status = response.status_code
    if 300 <= status < 400:
        logger.warning("whatsapp provider answered with redirect HTTP %s", status)
        raise ProviderError(
            f"WhatsApp provider answered with an unexpected redirect (HTTP {status})"
        )
    if not 200 <= status < 300:
        detail = _provider_detail(response, secrets)
        logger.warning("whatsapp provider rejected the message: HTTP %s %s", status, detail)
        message = f"WhatsApp provider rejected the message (HTTP {status})"
        raise ProviderError(f"{message}: {detail}" if detail else message)

    message_id: str | None = None
    try:
        body = response.json()
        message_id = body["messages"][0]["id"]
    except (ValueError, KeyError, IndexError, TypeError):
        message_id = None
    if not isinstance(message_id, str) or not message_id:
        logger.warning("whatsapp provider answered HTTP %s without a message id", status)
        raise ProviderError("WhatsApp provider answered without a message id")
    logger.info("whatsapp OTP accepted by provider: %s", message_id)
    return message_id
