"""AWS calls for one page of ``GET /messages`` (the message log), counted in-process.

Same harness as aws_calls (moto ``mock_aws`` + chalice.test.Client, the botocore
``before-call`` hook). MESSAGES outbound messages are sent first, so every listing below
has a second page; the first ``GET /messages`` of the container is also recorded (it
loads the API key as well), then each page is requested warm (key cached, clients made).
Budget: exactly one AWS call per page, and it is a DynamoDB Query (the account-created
index), whatever the filters and whether the page starts from a cursor.

    python -m bench.message_log
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode

from bench import Report, main_for, table
from bench._gateway import CALLS, gateway

MESSAGES = 30  # more than one page of LIMIT
LIMIT = 20
PHONE = "+22238089336"
OTHER_PHONE = "+22248089336"
BUDGET = [("DynamoDB", "Query")]  # exactly this, once per page


def _listing(api, query: dict) -> tuple[dict, list]:
    """One page and the AWS calls it made."""
    path = "/messages" + ("?" + urlencode(query) if query else "")
    with CALLS.recording() as calls:
        response = api.get(path)
    if response.status_code != 200:
        raise RuntimeError(f"GET {path}: {response.status_code} {response.body!r}")
    return response.json, calls


def _ops(calls) -> str:
    return ", ".join(f"{service}.{operation}" for service, operation, _ in calls) or "-"


def _two_pages(api, name: str, query: dict, expect_first: int, expect_second: int) -> list:
    """(name, calls, messages on the page) for page 1 and page 2 (via nextCursor)."""
    first, calls1 = _listing(api, query)
    if len(first["messages"]) != expect_first or not first["nextCursor"]:
        raise RuntimeError(
            f"{name}: page 1 has {len(first['messages'])} messages, cursor "
            f"{first['nextCursor']!r}; expected {expect_first} and a cursor"
        )
    second, calls2 = _listing(api, {**query, "cursor": first["nextCursor"]})
    if len(second["messages"]) != expect_second:
        raise RuntimeError(
            f"{name}: page 2 has {len(second['messages'])} messages, expected {expect_second}"
        )
    seen = {m["messageId"] for m in first["messages"]}
    if any(m["messageId"] in seen for m in second["messages"]):
        raise RuntimeError(f"{name}: page 2 repeats messages of page 1")
    return [
        (f"{name}, page 1", calls1, len(first["messages"])),
        (f"{name}, page 2 (cursor)", calls2, len(second["messages"])),
    ]


def measure() -> dict:
    with gateway() as api:
        _, first_use = _listing(api, {})  # the container's first request: loads the key too
        for n in range(MESSAGES):
            phone = PHONE if n % 2 == 0 else OTHER_PHONE
            response = api.post("/messages/send", {"phoneNumber": phone, "message": f"log {n}"})
            if response.status_code != 200:
                raise RuntimeError(f"messages/send: {response.status_code} {response.body!r}")
        now = datetime.now(UTC)
        day = {
            "from": (now - timedelta(hours=1)).isoformat(),
            "to": (now + timedelta(hours=1)).isoformat(),
        }
        pages = []
        pages += _two_pages(
            api, "GET /messages?limit=20", {"limit": LIMIT}, LIMIT, MESSAGES - LIMIT
        )
        pages += _two_pages(
            api,
            "?direction=outbound&status=queued&limit=20",
            {"direction": "outbound", "status": "queued", "limit": LIMIT},
            LIMIT,
            MESSAGES - LIMIT,
        )
        # filters that drop most of a page: still one Query, the page just holds fewer
        pages += _two_pages(
            api,
            "?phoneNumber=…&from=…&to=…&limit=20",
            {"phoneNumber": PHONE, **day, "limit": LIMIT},
            LIMIT // 2,
            (MESSAGES - LIMIT) // 2,
        )
        unread, calls = _listing(api, {"direction": "inbound", "unread": "true", "limit": LIMIT})
        pages.append(("?direction=inbound&unread=true (empty)", calls, len(unread["messages"])))
    return {"first_use": first_use, "pages": pages}


def run() -> Report:
    m = measure()
    report = Report("message_log")
    detail = []
    for name, calls, count in m["pages"]:
        made = [(service, operation) for service, operation, _ in calls]
        report.rows.append(
            {
                "bench": "message_log",
                "measure": f"{name}, warm",
                "value": f"{len(calls)} call{'' if len(calls) == 1 else 's'}: {_ops(calls)}",
                "budget": "== 1 DynamoDB.Query",
                "result": "PASS" if made == BUDGET else "FAIL",
            }
        )
        request = next(request for _, _, request in calls) if calls else {}
        body = request.get("body") if isinstance(request, dict) else None
        detail.append(
            {"page": name, "messages": count, "Query request": _query_shape(body) if body else "-"}
        )
    report.details = [
        f"{MESSAGES} outbound messages (half to {PHONE}), pages of limit={LIMIT}. The first "
        f"GET /messages of the container made: {_ops(m['first_use'])}.",
        "What each page's Query asked DynamoDB (index, Limit, filter attributes, start key):",
        table(detail, ["page", "messages", "Query request"]),
    ]
    return report


def _query_shape(body) -> str:
    import json

    if isinstance(body, (bytes, str)):
        body = json.loads(body)
    names = sorted((body.get("ExpressionAttributeNames") or {}).values())
    parts = [body.get("IndexName", "table"), f"Limit {body.get('Limit')}"]
    if body.get("FilterExpression"):
        parts.append(
            "filter on " + "/".join(n for n in names if n not in ("account_id", "created_at"))
        )
    if body.get("ExclusiveStartKey"):
        parts.append("from cursor")
    return ", ".join(parts)


if __name__ == "__main__":
    sys.exit(main_for(run))
