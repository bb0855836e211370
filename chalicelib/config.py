"""Settings, read once from the environment (set per stage in .chalice/config.json).

Every setting is listed here with its meaning; the README's configuration table mirrors it.
"""
from __future__ import annotations

import functools
import os
from dataclasses import dataclass


def _env(name: str, default: str = "") -> str:
    return os.environ.get(name, default)


@dataclass(frozen=True)
class Settings:
    # DynamoDB tables
    keys_table: str           # SMSGW_KEYS_TABLE: API, device and OAuth2 credentials (hashed)
    messages_table: str       # SMSGW_MESSAGES_TABLE: outbound and inbound SMS
    otps_table: str           # SMSGW_OTPS_TABLE: one live OTP per phone, key and channel
    rate_limits_table: str    # SMSGW_RATE_LIMITS_TABLE: fixed-window counters
    devices_table: str        # SMSGW_DEVICES_TABLE: registered phones and modems
    # SQS queues (name or URL)
    outbound_queue: str       # SMSGW_OUTBOUND_QUEUE: bulk SMS for the device bridges
    priority_queue: str       # SMSGW_PRIORITY_QUEUE: OTP SMS, polled first by the bridges
    # Secrets
    secret_key: bytes         # SMSGW_SECRET_KEY: HMAC key for OTP hashes and signed cursors (set in prod)
    # Behaviour
    key_cache_seconds: float  # SMSGW_KEY_CACHE_SECONDS: how long a Lambda trusts a checked key
    max_segments: int         # SMSGW_MAX_SEGMENTS: longest accepted SMS, in segments
    otp_ttl_seconds: int      # SMSGW_OTP_TTL_SECONDS: OTP validity (the seed says 600)
    otp_brand: str            # SMSGW_OTP_BRAND: name shown in OTP texts
    message_retention_days: int  # SMSGW_MESSAGE_RETENTION_DAYS: TTL of the message log
    # WhatsApp Business Cloud API (OTP channel "whatsapp"); unset token = channel off
    whatsapp_api_url: str     # SMSGW_WHATSAPP_API_URL
    whatsapp_token: str       # SMSGW_WHATSAPP_TOKEN
    whatsapp_phone_number_id: str  # SMSGW_WHATSAPP_PHONE_NUMBER_ID
    whatsapp_template: str    # SMSGW_WHATSAPP_TEMPLATE: approved authentication template
    whatsapp_timeout: float   # SMSGW_WHATSAPP_TIMEOUT: seconds before a 502

    @property
    def whatsapp_enabled(self) -> bool:
        return bool(self.whatsapp_token and self.whatsapp_phone_number_id)


@functools.lru_cache(maxsize=1)
def settings() -> Settings:
    prefix = _env("SMSGW_RESOURCE_PREFIX", "chinqit-dev")
    return Settings(
        keys_table=_env("SMSGW_KEYS_TABLE", f"{prefix}-keys"),
        messages_table=_env("SMSGW_MESSAGES_TABLE", f"{prefix}-messages"),
        otps_table=_env("SMSGW_OTPS_TABLE", f"{prefix}-otps"),
        rate_limits_table=_env("SMSGW_RATE_LIMITS_TABLE", f"{prefix}-rate-limits"),
        devices_table=_env("SMSGW_DEVICES_TABLE", f"{prefix}-devices"),
        outbound_queue=_env("SMSGW_OUTBOUND_QUEUE", f"{prefix}-outbound"),
        priority_queue=_env("SMSGW_PRIORITY_QUEUE", f"{prefix}-outbound-priority"),
        secret_key=_env("SMSGW_SECRET_KEY", "dev-only-secret-key").encode(),
        key_cache_seconds=float(_env("SMSGW_KEY_CACHE_SECONDS", "30")),
        max_segments=int(_env("SMSGW_MAX_SEGMENTS", "10")),
        otp_ttl_seconds=int(_env("SMSGW_OTP_TTL_SECONDS", "600")),
        otp_brand=_env("SMSGW_OTP_BRAND", "Chinqit"),
        message_retention_days=int(_env("SMSGW_MESSAGE_RETENTION_DAYS", "90")),
        whatsapp_api_url=_env("SMSGW_WHATSAPP_API_URL", "https://graph.facebook.com/v21.0").rstrip("/"),
        whatsapp_token=_env("SMSGW_WHATSAPP_TOKEN"),
        whatsapp_phone_number_id=_env("SMSGW_WHATSAPP_PHONE_NUMBER_ID"),
        whatsapp_template=_env("SMSGW_WHATSAPP_TEMPLATE", "otp"),
        whatsapp_timeout=float(_env("SMSGW_WHATSAPP_TIMEOUT", "5")),
    )
