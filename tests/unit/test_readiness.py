"""GET /health is liveness (no AWS call), GET /ready reaches DynamoDB and SQS; every AWS
client gives up within the bound chalicelib/aws.py documents."""

from chalicelib import aws as clients
from chalicelib import queue
from chalicelib.config import settings
from chalicelib.models import connection


def test_health_makes_no_aws_call_and_ready_checks_both(api):
    calls = []
    for client in (queue.sqs(), connection().client):
        client.meta.events.register("before-call", lambda model, **_: calls.append(model.name))
    assert api.get("/health", key=None).status_code == 200
    assert calls == []
    ready = api.get("/ready", key=None)
    assert ready.status_code == 200
    assert ready.json == {
        "success": True,
        "status": "ready",
        "checks": {"dynamodb": "ok", "sqs": "ok"},
    }


def test_ready_names_what_cannot_be_reached_and_remembers_it_briefly(api, manual_clock):
    queue.sqs().delete_queue(QueueUrl=queue.queue_url(settings().priority_queue))
    ready = api.get("/ready", key=None)
    assert ready.status_code == 503
    assert ready.json == {
        "success": False,
        "message": "Not ready: sqs unreachable",
        "errors": [],
        "checks": {"dynamodb": "ok", "sqs": "unreachable"},
    }
    queue.sqs().create_queue(QueueName=settings().priority_queue)
    queue.queue_url.cache_clear()
    assert api.get("/ready", key=None).status_code == 503  # the answer of 5 s ago
    manual_clock.advance(5)
    assert api.get("/ready", key=None).status_code == 200


def test_every_aws_call_is_bounded(aws):
    for client in (clients.client("sqs"), clients.client("sts"), connection().client):
        config = client.meta.config
        assert (config.connect_timeout, config.read_timeout) == (1, 3)
        assert config.retries["total_max_attempts"] == 2
