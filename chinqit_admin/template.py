"""Every AWS resource of a stage, declared once as CloudFormation.

Two stacks per stage (names from the stage's SMSGW_RESOURCE_PREFIX, e.g. ``chinqit-prod``):

- ``<prefix>-data`` (:func:`data_template`): the tables (from the PynamoDB models' own
  schemas), the shared queues with their dead-letter queues, the server secret, the
  bridge role and the bucket deploys upload code to. The local stack creates this same
  stack on its embedded AWS. Tables and the secret are retained even if it is deleted.
- ``<prefix>`` (:func:`app_overrides`): what ``chalice package`` writes for the Lambdas and
  the REST API, merged (``--merge-template``) with one least-privilege role per function,
  partial batch responses and a concurrency cap on the queue triggers, log groups with
  retention, X-Ray, stage throttling, alarms to an SNS topic, a dashboard and an optional
  custom domain. ``make destroy`` deletes this one and keeps the data stack.
"""

from __future__ import annotations

import json
from pathlib import Path

from chalicelib.config import settings
from chalicelib.device_credentials import QUEUE_ACTIONS
from chalicelib.queue import MAX_RECEIVES

CONFIG_FILE = Path(__file__).resolve().parent.parent / ".chalice" / "config.json"
APP_NAME = json.loads(CONFIG_FILE.read_text())["app_name"]
API_STAGE = "api"

OUTBOUND_VISIBILITY = 60  # seconds a bridge holds an SMS before it must extend or hand it back
OUTBOUND_RETENTION = 4 * 24 * 3600  # seconds an unsent SMS waits on its queue
DEAD_LETTER_RETENTION = 14 * 24 * 3600
# AWS: a queue feeding a Lambda needs a visibility timeout of at least 6x its timeout.
VISIBILITY_PER_TIMEOUT = 6
# At most this many concurrent copies of each queue-triggered Lambda (2 is SQS's minimum).
MAX_CONCURRENCY = {"WebhookWorker": 20, "OutboundDeadLetters": 2, "PriorityDeadLetters": 2}

# The Lambdas chalice packages (logical ids), their handler names in app.py
FUNCTIONS = {
    "APIHandler": "api_handler",
    "OutboxSweep": "outbox_sweep",
    "DeviceWatch": "device_watch",
    "OutboundDeadLetters": "outbound_dead_letters",
    "PriorityDeadLetters": "priority_dead_letters",
    "WebhookWorker": "webhook_worker",
}
ROLES = {f: f"{f}Role" for f in FUNCTIONS}


def stage_config(stage: str) -> dict:
    return json.loads(CONFIG_FILE.read_text())["stages"][stage]


def lambda_timeout(stage: str, function: str) -> int:
    """A function's timeout in seconds, as chalice reads it from .chalice/config.json."""
    config = stage_config(stage)
    own = config.get("lambda_functions", {}).get(FUNCTIONS[function], {})
    return int(own.get("lambda_timeout", config.get("lambda_timeout", 60)))


def data_stack_name() -> str:
    return f"{settings().resource_prefix}-data"


def app_stack_name() -> str:
    return settings().resource_prefix


def secret_name() -> str:
    return settings().secret_key_secret or f"{settings().resource_prefix}-secret-key"


# --- data stack -----------------------------------------------------------------------------


def data_template(stage: str) -> dict:
    resources: dict = {}
    for logical_id, table in _tables().items():
        resources[logical_id] = table
    resources |= _queues(stage)
    resources["ServerSecret"] = {
        "Type": "AWS::SecretsManager::Secret",
        "DeletionPolicy": "Retain",
        "UpdateReplacePolicy": "Retain",
        "Properties": {
            "Name": secret_name(),
            "Description": "Chinqit SMS Gateway server secret (OTP hashes, list cursors)",
            "GenerateSecretString": {"PasswordLength": 64, "ExcludePunctuation": True},
        },
    }
    resources["BridgeRole"] = _bridge_role()
    resources["ArtifactBucket"] = {
        "Type": "AWS::S3::Bucket",
        "Properties": {
            "BucketEncryption": {
                "ServerSideEncryptionConfiguration": [
                    {"ServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}
                ]
            },
            "PublicAccessBlockConfiguration": {
                "BlockPublicAcls": True,
                "BlockPublicPolicy": True,
                "IgnorePublicAcls": True,
                "RestrictPublicBuckets": True,
            },
            "LifecycleConfiguration": {"Rules": [{"Status": "Enabled", "ExpirationInDays": 90}]},
        },
    }
    outputs = {
        "ArtifactBucket": {"Value": {"Ref": "ArtifactBucket"}},
        "BridgeRoleArn": {"Value": {"Fn::GetAtt": ["BridgeRole", "Arn"]}},
    }
    return {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Description": f"Chinqit SMS Gateway data ({stage}): tables, queues, secret, bridge role",
        "Resources": resources,
        "Outputs": outputs,
    }


def _tables() -> dict:
    """One AWS::DynamoDB::Table per table the models use (two models may share one)."""
    from pynamodb.attributes import TTLAttribute

    from chalicelib.models import ALL_MODELS

    tables: dict[str, dict] = {}
    for model in ALL_MODELS:
        schema = model._get_schema()  # PynamoDB's own description of the table
        name = model.Meta.table_name
        props = tables.setdefault(
            name,
            {
                "TableName": name,
                "BillingMode": "PAY_PER_REQUEST",
                "KeySchema": schema["key_schema"],
                "AttributeDefinitions": [],
                "PointInTimeRecoverySpecification": {"PointInTimeRecoveryEnabled": True},
                "DeletionProtectionEnabled": True,
                "SSESpecification": {"SSEEnabled": True},
            },
        )
        for definition in schema["attribute_definitions"]:
            if definition not in props["AttributeDefinitions"]:
                props["AttributeDefinitions"].append(definition)
        indexes = [
            {
                "IndexName": index["index_name"],
                "KeySchema": index["key_schema"],
                "Projection": index["projection"],
            }
            for index in schema["global_secondary_indexes"]
        ]
        if indexes:
            props["GlobalSecondaryIndexes"] = indexes
        ttl = [n for n, a in model.get_attributes().items() if isinstance(a, TTLAttribute)]
        if ttl:
            props["TimeToLiveSpecification"] = {"AttributeName": ttl[0], "Enabled": True}
    return {
        _logical_id(name) + "Table": {
            "Type": "AWS::DynamoDB::Table",
            "DeletionPolicy": "Retain",
            "UpdateReplacePolicy": "Retain",
            "Properties": props,
        }
        for name, props in tables.items()
    }


def _logical_id(name: str) -> str:
    """chinqit-prod-webhook-deliveries -> WebhookDeliveries (the prefix left out)."""
    prefix = app_stack_name() + "-"
    return "".join(part.capitalize() for part in name.removeprefix(prefix).split("-"))


def _queues(stage: str) -> dict:
    config = settings()
    dlq_visibility = VISIBILITY_PER_TIMEOUT * max(
        lambda_timeout(stage, "OutboundDeadLetters"), lambda_timeout(stage, "PriorityDeadLetters")
    )
    webhook_visibility = VISIBILITY_PER_TIMEOUT * lambda_timeout(stage, "WebhookWorker")
    resources = {}
    for name, visibility, retention in (
        (config.outbound_queue, OUTBOUND_VISIBILITY, OUTBOUND_RETENTION),
        (config.priority_queue, OUTBOUND_VISIBILITY, OUTBOUND_RETENTION),
        (config.webhook_queue, webhook_visibility, DEAD_LETTER_RETENTION),
    ):
        dead = f"{name}-dlq"
        resources[_logical_id(dead) + "Queue"] = _queue(dead, dlq_visibility)
        resources[_logical_id(dead) + "Queue"]["Metadata"] = _lint_exceptions(
            ES6000="the last stop: SMS ones are settled by their handler (queued again or "
            "failed), webhook ones show on GET /webhook, and an alarm fires on any message"
        )
        dlq_arn = {"Fn::GetAtt": [_logical_id(dead) + "Queue", "Arn"]}
        resources[_logical_id(name) + "Queue"] = _queue(name, visibility, retention, dlq_arn)
    return resources


def _queue(name: str, visibility: int, retention=DEAD_LETTER_RETENTION, dead_letters=None):
    return {
        "Type": "AWS::SQS::Queue",
        "Properties": queue_properties(name, visibility, retention, dead_letters),
    }


def queue_properties(name, visibility: int, retention: int, dead_letters=None) -> dict:
    """A queue's CloudFormation properties (also used for devices' own queues)."""
    properties = {
        "QueueName": name,
        "VisibilityTimeout": visibility,
        "MessageRetentionPeriod": retention,
        "SqsManagedSseEnabled": True,
    }
    if dead_letters:
        properties["RedrivePolicy"] = {
            "deadLetterTargetArn": dead_letters,
            "maxReceiveCount": MAX_RECEIVES,
        }
    return properties


def _bridge_role() -> dict:
    """The role whose short-lived sessions bridges get (POST /device/credentials): trusted
    by this account (the API's role assumes it), allowed to receive from the outbound
    queues and devices' own; each session is narrowed further to its device's queues."""
    config = settings()
    outbound = [
        {
            "Fn::Sub": f"arn:${{AWS::Partition}}:sqs:${{AWS::Region}}:${{AWS::AccountId}}:{name}{suffix}"
        }
        for name in (config.priority_queue, config.outbound_queue)
        for suffix in ("", "-device-*")
    ]
    return {
        "Type": "AWS::IAM::Role",
        "Properties": {
            "RoleName": config.bridge_role,
            "Description": "Chinqit device bridges: receive SMS from the outbound queues",
            "MaxSessionDuration": 3600,
            "AssumeRolePolicyDocument": {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Principal": {
                            "AWS": {"Fn::Sub": "arn:${AWS::Partition}:iam::${AWS::AccountId}:root"}
                        },
                        "Action": "sts:AssumeRole",
                    }
                ],
            },
            "Policies": [
                {
                    "PolicyName": "outbound-queues",
                    "PolicyDocument": {
                        "Version": "2012-10-17",
                        "Statement": [
                            {"Effect": "Allow", "Action": QUEUE_ACTIONS, "Resource": outbound}
                        ],
                    },
                }
            ],
        },
    }


# --- app stack: merged into chalice's own package ----------------------------------------

TABLE_ACTIONS = [
    "dynamodb:GetItem",
    "dynamodb:PutItem",
    "dynamodb:UpdateItem",
    "dynamodb:DeleteItem",
    "dynamodb:Query",
    "dynamodb:Scan",
    "dynamodb:BatchWriteItem",
]
SEND_ACTIONS = ["sqs:SendMessage", "sqs:GetQueueUrl", "sqs:GetQueueAttributes"]
CONSUME_ACTIONS = ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility"]


def _arn(service: str, resource: str) -> dict:
    return {
        "Fn::Sub": f"arn:${{AWS::Partition}}:{service}:${{AWS::Region}}:${{AWS::AccountId}}:{resource}"
    }


def _tables_of(*names: str) -> list:
    return [_arn("dynamodb", f"table/{n}{index}") for n in names for index in ("", "/index/*")]


def _queues_of(*names: str) -> list:
    return [_arn("sqs", name) for name in names]


def _permissions() -> dict[str, list[dict]]:
    """What each function may do, and nothing more (one role each)."""
    c = settings()
    every_table = sorted({model.Meta.table_name for model in _models()})
    background = [
        c.messages_table,
        c.devices_table,
        c.accounts_table,
        c.webhooks_table,
        c.rate_limits_table,
    ]
    sms_queues = [c.outbound_queue, c.priority_queue]
    device_queues = [f"{q}-device-*" for q in sms_queues]  # devices' own queues (fleet issue)
    events = [c.webhook_queue]
    send_sms = {
        "Action": SEND_ACTIONS,
        "Resource": _queues_of(*sms_queues, *device_queues, *events),
    }
    return {
        "APIHandler": [
            {"Action": TABLE_ACTIONS, "Resource": _tables_of(*every_table)},
            send_sms,
            {
                "Action": ["sts:AssumeRole"],
                "Resource": [
                    {
                        "Fn::Sub": "arn:${AWS::Partition}:iam::${AWS::AccountId}:role/"
                        + c.bridge_role
                    }
                ],
            },
            {
                "Action": ["secretsmanager:GetSecretValue"],
                "Resource": [_arn("secretsmanager", f"secret:{secret_name()}-*")],
            },
        ],
        "OutboxSweep": [
            {"Action": TABLE_ACTIONS, "Resource": _tables_of(*background)},
            send_sms,
        ],
        "DeviceWatch": [
            {"Action": TABLE_ACTIONS, "Resource": _tables_of(*background)},
            send_sms,
            {"Action": CONSUME_ACTIONS, "Resource": _queues_of(*device_queues)},
        ],
        "OutboundDeadLetters": [
            {"Action": TABLE_ACTIONS, "Resource": _tables_of(*background)},
            send_sms,
            {
                "Action": CONSUME_ACTIONS + ["sqs:GetQueueAttributes"],
                "Resource": _queues_of(f"{c.outbound_queue}-dlq"),
            },
        ],
        "PriorityDeadLetters": [
            {"Action": TABLE_ACTIONS, "Resource": _tables_of(*background)},
            send_sms,
            {
                "Action": CONSUME_ACTIONS + ["sqs:GetQueueAttributes"],
                "Resource": _queues_of(f"{c.priority_queue}-dlq"),
            },
        ],
        "WebhookWorker": [
            {
                "Action": TABLE_ACTIONS,
                "Resource": _tables_of(c.webhooks_table, c.webhook_deliveries_table),
            },
            {
                "Action": SEND_ACTIONS,
                "Resource": _queues_of(c.webhook_queue, f"{c.webhook_queue}-dlq"),
            },
            {
                "Action": CONSUME_ACTIONS + ["sqs:GetQueueAttributes"],
                "Resource": _queues_of(c.webhook_queue),
            },
        ],
    }


def _known_addresses() -> dict:
    """Queue URLs and the bridge role's ARN, known at deploy time: no GetQueueUrl nor
    GetCallerIdentity on a cold start."""
    c = settings()
    url = "https://sqs.${AWS::Region}.${AWS::URLSuffix}/${AWS::AccountId}/"
    role = "arn:${AWS::Partition}:iam::${AWS::AccountId}:role/"
    return {
        "SMSGW_OUTBOUND_QUEUE": {"Fn::Sub": url + c.outbound_queue},
        "SMSGW_PRIORITY_QUEUE": {"Fn::Sub": url + c.priority_queue},
        "SMSGW_WEBHOOK_QUEUE": {"Fn::Sub": url + c.webhook_queue},
        "SMSGW_BRIDGE_ROLE": {"Fn::Sub": role + c.bridge_role},
    }


def _function_name(function: str) -> str:
    """Named after the stack, so its log group and role can be named before it exists."""
    return f"${{AWS::StackName}}-{function}"


def _log_group(function: str) -> str:
    return f"/aws/lambda/{_function_name(function)}"


def _lint_exceptions(**reasons: str) -> dict:
    """Resource metadata that makes cfn-lint skip the given rules; each reason is kept
    here, next to the resource it excuses."""
    return {"cfn-lint": {"config": {"ignore_checks": sorted(reasons)}}}


SCHEDULE_EXCEPTIONS = _lint_exceptions(
    ES1007="a failed run is made good by the next, one minute later: no destination",
    ES4000="same: a dead-letter queue would only collect obsolete minutes",
)


def _models():
    from chalicelib.models import ALL_MODELS

    return ALL_MODELS


def _role(function: str, statements: list[dict]) -> dict:
    common: list[dict] = [
        {  # the group's own streams (named, not referenced: the group depends on the function)
            "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
            "Resource": [_arn("logs", f"log-group:{_log_group(function)}:*")],
        },
        # X-Ray takes no resource-level permissions
        {"Action": ["xray:PutTraceSegments", "xray:PutTelemetryRecords"], "Resource": "*"},
    ]
    return {
        "Type": "AWS::IAM::Role",
        "Properties": {
            "AssumeRolePolicyDocument": {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Principal": {"Service": "lambda.amazonaws.com"},
                        "Action": "sts:AssumeRole",
                    }
                ],
            },
            "Policies": [
                {
                    "PolicyName": f"{function}Policy",
                    "PolicyDocument": {
                        "Version": "2012-10-17",
                        "Statement": [{"Effect": "Allow", **s} for s in statements + common],
                    },
                }
            ],
        },
    }


PARAMETERS = {
    "AlarmEmail": {
        "Type": "String",
        "Default": "",
        "Description": "E-mail address the alarms go to (confirm the subscription mail)",
    },
    "DomainName": {
        "Type": "String",
        "Default": "",
        "Description": "Custom domain of the API, e.g. sms.example.com (empty: none)",
    },
    "CertificateArn": {
        "Type": "String",
        "Default": "",
        "Description": "ACM certificate for DomainName, in the stack's region",
    },
    "ThrottleRate": {"Type": "Number", "Default": 100, "Description": "API requests per second"},
    "ThrottleBurst": {"Type": "Number", "Default": 200, "Description": "API burst"},
    "OldestSmsSeconds": {
        "Type": "Number",
        "Default": 600,
        "Description": "Alarm when an outbound SMS waits longer than this (no bridge serves it)",
    },
    "LogRetentionDays": {"Type": "Number", "Default": 30, "AllowedValues": [7, 14, 30, 90, 365]},
}


def app_overrides(stage: str) -> dict:
    """The merge template for ``chalice package --merge-template``."""
    resources: dict = {}
    for function, statements in _permissions().items():
        resources[ROLES[function]] = _role(function, statements)
        resources[f"{function}LogGroup"] = {
            "Type": "AWS::Logs::LogGroup",
            "Properties": {
                "LogGroupName": {"Fn::Sub": f"/aws/lambda/${{{function}}}"},
                "RetentionInDays": {"Ref": "LogRetentionDays"},
            },
        }
        resources[function] = {
            "Properties": {
                "FunctionName": {"Fn::Sub": _function_name(function)},
                "Role": {"Fn::GetAtt": [ROLES[function], "Arn"]},
                "Environment": {"Variables": _known_addresses()},
                "Tracing": "Active",
            }
        }
        if function in ("OutboxSweep", "DeviceWatch"):
            resources[function]["Metadata"] = SCHEDULE_EXCEPTIONS
    for function, concurrency in MAX_CONCURRENCY.items():
        resources[function]["Properties"]["Events"] = {
            f"{function}SqsEventSource": {
                "Properties": {
                    "FunctionResponseTypes": ["ReportBatchItemFailures"],
                    "ScalingConfig": {"MaximumConcurrency": concurrency},
                }
            }
        }
    resources["RestAPI"] = {
        "Metadata": _lint_exceptions(
            ES2000="access logs need the account-wide API Gateway CloudWatch role (set outside "
            "this stack); the API's Lambda writes one JSON line per request instead"
        ),
        "Properties": {
            "TracingEnabled": True,
            "MethodSettings": [
                {
                    "ResourcePath": "/*",
                    "HttpMethod": "*",
                    "MetricsEnabled": True,
                    "ThrottlingRateLimit": {"Ref": "ThrottleRate"},
                    "ThrottlingBurstLimit": {"Ref": "ThrottleBurst"},
                }
            ],
        },
    }
    resources |= _domain() | _alarms() | {"Dashboard": _dashboard()}
    return {
        "Parameters": PARAMETERS,
        "Conditions": {
            "HasAlarmEmail": {"Fn::Not": [{"Fn::Equals": [{"Ref": "AlarmEmail"}, ""]}]},
            "HasDomain": {"Fn::Not": [{"Fn::Equals": [{"Ref": "DomainName"}, ""]}]},
        },
        "Resources": resources,
        "Outputs": {
            "AlarmTopic": {"Value": {"Ref": "AlarmTopic"}},
            "DomainTarget": {
                "Condition": "HasDomain",
                "Description": "Point the custom domain here (CNAME or alias record)",
                "Value": {"Fn::GetAtt": ["ApiDomain", "RegionalDomainName"]},
            },
        },
    }


def _domain() -> dict:
    return {
        "ApiDomain": {
            "Type": "AWS::ApiGateway::DomainName",
            "Condition": "HasDomain",
            "Properties": {
                "DomainName": {"Ref": "DomainName"},
                "RegionalCertificateArn": {"Ref": "CertificateArn"},
                "EndpointConfiguration": {"Types": ["REGIONAL"]},
                "SecurityPolicy": "TLS_1_2",
            },
        },
        "ApiBasePath": {
            "Type": "AWS::ApiGateway::BasePathMapping",
            "Condition": "HasDomain",
            # the stage SAM creates for the API (chalice's api_gateway_stage)
            "DependsOn": f"RestAPI{API_STAGE}Stage",
            "Properties": {
                "DomainName": {"Ref": "ApiDomain"},
                "RestApiId": {"Ref": "RestAPI"},
                "Stage": API_STAGE,
            },
        },
    }


def _alarm(description: str, namespace: str, metric: str, dimensions: dict, **settings_) -> dict:
    return {
        "Type": "AWS::CloudWatch::Alarm",
        "Properties": {
            "AlarmDescription": description,
            "Namespace": namespace,
            "MetricName": metric,
            "Dimensions": [{"Name": k, "Value": v} for k, v in dimensions.items()],
            "Statistic": settings_.get("statistic", "Maximum"),
            "Period": settings_.get("period", 60),
            "EvaluationPeriods": settings_.get("periods", 1),
            "Threshold": settings_.get("threshold", 0),
            "ComparisonOperator": "GreaterThanThreshold",
            "TreatMissingData": "notBreaching",
            "AlarmActions": [{"Ref": "AlarmTopic"}],
            "OKActions": [{"Ref": "AlarmTopic"}],
        },
    }


def _alarms() -> dict:
    c = settings()
    alarms: dict = {
        "AlarmTopic": {
            "Type": "AWS::SNS::Topic",
            "Properties": {"KmsMasterKeyId": "alias/aws/sns"},
        },
        "AlarmSubscription": {
            "Type": "AWS::SNS::Subscription",
            "Condition": "HasAlarmEmail",
            "Metadata": _lint_exceptions(
                ES7000="an e-mail that cannot be delivered has nowhere better to go; the "
                "alarm's state stays visible in CloudWatch and on the dashboard"
            ),
            "Properties": {
                "TopicArn": {"Ref": "AlarmTopic"},
                "Protocol": "email",
                "Endpoint": {"Ref": "AlarmEmail"},
            },
        },
    }
    for name in (c.outbound_queue, c.priority_queue, c.webhook_queue):
        dead = f"{name}-dlq"
        alarms[_logical_id(dead) + "Alarm"] = _alarm(
            f"Messages in {dead}: SMS or webhooks that could not be handled",
            "AWS/SQS",
            "ApproximateNumberOfMessagesVisible",
            {"QueueName": dead},
            period=300,
        )
    for name in (c.outbound_queue, c.priority_queue):
        alarm = _alarm(
            f"An SMS waits on {name}: no bridge serves it",
            "AWS/SQS",
            "ApproximateAgeOfOldestMessage",
            {"QueueName": name},
            period=300,
        )
        alarm["Properties"]["Threshold"] = {"Ref": "OldestSmsSeconds"}
        alarms[_logical_id(name) + "AgeAlarm"] = alarm
    for function in FUNCTIONS:
        for metric in ("Errors", "Throttles"):
            alarm = _alarm(
                f"{function}: Lambda {metric.lower()}",
                "AWS/Lambda",
                metric,
                {},
                statistic="Sum",
                period=300,
            )
            alarm["Properties"]["Dimensions"] = [
                {"Name": "FunctionName", "Value": {"Ref": function}}
            ]
            alarms[f"{function}{metric}Alarm"] = alarm
    # The Average of 5XXError is the share of requests answered 5xx.
    alarms["Api5xxAlarm"] = _alarm(
        "More than 5% of API requests answered 5xx",
        "AWS/ApiGateway",
        "5XXError",
        {"ApiName": APP_NAME, "Stage": API_STAGE},
        statistic="Average",
        period=300,
        threshold=0.05,
    )
    return alarms


def _dashboard() -> dict:
    c = settings()
    region = "${AWS::Region}"

    def widget(title: str, metrics: list, stat: str = "Sum") -> dict:
        return {
            "type": "metric",
            "width": 12,
            "height": 6,
            "properties": {
                "title": title,
                "region": region,
                "stat": stat,
                "period": 300,
                "metrics": metrics,
            },
        }

    sms = [
        ["Chinqit/SMS", "Messages", "Change", change, "Status", status, "Channel", "sms"]
        for change, status in (
            ("created", "queued"),
            ("status", "sent"),
            ("status", "delivered"),
            ("status", "failed"),
        )
    ]
    queues = [
        ["AWS/SQS", "ApproximateAgeOfOldestMessage", "QueueName", q]
        for q in (c.outbound_queue, c.priority_queue, c.webhook_queue)
    ]
    dead = [
        ["AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName", f"{q}-dlq"]
        for q in (c.outbound_queue, c.priority_queue, c.webhook_queue)
    ]
    lambdas = [["AWS/Lambda", "Errors", "FunctionName", f"${{{f}}}"] for f in FUNCTIONS]
    api = [
        ["AWS/ApiGateway", m, "ApiName", APP_NAME, "Stage", API_STAGE]
        for m in ("Count", "4XXError", "5XXError")
    ]
    body = {
        "widgets": [
            widget("SMS by status", sms),
            widget("Oldest message (s)", queues, "Maximum"),
            widget("Dead letters", dead, "Maximum"),
            widget("Lambda errors", lambdas),
            widget("API requests and errors", api),
            widget(
                "API latency (ms)",
                [["AWS/ApiGateway", "Latency", "ApiName", APP_NAME, "Stage", API_STAGE]],
                "p90",
            ),
        ]
    }
    return {
        "Type": "AWS::CloudWatch::Dashboard",
        "Properties": {
            "DashboardName": {"Fn::Sub": "${AWS::StackName}"},
            "DashboardBody": {"Fn::Sub": json.dumps(body)},
        },
    }
