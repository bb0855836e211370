"""``python -m devstack.api``: one more API process beside a running local stack.

The same routes, on SMSGW_PORT, on the stack's AWS (AWS_ENDPOINT_URL, required), and
nothing else: no bridge, no queue handlers, no schedules, no provisioning. Lambda runs
many copies of the API; the chaos run kills one of them between a write and its queue
while the stack goes on. Prints "API listening on <url>" once it serves.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading

from . import processes
from .__main__ import HOST, PROJECT, prepare_environment


def main() -> int:
    if not os.environ.get("AWS_ENDPOINT_URL"):
        print("AWS_ENDPOINT_URL must name the running stack's AWS", file=sys.stderr)
        return 2
    prepare_environment()
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    port = int(os.environ.get("SMSGW_PORT", "8000"))
    stopping = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stopping.set())
    stack = processes.Stack()
    try:
        stack.serve_api(PROJECT, HOST, port, event_handlers=False)
        print(f"API listening on http://{HOST}:{port}", flush=True)
        stopping.wait()
    finally:
        stack.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
