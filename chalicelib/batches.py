"""Lambda's partial batch responses for SQS-triggered handlers.

The event source mappings report ``ReportBatchItemFailures`` (set in the template,
chinqit_admin/template.py): a handler answers ``{"batchItemFailures": [...]}`` with the
records that could not be handled now, and Lambda deletes the others. One record that
fails never brings back the rest of its batch.
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor

log = logging.getLogger("chinqit.batches")


def each_record(event, handle, parallel: bool = False) -> dict:
    """Run ``handle(body)`` for each record; failures (exceptions) are reported, not raised."""
    records = [record.to_dict() for record in event]

    def failed(record: dict) -> bool:
        started = time.perf_counter()
        fields = {"sqsMessageId": record["messageId"], "queue": record.get("eventSourceARN")}
        try:
            handle(record["body"])
        except Exception:  # noqa: BLE001 - one record never holds back the others
            log.exception("record not handled now; SQS delivers it again", extra=fields)
            return True
        latency = round((time.perf_counter() - started) * 1000, 1)
        log.info("record handled", extra=fields | {"latencyMs": latency})
        return False

    if parallel and len(records) > 1:
        failures = _side_by_side(records, failed)
    else:
        failures = [record for record in records if failed(record)]
    return {"batchItemFailures": [{"itemIdentifier": record["messageId"]} for record in failures]}


def _side_by_side(records: list, failed) -> list:
    """Records in parallel (their work waits on the network), but copies of one body (an
    SQS duplicate) one after the other, so the second sees what the first wrote."""
    copies: dict[str, list] = {}
    for record in records:
        copies.setdefault(record["body"], []).append(record)

    def run(group: list) -> list:
        return [record for record in group if failed(record)]

    with ThreadPoolExecutor(max_workers=min(10, len(copies))) as pool:
        return [record for failures in pool.map(run, copies.values()) for record in failures]
