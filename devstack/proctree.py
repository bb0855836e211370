"""The processes a local stack started, from /proc: to check that stopping it left none.

Used by the end-to-end tests and the benchmarks, which start the stack as a subprocess.
"""

from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

POLL = 0.05


@dataclass(frozen=True)
class Proc:
    pid: int
    start_time: int  # clock ticks since boot: tells a process from a later one with its pid
    cmdline: str


def _stat(pid: int) -> tuple[str, int, int] | None:
    """(state, ppid, start time) of a process, or None if it does not exist."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    fields = raw[raw.rindex(")") + 2 :].split()
    return fields[0], int(fields[1]), int(fields[19])


def descendants(root: int) -> list[Proc]:
    """Every live process below ``root`` (children, grandchildren, ...)."""
    parents = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            stat = _stat(int(entry.name))
            if stat and stat[0] != "Z":
                parents[int(entry.name)] = stat
    found, frontier = [], [root]
    while frontier:
        parent = frontier.pop()
        for pid, (_state, ppid, start) in parents.items():
            if ppid == parent:
                try:
                    cmd = (
                        Path(f"/proc/{pid}/cmdline")
                        .read_bytes()
                        .replace(b"\0", b" ")
                        .decode()
                        .strip()
                    )
                except OSError:
                    cmd = "?"
                found.append(Proc(pid, start, cmd))
                frontier.append(pid)
    return found


def is_alive(proc: Proc) -> bool:
    stat = _stat(proc.pid)
    return stat is not None and stat[0] != "Z" and stat[2] == proc.start_time


def wait_gone(procs: list[Proc], seconds: float) -> list[Proc]:
    """Wait up to ``seconds`` for ``procs`` to exit; return the ones still alive."""
    deadline = time.monotonic() + seconds
    while True:
        alive = [p for p in procs if is_alive(p)]
        if not alive or time.monotonic() > deadline:
            return alive
        time.sleep(POLL)


def kill_all(procs: list[Proc]) -> None:
    for proc in procs:
        if is_alive(proc):
            try:
                os.kill(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
