"""The server secret: HMAC key of OTP hashes and message-log cursors.

Production keeps it in Secrets Manager (the data stack generates it, see
chinqit_admin/template.py), so it never sits in .chalice/config.json; it is read once per
Lambda container.
"""

from __future__ import annotations

import functools
import logging

from .config import is_local_development, settings

DEV_SECRET = b"dev-only-secret-key: never use outside the local stack"
log = logging.getLogger("chinqit.secret")


class SecretNotConfigured(RuntimeError):
    """No server secret is configured, and this is not the local stack."""


@functools.lru_cache(maxsize=1)
def server_secret() -> bytes:
    config = settings()
    if config.secret_key:
        return config.secret_key.encode()
    if config.secret_key_secret:
        from . import aws

        secret = aws.client("secretsmanager").get_secret_value(SecretId=config.secret_key_secret)
        return secret["SecretString"].encode()
    if is_local_development(config.stage):
        log.warning("no SMSGW_SECRET_KEY configured: using the dev-only secret")
        return DEV_SECRET
    raise SecretNotConfigured(
        f"set SMSGW_SECRET_KEY or SMSGW_SECRET_KEY_SECRET for stage {config.stage!r}"
    )
