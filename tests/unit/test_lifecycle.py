"""The message lifecycle, table-driven: every allowed and refused change, and its events."""

import itertools
import uuid
from datetime import timedelta

import pytest

from chalicelib.clock import now
from chalicelib.messages import events, lifecycle
from chalicelib.messages.events import Change
from chalicelib.models import Message
from chalicelib.wire.status import Status

ALLOWED = {  # written out again on purpose: a change to the table must change this test
    (None, Status.QUEUED),
    (None, Status.SENDING),
    (None, Status.RECEIVED),
    (Status.QUEUED, Status.SENDING),
    (Status.QUEUED, Status.SENT),
    (Status.QUEUED, Status.DELIVERED),
    (Status.QUEUED, Status.FAILED),
    (Status.QUEUED, Status.EXPIRED),
    (Status.SENDING, Status.SENT),
    (Status.SENDING, Status.DELIVERED),
    (Status.SENDING, Status.FAILED),
    (Status.SENDING, Status.EXPIRED),
    (Status.SENT, Status.DELIVERED),
    (Status.SENT, Status.FAILED),
    (Status.FAILED, Status.QUEUED),
    (Status.EXPIRED, Status.QUEUED),
    (None, Status.SCHEDULED),
    (Status.SCHEDULED, Status.CANCELLED),
    (Status.SCHEDULED, Status.SENDING),
    (Status.SCHEDULED, Status.SENT),
    (Status.SCHEDULED, Status.DELIVERED),
    (Status.SCHEDULED, Status.FAILED),
    (Status.SCHEDULED, Status.EXPIRED),
    (Status.SENDING, Status.READ),
    (Status.SENT, Status.READ),
    (Status.DELIVERED, Status.READ),
}
STORED_PAIRS = list(itertools.product(Status, Status))


@pytest.fixture
def published():
    seen = []
    events.subscribe(seen.append)
    yield seen
    events.unsubscribe(seen.append)


def message(status, direction=None):
    direction = direction or ("inbound" if status == Status.RECEIVED else "outbound")
    return Message(
        str(uuid.uuid4()),
        account_id="acme",
        direction=direction,
        phone_number="+22238089336",
        text="Salam",
        encoding="GSM-7",
        segments=1,
        status=status,
        created_at=now(),
        updated_at=now(),
    )


def test_the_table_is_the_one_written_here():
    table = {
        (source, target) for target, sources in lifecycle.TRANSITIONS.items() for source in sources
    }
    assert table == ALLOWED


@pytest.mark.parametrize("source, target", STORED_PAIRS, ids=lambda s: str(s))
def test_a_change_happens_once_with_one_event_when_the_table_allows_it(
    aws, published, source, target
):
    stored = message(source)
    stored.save()
    if not lifecycle.TRANSITIONS[target] - {None}:
        with pytest.raises(lifecycle.TransitionNotAllowed):
            lifecycle.transition(stored.message_id, target)
        assert published == []
        return
    try:
        outcome = lifecycle.transition(stored.message_id, target, reason="why")
    except Exception as error:  # inbound messages are not found by outbound changes
        assert source == Status.RECEIVED and error.status == 404
        assert published == []
        return
    allowed = (source, target) in ALLOWED
    assert outcome.changed is allowed
    assert Message.get(stored.message_id).status == (target if allowed else source)
    if allowed:
        assert [(e.change, e.message.message_id, e.message.status) for e in published] == [
            (Change.STATUS, stored.message_id, target)
        ]
        assert outcome.message.status_reason == "why"
    else:
        assert published == []


@pytest.mark.parametrize("status", list(Status), ids=str)
def test_creation_only_in_a_first_status_with_one_event(aws, published, status):
    new = message(status)
    if (None, status) in ALLOWED:
        assert lifecycle.create(new) is True
        assert [(e.change, e.message.message_id) for e in published] == [
            (Change.CREATED, new.message_id)
        ]
        assert lifecycle.create(new) is False  # the same id again: nothing written or published
        assert len(published) == 1
    else:
        with pytest.raises(lifecycle.TransitionNotAllowed):
            lifecycle.create(new)
        assert published == []
        with pytest.raises(Message.DoesNotExist):
            Message.get(new.message_id)


def test_only_from_narrows_the_start(aws, published):
    stored = message(Status.SENT)
    stored.save()
    outcome = lifecycle.transition(
        stored.message_id, Status.FAILED, only_from=(Status.QUEUED, Status.SENDING)
    )
    assert not outcome.changed and outcome.message.status == Status.SENT and published == []


def test_another_accounts_condition_refuses(aws, published):
    stored = message(Status.FAILED)
    stored.save()
    assert not lifecycle.transition(stored.message_id, Status.QUEUED, account_id="globex").changed
    assert lifecycle.transition(stored.message_id, Status.QUEUED, account_id="acme").changed


def test_reached_times_are_kept(aws):
    stored = message(Status.QUEUED)
    stored.save()
    at = now() - timedelta(seconds=5)
    lifecycle.transition(stored.message_id, Status.SENT, at=at)
    lifecycle.transition(stored.message_id, Status.DELIVERED, at=at + timedelta(seconds=1))
    again = Message.get(stored.message_id)
    assert again.sent_at == at and again.delivered_at == at + timedelta(seconds=1)


def test_delete_publishes_one_event_and_refuses_other_accounts(aws, published):
    stored = message(Status.DELIVERED)
    stored.save()
    with pytest.raises(Exception) as refused:
        lifecycle.delete("globex", stored.message_id)
    assert refused.value.status == 404 and published == []
    lifecycle.delete("acme", stored.message_id)
    assert [(e.change, e.message.message_id) for e in published] == [
        (Change.DELETED, stored.message_id)
    ]


def test_a_failing_subscriber_does_not_fail_the_change(aws, published):
    def broken(_event):
        raise RuntimeError("subscriber bug")

    events.subscribe(broken)
    try:
        stored = message(Status.QUEUED)
        stored.save()
        assert lifecycle.transition(stored.message_id, Status.SENT).changed
    finally:
        events.unsubscribe(broken)
    assert len(published) == 1
