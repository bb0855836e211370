"""The Lambda package as `make deploy` builds it runs on its own, compiled, with the AWS models
the Lambdas call and no others."""

import hashlib
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from chalicelib import aws
from chinqit_admin import bundle, stacks

pytestmark = pytest.mark.packaging

PROJECT = Path(__file__).resolve().parents[2]
TAG = sys.implementation.cache_tag


@pytest.fixture(scope="module")
def package(tmp_path_factory) -> Path:
    with pytest.MonkeyPatch.context() as env:
        env.setenv("AWS_DEFAULT_REGION", "us-east-1")
        return stacks.package("prod", tmp_path_factory.mktemp("package")) / "deployment.zip"


@pytest.fixture(scope="module")
def task(package, tmp_path_factory) -> Path:
    """The package unpacked, as Lambda does in /var/task."""
    root = tmp_path_factory.mktemp("task")
    with zipfile.ZipFile(package) as unpacked:
        unpacked.extractall(root)
    return root


def test_the_package_answers_alone_without_boto3_or_the_venv(task):
    probe = (
        "import importlib.util, app\n"
        "from chalicelib import aws, models\n"
        "for service in sorted(aws.LAMBDA_SERVICES): aws.client(service)\n"
        "models.connection()\n"
        "print(importlib.util.find_spec('boto3'), app.app.app_name)\n"
    )
    done = subprocess.run(
        [sys.executable, "-S", "-c", probe],
        cwd=task,
        env={"PATH": "/usr/bin:/bin", "SMSGW_STAGE": "prod", "AWS_DEFAULT_REGION": "eu-west-1"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["None", "chinqit-sms-gateway"]


def test_every_module_comes_with_bytecode_that_is_never_rewritten(task):
    sources = [path for path in task.rglob("*.py") if "__pycache__" not in path.parts]
    assert len(sources) > 300
    for source in sources:
        cached = source.parent / "__pycache__" / f"{source.stem}.{TAG}.pyc"
        assert cached.exists(), source
        flags = int.from_bytes(cached.read_bytes()[4:8], "little")
        assert flags == 0b01, f"{cached}: not an unchecked-hash pyc (PEP 552)"


def test_botocore_keeps_the_models_of_the_services_the_lambdas_call(task):
    services = {path.name for path in (task / "botocore" / "data").iterdir() if path.is_dir()}
    assert services == aws.LAMBDA_SERVICES
    for service in services:
        assert list((task / "botocore" / "data" / service).glob("*/service-2.json*")), service


def test_every_client_the_code_creates_is_one_of_the_lambda_services():
    sources = [PROJECT / "app.py", *sorted((PROJECT / "chalicelib").rglob("*.py"))]
    named = {
        service
        for source in sources
        for service in re.findall(r"""aws\.client\(["']([a-z0-9-]+)["']\)""", source.read_text())
    }
    assert named and named | {"dynamodb"} == aws.LAMBDA_SERVICES


def test_slimming_is_deterministic(package, tmp_path):
    again = tmp_path / "deployment.zip"
    shutil.copy(package, again)
    bundle.slim(again)
    assert (
        hashlib.sha256(again.read_bytes()).digest() == hashlib.sha256(package.read_bytes()).digest()
    )
