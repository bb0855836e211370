"""A clock for tests: time stands still until the test moves it."""

from __future__ import annotations

import time

from chalicelib import clock


class ManualClock(clock.Clock):
    """Starts at the real time; ``advance`` moves wall and monotonic time together."""

    def __init__(self, start: float | None = None):
        self._unix = time.time() if start is None else start
        self._monotonic = 1000.0

    def unix(self) -> float:
        return self._unix

    def monotonic(self) -> float:
        return self._monotonic

    def advance(self, seconds: float) -> None:
        self._unix += seconds
        self._monotonic += seconds
