"""The local stack (``python -m devstack``) as a subprocess, for the end-to-end benches.

On loopback, on a free port, with its own temporary outbox, inbox and bridge journal, and a
known development API key. ``running()`` starts it, waits for ``GET /health`` and the
banner, and on exit stops it with SIGINT (Ctrl-C), waits for it, and SIGKILLs any process
it had started that is still there (found through /proc, checked by start time, so a
recycled pid is never touched). The temporary directory is removed afterwards.

Talks to the stack over the wire only (HTTP, files, the stack's log); imports no AWS
library, so it can run in the same process as the in-process benches.
"""
from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Optional

import requests

from bench import REPO
from devstack.proctree import descendants, is_alive

HOST = "127.0.0.1"
STARTUP_SECONDS = 60
STOP_SECONDS = 20
LEFTOVER_GRACE = 5
POLL = 0.005  # seconds between looks at a file or the log: well under the figures measured


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def clean_env(**overrides: str) -> dict:
    """This process's environment without AWS_* / SMSGW_* (the in-process benches set fake
    AWS credentials and a secret here), plus ``overrides``."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("AWS_", "SMSGW_")) and k != "PYTHONPATH"}
    env["PYTHONUNBUFFERED"] = "1"
    env.update(overrides)
    return env


# --- processes, from /proc ---------------------------------------------------------------

# --- the stack -------------------------------------------------------------------------------

@dataclass
class Stopped:
    returncode: int
    seconds: float                       # from SIGINT to exit
    children: list = field(default_factory=list)   # the stack's processes before SIGINT
    leftovers: list = field(default_factory=list)  # still alive after it exited (killed)

    def summary(self) -> str:
        names = ", ".join(sorted({_short(p.cmdline) for p in self.children})) or "none"
        left = ("none" if not self.leftovers else
                "KILLED " + ", ".join(f"{p.pid} {_short(p.cmdline)}" for p in self.leftovers))
        return (f"stack stopped with SIGINT: exit code {self.returncode} after "
                f"{self.seconds:.1f}s; its processes ({names}); left running: {left}")


def _short(cmdline: str) -> str:
    match = re.search(r"-m (\S+)", cmdline)
    return match.group(1) if match else cmdline[:40]


class Stack:
    """A running ``python -m devstack``: its API, its simulated phone's files, its log."""

    def __init__(self, process: subprocess.Popen, port: int, key: str, workdir: Path,
                 environment: dict):
        self.process = process
        self.port = port
        self.url = f"http://{HOST}:{port}"
        self.key = key
        self.workdir = workdir
        self.outbox = workdir / "outbox.jsonl"
        self.inbox = workdir / "inbox.jsonl"
        self.log = workdir / "stack.log"
        self.environment = environment  # the SMSGW_* settings given to it
        self.session = requests.Session()
        self._outbox_offset = 0
        self._outbox_seen: dict[str, dict] = {}
        self.stopped: Optional[Stopped] = None

    # --- API
    def call(self, method: str, path: str, body=None, timeout: float = 60) -> requests.Response:
        response = self.session.request(method, self.url + path, json=body, timeout=timeout,
                                        headers={"X-API-Key": self.key})
        if response.status_code >= 300:
            raise RuntimeError(f"{method} {path}: {response.status_code} {response.text[:300]}")
        return response

    # --- the simulated phone
    def outbox_new(self) -> dict[str, dict]:
        """Every complete outbox line so far, by messageId (read incrementally)."""
        try:
            with open(self.outbox, "rb") as outbox:
                outbox.seek(self._outbox_offset)
                unread = outbox.read()
        except FileNotFoundError:
            return self._outbox_seen
        complete = unread[: unread.rfind(b"\n") + 1]
        self._outbox_offset += len(complete)
        for raw in complete.splitlines():
            try:
                line = json.loads(raw)
                self._outbox_seen[line["messageId"]] = line
            except (ValueError, KeyError, TypeError):
                continue
        return self._outbox_seen

    def wait_outbox(self, message_ids, seconds: float) -> dict[str, dict]:
        """The outbox lines of ``message_ids`` once all are there (bounded wait)."""
        wanted = set(message_ids)
        deadline = time.monotonic() + seconds
        while True:
            seen = self.outbox_new()
            if wanted <= seen.keys():
                return {m: seen[m] for m in wanted}
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(wanted - seen.keys())} of {len(wanted)} SMS not in the "
                                   f"outbox after {seconds}s\n--- stack log ---\n{self.log_tail()}")
            time.sleep(POLL)

    def receive_sms(self, sender: str, text: str) -> None:
        """The simulated phone receives an SMS: one line appended to its inbox."""
        line = (json.dumps({"from": sender, "text": text}, ensure_ascii=False) + "\n").encode()
        with open(self.inbox, "ab", buffering=0) as inbox:
            inbox.write(line)

    # --- the log (API, webhook worker and bridge write to it, with millisecond times)
    def log_size(self) -> int:
        try:
            return self.log.stat().st_size
        except FileNotFoundError:
            return 0

    def log_since(self, offset: int) -> str:
        with open(self.log, "rb") as log:
            log.seek(offset)
            return log.read().decode("utf-8", "replace")

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log.read_text(errors="replace")[-chars:]
        except FileNotFoundError:
            return ""

    # --- lifecycle
    def stop(self) -> Stopped:
        if self.stopped:
            return self.stopped
        children = descendants(self.process.pid) if self.process.poll() is None else []
        started = time.monotonic()
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGINT)
        try:
            returncode = self.process.wait(timeout=STOP_SECONDS)
        except subprocess.TimeoutExpired:
            children += [p for p in descendants(self.process.pid) if p not in children]
            self.process.kill()
            returncode = self.process.wait()
        seconds = time.monotonic() - started
        deadline = time.monotonic() + LEFTOVER_GRACE
        while any(is_alive(p) for p in children) and time.monotonic() < deadline:
            time.sleep(0.05)
        leftovers = [p for p in children if is_alive(p)]
        for proc in leftovers:  # only processes this stack started, checked by start time
            try:
                os.kill(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.session.close()
        self.stopped = Stopped(returncode, seconds, children, leftovers)
        return self.stopped


def start(**env: str) -> Stack:
    """Start the stack (``env``: extra SMSGW_* settings) and wait until it is ready."""
    workdir = Path(tempfile.mkdtemp(prefix="chinqit-bench-"))
    port = free_port()
    key = "cq_live_bench" + secrets.token_urlsafe(32)
    settings = {"SMSGW_PORT": str(port), "SMSGW_DEV_API_KEY": key,
                "SMSGW_OUTBOX": str(workdir / "outbox.jsonl"),
                "SMSGW_INBOX": str(workdir / "inbox.jsonl"), **env}
    with open(workdir / "stack.log", "wb") as log:
        process = subprocess.Popen([sys.executable, "-m", "devstack"], cwd=REPO,
                                   env=clean_env(**settings), stdin=subprocess.DEVNULL,
                                   stdout=log, stderr=subprocess.STDOUT)
    stack = Stack(process, port, key, workdir, settings)
    try:
        _wait_ready(stack)
    except BaseException:
        stack.stop()
        shutil.rmtree(workdir, ignore_errors=True)
        raise
    return stack


def _wait_ready(stack: Stack) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if stack.process.poll() is not None:
            raise RuntimeError(f"the stack exited with {stack.process.returncode} before it was "
                               f"ready\n--- log ---\n{stack.log_tail()}")
        if "Press Ctrl-C to stop." in stack.log_tail(100_000):
            try:
                if requests.get(stack.url + "/health", timeout=2).status_code == 200:
                    return
            except requests.RequestException:
                pass
        time.sleep(0.1)
    raise RuntimeError(f"the stack was not ready within {STARTUP_SECONDS}s\n--- log ---\n"
                       f"{stack.log_tail()}")


@contextmanager
def running(stack: Optional[Stack] = None, **env: str):
    """Yield ``stack`` if given (the caller owns it), else a new stack stopped on exit."""
    if stack is not None:
        yield stack
        return
    stack = start(**env)
    try:
        yield stack
    finally:
        stack.stop()
        shutil.rmtree(stack.workdir, ignore_errors=True)


# --- helpers for the benches --------------------------------------------------------------

LOG_TIME = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),(\d{3}) ", re.M)


def log_times(text: str, pattern: str) -> list[tuple[float, re.Match]]:
    """(unix time, match) of each log line whose message matches ``pattern``.

    Log times are local wall-clock times with millisecond resolution (logging's asctime).
    """
    found = []
    regex = re.compile(pattern)
    for line in text.splitlines():
        stamp = LOG_TIME.match(line)
        if not stamp:
            continue
        match = regex.search(line, stamp.end())
        if match:
            local = time.mktime(time.strptime(stamp.group(1), "%Y-%m-%d %H:%M:%S"))
            found.append((local + int(stamp.group(2)) / 1000, match))
    return found


def iso_unix(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def fresh_phone() -> str:
    """A random Mauritanian number (+222, 8 digits starting with 2, 3 or 4)."""
    return f"+222{secrets.choice('234')}{secrets.randbelow(10 ** 7):07d}"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def finish(stack: Stack) -> Stopped:
    """Stop the stack and remove its temporary directory."""
    try:
        return stack.stop()
    finally:
        shutil.rmtree(stack.workdir, ignore_errors=True)


def stop_row(stopped: Stopped) -> dict:
    clean = stopped.returncode == 0 and not stopped.leftovers
    return {"bench": "stack", "measure": "local stack stopped with SIGINT",
            "value": f"exit {stopped.returncode} in {stopped.seconds:.1f}s, "
                     f"{len(stopped.leftovers)} process(es) left running",
            "budget": "exit 0, none left", "result": "PASS" if clean else "FAIL"}


def with_stop(report, stopped: Stopped):
    """``report`` plus a row and a line saying how the stack it ran on stopped."""
    report.rows.append(stop_row(stopped))
    report.details += ([""] if report.details else []) + [stopped.summary()]
    return report


def run_on(stack, bench):
    """``bench(stack)`` on ``stack`` if given (left running), else on a stack of its own."""
    if stack is not None:
        return bench(stack)
    stack = start()
    try:
        result = bench(stack)
    finally:
        stopped = finish(stack)
    return with_stop(result, stopped)
