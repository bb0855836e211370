"""Every log record the process makes, whatever its logger, for tests that prove a secret is
never logged.

``capture_all()`` sets every logger (root, those already made, botocore and urllib3 wire
logs included) to DEBUG, lifts any ``logging.disable``, and wraps the log record factory:
each record made while it runs is kept, before any handler, filter or ``propagate=False``
could hide it. ``held`` names loggers the code's own logging setup holds at a higher level
in production (e.g. chalicelib.logs keeps botocore at INFO because SQS bodies carry OTP
texts): those are set to that level instead, as they would be when deployed.
``text(record)`` is what a handler could write: the formatted line (plain and JSON), the
raw message and arguments, and any traceback.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from types import MappingProxyType

WIRE_LOGGERS = ("botocore", "urllib3", "requests")
_FORMATTER = logging.Formatter("%(name)s %(levelname)s %(message)s")


@contextmanager
def capture_all(
    held: Mapping[str, int] = MappingProxyType({}),
) -> Iterator[list[logging.LogRecord]]:
    records: list[logging.LogRecord] = []
    make_record = logging.getLogRecordFactory()

    def keeping(*args, **kwargs):
        record = make_record(*args, **kwargs)
        records.append(record)
        return record

    loggers = [
        logging.getLogger(),
        *(logging.getLogger(name) for name in (*WIRE_LOGGERS, *held)),
        *(
            logger
            for logger in logging.Logger.manager.loggerDict.values()
            if isinstance(logger, logging.Logger)
        ),
    ]
    levels = [(logger, logger.level) for logger in loggers]
    disabled = logging.root.manager.disable
    logging.disable(logging.NOTSET)
    for logger in loggers:
        logger.setLevel(_level(logger.name, held))
    logging.setLogRecordFactory(keeping)
    try:
        yield records
    finally:
        logging.setLogRecordFactory(make_record)
        logging.disable(disabled)
        for logger, level in levels:
            logger.setLevel(level)


def _level(name: str, held: Mapping[str, int]) -> int:
    """DEBUG, or the held level for a held logger (its children inherit it)."""
    if name in held:
        return held[name]
    if any(name.startswith(parent + ".") for parent in held):
        return logging.NOTSET
    return logging.DEBUG


def text(record: logging.LogRecord) -> str:
    """Also the JSON line the Lambdas write: it carries the record's ``extra`` fields."""
    from chalicelib.logs import JsonFormatter

    lines = [_FORMATTER.format(record), JsonFormatter().format(record)]
    return "\n".join([*lines, str(record.msg), repr(record.args)])
