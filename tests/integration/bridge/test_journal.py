"""The journal on its own: what it keeps, and what it forgets."""

from __future__ import annotations

import stat
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


def test_journal_and_its_wal_and_shm_files_are_private(tmp_path):
    path = tmp_path / "state" / "journal.sqlite3"
    journal = Journal(str(path))
    journal.add_inbound(InboundSms("+22238089336", "Oui", datetime.now(UTC), "sim-1"))
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert (path.parent / "journal.sqlite3-wal").exists()
    for name in ("journal.sqlite3", "journal.sqlite3-wal", "journal.sqlite3-shm"):
        file = path.parent / name
        if file.exists():  # no -shm in exclusive locking mode: the index stays in memory
            assert stat.S_IMODE(file.stat().st_mode) == 0o600, name
    journal.close()


def test_an_old_world_readable_journal_is_tightened(tmp_path, caplog):
    path = tmp_path / "journal.sqlite3"
    Journal(str(path)).close()
    path.chmod(0o644)
    Journal(str(path)).close()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert "readable by other users" in caplog.text


def test_an_acknowledged_received_text_is_gone_from_the_db_and_the_wal(tmp_path):
    path = tmp_path / "journal.sqlite3"
    journal = Journal(str(path))
    secret = "Code secret 918273 pour Zeinebou"
    journal.add_inbound(InboundSms("+22238089336", secret, datetime.now(UTC), "sim-1"))
    journal.inbound_done("sim-1")
    for name in ("journal.sqlite3", "journal.sqlite3-wal"):
        file = tmp_path / name
        data = file.read_bytes() if file.exists() else b""
        assert secret.encode() not in data, name
    journal.close()
