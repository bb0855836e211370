"""The local stack for the end-to-end benches: devstack.harness plus what only benches need.

``start()`` runs ``python -m devstack`` (devstack.harness.start) in a temporary directory
with a known development API key; ``finish()`` stops it with SIGINT (Ctrl-C), kills any
process it left behind and removes the directory. The rest reads figures out of the stack's
log and turns how the stack stopped into a report row.

Talks to the stack over the wire only (HTTP, files, the stack's log); imports no AWS
library, so it can run in the same process as the in-process benches.
"""

from __future__ import annotations

import re
import secrets
import shutil
import tempfile
import time
from datetime import datetime
from pathlib import Path

from devstack import harness
from devstack.harness import LocalStack, Stopped, fresh_local_number

STOP_SECONDS = 20
LOG_TIME = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),(\d{3}) ", re.M)


def start(**env: str) -> LocalStack:
    """Start the stack (``env``: extra SMSGW_* settings) and wait until it is ready."""
    workdir = Path(tempfile.mkdtemp(prefix="chinqit-bench-"))
    try:
        return harness.start(workdir, key="cq_live_bench" + secrets.token_urlsafe(32), **env)
    except BaseException:
        shutil.rmtree(workdir, ignore_errors=True)
        raise


def finish(stack: LocalStack) -> Stopped:
    """Stop the stack and remove its temporary directory."""
    try:
        return stack.stop(seconds=STOP_SECONDS)
    finally:
        shutil.rmtree(stack.workdir, ignore_errors=True)


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
    """A random Mauritanian number in international form (+222 and 8 digits)."""
    return "+222" + fresh_local_number()


def stop_row(stopped: Stopped) -> dict:
    clean = stopped.returncode == 0 and not stopped.leftovers
    return {
        "bench": "stack",
        "measure": "local stack stopped with SIGINT",
        "value": f"exit {stopped.returncode} in {stopped.seconds:.1f}s, "
        f"{len(stopped.leftovers)} process(es) left running",
        "budget": "exit 0, none left",
        "result": "PASS" if clean else "FAIL",
    }


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
