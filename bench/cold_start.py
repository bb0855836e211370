"""Lambda cold start, and the size of the Lambda package.

Both come from the package as deployed (``chinqit-admin package``: chalice's zip with
bytecode and only the AWS models used, chinqit_admin/bundle.py), unpacked as Lambda does.

Cold start: a fresh interpreter (``-S``: nothing from the venv) imports ``app`` from the
unpacked package and answers its first ``POST /messages/send`` through the Lambda handler
(an API Gateway proxy event), against moto on loopback; the baseline is a hand-written
boto3 handler doing the same AWS work (GetItem of the key, PutItem of the message,
SendMessage) in a fresh interpreter of the same run, with the venv's boto3 and its cached
bytecode (the Lambda runtime's boto3 comes compiled too). Ratio = median(gateway) /
median(baseline), over RUNS alternating pairs.

Package: the deployment.zip's unzipped size.

    python -m bench.cold_start
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import zipfile
from contextlib import contextmanager
from pathlib import Path

from bench import REPO, Report, main_for, verdict

RATIO_BUDGET = 1.2
PACKAGE_BUDGET_MB = 30
RUNS = 15

EVENT = {
    "resource": "/messages/send",
    "path": "/messages/send",
    "httpMethod": "POST",
    "headers": {"Content-Type": "application/json", "X-API-Key": "{key}"},
    "multiValueHeaders": {},
    "queryStringParameters": None,
    "multiValueQueryStringParameters": None,
    "pathParameters": None,
    "stageVariables": None,
    "requestContext": {
        "resourcePath": "/messages/send",
        "httpMethod": "POST",
        "requestId": "bench-cold-start",
        "stage": "api",
    },
    "body": json.dumps({"message": "Bonjour", "phoneNumber": "38089336"}),
    "isBase64Encoded": False,
}

GATEWAY = """
import json, sys, time
started = time.perf_counter()
import app
event = json.loads(sys.argv[1])
answer = app.app(event, None)
elapsed = time.perf_counter() - started
assert answer["statusCode"] == 200, answer
print(elapsed)
"""

BASELINE = """
import hashlib, json, sys, time, uuid
started = time.perf_counter()
import boto3
from botocore.config import Config
config = Config(connect_timeout=1, read_timeout=3, retries={"max_attempts": 2})
dynamodb = boto3.client("dynamodb", config=config)
sqs = boto3.client("sqs", config=config)
tables, queue_url, key = json.loads(sys.argv[1])
found = dynamodb.get_item(
    TableName=tables[0], Key={"key_hash": {"S": hashlib.sha256(key.encode()).hexdigest()}}
)
message_id = str(uuid.uuid4())
dynamodb.put_item(
    TableName=tables[1],
    Item={"message_id": {"S": message_id}, "account_id": {"S": "acme"}, "text": {"S": "Bonjour"}},
)
sqs.send_message(QueueUrl=queue_url, MessageBody=json.dumps({"messageId": message_id}))
print(time.perf_counter() - started)
"""


def _child(script: str, argument: str, env: dict, *flags: str) -> float:
    """Seconds the child printed; it runs in the unpacked package (``-c`` puts the working
    directory first on sys.path, as Lambda does /var/task)."""
    result = subprocess.run(
        [sys.executable, *flags, "-c", script, argument],
        cwd=env["PYTHONPATH"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    if result.returncode != 0:
        raise RuntimeError(f"cold start child failed:\n{result.stderr[-2000:]}")
    return float(result.stdout.strip().splitlines()[-1])


@contextmanager
def embedded_aws():
    """A moto server on loopback (devstack.aws); yields the environment that points at it."""
    server = subprocess.Popen(
        [sys.executable, "-m", "devstack.aws", "--port", "0"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        url = server.stdout.readline().split()[-1]
        env = {
            **os.environ,
            "AWS_ENDPOINT_URL": url,
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_ACCESS_KEY_ID": "bench",
            "AWS_SECRET_ACCESS_KEY": "bench",
            "SMSGW_STAGE": "dev",
        }
        saved = dict(os.environ)
        os.environ.update(env)
        from devstack import container

        container.reset()
        try:
            yield env
        finally:
            os.environ.clear()
            os.environ.update(saved)
            container.reset()
    finally:
        server.terminate()
        server.wait(timeout=10)


def cold_starts(task: Path) -> dict:
    """``task``: the unpacked package (Lambda's /var/task)."""
    with embedded_aws() as env:
        from chalicelib import auth
        from chalicelib.config import settings
        from chinqit_admin import provision, template

        provision.all_resources()
        key, _ = auth.create_key("api", "acme", name="bench")
        config = settings()
        from chalicelib import queue

        gateway_event = json.dumps(EVENT).replace("{key}", key)
        baseline_args = json.dumps(
            [
                [config.keys_table, config.messages_table],
                queue.queue_url(config.outbound_queue),
                key,
            ]
        )
        # as deployed (chinqit_admin/template.py): queue URLs known, the secret in Secrets Manager
        child_env = {
            **env,
            "PYTHONPATH": str(task),
            "SMSGW_OUTBOUND_QUEUE": queue.queue_url(config.outbound_queue),
            "SMSGW_PRIORITY_QUEUE": queue.queue_url(config.priority_queue),
            "SMSGW_WEBHOOK_QUEUE": queue.queue_url(config.webhook_queue),
            "SMSGW_SECRET_KEY_SECRET": template.secret_name(),
        }
        for unwanted in (
            "PYTHONPROFILEIMPORTTIME",
            "PYTHONDONTWRITEBYTECODE",
        ):  # bytecode is cached
            child_env.pop(unwanted, None)
        _child(GATEWAY, gateway_event, child_env, "-S")  # fill the page cache
        _child(BASELINE, baseline_args, child_env)  # and the venv's __pycache__
        times: dict[str, list[float]] = {"gateway": [], "baseline": []}
        for _ in range(RUNS):
            times["gateway"].append(_child(GATEWAY, gateway_event, child_env, "-S"))
            times["baseline"].append(_child(BASELINE, baseline_args, child_env))
    gateway, baseline = statistics.median(times["gateway"]), statistics.median(times["baseline"])
    return {"times": times, "gateway": gateway, "baseline": baseline, "ratio": gateway / baseline}


@contextmanager
def deployed_package():
    """The prod stage's deployment.zip as ``make deploy`` builds it: (zip, unpacked dir)."""
    from chinqit_admin import stacks

    with tempfile.TemporaryDirectory() as out:
        os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
        package = stacks.package("prod", Path(out)) / "deployment.zip"
        with zipfile.ZipFile(package) as unpacked:
            unpacked.extractall(Path(out) / "task")
        yield package, Path(out) / "task"


def unzipped_megabytes(package: Path) -> float:
    with zipfile.ZipFile(package) as unpacked:
        return sum(info.file_size for info in unpacked.infolist()) / 1e6


def run() -> Report:
    with deployed_package() as (package, task):
        size = unzipped_megabytes(package)
        m = cold_starts(task)
    report = Report("cold_start")
    report.add(
        f"first POST /messages/send in a fresh process / boto3 baseline (median of {RUNS})",
        f"{m['ratio']:.2f}  ({m['gateway'] * 1000:.0f} ms / {m['baseline'] * 1000:.0f} ms)",
        f"<= {RATIO_BUDGET}",
        verdict(m["ratio"], RATIO_BUDGET),
    )
    report.add(
        "Lambda package, unzipped (chinqit-admin --stage prod package)",
        f"{size:.1f} MB",
        f"<= {PACKAGE_BUDGET_MB} MB",
        verdict(size, PACKAGE_BUDGET_MB),
    )
    report.details = [
        "runs (ms): gateway "
        + " ".join(f"{t * 1000:.0f}" for t in m["times"]["gateway"])
        + " | baseline "
        + " ".join(f"{t * 1000:.0f}" for t in m["times"]["baseline"])
    ]
    return report


if __name__ == "__main__":
    main_for(run)
