"""The one source of time for the Lambdas, so tests set the time instead of patching modules.

Code asks this module (``clock.now()``, ``clock.unix()``, ``clock.monotonic()``); a test
installs another clock with :func:`use` and puts the system clock back afterwards.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime


class Clock:
    """The system clock. Subclasses override ``unix`` and ``monotonic``; ``now`` follows."""

    def unix(self) -> float:
        """Seconds since the epoch (wall clock: timestamps, expiry)."""
        return time.time()

    def monotonic(self) -> float:
        """Seconds that never go back (how long a cache entry has lived)."""
        return time.monotonic()

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.unix(), UTC)


SYSTEM = Clock()
_current: Clock = SYSTEM


def use(clock: Clock) -> None:
    """Make ``clock`` the time every module reads (``use(SYSTEM)`` restores it)."""
    global _current
    _current = clock


def now() -> datetime:
    return _current.now()


def unix() -> float:
    return _current.unix()


def monotonic() -> float:
    return _current.monotonic()
