"""CloudWatch metrics, written as Embedded Metric Format lines on stdout.

No client and no AWS call: Lambda ships stdout to CloudWatch Logs, which turns each such
line into data points in namespace ``Chinqit/SMS``. Outside Lambda nothing is written.

- ``Messages`` (count): every lifecycle change, by Change, Status and Channel; by Status
  and Operator (chinguitel, mattel, mauritel); by Status and Kind (sms, otp); by Status
  and Device (the line that took it).
- ``QueuedToSentSeconds``: from accepted to handed to the network, by Channel and Operator.
- ``OtpVerifications`` (count): by Outcome (verified, wrong, expired, used, locked, none).
- ``Webhooks`` (count): by Outcome (delivered, retrying, dead, dropped, duplicate, ...).
"""

from __future__ import annotations

import json
import os
import sys
import time

NAMESPACE = "Chinqit/SMS"


def emit(values: dict[str, float], dimensions: dict[str, str], sets: list[list[str]], unit="Count"):
    """One EMF line: each value in ``values`` under every dimension set in ``sets``."""
    if "AWS_LAMBDA_FUNCTION_NAME" not in os.environ:
        return
    line = {
        "_aws": {
            "Timestamp": int(time.time() * 1000),
            "CloudWatchMetrics": [
                {
                    "Namespace": NAMESPACE,
                    "Dimensions": sets,
                    "Metrics": [{"Name": name, "Unit": unit} for name in values],
                }
            ],
        },
        **dimensions,
        **values,
    }
    sys.stdout.write(json.dumps(line) + "\n")


def count(metric: str, **dimensions: str) -> None:
    emit({metric: 1}, dimensions, [sorted(dimensions)])


def on_message_event(event) -> None:
    """The lifecycle's subscriber (chalicelib.messages.events)."""
    from .wire.protocol import operator_of

    message = event.message
    status = str(message.status or "none")
    operator = (operator_of(message.phone_number) if message.phone_number else None) or "other"
    dimensions = {
        "Change": str(event.change),
        "Status": status,
        "Channel": str(message.channel or "sms"),
        "Operator": operator,
        "Kind": str(message.kind or "sms"),
        "Device": str(message.device_id or "none"),
    }
    sets = [["Change", "Status", "Channel"], ["Status", "Operator"], ["Status", "Kind"]]
    emit({"Messages": 1}, dimensions, sets + [["Status", "Device"]])
    if status == "sent" and message.sent_at and message.created_at:
        waited = (message.sent_at - message.created_at).total_seconds()
        emit(
            {"QueuedToSentSeconds": max(0.0, waited)},
            {"Channel": dimensions["Channel"], "Operator": operator},
            [["Channel"], ["Operator"]],
            unit="Seconds",
        )
