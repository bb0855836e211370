"""Send one SMS per row of a CSV file through the API, with a progress bar.

    python -m clients.sendcsv --api https://sms.example.com --key cq_live_... numbers.csv
    python -m clients.sendcsv --message "Rappel: RDV demain" numbers.csv

The CSV has a ``phoneNumber`` column and, unless --message is given, a ``message``
column. Rows sharing a text go out through POST /messages/bulk, 100 numbers a call.
A report line per refused number goes to stderr; the exit status is 1 if any was refused.
Each call carries an Idempotency-Key, so a call that timed out, lost its connection or got
a 5xx is retried (TRIES times) without sending anything twice.
Environment: CHINQIT_API_URL and CHINQIT_API_KEY stand in for --api and --key.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import time
import uuid
from itertools import groupby

import requests

BATCH = 100  # the API's limit of numbers per bulk request
TRIES = 3


def read_rows(path: str, fixed_message: str | None) -> list[tuple[str, str]]:
    with open(path, newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        columns = reader.fieldnames or []
        if "phoneNumber" not in columns:
            raise SystemExit(f"{path}: no phoneNumber column (columns: {reader.fieldnames})")
        if fixed_message is None and "message" not in columns:
            raise SystemExit(f"{path}: no message column; add one or pass --message")
        return [(row["phoneNumber"].strip(), fixed_message or row["message"]) for row in reader]


def batches(rows):
    """(text, numbers) chunks: consecutive rows with the same text, at most BATCH numbers."""
    for text, group in groupby(rows, key=lambda row: row[1]):
        numbers = [number for number, _ in group]
        for start in range(0, len(numbers), BATCH):
            yield text, numbers[start : start + BATCH]


def progress(done: int, total: int, refused: int, out=sys.stderr) -> None:
    width = 30
    filled = width * done // max(total, 1)
    bar = "#" * filled + "." * (width - filled)
    out.write(f"\r[{bar}] {done}/{total}: {done - refused} queued, {refused} refused")
    out.flush()


def post_bulk(session, url: str, text: str, numbers: list[str]):
    """POST one batch; retried with the same Idempotency-Key when the answer is lost."""
    headers = {"Idempotency-Key": str(uuid.uuid4())}
    for attempt in range(1, TRIES + 1):
        try:
            response = session.post(
                url, json={"message": text, "phoneNumbers": numbers}, headers=headers, timeout=30
            )
        except (requests.ConnectionError, requests.Timeout):
            if attempt == TRIES:
                raise
        else:
            if response.status_code < 500 or attempt == TRIES:
                return response
        time.sleep(attempt)


def send(api: str, key: str, rows) -> int:
    session = requests.Session()
    session.headers.update({"X-API-Key": key})
    done = refused = 0
    progress(done, len(rows), refused)
    for text, numbers in batches(rows):
        response = post_bulk(session, f"{api.rstrip('/')}/messages/bulk", text, numbers)
        body = response.json()
        errors = body.get("errors", [])
        if not response.ok and not body.get("messages"):
            errors = errors or [
                {"field": "request", "message": body.get("message", response.reason)}
            ]
        for error in errors:
            sys.stderr.write(f"\n{error['field']}: {error['message']}")
        refused += len(numbers) - len(body.get("messages", []))
        done += len(numbers)
        progress(done, len(rows), refused)
    sys.stderr.write("\n")
    return refused


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m clients.sendcsv", description=__doc__.split("\n")[0]
    )
    parser.add_argument("csv_file")
    parser.add_argument("--api", default=os.environ.get("CHINQIT_API_URL", "http://127.0.0.1:8000"))
    parser.add_argument("--key", default=os.environ.get("CHINQIT_API_KEY"))
    parser.add_argument("--message", help="the same text for every row")
    args = parser.parse_args(argv)
    if not args.key:
        parser.error("an API key is required: --key or CHINQIT_API_KEY")
    rows = read_rows(args.csv_file, args.message)
    return 1 if send(args.api, args.key, rows) else 0


if __name__ == "__main__":
    sys.exit(main())
