"""Logging setup for the Lambdas: one JSON object per line inside Lambda.

Each line has time, level, logger, message, the Lambda request id, and the fields a
caller passed as ``extra`` (route, status, latencyMs, accountId, messageId...). Never a
key, a code or an OTP text: callers log key prefixes, masked numbers and ids only.

At DEBUG, botocore and urllib3 write whole request bodies, and SQS bodies carry OTP
texts: those libraries are held at INFO whatever the root level, so no code reaches a log.
"""

from __future__ import annotations

import json
import logging
import os
import time

WIRE_LOGGERS = ("botocore", "boto3", "urllib3", "pynamodb")
# What every LogRecord has; anything else on a record came in through ``extra``.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    converter = time.gmtime  # type: ignore[assignment]  # (typeshed: gmtime() takes its argument as optional)

    def format(self, record: logging.LogRecord) -> str:
        line = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name, value in vars(record).items():
            if name not in _STANDARD:
                line["requestId" if name == "aws_request_id" else name] = value
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


def configure() -> None:
    logging.getLogger("chinqit").setLevel(os.environ.get("SMSGW_LOG_LEVEL", "INFO"))
    for name in WIRE_LOGGERS:
        logging.getLogger(name).setLevel(logging.INFO)
    if "AWS_LAMBDA_FUNCTION_NAME" in os.environ:
        for handler in logging.getLogger().handlers:  # the runtime's own handler
            handler.setFormatter(JsonFormatter())
