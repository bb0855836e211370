"""What a warm Lambda remembers for a while: keys, quotas, webhook configs, who is online.

Each entry lives for ``seconds(value)`` (a function, so settings read at run time and a
value may decide its own lifetime, e.g. "unknown key"); when the cache is full the oldest
entry goes. Times come from chalicelib.clock, so tests move them.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

from . import clock

V = TypeVar("V")


class TtlCache(Generic[V]):
    def __init__(self, seconds: Callable[[V], float], max_entries: int = 10_000):
        self.seconds = seconds
        self.max_entries = max_entries
        self._entries: dict[Hashable, tuple[float, V]] = {}

    def get(self, key: Hashable, load: Callable[[], V]) -> V:
        """The remembered value of ``key``, or ``load()``'s, remembered from now."""
        now = clock.monotonic()
        hit = self._entries.get(key)
        if hit is not None and now - hit[0] < self.seconds(hit[1]):
            return hit[1]
        value = load()
        self._entries.pop(key, None)
        while self._entries and len(self._entries) >= self.max_entries:
            del self._entries[next(iter(self._entries))]
        self._entries[key] = (now, value)
        return value

    def forget(self, key: Hashable | None = None) -> None:
        """Drop one entry, or all of them."""
        if key is None:
            self._entries.clear()
        else:
            self._entries.pop(key, None)
