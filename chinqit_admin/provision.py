"""Create the tables (TTL on) and queues (each with a dead-letter queue); safe to rerun.

Works the same on the embedded AWS of the local stack and on a real AWS account.
"""

from __future__ import annotations

import json
import time

from chalicelib import aws, queue, routing
from chalicelib.config import settings
from chalicelib.models import ALL_MODELS
from chalicelib.queue import MAX_RECEIVES

VISIBILITY_TIMEOUT = 60  # seconds a bridge holds a message before it must extend it
RETENTION = 4 * 24 * 3600  # seconds an unsent SMS waits on the queue
DLQ_RETENTION = 14 * 24 * 3600


def tables() -> list[str]:
    """Create missing tables, and the indexes a newer version added to existing ones."""
    created = []
    for model in ALL_MODELS:
        if not model.exists():
            model.create_table(wait=True, billing_mode="PAY_PER_REQUEST")
            created.append(model.Meta.table_name)
        else:
            created += _add_missing_indexes(model)
    return created


INDEX_WAIT_SECONDS = 1800  # DynamoDB backfills a new index from the table's items


def _add_missing_indexes(model) -> list[str]:
    client = aws.client("dynamodb")
    name = model.Meta.table_name
    described = client.describe_table(TableName=name)["Table"]
    present = {index["IndexName"] for index in described.get("GlobalSecondaryIndexes", [])}
    added = []
    for index in model._get_schema()["global_secondary_indexes"]:  # PynamoDB's own schema
        if index["index_name"] in present:
            continue
        client.update_table(
            TableName=name,
            AttributeDefinitions=index["attribute_definitions"],
            GlobalSecondaryIndexUpdates=[
                {
                    "Create": {
                        "IndexName": index["index_name"],
                        "KeySchema": index["key_schema"],
                        "Projection": index["projection"],
                    }
                }
            ],
        )
        _wait_until_active(client, name, index["index_name"])
        added.append(f"{name}/{index['index_name']}")
    return added


def _wait_until_active(client, table: str, index_name: str) -> None:
    deadline = time.monotonic() + INDEX_WAIT_SECONDS
    while time.monotonic() < deadline:
        indexes = client.describe_table(TableName=table)["Table"].get("GlobalSecondaryIndexes", [])
        if any(i["IndexName"] == index_name and i["IndexStatus"] == "ACTIVE" for i in indexes):
            return
        time.sleep(5)
    raise TimeoutError(f"index {index_name} of {table} is not active after {INDEX_WAIT_SECONDS} s")


def queues() -> dict[str, str]:
    """The shared queues, and every registered device's own two."""
    from chalicelib.models import Device

    config = settings()
    urls = {
        name: _queue_with_dlq(name)
        for name in (config.outbound_queue, config.priority_queue, config.webhook_queue)
    }
    for device in Device.scan(attributes_to_get=["device_id"]):
        urls |= device_queues(device.device_id)
    return urls


def device_queues(device_id: str) -> dict[str, str]:
    """A device's own queues; they dead-letter into the shared queues' dead-letter queues,
    whose handlers mark what no device could send as failed."""
    config = settings()
    urls = {}
    for kind, shared in (("otp", config.priority_queue), ("sms", config.outbound_queue)):
        name = routing.device_queue(device_id, kind)
        urls[name] = _queue_with_dlq(name, dead_letters=f"{shared}-dlq")
    return urls


def _queue_with_dlq(name: str, dead_letters: str | None = None) -> str:
    sqs = queue.sqs()
    # Lambdas consume the dead-letter queues too: AWS requires a visibility timeout at least
    # as long as the function's timeout.
    dlq_url = sqs.create_queue(
        QueueName=dead_letters or f"{name}-dlq",
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


def bridge_role() -> str | None:
    """The role whose short-lived sessions the bridges get (POST /device/credentials).

    Trusted by this account (the API's Lambda role assumes it), allowed to receive from
    the outbound queues; each session is narrowed further to its device's queues. An
    SMSGW_BRIDGE_ROLE given as an ARN is the operator's own: left as it is.
    """
    from chalicelib.device_credentials import QUEUE_ACTIONS

    config = settings()
    if config.bridge_role.startswith("arn:"):
        return None
    iam = aws.client("iam")
    account = aws.client("sts").get_caller_identity()["Account"]
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"AWS": f"arn:aws:iam::{account}:root"},
                "Action": "sts:AssumeRole",
            }
        ],
    }
    try:
        arn = iam.get_role(RoleName=config.bridge_role)["Role"]["Arn"]
    except iam.exceptions.NoSuchEntityException:
        arn = iam.create_role(
            RoleName=config.bridge_role,
            AssumeRolePolicyDocument=json.dumps(trust),
            MaxSessionDuration=3600,
            Description="Chinqit device bridges: receive SMS from the outbound queues",
        )["Role"]["Arn"]
    # the shared queues and every device's own (named after them); sessions narrow it down
    outbound = [
        queue.queue_arn(name) + suffix
        for name in (config.priority_queue, config.outbound_queue)
        for suffix in ("", "-device-*")
    ]
    permissions = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": QUEUE_ACTIONS, "Resource": outbound}],
    }
    iam.put_role_policy(
        RoleName=config.bridge_role,
        PolicyName="outbound-queues",
        PolicyDocument=json.dumps(permissions),
    )
    return arn


def all_resources() -> dict:
    return {
        "tables_created": tables(),
        "queues": queues(),
        "secret_parameter": secret_parameter(),
        "bridge_role": bridge_role(),
    }
