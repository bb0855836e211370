"""One-time codes as an *authentication template* message.

The template must be an approved authentication template with a copy-code (URL) button;
Meta requires the code both as the body parameter and as the button's URL parameter.
"""

from __future__ import annotations

from ..config import settings
from ..errors import ValidationError
from . import cloud

LANGUAGES = frozenset({"fr", "en", "ar"})


def _template(code: str, language: str) -> dict:
    parameters = [{"type": "text", "text": code}]
    return {
        "type": "template",
        "template": {
            "name": settings().whatsapp_template,
            "language": {"code": language},
            "components": [
                {"type": "body", "parameters": list(parameters)},
                {"type": "button", "sub_type": "url", "index": "0", "parameters": list(parameters)},
            ],
        },
    }


def send_otp(phone_e164: str, code: str, language: str, reference: str = "") -> str:
    """Send ``code`` to ``phone_e164`` on WhatsApp; return the provider's message id.

    Raises ``BadRequest`` if the channel is not configured, ``ValidationError`` for a
    malformed phone, empty code or unsupported language, and ``ProviderError`` (HTTP 502)
    when the Cloud API fails or refuses.
    """
    cloud.require_configured()
    to = cloud.recipient(phone_e164)
    if not isinstance(code, str) or not code.strip():
        raise ValidationError.field("code", "must be a non-empty string")
    if language not in LANGUAGES:
        raise ValidationError.field("language", f"must be one of {', '.join(sorted(LANGUAGES))}")
    return cloud.send(to, _template(code, language), reference, secrets=(code,))
