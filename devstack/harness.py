"""The local stack (``python -m devstack``) as a subprocess, for the end-to-end tests and benches.

``start(workdir, key=..., **env)`` runs it on loopback on a free port with its simulated
phone's outbox and inbox and its log in ``workdir``, and waits until ``GET /health`` answers
and the banner is out. The returned ``LocalStack`` talks to it on the wire only: HTTP to the
API, files for the simulated phone, the stack's log, boto3 (imported lazily) to its embedded
AWS, the operator tool as a subprocess. ``LocalStack.stop()`` sends Ctrl-C (SIGINT), waits,
and finds and kills any process the stack started that is still there (devstack.proctree:
through /proc, checked by start time, so a recycled pid is never touched).
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import requests

from devstack.proctree import Proc, descendants, kill_all, wait_gone

PROJECT = Path(__file__).resolve().parents[1]
HOST = "127.0.0.1"
STARTUP_SECONDS = 60  # the stack must answer GET /health within this
STOP_SECONDS = 15  # ...and exit within this after Ctrl-C
LEFTOVER_GRACE = 5  # its processes get this long to vanish once it has exited
POLL = 0.05  # between looks while starting
FILE_POLL = 0.005  # between looks at the outbox: well under the latencies benches measure
OPERATOR_TOOL = "chinqit_admin"
PRIORITY_QUEUE = "chinqit-dev-outbound-priority"
OUTBOUND_QUEUE = "chinqit-dev-outbound"
LOCAL_AWS = {
    "AWS_ACCESS_KEY_ID": "local",
    "AWS_SECRET_ACCESS_KEY": "local",
    "AWS_DEFAULT_REGION": "us-east-1",
}


class StackError(RuntimeError):
    """The stack did not become ready, or an API call made with ``LocalStack.call`` failed."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def clean_env(**overrides: str | None) -> dict:
    """This process's environment without AWS_* / SMSGW_* / PYTHONPATH (tests and benches set
    some), plus ``overrides``; an override of None removes the variable."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("AWS_", "SMSGW_")) and k != "PYTHONPATH"
    }
    env["PYTHONUNBUFFERED"] = "1"
    for name, value in overrides.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return env


def fresh_local_number() -> str:
    """A random local number (8 digits, starting with 2, 3 or 4) so re-runs never collide."""
    import secrets

    return f"{secrets.choice('234')}{secrets.randbelow(10**7):07d}"


@dataclass
class Stopped:
    returncode: int
    seconds: float  # from Ctrl-C to exit
    tracked: list[Proc]  # the stack's processes just before Ctrl-C
    leftovers: list[Proc]  # those still alive after the stack exited (killed since)

    def summary(self) -> str:
        names = ", ".join(sorted({_module(p.cmdline) for p in self.tracked})) or "none"
        left = (
            "none"
            if not self.leftovers
            else "KILLED " + ", ".join(f"{p.pid} {_module(p.cmdline)}" for p in self.leftovers)
        )
        return (
            f"stack stopped with SIGINT: exit code {self.returncode} after "
            f"{self.seconds:.1f}s; its processes ({names}); left running: {left}"
        )


def _module(cmdline: str) -> str:
    match = re.search(r"-m (\S+)", cmdline)
    return match.group(1) if match else cmdline[:40]


def _json_lines(raw: str) -> list[dict]:
    """The JSON objects of ``raw``, one a line; partial or garbled lines skipped."""
    lines = []
    for text in raw.splitlines():
        try:
            lines.append(json.loads(text))
        except ValueError:
            continue
    return [line for line in lines if isinstance(line, dict)]


@dataclass
class LocalStack:
    """A running ``python -m devstack``: its API, its simulated phone's files, its log, its AWS."""

    process: subprocess.Popen
    port: int
    key: str | None
    workdir: Path
    environment: dict  # the settings given to it (SMSGW_* and any AWS_ENDPOINT_URL)
    aws_endpoint: str = ""
    session: requests.Session = field(default_factory=requests.Session, repr=False)
    _outbox_offset: int = field(default=0, repr=False)
    _outbox_seen: dict = field(default_factory=dict, repr=False)
    _stopped: Stopped | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def outbox(self) -> Path:
        return self.workdir / "outbox.jsonl"

    @property
    def inbox(self) -> Path:
        return self.workdir / "inbox.jsonl"

    @property
    def log(self) -> Path:
        return self.workdir / "stack.log"

    # --- the API
    def headers(self, key: str | None = "default") -> dict:
        """``X-API-Key`` with the stack's key, with ``key``, or none when ``key`` is None."""
        key = self.key if key == "default" else key
        return {"X-API-Key": key} if key is not None else {}

    def get(self, path: str, key: str | None = "default", **kw) -> requests.Response:
        return self._request(requests.request, "GET", path, None, key, **kw)

    def post(self, path: str, body=None, key: str | None = "default", **kw) -> requests.Response:
        return self._request(requests.request, "POST", path, body, key, **kw)

    def call(self, method: str, path: str, body=None, timeout: float = 60) -> requests.Response:
        """A call with the stack's key on a kept-alive session; StackError unless 2xx."""
        response = self._request(
            self.session.request, method, path, body, "default", timeout=timeout
        )
        if response.status_code >= 300:
            raise StackError(f"{method} {path}: {response.status_code} {response.text[:300]}")
        return response

    def _request(self, send, method: str, path: str, body, key: str | None, **kw):
        kw.setdefault("timeout", 30)
        headers = {**self.headers(key), **kw.pop("headers", {})}
        if body is not None:
            kw["json"] = body
        return send(method, self.url + path, headers=headers, **kw)

    # --- the simulated phone
    def outbox_lines(self) -> list[dict]:
        """Every SMS the simulated phone has sent so far."""
        return _json_lines(self.outbox.read_text(errors="replace")) if self.outbox.exists() else []

    def outbox_new(self) -> dict[str, dict]:
        """Every complete outbox line so far, by messageId (the file is read incrementally)."""
        try:
            with open(self.outbox, "rb") as outbox:
                outbox.seek(self._outbox_offset)
                unread = outbox.read()
        except FileNotFoundError:
            return self._outbox_seen
        complete = unread[: unread.rfind(b"\n") + 1]
        self._outbox_offset += len(complete)
        for line in _json_lines(complete.decode("utf-8", "replace")):
            if "messageId" in line:
                self._outbox_seen[line["messageId"]] = line
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
                raise TimeoutError(
                    f"{len(wanted - seen.keys())} of {len(wanted)} SMS not in the "
                    f"outbox after {seconds}s\n--- stack log ---\n{self.log_tail()}"
                )
            time.sleep(FILE_POLL)

    def receive_sms(self, sender: str, text: str) -> None:
        """The simulated phone receives an SMS: one line appended to its inbox."""
        line = (json.dumps({"from": sender, "text": text}, ensure_ascii=False) + "\n").encode()
        with open(self.inbox, "ab", buffering=0) as inbox:
            inbox.write(line)

    # --- the log (API, webhook worker and bridge write to it, with millisecond times)
    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def log_tail(self, chars: int = 4000) -> str:
        return self.log_text()[-chars:]

    def log_size(self) -> int:
        return self.log.stat().st_size if self.log.exists() else 0

    def log_since(self, offset: int) -> str:
        with open(self.log, "rb") as log:
            log.seek(offset)
            return log.read().decode("utf-8", "replace")

    def banner_value(self, label: str) -> str | None:
        """A value of the banner the stack prints when ready (e.g. "API key", "embedded AWS")."""
        match = re.search(rf"^\s+{re.escape(label)}\s+(\S.*?)\s*$", self.log_text(), re.M)
        return match.group(1) if match else None

    # --- the embedded AWS and the operator tool
    def sqs(self):
        return sqs_client(self.aws_endpoint)

    def operator(self, *args: str, seconds: float = 60) -> str:
        """The operator tool with ``args`` against the stack's AWS; its stdout."""
        return run_operator_tool(self.aws_endpoint, *args, seconds=seconds)

    def create_api_key(self, account: str, name: str = "e2e") -> str:
        """A new API key for ``account``, made by the operator tool as an operator would."""
        output = self.operator("keys", "create", "--account", account, "--name", name)
        keys = re.findall(r"^(cq_live_\S+)$", output, re.M)
        if len(keys) != 1:
            raise StackError(f"no key in the operator tool's output:\n{output}")
        return keys[0]

    # --- stopping
    def stop(self, signum: int = signal.SIGINT, seconds: float = STOP_SECONDS) -> Stopped:
        """Send ``signum`` (Ctrl-C), wait for the exit (SIGKILL after ``seconds``), then kill any
        process the stack had started that is still alive. Idempotent."""
        if self._stopped:
            return self._stopped
        tracked = descendants(self.pid) if self.process.poll() is None else []
        started = time.monotonic()
        if self.process.poll() is None:
            os.kill(self.pid, signum)
        try:
            returncode = self.process.wait(timeout=seconds)
        except subprocess.TimeoutExpired:
            tracked += [p for p in descendants(self.pid) if p not in tracked]
            self.process.kill()
            returncode = self.process.wait()
        took = time.monotonic() - started
        leftovers = wait_gone(tracked, LEFTOVER_GRACE)
        kill_all(leftovers)
        self.session.close()
        self._stopped = Stopped(returncode, took, tracked, leftovers)
        return self._stopped


def start(
    workdir: Path,
    *,
    port: int | None = None,
    key: str | None = None,
    wait: bool = True,
    **env: str | None,
) -> LocalStack:
    """Start ``python -m devstack`` on loopback; by default wait until it is ready.

    ``key`` None leaves SMSGW_DEV_API_KEY unset (the stack then prints a generated one, read
    from its banner); AWS_ENDPOINT_URL is removed unless given in ``env``, so the stack
    starts its own AWS. A stack that does not become ready is killed; StackError says why.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    settings = {
        "SMSGW_PORT": str(port),
        "SMSGW_OUTBOX": str(workdir / "outbox.jsonl"),
        "SMSGW_INBOX": str(workdir / "inbox.jsonl"),
        "SMSGW_DEV_API_KEY": key,
        **env,
    }
    with open(workdir / "stack.log", "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "devstack"],
            cwd=PROJECT,
            env=clean_env(**settings),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    given = {name: value for name, value in settings.items() if value is not None}
    stack = LocalStack(process, port, key, workdir, given)
    if wait:
        try:
            wait_ready(stack)
        except BaseException:
            stack.stop(signal.SIGKILL if process.poll() is None else signal.SIGINT)
            raise
    return stack


@dataclass
class ApiProcess:
    """A ``python -m devstack.api``: one more copy of the API beside a running stack."""

    process: subprocess.Popen
    port: int

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def kill(self) -> None:
        self.process.kill()
        self.process.wait()


def start_api(workdir: Path, aws_endpoint: str, **env: str) -> ApiProcess:
    """One more API on the stack's AWS, on a free port, once it answers GET /health."""
    port = free_port()
    with open(workdir / f"api-{port}.log", "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "devstack.api"],
            cwd=PROJECT,
            env=clean_env(SMSGW_PORT=str(port), AWS_ENDPOINT_URL=aws_endpoint, **LOCAL_AWS, **env),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    api = ApiProcess(process, port)
    deadline = time.monotonic() + STARTUP_SECONDS
    while not _answers_health(api.url):
        if process.poll() is not None or time.monotonic() > deadline:
            api.kill()
            raise StackError(f"the API on port {port} did not start; see {log.name}")
        time.sleep(POLL)
    return api


def wait_ready(stack: LocalStack, seconds: float = STARTUP_SECONDS) -> None:
    """Until GET /health answers 200 and the banner is out (it names the AWS endpoint)."""
    deadline = time.monotonic() + seconds
    healthy = False
    while time.monotonic() < deadline:
        if stack.process.poll() is not None:
            raise StackError(
                f"the stack exited with {stack.process.returncode} before it was "
                f"ready\n--- log ---\n{stack.log_tail()}"
            )
        healthy = healthy or _answers_health(stack.url)
        if healthy and "Press Ctrl-C to stop." in stack.log_text():
            stack.aws_endpoint = stack.banner_value("embedded AWS") or ""
            stack.key = stack.key or stack.banner_value("API key")
            return
        time.sleep(POLL)
    raise StackError(
        f"the stack was not ready within {seconds}s (healthy={healthy})\n"
        f"--- log ---\n{stack.log_tail()}"
    )


def _answers_health(url: str) -> bool:
    try:
        return requests.get(url + "/health", timeout=1).status_code == 200
    except requests.RequestException:
        return False


def run_operator_tool(aws_endpoint: str, *args: str, seconds: float = 60) -> str:
    """The operator tool (``python -m OPERATOR_TOOL ARGS``) against ``aws_endpoint``; its stdout."""
    result = subprocess.run(
        [sys.executable, "-m", OPERATOR_TOOL, *args],
        cwd=PROJECT,
        env=clean_env(AWS_ENDPOINT_URL=aws_endpoint, **LOCAL_AWS),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=seconds,
    )
    if result.returncode != 0:
        raise StackError(f"operator tool {args} failed ({result.returncode}):\n{result.stderr}")
    return result.stdout


def sqs_client(endpoint: str):
    import boto3

    return boto3.client(
        "sqs",
        endpoint_url=endpoint,
        region_name=LOCAL_AWS["AWS_DEFAULT_REGION"],
        aws_access_key_id="local",
        aws_secret_access_key="local",
    )


def peek_queue(endpoint: str, queue_name: str, wanted: Callable[[dict], bool]) -> dict | None:
    """The first body on a queue for which ``wanted`` is true, left on the queue.

    Messages are received (hidden) until the wanted one turns up or the queue is drained,
    then all are made visible again at once, so each is received once per call (the
    queues move a message to their dead-letter queue after a few receives).
    """
    sqs = sqs_client(endpoint)
    url = sqs.get_queue_url(QueueName=queue_name)["QueueUrl"]
    held, found = [], None
    try:
        while found is None:
            batch = sqs.receive_message(
                QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0, VisibilityTimeout=30
            ).get("Messages", [])
            if not batch:
                break
            held += [m["ReceiptHandle"] for m in batch]
            found = next((b for b in (json.loads(m["Body"]) for m in batch) if wanted(b)), None)
    finally:
        _make_visible(sqs, url, held)
    return found


def _make_visible(sqs, url: str, receipt_handles: list[str]) -> None:
    for first in range(0, len(receipt_handles), 10):
        try:
            sqs.change_message_visibility_batch(
                QueueUrl=url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": h, "VisibilityTimeout": 0}
                    for i, h in enumerate(receipt_handles[first : first + 10])
                ],
            )
        except Exception:  # noqa: BLE001  a consumer may have deleted some meanwhile
            pass
