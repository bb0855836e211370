"""The SIM guard: what keeps a line under the caps that get SIMs blocked by carriers.

Per line, from its settings: SMS parts per minute, hour and day; different recipients per
day and per month; a warm-up ramp of the daily cap for a new SIM; and a pause with backoff
(5 min, doubling up to 6 h) when the network answers with an error that means a limit or a
bar. What was sent is counted in the journal, so the caps hold across restarts.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

from .config import BridgeConfig
from .journal import Journal, LineState

DAY = 86400.0
MONTH = 30 * DAY
WINDOWS = (("max_per_minute", 60.0, "a minute"), ("max_per_hour", 3600.0, "an hour"))
FIRST_PAUSE = 300.0
LONGEST_PAUSE = 6 * 3600.0


@dataclass(frozen=True)
class Hold:
    """Why a line takes no SMS now, and until when (wall clock; None: unknown)."""

    state: str  # "paused" or "capped", as heartbeats report it
    reason: str
    until: float | None


class SimGuard:
    """The caps and pauses of one line; used from the bridge's main thread only."""

    def __init__(
        self,
        slot: int,
        settings: BridgeConfig,
        journal: Journal,
        wall_clock: Callable[[], float] = time.time,
    ):
        self.slot = slot
        self.settings = settings
        self.journal = journal
        self.wall_clock = wall_clock
        self._cached: Hold | None = None  # a line-wide cap, until it lifts
        # The journal's line_state row, read once: only this guard writes it, and reading
        # it on every turn of the loop queued the main thread behind the ports' journal writes
        self._state: LineState | None = None

    def hold(self) -> Hold | None:
        """Why this line takes no SMS at all now (paused, or a count cap reached)."""
        now = self.wall_clock()
        paused = self._pause(now)
        if paused is not None:
            return paused
        if self._cached is not None and self._cached.until is not None and now < self._cached.until:
            return self._cached
        self._cached = self._cap(now, parts=1)
        return self._cached

    def refuses(self, to: str, parts: int) -> Hold | None:
        """Why this line cannot send ``parts`` SMS parts to ``to`` now; None: it can."""
        hold = self.hold()
        if hold is not None:
            return hold
        now = self.wall_clock()
        return (self._cap(now, parts) if parts > 1 else None) or self._new_recipient_cap(now, to)

    def sent(self, to: str, parts: int) -> None:
        at = self.wall_clock()
        state = self._line_state()
        self.journal.record_line_send(self.slot, _recipient_key(to), parts, at)
        self._state = replace(state, first_send_at=state.first_send_at or at, pauses=0)

    def barred(self, reason: str) -> Hold:
        """The network refused in a way that means a limit or a bar: pause, longer each time
        it happens again without a send going through in between."""
        now = self.wall_clock()
        state = self._line_state()
        pause = min(LONGEST_PAUSE, FIRST_PAUSE * 2**state.pauses)
        self.journal.save_line_pause(self.slot, now + pause, reason[:200], state.pauses + 1)
        self._state = replace(
            state, paused_until=now + pause, pause_reason=reason[:200], pauses=state.pauses + 1
        )
        return Hold("paused", reason[:200], now + pause)

    def _line_state(self) -> LineState:
        if self._state is None:
            self._state = self.journal.line_state(self.slot)
        return self._state

    # ------------------------------------------------------------------ the caps

    def _pause(self, now: float) -> Hold | None:
        state = self._line_state()
        if state.paused_until is not None and now < state.paused_until:
            return Hold("paused", state.pause_reason or "paused", state.paused_until)
        return None

    def _cap(self, now: float, parts: int) -> Hold | None:
        caps = [(getattr(self.settings, name), window, what) for name, window, what in WINDOWS]
        caps.append((self._daily_cap(now), DAY, "a day"))
        for cap, window, what in caps:
            if not cap:
                continue
            excess = self.journal.line_parts(self.slot, now - window) + min(parts, cap) - cap
            if excess > 0:
                rows = self.journal.line_sends(self.slot, now - window)
                return Hold(
                    "capped", f"{cap} SMS parts in {what} reached", _lifts(rows, excess, window)
                )
        return None

    def _daily_cap(self, now: float) -> int:
        settings = self.settings
        if not settings.warmup_days or not settings.max_per_day:
            return settings.max_per_day
        first = self._line_state().first_send_at
        age = 0.0 if first is None else max(0.0, now - first) / DAY
        share = min(1.0, age / settings.warmup_days)
        start = min(settings.warmup_per_day, settings.max_per_day)
        return int(start + (settings.max_per_day - start) * share)

    def _new_recipient_cap(self, now: float, to: str) -> Hold | None:
        key = _recipient_key(to)
        for cap, window, what in (
            (self.settings.max_recipients_per_day, DAY, "a day"),
            (self.settings.max_recipients_per_month, MONTH, "30 days"),
        ):
            if not cap:
                continue
            recipients = self.journal.line_recipients(self.slot, now - window)
            if key not in recipients and len(recipients) >= cap:
                return Hold("capped", f"{cap} different recipients in {what} reached", None)
        return None


def _lifts(rows: list[tuple[float, int]], excess: int, window: float) -> float:
    """When enough of the oldest sends leave the window for ``excess`` more parts."""
    freed = 0
    for at, parts in rows:
        freed += parts
        if freed >= excess:
            return at + window
    return rows[-1][0] + window if rows else 0.0


def _recipient_key(number: str) -> str:
    """Recipients are counted, not kept: the journal holds a digest of each number."""
    return hashlib.sha256(number.encode()).hexdigest()[:20]
