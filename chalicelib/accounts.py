"""Accounts: ids chosen by the operator, and what is kept per account (chalicelib.models.Account).

An account's quotas and suppression list come from one GetItem, cached per Lambda for
SMSGW_KEY_CACHE_SECONDS (negative answers too: an account without an item has defaults).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .config import settings
from .models import Account
from .ttlcache import TtlCache

# Received SMS that no account claims are filed under this id (see devices.owner_of_inbound).
UNASSIGNED = "unassigned"
RESERVED = (UNASSIGNED,)


@dataclass(frozen=True)
class Stored:
    """What the Account item holds, as the send path needs it."""

    quotas: dict = field(default_factory=dict)  # the operator's overrides only
    suppressed: frozenset = frozenset()  # opted-out numbers (chalicelib.optout)
    optout: dict = field(default_factory=dict)  # the account's keywords and replies (optout)


_cache: TtlCache[Stored] = TtlCache(lambda _: settings().key_cache_seconds)


def settings_of(account_id: str, fresh: bool = False) -> Stored:
    """The account's stored settings; ``fresh`` reads them again."""
    if fresh:
        forget(account_id)
    return _cache.get(account_id, lambda: _read(account_id))


def _read(account_id: str) -> Stored:
    try:
        item = Account.get(
            account_id, attributes_to_get=["quotas", "suppressed", "optout_settings"]
        )
    except Account.DoesNotExist:
        return Stored()
    quotas = item.quotas.as_dict() if item.quotas is not None else {}
    optout = item.optout_settings.as_dict() if item.optout_settings is not None else {}
    return Stored(quotas, frozenset(item.suppressed or ()), optout)


def forget(account_id: str | None = None) -> None:
    _cache.forget(account_id)
