"""Lambda events shared by the tests, shaped as AWS hands them to a function."""

from __future__ import annotations

import uuid


def sqs_event(queue_name: str, *bodies: str) -> dict:
    """What an SQS event source mapping hands the function: one record per body."""
    return {
        "Records": [
            {
                "messageId": str(uuid.uuid4()),
                "receiptHandle": f"handle-{i}",
                "body": body,
                "attributes": {"ApproximateReceiveCount": "1"},
                "messageAttributes": {},
                "md5OfBody": "",
                "eventSource": "aws:sqs",
                "eventSourceARN": f"arn:aws:sqs:us-east-1:123456789012:{queue_name}",
                "awsRegion": "us-east-1",
            }
            for i, body in enumerate(bodies)
        ]
    }


def failed_bodies(event: dict, answer: dict) -> list[str]:
    """The bodies of the records a handler's partial batch response reports as failed."""
    failed = {item["itemIdentifier"] for item in answer["batchItemFailures"]}
    return [record["body"] for record in event["Records"] if record["messageId"] in failed]
