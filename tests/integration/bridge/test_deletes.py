"""Settled messages leave SQS on the deletes' thread: batched, and never in the sends' way."""

from __future__ import annotations

import threading
import time

from device_bridge.deletes import Deletes
from device_bridge.transport import SqsQueue
from tests.integration.bridge.conftest import running, wait_until
from tests.integration.bridge.fakes import FakeDriver


def _deletes_by_call(queues) -> tuple[SqsQueue, list[int]]:
    """The bulk queue, and the number of copies each DeleteMessageBatch call carried."""
    queue = SqsQueue(queues.sqs, queues.urls["bulk"])
    calls: list[int] = []
    queues.sqs.meta.events.register(
        "provide-client-params.sqs.DeleteMessageBatch",
        lambda params, **_: calls.append(len(params["Entries"])),
    )
    return queue, calls


def _receive(queue: SqsQueue, count: int) -> dict[str, str]:
    received: dict[str, str] = {}
    while len(received) < count:
        batch = queue.receive(10, 0, 60)
        received.update({m.receipt: m.sqs_id for m in batch})
    return received


def test_copies_settled_together_share_calls_of_ten(queues):
    for _ in range(23):
        queues.put()
    queue, calls = _deletes_by_call(queues)
    settled = _receive(queue, 23)
    deletes = Deletes(linger=30.0)
    deletes.start()
    deletes.add(queue, settled)
    try:
        wait_until(lambda: len(calls) == 3, message="a full call goes without lingering")
    finally:
        deletes.stop()
    assert calls == [10, 10, 3]
    assert queues.counts() == (0, 0)


def test_what_lingers_is_deleted_at_the_stop(queues):
    for _ in range(3):
        queues.put()
    queue, calls = _deletes_by_call(queues)
    deletes = Deletes(linger=30.0)
    deletes.start()
    deletes.add(queue, _receive(queue, 3))
    deletes.stop()
    assert calls == [3]
    assert queues.counts() == (0, 0)


def test_a_copy_alone_is_deleted_after_the_linger(queues):
    queues.put()
    queue, calls = _deletes_by_call(queues)
    deletes = Deletes(linger=0.2)
    deletes.start()
    try:
        added = time.monotonic()
        deletes.add(queue, _receive(queue, 1))
        wait_until(lambda: queues.counts() == (0, 0), timeout=5)
        assert calls == [1]
        assert time.monotonic() - added >= 0.2
    finally:
        deletes.stop()


def test_a_failed_delete_is_logged_and_the_thread_goes_on(queues, caplog):
    queues.put()
    queues.put()
    queue, calls = _deletes_by_call(queues)
    failures = []

    def fail_once(**_):
        if not failures:
            failures.append(1)
            raise ConnectionError("network dropped")

    queues.sqs.meta.events.register("before-send.sqs.DeleteMessageBatch", fail_once)
    first, second = (dict([item]) for item in _receive(queue, 2).items())
    deletes = Deletes(linger=0.0)
    deletes.start()
    try:
        deletes.add(queue, first)
        wait_until(lambda: "cannot delete 1 message(s)" in caplog.text, timeout=5)
        deletes.add(queue, second)
        wait_until(lambda: len(calls) == 2, timeout=5)
    finally:
        deletes.stop()
    assert queues.counts() == (0, 1)  # the first comes back later, and the journal knows it


def test_a_failed_call_does_not_keep_the_next_ten_from_going(queues):
    for _ in range(12):
        queues.put()
    queue, calls = _deletes_by_call(queues)

    def drop_the_first(**_):
        if len(calls) == 1:
            raise ConnectionError("network dropped")

    queues.sqs.meta.events.register("before-send.sqs.DeleteMessageBatch", drop_the_first)
    deletes = Deletes(linger=30.0)
    deletes.add(queue, _receive(queue, 12))
    deletes.stop()  # never started: deleted on the caller's thread
    assert calls == [10, 2]
    assert queues.counts() == (0, 10)  # the first ten come back; the journal knows them


def test_a_stalled_sqs_delete_does_not_hold_up_the_next_sends(queues, api, make_agent):
    """SQS far away, or stalled: the lines go on sending while a delete is in flight."""
    first = queues.put()
    driver = FakeDriver()
    agent = make_agent(driver)
    stalled, release = threading.Event(), threading.Event()
    waited_out = []  # stalls that ended by their timeout: the sends waited for them

    def stall(**_):
        stalled.set()
        if not release.wait(5):
            waited_out.append(1)

    agent.queues["bulk"].client.meta.events.register("before-send.sqs.DeleteMessageBatch", stall)
    with running(agent):
        try:
            agent.run_until(stalled.is_set, timeout=10)
            later = [queues.put(), queues.put()]
            agent.run_until(lambda: len(driver.sent) == 3, timeout=5)
        finally:
            release.set()
    assert waited_out == []
    assert [sms.message_id for sms in driver.sent] == [first, *later]
    assert queues.counts() == (0, 0)
