"""Readiness: can this Lambda reach what it needs? ``GET /ready`` reads one item from
DynamoDB and one queue's attributes from SQS; ``GET /health`` stays a liveness check with
no AWS call, for load balancers and uptime probes.

The answer is remembered for CHECK_SECONDS per container, so a flood of probes costs at most
two AWS calls per container every few seconds.
"""

from __future__ import annotations

import logging

from . import queue
from .config import settings
from .errors import ServiceUnavailable
from .models import Credential
from .ttlcache import TtlCache

log = logging.getLogger("chinqit.readiness")

CHECK_SECONDS = 5.0
PROBE_KEY = "readiness-probe"  # never a key hash: reading it finds nothing
_checked: TtlCache[dict[str, str]] = TtlCache(lambda _: CHECK_SECONDS, max_entries=1)


def check() -> dict[str, str]:
    """{"dynamodb": "ok", "sqs": "ok"}; raises ServiceUnavailable naming what failed."""
    checks = _checked.get("aws", _probe)
    failing = [name for name, state in checks.items() if state != "ok"]
    if failing:
        raise ServiceUnavailable(
            f"Not ready: {', '.join(failing)} unreachable", extra={"checks": checks}
        )
    return checks


def forget() -> None:
    _checked.forget()


def _probe() -> dict[str, str]:
    """Both at once: each call gives up within chalicelib/aws.py's bound (8 s), so the
    answer comes within it too."""
    from concurrent.futures import ThreadPoolExecutor

    probes = {"dynamodb": _read_dynamodb, "sqs": _read_sqs}
    with ThreadPoolExecutor(len(probes)) as pool:
        running = {name: pool.submit(_try, probe) for name, probe in probes.items()}
        return {name: future.result() for name, future in running.items()}


def _read_dynamodb() -> None:
    try:
        Credential.get(PROBE_KEY)
    except Credential.DoesNotExist:
        pass


def _read_sqs() -> None:
    queue.sqs().get_queue_attributes(
        QueueUrl=queue.queue_url(settings().priority_queue), AttributeNames=["QueueArn"]
    )


def _try(probe) -> str:
    try:
        probe()
    except Exception as error:  # noqa: BLE001 - any failure means not ready; said in the answer
        log.warning("readiness: %s failed: %s: %s", probe.__name__, type(error).__name__, error)
        return "unreachable"
    return "ok"
