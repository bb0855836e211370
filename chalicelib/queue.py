"""The outbound SQS queues the device bridges poll. Clients are created on first use.

Every SMS is tagged with its account as ``MessageGroupId``: on standard queues that makes
SQS fair queues keep one account's backlog from delaying the others' messages (the
dwell time of a quiet tenant stays low while a noisy one floods). The queues stay
standard queues: no ordering, no FIFO throughput limit.
"""

from __future__ import annotations

import functools
import math

from . import aws, clock, receipts
from .config import settings
from .wire.protocol import OutboundSms

PRIORITY_KINDS = {"otp"}
MAX_RECEIVES = 5  # deliveries of one SQS message before it moves to the dead-letter queue


def sqs():
    return aws.client("sqs")


@functools.cache
def queue_url(name_or_url: str) -> str:
    """Resolve a queue name once per container (a URL is used as it is)."""
    if name_or_url.startswith(("https://", "http://")):
        return name_or_url
    return sqs().get_queue_url(QueueName=name_or_url)["QueueUrl"]


@functools.cache
def queue_arn(name_or_url: str) -> str:
    """A queue's ARN, once per container."""
    attributes = sqs().get_queue_attributes(
        QueueUrl=queue_url(name_or_url), AttributeNames=["QueueArn"]
    )
    return attributes["Attributes"]["QueueArn"]


def queue_for(kind: str) -> str:
    config = settings()
    return config.priority_queue if kind in PRIORITY_KINDS else config.outbound_queue


def _body(message, text: str, queue_name: str) -> str:
    return OutboundSms(
        message.message_id,
        message.phone_number,
        text,
        message.kind,
        message.send_before,
        claim=receipts.token(message.message_id, queue_name),
        sim_slot=int(message.sim_slot) if message.sim_slot else None,
    ).to_json()


SQS_MAX_DELAY = 900  # seconds: what DelaySeconds allows


def delay_of(message) -> int:
    """Seconds until a scheduled message's time (0 when it has come), at most SQS's 900:
    every copy of it waits on its queue until then, whoever queues it."""
    if getattr(message, "send_at", None) is None:
        return 0
    return max(0, min(SQS_MAX_DELAY, math.ceil((message.send_at - clock.now()).total_seconds())))


def _delayed(message) -> dict:
    delay = delay_of(message)
    return {"DelaySeconds": delay} if delay else {}


def enqueue_sms(message, text: str, name: str) -> None:
    """Put one outbound SMS on queue ``name``. ``text`` is the full text (OTPs are masked in
    the table)."""
    sqs().send_message(
        QueueUrl=queue_url(name),
        MessageBody=_body(message, text, name),
        MessageGroupId=message.account_id,
        **_delayed(message),
    )


SQS_BATCH = 10


def enqueue_many(batch: list, text: str, names: list[str]) -> list:
    """Queue bulk SMS sharing one text, each on its queue (``names``, in the batch's order),
    ten per call; return the messages SQS refused."""
    by_queue: dict[str, list] = {}
    for message, name in zip(batch, names, strict=True):
        by_queue.setdefault(name, []).append(message)
    refused: list = []
    for name, messages in by_queue.items():
        refused += _send_batches(messages, text, name)
    return refused


def _send_batches(messages: list, text: str, name: str) -> list:
    refused: list = []
    url = queue_url(name)
    for start in range(0, len(messages), SQS_BATCH):
        chunk = {str(i): m for i, m in enumerate(messages[start : start + SQS_BATCH])}
        entries = [
            {
                "Id": i,
                "MessageBody": _body(m, text, name),
                "MessageGroupId": m.account_id,
                **_delayed(m),
            }
            for i, m in chunk.items()
        ]
        try:
            failed = sqs().send_message_batch(QueueUrl=url, Entries=entries).get("Failed", [])
        except Exception:
            refused += chunk.values()
            continue
        refused += [chunk[f["Id"]] for f in failed]
    return refused
