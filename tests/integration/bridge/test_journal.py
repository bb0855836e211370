"""The journal on its own: what it keeps, and what it forgets."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from device_bridge.drivers.base import InboundSms
from device_bridge.journal import Journal, JournalInUse
from tests.integration.bridge.fakes import FakeClock

DAY = 86400


def test_prune_forgets_old_settled_messages_but_keeps_anything_unfinished(tmp_path):
    clock = FakeClock(start=100 * DAY)
    journal = Journal(str(tmp_path / "journal.sqlite3"), wall_clock=clock)
    journal.record_outcome("sqs-old", "old", "sent", references=("7",))
    journal.post_done(journal.pending_posts(10)[0].id)
    journal.record_outcome("sqs-unposted", "unposted", "failed", reason="refused")
    journal.begin_send("sqs-crashed", "crashed")
    journal.add_inbound(InboundSms("+22238089336", "Oui", datetime.now(UTC), "sim-1"))
    clock.advance(8 * DAY)
    journal.record_outcome("sqs-recent", "recent", "expired")
    assert journal.prune(7 * DAY) == 1
    assert journal.outbound("sqs-old") is None
    assert journal.record_delivery("7", True, "", datetime.now(UTC)) is None
    for kept in ("sqs-unposted", "sqs-crashed", "sqs-recent"):
        assert journal.outbound(kept) is not None
    assert [body["deviceRef"] for body in journal.pending_inbound(10)] == ["sim-1"]


def test_received_sms_is_stored_once_and_posted_until_acknowledged_or_refused(tmp_path):
    journal = Journal(str(tmp_path / "journal.sqlite3"))
    for ref in ("sim-1", "sim-1", "sim-2"):  # the phone may hand an SMS over again after a restart
        journal.add_inbound(
            InboundSms("+22238089336", "Oui", datetime(2025, 1, 20, tzinfo=UTC), ref)
        )
    assert [body["deviceRef"] for body in journal.pending_inbound(10)] == ["sim-1", "sim-2"]
    journal.inbound_done("sim-1")
    journal.inbound_rejected("sim-2", "HTTP 400: text too long")  # kept on disk, not reposted
    assert journal.pending_inbound(10) == []
    journal.close()


def test_a_journal_serves_one_bridge_at_a_time(tmp_path):
    path = str(tmp_path / "journal.sqlite3")
    first = Journal(path)
    with pytest.raises(JournalInUse):
        Journal(path)
    first.close()
    Journal(path).close()
