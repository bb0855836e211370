"""The bridge's memory on disk (one SQLite file in WAL mode).

- ``outbound``: per SQS message, what became of its SMS. Keyed on the SQS message id, which
  SQS keeps across redeliveries, while a resend from the API (same messageId, new SQS
  message) gets a new id and is sent again. ``sending`` is written before the SMS goes to
  the driver: a row still ``sending`` at start means the bridge died mid-send.
- ``segment``: network references of sent segments, to match delivery reports.
- ``status_post``: statuses the API has not acknowledged yet, posted in order.
- ``inbound``: received SMS the API has not acknowledged yet.
- ``line_send`` and ``line_state``: what each SIM line sent and its pauses (device_bridge.guard).

SMS texts of outbound messages are never stored; received ones only until the API has them.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sqlite3
import stat
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from chalicelib.wire import protocol

from .drivers.base import InboundSms

log = logging.getLogger(__name__)

SETTLED = ("sent", "delivered", "failed", "expired", "skipped")  # never handed to the driver again

SCHEMA = """
CREATE TABLE IF NOT EXISTS outbound (
    sqs_message_id TEXT PRIMARY KEY,
    message_id TEXT NOT NULL,
    state TEXT NOT NULL,          -- sending, retry, or one of SETTLED
    attempts INTEGER NOT NULL DEFAULT 0,
    segments INTEGER,
    reason TEXT,
    updated_at REAL NOT NULL,
    claim TEXT                    -- the queue body's proof of receipt, sent with each report
);
CREATE INDEX IF NOT EXISTS outbound_by_message ON outbound (message_id);
CREATE TABLE IF NOT EXISTS segment (
    reference TEXT PRIMARY KEY,   -- networks reuse references: the latest send owns it
    sqs_message_id TEXT NOT NULL,
    delivered INTEGER             -- NULL until its delivery report arrives
);
CREATE TABLE IF NOT EXISTS status_post (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    message_id TEXT NOT NULL,
    body TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS inbound (
    device_ref TEXT PRIMARY KEY,
    body TEXT NOT NULL,
    rejected TEXT                 -- the API's refusal (HTTP 400); kept, no longer posted
);
CREATE TABLE IF NOT EXISTS line_send (  -- what each line sent, for the SIM guard's caps
    slot INTEGER NOT NULL,
    at REAL NOT NULL,
    recipient TEXT NOT NULL,      -- a digest of the number, never the number
    parts INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS line_send_by_time ON line_send (slot, at);
CREATE TABLE IF NOT EXISTS line_state (
    slot INTEGER PRIMARY KEY,
    first_send_at REAL,           -- the warm-up of a new SIM counts from it
    paused_until REAL,
    pause_reason TEXT,
    pauses INTEGER NOT NULL DEFAULT 0  -- pauses in a row without a send between them
);
"""
LINE_SEND_RETENTION = 31 * 86400.0  # the longest guard window (30 days) and a margin


@dataclass(frozen=True)
class OutboundEntry:
    sqs_message_id: str
    message_id: str
    state: str


@dataclass(frozen=True)
class PendingPost:
    id: int
    message_id: str
    body: dict


@dataclass(frozen=True)
class LineState:
    first_send_at: float | None = None
    paused_until: float | None = None
    pause_reason: str | None = None
    pauses: int = 0


class JournalInUse(Exception):
    """Another bridge holds this journal; each bridge needs its own."""


def _private_file(path: Path) -> None:
    """Create the journal 0600 (its directory 0700) before SQLite opens it; tighten an old one."""
    if not path.parent.exists():
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
    _tighten(path)


def _tighten(path: Path) -> None:
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        return
    if mode & 0o077:
        log.warning("journal file %s was readable by other users (%o): now 0600", path, mode)
        path.chmod(0o600)


class Journal:
    def __init__(self, path: str, wall_clock: Callable[[], float] = time.time):
        _private_file(Path(path))
        self._db = sqlite3.connect(path, check_same_thread=False, timeout=1)
        try:
            # Deleted rows (received texts) are overwritten, not just unlinked from the tree.
            self._db.execute("PRAGMA secure_delete=ON")
            # Held until close: a second bridge on the same file would take the first
            # one's sends in progress for interrupted ones.
            self._db.execute("PRAGMA locking_mode=EXCLUSIVE")
            self._db.execute("PRAGMA journal_mode=WAL")
            # A recorded "sent" must survive a power cut, or the SMS could be sent again.
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript("BEGIN EXCLUSIVE;" + SCHEMA + "COMMIT;")
            self._add_missing_columns()
            # SQLite creates -wal and -shm with the db file's mode; older ones are tightened.
            for suffix in ("-wal", "-shm"):
                _tighten(Path(path + suffix))
        except sqlite3.OperationalError as error:
            self._db.close()
            raise JournalInUse(f"journal {path} is in use by another bridge ({error})") from None
        self._lock = threading.Lock()
        self._wall_clock = wall_clock

    def _add_missing_columns(self) -> None:
        """Journals written by a bridge before protocol version 3 have no claim column."""
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(outbound)")}
        if "claim" not in columns:
            with self._db:
                self._db.execute("ALTER TABLE outbound ADD COLUMN claim TEXT")

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """One thread at a time; commits on success, rolls back on error."""
        with self._lock, self._db:
            yield self._db

    # ------------------------------------------------------------------ outbound

    def outbound(self, sqs_message_id: str) -> OutboundEntry | None:
        with self._transaction() as db:
            row = db.execute(
                "SELECT sqs_message_id, message_id, state FROM outbound WHERE sqs_message_id = ?",
                (sqs_message_id,),
            ).fetchone()
        return OutboundEntry(*row) if row else None

    def live_copy(self, message_id: str, sqs_message_id: str) -> OutboundEntry | None:
        """Another queue copy of ``message_id`` (an outbox sweep or an SDK retry queues one
        more) that this bridge is sending, will retry, or sent: this copy must not go too.
        A copy that failed or expired does not count: the message may have been resent."""
        with self._transaction() as db:
            row = db.execute(
                "SELECT sqs_message_id, message_id, state FROM outbound WHERE message_id = ? "
                "AND sqs_message_id != ? AND state IN ('sending', 'retry', 'sent', 'delivered')",
                (message_id, sqs_message_id),
            ).fetchone()
        return OutboundEntry(*row) if row else None

    def begin_send(self, sqs_message_id: str, message_id: str, claim: str | None = None) -> int:
        """Record that the SMS is about to go to the driver; returns the attempt number."""
        with self._transaction() as db:
            db.execute(
                "INSERT INTO outbound (sqs_message_id, message_id, state, attempts, updated_at, "
                "claim) VALUES (?, ?, 'sending', 1, ?, ?) ON CONFLICT (sqs_message_id) DO UPDATE "
                "SET state = 'sending', attempts = attempts + 1, updated_at = excluded.updated_at, "
                "claim = coalesce(excluded.claim, claim)",
                (sqs_message_id, message_id, self._wall_clock(), claim),
            )
            return db.execute(
                "SELECT attempts FROM outbound WHERE sqs_message_id = ?", (sqs_message_id,)
            ).fetchone()[0]

    def record_retry(self, sqs_message_id: str, reason: str) -> None:
        """The phone refused the SMS with a temporary error: sending it again is safe."""
        with self._transaction() as db:
            db.execute(
                "UPDATE outbound SET state = 'retry', reason = ?, updated_at = ? "
                "WHERE sqs_message_id = ?",
                (reason, self._wall_clock(), sqs_message_id),
            )

    def record_outcome(
        self,
        sqs_message_id: str,
        message_id: str,
        state: str,
        *,
        reason: str | None = None,
        segments: int | None = None,
        references: tuple = (),
        at: datetime | None = None,
        claim: str | None = None,
        sim_slot: int | None = None,
    ) -> None:
        """Settle a message and queue its status for the API (``skipped`` is not posted);
        ``sim_slot``: the line a sent SMS left from, said in its ``sent`` report."""
        with self._transaction() as db:
            db.execute(
                "INSERT INTO outbound (sqs_message_id, message_id, state, segments, reason, "
                "updated_at, claim) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (sqs_message_id) "
                "DO UPDATE SET state = excluded.state, segments = excluded.segments, "
                "reason = excluded.reason, updated_at = excluded.updated_at, "
                "claim = coalesce(excluded.claim, claim)",
                (sqs_message_id, message_id, state, segments, reason, self._wall_clock(), claim),
            )
            (claim,) = db.execute(
                "SELECT claim FROM outbound WHERE sqs_message_id = ?", (sqs_message_id,)
            ).fetchone()
            db.executemany(
                "INSERT OR REPLACE INTO segment (reference, sqs_message_id) VALUES (?, ?)",
                [(str(reference), sqs_message_id) for reference in references],
            )
            if state != "skipped":
                self._queue_status(db, message_id, state, reason, segments, at, claim, sim_slot)

    def interrupted_sends(self) -> list[OutboundEntry]:
        """Messages handed to the driver by a bridge that died before recording the outcome."""
        with self._transaction() as db:
            rows = db.execute(
                "SELECT sqs_message_id, message_id, state FROM outbound WHERE state = 'sending'"
            ).fetchall()
        return [OutboundEntry(*row) for row in rows]

    def record_delivery(
        self, reference: str, delivered: bool, detail: str, at: datetime
    ) -> str | None:
        """Apply a delivery report; returns the messageId it belongs to, None if unknown.

        A message is ``delivered`` once every segment is, ``failed`` as soon as one is not.
        """
        with self._transaction() as db:
            row = db.execute(
                "SELECT s.sqs_message_id, o.message_id, o.state, o.claim FROM segment s "
                "JOIN outbound o USING (sqs_message_id) WHERE s.reference = ?",
                (str(reference),),
            ).fetchone()
            if row is None:
                return None
            sqs_message_id, message_id, state, claim = row
            db.execute(
                "UPDATE segment SET delivered = ? WHERE reference = ?",
                (int(delivered), str(reference)),
            )
            total, arrived, lost = db.execute(
                "SELECT count(*), sum(delivered = 1), sum(delivered = 0) FROM segment "
                "WHERE sqs_message_id = ?",
                (sqs_message_id,),
            ).fetchone()
            if state != "sent" or (not lost and arrived < total):
                return message_id
            new_state, reason = (
                ("failed", f"not delivered: {detail or 'no detail'}")
                if lost
                else ("delivered", None)
            )
            db.execute(
                "UPDATE outbound SET state = ?, reason = ?, updated_at = ? "
                "WHERE sqs_message_id = ?",
                (new_state, reason, self._wall_clock(), sqs_message_id),
            )
            self._queue_status(db, message_id, new_state, reason, None, at, claim)
            return message_id

    # ------------------------------------------------------------------ status posts

    @staticmethod
    def _queue_status(db, message_id, status, reason, segments, at, claim, sim_slot=None) -> None:
        body = protocol.status_report(
            status, reason=reason, segments=segments, at=at, claim=claim, sim_slot=sim_slot
        )
        db.execute(
            "INSERT INTO status_post (message_id, body) VALUES (?, ?)",
            (message_id, json.dumps(body)),
        )

    def pending_posts(self, limit: int) -> list[PendingPost]:
        with self._transaction() as db:
            rows = db.execute(
                "SELECT id, message_id, body FROM status_post ORDER BY id LIMIT ?", (limit,)
            ).fetchall()
        return [PendingPost(id_, message_id, json.loads(body)) for id_, message_id, body in rows]

    def post_done(self, post_id: int) -> None:
        with self._transaction() as db:
            db.execute("DELETE FROM status_post WHERE id = ?", (post_id,))

    # ------------------------------------------------------------------ inbound

    def add_inbound(self, sms: InboundSms) -> None:
        body = protocol.inbound_sms(
            sms.sender, sms.text, sms.device_ref, sms.received_at, sms.sim_slot
        )
        with self._transaction() as db:
            db.execute(
                "INSERT OR IGNORE INTO inbound (device_ref, body) VALUES (?, ?)",
                (sms.device_ref, json.dumps(body)),
            )

    def pending_inbound(self, limit: int) -> list[dict]:
        with self._transaction() as db:
            rows = db.execute(
                "SELECT body FROM inbound WHERE rejected IS NULL ORDER BY rowid LIMIT ?", (limit,)
            ).fetchall()
        return [json.loads(body) for (body,) in rows]

    def inbound_done(self, device_ref: str) -> None:
        with self._transaction() as db:
            db.execute("DELETE FROM inbound WHERE device_ref = ?", (device_ref,))
        self._forget_old_frames()

    def _forget_old_frames(self) -> None:
        """Copy the WAL into the db and empty it: its older frames still hold deleted texts."""
        with self._lock:
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def inbound_rejected(self, device_ref: str, why: str) -> None:
        with self._transaction() as db:
            db.execute("UPDATE inbound SET rejected = ? WHERE device_ref = ?", (why, device_ref))

    # ------------------------------------------------------------------ lines (SIM guard)

    def record_line_send(self, slot: int, recipient: str, parts: int, at: float) -> None:
        """A send through line ``slot`` went through: counted, and its pauses in a row end."""
        with self._transaction() as db:
            db.execute("INSERT INTO line_send VALUES (?, ?, ?, ?)", (slot, at, recipient, parts))
            db.execute(
                "INSERT INTO line_state (slot, first_send_at) VALUES (?, ?) "
                "ON CONFLICT (slot) DO UPDATE SET pauses = 0, "
                "first_send_at = COALESCE(first_send_at, excluded.first_send_at)",
                (slot, at),
            )

    def line_sends(self, slot: int, since: float) -> list[tuple[float, int]]:
        """(time, parts) of the line's sends after ``since``, oldest first."""
        with self._transaction() as db:
            return db.execute(
                "SELECT at, parts FROM line_send WHERE slot = ? AND at > ? ORDER BY at",
                (slot, since),
            ).fetchall()

    def line_parts(self, slot: int, since: float) -> int:
        """SMS parts the line sent after ``since``."""
        with self._transaction() as db:
            return db.execute(
                "SELECT COALESCE(SUM(parts), 0) FROM line_send WHERE slot = ? AND at > ?",
                (slot, since),
            ).fetchone()[0]

    def line_recipients(self, slot: int, since: float) -> set[str]:
        with self._transaction() as db:
            rows = db.execute(
                "SELECT DISTINCT recipient FROM line_send WHERE slot = ? AND at > ?",
                (slot, since),
            )
            return {row[0] for row in rows}

    def line_state(self, slot: int) -> LineState:
        with self._transaction() as db:
            row = db.execute(
                "SELECT first_send_at, paused_until, pause_reason, pauses FROM line_state "
                "WHERE slot = ?",
                (slot,),
            ).fetchone()
        return LineState(*row) if row else LineState()

    def save_line_pause(self, slot: int, until: float, reason: str, pauses: int) -> None:
        with self._transaction() as db:
            db.execute(
                "INSERT INTO line_state (slot, paused_until, pause_reason, pauses) "
                "VALUES (?, ?, ?, ?) ON CONFLICT (slot) DO UPDATE SET "
                "paused_until = excluded.paused_until, pause_reason = excluded.pause_reason, "
                "pauses = excluded.pauses",
                (slot, until, reason, pauses),
            )

    # ------------------------------------------------------------------ housekeeping

    def prune(self, retention_seconds: float) -> int:
        """Forget settled messages older than the retention; returns how many."""
        cutoff = self._wall_clock() - retention_seconds
        with self._transaction() as db:
            removed = db.execute(
                "DELETE FROM outbound WHERE updated_at < ? AND state != 'sending' "
                "AND message_id NOT IN (SELECT message_id FROM status_post)",
                (cutoff,),
            ).rowcount
            db.execute(
                "DELETE FROM segment WHERE sqs_message_id NOT IN "
                "(SELECT sqs_message_id FROM outbound)"
            )
            db.execute(
                "DELETE FROM line_send WHERE at < ?",
                (self._wall_clock() - LINE_SEND_RETENTION,),
            )
        return removed
