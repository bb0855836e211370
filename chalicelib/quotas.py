"""Per-account quotas: what one account may send, across all its API keys and OAuth clients.

Defaults below; the operator overrides them per account (``chinqit-admin accounts quota``).
A warm Lambda reads an account's quotas once per SMSGW_KEY_CACHE_SECONDS. Counting is done
by chalicelib.ratelimit in the same DynamoDB write as the request's own.
"""

from __future__ import annotations

from . import accounts, clock
from .models import Account
from .ratelimit import OTP_LIMITS, SECONDS, Limit, Quota

# name -> (window, default). Intake limits: a phone sends 6-20 SMS a minute, the queues
# hold the rest; a per-minute SMS quota must let one full bulk (100 recipients) in.
DEFAULTS: dict[str, tuple[str, int]] = {
    "smsPerMinute": ("minute", 300),  # at least a full bulk (100 recipients)
    "smsPerDay": ("day", 10_000),
    "otpPerMinute": ("minute", 30),
    "otpPerHour": ("hour", 300),
    "otpPerDay": ("day", 1_000),
    "bulkRecipientsPerDay": ("day", 5_000),
}
MAX_VALUE = 10_000_000


class QuotaValueError(ValueError):
    """An operator gave a quota name or value that cannot be used."""


def of(account_id: str) -> dict[str, int]:
    """The account's quotas: the defaults, with the operator's overrides."""
    values = {name: default for name, (_window, default) in DEFAULTS.items()}
    for name, value in accounts.settings_of(account_id).quotas.items():
        if name in values:
            values[name] = int(value)
    return values


def forget(account_id: str | None = None) -> None:
    accounts.forget(account_id)


def _limits(values: dict[str, int], *names: str) -> tuple[Limit, ...]:
    return tuple(
        Limit(DEFAULTS[name][0], SECONDS[DEFAULTS[name][0]], values[name]) for name in names
    )


def sms(account_id: str, count: int = 1) -> list[Quota]:
    values = of(account_id)
    return [
        Quota(
            f"sms#{account_id}",
            _limits(values, "smsPerMinute", "smsPerDay"),
            "SMS for this account",
            cost=count,
        )
    ]


def bulk(account_id: str, recipients: int) -> list[Quota]:
    """A bulk send counts as SMS and as bulk recipients."""
    values = of(account_id)
    return sms(account_id, recipients) + [
        Quota(
            f"bulk#{account_id}",
            _limits(values, "bulkRecipientsPerDay"),
            "bulk recipients for this account",
            cost=recipients,
        )
    ]


def otp(account_id: str, phone_number: str) -> list[Quota]:
    """The seed's per-phone limits, counted per account, and the account's own OTP quota."""
    values = of(account_id)
    return [
        Quota(f"otp#{account_id}#{phone_number}", OTP_LIMITS, "OTP requests for this phone number"),
        Quota(
            f"otp#{account_id}",
            _limits(values, "otpPerMinute", "otpPerHour", "otpPerDay"),
            "OTP requests for this account",
        ),
    ]


def parse_value(name: str, raw: object) -> int:
    if name not in DEFAULTS:
        raise QuotaValueError(f"unknown quota {name!r}; known quotas: {', '.join(DEFAULTS)}")
    try:
        value = int(str(raw))
    except ValueError:
        value = -1
    if not 0 <= value <= MAX_VALUE:
        raise QuotaValueError(f"quota {name} must be a whole number from 0 to {MAX_VALUE}")
    return value


def set_quotas(account_id: str, values: dict[str, object]) -> dict[str, int]:
    """Store overrides (checked first: nothing is written if one is wrong); return them all."""
    checked = {name: parse_value(name, raw) for name, raw in values.items()}
    try:
        current = Account.get(account_id).quotas
        merged = {**(current.as_dict() if current is not None else {}), **checked}
    except Account.DoesNotExist:
        merged = checked
    # an update (it creates the item if needed) keeps the account's other settings
    Account(account_id).update(
        actions=[Account.quotas.set(merged), Account.updated_at.set(clock.now())]
    )
    forget(account_id)
    return of(account_id)
