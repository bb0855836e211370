"""The stage's resources as CloudFormation: the data stack on moto, the app overrides."""

from __future__ import annotations

import json

import pytest

from chalicelib import aws as clients
from chalicelib import queue, routing
from chalicelib.config import settings
from chalicelib.models import ALL_MODELS
from chinqit_admin import provision, stacks, template


def test_the_data_stack_creates_every_table_the_models_use_with_ttl(aws):
    dynamodb = clients.client("dynamodb")
    for model in ALL_MODELS:
        described = dynamodb.describe_table(TableName=model.Meta.table_name)["Table"]
        wanted = {i["index_name"] for i in model._get_schema()["global_secondary_indexes"]}
        assert wanted <= {i["IndexName"] for i in described.get("GlobalSecondaryIndexes", [])}
        assert described["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
        assert described["DeletionProtectionEnabled"] is True
    ttl = dynamodb.describe_time_to_live(TableName=settings().otps_table)
    assert ttl["TimeToLiveDescription"] == {
        "AttributeName": "expires_at",
        "TimeToLiveStatus": "ENABLED",
    }


def test_queues_outlast_their_consumers_and_dead_letter(aws):
    sqs, config = queue.sqs(), settings()
    for name, consumer in (
        (config.webhook_queue, "WebhookWorker"),
        (config.outbound_queue + "-dlq", "OutboundDeadLetters"),
        (config.priority_queue + "-dlq", "PriorityDeadLetters"),
    ):
        attributes = sqs.get_queue_attributes(
            QueueUrl=queue.queue_url(name), AttributeNames=["All"]
        )
        visibility = int(attributes["Attributes"]["VisibilityTimeout"])
        assert visibility >= 6 * template.lambda_timeout("dev", consumer)
    for name in (config.outbound_queue, config.priority_queue, config.webhook_queue):
        attributes = sqs.get_queue_attributes(
            QueueUrl=queue.queue_url(name), AttributeNames=["All"]
        )["Attributes"]
        redrive = json.loads(attributes["RedrivePolicy"])
        assert redrive["deadLetterTargetArn"] == queue.queue_arn(name + "-dlq")
        assert attributes["SqsManagedSseEnabled"] == "true"


def test_redeploying_the_data_stack_changes_nothing_and_keeps_the_secret(aws):
    secrets_manager = clients.client("secretsmanager")
    name = template.secret_name()
    before = secrets_manager.get_secret_value(SecretId=name)["SecretString"]
    provision.all_resources()
    provision.all_resources()
    assert secrets_manager.get_secret_value(SecretId=name)["SecretString"] == before
    status = clients.client("cloudformation").describe_stacks(StackName=template.data_stack_name())
    assert status["Stacks"][0]["StackStatus"].endswith("_COMPLETE")


def test_a_device_queue_made_by_an_older_release_is_brought_up_to_date(aws):
    sqs = queue.sqs()
    name = routing.device_queue("phone-9", "sms")
    old = sqs.create_queue(QueueName=name, Attributes={"VisibilityTimeout": "30"})["QueueUrl"]
    urls = provision.device_queues("phone-9")
    assert old in urls.values()
    attributes = sqs.get_queue_attributes(QueueUrl=old, AttributeNames=["All"])["Attributes"]
    assert attributes["VisibilityTimeout"] == str(template.OUTBOUND_VISIBILITY)
    assert "RedrivePolicy" in attributes


def test_destroy_deletes_the_data_stack_only_when_asked_and_keeps_tables(aws):
    assert stacks.destroy("dev") == []  # no app stack on the local stack: nothing to do
    assert stacks.destroy("dev", data=True) == [template.data_stack_name()]
    assert settings().messages_table in clients.client("dynamodb").list_tables()["TableNames"]
    assert stacks.destroy("dev", data=True) == []  # already gone


@pytest.fixture(scope="module")
def overrides():
    return template.app_overrides("prod")


def _statements(overrides, function) -> list[dict]:
    role = overrides["Resources"][template.ROLES[function]]
    [policy] = role["Properties"]["Policies"]
    return policy["PolicyDocument"]["Statement"]


def _actions(overrides, function) -> set[str]:
    return {a for s in _statements(overrides, function) for a in s["Action"]}


def test_every_function_has_its_own_role(overrides):
    for function in template.FUNCTIONS:
        props = overrides["Resources"][function]["Properties"]
        assert props["Role"] == {"Fn::GetAtt": [template.ROLES[function], "Arn"]}
        assert props["Tracing"] == "Active"
        log_group = overrides["Resources"][f"{function}LogGroup"]["Properties"]
        assert log_group["RetentionInDays"] == {"Ref": "LogRetentionDays"}


def test_the_api_cannot_consume_the_sms_queues(overrides):
    assert "sqs:ReceiveMessage" not in _actions(overrides, "APIHandler")
    assert "sqs:DeleteMessage" not in _actions(overrides, "APIHandler")
    assert "dynamodb:ConditionCheckItem" not in _actions(overrides, "APIHandler")


def test_background_functions_never_touch_keys_or_otps(overrides):
    secrets = {settings().keys_table, settings().otps_table}
    for function in set(template.FUNCTIONS) - {"APIHandler"}:
        resources = json.dumps([s["Resource"] for s in _statements(overrides, function)])
        assert not any(f"table/{name}" in resources for name in secrets), function
        assert "sts:AssumeRole" not in _actions(overrides, function)


def test_queue_triggers_report_failures_per_record_with_a_concurrency_cap(overrides):
    for function, cap in template.MAX_CONCURRENCY.items():
        events = overrides["Resources"][function]["Properties"]["Events"]
        trigger = events[f"{function}SqsEventSource"]["Properties"]
        assert trigger["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
        assert trigger["ScalingConfig"] == {"MaximumConcurrency": cap}


def test_alarms_cover_dead_letters_waiting_sms_lambda_errors_and_api_5xx(overrides):
    alarms = {
        k: r["Properties"]
        for k, r in overrides["Resources"].items()
        if r.get("Type") == "AWS::CloudWatch::Alarm"
    }
    metrics = {(a["Namespace"], a["MetricName"]) for a in alarms.values()}
    assert {
        ("AWS/SQS", "ApproximateNumberOfMessagesVisible"),
        ("AWS/SQS", "ApproximateAgeOfOldestMessage"),
        ("AWS/Lambda", "Errors"),
        ("AWS/Lambda", "Throttles"),
        ("AWS/ApiGateway", "5XXError"),
    } <= metrics
    assert all(a["AlarmActions"] == [{"Ref": "AlarmTopic"}] for a in alarms.values())
    dead_letter_queues = {
        d["Value"]
        for a in alarms.values()
        if a["MetricName"] == "ApproximateNumberOfMessagesVisible"
        for d in a["Dimensions"]
    }
    config = settings()
    assert dead_letter_queues == {
        f"{q}-dlq" for q in (config.outbound_queue, config.priority_queue, config.webhook_queue)
    }


def test_the_custom_domain_is_optional(overrides):
    for name in ("ApiDomain", "ApiBasePath"):
        assert overrides["Resources"][name]["Condition"] == "HasDomain"
    assert overrides["Resources"]["ApiDomain"]["Properties"]["EndpointConfiguration"] == {
        "Types": ["REGIONAL"]
    }
