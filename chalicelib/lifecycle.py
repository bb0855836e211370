"""A Lambda container's state (clients, caches) and its reset, for tests and benchmarks.

Each cache lives next to the code that uses it; this is the one list of them, so a new
mock AWS (moto) or changed settings are picked up everywhere at once.
"""


def reset() -> None:
    from . import auth, aws, models, queue, server_secret, webhooks
    from .config import settings

    settings.cache_clear()
    aws.client.cache_clear()
    queue.queue_url.cache_clear()
    models.connection.cache_clear()
    server_secret.server_secret.cache_clear()
    auth._cache.clear()
    webhooks.forget()
    for model in models.ALL_MODELS:
        model._connection = None
