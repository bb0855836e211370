"""`make run`: the whole gateway on this machine, on loopback only.

Starts the embedded AWS (unless AWS_ENDPOINT_URL names one), creates tables and queues,
seeds a development API key, serves the API with Chalice's local server, and runs the
device bridge on its simulated phone. Ctrl-C stops everything it started.

Environment: SMSGW_PORT (API port, default 8000), SMSGW_DEV_API_KEY (seeded key; printed
when unset), AWS_ENDPOINT_URL, SMSGW_OUTBOX and SMSGW_INBOX (the simulated phone's files).
Webhooks: SMSGW_WEBHOOK_ALLOW_LOCAL defaults to on here (a receiver on 127.0.0.1 works) and
SMSGW_WEBHOOK_RETRY_DELAYS to a few seconds; the worker runs off its queue like the other
SQS handlers.
"""

from __future__ import annotations

import logging
import os
import secrets
import signal
import sys
import threading
from pathlib import Path

from . import processes

PROJECT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"


def prepare_environment() -> None:
    for name, value in {
        "AWS_ACCESS_KEY_ID": "local",
        "AWS_SECRET_ACCESS_KEY": "local",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_REGION": "us-east-1",
    }.items():
        os.environ.setdefault(name, value)
    os.environ.setdefault("SMSGW_OUTBOX", str(PROJECT / "var" / "outbox.jsonl"))
    os.environ.setdefault("SMSGW_INBOX", str(PROJECT / "var" / "inbox.jsonl"))
    # Webhooks to a receiver on this machine (http://127.0.0.1:...), retried within seconds.
    os.environ.setdefault("SMSGW_WEBHOOK_ALLOW_LOCAL", "1")
    os.environ.setdefault("SMSGW_WEBHOOK_RETRY_DELAYS", "1,2,5,10,30")
    from chinqit_admin.cli import load_stage

    load_stage("dev")


def register_dev_api_key() -> tuple[str, bool]:
    from chalicelib import auth

    key = os.environ.get("SMSGW_DEV_API_KEY") or auth.KEY_PREFIXES["api"] + secrets.token_urlsafe(
        32
    )
    auth.import_key("api", "dev", key, name="local stack")
    return key, "SMSGW_DEV_API_KEY" not in os.environ


LOCAL_DEVICE = "local-phone"


def register_local_phone() -> str:
    """The simulated phone, in the shared pool (it serves every account of the local
    stack), with its own queues; returns a fresh device key."""
    from chalicelib import auth
    from chalicelib.models import Device
    from chinqit_admin import provision

    Device(LOCAL_DEVICE, name="simulated phone").save()
    provision.device_queues(LOCAL_DEVICE)
    key, _ = auth.create_key("device", LOCAL_DEVICE, name="local stack bridge")
    return key


def bridge_environment(port: int, device_key: str) -> dict:
    """The bridge's settings; any SMSGW_BRIDGE_* already in the environment wins."""
    from chalicelib.config import settings

    config = settings()
    defaults = {
        "SMSGW_BRIDGE_API_URL": f"http://{HOST}:{port}",
        # The local stack's API listens on plain HTTP on loopback only.
        "SMSGW_BRIDGE_ALLOW_INSECURE_HTTP": "true",
        "SMSGW_BRIDGE_DRIVER": "simulator",
        # As on a real phone: only the device key; AWS credentials come from the API.
        "SMSGW_BRIDGE_AWS_CREDENTIALS": "device",
        "SMSGW_BRIDGE_OUTBOUND_QUEUE": config.outbound_queue,
        "SMSGW_BRIDGE_PRIORITY_QUEUE": config.priority_queue,
        # Beside the phone's files, so two stacks with their own files never share one.
        "SMSGW_BRIDGE_JOURNAL": str(
            Path(os.environ["SMSGW_OUTBOX"]).parent / "bridge-journal.sqlite3"
        ),
        # No carrier watches the simulated phone: no need to pace it like a SIM.
        "SMSGW_BRIDGE_SENDS_PER_MINUTE": "6000",
        "SMSGW_BRIDGE_SEND_BURST": "20",
        "SMSGW_BRIDGE_HEARTBEAT_INTERVAL": "10",
        # A stopping bridge finishes its long poll first: short polls keep Ctrl-C quick.
        "SMSGW_BRIDGE_WAIT_TIME_SECONDS": "5",
    }
    return {
        **defaults,
        **{
            k: v
            for k, v in os.environ.items()
            if k in defaults or k.startswith("SMSGW_BRIDGE_DRIVER_OPTION_")
        },
        "SMSGW_BRIDGE_DEVICE_KEY": device_key,
    }


def main() -> int:
    prepare_environment()
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("chinqit").setLevel(logging.INFO)
    port = int(os.environ.get("SMSGW_PORT", "8000"))
    stack = processes.Stack()
    stopping = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stopping.set())
    try:
        if not os.environ.get("AWS_ENDPOINT_URL"):
            os.environ["AWS_ENDPOINT_URL"] = stack.start_aws()
        from chinqit_admin import provision

        provision.all_resources()
        try:
            key, generated = register_dev_api_key()
        except ValueError as exc:
            print(f"SMSGW_DEV_API_KEY: {exc}", file=sys.stderr)
            return 2
        stack.serve_api(PROJECT, HOST, port)
        stack.start_bridge(bridge_environment(port, register_local_phone()))
        print(banner(port, key, generated), flush=True)
        stopping.wait()
    finally:
        stack.stop()
    return 0


def banner(port: int, key: str, generated: bool) -> str:
    shown = key if generated else "(from SMSGW_DEV_API_KEY)"
    return "\n".join(
        [
            "Chinqit SMS Gateway, local stack ready",
            f"  API            http://{HOST}:{port}",
            f"  API key        {shown}",
            f"  embedded AWS   {os.environ['AWS_ENDPOINT_URL']}",
            f"  phone outbox   {os.environ['SMSGW_OUTBOX']}",
            f"  phone inbox    {os.environ['SMSGW_INBOX']}",
            f"  device bridge  simulator driver, device {LOCAL_DEVICE}",
            "Press Ctrl-C to stop.",
        ]
    )


if __name__ == "__main__":
    sys.exit(main())
