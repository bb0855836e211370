"""Command line: read the configuration, open the driver, run the agent until a signal."""

from __future__ import annotations

import logging
import signal
import sys
from collections.abc import Sequence

from . import __version__, config, drivers
from .agent import Agent
from .drivers.base import DriverError
from .journal import JournalInUse

log = logging.getLogger("chinqit.bridge")

# At DEBUG these log request bodies, which carry SMS texts (OTP codes): never below WARNING.
CHATTY_LIBRARIES = ("botocore", "boto3", "urllib3", "s3transfer")


def configure_logging(level: str) -> None:
    logging.basicConfig(
        level=level, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    for name in CHATTY_LIBRARIES:
        logging.getLogger(name).setLevel(max(logging.WARNING, logging.getLevelName(level)))


def main(argv: Sequence[str] | None = None) -> int:
    try:
        settings = config.load(argv)
    except config.ConfigError as error:
        print(f"device_bridge: {error}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level)
    try:
        driver = drivers.load(settings.driver, **settings.driver_options)
    except (ValueError, TypeError) as error:
        log.error("driver %s: %s", settings.driver, error)
        return 2
    try:
        agent = Agent.build(settings, driver)
    except JournalInUse as error:
        log.error("%s", error)
        return 1
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: agent.stop())
    log.info(
        "device bridge %s starting: driver %s, priority queue %s, bulk queue %s",
        __version__,
        settings.driver,
        settings.priority_queue,
        settings.outbound_queue,
    )
    try:
        agent.run()
    except DriverError as error:
        log.error("the %s driver cannot reach the phone: %s", settings.driver, error)
        return 1
    log.info("device bridge stopped")
    return 0
