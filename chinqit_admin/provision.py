"""Create the tables (TTL on) and queues (each with a dead-letter queue); safe to rerun.

Works the same on the embedded AWS of the local stack and on a real AWS account.
"""

from __future__ import annotations

import json

from chalicelib import queue
from chalicelib.config import settings
from chalicelib.models import ALL_MODELS
from chalicelib.queue import MAX_RECEIVES

VISIBILITY_TIMEOUT = 60  # seconds a bridge holds a message before it must extend it
RETENTION = 4 * 24 * 3600  # seconds an unsent SMS waits on the queue
DLQ_RETENTION = 14 * 24 * 3600


def tables() -> list[str]:
    created = []
    for model in ALL_MODELS:
        if not model.exists():
            model.create_table(wait=True, billing_mode="PAY_PER_REQUEST")
            created.append(model.Meta.table_name)
    return created


def queues() -> dict[str, str]:
    config = settings()
    return {
        name: _queue_with_dlq(name)
        for name in (config.outbound_queue, config.priority_queue, config.webhook_queue)
    }


def _queue_with_dlq(name: str) -> str:
    sqs = queue.sqs()
    # Lambdas consume the dead-letter queues too: AWS requires a visibility timeout at least
    # as long as the function's timeout.
    dlq_url = sqs.create_queue(
        QueueName=f"{name}-dlq",
        Attributes={
            "VisibilityTimeout": str(VISIBILITY_TIMEOUT),
            "MessageRetentionPeriod": str(DLQ_RETENTION),
            "SqsManagedSseEnabled": "true",
        },
    )["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    return sqs.create_queue(
        QueueName=name,
        Attributes={
            "VisibilityTimeout": str(VISIBILITY_TIMEOUT),
            "MessageRetentionPeriod": str(RETENTION),
            "SqsManagedSseEnabled": "true",
            "RedrivePolicy": json.dumps(
                {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": str(MAX_RECEIVES)}
            ),
        },
    )["QueueUrl"]


def secret_parameter() -> str | None:
    """Create the server secret in SSM (a random SecureString) unless it exists."""
    name = settings().secret_key_parameter
    if not name:
        return None
    import secrets

    from chalicelib import aws

    ssm = aws.client("ssm")
    try:
        ssm.put_parameter(
            Name=name,
            Type="SecureString",
            Value=secrets.token_urlsafe(48),
            Description="Chinqit SMS Gateway server secret (OTP hashes, cursors)",
        )
    except ssm.exceptions.ParameterAlreadyExists:
        pass
    return name


def all_resources() -> dict:
    return {"tables_created": tables(), "queues": queues(), "secret_parameter": secret_parameter()}
