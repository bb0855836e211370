"""Message counts as CloudWatch metrics, written as Embedded Metric Format log lines.

No client and no AWS call: Lambda ships stdout to CloudWatch Logs, which turns each such
line into a data point of metric ``Messages`` in namespace ``Chinqit/SMS``, by change
(created, status, deleted), status and channel. Outside Lambda nothing is written.
"""

from __future__ import annotations

import json
import os
import sys

NAMESPACE = "Chinqit/SMS"
DIMENSIONS = ["Change", "Status", "Channel"]


def on_message_event(event) -> None:
    """The lifecycle's subscriber (chalicelib.messages.events)."""
    if "AWS_LAMBDA_FUNCTION_NAME" not in os.environ:
        return
    message = event.message
    line = {
        "_aws": {
            "Timestamp": int(event.at.timestamp() * 1000),
            "CloudWatchMetrics": [
                {
                    "Namespace": NAMESPACE,
                    "Dimensions": [DIMENSIONS],
                    "Metrics": [{"Name": "Messages", "Unit": "Count"}],
                }
            ],
        },
        "Change": str(event.change),
        "Status": str(message.status or "none"),
        "Channel": str(message.channel or "sms"),
        "Messages": 1,
    }
    sys.stdout.write(json.dumps(line) + "\n")
