"""AWS freezes under the local stack (a proxy between it and moto stops forwarding): the
API answers every request within 10 s, 5xx in the contract's format; /health stays 200
(liveness), /ready answers 503; once AWS answers again, so does the API."""

import time
import uuid
from urllib.parse import urlparse

import pytest

from devstack.harness import start
from tests.faults.proxy import FaultProxy

from .helpers import start_embedded_aws

ANSWER_BUDGET = 10.0  # seconds


@pytest.fixture
def stack_behind_proxy(tmp_path):
    aws, endpoint = start_embedded_aws()
    target = urlparse(endpoint)
    proxy = FaultProxy(target.hostname, target.port)
    running = start(tmp_path, key="cq_live_e2e" + uuid.uuid4().hex, AWS_ENDPOINT_URL=proxy.url)
    try:
        yield running, proxy
    finally:
        proxy.thaw()
        running.stop()
        proxy.close()
        aws.kill()
        aws.wait()


def timed(send, *args, **kw):
    started = time.monotonic()
    response = send(*args, timeout=30, **kw)
    return response, time.monotonic() - started


def test_a_frozen_aws_gets_a_fast_5xx_and_the_api_recovers(stack_behind_proxy):
    stack, proxy = stack_behind_proxy
    body = {"message": "Bonjour", "phoneNumber": "38089336"}
    assert stack.post("/messages/send", body).status_code == 200  # warm: the key is cached
    assert stack.get("/ready").json()["checks"] == {"dynamodb": "ok", "sqs": "ok"}
    proxy.freeze()
    sent, took = timed(stack.post, "/messages/send", body)
    assert sent.status_code >= 500 and took < ANSWER_BUDGET, (sent.status_code, took)
    assert sent.json()["success"] is False and sent.json()["message"]
    time.sleep(5)  # the last readiness answer is remembered for 5 s
    ready, took = timed(stack.get, "/ready")
    assert ready.status_code == 503 and took < ANSWER_BUDGET, (ready.status_code, took)
    assert ready.json()["success"] is False
    health, took = timed(stack.get, "/health")
    assert health.status_code == 200 and took < 1
    proxy.thaw()
    deadline = time.monotonic() + 30
    while stack.post("/messages/send", body).status_code != 200:
        assert time.monotonic() < deadline, "the API did not recover"
        time.sleep(0.5)
