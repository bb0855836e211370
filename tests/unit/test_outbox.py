"""No SMS stays queued without being on a queue: the outbox sweep queues again what the
API stored but could not queue (it died, or SQS and then DynamoDB failed), and expires
OTPs that waited past their validity."""

import contextlib

from chalicelib import outbox, queue
from chalicelib.config import settings
from chalicelib.messages import lifecycle
from chalicelib.models import Message, connection
from chalicelib.wire.status import Status
from tests.conftest import queued_bodies

SEND = {"message": "Votre colis est arrivé", "phoneNumber": "38089336"}


class Outage(Exception):
    pass


@contextlib.contextmanager
def lost_after_write():
    """While it lasts, SendMessage fails and so does every DynamoDB update: the API stores
    a message and can neither queue it nor mark it failed (as if it died in between)."""

    def fail(**_):
        raise Outage("simulated outage")

    hooks = [
        (queue.sqs(), "before-call.sqs.SendMessage"),
        (connection().client, "before-call.dynamodb.UpdateItem"),
    ]
    for client, event in hooks:
        client.meta.events.register(event, fail)
    try:
        yield
    finally:
        for client, event in hooks:
            client.meta.events.unregister(event, fail)


def stranded(api, path="/messages/send", body=SEND) -> str:
    """Send during the outage; the message id, stored queued and on no queue."""
    with lost_after_write():
        response = api.post(path, body)
    assert response.status_code == 500
    [message] = Message.scan()
    assert message.status == "queued"
    return message.message_id


def bulk_queue() -> list[str]:
    return [body["messageId"] for body in queued_bodies(settings().outbound_queue)]


def test_a_message_stored_but_never_queued_is_queued_by_the_sweep(api, manual_clock):
    message_id = stranded(api)
    assert bulk_queue() == []
    assert outbox.sweep() == {"requeued": 0, "expired": 0, "scheduled": 0}  # not stale yet
    manual_clock.advance(121)
    assert outbox.sweep() == {"requeued": 1, "expired": 0, "scheduled": 0}
    assert bulk_queue() == [message_id]
    assert Message.get(message_id).status == "queued"  # a bridge takes it from here


def test_a_message_that_keeps_waiting_is_copied_at_growing_intervals(api, manual_clock):
    message_id = api.post("/messages/send", SEND).json["messageId"]  # queued, no phone online
    manual_clock.advance(121)
    assert outbox.sweep()["requeued"] == 1
    manual_clock.advance(121)
    assert outbox.sweep()["requeued"] == 0  # next copy after 4 minutes
    manual_clock.advance(120)
    assert outbox.sweep()["requeued"] == 1
    assert bulk_queue() == [message_id] * 3


def test_what_moved_on_is_left_alone(api, manual_clock):
    message_id = api.post("/messages/send", SEND).json["messageId"]
    lifecycle.transition(message_id, Status.SENT)  # a phone took it
    manual_clock.advance(600)
    assert outbox.sweep() == {"requeued": 0, "expired": 0, "scheduled": 0}


def test_an_otp_that_was_never_queued_expires_instead(api, manual_clock):
    message_id = stranded(api, "/otp/send", {"phoneNumber": "38089336"})
    manual_clock.advance(300)
    assert outbox.sweep() == {
        "requeued": 0,
        "expired": 0,
        "scheduled": 0,
    }  # its code is not kept to resend
    manual_clock.advance(settings().otp_ttl_seconds)
    assert outbox.sweep() == {"requeued": 0, "expired": 1, "scheduled": 0}
    stored = Message.get(message_id)
    assert (stored.status, stored.status_reason) == ("expired", outbox.NOT_SENT_IN_TIME)
    assert queued_bodies(settings().priority_queue) == []


def test_a_resent_message_waits_from_its_resend(api, manual_clock):
    message_id = api.post("/messages/send", SEND).json["messageId"]
    lifecycle.transition(message_id, Status.FAILED, reason="refused by the network")
    manual_clock.advance(3600)
    assert api.post(f"/messages/{message_id}/resend").status_code == 200
    assert outbox.sweep()["requeued"] == 0  # just queued again by the resend
    manual_clock.advance(121)
    assert outbox.sweep()["requeued"] == 1


def test_when_sqs_does_not_answer_the_message_waits_for_the_sweep(api, manual_clock):
    """No second call that would wait as long: the answer is a quick 500, the message
    stays queued, a retry with its key gets the first answer, and the sweep queues it."""
    from botocore.exceptions import ReadTimeoutError

    def hang(**_):
        raise ReadTimeoutError(endpoint_url="https://sqs.example")

    key = {"Idempotency-Key": "retry-me"}
    queue.sqs().meta.events.register("before-call.sqs.SendMessage", hang)
    try:
        assert api.post("/messages/send", SEND, headers=key).status_code == 500
    finally:
        queue.sqs().meta.events.unregister("before-call.sqs.SendMessage", hang)
    [message] = Message.scan()
    assert message.status == "queued"
    again = api.post("/messages/send", SEND, headers=key)
    assert again.json["messageId"] == message.message_id and bulk_queue() == []
    manual_clock.advance(121)
    assert outbox.sweep()["requeued"] == 1
    assert bulk_queue() == [message.message_id]


def test_when_dynamodb_stops_answering_after_the_write_no_second_call_waits(api, manual_clock):
    """The write went through, then the routing Query got no answer (PynamoDB wraps the
    timeout in a QueryError): the 500 comes after that one call, without marking the
    message failed (an UpdateItem that would wait as long again); the sweep queues it."""
    from botocore.exceptions import ReadTimeoutError

    from chalicelib import routing

    calls: list[str] = []

    def hang(**_):
        raise ReadTimeoutError(endpoint_url="https://dynamodb.example")

    def seen(model, **_):
        calls.append(model.name)

    routing.forget()
    events = connection().client.meta.events
    events.register("before-call.dynamodb.Query", hang)
    events.register("before-call.dynamodb", seen)
    try:
        assert api.post("/messages/send", SEND).status_code == 500
    finally:
        events.unregister("before-call.dynamodb.Query", hang)
        events.unregister("before-call.dynamodb", seen)
    assert calls[-1] == "TransactWriteItems"  # then only the Query that got no answer
    [message] = Message.scan()
    assert message.status == "queued"
    manual_clock.advance(121)
    assert outbox.sweep()["requeued"] == 1
