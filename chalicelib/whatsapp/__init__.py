"""WhatsApp through the Business Cloud API: OTPs (``otp``), messages in and outside the
24-hour customer-service window (``messages``, ``window``) and Meta's webhook of statuses
and inbound messages (``webhook``). ``cloud`` is the one HTTP client."""

from .cloud import logger, require_configured
from .otp import send_otp

__all__ = ["logger", "require_configured", "send_otp"]
