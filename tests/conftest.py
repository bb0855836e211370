"""Shared test setup: fake AWS credentials, in-process AWS, the API through Chalice's client."""

import os

from devstack.container import go_offline

go_offline()
os.environ["SMSGW_SECRET_KEY"] = "test-otp-secret"
import json  # noqa: E402
import re

import pytest
from moto import mock_aws

from chalicelib import auth, clock, queue, receipts
from chalicelib.models import Message
from chinqit_admin import provision
from devstack import container
from tests.clocks import ManualClock
from tests.openapi_check import Answer, violations


def reset_clients():
    """Forget clients and caches so each test starts on a fresh mock."""
    container.reset()


@pytest.fixture
def aws(monkeypatch):
    monkeypatch.delenv(
        "AWS_ENDPOINT_URL", raising=False
    )  # mock_aws ignores clients aimed elsewhere
    with mock_aws():
        reset_clients()
        provision.all_resources()
        yield
    reset_clients()


@pytest.fixture
def manual_clock():
    """Time stands still for the test (every module reads chalicelib.clock) until advanced."""
    fake = ManualClock()
    clock.use(fake)
    yield fake
    clock.use(clock.SYSTEM)


@pytest.fixture
def public_dns(monkeypatch):
    """Every host name resolves to one public address (webhook URLs pass the SSRF guard)."""
    import socket

    def getaddrinfo(host, port, *args, **kwargs):
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.216.34", port))]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


@pytest.fixture
def api_key(aws):
    key, _ = auth.create_key("api", "acme", name="tests")
    return key


@pytest.fixture
def device_key(aws):
    """The key of device phone-1, assigned to account acme."""
    from chalicelib.models import Device

    Device("phone-1", name="test phone", account_id="acme").save()
    provision.device_queues("phone-1")
    return auth.create_key("device", "phone-1")[0]


@pytest.fixture
def other_key(aws):
    key, _ = auth.create_key("api", "globex", name="tests")
    return key


ANSWERS: list[Answer] = []  # every answer of Api.call, checked against the document at the end


def pytest_sessionfinish(session, exitstatus):
    """Fail the run when an answer seen by the tests does not match the OpenAPI document."""
    found = [problem for answer in ANSWERS for problem in violations(answer)]
    if found:
        print(f"\n{len(found)} answer(s) do not match chalicelib/apidoc/openapi.json:")
        print("\n".join(found[:50]))
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


class Api:
    """Chalice's in-process client with JSON in and out."""

    def __init__(self, client, key):
        self.client = client
        self.key = key

    def call(self, method, path, body=None, key="default", headers=None, raw=None):
        sent = {"Content-Type": "application/json"}
        key = self.key if key == "default" else key
        if key is not None:
            sent["X-API-Key"] = key
        sent.update(headers or {})
        payload = raw if raw is not None else (json.dumps(body) if body is not None else None)
        response = getattr(self.client.http, method.lower())(path, headers=sent, body=payload)
        is_json = response.headers.get("Content-Type", "application/json").startswith(
            "application/json"
        )
        response.json = json.loads(response.body) if response.body and is_json else None
        ANSWERS.append(Answer(method, path, response.status_code, response.headers, response.json))
        return response

    def post(self, path, body=None, **kw):
        return self.call("POST", path, body, **kw)

    def get(self, path, **kw):
        return self.call("GET", path, **kw)

    def device_post(self, path, body, device_key, received=True):
        """A call of the device side, as a bridge makes it.

        A status report carries the claim token of the queue body, as a bridge that
        ``received`` the message has it (unless the test gives its own or none)."""
        reported = STATUS_PATH.fullmatch(path)
        if reported and received and isinstance(body, dict) and "claim" not in body:
            body = {**body, "claim": claim_token(reported.group(1))}
        return self.call("POST", path, body, key=None, headers={"X-Device-Key": device_key})


STATUS_PATH = re.compile(r"/device/messages/([^/]+)/status")


def claim_token(message_id: str) -> str | None:
    """The token the queue body of a stored outbound message carries."""
    try:
        kind = Message.get(message_id).kind
    except (Message.DoesNotExist, ValueError):
        return None
    return receipts.token(message_id, queue.queue_for(kind))


@pytest.fixture
def api(aws, api_key):
    from chalice.test import Client

    from app import app

    with Client(app) as client:
        yield Api(client, api_key)


def queued_bodies(queue_name):
    """Every SQS body waiting on a queue, read without deleting; they stay hidden 30 s, so
    a second call sees only what was queued since."""
    sqs = queue.sqs()
    url = queue.queue_url(queue_name)
    bodies = []
    while True:
        batch = sqs.receive_message(
            QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0, VisibilityTimeout=30
        ).get("Messages", [])
        if not batch:
            return bodies
        bodies += [json.loads(m["Body"]) for m in batch]
