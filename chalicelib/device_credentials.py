"""Short-lived AWS credentials for a device bridge, in exchange for its device key.

No IAM user on a phone: the bridge calls ``POST /device/credentials`` and gets the
credentials of an STS session of the bridge role (SMSGW_BRIDGE_ROLE, created by
``chinqit-admin provision``), narrowed by a session policy to receiving from the queues
of the device's pool. They last an hour; the bridge asks again before they expire.
"""

from __future__ import annotations

import functools
import json
import re

from . import aws, devices, queue, ratelimit, routing
from .config import settings
from .messages.views import iso

SESSION_SECONDS = 3600
ISSUE_LIMITS = ratelimit.limits(hour=30)  # a bridge needs about one an hour
QUEUE_ACTIONS = [
    "sqs:ReceiveMessage",
    "sqs:DeleteMessage",
    "sqs:ChangeMessageVisibility",
    "sqs:GetQueueUrl",
    "sqs:GetQueueAttributes",
]
_SESSION_NAME_UNSAFE = re.compile(r"[^\w+=,.@-]")


@functools.cache
def role_arn() -> str:
    """SMSGW_BRIDGE_ROLE as an ARN (a bare name is in this account: one STS call, cached)."""
    role = settings().bridge_role
    if role.startswith("arn:"):
        return role
    account = aws.client("sts").get_caller_identity()["Account"]
    return f"arn:aws:iam::{account}:role/{role}"


def session_policy(device_id: str) -> dict:
    names = routing.queues_of_device(device_id).values()
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": QUEUE_ACTIONS,
                "Resource": [queue.queue_arn(name) for name in names],
            }
        ],
    }


def issue(device_id: str) -> dict:
    """Credentials limited to the device's queues, and those queues' URLs."""
    ratelimit.take(
        [ratelimit.Quota(f"credentials#{device_id}", ISSUE_LIMITS, "credential requests")]
    )
    answer = aws.client("sts").assume_role(
        RoleArn=role_arn(),
        RoleSessionName=("device-" + _SESSION_NAME_UNSAFE.sub("-", device_id))[:64],
        DurationSeconds=SESSION_SECONDS,
        Policy=json.dumps(session_policy(device_id)),
    )
    credentials = answer["Credentials"]
    return {
        "accessKeyId": credentials["AccessKeyId"],
        "secretAccessKey": credentials["SecretAccessKey"],
        "sessionToken": credentials["SessionToken"],
        "expiration": iso(credentials["Expiration"]),
        "region": aws.client("sts").meta.region_name,
        "queues": devices.queues_to_poll(device_id),
    }
