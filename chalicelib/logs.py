"""Logging setup for the Lambdas.

At DEBUG, botocore and urllib3 write whole request bodies, and SQS bodies carry OTP
texts: those libraries are held at INFO whatever the root level, so no code reaches a log.
"""

import logging
import os

WIRE_LOGGERS = ("botocore", "boto3", "urllib3", "pynamodb")


def configure() -> None:
    logging.getLogger("chinqit").setLevel(os.environ.get("SMSGW_LOG_LEVEL", "INFO"))
    for name in WIRE_LOGGERS:
        logging.getLogger(name).setLevel(logging.INFO)
