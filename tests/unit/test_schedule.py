"""Scheduled sends: stored scheduled, on their queue with an SQS delay from 15 minutes before
their time, cancellable until a bridge takes them; OTPs are never scheduled."""

from datetime import UTC, datetime, timedelta

import pytest

from chalicelib import clock, outbox, queue
from chalicelib.config import settings
from chalicelib.models import Message
from tests.conftest import claim_token


def at(minutes: float) -> str:
    return (clock.now() + timedelta(minutes=minutes)).isoformat()


def on_queue() -> tuple[int, int]:
    """(visible, delayed) messages on the outbound queue."""
    attributes = queue.sqs().get_queue_attributes(
        QueueUrl=queue.queue_url(settings().outbound_queue),
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesDelayed"],
    )["Attributes"]
    return (
        int(attributes["ApproximateNumberOfMessages"]),
        int(attributes["ApproximateNumberOfMessagesDelayed"]),
    )


def schedule(api, minutes: float, to: str = "38089336"):
    return api.post(
        "/messages/send", {"message": "Rappel", "phoneNumber": to, "sendAt": at(minutes)}
    )


def test_a_send_an_hour_ahead_waits_scheduled_off_the_queues(api, manual_clock):
    answer = schedule(api, 60)
    assert answer.status_code == 200, answer.json
    assert answer.json["queued"] is False and answer.json["status"] == "scheduled"
    shown = api.get(f"/messages/{answer.json['messageId']}").json
    assert shown["status"] == "scheduled" and shown["sendAt"] == answer.json["sendAt"]
    assert on_queue() == (0, 0)

    manual_clock.advance(44 * 60)
    assert outbox.sweep()["scheduled"] == 0, "not yet within 15 minutes"
    manual_clock.advance(2 * 60)
    assert outbox.sweep()["scheduled"] == 1
    assert on_queue() == (0, 1), "on its queue, delayed until its time"
    assert outbox.sweep()["scheduled"] == 0, "picked up once"
    assert api.get(f"/messages/{answer.json['messageId']}").json["status"] == "scheduled"


def test_a_send_minutes_ahead_goes_on_its_queue_delayed_at_once(api):
    assert schedule(api, 5).status_code == 200
    assert on_queue() == (0, 1)
    assert outbox.sweep() == {"requeued": 0, "expired": 0, "scheduled": 0}


def test_a_lost_copy_is_queued_again_after_its_time(api, manual_clock):
    message_id = schedule(api, 5).json["messageId"]
    queue.sqs().purge_queue(QueueUrl=queue.queue_url(settings().outbound_queue))
    manual_clock.advance(6 * 60)
    assert outbox.sweep()["requeued"] == 0, "within 2 minutes of its time: a bridge may have it"
    manual_clock.advance(2 * 60)
    assert outbox.sweep()["requeued"] == 1
    assert on_queue() == (1, 0), "no delay left: it is late"
    assert Message.get(message_id).status == "scheduled"


def test_a_bridge_takes_it_as_a_queued_one(api, device_key):
    message_id = schedule(api, 5).json["messageId"]
    taken = api.device_post(
        f"/device/messages/{message_id}/status", {"status": "sending"}, device_key
    )
    assert taken.json["claimed"] is True
    sent = api.device_post(f"/device/messages/{message_id}/status", {"status": "sent"}, device_key)
    assert sent.json["status"] == "sent"


def test_cancelled_before_it_goes_it_never_goes(api, device_key):
    message_id = schedule(api, 5).json["messageId"]
    cancelled = api.post(f"/messages/{message_id}/cancel")
    assert cancelled.status_code == 200 and cancelled.json["status"] == "cancelled"
    taken = api.device_post(
        f"/device/messages/{message_id}/status", {"status": "sending"}, device_key
    )
    assert taken.json["claimed"] is False, "the copy on the queue is a no-op"
    again = api.post(f"/messages/{message_id}/cancel")
    assert again.status_code == 400 and "cancelled" in again.json["message"]
    sent = api.post("/messages/send", {"message": "x", "phoneNumber": "38089336"}).json
    assert api.post(f"/messages/{sent['messageId']}/cancel").status_code == 400


def test_the_log_filters_scheduled_messages(api):
    schedule(api, 60)
    api.post("/messages/send", {"message": "now", "phoneNumber": "38089336"})
    listed = api.get("/messages?status=scheduled").json["messages"]
    assert [m["message"] for m in listed] == ["Rappel"]


def test_a_bulk_is_scheduled_as_a_whole(api):
    answer = api.post(
        "/messages/bulk",
        {"message": "Soldes", "phoneNumbers": ["38089336", "48089336"], "sendAt": at(120)},
    )
    assert answer.status_code == 200, answer.json
    assert answer.json["queued"] == 0 and answer.json["scheduled"] == 2
    assert {Message.get(m["messageId"]).status for m in answer.json["messages"]} == {"scheduled"}


def test_sendsms_schedule_timestamp_schedules(api):
    later = int(clock.now().timestamp()) + 3600
    answer = api.get(
        f"/sendsms?apikey={api.key}&recipients=38089336&message=x&schedule_timestamp={later}",
        key=None,
    )
    assert answer.status_code == 200 and answer.json["result"]["note"].startswith("scheduled for")
    stored = Message.get(answer.json["messages"][0]["messageId"])
    assert stored.status == "scheduled"
    assert stored.send_at == datetime.fromtimestamp(later, UTC)


@pytest.mark.parametrize(
    "send_at, words",
    [
        ("2020-01-01T00:00:00Z", "in the past"),
        ((datetime.now(UTC) + timedelta(days=36)).isoformat(), "35 days"),
        ("demain matin", "ISO-8601"),
    ],
)
def test_a_time_that_cannot_be_kept_is_refused_and_nothing_stored(api, send_at, words):
    answer = api.post(
        "/messages/send", {"message": "x", "phoneNumber": "38089336", "sendAt": send_at}
    )
    assert answer.status_code == 400 and answer.json["errors"][0]["field"] == "sendAt"
    assert words in answer.json["errors"][0]["message"]
    assert not list(Message.scan())


def test_otps_cannot_be_scheduled(api):
    answer = api.post("/otp/send", {"phoneNumber": "38089336", "sendAt": at(10)})
    assert answer.status_code == 400 and answer.json["errors"][0]["field"] == "sendAt"
    assert not list(Message.scan())


def test_a_deleted_scheduled_sms_is_settled_for_the_bridge_that_gets_its_copy(api, device_key):
    message_id = schedule(api, 5).json["messageId"]
    claim = claim_token(message_id)
    assert api.call("DELETE", f"/messages/{message_id}").status_code == 200
    path = f"/device/messages/{message_id}/status"
    taken = api.device_post(path, {"status": "sending", "claim": claim}, device_key)
    assert taken.status_code == 200
    assert taken.json["status"] == "deleted" and taken.json["claimed"] is False
    stranger = api.device_post(path, {"status": "sending", "claim": "forged"}, device_key)
    assert stranger.status_code == 404, "without the queue body's token it stays unknown"
