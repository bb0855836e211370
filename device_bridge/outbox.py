"""The outbox: what the journal holds for the API (statuses, then received SMS), posted on a
thread of its own, several at once.

A bank of 16 lines reports about two statuses a second per line (``sent``, then
``delivered``): posted one at a time from the main loop, 100 ms away from the API, they
would fall behind and hold up the sends. Here a round posts the oldest pending status of
each message at once (a message's own statuses still go in order), then received SMS.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from .journal import Journal, PendingPost
from .lines import Backoff
from .transport import ApiClient, ApiRejected, ApiUnavailable

log = logging.getLogger("chinqit.bridge")

BATCH = 50  # posts read from the journal per round


def outbox_parallel(ports: int) -> int:
    """Posts in flight at once for a device of ``ports`` ports: about one per port."""
    return max(2, min(16, ports))


class Outbox:
    def __init__(
        self,
        journal: Journal,
        api: ApiClient,
        backoff: Backoff,
        unavailable: Callable[[ApiUnavailable], None],
        parallel: int,
        idle_wait: float,
    ):
        """``backoff``: the API's, shared with the claims and heartbeats; ``unavailable``
        counts a failure in it and logs; ``parallel``: posts in flight at once at most;
        ``idle_wait``: seconds between looks at the journal when nobody wakes the outbox."""
        self.journal = journal
        self.api = api
        self.backoff = backoff
        self._unavailable = unavailable
        self._idle_wait = idle_wait
        self._pool = ThreadPoolExecutor(parallel, thread_name_prefix="outbox-post")
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="outbox", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def wake(self) -> None:
        """Something new is in the journal for the API."""
        self._wake.set()

    def stop(self) -> None:
        """End the thread, then post what is left once (a failure leaves it for the next
        start)."""
        self._stopping.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join()
        self.flush()
        self._pool.shutdown()

    def flush(self) -> None:
        """Post until nothing is pending or the API cannot be reached."""
        try:
            while self.backoff.ready() and self._post_statuses() | self._post_inbound():
                pass
        except ApiUnavailable as error:
            self._unavailable(error)

    def _run(self) -> None:
        while not self._stopping.is_set():
            self._wake.wait(self._idle_wait)
            self._wake.clear()
            try:
                self.flush()
            except Exception:  # noqa: BLE001 - a journal or payload bug must not end the outbox
                log.exception("outbox: posting failed unexpectedly; going on")
                self._stopping.wait(1.0)

    def _post_statuses(self) -> bool:
        """One round: the oldest pending status of each message; False when none is."""
        firsts: dict[str, PendingPost] = {}
        for post in self.journal.pending_posts(BATCH):
            firsts.setdefault(post.message_id, post)
        for _ in self._pool.map(self._post_status, firsts.values()):
            pass  # the first ApiUnavailable is raised here
        return bool(firsts)

    def _post_inbound(self) -> bool:
        bodies = self.journal.pending_inbound(BATCH)
        for _ in self._pool.map(self._post_one_inbound, bodies):
            pass
        return bool(bodies)

    def _post_status(self, post: PendingPost) -> None:
        try:
            self.api.post_status(post.message_id, post.body)
        except ApiRejected as error:  # 404: unknown message; 400: a bug. Neither heals.
            log.error(
                "API refused status %s of message %s (%s); dropped",
                post.body["status"],
                post.message_id,
                error,
            )
        self.backoff.succeeded()
        self.journal.post_done(post.id)

    def _post_one_inbound(self, body: dict) -> None:
        device_ref = body["deviceRef"]
        try:
            answer = self.api.post_inbound(body)
        except ApiRejected as error:
            log.error(
                "API refused received SMS %s (%s); kept in the journal, not reposted",
                device_ref,
                error,
            )
            self.journal.inbound_rejected(device_ref, str(error))
        else:
            log.info(
                "received SMS %s stored as message %s%s",
                device_ref,
                answer.get("messageId"),
                " (already stored)" if answer.get("duplicate") else "",
            )
            self.journal.inbound_done(device_ref)
        self.backoff.succeeded()
