"""OAuth2 client credentials (RFC 6749 §4.4): a second way to get an API credential.

A client (id + secret, the secret stored as a SHA-256 hash) exchanges its credentials
for a bearer token. The token is stored like an API key, with an expiry, so it works
wherever an API key works, for the same account.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import secrets
from datetime import timedelta
from urllib.parse import unquote_plus

from . import auth, clock, ratelimit
from .errors import GatewayError
from .models import Credential, is_expired

TOKEN_SECONDS = 3600
CLIENT_PREFIX = "cq_client_"
TOKEN_PREFIX = "cq_tok_"
# A token lives an hour: a client needs few. Each one is a write, so minting is limited.
TOKEN_LIMITS = ratelimit.limits(minute=10, day=500)


# RFC 6749 §5.1: token answers, and their errors, are never cached.
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


class OAuthError(GatewayError):
    """An RFC 6749 §5.2 error, in that RFC's fields and the contract's together."""

    def __init__(self, code: str, description: str, status: int = 400):
        headers = dict(NO_STORE)
        if status == 401:
            headers["WWW-Authenticate"] = 'Basic realm="chinqit"'
        super().__init__(
            description, headers=headers, extra={"error": code, "error_description": description}
        )
        self.status = status


def _client_item_key(client_id: str) -> str:
    return auth.hash_key("oauth-client:" + client_id)


def create_client(account_id: str, name: str = "") -> tuple[str, str]:
    """Register a client; the secret is returned once and only its hash is kept."""
    client_id = CLIENT_PREFIX + secrets.token_hex(10)
    secret = secrets.token_urlsafe(32)
    Credential(
        _client_item_key(client_id),
        kind="oauth_client",
        owner_id=account_id,
        name=name,
        prefix=client_id,
        secret_hash=auth.hash_key(secret),
    ).save(Credential.key_hash.does_not_exist())
    return client_id, secret


def revoke_client(client_id: str) -> int:
    """Revoke a client and every token it was issued; return how many tokens."""
    client_key = _client_item_key(client_id)
    try:
        Credential.get(client_key).update(actions=[Credential.revoked.set(True)])
    except Credential.DoesNotExist:
        raise LookupError(f"no OAuth2 client {client_id}") from None
    tokens = [t for t in Credential.scan(Credential.parent == client_key) if not t.revoked]
    for token in tokens:
        token.update(actions=[Credential.revoked.set(True)])
    return len(tokens)


def _credentials(form: dict, authorization: str | None) -> tuple[str, str]:
    """Client id and secret from HTTP Basic (RFC 6749 §2.3.1) or the form body, never both
    (§2.3: one authentication method per request)."""
    form_id, form_secret = form.get("client_id"), form.get("client_secret")
    if authorization and authorization.lower().startswith("basic "):
        client_id, secret = _basic(authorization)
        if form_secret is not None:
            raise OAuthError(
                "invalid_request", "Use HTTP Basic or client_secret in the body, not both"
            )
        if form_id is not None and form_id != client_id:  # §3.2.1 lets it identify the client
            raise OAuthError("invalid_request", "client_id differs from the HTTP Basic user")
        return client_id, secret
    if not form_id or not form_secret:
        raise OAuthError("invalid_client", "Client authentication is required", 401)
    return form_id, form_secret


def _basic(authorization: str) -> tuple[str, str]:
    try:
        decoded = base64.b64decode(authorization[6:].strip(), validate=True).decode()
        client_id, secret = decoded.split(":", 1)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise OAuthError("invalid_client", "Malformed HTTP Basic credentials", 401) from None
    return unquote_plus(client_id), unquote_plus(secret)


def _parameters(fields: list[tuple[str, str]], content_type: str) -> dict:
    """The token request's parameters; each at most once (RFC 6749 §3.1)."""
    if content_type != "application/x-www-form-urlencoded":
        raise OAuthError(
            "invalid_request", "The token request must be application/x-www-form-urlencoded"
        )
    names = [name for name, _ in fields]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise OAuthError(
            "invalid_request", f"Parameters sent more than once: {', '.join(repeated)}"
        )
    return dict(fields)


def issue_token(
    fields: list[tuple[str, str]], content_type: str, authorization: str | None
) -> dict:
    """A token for the form ``fields`` of a token request (RFC 6749 §4.4.2)."""
    form = _parameters(fields, content_type)
    grant_type = form.get("grant_type")
    if not grant_type:
        raise OAuthError("invalid_request", "grant_type is required")
    if grant_type != "client_credentials":
        raise OAuthError(
            "unsupported_grant_type", "Only grant_type=client_credentials is supported"
        )
    client_id, secret = _credentials(form, authorization)
    client = _client(client_id)
    if client is None or not hmac.compare_digest(client.secret_hash, auth.hash_key(secret)):
        raise OAuthError("invalid_client", "Unknown client or wrong secret", 401)
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    record = Credential(
        auth.hash_key(token),
        kind="api",
        owner_id=client.owner_id,
        name=f"token of {client_id}",
        prefix=token[: auth.SHOWN_PREFIX_LENGTH],
        parent=client.key_hash,
        scope_id=client.key_hash[:24],
        expires_at=clock.now() + timedelta(seconds=TOKEN_SECONDS),
    )
    minted = ratelimit.Quota(f"oauth-token#{client.key_hash[:24]}", TOKEN_LIMITS, "tokens")
    ratelimit.write_counted([minted], lambda transaction: transaction.save(record))
    return {"access_token": token, "token_type": "Bearer", "expires_in": TOKEN_SECONDS}


def _client(client_id: str):
    try:
        client = Credential.get(_client_item_key(client_id))
    except Credential.DoesNotExist:
        return None
    if client.kind != "oauth_client" or client.revoked or is_expired(client.expires_at):
        return None
    return client
