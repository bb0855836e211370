"""AWS calls per request, counted with a botocore ``before-call`` hook.

In-process (moto ``mock_aws`` + chalice.test.Client). The scenario runs twice on fresh
phone numbers: round 1 is the first time each route runs in the "Lambda" (its very first
request also loads the API key), round 2 is warm: key cached, clients and queue URLs
resolved. The budget applies to the warm round. Counts are deterministic.

    python -m bench.aws_calls
"""

from __future__ import annotations

import itertools
import json
import re
import sys
from datetime import UTC, datetime, timedelta

from bench import Report, main_for, table, verdict
from bench._gateway import CALLS, gateway

BULK = "POST /messages/bulk (100 numbers)"
# bulk: one TransactWriteItems of its quota counters, 4 BatchWriteItem of 25 messages,
# 10 SendMessageBatch of 10
KEYED = "POST /messages/send (Idempotency-Key)"
RETRY = "POST /messages/send (its retry: replayed)"
LATER = "POST /messages/send (sendAt in 1 day)"
NEAR = "POST /messages/send (sendAt in 10 minutes)"  # queued now, with an SQS delay
BUDGET = {
    LATER: 3,
    NEAR: 3,
    "POST /messages/send": 2,
    KEYED: 2,  # the key's record rides in the message's transaction
    "POST /otp/send": 2,
    "POST /otp/verify (right code)": 2,
    "POST /otp/verify (wrong code)": 2,
    BULK: 15,
}
ORDER = [
    "POST /messages/send",
    KEYED,
    RETRY,
    LATER,
    NEAR,
    BULK,
    "POST /otp/send",
    "POST /otp/verify (right code)",
    "POST /otp/verify (wrong code)",
    "GET /messages/{id}",
]


def _expect(response, status, what):
    if response.status_code != status:
        raise RuntimeError(
            f"{what}: expected {status}, got {response.status_code} {response.body!r}"
        )
    return response.json


def _sent_code(calls) -> str:
    """The OTP as it went onto the queue (read from the SendMessage params: no extra call)."""
    for _service, operation, request in calls:  # request: botocore's serialized request dict
        if operation == "SendMessage":
            body = request["body"]
            if isinstance(body, (bytes, str)):  # SQS JSON protocol; older botocore: a query dict
                body = json.loads(body)
            return re.search(r"\b(\d{6})\b", json.loads(body["MessageBody"])["text"]).group(1)
    raise RuntimeError("POST /otp/send queued nothing")


def _round(api, n: int) -> dict[str, list]:
    """Each request once, on phone numbers of its own; the AWS calls each one made."""
    made = {}
    sms_phone, otp_phone = f"+2222000000{n}", f"+2223000000{n}"
    with CALLS.recording() as calls:
        body = _expect(
            api.post("/messages/send", {"phoneNumber": sms_phone, "message": "bench"}),
            200,
            "messages/send",
        )
    made["POST /messages/send"] = calls
    keyed = {"phoneNumber": sms_phone, "message": "bench keyed"}
    key = {"Idempotency-Key": f"bench-{n}"}
    for name in (KEYED, RETRY):
        with CALLS.recording() as calls:
            _expect(api.post("/messages/send", keyed, key), 200, name)
        made[name] = calls
    for name, ahead in ((LATER, timedelta(days=1)), (NEAR, timedelta(minutes=10))):
        send_at = (datetime.now(UTC) + ahead).strftime("%Y-%m-%dT%H:%M:%SZ")
        scheduled = {"phoneNumber": sms_phone, "message": "bench later", "sendAt": send_at}
        with CALLS.recording() as calls:
            _expect(api.post("/messages/send", scheduled), 200, name)
        made[name] = calls
    with CALLS.recording() as calls:
        _expect(api.get(f"/messages/{body['messageId']}"), 200, "GET message")
    made["GET /messages/{id}"] = calls
    numbers = [f"+2224{n}{i:06d}" for i in range(100)]
    with CALLS.recording() as calls:
        bulk = _expect(
            api.post("/messages/bulk", {"phoneNumbers": numbers, "message": "bench"}),
            200,
            "messages/bulk",
        )
    if bulk["queued"] != 100:
        raise RuntimeError(f"messages/bulk queued {bulk['queued']} of 100: {bulk['errors']}")
    made[BULK] = calls
    with CALLS.recording() as calls:
        _expect(api.post("/otp/send", {"phoneNumber": otp_phone}), 200, "otp/send")
    made["POST /otp/send"] = calls
    code = _sent_code(calls)
    wrong = f"{(int(code) + 1) % 10**6:06d}"
    with CALLS.recording() as calls:
        answer = _expect(
            api.post("/otp/verify", {"phoneNumber": otp_phone, "otp": wrong}),
            400,
            "otp/verify wrong code",
        )
    if answer.get("verified") is not False:
        raise RuntimeError(f"otp/verify wrong code: unexpected answer {answer}")
    made["POST /otp/verify (wrong code)"] = calls
    with CALLS.recording() as calls:
        answer = _expect(
            api.post("/otp/verify", {"phoneNumber": otp_phone, "otp": code}),
            200,
            "otp/verify right code",
        )
    if answer.get("verified") is not True:
        raise RuntimeError(f"otp/verify right code: unexpected answer {answer}")
    made["POST /otp/verify (right code)"] = calls
    return made


def _ops(calls) -> str:
    """The operations in order, repeats folded: "DynamoDB.BatchWriteItem x4, ..."."""
    names = [f"{service}.{operation}" for service, operation, _ in calls]
    runs = [(name, len(list(group))) for name, group in itertools.groupby(names)]
    return ", ".join(name if count == 1 else f"{name} x{count}" for name, count in runs) or "-"


def measure() -> tuple[dict, dict]:
    """(first-use calls, warm calls) per request."""
    with gateway() as api:
        first = _round(api, 1)
        warm = _round(api, 2)
    return first, warm


def run() -> Report:
    first, warm = measure()
    report = Report("aws_calls")
    detail = []
    for name in ORDER:
        budget = BUDGET.get(name)
        count = len(warm[name])
        result = verdict(count, budget) if budget is not None else "reported"
        report.rows.append(
            {
                "bench": "aws_calls",
                "measure": f"{name}, warm",
                "value": f"{count} call{'' if count == 1 else 's'}: {_ops(warm[name])}",
                "budget": f"<= {budget}" if budget is not None else "-",
                "result": result,
            }
        )
        detail.append(
            {
                "request": name,
                "warm": count,
                "first use": len(first[name]),
                "first-use operations (if different)": _ops(first[name])
                if _ops(first[name]) != _ops(warm[name])
                else "",
            }
        )
    report.details = [
        "AWS calls per request: warm (API key cached, clients and queue URLs resolved) and on",
        "the first use of each route in a container (the first request also loads the key).",
        table(detail, ["request", "warm", "first use", "first-use operations (if different)"]),
    ]
    return report


if __name__ == "__main__":
    sys.exit(main_for(run))
