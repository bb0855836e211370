"""The parts of the local stack, started and stopped together."""

from __future__ import annotations

import functools
import logging
import os
import signal
import subprocess
import sys
import threading
import time

from chalice import local
from chalice.app import Rate, ScheduledEventConfig, SQSEventConfig

from .sqs_trigger import ScheduleTrigger, SqsTrigger

# A crashed bridge is started again after 1 s, then 2, 4 ... 30 s while it keeps dying
# within a minute of its start.
BRIDGE_RESTART_PAUSE = 1.0
BRIDGE_LONGEST_PAUSE = 30.0
BRIDGE_HEALTHY_RUN = 60.0
log = logging.getLogger("chinqit.devstack")

NOT_FOUND = b'{"success": false, "message": "Route not found", "errors": []}'


class RequestHandler(local.ChaliceRequestHandler):
    """Chalice's local handler, answering unmatched paths as the deployed API does (404)."""

    # Chalice writes headers and body separately: with Nagle on, a kept-alive client (the
    # bridge) waits ~40 ms for the delayed ACK on every call.
    disable_nagle_algorithm = True

    def log_message(self, *_args):
        """The API logs each request itself (chinqit.http), with its key prefix and latency."""

    def _send_error_response(self, error):
        if (
            isinstance(error, local.ForbiddenError)
            and b"Missing Authentication Token" in error.body
        ):
            self._send_http_response(404, {"Content-Type": "application/json"}, NOT_FOUND)
        else:
            super()._send_error_response(error)


def _terminate_with_parent() -> None:
    """In the child, before exec: get SIGTERM if the stack dies, even by SIGKILL (Linux)."""
    import ctypes

    PR_SET_PDEATHSIG = 1
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


class Stack:
    def __init__(self):
        self.aws: subprocess.Popen | None = None
        self.bridge: subprocess.Popen | None = None
        self.api_server = None
        self.triggers: list[SqsTrigger | ScheduleTrigger] = []
        self.stopping = threading.Event()
        self._bridge_lock = threading.Lock()
        self._bridge_environment: dict = {}

    def start_aws(self) -> str:
        """Start the embedded AWS in a child process; return its endpoint URL."""
        child = subprocess.Popen(
            [sys.executable, "-m", "devstack.aws"], stdout=subprocess.PIPE, text=True
        )
        self.aws = child
        assert child.stdout is not None  # stdout=PIPE
        line = child.stdout.readline().strip()
        if not line.startswith("listening on "):
            raise RuntimeError(f"embedded AWS did not start: {line!r}")
        return line.removeprefix("listening on ")

    def start_bridge(self, environment: dict) -> None:
        """Run the device bridge in a child process (its logs go to this terminal), and
        start it again whenever it dies (a non-zero exit), waiting longer after each
        quick death."""
        self._bridge_environment = {**os.environ, **environment}
        self._spawn_bridge()
        threading.Thread(target=self._supervise_bridge, daemon=True, name="bridge").start()

    def _spawn_bridge(self) -> None:
        with self._bridge_lock:  # never a new bridge once stop() has begun
            if self.stopping.is_set():
                return
            self.bridge = subprocess.Popen(
                [sys.executable, "-m", "device_bridge"],
                env=self._bridge_environment,
                preexec_fn=_terminate_with_parent,
            )

    def _supervise_bridge(self) -> None:
        pause = BRIDGE_RESTART_PAUSE
        while True:
            started = time.monotonic()
            assert self.bridge is not None
            code = self.bridge.wait()
            if self.stopping.is_set() or code == 0:  # 0: it was asked to stop (Ctrl-C)
                return
            if time.monotonic() - started > BRIDGE_HEALTHY_RUN:
                pause = BRIDGE_RESTART_PAUSE
            log.warning("device bridge exited with %s; starting it again in %.0f s", code, pause)
            if self.stopping.wait(pause):
                return
            pause = min(BRIDGE_LONGEST_PAUSE, pause * 2)
            self._spawn_bridge()

    def serve_api(self, project_dir, host: str, port: int, event_handlers: bool = True) -> None:
        """Serve the app's routes; with ``event_handlers`` also run its SQS and scheduled
        handlers, as Lambda would."""
        from chalice.cli import create_local_server
        from chalice.cli.factory import CLIFactory

        server = create_local_server(CLIFactory(str(project_dir)), host, port, "dev")
        server.server.RequestHandlerClass = functools.partial(
            RequestHandler,
            app_object=server.app_object,
            config=server._wrapped_handler.keywords["config"],
        )
        # socketserver listens with a backlog of 5: the 16 lines of a SIM bank connecting
        # at once would have their SYNs dropped and retried a second later
        server.server.socket.listen(128)
        self.api_server = server
        threading.Thread(target=server.server.serve_forever, daemon=True, name="api").start()
        if event_handlers:
            self._start_sqs_triggers(server.app_object)

    def _start_sqs_triggers(self, app) -> None:
        """Run every on_sqs_message handler of the app off its queue, and every scheduled
        handler on its rate, as Lambda would."""
        module = sys.modules["app"]  # chalice loads app.py under this name
        for source in app.event_sources:
            handler = getattr(module, source.handler_string.split(".")[-1])
            trigger: ScheduleTrigger | SqsTrigger
            if isinstance(source, SQSEventConfig) and source.queue:  # (an ARN would be queue_arn)
                trigger = SqsTrigger(
                    handler, source.queue, source.batch_size, _timeout(source.handler_string)
                )
            elif isinstance(source, ScheduledEventConfig):
                trigger = ScheduleTrigger(
                    handler, source.name, _seconds(source.schedule_expression)
                )
            else:
                continue
            trigger.start()
            self.triggers.append(trigger)

    def stop(self) -> None:
        """Stop in reverse order of start: the bridge, then the API, the embedded AWS last."""
        with self._bridge_lock:
            self.stopping.set()
        self._end(self.bridge)
        for trigger in self.triggers:
            trigger.stopping.set()
        if self.api_server:
            self.api_server.shutdown()
        self._end(self.aws)

    @staticmethod
    def _end(child: subprocess.Popen | None) -> None:
        if child is None:
            return
        child.terminate()
        try:
            child.wait(timeout=15)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


RATE_SECONDS = {Rate.MINUTES: 60, Rate.HOURS: 3600, Rate.DAYS: 86400}


def _seconds(schedule) -> float:
    """A schedule's period; SMSGW_LOCAL_SCHEDULE_SECONDS overrides it (tests)."""
    override = os.environ.get("SMSGW_LOCAL_SCHEDULE_SECONDS")
    if override:
        return float(override)
    if isinstance(schedule, Rate):
        return schedule.value * RATE_SECONDS[schedule.unit]
    return 60.0  # a cron expression: once a minute is the finest it can say


def _timeout(handler_string: str) -> int:
    """The dev stage's Lambda timeout of a handler (app.webhook_worker -> 30)."""
    from chinqit_admin import template

    name = handler_string.split(".")[-1]
    [function] = [f for f, handler in template.FUNCTIONS.items() if handler == name]
    return template.lambda_timeout("dev", function)
