"""The WhatsApp Business Cloud API client: one POST to ``/{phone-number-id}/messages``.

Cold start: ``requests`` is imported inside the function that needs it, never at module
import, and one ``requests.Session`` (connection pool) is created on first use and reused
for the life of the Lambda container.

Secrets (an OTP code, the access token) are never logged and never put in an error
message; provider error texts are scrubbed of them before they reach an exception.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from ..config import settings
from ..errors import BadRequest, ProviderError, ValidationError

logger = logging.getLogger("chinqit.whatsapp")

_PHONE_DIGITS = re.compile(r"^[1-9][0-9]{6,14}$")  # E.164 without "+": at most 15 digits
_MAX_PROVIDER_TEXT = 300  # longest provider error text copied into our message

# Graph error codes of a template Meta does not know, or will not fill in as given
TEMPLATE_ERRORS = frozenset({132000, 132001, 132005, 132007, 132012, 132015, 132016})
OUTSIDE_WINDOW = 131047  # free text more than 24 hours after the customer's last message

_session: Any = None  # requests.Session, created lazily by _get_session()


class Rejected(ProviderError):
    """The Cloud API answered with an error; ``code`` is its Graph error code (or None)."""

    def __init__(self, message: str, code: int | None):
        super().__init__(message)
        self.code = code


def _get_session() -> Any:
    global _session
    if _session is None:
        import requests

        _session = requests.Session()
    return _session


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


def recipient(phone_e164: str) -> str:
    """The Cloud API's ``to``: the E.164 digits without "+"."""
    to = (phone_e164 or "").strip()
    to = to[1:] if to.startswith("+") else to
    if not _PHONE_DIGITS.match(to):
        raise ValidationError.field("phone", "must be an E.164 number, e.g. +22238089336")
    return to


def _scrub(text: str, secrets: tuple) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text[:_MAX_PROVIDER_TEXT]


def _graph_error(response: Any) -> dict:
    try:
        body = response.json()
    except ValueError:
        return {}
    error = body.get("error") if isinstance(body, dict) else None
    return error if isinstance(error, dict) else {}


def _provider_detail(error: dict, secrets: tuple) -> str:
    """``error.message`` and codes from a Graph-style error, scrubbed; '' if none."""
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


def _code(error: dict) -> int | None:
    code = error.get("code")
    return code if isinstance(code, int) and not isinstance(code, bool) else None


def send(to: str, content: dict, reference: str, secrets: tuple = ()) -> str:
    """Send one message (``content``: its ``type`` and that type's object) to ``to``;
    return the provider's message id. ``reference`` (our message id) comes back in
    Meta's status webhooks as ``biz_opaque_callback_data``.

    Raises ``Rejected`` when the Cloud API answers an error, and ``ProviderError`` (HTTP
    502) for timeouts, connection failures, redirects or a 2xx without id.
    """
    require_configured()
    cfg = settings()
    secrets = (*secrets, cfg.whatsapp_token)
    payload = {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": to,
        **({"biz_opaque_callback_data": reference} if reference else {}),
        **content,
    }
    import requests

    try:
        response = _get_session().post(
            f"{cfg.whatsapp_api_url}/{cfg.whatsapp_phone_number_id}/messages",
            json=payload,
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
    return _message_id(response, secrets)


def _message_id(response: Any, secrets: tuple) -> str:
    status = response.status_code
    if 300 <= status < 400:
        logger.warning("whatsapp provider answered with redirect HTTP %s", status)
        raise ProviderError(
            f"WhatsApp provider answered with an unexpected redirect (HTTP {status})"
        )
    if not 200 <= status < 300:
        error = _graph_error(response)
        detail = _provider_detail(error, secrets)
        logger.warning("whatsapp provider rejected the message: HTTP %s %s", status, detail)
        message = f"WhatsApp provider rejected the message (HTTP {status})"
        raise Rejected(f"{message}: {detail}" if detail else message, _code(error))
    message_id: str | None = None
    try:
        message_id = response.json()["messages"][0]["id"]
    except (ValueError, KeyError, IndexError, TypeError):
        message_id = None
    if not isinstance(message_id, str) or not message_id:
        logger.warning("whatsapp provider answered HTTP %s without a message id", status)
        raise ProviderError("WhatsApp provider answered without a message id")
    logger.info("whatsapp message accepted by provider: %s", message_id)
    return message_id
