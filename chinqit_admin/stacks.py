"""Deploy and destroy a stage's two CloudFormation stacks (declared in template.py).

    chinqit-admin --stage prod deploy [--alarm-email ops@example.com] [--domain sms.example.com
                                       --certificate-arn arn:aws:acm:...]
    chinqit-admin --stage prod destroy [--data]

Deploy state lives in CloudFormation, not in a local file: any clone deploys the same
stacks again, and a rerun with nothing changed changes nothing.
"""

from __future__ import annotations

import hashlib
import json
import logging
import secrets
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path

from chalicelib import aws

from . import bundle, template

log = logging.getLogger("chinqit.admin")
PROJECT = template.CONFIG_FILE.parent.parent
CAPABILITIES = ["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM", "CAPABILITY_AUTO_EXPAND"]
WAIT = {"Delay": 5, "MaxAttempts": 360}  # CloudFront-free stacks settle well within 30 min
NO_CHANGES = "No updates are to be performed"


def apply_stack(name: str, body: dict, parameters: dict | None = None, url: str = "") -> dict:
    """Create the stack or update it to ``body``; its outputs. Unchanged: nothing happens."""
    cfn = aws.client("cloudformation")
    source = {"TemplateURL": url} if url else {"TemplateBody": json.dumps(body)}
    request = {
        "StackName": name,
        **source,
        "Capabilities": CAPABILITIES,
        "Parameters": [
            {"ParameterKey": k, "ParameterValue": str(v)} for k, v in (parameters or {}).items()
        ],
    }
    status = _status(name)
    if status == "ROLLBACK_COMPLETE":  # a first create that failed: only deleting helps
        cfn.delete_stack(StackName=name)
        cfn.get_waiter("stack_delete_complete").wait(StackName=name, WaiterConfig=WAIT)
        status = None
    if status is None:
        log.info("creating stack %s", name)
        cfn.create_stack(**request, EnableTerminationProtection=False)
        cfn.get_waiter("stack_create_complete").wait(StackName=name, WaiterConfig=WAIT)
    else:
        try:
            cfn.update_stack(**request)
        except cfn.exceptions.ClientError as exc:
            if NO_CHANGES not in str(exc):
                raise
            log.info("stack %s is up to date", name)
        else:
            log.info("updating stack %s", name)
            cfn.get_waiter("stack_update_complete").wait(StackName=name, WaiterConfig=WAIT)
    return outputs(name)


def _status(name: str) -> str | None:
    cfn = aws.client("cloudformation")
    try:
        return cfn.describe_stacks(StackName=name)["Stacks"][0]["StackStatus"]
    except cfn.exceptions.ClientError as exc:
        if "does not exist" in str(exc):
            return None
        raise


def outputs(name: str) -> dict:
    stack = aws.client("cloudformation").describe_stacks(StackName=name)["Stacks"][0]
    return {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}


def deploy_data(stage: str) -> dict:
    return apply_stack(template.data_stack_name(), template.data_template(stage))


def deploy(stage: str, parameters: dict) -> dict:
    """Both stacks of a stage: data first, then the Lambdas and the API."""
    data = deploy_data(stage)
    with tempfile.TemporaryDirectory() as work:
        packaged = package(stage, Path(work))
        bucket = data["ArtifactBucket"]
        code = _upload(bucket, packaged / "deployment.zip", "zip")
        body = json.loads((packaged / "sam.json").read_text())
        for resource in body["Resources"].values():
            if resource["Type"] == "AWS::Serverless::Function":
                resource["Properties"]["CodeUri"] = f"s3://{bucket}/{code}"
        encoded = json.dumps(body).encode()
        (packaged / "app.json").write_bytes(encoded)
        key = _upload(bucket, packaged / "app.json", "json")
        region = aws.client("s3").meta.region_name
        url = f"https://{bucket}.s3.{region}.amazonaws.com/{key}"
        return data | apply_stack(template.app_stack_name(), body, parameters, url=url)


def package(stage: str, out: Path) -> Path:
    """``chalice package`` with the overrides merged in, and its zip slimmed (bundle.py):
    out/package/sam.json and out/package/deployment.zip."""
    overrides = out / "overrides.json"
    overrides.write_text(json.dumps(template.app_overrides(stage), indent=1))
    subprocess.run(
        [
            str(Path(sys.executable).with_name("chalice")),
            "package",
            "--stage",
            stage,
            "--merge-template",
            str(overrides),
            str(out / "package"),
        ],
        cwd=PROJECT,
        check=True,
    )
    bundle.slim(out / "package" / "deployment.zip")
    return out / "package"


def _upload(bucket: str, path: Path, extension: str) -> str:
    """Upload under the content's hash (an unchanged build uploads nothing new)."""
    key = f"{template.app_stack_name()}/{hashlib.sha256(path.read_bytes()).hexdigest()}.{extension}"
    aws.client("s3").put_object(Bucket=bucket, Key=key, Body=path.read_bytes())
    return key


def destroy(stage: str, data: bool = False) -> list[str]:
    """Delete the app stack; with ``data``, the data stack too (tables and secret stay:
    their DeletionPolicy is Retain). Deleting what is already gone does nothing."""
    cfn = aws.client("cloudformation")
    names = [template.app_stack_name()] + ([template.data_stack_name()] if data else [])
    deleted = []
    for name in names:
        if _status(name) is None:
            continue
        if name == template.data_stack_name():
            _empty(outputs(name)["ArtifactBucket"])
        cfn.delete_stack(StackName=name)
        cfn.get_waiter("stack_delete_complete").wait(StackName=name, WaiterConfig=WAIT)
        deleted.append(name)
    return deleted


def _empty(bucket: str) -> None:
    s3 = aws.client("s3")
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket):
        doomed = [
            {"Key": v["Key"], "VersionId": v["VersionId"]}
            for v in page.get("Versions", []) + page.get("DeleteMarkers", [])
        ]
        if doomed:
            s3.delete_objects(Bucket=bucket, Delete={"Objects": doomed})


def local_resources(stage: str = "dev") -> dict:
    """The data stack on the embedded AWS (moto), then what moto's CloudFormation leaves
    out: it ignores TimeToLiveSpecification and has no AWS::SecretsManager::Secret."""
    body = template.data_template(stage)
    moto_log = logging.getLogger("moto")  # it warns about the secret it leaves out
    level = moto_log.level
    moto_log.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*SecretsManager::Secret.*")
            result = apply_stack(template.data_stack_name(), body)
    finally:
        moto_log.setLevel(level)
    dynamodb = aws.client("dynamodb")
    secrets_manager = aws.client("secretsmanager")
    for resource in body["Resources"].values():
        props = resource["Properties"]
        if resource["Type"] == "AWS::DynamoDB::Table" and "TimeToLiveSpecification" in props:
            dynamodb.update_time_to_live(
                TableName=props["TableName"],
                TimeToLiveSpecification=props["TimeToLiveSpecification"],
            )
        if resource["Type"] == "AWS::SecretsManager::Secret":
            try:
                secrets_manager.create_secret(
                    Name=props["Name"], SecretString=secrets.token_urlsafe(48)
                )
            except secrets_manager.exceptions.ResourceExistsException:
                pass
    return result
