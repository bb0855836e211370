"""The bridge against real services on loopback: a moto server for SQS (one per session,
fresh queues per test) and the fake device API."""

from __future__ import annotations

import contextlib
import json
import logging
import time
import uuid
from collections.abc import Callable
from datetime import datetime

import boto3
import pytest
from moto.server import ThreadedMotoServer

from device_bridge.agent import Agent
from device_bridge.config import BridgeConfig
from tests.integration.bridge.fakes import DEVICE_KEY, FakeApi, FakeDriver


@pytest.fixture(scope="session")
def moto_endpoint():
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


class Queues:
    """The two outbound queues of one test, with what tests need to fill and inspect them."""

    def __init__(self, sqs):
        self.sqs = sqs
        prefix = f"bridge-{uuid.uuid4().hex[:10]}"
        self.names = {"bulk": f"{prefix}-outbound", "priority": f"{prefix}-outbound-priority"}
        self.urls = {
            kind: sqs.create_queue(QueueName=name, Attributes={"VisibilityTimeout": "60"})[
                "QueueUrl"
            ]
            for kind, name in self.names.items()
        }

    def put(
        self,
        kind: str = "bulk",
        text: str = "Bonjour",
        to: str = "+22238089336",
        send_before: datetime | None = None,
        message_id: str | None = None,
        claim: str | None = None,
        group: str | None = None,
    ) -> str:
        """Queue a body as the Lambdas of gateway 1.0 wrote it, or with a ``claim`` (version 3);
        ``group``: the MessageGroupId (the sending account) the Lambdas tag it with."""
        message_id = message_id or str(uuid.uuid4())
        body = {
            "messageId": message_id,
            "to": to,
            "text": text,
            "kind": "otp" if kind == "priority" else "sms",
            "sendBefore": send_before.isoformat() if send_before else None,
        }
        if claim is not None:
            body |= {"v": 3, "claim": claim}
        tag = {"MessageGroupId": group} if group else {}
        self.sqs.send_message(QueueUrl=self.urls[kind], MessageBody=json.dumps(body), **tag)
        return message_id

    def counts(self, kind: str = "bulk") -> tuple[int, int]:
        """(visible, in flight) messages on the queue."""
        attributes = self.sqs.get_queue_attributes(
            QueueUrl=self.urls[kind], AttributeNames=["All"]
        )["Attributes"]
        return (
            int(attributes["ApproximateNumberOfMessages"]),
            int(attributes["ApproximateNumberOfMessagesNotVisible"]),
        )

    def take_visible(self, kind: str = "bulk") -> list[dict]:
        """Receive (and hide) every visible message: what another bridge would get now."""
        bodies = []
        while True:
            batch = self.sqs.receive_message(
                QueueUrl=self.urls[kind], MaxNumberOfMessages=10, WaitTimeSeconds=0
            ).get("Messages", [])
            if not batch:
                return bodies
            bodies += [json.loads(message["Body"]) for message in batch]


@pytest.fixture
def queues(moto_endpoint, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    return Queues(boto3.client("sqs"))


@pytest.fixture
def api():
    fake = FakeApi()
    yield fake
    fake.stop()


@pytest.fixture
def make_config(queues, api, tmp_path) -> Callable[..., BridgeConfig]:
    """Test settings: no long polling (moto would hold the poller), no rate limit."""

    def make(**options) -> BridgeConfig:
        settings = dict(
            api_url=api.url,
            device_key=DEVICE_KEY,
            driver="fake",
            aws_credentials="environment",  # the moto server's; device mode has its own test
            outbound_queue=queues.names["bulk"],
            priority_queue=queues.names["priority"],
            journal=str(tmp_path / "journal.sqlite3"),
            wait_time_seconds=0,
            poll_interval=0.02,
            sends_per_minute=60000,
            send_burst=100,
            retry_delay=0.0,
        )
        settings.update(options)
        return BridgeConfig(**settings)

    return make


@pytest.fixture
def make_agent(make_config):
    def make(driver: FakeDriver | None = None, clock=time.monotonic, **options) -> Agent:
        return Agent.build(make_config(**options), driver or FakeDriver(), clock=clock)

    return make


@contextlib.contextmanager
def running(agent: Agent):
    agent.start()
    try:
        yield agent
    finally:
        agent.shutdown()


def wait_until(condition: Callable[[], bool], timeout: float = 10.0, message: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting: {message or condition}")
        time.sleep(0.01)
