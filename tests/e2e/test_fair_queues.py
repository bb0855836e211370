"""The local stack's SQS serves a standard queue's messages as SQS fair queues do: the
messages of accounts (message groups) with few in flight first, so one tenant's backlog
does not hold back another's OTP."""

import boto3
import pytest

from .helpers import start_embedded_aws


@pytest.fixture
def sqs():
    process, endpoint = start_embedded_aws()
    try:
        yield boto3.client(
            "sqs",
            endpoint_url=endpoint,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
    finally:
        process.kill()
        process.wait()


def receive(sqs, url: str, count: int) -> list[str]:
    answer = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=count, WaitTimeSeconds=0)
    return [message["Body"] for message in answer.get("Messages", [])]


def test_a_quiet_accounts_message_comes_before_a_noisy_accounts_backlog(sqs):
    url = sqs.create_queue(QueueName="fair")["QueueUrl"]
    for i in range(6):
        sqs.send_message(QueueUrl=url, MessageBody=f"b{i}", MessageGroupId="account-b")
    sqs.send_message(QueueUrl=url, MessageBody="a0", MessageGroupId="account-a")
    assert receive(sqs, url, 2) == ["b0", "b1"]  # nothing in flight yet: oldest first
    assert receive(sqs, url, 2) == ["a0", "b2"]  # account-b has two in flight, account-a none
    assert receive(sqs, url, 10) == ["b3", "b4", "b5"]
