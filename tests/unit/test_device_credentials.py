"""POST /device/credentials: short-lived AWS credentials for a bridge, limited to its queues."""

import ast
import json
from datetime import UTC, datetime, timedelta

import boto3
import pytest

from chalicelib import aws, queue
from chalicelib.config import settings

PATH = "/device/credentials"


@pytest.fixture
def assumed(aws):
    """The AssumeRole calls the API makes (read off the STS client's parameters)."""
    calls = []
    hooks = aws_client("sts").meta.events
    record = lambda params, **_: calls.append(params)  # noqa: E731
    hooks.register("provide-client-params.sts.AssumeRole", record)
    yield calls
    hooks.unregister("provide-client-params.sts.AssumeRole", record)


def aws_client(name):
    return aws.client(name)


def test_a_device_gets_an_hour_of_credentials_for_its_queues_only(api, device_key, assumed):
    response = api.device_post(PATH, {}, device_key)
    assert response.status_code == 200, response.json
    assert response.headers["Cache-Control"] == "no-store"
    answer = response.json
    assert answer["accessKeyId"] and answer["secretAccessKey"] and answer["sessionToken"]
    expires = datetime.fromisoformat(answer["expiration"].replace("Z", "+00:00"))
    assert timedelta(minutes=55) < expires - datetime.now(UTC) <= timedelta(hours=1)
    config = settings()
    own = {
        "device-priority": "chinqit-dev-outbound-priority-device-phone-1",
        "device-bulk": "chinqit-dev-outbound-device-phone-1",
    }
    shared = {"priority": config.priority_queue, "bulk": config.outbound_queue}
    # phone-1 is dedicated to acme, but no heartbeat said its bridge polls its own queue yet
    assert answer["queues"] == {kind: queue.queue_url(n) for kind, n in (own | shared).items()}
    [call] = assumed
    assert call["RoleArn"].endswith(":role/chinqit-dev-bridge")
    assert call["RoleSessionName"] == "device-phone-1" and call["DurationSeconds"] == 3600
    [statement] = json.loads(call["Policy"])["Statement"]
    assert sorted(statement["Resource"]) == sorted(
        queue.queue_arn(name) for name in (own | shared).values()
    )
    assert "sqs:SendMessage" not in statement["Action"]
    assert set(statement["Action"]) >= {"sqs:ReceiveMessage", "sqs:DeleteMessage"}


def test_the_credentials_reach_the_queue(api, device_key):
    answer = api.device_post(PATH, {}, device_key).json
    sqs = boto3.client(
        "sqs",
        region_name=answer["region"],
        aws_access_key_id=answer["accessKeyId"],
        aws_secret_access_key=answer["secretAccessKey"],
        aws_session_token=answer["sessionToken"],
    )
    api.post("/messages/send", {"message": "Salam", "phoneNumber": "38089336"})
    [message] = sqs.receive_message(QueueUrl=answer["queues"]["bulk"])["Messages"]
    assert json.loads(message["Body"])["text"] == "Salam"


def test_only_devices_get_credentials(api, device_key):
    assert api.post(PATH, {}).status_code == 401  # an API key is not a device key
    assert api.device_post(PATH, {}, "cq_dev_" + "x" * 43).status_code == 403


def test_a_device_asks_at_most_30_times_an_hour(api, device_key, manual_clock):
    statuses = [api.device_post(PATH, {}, device_key).status_code for _ in range(31)]
    assert statuses == [200] * 30 + [429]


def test_the_data_stack_declares_the_bridge_role(aws):
    role = aws_client("iam").get_role(RoleName="chinqit-dev-bridge")["Role"]
    [statement] = role["AssumeRolePolicyDocument"]["Statement"]
    assert statement["Action"] == "sts:AssumeRole"
    assert statement["Principal"]["AWS"].endswith(":root")
    policy = aws_client("iam").get_role_policy(
        RoleName="chinqit-dev-bridge", PolicyName="outbound-queues"
    )["PolicyDocument"]
    if isinstance(policy, str):  # moto's CloudFormation keeps the document as a Python repr
        policy = ast.literal_eval(policy)
    assert all(":chinqit-dev-outbound" in arn for arn in policy["Statement"][0]["Resource"])
