"""Deleting settled messages from SQS, on a thread of its own, up to ten to a call.

A message's SQS copy goes once its outcome is journaled. Deleted from the main loop, each
DeleteMessageBatch held up every line waiting for its next SMS for a round trip to SQS (about
100 ms from Nouakchott to eu-west-1), and a bank of 16 lines, whose sends end one by one,
made nearly one call per SMS. Here the main loop hands the copies over and goes on, and a
copy waits up to ``linger`` seconds for others to share its call.

A copy not deleted (SQS unreachable, the bridge stopped or killed meanwhile) comes back
after its visibility timeout: the journal knows it is settled, and the API would refuse
another bridge's claim, so it is deleted then, never sent again.
"""

from __future__ import annotations

import logging
import threading
import time

from .transport import SQS_BATCH_LIMIT, SqsQueue

log = logging.getLogger("chinqit.bridge")

LINGER = 0.5  # seconds a settled copy waits for others to fill its DeleteMessageBatch


class Deletes:
    def __init__(self, linger: float = LINGER):
        self._linger = linger
        self._pending: dict[SqsQueue, dict[str, str]] = {}  # queue -> receipt -> message id
        self._oldest = 0.0  # time.monotonic() when the oldest pending copy was added
        self._changed = threading.Condition()
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="sqs-deletes", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def add(self, queue: SqsQueue, settled: dict[str, str]) -> None:
        """Delete these copies (receipt -> message id) from ``queue`` soon; never blocks."""
        if not settled:
            return
        with self._changed:
            if not self._pending:
                self._oldest = time.monotonic()
            self._pending.setdefault(queue, {}).update(settled)
            self._changed.notify()

    def stop(self) -> None:
        """Delete what is pending now, then end the thread."""
        with self._changed:
            self._stopping = True
            self._changed.notify()
        if self._thread.is_alive():
            self._thread.join()
        else:
            self._delete(self._take())

    def _run(self) -> None:
        while True:
            with self._changed:
                self._changed.wait_for(lambda: self._pending or self._stopping)
                waited = time.monotonic() - self._oldest
                self._changed.wait_for(self._due, timeout=max(0.0, self._linger - waited))
                stopping, batch = self._stopping, self._take()
            try:
                self._delete(batch)
            except Exception:  # noqa: BLE001 - a bug here must not end the deletes for good
                log.exception("deletes: deleting %d queue(s)' copies failed", len(batch))
            if stopping:
                return

    def _due(self) -> bool:
        """A call is full, or the bridge stops: no reason to wait for more copies."""
        return self._stopping or any(
            len(settled) >= SQS_BATCH_LIMIT for settled in self._pending.values()
        )

    def _take(self) -> dict[SqsQueue, dict[str, str]]:
        taken, self._pending = self._pending, {}
        return taken

    @staticmethod
    def _delete(batch: dict[SqsQueue, dict[str, str]]) -> None:
        """One call per ten copies; a call that fails leaves its copies to come back, and
        the next call is still made."""
        for queue, settled in batch.items():
            receipts = list(settled)
            for start in range(0, len(receipts), SQS_BATCH_LIMIT):
                chunk = receipts[start : start + SQS_BATCH_LIMIT]
                try:
                    refused = queue.delete(chunk)
                except Exception as error:  # noqa: BLE001 - the journal knows they are settled
                    log.warning(
                        "cannot delete %d message(s) from %s (%s)", len(chunk), queue.name, error
                    )
                    continue
                for receipt in refused:
                    log.warning(
                        "SQS refused to delete message %s; its redelivery will not be sent",
                        settled[receipt],
                    )
