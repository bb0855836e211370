"""The bridge's loop: SQS -> phone network, phone -> API, with the journal in between.

Threads: one poller per queue fills the hand (messages received and not yet settled); a
keeper extends their SQS visibility; one thread per port (a driver: a modem, a phone; see
device_bridge.lines) claims each SMS at the API, sends it and reads the phone, so the lines
of a SIM bank send in parallel and each driver is only ever called from its own thread;
the outbox (device_bridge.outbox) posts statuses and received SMS; another thread
(device_bridge.deletes) deletes settled messages from SQS; the main thread (``run`` /
``run_until``) does the rest: it picks a line for each SMS, journals outcomes and sends
heartbeats.

Per message: settled already in the journal -> delete the redelivered copy; past
``sendBefore`` -> ``expired``; otherwise wait for a send token, post ``sending`` (the
API's answer tells whether another bridge already settled it), journal ``sending``, hand
it to the driver, journal the outcome and queue its status post, and only then delete it
from SQS. Status posts and received SMS live in the journal until the API acknowledges
them, so nothing is lost while the API is unreachable.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from functools import cached_property
from queue import SimpleQueue

from chalicelib.wire import protocol
from chalicelib.wire.sms_encoding import analyze

from . import __version__, drivers
from .config import BridgeConfig, LineSpec
from .deletes import Deletes
from .drivers.base import (
    DeliveryReport,
    Driver,
    InboundSms,
    OutboundSms,
    SendError,
)
from .guard import SimGuard
from .journal import SETTLED, Journal
from .lines import Backoff, Line, NotClaimed, PhoneEvents, Port, Sent, TokenBucket
from .outbox import Outbox, outbox_parallel
from .transport import (
    SQS_BATCH_LIMIT,
    ApiClient,
    ApiRejected,
    ApiUnavailable,
    DeviceKeyCredentials,
    Received,
    SqsQueue,
    sqs_client,
)

# A bridge that died between handing an SMS to the phone and journaling the outcome cannot
# tell whether it left. Resending risks a duplicate (an OTP twice); reporting "sent" could
# hide an SMS that never left. "failed" says what is known, and the integrator decides.
INTERRUPTED = "bridge restarted during send, not resent"
PREFETCH_SECONDS = 20.0
UNFORESEEN_PAUSE = 1.0  # seconds after an unforeseen failure, so a persistent one cannot spin
PRUNE_EVERY = 3600.0  # seconds between journal clean-ups
# Messages in hand while no line can take any (all paused, capped or down) go back to the
# queue after this long, for other bridges; no more are taken until a line is back.
BLOCKED_RELEASE = 120.0
RECEIVE_BURST = 4  # receives at once, at most, while lines wait for SMS (see _receive)

log = logging.getLogger("chinqit.bridge")


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(eq=False)
class Job:
    """An outbound SMS received from SQS, held (visibility extended) until it is settled."""

    queue: SqsQueue
    priority: bool
    received: Received
    message_id: str
    to: str
    text: str = field(repr=False)  # OTP codes travel in it: never logged
    send_before: datetime | None = None
    claim: str | None = field(default=None, repr=False)  # proof of receipt for the API
    sim_slot: int | None = None  # the SIM the sender asked for
    visible_until: float = 0.0  # time.monotonic() when SQS would hand it to another bridge
    retry_at: float = 0.0  # agent clock: a refused SMS waits until then
    lost: bool = False  # SQS refused to extend its visibility: another bridge may have it
    in_flight: bool = False  # handed to a port, its outcome not back yet
    attempt: int = 0  # of the send in flight

    @cached_property
    def segments(self) -> int:
        return analyze(self.text).segments

    def renew(self, again: Job) -> None:
        """SQS delivered this message again (our hold lapsed, e.g. while the host slept):
        only the newest receipt can delete or extend it."""
        self.received, self.visible_until, self.lost = again.received, again.visible_until, False

    @classmethod
    def parse(
        cls, queue: SqsQueue, priority: bool, received: Received, visible_until: float
    ) -> Job:
        """Raises protocol.WireError when the body is not an outbound SMS this bridge reads."""
        sms = protocol.OutboundSms.from_json(received.body)
        return cls(
            queue,
            priority,
            received,
            sms.message_id,
            sms.to,
            sms.text,
            sms.send_before,
            sms.claim,
            sms.sim_slot,
            visible_until,
        )


class Hand:
    """Messages received and not yet settled: buffered, waiting to retry, or being sent.

    The next one to send is a priority (OTP) message if one is ready, and among those of
    the same class, one of the account (SQS message group) served least recently: one
    tenant's backlog in hand delays another's SMS by at most one send per busy account.
    """

    def __init__(self):
        self._jobs: list[Job] = []
        self._served: dict[str | None, int] = {}  # message group -> turn it was last served
        self._turns = 0
        # Condition's default RLock lets a signal handler wake the main thread safely.
        self._changed = threading.Condition()

    def add(self, jobs: Iterable[Job]) -> None:
        with self._changed:
            held = {job.received.sqs_id: job for job in self._jobs}
            for job in jobs:
                if job.received.sqs_id in held:
                    held[job.received.sqs_id].renew(job)
                else:
                    self._jobs.append(job)
            self._changed.notify_all()

    def discard(self, job: Job) -> None:
        with self._changed:
            self._jobs.remove(job)
            self._changed.notify_all()

    def take_all(self) -> list[Job]:
        with self._changed:
            jobs, self._jobs = self._jobs, []
            return jobs

    def take_waiting(self) -> list[Job]:
        """The messages not being sent now, taken out of the hand."""
        with self._changed:
            waiting = [job for job in self._jobs if not job.in_flight]
            self._jobs = [job for job in self._jobs if job.in_flight]
            return waiting

    def snapshot(self) -> list[Job]:
        with self._changed:
            return list(self._jobs)

    def count(self, queue: SqsQueue | None = None, waiting: bool = False) -> int:
        """Messages in hand (from ``queue``; ``waiting``: those not being sent now)."""
        with self._changed:
            return sum(
                1
                for job in self._jobs
                if (queue is None or job.queue is queue) and not (waiting and job.in_flight)
            )

    def ready(self, now: float) -> list[Job]:
        """Messages ready to go, in the order they should: priority messages first, the
        least recently served account's first, then the oldest."""
        with self._changed:
            ready = [job for job in self._jobs if job.retry_at <= now and not job.in_flight]
            return sorted(
                ready,
                key=lambda job: (not job.priority, self._served.get(job.received.group, -1)),
            )

    def served(self, job: Job) -> None:
        """``job``'s account had its turn: the others go first next time."""
        with self._changed:
            self._turns += 1
            self._served[job.received.group] = self._turns

    def wait(self, timeout: float, unless: Callable[[], bool] = lambda: False) -> None:
        """Until woken or ``timeout``; not at all if ``unless()`` holds (checked under the
        lock its wakers take, so a wake-up between the check and the wait is not missed)."""
        with self._changed:
            if not unless():
                self._changed.wait(timeout)

    def wake(self) -> None:
        with self._changed:
            self._changed.notify_all()


class Agent:
    """One bridge: its phones (``driver``, or one driver per line of a SIM bank), its
    journal, the two queues and the API."""

    def __init__(
        self,
        config: BridgeConfig,
        driver: Driver | list[Driver],
        journal: Journal,
        queues: dict[str, SqsQueue],
        api: ApiClient,
        clock: Callable[[], float] = time.monotonic,
    ):
        """``driver``: the device's driver, or for a bank (config.bank) one driver per
        [[line]], in slot order. ``queues`` maps "priority" and "bulk" to their queue;
        ``clock`` paces sends, retries and heartbeats (SQS visibility and the ports'
        reads of the phone run on real time)."""
        self.config = config
        self.journal = journal
        self.queues = queues
        self.api = api
        self.clock = clock
        self.hand = Hand()
        self._stopping = threading.Event()
        self._completions: SimpleQueue = SimpleQueue()
        self.deletes = Deletes()  # settled messages' SQS copies
        self._dispatched = False  # an SMS went to a line this turn
        self.ports, self.lines = self._lines(driver)
        # Held per queue: what the lines send in PREFETCH_SECONDS at their pace, at least 1,
        # at most max_buffered per line. A slow SIM does not sit on messages other bridges
        # could send, nor hand them back (each handing back counts towards the dead-letter
        # queue).
        buckets = {id(line.bucket): line for line in self.lines}.values()
        pace = sum(line.settings.sends_per_minute for line in buckets)
        self.prefetch = max(
            1,
            min(
                config.max_buffered * len(buckets),
                math.ceil(pace * PREFETCH_SECONDS / 60),
            ),
        )
        self.api_backoff = Backoff(config.backoff_max, clock)
        self.outbox = Outbox(
            journal,
            api,
            self.api_backoff,
            self._api_unavailable,
            parallel=outbox_parallel(len(self.ports)),
            idle_wait=config.poll_interval,
        )
        self._accepting = True  # some line can take SMS: the pollers receive
        self._blocked_since: float | None = None
        self._next_heartbeat = self._next_prune = clock()
        self._released = threading.Event()
        self._pollers: dict[str, Poller] = {}
        self._retired: list[Poller] = []  # stopped, maybe still in their last long poll
        self._start_pollers = False
        for kind, queue in queues.items():
            self._add_poller(kind, queue)
        self._keeper = threading.Thread(target=self._keep_visible, name="visibility", daemon=True)

    def _lines(self, driver: Driver | list[Driver]) -> tuple[list[Port], list[Line]]:
        config = self.config
        if config.bank:
            assert isinstance(driver, list) and len(driver) == len(config.bank)
            ports = [
                self._port(f"line{spec.slot}", each)
                for spec, each in zip(config.bank, driver, strict=True)
            ]
            lines = [
                self._line(port, spec.slot, spec.line, None, config.for_line(spec))
                for spec, port in zip(config.bank, ports, strict=True)
            ]
            return ports, lines
        assert not isinstance(driver, list)
        port = self._port(config.driver or driver.name, driver)
        bucket = TokenBucket(config.sends_per_minute, config.send_burst, self.clock)
        configured = list(config.lines) or [None]
        lines = [
            self._line(
                port, None if each is None else each.slot, each, each and each.slot, config, bucket
            )
            for each in configured
        ]
        return [port], lines

    def _port(self, name: str, driver: Driver) -> Port:
        return Port(name, driver, self._completed, self._claimed, self.config, self._stopping)

    def _line(self, port, slot, reported, driver_slot, settings, bucket=None) -> Line:
        bucket = bucket or TokenBucket(settings.sends_per_minute, settings.send_burst, self.clock)
        guard = SimGuard(slot or 0, settings, self.journal)
        line = Line(slot, reported, port, driver_slot, settings, bucket, guard)
        port.lines.append(line)
        return line

    def _completed(self, item: object) -> None:
        """From a port's thread: an outcome or phone events for the main thread."""
        self._completions.put((self.clock(), item))  # pauses count from the outcome
        self.hand.wake()

    @property
    def driver(self) -> Driver:
        """The driver of a device of one port."""
        return self.ports[0].driver

    @classmethod
    def build(
        cls,
        config: BridgeConfig,
        driver: Driver | list[Driver] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> Agent:
        """``driver`` None: the drivers the configuration names (ValueError, TypeError:
        a driver's options are wrong)."""
        if driver is None:
            driver = (
                bank_drivers(config.bank)
                if config.bank
                else drivers.load(config.driver, **config.driver_options)
            )
        ports = len(config.bank) or 1
        api = ApiClient(
            config.api_url,
            config.device_key,
            config.api_timeout,
            user_agent=f"chinqit-device-bridge/{__version__}",
            ca_bundle=config.ca_bundle,
            # the ports' claims, the outbox's posts, the main loop's heartbeats
            connections=ports + outbox_parallel(ports) + 1,
        )
        names = config.queues
        if config.aws_credentials == "device":
            first = _first_credentials(api)  # the API names this device's queues too
            credentials = DeviceKeyCredentials(api.credentials, first)
            sqs = sqs_client(
                config.wait_time_seconds, credentials, first["region"], config.ca_bundle
            )
            names = first["queues"]
        else:
            sqs = sqs_client(config.wait_time_seconds, ca_bundle=config.ca_bundle)
        queues = {kind: SqsQueue(sqs, name) for kind, name in names.items()}
        return cls(config, driver, Journal(config.journal), queues, api, clock)

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        """Open the phones, settle sends a previous run left unfinished, start receiving.

        A device of one phone that cannot be opened raises DriverError; a line of a bank
        starts down and keeps trying, while the others work."""
        for port in self.ports:
            port.open(strict=not self.config.bank)
        for port in self.ports:
            port.start()
        self._settle_interrupted_sends()
        self._start_pollers = True
        for poller in self._pollers.values():
            poller.thread.start()
        self._keeper.start()
        self.deletes.start()
        self.outbox.start()

    def run(self) -> None:
        """Work until stop() (SIGTERM, SIGINT), then shut down cleanly."""
        self.start()
        try:
            self.run_until(lambda: False)
        finally:
            self.shutdown()

    def run_until(self, done: Callable[[], bool], timeout: float | None = None) -> None:
        """Turn the loop until ``done()`` or stop(); for tests and benches, after start()."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not done() and not self._stopping.is_set():
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"condition not met within {timeout} s")
            self.step()

    def stop(self) -> None:
        """Ask the loop to stop after the current step; safe from a signal handler."""
        self._stopping.set()
        self.hand.wake()

    def shutdown(self) -> None:
        """Stop receiving, give back every message not settled, close the phone."""
        self.stop()
        for poller in [*self._pollers.values(), *self._retired]:
            poller.stop()  # at most one long poll; what it brings is released below
        for port in self.ports:
            port.stop()  # the SMS being sent is finished, then the driver closed
        self._take_completions()
        self._release(self.hand.take_all())
        self._released.set()
        self._keeper.join()
        self.deletes.stop()
        self.outbox.stop()  # reports the last outcomes now rather than at the next start
        self.journal.close()

    def _settle_interrupted_sends(self) -> None:
        for entry in self.journal.interrupted_sends():
            log.warning(
                "message %s was being sent when the bridge stopped: reported failed, not resent",
                entry.message_id,
            )
            self.journal.record_outcome(
                entry.sqs_message_id, entry.message_id, "failed", reason=INTERRUPTED, at=_utcnow()
            )

    # ------------------------------------------------------------------ receiving (threads)

    def _add_poller(self, kind: str, queue: SqsQueue) -> None:
        poller = Poller(queue, kind.endswith("priority"), self._poll)
        self._pollers[kind] = poller
        self.queues[kind] = queue
        if self._start_pollers:
            poller.thread.start()

    def _follow_pool(self, named: dict[str, str]) -> None:
        """Poll the queues the API names now: an operator assigned this device to an
        account or back to the shared pool. No restart: fresh credentials (their session
        policy covers the new queues) and a poller per new queue; pollers of queues no
        longer named stop, and what they hold is refused by the API (404) and released."""
        if named == {kind: queue.name for kind, queue in self.queues.items()}:
            return
        answer = self.api.credentials()
        sqs = sqs_client(
            self.config.wait_time_seconds,
            DeviceKeyCredentials(self.api.credentials, answer),
            region=answer["region"],
            ca_bundle=self.config.ca_bundle,
        )
        named = answer["queues"]
        for kind in [k for k, queue in self.queues.items() if named.get(k) != queue.name]:
            self._retired.append(self._pollers.pop(kind))
            self._retired[-1].stop(wait=False)
            log.info("no longer polling %s (%s queue)", self.queues.pop(kind).name, kind)
        for kind in named.keys() - self.queues.keys():
            self._add_poller(kind, SqsQueue(sqs, named[kind]))
            log.info("now polling %s (%s queue)", named[kind], kind)

    def _poll(self, queue: SqsQueue, priority: bool, stopped: threading.Event) -> None:
        backoff = Backoff(self.config.backoff_max, self.clock)
        backlog = True  # the queue may hold many: the first receive is a burst
        with ThreadPoolExecutor(RECEIVE_BURST, thread_name_prefix=f"poll-{queue.name}") as burst:
            while not self._stopping.is_set() and not stopped.is_set():
                room = self.prefetch - self.hand.count(queue)
                if room <= 0 or not self._accepting:
                    self.hand.wait(self.config.poll_interval)
                    continue
                visible_until = time.monotonic() + self.config.visibility_timeout
                received = 0
                try:
                    for batch in self._receive(queue, room, backlog, burst):
                        received += len(batch)
                        self.hand.add(self._jobs(queue, priority, batch, visible_until))
                except Exception as error:  # noqa: BLE001 - the poller must outlive any SQS trouble
                    pause = backoff.failed()
                    log.warning(
                        "cannot receive from %s (%s); retrying in %.0f s", queue.name, error, pause
                    )
                    self._stopping.wait(pause)
                    continue
                backoff.succeeded()
                backlog = received > 0
                if not received and self.config.wait_time_seconds == 0:
                    self._stopping.wait(self.config.poll_interval)  # short polling: do not spin

    def _receive(
        self, queue: SqsQueue, room: int, backlog: bool, burst: ThreadPoolExecutor
    ) -> Iterator[list[Received]]:
        """One long poll while the queue looks empty. While it has a backlog (the last receive
        brought some), as many short polls at once as it takes to give every line an SMS
        to send next (up to RECEIVE_BURST and the hand's room), each batch handed on as it
        comes: a bank of many lines starts, or catches up, in one round trip. Once the
        hand holds that much, one receive at a time: more at once would only compete with
        the lines' claims for the host and the connection pool."""
        timeout = self.config.visibility_timeout
        short = len(self.lines) - self.hand.count(waiting=True)
        at_once = min(RECEIVE_BURST, room // SQS_BATCH_LIMIT, math.ceil(short / SQS_BATCH_LIMIT))
        if not backlog or at_once <= 1:
            yield queue.receive(min(room, SQS_BATCH_LIMIT), self.config.wait_time_seconds, timeout)
            return
        receives = [
            burst.submit(queue.receive, SQS_BATCH_LIMIT, 0, timeout) for _ in range(at_once)
        ]
        failure = None
        for done in as_completed(receives):
            try:
                yield done.result()
            except Exception as error:  # noqa: BLE001 - the other batches are in hand first
                failure = failure or error
        if failure is not None:
            raise failure

    @staticmethod
    def _jobs(
        queue: SqsQueue, priority: bool, received: list[Received], visible_until: float
    ) -> list[Job]:
        jobs = []
        # A message that cannot be read is not extended, so SQS redelivers it until it lands
        # in the dead-letter queue.
        for message in received:
            try:
                jobs.append(Job.parse(queue, priority, message, visible_until))
            except protocol.UnsupportedVersion as error:
                log.error(
                    "SQS message %s on %s: %s; left to the dead-letter queue (upgrade this bridge)",
                    message.sqs_id,
                    queue.name,
                    error,
                )
            except protocol.WireError:
                log.error(
                    "SQS message %s on %s is not an outbound SMS; left to the dead-letter queue",
                    message.sqs_id,
                    queue.name,
                )
        return jobs

    def _keep_visible(self) -> None:
        # Real time, not self.clock: SQS counts the visibility timeout on its own clock.
        timeout = self.config.visibility_timeout
        while not self._released.wait(timeout / 6):
            now = time.monotonic()
            due = [
                job
                for job in self.hand.snapshot()
                if not job.lost and job.visible_until - now < timeout / 2
            ]
            for queue, jobs in _by_queue(due).items():
                self._extend(queue, jobs, timeout)

    def _extend(self, queue: SqsQueue, jobs: list[Job], timeout: int) -> None:
        started = time.monotonic()
        try:
            refused = queue.change_visibility([job.received.receipt for job in jobs], timeout)
        except Exception as error:  # noqa: BLE001 - retried at the next tick
            log.warning("cannot extend visibility on %s (%s)", queue.name, error)
            return
        for job in jobs:
            if job.received.receipt in refused:
                job.lost = True
                log.warning(
                    "message %s: SQS refused to extend its visibility; another bridge "
                    "may have it now",
                    job.message_id,
                )
            else:
                job.visible_until = started + timeout

    def _release(self, jobs: list[Job]) -> None:
        for queue, held in _by_queue(job for job in jobs if not job.lost).items():
            try:
                queue.change_visibility([job.received.receipt for job in held], 0)
                log.info("released %d message(s) back to %s", len(held), queue.name)
            except Exception as error:  # noqa: BLE001 - they come back after the timeout anyway
                log.warning("cannot release messages on %s (%s)", queue.name, error)

    # ------------------------------------------------------------------ the main loop

    def step(self) -> None:
        """One turn: what the ports did, an SMS to each free line, API posts,
        heartbeat; then, if no SMS went, a wait for something to do. A phase
        that fails in a way nobody foresaw is logged and the loop goes on: the bridge
        outlives any message, payload or driver bug."""
        for phase in (
            self._take_completions,
            self._dispatch,
            self.outbox.wake,
            self._heartbeat_if_due,
            self._prune_if_due,
            self._wait_if_idle,
        ):
            try:
                phase()
            except Exception:  # noqa: BLE001 - the loop must go on; the log has the trace
                log.exception("bridge: %s failed; going on", phase.__name__.strip("_"))
                self._stopping.wait(UNFORESEEN_PAUSE)

    def _dispatch(self) -> None:
        """Hand each ready SMS to a line that can take it, as long as lines are free."""
        now = self.clock()
        free = self._free_lines()
        self._dispatched = False
        for job in self.hand.ready(now):
            if not free:
                break
            if job.lost:
                self.hand.discard(job)
            elif self._settle_without_sending(job) or self._failed_unsendable(job):
                continue
            elif not self.api_backoff.ready():
                break  # nothing goes without the API's claim (see _claim): held
            elif (line := self._line_for(job, free)) is not None:
                self.hand.served(job)
                self._send(job, line)
                free.remove(line)
                self._dispatched = True

    def _wait_if_idle(self) -> None:
        """Until a port reports back, a message arrives, or a pace allows a send."""
        if not self._dispatched:
            self.hand.wait(self._idle_wait(), unless=lambda: not self._completions.empty())

    def _free_lines(self) -> list[Line]:
        """Lines that can send now: their port idle, their pace and guard allowing."""
        usable = [line for line in self.lines if line.hold() is None]
        self._note_blocked(not usable)
        return [line for line in usable if line.idle() and line.bucket.delay() == 0]

    def _idle_wait(self) -> float:
        delays = [line.bucket.delay() for line in self.lines if line.idle()]
        return min([self.config.poll_interval, *(d for d in delays if d > 0)])

    def _note_blocked(self, blocked: bool) -> None:
        """No line can take SMS: receive none, and after BLOCKED_RELEASE give back those
        held, for other bridges."""
        self._accepting = not blocked
        if not blocked:
            self._blocked_since = None
        elif self._blocked_since is None:
            self._blocked_since = self.clock()
            log.warning("no line can send now (paused, capped or down): not receiving")
        elif self.clock() - self._blocked_since > BLOCKED_RELEASE:
            held = self.hand.take_waiting()
            if held:
                self._release(held)
            self._blocked_since = self.clock()

    def _settle_without_sending(self, job: Job) -> bool:
        entry = self.journal.outbound(job.received.sqs_id)
        if entry is not None and entry.state in SETTLED:
            log.info(
                "message %s is already %s here: redelivered copy deleted, not resent",
                job.message_id,
                entry.state,
            )
        elif (copy := self.journal.live_copy(job.message_id, job.received.sqs_id)) is not None:
            log.info(
                "message %s is already %s here from another queue copy: this copy deleted",
                job.message_id,
                copy.state,
            )
            self.journal.record_outcome(
                job.received.sqs_id, job.message_id, "skipped", reason=f"copy of a {copy.state} one"
            )
        elif job.send_before is not None and job.send_before <= _utcnow():
            log.info("message %s expired before it could be sent", job.message_id)
            self.journal.record_outcome(
                job.received.sqs_id,
                job.message_id,
                "expired",
                reason="sendBefore passed before it could be sent",
                at=_utcnow(),
                claim=job.claim,
            )
        else:
            return False
        self._finish(job)
        return True

    def _failed_unsendable(self, job: Job) -> bool:
        refusal = self._unsendable(job)
        if refusal is None:
            return False
        log.warning("message %s not sent: %s", job.message_id, refusal)
        self.journal.record_outcome(
            job.received.sqs_id,
            job.message_id,
            "failed",
            reason=refusal,
            at=_utcnow(),
            claim=job.claim,
        )
        self._finish(job)
        return True

    def _send(self, job: Job, line: Line) -> None:
        """Hand ``job`` to ``line``'s port, which claims it and sends it (see _claimed)."""
        line.bucket.take()
        job.in_flight = True
        line.port.send(job, line)

    def _claimed(self, job: Job, line: Line) -> OutboundSms | None:
        """On the port's thread: claim ``job`` and journal that it goes to the driver; the
        SMS to send, or None (the answer then goes to the main thread, see _not_claimed)."""
        try:
            answer = self._claim(job)
            if not _may_send(answer):
                self._completed(NotClaimed(job, line, answer))
                return None
            job.attempt = self.journal.begin_send(job.received.sqs_id, job.message_id, job.claim)
        except Exception:  # noqa: BLE001 - a bug or a full disk: held, tried again later
            log.exception("message %s: claiming it failed unexpectedly", job.message_id)
            self._completed(NotClaimed(job, line, API_DOWN))
            return None
        log.info(
            "sending message %s (%s, try %d) on %s",
            job.message_id,
            "priority" if job.priority else "bulk",
            job.attempt,
            line.port.name if line.slot is None else f"line {line.slot}",
        )
        sim = job.sim_slot if line.slot is None else line.driver_slot
        return OutboundSms(job.message_id, job.to, job.text, sim)

    def _not_claimed(self, job: Job, answer: dict) -> None:
        if answer is API_DOWN:
            log.info("message %s held: the API cannot grant the claim now", job.message_id)
            return
        if answer is NOT_OURS:
            # The API does not know the message, or it is not this device's to send (it was
            # reassigned to another pool): never sent here; the queue gives it to another
            # device, or dead-letters it after its last receive.
            log.warning("message %s is not this device's to send: released", job.message_id)
            self.hand.discard(job)
            self._release([job])
            return
        stored = answer["status"]
        if stored == "sending":
            # Another device claimed it and has not reported how it went: leave it on the
            # queue, which redelivers it (settled by then) or dead-letters it as failed.
            log.info(
                "message %s is being sent by another device: left on the queue", job.message_id
            )
            self.hand.discard(job)
            return
        log.info("message %s is already %s according to the API: not sent", job.message_id, stored)
        self.journal.record_outcome(
            job.received.sqs_id,
            job.message_id,
            "skipped",
            reason=f"already {stored} according to the API",
        )
        self._finish(job)

    def _take_completions(self) -> None:
        """What the ports did since the last turn: outcomes of sends, phone events. Only
        what is there now: lines of a bank that end their sends together get their next SMS
        in this turn, not once the last of them has reported."""
        for _ in range(self._completions.qsize()):
            at, item = self._completions.get_nowait()
            if isinstance(item, PhoneEvents):
                self._phone_events(item.port, item.events)
                continue
            item.line.port.busy = False
            item.job.in_flight = False
            if isinstance(item, Sent):
                self._sent(item.job, item.line, item.result)
            elif isinstance(item, NotClaimed):
                item.line.bucket.give_back()
                self._not_claimed(item.job, item.answer)
            else:
                self._line_refused(item.job, item.line, item.error, at)

    def _sent(self, job: Job, line: Line, result) -> None:
        self.journal.record_outcome(
            job.received.sqs_id,
            job.message_id,
            "sent",
            segments=result.segments,
            references=tuple(self._reference(line.port, r) for r in result.references),
            at=_utcnow(),
            sim_slot=line.slot,
        )
        line.guard.sent(job.to, result.segments)
        log.info("message %s sent (%d segment(s))", job.message_id, result.segments)
        self._finish(job)

    def _line_refused(self, job: Job, line: Line, error: Exception, at: float) -> None:
        if isinstance(error, SendError) and error.pause_line:
            hold = line.guard.barred(str(error))
            log.warning(
                "line %s paused until %s: the network answered %s",
                line.slot or line.port.name,
                datetime.fromtimestamp(hold.until or 0, UTC).isoformat(timespec="seconds"),
                error,
            )
        # a paused line takes nothing: the SMS goes at once by another line, if one is free
        paused = isinstance(error, SendError) and error.pause_line
        self._refused(job, job.attempt, error, at, at_once=paused)

    def _reference(self, port: Port, reference: str) -> str:
        """Delivery reports name a segment by a reference of its modem: ports of a bank
        number theirs apart."""
        return f"{port.name}:{reference}" if len(self.ports) > 1 else reference

    def _unsendable(self, job: Job) -> str | None:
        """Why ``job``'s text can never be sent, checked before anything is claimed."""
        if any(0xD800 <= ord(char) <= 0xDFFF for char in job.text):
            return "the text holds a lone UTF-16 surrogate: it cannot be encoded as an SMS"
        segments = job.segments
        longest = max(line.settings.max_segments for line in self.lines)
        if segments > longest:
            return f"too long: {segments} SMS segments, at most {longest}"
        if job.sim_slot is not None and not any(self._may_take(each, job) for each in self.lines):
            return f"this device has no line {job.sim_slot}"
        return None

    @staticmethod
    def _may_take(line: Line, job: Job) -> bool:
        """A line of another slot never takes an SMS its sender sent from a given SIM; the
        one line of a device whose lines are not configured leaves the choice to its driver."""
        return job.sim_slot is None or line.slot in (None, job.sim_slot)

    def _line_for(self, job: Job, free: list[Line]) -> Line | None:
        """The line an SMS leaves from: the one its sender asked for, else a free line of
        the recipient's network (on-net: cheaper, and what carriers expect), else any free
        line; the line's guard and longest text allowing. None: none can take it now."""
        network = protocol.operator_of(job.to)
        candidates = sorted(
            (line for line in free if self._may_take(line, job)),
            key=lambda line: line.reported is None or _network_of(line.reported) != network,
        )
        parts = job.segments
        for line in candidates:
            if parts <= line.settings.max_segments and line.guard.refuses(job.to, parts) is None:
                return line
        return None

    def _claim(self, job: Job) -> dict | None:
        """Post ``sending``: the API's answer (stored status, claim), NOT_OURS, or API_DOWN.

        Nothing is sent without the claim: while the API cannot answer, the message stays
        in hand (its visibility kept) and is claimed once the API is back. Sending blind
        could send a copy another bridge also holds (the outbox sweep queues copies of a
        message whose first SendMessage looked lost), or a message the API never stored.
        """
        if not self.api_backoff.ready():
            return API_DOWN
        try:
            answer = self.api.post_status(
                job.message_id, protocol.status_report("sending", at=_utcnow(), claim=job.claim)
            )
        except ApiUnavailable as error:
            self._api_unavailable(error)
            return API_DOWN
        except ApiRejected as error:
            self.api_backoff.succeeded()
            if error.status_code == 404:  # unknown, or not this device's to send
                return NOT_OURS
            log.warning(
                "API refused 'sending' for message %s (%s); sending anyway", job.message_id, error
            )
            return None
        self.api_backoff.succeeded()
        return answer

    def _refused(
        self, job: Job, attempt: int, error: Exception, at: float, at_once: bool = False
    ) -> None:
        if isinstance(error, SendError):
            reason, retryable = str(error), error.retryable
        else:
            reason, retryable = f"phone unreachable: {error}", True
        if retryable and attempt < self.config.max_attempts:
            pause = 0.0 if at_once else self.config.retry_delay * 2 ** (attempt - 1)
            self.journal.record_retry(job.received.sqs_id, reason)
            job.retry_at = at + pause
            log.warning(
                "message %s refused (%s); try %d of %d in %.0f s",
                job.message_id,
                reason,
                attempt + 1,
                self.config.max_attempts,
                pause,
            )
            return
        self.journal.record_outcome(
            job.received.sqs_id, job.message_id, "failed", reason=reason, at=_utcnow()
        )
        log.warning("message %s failed: %s", job.message_id, reason)
        self._finish(job)

    def _finish(self, job: Job) -> None:
        """The outcome is journaled: the SQS message can go (on the deletes' thread)."""
        self.deletes.add(job.queue, {job.received.receipt: job.message_id})
        self.hand.discard(job)

    # ------------------------------------------------------------------ phone and API

    def _phone_events(self, port: Port, events: list) -> None:
        for event in events:
            if isinstance(event, InboundSms):
                # before any post, and before the phone forgets it: nothing received is lost
                self.journal.add_inbound(self._with_line(port, event))
                log.info("SMS received (device ref %s)", event.device_ref)
                port.acknowledge(event)
            elif isinstance(event, DeliveryReport):
                reference = self._reference(port, event.reference)
                message_id = self.journal.record_delivery(
                    reference, event.delivered, event.detail, _utcnow()
                )
                log.info(
                    "delivery report %s for message %s: %s",
                    reference,
                    message_id,
                    "delivered" if event.delivered else "not delivered",
                )

    def _with_line(self, port: Port, sms: InboundSms) -> InboundSms:
        """The line an SMS arrived on: the port's only line, whatever the driver says (a
        bank's modem knows itself as SIM 1), else the line the driver names."""
        configured = [line for line in port.lines if line.slot is not None]
        if len(port.lines) == 1 and configured:
            return replace(sms, sim_slot=configured[0].slot)
        return sms

    def _api_unavailable(self, error: ApiUnavailable) -> None:
        log.warning("API unreachable (%s); next try in %.0f s", error, self.api_backoff.failed())

    def _heartbeat_if_due(self) -> None:
        if self.clock() < self._next_heartbeat or not self.api_backoff.ready():
            return
        self._next_heartbeat = self.clock() + self.config.heartbeat_interval
        info = self.ports[0].info
        try:
            answer = self.api.heartbeat(
                protocol.heartbeat(
                    self._driver_names(),
                    info.signal_percent,
                    info.battery_percent,
                    __version__,
                    lines=self._reported_lines(),
                    own_queue="device-bulk" in self.queues,
                )
            )
            if self.config.aws_credentials == "device" and isinstance(answer.get("queues"), dict):
                self._follow_pool(answer["queues"])
        except ApiUnavailable as error:
            self._api_unavailable(error)
        except ApiRejected as error:
            log.error("API refused the heartbeat (%s)", error)
        else:
            self.api_backoff.succeeded()

    def _driver_names(self) -> str:
        if not self.config.bank:
            return self.config.driver or self.driver.name
        return ",".join(sorted({spec.driver for spec in self.config.bank}))[:40]

    def _reported_lines(self) -> list[protocol.Line] | None:
        """The configured lines, each with its signal where known and its state."""
        lines = [line.heartbeat_line() for line in self.lines]
        return [line for line in lines if line is not None] or None

    def _prune_if_due(self) -> None:
        if self.clock() < self._next_prune:
            return
        self._next_prune = self.clock() + PRUNE_EVERY
        removed = self.journal.prune(self.config.journal_retention_days * 86400)
        if removed:
            log.info("journal: forgot %d settled message(s)", removed)


NOT_OURS: dict = {"status": None}  # _claim's answer when the API says 404
API_DOWN: dict = {"status": None}  # _claim's answer when the API cannot answer now


def _may_send(answer: dict | None) -> bool:
    """The claim is granted, or the API refused it in a way that must not hold the SMS (see
    _claim); not when another device holds it or the message is already settled."""
    if answer is None:
        return True
    if answer is API_DOWN or answer is NOT_OURS:
        return False
    stored = answer["status"]
    if answer.get("claimed") is False and stored == "sending":
        return False
    return stored in (None, "queued", "sending")


class Poller:
    """The thread that receives from one queue into the hand, until stopped."""

    def __init__(self, queue: SqsQueue, priority: bool, poll: Callable):
        self._stopped = threading.Event()
        self.thread = threading.Thread(
            target=poll,
            args=(queue, priority, self._stopped),
            name=f"poll-{queue.name}",
            daemon=True,
        )

    def stop(self, wait: bool = True) -> None:
        self._stopped.set()
        if wait and self.thread.is_alive():
            self.thread.join()


def _first_credentials(api: ApiClient, longest_pause: float = 60.0) -> dict:
    """Wait for the API (a phone may boot before its network): the bridge needs its queues."""
    pause = 1.0
    while True:
        try:
            return api.credentials()
        except ApiUnavailable as error:
            log.warning(
                "cannot get AWS credentials from the API (%s); retrying in %.0f s", error, pause
            )
            time.sleep(pause)
            pause = min(longest_pause, pause * 2)


def _network_of(line: protocol.Line) -> str | None:
    return line.operator or protocol.operator_of(line.number)


def _by_queue(jobs: Iterable[Job]) -> dict[SqsQueue, list[Job]]:
    grouped: dict[SqsQueue, list[Job]] = {}
    for job in jobs:
        grouped.setdefault(job.queue, []).append(job)
    return grouped


def bank_drivers(bank: tuple[LineSpec, ...]) -> list[Driver]:
    """A driver per [[line]] of a SIM bank, built from its [line.driver] table."""
    built = []
    for spec in bank:
        try:
            built.append(drivers.load(spec.driver, **spec.driver_options))
        except (ValueError, TypeError) as error:
            raise ValueError(f"[[line]] {spec.slot}: {error}") from None
    return built
