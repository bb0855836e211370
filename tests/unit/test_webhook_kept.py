"""Webhook events SQS could not take wait in DynamoDB, oldest first, until a sweep queues
them: none lost to a partial batch failure or to two sweeps at once, and the lists bounded."""

import json

import pytest

from chalicelib import queue
from chalicelib.config import settings
from chalicelib.models import KeptWebhookEvents
from chalicelib.webhooks import kept
from chalicelib.webhooks.events import new_event


@pytest.fixture(autouse=True)
def one_shard(monkeypatch):
    monkeypatch.setattr(kept, "SHARDS", 1)  # every event in the same list: order is visible


def event(n: int) -> dict:
    return new_event("acme", f"evt_{n}", "sms.sent", {"n": n})


def still_kept() -> list[str]:
    return [json.loads(body)["eventId"] for body in KeptWebhookEvents.get(kept._bucket(0)).events]


def on_webhook_queue() -> list[str]:
    sqs, url = queue.sqs(), queue.queue_url(settings().webhook_queue)
    answer = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0)
    return sorted(json.loads(m["Body"])["eventId"] for m in answer.get("Messages", []))


def test_the_oldest_up_to_a_refused_one_are_queued_and_the_rest_wait(aws, monkeypatch):
    for n in range(3):
        kept.keep(event(n))
    real = queue.sqs().send_message_batch

    def second_refused(**params):
        answer = real(**{**params, "Entries": [e for e in params["Entries"] if e["Id"] != "1"]})
        refused = {"Id": "1", "SenderFault": False, "Code": "InternalError", "Message": "x"}
        return {**answer, "Failed": [refused]}

    with monkeypatch.context() as patched:
        patched.setattr(queue.sqs(), "send_message_batch", second_refused)
        assert kept.queue_kept() == 1
    assert still_kept() == ["evt_1", "evt_2"], "evt_2 went too: queued again later, delivered once"
    assert kept.queue_kept() == 2
    assert still_kept() == []
    assert on_webhook_queue() == ["evt_0", "evt_1", "evt_2", "evt_2"]


def test_a_sweep_that_read_the_list_before_another_took_from_it_removes_nothing(aws):
    kept.keep(event(0))
    kept.keep(event(1))
    [stale] = KeptWebhookEvents.batch_get([kept._bucket(0)])
    assert kept.queue_kept() == 2
    kept.keep(event(2))
    kept._queue_oldest(stale)  # the slower sweep queues evt_0 and evt_1 a second time
    assert still_kept() == ["evt_2"]


def test_a_full_list_refuses_the_event(aws, monkeypatch):
    monkeypatch.setattr(kept, "MAX_KEPT", 2)
    kept.keep(event(0))
    kept.keep(event(1))
    with pytest.raises(kept.KeptListFull):
        kept.keep(event(2))
    assert still_kept() == ["evt_0", "evt_1"]
