"""Virtual time: one event loop ordered by (time, priority, sequence), so a
run repeats exactly.  Time is integer nanoseconds."""

from __future__ import annotations

import heapq
import re
from collections.abc import Callable
from dataclasses import dataclass, field

from ..mm.errors import ConfigError

NS = 1_000_000_000

# priorities at one instant: the layout changes first, then the vmstat tick,
# then the sample (which therefore sees the state right after a commit)
PRIO_LAYOUT = 0
PRIO_VMSTAT = 1
PRIO_SAMPLE = 2
PRIO_END = 3

_UNITS = {"ns": 1, "us": 1_000, "ms": 1_000_000, "s": NS, "m": 60 * NS, "min": 60 * NS}
_DUR_RE = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*(ns|us|ms|s|min|m)?\s*$")


MAX_DURATION_S = 10**7  # seconds: the longest time any input may name (~116 days)


def parse_duration(value: object, what: str = "duration") -> int:
    """'500ms', '2s', 1.5 (seconds) -> nanoseconds, in [0, MAX_DURATION_S] s."""
    secs: float | None = None
    if isinstance(value, int | float) and not isinstance(value, bool):
        secs = float(value)
    elif isinstance(value, str):
        mt = _DUR_RE.match(value)
        if mt:
            secs = float(mt.group(1)) * _UNITS[mt.group(2) or "s"] / NS
    if secs is None:
        raise ConfigError(f"{what}: expected a duration like '500ms', '2s' or a number of "
                          f"seconds, got {value!r}")
    if not 0 <= secs <= MAX_DURATION_S:  # also NaN
        raise ConfigError(f"{what}: {value!r} is not in [0, {MAX_DURATION_S:g}] seconds")
    return round(secs * NS)


@dataclass(order=True)
class _Event:
    t: int
    prio: int
    seq: int
    fn: Callable[[int], None] = field(compare=False)
    period: int = field(compare=False)  # > 0: again every period ns, up to until
    until: int | None = field(compare=False)  # inclusive (None: for ever)


class EventLoop:
    """Events at virtual times (ns); ``advance(t)`` runs the continuous part
    of the model (the tasks) up to ``t`` before each event there.  As SimPy's
    Environment: :meth:`peek` the next event's time, :meth:`run` to the end
    or up to a time."""

    def __init__(self, advance: Callable[[int], None] | None = None) -> None:
        self._q: list[_Event] = []
        self._seq = 0
        self._advance = advance
        self.now = 0

    def at(self, t: int, prio: int, fn: Callable[[int], None]) -> None:
        """Run ``fn(t)`` at time ``t`` (ns)."""
        self._push(t, prio, fn, 0, None)

    def every(self, start: int, period: int, until: int | None, prio: int,
              fn: Callable[[int], None]) -> None:
        """Run ``fn`` at start, start + period, ... up to ``until`` inclusive
        (None: for ever, for :meth:`run` with a time)."""
        if period <= 0:
            raise ValueError("period must be > 0")
        if until is None or start <= until:
            self._push(start, prio, fn, period, until)

    def peek(self) -> int | None:
        """The time of the next event (ns), None if there is none."""
        return self._q[0].t if self._q else None

    def run(self, until: int | None = None) -> None:
        """Run every event in order, or (``until``) those at or before
        ``until`` (ns), leaving the later ones queued; the clock then stands
        at ``until``."""
        while self._q and (until is None or self._q[0].t <= until):
            ev = heapq.heappop(self._q)
            self._move_to(ev.t)
            ev.fn(ev.t)
            nxt = ev.t + ev.period
            if ev.period and (ev.until is None or nxt <= ev.until):
                self._push(nxt, ev.prio, ev.fn, ev.period, ev.until)
        if until is not None:
            self._move_to(until)

    def _push(self, t: int, prio: int, fn: Callable[[int], None], period: int,
              until: int | None) -> None:
        if t < self.now:
            raise ValueError(f"event at {t} ns is in the past (now {self.now} ns)")
        heapq.heappush(self._q, _Event(t, prio, self._seq, fn, period, until))
        self._seq += 1

    def _move_to(self, t: int) -> None:
        if t > self.now:
            if self._advance is not None:
                self._advance(t)
            self.now = t
