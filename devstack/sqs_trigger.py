"""Local stand-in for Lambda's SQS event source mapping.

`chalice local` serves HTTP only; this polls a queue and invokes the app's
``on_sqs_message`` handler with the event Lambda would build. As Lambda does with
``ReportBatchItemFailures``, it deletes the records the handler did not report failed,
and none when the handler raises.
"""

from __future__ import annotations

import logging
import os
import threading
import uuid
from datetime import UTC, datetime

from chalicelib import queue

log = logging.getLogger("chinqit.devstack")


def scheduled_event(rule: str) -> dict:
    """The event EventBridge hands a scheduled Lambda."""
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": "123456789012",
        "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": os.environ.get("AWS_DEFAULT_REGION", "us-east-1"),
        "resources": [f"arn:aws:events:us-east-1:123456789012:rule/{rule}"],
        "detail": {},
    }


class ScheduleTrigger(threading.Thread):
    """Local stand-in for an EventBridge schedule: invokes a scheduled handler every
    ``seconds`` (SMSGW_LOCAL_SCHEDULE_SECONDS shortens it for the local stack's tests)."""

    def __init__(self, handler, name: str, seconds: float):
        super().__init__(daemon=True, name=f"schedule-{name}")
        self.handler = handler
        self.seconds = seconds
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.wait(self.seconds):
            try:
                self.handler(scheduled_event(self.name), None)
            except Exception:
                log.exception(
                    "scheduled handler %s failed; next run in %s s", self.name, self.seconds
                )


class SqsTrigger(threading.Thread):
    def __init__(self, handler, queue_name: str, batch_size: int, timeout: int):
        super().__init__(daemon=True, name=f"sqs-trigger-{queue_name}")
        self.handler = handler
        self.queue_name = queue_name
        self.batch_size = batch_size
        # Lambda holds a batch for the queue's visibility timeout (6x the function's), but
        # an invocation ends by its timeout. Here the poller dies with the local API
        # (chaos kills it): what it held comes back after one function timeout.
        self.hold_seconds = timeout
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.is_set():
            try:
                self._poll_forever()
            except Exception as exc:  # the embedded AWS is going away or restarting
                if not self.stopping.wait(1):
                    log.warning("%s poller: %s; retrying", self.queue_name, exc)

    def _poll_forever(self) -> None:
        url = queue.queue_url(self.queue_name)
        arn = queue.sqs().get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"]
        while not self.stopping.is_set():
            batch = (
                queue.sqs()
                .receive_message(
                    QueueUrl=url,
                    MaxNumberOfMessages=self.batch_size,
                    WaitTimeSeconds=2,
                    VisibilityTimeout=self.hold_seconds,
                    AttributeNames=["All"],
                )
                .get("Messages", [])
            )
            if batch:
                self._invoke(url, arn, batch)

    def _invoke(self, url: str, arn: str, batch: list) -> None:
        event = {
            "Records": [
                {
                    "messageId": m["MessageId"],
                    "receiptHandle": m["ReceiptHandle"],
                    "body": m["Body"],
                    "attributes": m.get("Attributes", {}),
                    "messageAttributes": {},
                    "md5OfBody": m["MD5OfBody"],
                    "eventSource": "aws:sqs",
                    "eventSourceARN": arn,
                    "awsRegion": "us-east-1",
                }
                for m in batch
            ]
        }
        try:
            answer = self.handler(event, None) or {}
        except Exception:
            log.exception("%s handler failed; the batch will be redelivered", self.queue_name)
            return
        failed = {item["itemIdentifier"] for item in answer.get("batchItemFailures", [])}
        done = [m for m in batch if m["MessageId"] not in failed]
        if done:
            queue.sqs().delete_message_batch(
                QueueUrl=url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(done)
                ],
            )
