"""Command line: read the configuration, open the driver, run the agent until a signal."""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
from collections.abc import Sequence
from datetime import UTC, datetime

from . import __version__, config
from .agent import Agent
from .drivers.base import DriverError
from .journal import JournalInUse

log = logging.getLogger("chinqit.bridge")

# At DEBUG these log request bodies, which carry SMS texts (OTP codes): never below WARNING.
CHATTY_LIBRARIES = ("botocore", "boto3", "urllib3", "s3transfer")


class JsonFormatter(logging.Formatter):
    """One JSON object a line: ts (ISO-8601 UTC), level, logger, message, exception."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


class JournaldFormatter(logging.Formatter):
    """Under systemd: a <N> syslog priority prefix and no timestamp (journald adds its own)."""

    PRIORITIES = {"DEBUG": 7, "INFO": 6, "WARNING": 4, "ERROR": 3, "CRITICAL": 2}

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        return f"<{self.PRIORITIES.get(record.levelname, 6)}>{text}"


def configure_logging(level: str, log_json: bool = False) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if log_json:
        handler.setFormatter(JsonFormatter())
    elif os.environ.get("JOURNAL_STREAM") and not sys.stderr.isatty():
        handler.setFormatter(JournaldFormatter("%(levelname)s %(name)s: %(message)s"))
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=level, handlers=[handler], force=True)
    for name in CHATTY_LIBRARIES:
        logging.getLogger(name).setLevel(max(logging.WARNING, logging.getLevelName(level)))


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["doctor"]:
        from . import doctor

        return doctor.main(argv[1:])
    try:
        settings = config.load(argv)
    except config.ConfigError as error:
        print(f"device_bridge: {error}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level, settings.log_json)
    try:
        agent = Agent.build(settings)
    except (ValueError, TypeError) as error:
        log.error("driver %s: %s", settings.driver or "of a [[line]]", error)
        return 2
    except JournalInUse as error:
        log.error("%s", error)
        return 1
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: agent.stop())
    log.info(
        "device bridge %s starting: %s, priority queue %s, bulk queue %s",
        __version__,
        f"driver {settings.driver}" if not settings.bank else f"{len(settings.bank)} lines",
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
