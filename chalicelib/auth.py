"""Credentials: API keys and device keys, stored only as SHA-256 hashes.

Keys are 256-bit random tokens, so a plain SHA-256 is a safe one-way hash (no salt or
slow hash needed, unlike passwords) and lets a lookup be a single GetItem.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime

from . import clock
from .config import settings
from .errors import ApiKeyInvalid, ApiKeyMissing
from .models import Credential, is_expired

KEY_PREFIXES = {"api": "cq_live_", "device": "cq_dev_"}
# Header that carries each kind of key, and what a caller is told when it is wrong.
KEY_HEADERS = {"api": "x-api-key", "device": "x-device-key"}
KEY_NAMES = {"api": "API key", "device": "Device key"}
SHOWN_PREFIX_LENGTH = 16


@dataclass(frozen=True)
class Principal:
    """Who is calling: an account (API key, OAuth2 token) or a device (device key)."""

    kind: str  # "api" or "device", as in KEY_HEADERS
    key_prefix: str
    key_id: str  # stable, non-secret id of the key (per-key OTPs and rate limits)
    account_id: str | None = None  # set for kind "api"
    device_id: str | None = None  # set for kind "device"
    expires_at: datetime | None = None  # OAuth2 tokens expire; checked on cached hits too


def presented_key(request, kind: str) -> str | None:
    """The key of ``kind`` a request carries: its header, or for API keys a bearer token."""
    key = request.headers.get(KEY_HEADERS[kind])
    authorization = request.headers.get("authorization") or ""
    if not key and kind == "api" and authorization[:7].lower() == "bearer ":
        key = authorization[7:].strip()
    return key


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


def create_key(kind: str, owner_id: str, name: str = "") -> tuple[str, Credential]:
    """Store a new key's hash; the key itself is returned once and never stored."""
    key = KEY_PREFIXES[kind] + secrets.token_urlsafe(32)
    credential = Credential(
        hash_key(key), kind=kind, owner_id=owner_id, name=name, prefix=key[:SHOWN_PREFIX_LENGTH]
    )
    credential.save(Credential.key_hash.does_not_exist())
    return key, credential


MIN_IMPORTED_KEY_LENGTH = 32  # its shown prefix (16 characters) must stay a small part of it


def import_key(kind: str, owner_id: str, key: str, name: str = "") -> Credential:
    """Register a key chosen by the operator (the local stack's SMSGW_DEV_API_KEY)."""
    if len(key) < MIN_IMPORTED_KEY_LENGTH:
        raise ValueError(f"a key must have at least {MIN_IMPORTED_KEY_LENGTH} characters")
    credential = Credential(
        hash_key(key), kind=kind, owner_id=owner_id, name=name, prefix=key[:SHOWN_PREFIX_LENGTH]
    )
    credential.save()
    return credential


def revoke_key(prefix: str) -> Credential:
    """Revoke the one key whose shown prefix is ``prefix``."""
    matches = [c for c in Credential.scan(Credential.prefix == prefix) if not c.revoked]
    if len(matches) != 1:
        raise LookupError(f"{len(matches)} active keys start with {prefix!r}")
    credential = matches[0]
    credential.update(actions=[Credential.revoked.set(True)])
    _cache.pop(credential.key_hash, None)
    return credential


# key hash -> (principal, time checked); a warm Lambda skips the GetItem for a short while.
_cache: dict[str, tuple[Principal, float]] = {}


def authenticate(key: str | None, kind: str) -> Principal:
    """Resolve a presented key of ``kind`` to its principal, or raise 401/403."""
    if not key:
        raise ApiKeyMissing(f"{KEY_NAMES[kind]} is required")
    digest = hash_key(key)
    cached = _cache.get(digest)
    if cached and clock.monotonic() - cached[1] < settings().key_cache_seconds:
        principal = None if is_expired(cached[0].expires_at) else cached[0]
    else:
        principal = _load(digest)
        if principal is not None:
            _cache[digest] = (principal, clock.monotonic())
    if principal is None or principal.kind != kind:
        raise ApiKeyInvalid(f"Invalid {KEY_NAMES[kind]}" if kind != "api" else None)
    return principal


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
