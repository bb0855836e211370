"""The bridge's loop: SQS -> phone network, phone -> API, with the journal in between.

Threads: one poller per queue fills the hand (messages received and not yet settled); a
keeper extends their SQS visibility; the main thread (``run`` / ``run_until``) does the
rest, so a driver is only ever called from one thread.

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
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from chalicelib.wire import protocol
from chalicelib.wire.sms_encoding import analyze

from . import __version__
from .config import BridgeConfig
from .drivers.base import (
    DeliveryReport,
    DeviceInfo,
    Driver,
    DriverError,
    InboundSms,
    OutboundSms,
    SendError,
)
from .journal import SETTLED, Journal
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
OUTBOX_BATCH = 50  # API posts per loop turn, so a backlog after an outage does not stall sends
PRUNE_EVERY = 3600.0  # seconds between journal clean-ups

log = logging.getLogger("chinqit.bridge")


def _utcnow() -> datetime:
    return datetime.now(UTC)


class TokenBucket:
    """Send pacing: ``burst`` sends back to back, then one every 60/per_minute seconds."""

    def __init__(self, per_minute: float, burst: int, clock: Callable[[], float]):
        self.interval = 60.0 / per_minute
        self.burst = burst
        self.clock = clock
        self.tokens = float(burst)
        self.updated = clock()

    def delay(self) -> float:
        """Seconds until a send is allowed (0 when one is allowed now)."""
        self._refill()
        return max(0.0, (1 - self.tokens) * self.interval)

    def take(self) -> None:
        self._refill()
        self.tokens -= 1

    def _refill(self) -> None:
        now = self.clock()
        self.tokens = min(self.burst, self.tokens + (now - self.updated) / self.interval)
        self.updated = now


class Backoff:
    """Pauses after consecutive failures: 1 s, 2 s, 4 s ... up to ``maximum``."""

    def __init__(self, maximum: float, clock: Callable[[], float]):
        self.maximum = maximum
        self.clock = clock
        self.failures = 0
        self.retry_at = float("-inf")

    def ready(self) -> bool:
        return self.clock() >= self.retry_at

    def failed(self) -> float:
        """Count a failure; returns the pause before the next try."""
        pause = min(self.maximum, 2.0**self.failures)
        self.failures += 1
        self.retry_at = self.clock() + pause
        return pause

    def succeeded(self) -> None:
        self.failures = 0
        self.retry_at = float("-inf")


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

    def snapshot(self) -> list[Job]:
        with self._changed:
            return list(self._jobs)

    def count(self, queue: SqsQueue | None = None) -> int:
        with self._changed:
            return sum(1 for job in self._jobs if queue is None or job.queue is queue)

    def next_ready(self, now: float) -> Job | None:
        """A priority message ready to go, else a bulk one; the least recently served
        account's first, then the oldest."""
        with self._changed:
            ready = [job for job in self._jobs if job.retry_at <= now]
            return min(
                ready,
                key=lambda job: (not job.priority, self._served.get(job.received.group, -1)),
                default=None,
            )

    def served(self, job: Job) -> None:
        """``job``'s account had its turn: the others go first next time."""
        with self._changed:
            self._turns += 1
            self._served[job.received.group] = self._turns

    def wait_for_ready(self, now: float, timeout: float) -> None:
        with self._changed:
            if self.next_ready(now) is None:
                self._changed.wait(timeout)

    def wait(self, timeout: float) -> None:
        with self._changed:
            self._changed.wait(timeout)

    def wake(self) -> None:
        with self._changed:
            self._changed.notify_all()


class Agent:
    """One bridge: the phone ``driver``, its journal, the two queues and the API."""

    def __init__(
        self,
        config: BridgeConfig,
        driver: Driver,
        journal: Journal,
        queues: dict[str, SqsQueue],
        api: ApiClient,
        clock: Callable[[], float] = time.monotonic,
    ):
        """``queues`` maps "priority" and "bulk" to their queue; ``clock`` paces sends,
        retries, backoffs and heartbeats (SQS visibility always runs on real time)."""
        self.config = config
        self.driver = driver
        self.journal = journal
        self.queues = queues
        self.api = api
        self.clock = clock
        self.hand = Hand()
        self.bucket = TokenBucket(config.sends_per_minute, config.send_burst, clock)
        # Held per queue: what this bridge sends in PREFETCH_SECONDS at its pace, at least 1,
        # at most max_buffered. A slow SIM does not sit on messages other bridges could
        # send, nor hand them back (each handing back counts towards the dead-letter queue).
        self.prefetch = max(
            1,
            min(config.max_buffered, math.ceil(config.sends_per_minute * PREFETCH_SECONDS / 60)),
        )
        self.api_backoff = Backoff(config.backoff_max, clock)
        self.phone_backoff = Backoff(config.backoff_max, clock)
        self._next_heartbeat = self._next_prune = clock()
        self._stopping = threading.Event()
        self._released = threading.Event()
        self._pollers: dict[str, Poller] = {}
        self._retired: list[Poller] = []  # stopped, maybe still in their last long poll
        self._start_pollers = False
        for kind, queue in queues.items():
            self._add_poller(kind, queue)
        self._keeper = threading.Thread(target=self._keep_visible, name="visibility", daemon=True)

    @classmethod
    def build(
        cls, config: BridgeConfig, driver: Driver, clock: Callable[[], float] = time.monotonic
    ) -> Agent:
        api = ApiClient(
            config.api_url,
            config.device_key,
            config.api_timeout,
            user_agent=f"chinqit-device-bridge/{__version__}",
        )
        names = config.queues
        if config.aws_credentials == "device":
            first = _first_credentials(api)  # the API names this device's queues too
            credentials = DeviceKeyCredentials(api.credentials, first)
            sqs = sqs_client(config.wait_time_seconds, credentials, region=first["region"])
            names = first["queues"]
        else:
            sqs = sqs_client(config.wait_time_seconds)
        queues = {kind: SqsQueue(sqs, name) for kind, name in names.items()}
        return cls(config, driver, Journal(config.journal), queues, api, clock)

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        """Open the phone, settle sends a previous run left unfinished, start receiving."""
        self.driver.open()
        self._settle_interrupted_sends()
        self._start_pollers = True
        for poller in self._pollers.values():
            poller.thread.start()
        self._keeper.start()

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
        self._release(self.hand.take_all())
        self._released.set()
        self._keeper.join()
        self._flush_outbox()  # report the last outcomes now rather than at the next start
        self.driver.close()
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
        while not self._stopping.is_set() and not stopped.is_set():
            room = min(self.prefetch - self.hand.count(queue), SQS_BATCH_LIMIT)
            if room <= 0:
                self.hand.wait(self.config.poll_interval)
                continue
            visible_until = time.monotonic() + self.config.visibility_timeout
            try:
                received = queue.receive(
                    room, self.config.wait_time_seconds, self.config.visibility_timeout
                )
            except Exception as error:  # noqa: BLE001 - the poller must outlive any SQS trouble
                pause = backoff.failed()
                log.warning(
                    "cannot receive from %s (%s); retrying in %.0f s", queue.name, error, pause
                )
                self._stopping.wait(pause)
                continue
            backoff.succeeded()
            self.hand.add(self._jobs(queue, priority, received, visible_until))
            if not received and self.config.wait_time_seconds == 0:
                self._stopping.wait(self.config.poll_interval)  # short polling: do not spin

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
        """One turn: phone events, API posts, heartbeat, then at most one SMS. A phase
        that fails in a way nobody foresaw is logged and the loop goes on: the bridge
        outlives any message, payload or driver bug."""
        for phase in (
            self._collect_phone_events,
            self._flush_outbox,
            self._heartbeat_if_due,
            self._prune_if_due,
            self._work_next,
        ):
            try:
                phase()
            except Exception:  # noqa: BLE001 - the loop must go on; the log has the trace
                log.exception("bridge: %s failed; going on", phase.__name__.strip("_"))
                self._stopping.wait(UNFORESEEN_PAUSE)

    def _work_next(self) -> None:
        job = self.hand.next_ready(self.clock())
        if job is None:
            self.hand.wait_for_ready(self.clock(), self.config.poll_interval)
        elif job.lost:
            self.hand.discard(job)
        elif self._settle_without_sending(job):
            return
        elif not self.api_backoff.ready():
            # Nothing goes without the API's claim (see _claim): held, visibility kept.
            self._stopping.wait(self.config.poll_interval)
        else:
            pause = self.bucket.delay()
            if pause > 0:
                self._stopping.wait(min(pause, self.config.poll_interval))
            else:
                self.bucket.take()
                self.hand.served(job)
                self._send(job)

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

    def _send(self, job: Job) -> None:
        refusal = self._unsendable(job)
        if refusal is not None:
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
            return
        answer = self._claim(job)
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
        stored = answer and answer["status"]
        if answer and answer.get("claimed") is False and stored == "sending":
            # Another device claimed it and has not reported how it went: leave it on the
            # queue, which redelivers it (settled by then) or dead-letters it as failed.
            log.info(
                "message %s is being sent by another device: left on the queue", job.message_id
            )
            self.hand.discard(job)
            return
        if stored not in (None, "queued", "sending"):
            log.info(
                "message %s is already %s according to the API: not sent", job.message_id, stored
            )
            self.journal.record_outcome(
                job.received.sqs_id,
                job.message_id,
                "skipped",
                reason=f"already {stored} according to the API",
            )
            self._finish(job)
            return
        attempt = self.journal.begin_send(job.received.sqs_id, job.message_id, job.claim)
        log.info(
            "sending message %s (%s, try %d)",
            job.message_id,
            "priority" if job.priority else "bulk",
            attempt,
        )
        slot = self._line_for(job)
        try:
            result = self.driver.send(OutboundSms(job.message_id, job.to, job.text, slot))
        except (SendError, DriverError) as error:
            self._refused(job, attempt, error)
            return
        except Exception as error:  # noqa: BLE001 - a driver bug: settled, never retried
            log.exception("message %s: the driver failed unexpectedly", job.message_id)
            reason = f"driver error: {type(error).__name__}: {error}"[:300]
            self._refused(job, attempt, SendError(reason, retryable=False))
            return
        self.journal.record_outcome(
            job.received.sqs_id,
            job.message_id,
            "sent",
            segments=result.segments,
            references=result.references,
            at=_utcnow(),
            sim_slot=slot,
        )
        log.info("message %s sent (%d segment(s))", job.message_id, result.segments)
        self._finish(job)

    def _unsendable(self, job: Job) -> str | None:
        """Why ``job``'s text can never be sent, checked before anything is claimed."""
        if any(0xD800 <= ord(char) <= 0xDFFF for char in job.text):
            return "the text holds a lone UTF-16 surrogate: it cannot be encoded as an SMS"
        segments = analyze(job.text).segments
        if segments > self.config.max_segments:
            return f"too long: {segments} SMS segments, at most {self.config.max_segments}"
        return None

    def _line_for(self, job: Job) -> int | None:
        """The SIM an SMS leaves from: the one its sender asked for, else a line of the
        recipient's network (on-net: cheaper, and what carriers expect), else the first
        line. None when no lines are configured: the driver's default SIM."""
        if job.sim_slot is not None or not self.config.lines:
            return job.sim_slot
        network = protocol.operator_of(job.to)
        on_net = [line.slot for line in self.config.lines if _network_of(line) == network]
        return on_net[0] if on_net else self.config.lines[0].slot

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

    def _refused(self, job: Job, attempt: int, error: Exception) -> None:
        if isinstance(error, SendError):
            reason, retryable = str(error), error.retryable
        else:
            reason, retryable = f"phone unreachable: {error}", True
        if retryable and attempt < self.config.max_attempts:
            pause = self.config.retry_delay * 2 ** (attempt - 1)
            self.journal.record_retry(job.received.sqs_id, reason)
            job.retry_at = self.clock() + pause
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
        """The outcome is journaled: the SQS message can go."""
        try:
            job.queue.delete(job.received.receipt)
        except Exception as error:  # noqa: BLE001 - a redelivery is recognised by the journal
            log.warning(
                "cannot delete message %s from SQS (%s); its redelivery will not be sent",
                job.message_id,
                error,
            )
        self.hand.discard(job)

    # ------------------------------------------------------------------ phone and API

    def _collect_phone_events(self) -> None:
        if not self.phone_backoff.ready():
            return
        try:
            events = self.driver.poll()
        except DriverError as error:
            log.warning(
                "cannot read the phone (%s); retrying in %.0f s", error, self.phone_backoff.failed()
            )
            return
        self.phone_backoff.succeeded()
        for event in events:
            if isinstance(event, InboundSms):
                # before any post, and before the phone forgets it: nothing received is lost
                self.journal.add_inbound(self._with_line(event))
                log.info("SMS received (device ref %s)", event.device_ref)
                self._acknowledge(event)
            elif isinstance(event, DeliveryReport):
                message_id = self.journal.record_delivery(
                    event.reference, event.delivered, event.detail, _utcnow()
                )
                log.info(
                    "delivery report %s for message %s: %s",
                    event.reference,
                    message_id,
                    "delivered" if event.delivered else "not delivered",
                )

    def _acknowledge(self, sms: InboundSms) -> None:
        try:
            self.driver.acknowledge(sms)
        except DriverError as error:  # kept on the phone: read again, deduplicated, later
            log.warning("cannot tell the phone SMS %s is stored (%s)", sms.device_ref, error)

    def _with_line(self, sms: InboundSms) -> InboundSms:
        """A device of one line received everything on it, whether the driver says so or not."""
        if sms.sim_slot is None and len(self.config.lines) == 1:
            return replace(sms, sim_slot=self.config.lines[0].slot)
        return sms

    def _flush_outbox(self) -> None:
        """Post what the API has not acknowledged yet: statuses first, then received SMS."""
        if not self.api_backoff.ready():
            return
        try:
            for post in self.journal.pending_posts(OUTBOX_BATCH):
                self._post_status(post.message_id, post.body)
                self.journal.post_done(post.id)
            for body in self.journal.pending_inbound(OUTBOX_BATCH):
                self._post_inbound(body)
        except ApiUnavailable as error:
            self._api_unavailable(error)

    def _post_status(self, message_id: str, body: dict) -> None:
        try:
            self.api.post_status(message_id, body)
        except ApiRejected as error:  # 404: unknown message; 400: a bug. Neither heals.
            log.error(
                "API refused status %s of message %s (%s); dropped",
                body["status"],
                message_id,
                error,
            )
        self.api_backoff.succeeded()

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
        self.api_backoff.succeeded()

    def _api_unavailable(self, error: ApiUnavailable) -> None:
        log.warning("API unreachable (%s); next try in %.0f s", error, self.api_backoff.failed())

    def _heartbeat_if_due(self) -> None:
        if self.clock() < self._next_heartbeat or not self.api_backoff.ready():
            return
        self._next_heartbeat = self.clock() + self.config.heartbeat_interval
        info = self._device_info()
        try:
            answer = self.api.heartbeat(
                protocol.heartbeat(
                    self.config.driver,
                    info.signal_percent,
                    info.battery_percent,
                    __version__,
                    lines=self._lines_with_signal(info),
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

    def _lines_with_signal(self, info: DeviceInfo) -> list[protocol.Line] | None:
        """The configured lines; a device of one line has the driver's signal on it."""
        lines = list(self.config.lines)
        if len(lines) == 1:
            lines = [replace(lines[0], signal_percent=info.signal_percent)]
        return lines or None

    def _device_info(self) -> DeviceInfo:
        try:
            return self.driver.info()
        except DriverError as error:
            log.warning("cannot read signal and battery (%s)", error)
            return DeviceInfo()

    def _prune_if_due(self) -> None:
        if self.clock() < self._next_prune:
            return
        self._next_prune = self.clock() + PRUNE_EVERY
        removed = self.journal.prune(self.config.journal_retention_days * 86400)
        if removed:
            log.info("journal: forgot %d settled message(s)", removed)


NOT_OURS: dict = {"status": None}  # _claim's answer when the API says 404
API_DOWN: dict = {"status": None}  # _claim's answer when the API cannot answer now


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
