"""Helpers for the end-to-end tests: run the local stack as a subprocess and talk to it.

Everything here works on the wire: HTTP to the API, boto3 to the embedded AWS, files for
the simulated phone, /proc for the processes the stack started. Nothing imports the app.
"""
from __future__ import annotations

import json
import os
import queue as queue_module
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import requests

from devstack.proctree import Proc, descendants, kill_all, wait_gone

PROJECT = Path(__file__).resolve().parents[2]
HOST = "127.0.0.1"
STARTUP_SECONDS = 60     # the stack must answer GET /health within this
STOP_SECONDS = 15        # ...and exit within this after Ctrl-C
LEFTOVER_GRACE = 5       # children get this long to vanish once the stack has exited
POLL = 0.05
PRIORITY_QUEUE = "chinqit-dev-outbound-priority"
OUTBOUND_QUEUE = "chinqit-dev-outbound"
LOCAL_AWS = {"AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local",
             "AWS_DEFAULT_REGION": "us-east-1"}
CODE = re.compile(r"(?<!\d)(\d{6})(?!\d)")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def port_is_closed(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex((HOST, port)) != 0


def clean_env(**overrides: Optional[str]) -> dict:
    """The test process's environment without AWS_* / SMSGW_* (tests/conftest.py sets some),
    plus ``overrides``; an override of None removes the variable."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("AWS_", "SMSGW_")) and k != "PYTHONPATH"}
    env["PYTHONUNBUFFERED"] = "1"
    for name, value in overrides.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return env


# --- processes, from /proc (psutil is not a dependency) ---------------------------------

# --- the local stack --------------------------------------------------------------------

@dataclass
class Stopped:
    returncode: int
    tracked: list[Proc]      # the stack's descendants just before Ctrl-C
    leftovers: list[Proc]    # those still alive after the stack exited (killed since)


@dataclass
class LocalStack:
    """A running ``python -m devstack``."""

    process: subprocess.Popen
    port: int
    key: Optional[str]
    outbox: Path
    inbox: Path
    log: Path
    url: str = ""
    aws_endpoint: str = ""
    _stopped: Optional[Stopped] = field(default=None, repr=False)

    def __post_init__(self):
        self.url = f"http://{HOST}:{self.port}"

    @property
    def pid(self) -> int:
        return self.process.pid

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def banner_value(self, label: str) -> Optional[str]:
        match = re.search(rf"^\s+{re.escape(label)}\s+(\S.*?)\s*$", self.log_text(), re.M)
        return match.group(1) if match else None

    def headers(self, key: Optional[str] = "default") -> dict:
        key = self.key if key == "default" else key
        return {"X-API-Key": key} if key is not None else {}

    def get(self, path: str, key: Optional[str] = "default", **kw) -> requests.Response:
        return requests.get(self.url + path, headers={**self.headers(key), **kw.pop("headers", {})},
                            timeout=kw.pop("timeout", 30), **kw)

    def post(self, path: str, body=None, key: Optional[str] = "default", **kw) -> requests.Response:
        kw.setdefault("timeout", 30)
        headers = {**self.headers(key), **kw.pop("headers", {})}
        if body is not None:
            return requests.post(self.url + path, json=body, headers=headers, **kw)
        return requests.post(self.url + path, headers=headers, **kw)

    def outbox_lines(self) -> list[dict]:
        """What the simulated phone has sent (partial or garbled lines skipped)."""
        if not self.outbox.exists():
            return []
        lines = []
        for raw in self.outbox.read_text(errors="replace").splitlines():
            try:
                lines.append(json.loads(raw))
            except ValueError:
                continue
        return lines

    def sqs(self):
        return sqs_client(self.aws_endpoint)

    def stop(self, signum: int = signal.SIGINT) -> Stopped:
        """Ctrl-C the stack, wait for it, and find any process it leaves behind (then kill it)."""
        if self._stopped:
            return self._stopped
        tracked = descendants(self.pid) if self.process.poll() is None else []
        if self.process.poll() is None:
            os.kill(self.pid, signum)
        try:
            returncode = self.process.wait(timeout=STOP_SECONDS)
        except subprocess.TimeoutExpired:
            tracked += [p for p in descendants(self.pid) if p not in tracked]
            self.process.kill()
            self.process.wait()
            kill_all(tracked)
            raise AssertionError(f"the stack did not exit within {STOP_SECONDS}s of "
                                 f"{signal.Signals(signum).name}\n--- log ---\n{self.log_text()[-4000:]}")
        leftovers = wait_gone(tracked, LEFTOVER_GRACE)
        kill_all(leftovers)
        self._stopped = Stopped(returncode, tracked, leftovers)
        return self._stopped


def start_stack(workdir: Path, *, port: Optional[int] = None, key: Optional[str] = None,
                wait: bool = True, **env: Optional[str]) -> LocalStack:
    """Start ``python -m devstack`` on loopback; by default wait until it is ready.

    ``key`` None leaves SMSGW_DEV_API_KEY unset (the stack then prints a generated one);
    AWS_ENDPOINT_URL is removed unless given in ``env``, so the stack starts its own AWS.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    outbox, inbox, log = workdir / "outbox.jsonl", workdir / "inbox.jsonl", workdir / "stack.log"
    variables = clean_env(SMSGW_PORT=str(port), SMSGW_OUTBOX=str(outbox), SMSGW_INBOX=str(inbox),
                          SMSGW_DEV_API_KEY=key, **env)
    with open(log, "wb") as log_file:
        process = subprocess.Popen([sys.executable, "-m", "devstack"], cwd=PROJECT, env=variables,
                                   stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT)
    stack = LocalStack(process, port, key, outbox, inbox, log)
    if wait:
        try:
            wait_ready(stack)
        except BaseException:
            stack.stop(signal.SIGKILL if process.poll() is None else signal.SIGINT)
            raise
    return stack


def wait_ready(stack: LocalStack, seconds: float = STARTUP_SECONDS) -> None:
    """Until GET /health answers 200 and the banner is out (it names the AWS endpoint)."""
    deadline = time.monotonic() + seconds
    healthy = False
    while time.monotonic() < deadline:
        if stack.process.poll() is not None:
            raise AssertionError(f"the stack exited with {stack.process.returncode} before it was "
                                 f"ready\n--- log ---\n{stack.log_text()[-4000:]}")
        if not healthy:
            try:
                healthy = requests.get(stack.url + "/health", timeout=1).status_code == 200
            except requests.RequestException:
                pass
        if healthy and "Press Ctrl-C to stop." in stack.log_text():
            stack.aws_endpoint = stack.banner_value("embedded AWS") or ""
            if stack.key is None:
                stack.key = stack.banner_value("API key")
            return
        time.sleep(POLL)
    raise AssertionError(f"the stack was not ready within {seconds}s (healthy={healthy})\n"
                         f"--- log ---\n{stack.log_text()[-4000:]}")


# --- the embedded AWS and the operator tool ---------------------------------------------

def sqs_client(endpoint: str):
    import boto3

    return boto3.client("sqs", endpoint_url=endpoint, region_name="us-east-1",
                        aws_access_key_id="local", aws_secret_access_key="local")


def start_embedded_aws(seconds: float = 30) -> tuple[subprocess.Popen, str]:
    """Run ``python -m devstack.aws`` ourselves; return it and its endpoint URL."""
    process = subprocess.Popen([sys.executable, "-m", "devstack.aws"], cwd=PROJECT,
                               env=clean_env(), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                               stderr=subprocess.DEVNULL, text=True)
    lines: queue_module.Queue = queue_module.Queue()
    threading.Thread(target=lambda: lines.put(process.stdout.readline()), daemon=True).start()
    try:
        line = lines.get(timeout=seconds).strip()
    except queue_module.Empty:
        line = ""
    if not line.startswith("listening on http://"):
        process.kill()
        process.wait()
        raise AssertionError(f"devstack.aws did not start: {line!r}")
    return process, line.removeprefix("listening on ")


def run_admin(stack: LocalStack, *args: str, seconds: float = 60) -> str:
    """``python -m chinqit_admin ARGS`` against the stack's embedded AWS; its stdout."""
    result = subprocess.run([sys.executable, "-m", "chinqit_admin", *args], cwd=PROJECT,
                            env=clean_env(AWS_ENDPOINT_URL=stack.aws_endpoint, **LOCAL_AWS),
                            stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=seconds)
    assert result.returncode == 0, f"admin {args} failed ({result.returncode}):\n{result.stderr}"
    return result.stdout


def create_api_key(stack: LocalStack, account: str, name: str = "e2e") -> str:
    """A new API key for ``account``, made by the operator tool as an operator would."""
    output = run_admin(stack, "keys", "create", "--account", account, "--name", name)
    keys = re.findall(r"^(cq_live_\S+)$", output, re.M)
    assert len(keys) == 1, f"no key in the operator tool's output:\n{output}"
    return keys[0]


def peek_queue(endpoint: str, queue_name: str, wanted: Callable[[dict], bool]) -> Optional[dict]:
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
            batch = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0,
                                        VisibilityTimeout=30).get("Messages", [])
            if not batch:
                break
            held += [m["ReceiptHandle"] for m in batch]
            found = next((b for b in (json.loads(m["Body"]) for m in batch) if wanted(b)), None)
    finally:
        for start in range(0, len(held), 10):
            try:
                sqs.change_message_visibility_batch(QueueUrl=url, Entries=[
                    {"Id": str(i), "ReceiptHandle": h, "VisibilityTimeout": 0}
                    for i, h in enumerate(held[start:start + 10])])
            except Exception:  # noqa: BLE001  a consumer may have deleted some meanwhile
                pass
    return found


def wait_for_sms(stack: LocalStack, queue_name: str, message_id: str, seconds: float = 20,
                 endpoint: Optional[str] = None) -> dict:
    """An outbound SMS as it left the API ({"messageId", "to", "text", ...}): from its SQS
    queue or, once the device bridge has taken it from there, from the simulated phone's
    outbox. Waits while neither has it (e.g. a bridge holds it in flight)."""
    deadline = time.monotonic() + seconds
    while True:
        for line in stack.outbox_lines():
            if line.get("messageId") == message_id:
                return line
        body = peek_queue(endpoint or stack.aws_endpoint, queue_name,
                          lambda b: b.get("messageId") == message_id)
        if body is not None:
            return body
        if time.monotonic() > deadline:
            raise AssertionError(f"SMS {message_id} is neither on {queue_name} nor in "
                                 f"{stack.outbox} after {seconds}s")
        time.sleep(POLL * 2)


def wait_for_otp_code(stack: LocalStack, message_id: str, seconds: float = 20) -> tuple[str, str]:
    """(code, full SMS text) of an OTP: the code exists in clear only on the priority
    queue and, once sent, in the simulated phone's outbox."""
    text = wait_for_sms(stack, PRIORITY_QUEUE, message_id, seconds)["text"]
    return _code(text), text


def _code(text: str) -> str:
    codes = CODE.findall(text)
    assert len(codes) == 1, f"expected one 6-digit code in the OTP text: {text!r}"
    return codes[0]


def fresh_phone() -> str:
    """A random local number (8 digits, starting with 2, 3 or 4) so re-runs never collide."""
    import secrets

    return f"{secrets.choice('234')}{secrets.randbelow(10 ** 7):07d}"
