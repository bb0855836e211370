"""botocore clients, created on first use and kept for the life of the Lambda container.

Every AWS call is bounded. One try waits at most SMSGW_AWS_CONNECT_TIMEOUT (1 s) for a
connection and SMSGW_AWS_READ_TIMEOUT (3 s) for the answer; a call makes at most
SMSGW_AWS_MAX_ATTEMPTS (2) tries (botocore's standard retry mode: throttling and 5xx
retried with jittered backoff). So one call gives up within 2 x (1 + 3) = 8 s, and a
request whose first AWS call meets a frozen AWS answers 500 in under 10 s, well inside
the API Lambda's 15 s (prod) and API Gateway's 29 s. DynamoDB answers in milliseconds and
SQS in tens of them: the limits only bite when AWS is in trouble. botocore's defaults (60 s
reads, 3 to 5 tries) would outlast the Lambda. The DynamoDB connection (models.py) uses
the same limits. After a call that got no answer (``unreachable``), a request makes no
best-effort follow-up call that would wait as long again: the outbox sweep repairs later.
"""

from __future__ import annotations

import functools
import gc

from .config import settings

# The AWS services the Lambdas call (DynamoDB through PynamoDB): the Lambda package keeps
# botocore's models of these only (chinqit_admin/bundle.py).
LAMBDA_SERVICES = frozenset({"dynamodb", "sqs", "secretsmanager", "sts"})


def client_config():
    from botocore.config import Config

    config = settings()
    return Config(
        connect_timeout=config.aws_connect_timeout,
        read_timeout=config.aws_read_timeout,
        retries={"mode": "standard", "total_max_attempts": config.aws_max_attempts},
    )


def unreachable(error: BaseException | None) -> bool:
    """AWS did not answer in time (or at all): another call now would wait as long.

    Looks through wrappers: PynamoDB raises its own errors (QueryError, UpdateError...)
    with botocore's as their ``cause``."""
    from botocore import exceptions

    silent = (
        exceptions.ConnectTimeoutError,
        exceptions.ReadTimeoutError,
        exceptions.EndpointConnectionError,
        exceptions.ConnectionClosedError,
    )
    seen = 0
    while error is not None and seen < 5:
        if isinstance(error, silent):
            return True
        error = getattr(error, "cause", None) or error.__cause__ or error.__context__
        seen += 1
    return False


@functools.cache
def session():
    """The container's one botocore session, PynamoDB's included (models.connection): its
    endpoint and retry data load once for every client (a cold start pays that once)."""
    from botocore.session import get_session  # here: the module's import time stays low

    return get_session()


@functools.cache
def client(service: str):
    """A botocore client (boto3 adds nothing the Lambdas use, and costs its import)."""
    return settled(session().create_client(service, config=client_config()))


def settled(long_lived):
    """Take what exists now (modules, botocore's service models, ``long_lived``) out of
    the garbage collector's scans: it lives as long as the container, and scanning it again
    at every collection of the first request cost a cold start ~15 ms (bench/cold_start.py)."""
    gc.freeze()
    gc.enable()  # app.py turns it off while it imports
    return long_lived
