"""Test-only helpers for the end-to-end tests, on top of devstack.harness (the stack itself).

Everything here works on the wire: HTTP to the API, boto3 to the embedded AWS, files for
the simulated phone, /proc for the processes the stack started. Nothing imports the app.
"""

from __future__ import annotations

import queue as queue_module
import re
import socket
import subprocess
import sys
import threading
import time

from devstack.harness import HOST, POLL, PRIORITY_QUEUE, PROJECT, LocalStack, clean_env, peek_queue

CODE = re.compile(r"(?<!\d)(\d{6})(?!\d)")


def port_is_closed(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex((HOST, port)) != 0


def start_embedded_aws(seconds: float = 30) -> tuple[subprocess.Popen, str]:
    """Run ``python -m devstack.aws`` ourselves; return it and its endpoint URL."""
    process = subprocess.Popen(
        [sys.executable, "-m", "devstack.aws"],
        cwd=PROJECT,
        env=clean_env(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
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


def wait_for_sms(
    stack: LocalStack,
    queue_name: str,
    message_id: str,
    seconds: float = 20,
    endpoint: str | None = None,
) -> dict:
    """An outbound SMS as it left the API ({"messageId", "to", "text", ...}): from its SQS
    queue or, once the device bridge has taken it from there, from the simulated phone's
    outbox. Waits while neither has it (e.g. a bridge holds it in flight)."""
    deadline = time.monotonic() + seconds
    while True:
        for line in stack.outbox_lines():
            if line.get("messageId") == message_id:
                return line
        body = peek_queue(
            endpoint or stack.aws_endpoint, queue_name, lambda b: b.get("messageId") == message_id
        )
        if body is not None:
            return body
        if time.monotonic() > deadline:
            raise AssertionError(
                f"SMS {message_id} is neither on {queue_name} nor in "
                f"{stack.outbox} after {seconds}s"
            )
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
