"""``chinqit-admin deploy`` on moto: the data stack for real, chalice's real package, the
upload, and what reaches CloudFormation for the app stack.

moto's CloudFormation cannot expand the SAM transform, so the app stack's create is
recorded rather than run; make lint checks that template with cfn-lint.
"""

from __future__ import annotations

import json
import os

import pytest
from moto import mock_aws

from chalicelib import aws as clients
from chinqit_admin import cli, stacks, template
from devstack import container


@pytest.fixture
def stage_environment():
    """The environment as it was before a command loaded a stage's variables into it."""
    before = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(before)
    container.reset()


@pytest.fixture
def prod(stage_environment):
    for name in ("AWS_ENDPOINT_URL", "SMSGW_RESOURCE_PREFIX", "SMSGW_STAGE"):
        os.environ.pop(name, None)
    cli.load_stage("prod")
    with mock_aws():
        container.reset()
        yield


@pytest.fixture
def app_stack(monkeypatch):
    """What deploy asks of CloudFormation for the app stack (the data stack really runs)."""
    calls = []
    real = stacks.apply_stack

    def apply(name, body, parameters=None, url=""):
        if name != template.app_stack_name():
            return real(name, body, parameters, url)
        calls.append({"body": body, "parameters": parameters, "url": url})
        return {"EndpointURL": "https://example.execute-api.us-east-1.amazonaws.com/api/"}

    monkeypatch.setattr(stacks, "apply_stack", apply)
    return calls


def test_deploy_uploads_the_package_and_hands_cloudformation_the_merged_template(prod, app_stack):
    outputs = stacks.deploy("prod", {"AlarmEmail": "ops@example.com"})
    assert outputs["EndpointURL"].endswith("/api/") and outputs["ArtifactBucket"]
    [call] = app_stack
    assert call["parameters"] == {"AlarmEmail": "ops@example.com"}
    bucket, key = (
        call["url"].split(".s3.", 1)[0].removeprefix("https://"),
        call["url"].split("/", 3)[3],
    )
    s3 = clients.client("s3")
    uploaded = json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
    assert uploaded == call["body"]
    functions = {
        name: r["Properties"]
        for name, r in uploaded["Resources"].items()
        if r["Type"] == "AWS::Serverless::Function"
    }
    assert set(functions) == set(template.FUNCTIONS)
    for props in functions.values():
        code = props["CodeUri"].removeprefix(f"s3://{bucket}/")
        assert s3.head_object(Bucket=bucket, Key=code)["ContentLength"] > 1_000_000
        assert props["Environment"]["Variables"]["SMSGW_STAGE"] == "prod"
    assert uploaded["Resources"]["RestAPI"]["Properties"]["EndpointConfiguration"] == "REGIONAL"
    assert "ApiHandlerRole" not in uploaded["Resources"]  # chalice's shared policy is gone


def test_a_second_deploy_changes_nothing_in_the_data_stack(prod, app_stack):
    stacks.deploy("prod", {})
    stacks.deploy("prod", {})
    first, second = app_stack
    assert first["url"] == second["url"]  # same build, same object
    data = clients.client("cloudformation").describe_stacks(StackName="chinqit-prod-data")
    assert data["Stacks"][0]["StackStatus"].endswith("_COMPLETE")


def test_deploy_without_a_stage_says_so(capsys, stage_environment):
    assert cli.main(["deploy"]) == 1
    assert "say which stage" in capsys.readouterr().err


def test_a_domain_needs_its_certificate(capsys, stage_environment):
    assert cli.main(["--stage", "prod", "deploy", "--domain", "sms.example.com"]) == 1
    assert "--certificate-arn" in capsys.readouterr().err
