"""On-net share: which line the gateway routes SMS to, with both operators' lines online,
then with the Mattel line offline. In-process (moto), deterministic: counted, not timed.

    python -m bench.routing
"""

from __future__ import annotations

import json
import random
import sys

from bench import Report, main_for
from bench._gateway import gateway

MATTEL_SHARE_BUDGET = 0.95  # of SMS to 3x numbers leaving from the Mattel line
N = 200


def _bodies(name: str) -> list[dict]:
    from chalicelib import queue

    bodies = []
    while True:
        batch = (
            queue.sqs()
            .receive_message(
                QueueUrl=queue.queue_url(name), MaxNumberOfMessages=10, WaitTimeSeconds=0
            )
            .get("Messages", [])
        )
        if not batch:
            return bodies
        bodies += [json.loads(m["Body"]) for m in batch]


def _line(api, device_id: str, number: str) -> None:
    from chalicelib import auth
    from chalicelib.models import Device
    from chinqit_admin import provision

    Device(device_id, name=device_id).save()
    provision.device_queues(device_id)
    key = auth.create_key("device", device_id)[0]
    body = {"ownQueue": True, "lines": [{"slot": 1, "number": number}]}
    headers = {"Content-Type": "application/json", "X-Device-Key": key}
    answer = api.client.http.post("/device/heartbeat", headers=headers, body=json.dumps(body))
    if answer.status_code != 200:
        raise RuntimeError(f"heartbeat: {answer.status_code} {answer.body!r}")


def _send(api, count: int) -> None:
    rng = random.Random(7)
    for _ in range(count):
        # Mattel mobile numbers: 3x, but not 35 (fixed lines, which name no network)
        number = "3" + rng.choice("01236789") + "".join(str(rng.randrange(10)) for _ in range(6))
        answer = api.post("/messages/send", {"message": "Salam", "phoneNumber": number})
        if answer.status_code != 200:
            raise RuntimeError(f"send: {answer.status_code} {answer.body!r}")


def measure() -> dict:
    from chalicelib import clock, quotas, routing
    from chalicelib.config import settings
    from chalicelib.models import Device

    with gateway() as api:
        quotas.set_quotas("bench", {"smsPerMinute": 100_000})  # the bench sends 2 x N at once
        _line(api, "mattel-line", "+22238000001")
        _line(api, "mauritel-line", "+22244000001")
        _send(api, N)
        on = {
            d: len(_bodies(routing.device_queue(d, "sms")))
            for d in ("mattel-line", "mauritel-line")
        }
        shared = len(_bodies(settings().outbound_queue))
        # the Mattel line goes quiet: its last heartbeat is now older than the offline limit
        old = clock.now().timestamp() - settings().device_offline_seconds - 1
        from datetime import UTC, datetime

        Device("mattel-line").update(
            actions=[Device.last_seen_at.set(datetime.fromtimestamp(old, UTC))]
        )
        routing.forget()
        _send(api, N)
        offline = {
            "mattel-line": len(_bodies(routing.device_queue("mattel-line", "sms"))),
            "mauritel-line": len(_bodies(routing.device_queue("mauritel-line", "sms"))),
            "shared": len(_bodies(settings().outbound_queue)),
        }
    return {"online": {**on, "shared": shared}, "offline": offline}


def run() -> Report:
    m = measure()
    share = m["online"]["mattel-line"] / N
    left = m["offline"]["shared"] + m["offline"]["mauritel-line"]
    report = Report("routing")
    report.rows += [
        {
            "bench": "routing",
            "measure": f"SMS to 3x numbers from the Mattel line, both lines online (N={N})",
            "value": f"{share:.0%}",
            "budget": f">= {MATTEL_SHARE_BUDGET:.0%}",
            "result": "PASS" if share >= MATTEL_SHARE_BUDGET else "FAIL",
        },
        {
            "bench": "routing",
            "measure": f"... with the Mattel line offline: routed to a line that is online (N={N})",
            "value": f"{left}/{N}",
            "budget": f"{N}/{N}",
            "result": "PASS" if left == N and m["offline"]["mattel-line"] == 0 else "FAIL",
        },
    ]
    report.details = [
        f"both online: {m['online']}",
        f"Mattel offline: {m['offline']} (the shared queues are polled by every shared device)",
    ]
    return report


if __name__ == "__main__":
    sys.exit(main_for(run))
