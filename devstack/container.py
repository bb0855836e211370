"""A Lambda container's state (clients, caches) and its reset, for tests and benchmarks.

Each cache lives next to the code that uses it; this is the one list of them, so a new
mock AWS (moto) or changed settings are picked up everywhere at once. It lives beside the
local stack rather than in chalicelib: the Lambdas never reset themselves.
"""

import os

OFFLINE_AWS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SECURITY_TOKEN": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
}


def go_offline() -> None:
    """Fake credentials for moto's in-process mocks, so nothing can reach a real account.

    Call it before any botocore session exists; moto only intercepts clients that are
    not aimed at an endpoint of their own (AWS_ENDPOINT_URL).
    """
    os.environ.update(OFFLINE_AWS)
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL"):
        os.environ.pop(name, None)


def reset() -> None:
    from chalicelib import (
        auth,
        aws,
        device_credentials,
        models,
        queue,
        quotas,
        readiness,
        routing,
        server_secret,
        webhooks,
    )
    from chalicelib.config import settings

    settings.cache_clear()
    aws.client.cache_clear()
    aws.session.cache_clear()
    queue.queue_url.cache_clear()
    queue.queue_arn.cache_clear()
    device_credentials.role_arn.cache_clear()
    models.connection.cache_clear()
    server_secret.server_secret.cache_clear()
    auth.forget()
    quotas.forget()
    readiness.forget()
    routing.forget()
    webhooks.forget()
    for model in models.ALL_MODELS:
        model._connection = None
