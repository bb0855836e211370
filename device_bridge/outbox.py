"""The outbox: what the journal holds for the API (statuses, then received SMS), posted on a
thread of its own, several at once.

A bank of 16 lines reports about two statuses a second per line (``sent``, then
``delivered``): posted one at a time from the main loop, 100 ms away from the API, they
would fall behind and hold up the sends. Here up to ``parallel`` posts are in flight at
once, each started as soon as there is room: the oldest pending status of each message (a
message's own statuses go one after the other, in order), and received SMS.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait

from .journal import Journal, PendingPost
from .lines import Backoff
from .transport import ApiClient, ApiRejected, ApiUnavailable

log = logging.getLogger("chinqit.bridge")

BATCH = 50  # pending posts read from the journal per look


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
        self._parallel = parallel
        self._idle_wait = idle_wait
        self._pool = ThreadPoolExecutor(parallel, thread_name_prefix="outbox-post")
        self._in_flight: dict[str, Future] = {}  # "status:<messageId>" or "inbound:<deviceRef>"
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="outbox", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def wake(self) -> None:
        """Something new is in the journal for the API."""
        self._wake.set()

    def stop(self) -> None:
        """End the thread, then post what is left (a failure leaves it for the next start)."""
        self._stopping.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join()
        self.drain()
        self._pool.shutdown()

    def drain(self) -> None:
        """Post until nothing is pending or the API cannot be reached."""
        while self.backoff.ready() and self._start_posts():
            wait(self._posts_in_flight())
        wait(self._posts_in_flight())

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                if self.backoff.ready():
                    self._start_posts()
            except Exception:  # noqa: BLE001 - a journal bug must not end the outbox
                log.exception("outbox: reading the journal failed unexpectedly; going on")
                self._stopping.wait(1.0)
            self._wake.wait(self._idle_wait)
            self._wake.clear()

    def _posts_in_flight(self) -> list[Future]:
        with self._lock:
            return list(self._in_flight.values())

    def _start_posts(self) -> int:
        """Start posting what is pending and not in flight, as long as fewer than
        ``parallel`` posts are: the oldest status of each message (its next one waits for
        it, so they arrive in order), then received SMS. Returns how many started."""
        started = 0
        for post in self.journal.pending_posts(BATCH):
            started += self._start(f"status:{post.message_id}", self._post_status, post)
        for body in self.journal.pending_inbound(BATCH):
            started += self._start(f"inbound:{body['deviceRef']}", self._post_inbound, body)
        return started

    def _start(self, key: str, post: Callable, item: object) -> int:
        with self._lock:
            if key in self._in_flight or len(self._in_flight) >= self._parallel:
                return 0
            future = self._pool.submit(self._guarded, post, item)
            self._in_flight[key] = future
        future.add_done_callback(lambda _: self._landed(key))
        return 1

    def _landed(self, key: str) -> None:
        with self._lock:
            self._in_flight.pop(key, None)
        self._wake.set()  # room for the next post, or the next status of this message

    def _guarded(self, post: Callable, item: object) -> None:
        try:
            post(item)
        except ApiUnavailable as error:
            self._unavailable(error)  # counted once per pause however many fail together
        except Exception:  # noqa: BLE001 - kept in the journal, tried again after a pause
            log.exception("outbox: a post failed unexpectedly")
            self._stopping.wait(1.0)

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

    def _post_inbound(self, body: dict) -> None:
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
