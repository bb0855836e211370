"""Scheduled SMS on the local stack: one reaches the phone within a minute of its time,
never before it; one deleted before its time never reaches it and leaves no copy behind."""

import time
from datetime import UTC, datetime, timedelta

import pytest

from devstack.harness import fresh_local_number

pytestmark = pytest.mark.e2e

AHEAD = timedelta(seconds=20)


def schedule(stack, text: str) -> tuple[str, datetime]:
    send_at = (datetime.now(UTC) + AHEAD).replace(microsecond=0)
    body = {"message": text, "phoneNumber": fresh_local_number(), "sendAt": send_at.isoformat()}
    answer = stack.post("/messages/send", body)
    assert answer.status_code == 200, answer.text
    assert answer.json()["status"] == "scheduled"
    return answer.json()["messageId"], send_at


def test_a_scheduled_sms_arrives_within_a_minute_of_its_time_and_a_deleted_one_never(stack):
    kept, send_at = schedule(stack, "Rappel : rendez-vous demain")
    deleted, _ = schedule(stack, "Rendez-vous annulé")
    assert stack.call("DELETE", f"/messages/{deleted}").status_code == 200

    arrived = stack.wait_outbox([kept], seconds=(AHEAD + timedelta(seconds=60)).total_seconds())
    at = datetime.fromisoformat(arrived[kept]["sentAt"])
    assert send_at - timedelta(seconds=1) <= at <= send_at + timedelta(seconds=60), (at, send_at)

    deadline = time.monotonic() + 15
    while f"message {deleted} is already deleted according to the API" not in stack.log_text():
        assert time.monotonic() < deadline, "the bridge never got the deleted SMS's copy"
        time.sleep(0.2)
    assert deleted not in {line["messageId"] for line in stack.outbox_lines()}
