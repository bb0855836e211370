"""Embedded AWS for the local stack: a moto server (DynamoDB and SQS) on loopback.

    python -m devstack.aws [--port 0]

Prints ``listening on http://127.0.0.1:PORT`` once it accepts requests, and exits when
its parent process goes away, so an interrupted stack leaves nothing behind.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
import time

from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from werkzeug.serving import make_server


class SerialDynamoDB:
    """WSGI wrapper running one DynamoDB request at a time.

    moto applies a request (a conditional update, a whole transaction) in several Python
    steps with no lock; real DynamoDB applies each atomically. Serialising DynamoDB calls
    gives the local stack the same guarantee, while SQS long polls still run side by side.
    """

    def __init__(self, app):
        self.app = app
        self.lock = threading.Lock()

    def __call__(self, environ, start_response):
        if environ.get("HTTP_X_AMZ_TARGET", "").startswith("DynamoDB_"):
            with self.lock:
                return list(self.app(environ, start_response))
        return self.app(environ, start_response)


def fair_queues() -> None:
    """Give moto's standard queues the order of SQS fair queues.

    moto hands out a standard queue's messages oldest first, whoever sent them. SQS fair
    queues (a MessageGroupId on a standard queue: the gateway tags each SMS with its
    account) hand out first the messages of groups with few messages in flight, so one
    tenant's backlog does not hold back a quiet tenant's. Same order here: messages of the
    groups with the fewest in flight first, oldest first within that.
    """
    from collections import Counter

    from moto.sqs.models import Queue

    oldest_first = Queue.messages.fget  # type: ignore[attr-defined]

    def fair(queue):
        visible = oldest_first(queue)
        if queue.fifo_queue:
            return visible
        in_flight = Counter(m.group_id for m in queue._messages if not m.visible)
        return sorted(visible, key=lambda message: in_flight[message.group_id])

    Queue.messages = property(fair)  # type: ignore[method-assign,assignment]


def exit_with_parent(parent_pid: int) -> None:
    def watch():
        while os.getppid() == parent_pid:
            time.sleep(0.5)
        os._exit(0)

    threading.Thread(target=watch, daemon=True).start()


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    args = parser.parse_args(argv)
    exit_with_parent(os.getppid())
    # Ctrl-C reaches the whole process group; this server stops last, when the stack's
    # parent terminates it, so the bridge can still hand its messages back to SQS.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    fair_queues()
    app = SerialDynamoDB(DomainDispatcherApplication(create_backend_app))
    server = make_server(
        "127.0.0.1", args.port, app, threaded=True, request_handler=MotoRequestHandler
    )
    print(f"listening on http://127.0.0.1:{server.server_address[1]}", flush=True)
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    server.serve_forever()
    sys.exit(0)


if __name__ == "__main__":
    main()
