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
    # SMSGW_RESOURCE_PREFIX: start of every resource name (tables, queues, stacks)
    resource_prefix: str
    # DynamoDB tables
    keys_table: str  # SMSGW_KEYS_TABLE: API, device and OAuth2 credentials (hashed)
    messages_table: str  # SMSGW_MESSAGES_TABLE: outbound and inbound SMS
    otps_table: str  # SMSGW_OTPS_TABLE: one live OTP per phone, key and channel
    rate_limits_table: str  # SMSGW_RATE_LIMITS_TABLE: fixed-window counters
    devices_table: str  # SMSGW_DEVICES_TABLE: registered phones and modems
    accounts_table: str  # SMSGW_ACCOUNTS_TABLE: per-account settings set by the operator (quotas)
    webhooks_table: str  # SMSGW_WEBHOOKS_TABLE: one webhook (URL, events, health) per account
    webhook_deliveries_table: (
        str  # SMSGW_WEBHOOK_DELIVERIES_TABLE: delivery state per event id (idempotency)
    )
    # SQS queues (name or URL)
    outbound_queue: str  # SMSGW_OUTBOUND_QUEUE: bulk SMS for the device bridges
    priority_queue: str  # SMSGW_PRIORITY_QUEUE: OTP SMS, polled first by the bridges
    webhook_queue: str  # SMSGW_WEBHOOK_QUEUE: webhook events for the worker Lambda (+ "-dlq")
    # SMSGW_BRIDGE_ROLE: IAM role (name or ARN) the bridges get short-lived credentials of
    bridge_role: str
    # Secrets
    # Server secret (HMAC key of OTP hashes and list cursors): SMSGW_SECRET_KEY itself, or the
    # Secrets Manager secret holding it (read once per container); see server_secret.py.
    secret_key: str  # SMSGW_SECRET_KEY
    secret_key_secret: (
        str  # SMSGW_SECRET_KEY_SECRET: secret name or ARN, e.g. chinqit-prod-secret-key
    )
    # SMSGW_STAGE (no default): only an explicit "dev" outside Lambda may run with the fixed
    # development secret or allow webhooks to loopback (the local stack).
    stage: str
    # Behaviour
    key_cache_seconds: float  # SMSGW_KEY_CACHE_SECONDS: how long a Lambda trusts a checked key
    max_segments: int  # SMSGW_MAX_SEGMENTS: longest accepted SMS, in segments
    otp_ttl_seconds: int  # SMSGW_OTP_TTL_SECONDS: OTP validity (the seed says 600)
    otp_brand: str  # SMSGW_OTP_BRAND: name shown in OTP texts
    message_retention_days: int  # SMSGW_MESSAGE_RETENTION_DAYS: TTL of the message log
    device_offline_seconds: int  # SMSGW_DEVICE_OFFLINE_SECONDS: no heartbeat this long = offline
    reply_window_days: float  # SMSGW_REPLY_WINDOW_DAYS: how long a sent SMS claims its replies
    outbox_stale_seconds: float  # SMSGW_OUTBOX_STALE_SECONDS: queued this long: queued again
    # Every AWS call is bounded (chalicelib/aws.py explains the budget)
    aws_connect_timeout: float  # SMSGW_AWS_CONNECT_TIMEOUT: seconds to open a connection
    aws_read_timeout: float  # SMSGW_AWS_READ_TIMEOUT: seconds to wait for an answer
    aws_max_attempts: int  # SMSGW_AWS_MAX_ATTEMPTS: tries per call, the first included
    # WhatsApp Business Cloud API (OTP channel "whatsapp"); unset token = channel off
    whatsapp_api_url: str  # SMSGW_WHATSAPP_API_URL
    whatsapp_token: str  # SMSGW_WHATSAPP_TOKEN
    whatsapp_phone_number_id: str  # SMSGW_WHATSAPP_PHONE_NUMBER_ID
    whatsapp_template: str  # SMSGW_WHATSAPP_TEMPLATE: approved authentication template
    whatsapp_timeout: float  # SMSGW_WHATSAPP_TIMEOUT: seconds before a 502
    # Meta's webhook (statuses and inbound WhatsApp messages), off while the secret is unset
    whatsapp_app_secret: str  # SMSGW_WHATSAPP_APP_SECRET: key of X-Hub-Signature-256
    whatsapp_verify_token: str  # SMSGW_WHATSAPP_VERIFY_TOKEN: answered by the GET handshake
    # Webhooks (chalicelib/webhooks/)
    webhook_allow_local: bool  # SMSGW_WEBHOOK_ALLOW_LOCAL: "1" allows http:// and loopback targets (local stack only)
    webhook_retry_delays: (
        tuple  # SMSGW_WEBHOOK_RETRY_DELAYS: seconds before each retry, comma separated
    )
    webhook_timeout: float  # SMSGW_WEBHOOK_TIMEOUT: seconds a receiver gets to answer one POST
    webhook_cache_seconds: (
        float  # SMSGW_WEBHOOK_CACHE_SECONDS: how long a Lambda trusts a read webhook config
    )

    @property
    def whatsapp_enabled(self) -> bool:
        return bool(self.whatsapp_token and self.whatsapp_phone_number_id)


# 1 min, 5 min, 30 min, 2 h, 6 h, 12 h, 24 h: eight attempts over about 45 hours.
DEFAULT_WEBHOOK_RETRY_DELAYS = "60,300,1800,7200,21600,43200,86400"


def _delays(raw: str) -> tuple:
    """'60,300,...' -> (60, 300, ...): whole seconds, each >= 0."""
    delays = tuple(int(part) for part in raw.replace(" ", "").split(",") if part)
    if any(d < 0 for d in delays):
        raise ValueError(f"SMSGW_WEBHOOK_RETRY_DELAYS: negative delay in {raw!r}")
    return delays


class ConfigError(ValueError):
    """A setting that must not be used where it is set."""


def in_lambda() -> bool:
    return "AWS_LAMBDA_FUNCTION_NAME" in os.environ


def is_local_development(stage: str) -> bool:
    """The local stack: stage "dev" set explicitly, and not running inside Lambda."""
    return stage == "dev" and not in_lambda()


def _allow_local(raw: str, stage: str) -> bool:
    # Inside Lambda, loopback is the runtime API (127.0.0.1:9001): never a webhook target.
    allowed = raw.strip().lower() in ("1", "true", "yes", "on")
    if allowed and not is_local_development(stage):
        raise ConfigError(
            "SMSGW_WEBHOOK_ALLOW_LOCAL is for the local stack only (SMSGW_STAGE=dev, "
            f"outside Lambda); refused with stage {stage!r}"
            + (" inside Lambda" if in_lambda() else "")
        )
    return allowed


@functools.lru_cache(maxsize=1)
def settings() -> Settings:
    prefix = _env("SMSGW_RESOURCE_PREFIX", "chinqit-dev")
    return Settings(
        resource_prefix=prefix,
        keys_table=_env("SMSGW_KEYS_TABLE", f"{prefix}-keys"),
        messages_table=_env("SMSGW_MESSAGES_TABLE", f"{prefix}-messages"),
        otps_table=_env("SMSGW_OTPS_TABLE", f"{prefix}-otps"),
        rate_limits_table=_env("SMSGW_RATE_LIMITS_TABLE", f"{prefix}-rate-limits"),
        devices_table=_env("SMSGW_DEVICES_TABLE", f"{prefix}-devices"),
        accounts_table=_env("SMSGW_ACCOUNTS_TABLE", f"{prefix}-accounts"),
        webhooks_table=_env("SMSGW_WEBHOOKS_TABLE", f"{prefix}-webhooks"),
        webhook_deliveries_table=_env(
            "SMSGW_WEBHOOK_DELIVERIES_TABLE", f"{prefix}-webhook-deliveries"
        ),
        outbound_queue=_env("SMSGW_OUTBOUND_QUEUE", f"{prefix}-outbound"),
        priority_queue=_env("SMSGW_PRIORITY_QUEUE", f"{prefix}-outbound-priority"),
        webhook_queue=_env("SMSGW_WEBHOOK_QUEUE", f"{prefix}-webhooks"),
        bridge_role=_env("SMSGW_BRIDGE_ROLE", f"{prefix}-bridge"),
        secret_key=_env("SMSGW_SECRET_KEY"),
        secret_key_secret=_env("SMSGW_SECRET_KEY_SECRET"),
        stage=_env("SMSGW_STAGE"),
        key_cache_seconds=float(_env("SMSGW_KEY_CACHE_SECONDS", "30")),
        max_segments=int(_env("SMSGW_MAX_SEGMENTS", "10")),
        otp_ttl_seconds=int(_env("SMSGW_OTP_TTL_SECONDS", "600")),
        otp_brand=_env("SMSGW_OTP_BRAND", "Chinqit"),
        message_retention_days=int(_env("SMSGW_MESSAGE_RETENTION_DAYS", "90")),
        reply_window_days=float(_env("SMSGW_REPLY_WINDOW_DAYS", "7")),
        device_offline_seconds=int(_env("SMSGW_DEVICE_OFFLINE_SECONDS", "180")),
        outbox_stale_seconds=float(_env("SMSGW_OUTBOX_STALE_SECONDS", "120")),
        aws_connect_timeout=float(_env("SMSGW_AWS_CONNECT_TIMEOUT", "1")),
        aws_read_timeout=float(_env("SMSGW_AWS_READ_TIMEOUT", "3")),
        aws_max_attempts=int(_env("SMSGW_AWS_MAX_ATTEMPTS", "2")),
        whatsapp_api_url=_env("SMSGW_WHATSAPP_API_URL", "https://graph.facebook.com/v21.0").rstrip(
            "/"
        ),
        whatsapp_token=_env("SMSGW_WHATSAPP_TOKEN"),
        whatsapp_phone_number_id=_env("SMSGW_WHATSAPP_PHONE_NUMBER_ID"),
        whatsapp_template=_env("SMSGW_WHATSAPP_TEMPLATE", "otp"),
        whatsapp_timeout=float(_env("SMSGW_WHATSAPP_TIMEOUT", "5")),
        whatsapp_app_secret=_env("SMSGW_WHATSAPP_APP_SECRET"),
        whatsapp_verify_token=_env("SMSGW_WHATSAPP_VERIFY_TOKEN"),
        webhook_allow_local=_allow_local(_env("SMSGW_WEBHOOK_ALLOW_LOCAL"), _env("SMSGW_STAGE")),
        webhook_retry_delays=_delays(
            _env("SMSGW_WEBHOOK_RETRY_DELAYS", DEFAULT_WEBHOOK_RETRY_DELAYS)
        ),
        webhook_timeout=float(_env("SMSGW_WEBHOOK_TIMEOUT", "5")),
        webhook_cache_seconds=float(_env("SMSGW_WEBHOOK_CACHE_SECONDS", "30")),
    )
