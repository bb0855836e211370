"""Integration fixtures: real local servers standing in for outside services."""

from .whatsapp_fake import provider  # noqa: F401  (fixture: a fake WhatsApp Cloud API)
