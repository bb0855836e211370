"""Credentials: API keys and device keys, stored only as SHA-256 hashes.

Keys are 256-bit random tokens, so a plain SHA-256 is a safe one-way hash (no salt or
slow hash needed, unlike passwords) and lets a lookup be a single GetItem.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime

from .config import settings
from .errors import ApiKeyInvalid, ApiKeyMissing, InvalidToken
from .models import Credential, is_expired
from .ttlcache import TtlCache

KEY_PREFIXES = {"api": "cq_live_", "device": "cq_dev_"}
# Header that carries each kind of key, and what a caller is told when it is wrong.
KEY_HEADERS = {"api": "x-api-key", "device": "x-device-key"}
KEY_NAMES = {"api": "API key", "device": "Device key"}
SHOWN_PREFIX_LENGTH = 16
# Every key the gateway issues or imports has this shape; anything else is refused before
# any AWS call (a random guess must not cost a DynamoDB read).
WELL_FORMED = re.compile(r"[A-Za-z0-9._~+/=-]{32,256}")
MAX_CACHED_KEYS = 10_000
UNKNOWN_KEY_SECONDS = 5.0  # an unknown key is answered from memory for this long


@dataclass(frozen=True)
class Principal:
    """Who is calling: an account (API key, OAuth2 token) or a device (device key)."""

    kind: str  # "api" or "device", as in KEY_HEADERS
    key_prefix: str
    key_id: str  # stable, non-secret id of the key (per-key OTPs and rate limits)
    account_id: str | None = None  # set for kind "api"
    device_id: str | None = None  # set for kind "device"
    expires_at: datetime | None = None  # OAuth2 tokens expire; checked on cached hits too


@dataclass(frozen=True)
class Presented:
    """The credential a request carries, and how."""

    key: str | None
    bearer: bool = False  # an ``Authorization: Bearer`` token (RFC 6750 errors apply)


def presented_key(request, kind: str) -> Presented:
    """The key of ``kind`` a request carries: its header, or for API keys a bearer token."""
    key = request.headers.get(KEY_HEADERS[kind])
    authorization = request.headers.get("authorization") or ""
    if not key and kind == "api" and authorization[:7].lower() == "bearer ":
        return Presented(authorization[7:].strip(), bearer=True)
    return Presented(key)


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


def create_key(kind: str, owner_id: str, name: str = "") -> tuple[str, Credential]:
    """Store a new key's hash; the key itself is returned once and never stored."""
    key = KEY_PREFIXES[kind] + secrets.token_urlsafe(32)
    credential = Credential(
        hash_key(key), kind=kind, owner_id=owner_id, name=name, prefix=key[:SHOWN_PREFIX_LENGTH]
    )
    credential.save(Credential.key_hash.does_not_exist())
    forget(credential.key_hash)
    return key, credential


MIN_IMPORTED_KEY_LENGTH = 32  # its shown prefix (16 characters) must stay a small part of it


def import_key(kind: str, owner_id: str, key: str, name: str = "") -> Credential:
    """Register a key chosen by the operator (the local stack's SMSGW_DEV_API_KEY)."""
    if len(key) < MIN_IMPORTED_KEY_LENGTH or not WELL_FORMED.fullmatch(key):
        raise ValueError(
            f"a key must have {MIN_IMPORTED_KEY_LENGTH} to 256 characters among "
            "letters, digits and ._~+/=-"
        )
    credential = Credential(
        hash_key(key), kind=kind, owner_id=owner_id, name=name, prefix=key[:SHOWN_PREFIX_LENGTH]
    )
    credential.save()
    forget(credential.key_hash)
    return credential


def revoke_key(prefix: str) -> Credential:
    """Revoke the one key whose shown prefix is ``prefix``."""
    matches = [c for c in Credential.scan(Credential.prefix == prefix) if not c.revoked]
    if len(matches) != 1:
        raise LookupError(f"{len(matches)} active keys start with {prefix!r}")
    credential = matches[0]
    credential.update(actions=[Credential.revoked.set(True)])
    forget(credential.key_hash)
    return credential


def _trusted_for(principal: Principal | None) -> float:
    return settings().key_cache_seconds if principal else UNKNOWN_KEY_SECONDS


# key hash -> its principal, or None for an unknown key: a warm Lambda skips the GetItem
# for a short while (a revoked key stops working within SMSGW_KEY_CACHE_SECONDS).
KEY_CACHE: TtlCache[Principal | None] = TtlCache(_trusted_for, MAX_CACHED_KEYS)


def forget(digest: str | None = None) -> None:
    """Drop cached answers (one key hash, or all)."""
    KEY_CACHE.forget(digest)


def authenticate(presented: Presented, kind: str) -> Principal:
    """Resolve a presented key of ``kind`` to its principal, or raise 401/403."""
    key = presented.key
    if not key:
        raise ApiKeyMissing(f"{KEY_NAMES[kind]} is required")
    principal = _lookup(hash_key(key)) if WELL_FORMED.fullmatch(key) else None
    if principal is None or principal.kind != kind:
        if presented.bearer:
            raise InvalidToken()
        raise ApiKeyInvalid(f"Invalid {KEY_NAMES[kind]}" if kind != "api" else None)
    return principal


def _lookup(digest: str) -> Principal | None:
    principal = KEY_CACHE.get(digest, lambda: _load(digest))
    return None if principal is None or is_expired(principal.expires_at) else principal


def _load(digest: str) -> Principal | None:
    try:
        credential = Credential.get(digest)
    except Credential.DoesNotExist:
        return None
    # The lookup is by hash; compare again in constant time so equality is never short-circuited.
    if (
        credential.revoked
        or is_expired(credential.expires_at)
        or not hmac.compare_digest(credential.key_hash, digest)
    ):
        return None
    owner = {"account_id" if credential.kind == "api" else "device_id": credential.owner_id}
    return Principal(
        credential.kind,
        credential.prefix,
        credential.scope_id or digest[:24],
        expires_at=credential.expires_at,
        **owner,
    )
