"""The agent against SQS (moto server), the fake device API and the in-memory phone."""

from __future__ import annotations

import json
import logging
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest

from device_bridge.agent import INTERRUPTED, Agent, TokenBucket
from device_bridge.cli import CHATTY_LIBRARIES
from device_bridge.config import parse_lines
from device_bridge.drivers.base import DeliveryReport, InboundSms, SendError
from device_bridge.journal import Journal
from device_bridge.lines import Backoff, PhoneEvents
from tests.integration.bridge.conftest import running, wait_until
from tests.integration.bridge.fakes import DEVICE_KEY, FakeClock, FakeDriver
from tests.logcapture import capture_all, text


def received(device_ref: str, text: str = "Oui") -> InboundSms:
    return InboundSms(
        "+22238089336", text, datetime(2025, 1, 20, 10, 14, 50, tzinfo=UTC), device_ref
    )


def device_credentials(queue_urls: dict, lasting: timedelta) -> dict:
    """What POST /device/credentials answers (moto takes any keys)."""
    return {
        "accessKeyId": "ASIADEVICE",
        "secretAccessKey": "short-lived",
        "sessionToken": "token",
        "expiration": (datetime.now(UTC) + lasting).isoformat(),
        "region": "us-east-1",
        "queues": queue_urls,
    }


def test_sends_the_sms_and_reports_sending_then_sent(queues, api, make_agent):
    message_id = queues.put(text="Bonjour Aminata")
    driver = FakeDriver()
    with running(make_agent(driver)) as agent:
        agent.run_until(lambda: api.statuses.get(message_id) == "sent", timeout=10)
    assert [(sms.message_id, sms.to, sms.text) for sms in driver.sent] == [
        (message_id, "+22238089336", "Bonjour Aminata")
    ]
    assert api.posted_statuses(message_id) == ["sending", "sent"]
    assert api.status_calls(message_id)[-1][1]["segments"] == 1
    assert queues.counts() == (0, 0)
    assert driver.opened and driver.closed


def test_every_report_hands_back_the_claim_of_the_queue_body(queues, api, make_agent):
    sent = queues.put(claim="claim-of-sent")
    late = queues.put(claim="claim-of-late", send_before=datetime.now(UTC) - timedelta(seconds=1))
    with running(make_agent(FakeDriver())) as agent:
        agent.run_until(
            lambda: api.statuses.get(sent) == "sent" and api.statuses.get(late) == "expired",
            timeout=10,
        )
    assert [body.get("claim") for _, body in api.status_calls(sent)] == ["claim-of-sent"] * 2
    assert [body.get("claim") for _, body in api.status_calls(late)] == ["claim-of-late"]


def test_an_interrupted_send_is_reported_with_its_claim(queues, api, make_agent, tmp_path):
    message_id = queues.put(claim="claim-1")
    sqs_id = queues.sqs.receive_message(QueueUrl=queues.urls["bulk"], VisibilityTimeout=0)[
        "Messages"
    ][0]["MessageId"]
    journal = Journal(str(tmp_path / "journal.sqlite3"))
    journal.begin_send(sqs_id, message_id, "claim-1")
    journal.close()
    with running(make_agent(FakeDriver())) as agent:
        agent.run_until(lambda: api.statuses.get(message_id) == "failed", timeout=10)
    assert api.status_calls(message_id)[0][1]["claim"] == "claim-1"


def test_with_device_credentials_the_key_is_all_a_bridge_needs(queues, api, make_agent):
    """The API names the queues and hands out credentials that expire soon: the bridge
    asks again before they do (botocore refreshes within 10 minutes of the expiry)."""
    api.credentials = lambda: device_credentials(queues.urls, timedelta(minutes=5))
    first, second = queues.put(), queues.put(kind="priority")
    agent = make_agent(aws_credentials="device", outbound_queue="elsewhere", priority_queue="x")
    with running(agent):
        agent.run_until(
            lambda: api.statuses.get(first) == "sent" and api.statuses.get(second) == "sent",
            timeout=10,
        )
    asked = [path for path, _ in api.calls if path == "/device/credentials"]
    assert len(asked) >= 2


def test_a_bridge_follows_a_change_of_pool_without_a_restart(queues, api, make_agent):
    """The operator dedicates the device to an account: the API names its own queue instead
    of the shared ones; at its next heartbeat the bridge gets fresh credentials, polls the
    new queue and stops taking from the shared ones."""
    named = dict(queues.urls)
    api.credentials = lambda: device_credentials(dict(named), timedelta(hours=1))
    own = queues.sqs.create_queue(QueueName=queues.names["bulk"] + "-device-d1")["QueueUrl"]
    clock = FakeClock()
    agent = make_agent(aws_credentials="device", heartbeat_interval=60, clock=clock)
    with running(agent):
        before = queues.put()
        agent.run_until(lambda: api.statuses.get(before) == "sent", timeout=10)
        named.clear()
        named["device-bulk"] = own
        clock.advance(60)
        agent.run_until(lambda: set(agent.queues) == {"device-bulk"}, timeout=10)
        time.sleep(0.3)  # the shared queues' pollers finish their last receive
        shared = queues.put()
        body = {"v": 3, "messageId": "own-1", "to": "+22238089336", "text": "x"}
        queues.sqs.send_message(QueueUrl=own, MessageBody=json.dumps(body))
        agent.run_until(lambda: api.statuses.get("own-1") == "sent", timeout=10)
        time.sleep(0.3)
        assert shared not in api.statuses
        beats = len(api.heartbeats())
        clock.advance(60)
        agent.run_until(lambda: len(api.heartbeats()) > beats, timeout=10)
    assert queues.counts() == (1, 0), "the shared queue's SMS waits for the shared pool"
    assert api.heartbeats()[-1]["ownQueue"] is True  # SMS may be addressed to it now


def test_long_polls_in_batches_of_ten_and_buffers_at_most_max_buffered(queues, make_agent):
    for kind in ("bulk", "priority"):  # more than the hand holds: no poll waits on an empty queue
        for _ in range(12):
            queues.put(kind)
    agent = make_agent(wait_time_seconds=20, max_buffered=10)
    receives = []
    agent.queues["bulk"].client.meta.events.register(
        "provide-client-params.sqs.ReceiveMessage",
        lambda params, **_: receives.append(dict(params)),
    )
    with running(agent):  # the loop never turns: nothing is sent, the pollers fill the hand
        wait_until(lambda: agent.hand.count() == 20)
        time.sleep(0.2)  # a full hand must stop the pollers from receiving more
        assert agent.hand.count() == 20
        assert queues.counts("bulk") == queues.counts("priority") == (2, 10)
    assert sorted(receives, key=lambda params: params["QueueUrl"]) == [
        {
            "QueueUrl": queues.urls[kind],
            "MaxNumberOfMessages": 10,
            "WaitTimeSeconds": 20,
            "VisibilityTimeout": 60,
            "MessageSystemAttributeNames": ["MessageGroupId"],
        }
        for kind in sorted(queues.urls, key=queues.urls.get)
    ]
    assert queues.counts("bulk") == queues.counts("priority") == (12, 0)  # released at shutdown


def test_one_accounts_backlog_delays_anothers_otp_by_one_send(queues, api, make_agent):
    flood = [queues.put("priority", group="account-b") for _ in range(6)]
    otp = queues.put("priority", group="account-a")
    driver = FakeDriver()
    agent = make_agent(driver)
    with running(agent):
        wait_until(lambda: agent.hand.count() == 7)  # all in hand before the first send
        agent.run_until(lambda: len(driver.sent) == 7, timeout=10)
    order = [sms.message_id for sms in driver.sent]
    assert order.index(otp) <= 1, "A's OTP waited for at most one of B's"
    assert [m for m in order if m != otp] == flood  # B's own stay in order


def test_a_slow_sim_holds_only_what_it_sends_within_20_seconds(queues, make_agent):
    for _ in range(10):
        queues.put()
    agent = make_agent(sends_per_minute=6, max_buffered=10)
    with running(agent):  # the loop never turns: only the pollers work
        wait_until(lambda: agent.hand.count() == 2)
        time.sleep(0.2)
        assert agent.hand.count() == 2, "6 SMS a minute: two in 20 s"
        assert queues.counts() == (8, 2)


def test_visibility_is_extended_while_a_slow_phone_sends(queues, api, make_agent):
    first, second = queues.put(), queues.put()
    driver = FakeDriver()
    agent = make_agent(driver, visibility_timeout=1, max_buffered=2)
    deliveries = []
    agent.queues["bulk"].client.meta.events.register(
        "after-call.sqs.ReceiveMessage",
        lambda parsed, **_: deliveries.extend(parsed.get("Messages", [])),
    )

    def slow_send(sms):
        if sms.message_id == first:
            wait_until(lambda: agent.hand.count() == 2)
            time.sleep(2.5)  # far beyond the 1 s visibility timeout
            assert queues.counts() == (0, 2), "another bridge could receive a message in hand"

    driver.during_send = slow_send
    with running(agent):
        agent.run_until(lambda: len(driver.sent) == 2, timeout=15)
    assert sorted(sms.message_id for sms in driver.sent) == sorted([first, second])
    assert len(deliveries) == 2, "SQS delivered each message once"
    assert queues.counts() == (0, 0)


def test_message_received_again_after_its_hold_lapsed_is_held_once(queues, api, make_agent):
    first, second = queues.put(), queues.put()
    driver = FakeDriver()
    agent = make_agent(driver, visibility_timeout=1)
    deliveries = []
    events = agent.queues["bulk"].client.meta.events
    events.register(
        "after-call.sqs.ReceiveMessage",
        lambda parsed, **_: deliveries.extend(parsed.get("Messages", [])),
    )

    def sqs_unreachable(**_):
        raise ConnectionError("SQS unreachable")

    events.register("provide-client-params.sqs.ChangeMessageVisibilityBatch", sqs_unreachable)
    held = []

    def slow_send(sms):  # meanwhile both holds lapse and SQS delivers both messages again
        if sms.message_id == first:
            wait_until(lambda: len(deliveries) >= 4)
            held.append(agent.hand.count())

    driver.during_send = slow_send
    with running(agent):
        agent.run_until(lambda: len(driver.sent) == 2 and queues.counts() == (0, 0), timeout=15)
    assert held == [2]
    assert sorted(sms.message_id for sms in driver.sent) == sorted([first, second])


def test_sqs_message_is_deleted_only_once_the_outcome_is_journaled(queues, api, make_agent):
    sent = queues.put()
    refused = queues.put(to="+22238000000")
    expired = queues.put(send_before=datetime.now(UTC) - timedelta(seconds=1))
    driver = FakeDriver()
    driver.during_send = lambda sms: (
        driver.refusals.append(SendError("unknown subscriber", "1", retryable=False))
        if sms.message_id == refused
        else None
    )
    agent = make_agent(driver)
    sqs_ids = {}  # receipt handle -> SQS message id
    states_at_delete = []

    def remember_receipts(parsed, **_):
        sqs_ids.update({m["ReceiptHandle"]: m["MessageId"] for m in parsed.get("Messages", [])})

    def record_states(params, **_):
        for entry in params["Entries"]:
            sqs_id = sqs_ids[entry["ReceiptHandle"]]
            states_at_delete.append(agent.journal.outbound(sqs_id).state)

    events = agent.queues["bulk"].client.meta.events
    events.register("after-call.sqs.ReceiveMessage", remember_receipts)
    events.register("provide-client-params.sqs.DeleteMessageBatch", record_states)
    with running(agent):
        agent.run_until(
            lambda: all(
                api.statuses.get(m) in ("sent", "failed", "expired")
                for m in (sent, refused, expired)
            ),
            timeout=10,
        )
    assert sorted(states_at_delete) == ["expired", "failed", "sent"]
    assert queues.counts() == (0, 0)


def test_redelivered_message_already_sent_is_deleted_not_resent(queues, api, make_agent):
    message_id = queues.put()
    driver = FakeDriver()
    agent = make_agent(driver, visibility_timeout=1)
    deletes = []

    def lose_first_delete(**_):
        deletes.append(1)
        if len(deletes) == 1:
            raise ConnectionError("network dropped before the delete")

    agent.queues["bulk"].client.meta.events.register(
        "provide-client-params.sqs.DeleteMessageBatch", lose_first_delete
    )
    with running(agent):  # the message comes back after the 1 s visibility timeout
        agent.run_until(lambda: len(deletes) == 2, timeout=10)
    assert [sms.message_id for sms in driver.sent] == [message_id]
    assert api.posted_statuses(message_id) == ["sending", "sent"]
    assert queues.counts() == (0, 0)


def test_message_resent_by_the_api_is_sent_again(queues, api, make_agent):
    message_id = queues.put()
    driver = FakeDriver()
    driver.refusals.append(SendError("unknown subscriber", "1", retryable=False))
    with running(make_agent(driver)) as agent:
        agent.run_until(lambda: api.statuses.get(message_id) == "failed", timeout=10)
        api.statuses[message_id] = "queued"  # POST /messages/{id}/resend: same id, new SQS message
        queues.put(message_id=message_id)
        agent.run_until(lambda: api.statuses.get(message_id) == "sent", timeout=10)
    assert [sms.message_id for sms in driver.sent] == [message_id]


def test_two_queue_copies_of_one_message_are_sent_once(queues, api, make_agent):
    """The outbox sweep (or an SDK retry of SendMessage) may queue a second copy of a
    message whose first copy is on the queue: the API lets the same device claim it
    again, so the journal must tell the copies apart by message id."""
    message_id = queues.put()
    queues.put(message_id=message_id)
    driver = FakeDriver()
    with running(make_agent(driver)) as agent:
        agent.run_until(lambda: queues.counts() == (0, 0), timeout=10)
    assert [sms.message_id for sms in driver.sent] == [message_id]
    assert api.posted_statuses(message_id) == ["sending", "sent"]


def test_send_interrupted_by_a_crash_is_reported_failed_not_resent(
    queues, api, make_agent, tmp_path
):
    message_id = queues.put()
    sqs_id = queues.sqs.receive_message(QueueUrl=queues.urls["bulk"], VisibilityTimeout=0)[
        "Messages"
    ][0]["MessageId"]
    journal = Journal(str(tmp_path / "journal.sqlite3"))
    journal.begin_send(sqs_id, message_id)  # the previous run died inside driver.send
    journal.close()
    driver = FakeDriver()
    with running(make_agent(driver)) as agent:
        agent.run_until(
            lambda: queues.counts() == (0, 0) and api.statuses.get(message_id), timeout=10
        )
    assert driver.attempts == []
    assert api.posted_statuses(message_id) == ["failed"]
    assert api.status_calls(message_id)[0][1]["reason"] == INTERRUPTED


def test_message_past_send_before_is_expired_not_sent(queues, api, make_agent):
    late = queues.put(kind="priority", send_before=datetime.now(UTC) - timedelta(seconds=1))
    on_time = queues.put(kind="priority", send_before=datetime.now(UTC) + timedelta(minutes=10))
    driver = FakeDriver()
    with running(make_agent(driver)) as agent:
        agent.run_until(
            lambda: api.statuses.get(late) == "expired" and api.statuses.get(on_time) == "sent",
            timeout=10,
        )
    assert [sms.message_id for sms in driver.sent] == [on_time]
    assert api.posted_statuses(late) == ["expired"]
    assert queues.counts("priority") == (0, 0)


def test_temporary_refusals_are_retried_with_backoff_then_failed(queues, api, make_agent):
    message_id = queues.put()
    clock = FakeClock()
    driver = FakeDriver()
    driver.refusals.extend(SendError("network busy", "42", retryable=True) for _ in range(3))
    agent = make_agent(driver, clock=clock, retry_delay=5.0, max_attempts=3)
    with running(agent):
        agent.run_until(lambda: len(driver.attempts) == 1, timeout=10)
        for _ in range(10):
            agent.step()
        clock.advance(4.9)
        for _ in range(10):
            agent.step()
        assert len(driver.attempts) == 1, "retried before the 5 s backoff"
        clock.advance(0.1)
        agent.run_until(lambda: len(driver.attempts) == 2, timeout=10)
        clock.advance(9.9)
        for _ in range(10):
            agent.step()
        assert len(driver.attempts) == 2, "second retry must wait twice as long"
        clock.advance(0.1)
        agent.run_until(lambda: api.statuses.get(message_id) == "failed", timeout=10)
    assert len(driver.attempts) == 3 and driver.sent == []
    assert api.posted_statuses(message_id) == ["sending", "sending", "sending", "failed"]
    assert api.status_calls(message_id)[-1][1]["reason"] == "network busy (code 42)"
    assert queues.counts() == (0, 0)


def test_a_permanent_refusal_fails_at_once(queues, api, make_agent):
    message_id = queues.put()
    driver = FakeDriver()
    driver.refusals.append(SendError("unknown subscriber", "1", retryable=False))
    with running(make_agent(driver, max_attempts=3)) as agent:
        agent.run_until(lambda: api.statuses.get(message_id) == "failed", timeout=10)
    assert driver.attempts == [message_id]
    assert api.status_calls(message_id)[-1][1]["reason"] == "unknown subscriber (code 1)"


def test_a_retry_that_succeeds_ends_sent(queues, api, make_agent):
    message_id = queues.put()
    driver = FakeDriver()
    driver.refusals.append(SendError("network busy", "42"))
    with running(make_agent(driver)) as agent:
        agent.run_until(lambda: api.statuses.get(message_id) == "sent", timeout=10)
    assert driver.attempts == [message_id, message_id] and len(driver.sent) == 1


def test_delivery_reports_mark_the_message_delivered_or_failed(queues, api, make_agent):
    delivered, lost = queues.put(), queues.put()
    driver = FakeDriver(segments=2)
    with running(make_agent(driver)) as agent:
        agent.run_until(
            lambda: api.statuses.get(delivered) == api.statuses.get(lost) == "sent", timeout=10
        )
        driver.events.append(DeliveryReport(f"{delivered}/0", True))
        driver.events.append(DeliveryReport(f"{lost}/1", False, "absent subscriber"))
        agent.run_until(lambda: api.statuses.get(lost) == "failed", timeout=10)
        assert api.statuses[delivered] == "sent", "delivered only once every segment is"
        driver.events.append(DeliveryReport(f"{delivered}/1", True))
        driver.events.append(DeliveryReport(f"{lost}/0", True))
        agent.run_until(lambda: api.statuses.get(delivered) == "delivered", timeout=10)
        for _ in range(5):
            agent.step()
    assert api.posted_statuses(delivered) == ["sending", "sent", "delivered"]
    assert api.posted_statuses(lost) == ["sending", "sent", "failed"]
    assert api.status_calls(lost)[-1][1]["reason"] == "not delivered: absent subscriber"


def test_received_sms_is_posted_with_its_device_ref(api, make_agent):
    driver = FakeDriver()
    with running(make_agent(driver)) as agent:
        driver.events.append(received("sim-1", "Oui, merci"))
        agent.run_until(lambda: "sim-1" in api.inbound, timeout=10)
    assert api.inbound["sim-1"] == {
        "from": "+22238089336",
        "text": "Oui, merci",
        "receivedAt": "2025-01-20T10:14:50.000Z",
        "deviceRef": "sim-1",
    }


def test_the_phone_may_forget_a_received_sms_only_once_the_journal_has_it(api, make_agent):
    api.stop()
    driver = FakeDriver()
    with running(make_agent(driver)) as agent:
        driver.journal = agent.journal
        driver.events.append(received("sim-1"))
        agent.run_until(lambda: driver.acknowledged, timeout=10)
    assert driver.acknowledged == [("sim-1", True)]


def test_received_sms_waits_in_the_journal_while_the_api_fails(api, make_agent):
    clock = FakeClock()
    driver = FakeDriver()
    api.fail_with = 500
    with running(make_agent(driver, clock=clock)) as agent:
        driver.events.append(received("sim-1"))
        agent.run_until(lambda: agent.journal.pending_inbound(10) != [], timeout=10)
        for _ in range(20):
            agent.step()
            clock.advance(1)
        assert api.inbound == {} and len(agent.journal.pending_inbound(10)) == 1
        api.fail_with = None
        clock.advance(60)  # past the longest backoff
        # The outbox marks the SMS done once the API's answer is back, a moment after the API has it.
        agent.run_until(lambda: not agent.journal.pending_inbound(10), timeout=10)
        assert "sim-1" in api.inbound


def test_received_sms_survives_a_restart_while_the_api_is_down(api, make_agent):
    api.stop()
    driver = FakeDriver()
    with running(make_agent(driver)) as agent:
        driver.events.append(received("sim-1"))
        agent.run_until(lambda: agent.journal.pending_inbound(10) != [], timeout=10)
    api.start()  # same port; the phone does not hand the SMS over again
    with running(make_agent(FakeDriver())) as agent:
        agent.run_until(lambda: "sim-1" in api.inbound, timeout=10)


def test_nothing_is_sent_without_the_apis_claim_and_it_goes_once_the_api_is_back(
    queues, api, make_agent
):
    clock = FakeClock()
    message_id = queues.put()
    driver = FakeDriver()
    api.stop()
    with running(make_agent(driver, clock=clock)) as agent:
        agent.run_until(lambda: agent.hand.snapshot(), timeout=10)
        time.sleep(1)  # the bridge keeps trying the API meanwhile
        assert driver.attempts == []
        assert queues.counts() == (0, 1)  # held by the bridge, not given back
        api.start()
        clock.advance(60)
        agent.run_until(lambda: api.statuses.get(message_id) == "sent", timeout=10)
    assert [sms.message_id for sms in driver.sent] == [message_id]


def test_a_message_the_api_does_not_let_this_device_send_is_released_not_sent(
    queues, api, make_agent
):
    """404 to the claim: unknown to the API, or another pool's (the device was reassigned)."""
    message_id = queues.put()
    api.unknown.add(message_id)
    driver = FakeDriver()
    with running(make_agent(driver)) as agent:
        agent.run_until(lambda: len(api.posted_statuses(message_id)) >= 2, timeout=10)
    assert driver.attempts == []
    assert set(api.posted_statuses(message_id)) == {"sending"}  # claimed again, never sent
    assert queues.counts()[0] + queues.counts()[1] == 1  # still on the queue, for another device


def test_backoff_counts_failures_during_a_pause_once():
    """16 lines whose claims fail together when the API does are one failure, not 16 (which
    would pause the whole bank for backoff_max after a blip)."""
    clock = FakeClock()
    backoff = Backoff(maximum=60, clock=clock)
    assert [backoff.failed() for _ in range(16)] == [1.0] * 16
    clock.advance(1)
    assert backoff.ready() and backoff.failed() == 2.0
    backoff.succeeded()
    assert backoff.ready() and backoff.failed() == 1.0


def test_token_bucket_spaces_sends_after_the_burst():
    clock = FakeClock()
    bucket = TokenBucket(per_minute=6, burst=2, clock=clock)
    for _ in range(2):
        assert bucket.delay() == 0
        bucket.take()
    assert bucket.delay() == pytest.approx(10)
    clock.advance(4)
    assert bucket.delay() == pytest.approx(6)
    clock.advance(6)
    assert bucket.delay() == 0
    bucket.take()
    clock.advance(1000)  # an idle spell refills only up to the burst
    bucket.take()
    bucket.take()
    assert bucket.delay() == pytest.approx(10)


def test_agent_sends_no_faster_than_sends_per_minute(queues, api, make_agent):
    for _ in range(3):
        queues.put()
    clock = FakeClock()
    driver = FakeDriver()
    agent = make_agent(driver, clock=clock, sends_per_minute=6, send_burst=1)
    with running(agent):
        wait_until(lambda: agent.hand.count() == 2)  # 6 a minute: it holds two
        agent.run_until(lambda: len(driver.sent) == 1, timeout=10)
        for _ in range(20):
            agent.step()
        clock.advance(9.9)
        for _ in range(20):
            agent.step()
        assert len(driver.sent) == 1
        clock.advance(0.1)
        agent.run_until(lambda: len(driver.sent) == 2, timeout=10)
        for _ in range(20):
            agent.step()
        assert len(driver.sent) == 2


def test_a_message_the_api_says_is_settled_does_not_use_up_the_lines_pace(queues, api, make_agent):
    settled, waiting = queues.put(), queues.put()
    api.statuses[settled] = "sent"  # another bridge sent it; its SQS delete got lost
    clock = FakeClock()
    driver = FakeDriver()
    agent = make_agent(driver, clock=clock, sends_per_minute=6, send_burst=1)
    with running(agent):
        wait_until(lambda: agent.hand.count() == 2)
        agent.run_until(lambda: len(driver.sent) == 1, timeout=10)  # the clock stands still
    assert driver.sent[0].message_id == waiting and driver.attempts == [waiting]


def test_otp_messages_go_before_bulk_messages(queues, api, make_agent):
    bulk = [queues.put("bulk") for _ in range(3)]
    otp = [queues.put("priority") for _ in range(2)]
    driver = FakeDriver()
    agent = make_agent(driver)
    with running(agent):
        wait_until(lambda: agent.hand.count() == 5)
        agent.run_until(lambda: len(driver.sent) == 5, timeout=10)
    order = [sms.message_id for sms in driver.sent]
    assert sorted(order[:2]) == sorted(otp) and sorted(order[2:]) == sorted(bulk)


def test_otp_arriving_while_bulk_waits_for_the_rate_limit_takes_the_next_slot(
    queues, api, make_agent
):
    clock = FakeClock()
    driver = FakeDriver()
    agent = make_agent(driver, clock=clock, sends_per_minute=6, send_burst=1)
    queues.put(), queues.put()  # two bulk messages; the first goes out at once
    with running(agent):
        agent.run_until(lambda: len(driver.sent) == 1 and agent.hand.count() == 1, timeout=10)
        otp = queues.put("priority")
        wait_until(lambda: agent.hand.count() == 2)
        clock.advance(10)
        agent.run_until(lambda: len(driver.sent) == 2, timeout=10)
    assert driver.sent[1].message_id == otp


def test_stop_finishes_the_send_in_flight_and_releases_the_rest(queues, api, make_agent):
    ids = [queues.put() for _ in range(3)]
    driver = FakeDriver()
    agent = make_agent(driver)

    def stop_mid_send(sms):  # SIGTERM arrives while the phone is sending
        wait_until(lambda: agent.hand.count() == 3)
        agent.stop()

    driver.during_send = stop_mid_send
    agent.run()
    assert [sms.message_id for sms in driver.sent] == [ids[0]]
    assert api.posted_statuses(ids[0]) == ["sending", "sent"]  # posted before exiting
    assert queues.counts() == (2, 0)  # released at once, not after the visibility timeout
    assert sorted(body["messageId"] for body in queues.take_visible()) == sorted(ids[1:])
    assert driver.closed


@pytest.mark.parametrize(
    "stored",
    [
        "sent",  # another bridge sent it; its SQS delete got lost
        "deleted",  # its owner deleted it (a scheduled SMS) after it was queued
    ],
)
def test_message_the_api_says_is_settled_is_skipped_and_deleted(queues, api, make_agent, stored):
    message_id = queues.put()
    api.statuses[message_id] = stored
    driver = FakeDriver()
    with running(make_agent(driver)) as agent:
        agent.run_until(lambda: queues.counts() == (0, 0), timeout=10)
    assert driver.attempts == []
    assert api.posted_statuses(message_id) == ["sending"]


def test_message_another_device_is_sending_is_left_on_the_queue(queues, api, make_agent):
    message_id = queues.put()
    api.statuses[message_id] = "sending"  # claimed by another device, which has not reported
    api.claims[message_id] = "another device's key"
    driver = FakeDriver()
    with running(make_agent(driver, visibility_timeout=1)) as agent:
        agent.run_until(lambda: len(api.posted_statuses(message_id)) >= 2, timeout=10)
    assert driver.attempts == []
    assert api.posted_statuses(message_id)[:2] == ["sending", "sending"], (
        "redelivered, claimed again"
    )
    assert queues.counts() != (0, 0), "not deleted: the queue redelivers or dead-letters it"


def test_two_bridges_on_one_queue_share_the_work_and_never_send_twice(
    queues, api, make_config, tmp_path
):
    ids = {queues.put() for _ in range(20)}
    drivers = [FakeDriver(send_delay=0.01), FakeDriver(send_delay=0.01)]
    agents = [
        Agent.build(
            make_config(journal=str(tmp_path / f"journal-{n}.sqlite3"), max_buffered=2), driver
        )
        for n, driver in enumerate(drivers)
    ]

    def all_sent() -> bool:
        return sum(len(driver.sent) for driver in drivers) >= 20

    for agent in agents:
        agent.start()
    threads = [threading.Thread(target=agent.run_until, args=(all_sent, 20)) for agent in agents]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for agent in agents:
        agent.shutdown()
    sent = [sms.message_id for driver in drivers for sms in driver.sent]
    assert sorted(sent) == sorted(ids), "every message sent exactly once"
    assert all(driver.sent for driver in drivers), "both bridges took a share"
    assert queues.counts() == (0, 0)


def test_heartbeat_reports_driver_info_every_interval(api, make_agent):
    clock = FakeClock()
    with running(make_agent(clock=clock, heartbeat_interval=60)) as agent:
        agent.run_until(lambda: len(api.heartbeats()) == 1, timeout=10)
        clock.advance(59)
        for _ in range(5):
            agent.step()
        assert len(api.heartbeats()) == 1
        clock.advance(1)
        agent.run_until(lambda: len(api.heartbeats()) == 2, timeout=10)
    assert api.heartbeats()[0] == {
        "driver": "fake",
        "signalPercent": 70,
        "batteryPercent": 80,
        "version": api.heartbeats()[0]["version"],
        "ownQueue": False,  # this bridge was given the shared queues only
    }


def test_heartbeat_reports_the_configured_sim_lines(api, make_agent):
    agent = make_agent(lines=parse_lines("+22238000001, +22222000002@mattel"))
    with running(agent):
        agent.run_until(lambda: len(api.heartbeats()) == 1, timeout=10)
    assert api.heartbeats()[0]["lines"] == [
        {"slot": 1, "number": "+22238000001", "state": "active"},
        {"slot": 2, "number": "+22222000002", "operator": "mattel", "state": "active"},
    ]


@pytest.mark.parametrize(
    ("to", "line"),
    [("+22238089336", 2), ("+22244089336", 1), ("+22222089336", 1)],  # Mattel, Mauritel, other
)
def test_an_sms_leaves_from_a_line_of_the_recipients_network(queues, api, make_agent, to, line):
    message_id = queues.put(to=to)
    driver = FakeDriver()
    agent = make_agent(driver, lines=parse_lines("+22244000001, +22238000002"))
    with running(agent):
        agent.run_until(lambda: api.statuses.get(message_id) == "sent", timeout=10)
    assert [sms.sim_slot for sms in driver.sent] == [line]
    assert api.status_calls(message_id)[-1][1]["simSlot"] == line  # whose replies come there


def test_the_line_the_sender_asked_for_wins(queues, api, make_agent):
    body = {"v": 3, "messageId": "m-1", "to": "+22238089336", "text": "x", "simSlot": 1}
    queues.sqs.send_message(QueueUrl=queues.urls["bulk"], MessageBody=json.dumps(body))
    driver = FakeDriver()
    agent = make_agent(driver, lines=parse_lines("+22244000001, +22238000002"))
    with running(agent):
        agent.run_until(lambda: api.statuses.get("m-1") == "sent", timeout=10)
    assert [sms.sim_slot for sms in driver.sent] == [1]


def test_an_sms_received_on_a_one_line_device_names_its_line(api, make_agent):
    driver = FakeDriver()
    with running(make_agent(driver, lines=parse_lines("+22238000001"))) as agent:
        driver.events.append(received("sim-1"))
        agent.run_until(lambda: "sim-1" in api.inbound, timeout=10)
    assert api.inbound["sim-1"]["simSlot"] == 1


def test_a_one_line_device_reports_the_signal_on_its_line(api, make_agent):
    agent = make_agent(lines=parse_lines("+22238000001"))
    with running(agent):
        agent.run_until(lambda: len(api.heartbeats()) == 1, timeout=10)
    assert api.heartbeats()[0]["lines"] == [
        # the fake phone's signal
        {"slot": 1, "number": "+22238000001", "signalPercent": 70, "state": "active"}
    ]


def test_logs_never_show_sms_texts_or_the_device_key(queues, api, make_agent):
    message_id = queues.put(kind="priority", text="Votre code Chinqit: 482916")
    api.fail_with = 500  # failures log the most
    driver = FakeDriver()
    driver.refusals.append(SendError("network busy", "42"))
    # SQS bodies carry the texts, which botocore logs at DEBUG: held as chinqit-bridge does.
    held = {name: logging.WARNING for name in CHATTY_LIBRARIES}
    with capture_all(held=held) as records, running(make_agent(driver)) as agent:
        driver.events.append(received("sim-1", "Mon code secret 777111"))
        time.sleep(2)  # the claim, the inbound post and the heartbeat fail and are logged
        api.fail_with = None
        agent.run_until(
            lambda: api.statuses.get(message_id) == "sent" and "sim-1" in api.inbound, timeout=20
        )
    logged = "\n".join(text(record) for record in records)
    assert message_id in logged
    for secret in ("482916", "777111", DEVICE_KEY):
        assert secret not in logged


def test_a_refused_device_key_keeps_everything_for_later_and_says_so(api, make_agent, caplog):
    driver = FakeDriver()
    with running(make_agent(driver, device_key="dk_revoked")) as agent:
        driver.events.append(received("sim-1"))
        agent.run_until(
            lambda: (
                "device key refused (HTTP 403)" in caplog.text and agent.journal.pending_inbound(10)
            ),
            timeout=10,
        )
        assert [body["deviceRef"] for body in agent.journal.pending_inbound(10)] == ["sim-1"]
    assert api.calls == []


NEWER_VERSION = json.dumps({"v": 4, "messageId": "m-3", "to": "+22238089336", "text": "Bonjour"})


@pytest.mark.parametrize(
    "body, complaint",
    [
        ('{"messageId": "m-1"}', "is not an outbound SMS"),
        (NEWER_VERSION, "protocol version 4 is not supported"),
    ],
)
def test_a_message_the_bridge_cannot_read_is_left_for_the_dead_letter_queue(
    body, complaint, queues, api, make_agent, caplog
):
    queues.sqs.send_message(QueueUrl=queues.urls["bulk"], MessageBody=body)
    message_id = queues.put()
    driver = FakeDriver()
    with running(make_agent(driver)) as agent:
        agent.run_until(lambda: api.statuses.get(message_id) == "sent", timeout=10)
    assert [sms.message_id for sms in driver.sent] == [message_id]
    assert complaint in caplog.text
    assert queues.counts() == (0, 1)  # not deleted: after 5 receives SQS moves it to the DLQ


def put_body(queues, body: dict, kind: str = "bulk") -> None:
    queues.sqs.send_message(QueueUrl=queues.urls[kind], MessageBody=json.dumps(body))


def test_a_text_that_cannot_be_encoded_is_failed_and_the_bridge_goes_on(queues, api, make_agent):
    put_body(queues, {"v": 3, "messageId": "bad-1", "to": "+22238089336", "text": "a\ud800b"})
    good = queues.put(text="Bonjour")
    driver = FakeDriver()
    with running(make_agent(driver)) as agent:
        agent.run_until(
            lambda: api.statuses.get("bad-1") == "failed" and api.statuses.get(good) == "sent",
            timeout=10,
        )
    assert [sms.message_id for sms in driver.sent] == [good]
    assert "surrogate" in api.status_calls("bad-1")[-1][1]["reason"]
    assert api.posted_statuses("bad-1") == ["failed"]  # refused before any claim
    assert queues.counts() == (0, 0)


def test_a_text_over_the_segment_limit_is_failed_before_sending(queues, api, make_agent):
    long_id = queues.put(text="x" * 153 * 11)  # 11 concatenated GSM-7 segments
    driver = FakeDriver()
    with running(make_agent(driver, max_segments=10)) as agent:
        agent.run_until(lambda: api.statuses.get(long_id) == "failed", timeout=10)
    assert driver.attempts == []
    assert api.status_calls(long_id)[-1][1]["reason"] == ("too long: 11 SMS segments, at most 10")


def test_a_driver_bug_fails_that_message_only(queues, api, make_agent):
    first, second = queues.put(), queues.put()
    driver = FakeDriver()
    driver.refusals.append(ZeroDivisionError("division by zero"))
    with running(make_agent(driver)) as agent:
        agent.run_until(
            lambda: {api.statuses.get(first), api.statuses.get(second)} == {"failed", "sent"},
            timeout=10,
        )
    failed = first if api.statuses.get(first) == "failed" else second
    assert api.status_calls(failed)[-1][1]["reason"] == (
        "driver error: ZeroDivisionError: division by zero"
    )
    assert len(driver.attempts) == 2  # the failed one was not retried


def test_a_phase_that_fails_unexpectedly_does_not_stop_the_bridge(queues, api, make_agent):
    message_id = queues.put()
    driver = FakeDriver()
    polls = []

    def poll():
        polls.append(1)
        if len(polls) == 1:
            raise KeyError("a bug in the phone's answer")
        return []

    driver.poll = poll
    with running(make_agent(driver)) as agent:
        agent.run_until(lambda: api.statuses.get(message_id) == "sent", timeout=10)
    assert len(polls) > 1


def test_phone_events_that_keep_coming_do_not_hold_up_the_sends(queues, api, make_agent):
    """A turn takes what the ports reported before it began: reports arriving while it
    handles them (a bank whose lines end their sends together, a flood of delivery
    reports) wait for the next turn, after this one has given the free lines their SMS."""
    message_id = queues.put()
    driver = FakeDriver()
    agent = make_agent(driver)
    handle = agent._phone_events
    flood_until = float("inf")

    def one_more_arrives_meanwhile(port, events):
        handle(port, events)
        if time.monotonic() < flood_until:
            agent._completed(PhoneEvents(port, []))

    agent._phone_events = one_more_arrives_meanwhile
    with running(agent):
        flood_until = time.monotonic() + 10.0
        agent._completed(PhoneEvents(agent.ports[0], []))
        agent.run_until(lambda: api.statuses.get(message_id) == "sent", timeout=20)
        assert time.monotonic() < flood_until, "sent only once the reports stopped coming"
        flood_until = 0.0
    assert [sms.message_id for sms in driver.sent] == [message_id]
