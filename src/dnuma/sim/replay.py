"""Replay a real kmem trace (``kmem:mm_page_alloc``, ``mm_page_free``,
``mm_page_free_batched``, ``mm_page_pcpu_drain``) onto a model machine, with
layout events injected at given trace times.

The model allocates exactly the pfns the trace allocated and frees them
through its own free path, so what the report shows is where the real
workload's pages sit under each layout: misplaced pages, pages moved on free,
local allocations.  A trace starts mid-run: frees of pages it never saw
allocated, double frees and malformed lines are counted as anomalies.
``mm_page_free_batched`` follows the ``mm_page_free`` of the same page (both
fire in free_unref_folios), so it is counted, not replayed;
``mm_page_pcpu_drain`` is counted (the model drains its pcp lists itself).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .._kernels import replay as _kr
from ..mm.errors import ConfigError
from ..mm.machine import Machine, MachineConfig
from .events import NS, PRIO_SAMPLE, EventLoop, parse_duration
from .ftrace import EV_ALLOC_FAIL, TraceChunk, TraceStats, read_trace
from .run import LayoutPlan, Observer, Step, StepLog
from .scenario import LayoutEvent, ScenarioError, parse_id_list, parse_range_map


def parse_event_spec(spec: str) -> LayoutEvent:
    """``AT:ACTION[:ARGS]`` -> a layout event, AT in trace seconds from the
    first event: ``0.5:stripe:0,1,2:256``, ``1s:push:3``, ``2s:boot``,
    ``1.5:ranges:0-7FFF=1,8000-FFFF=0``."""
    parts = spec.split(":")
    if len(parts) < 2:
        raise ConfigError(f"--event {spec!r}: expected AT:ACTION[:ARGS] "
                          "(e.g. 0.5:stripe:0,1:256, 1s:push:3, 2s:boot)")
    at = parse_duration(parts[0], f"--event {spec!r}: time")
    act, args = parts[1], parts[2:]
    try:
        if act == "stripe" and len(args) == 2:
            return LayoutEvent(at, act, (parse_id_list(args[0]), int(args[1])), act)
        if act == "push" and len(args) == 1:
            return LayoutEvent(at, act, int(args[0]), act)
        if act == "boot" and not args:
            return LayoutEvent(at, act, None, act)
        if act == "ranges" and len(args) == 1:
            tbl: dict[str, Any] = {}
            for item in args[0].split(","):
                k, _, v = item.partition("=")
                tbl[k] = int(v)
            return LayoutEvent(at, act, parse_range_map(tbl, "ranges"), act)
    except (ValueError, ScenarioError) as exc:
        raise ConfigError(f"--event {spec!r}: {exc}") from None
    raise ConfigError(f"--event {spec!r}: expected stripe:NODES:BLOCK, push:NODE, boot or "
                      "ranges:START-END=NODE,...")


@dataclass
class TraceExtent:
    """What a first pass over a trace finds: highest pfn touched, CPUs, span."""

    max_pfn: int
    nr_cpus: int
    first_ns: int
    last_ns: int
    events: int


class _ExtentScan:
    """Accumulates a TraceExtent chunk by chunk."""

    def __init__(self) -> None:
        self.max_pfn, self.cpus, self.first, self.last, self.n = -1, 0, -1, -1, 0

    def add(self, ch: TraceChunk) -> None:
        if ch.pfn.size == 0:
            return
        ok = ch.kind != EV_ALLOC_FAIL
        if ok.any():
            top = ch.pfn[ok] + (np.int64(1) << ch.order[ok].astype(np.int64)) - 1
            self.max_pfn = max(self.max_pfn, int(top.max()))
        self.cpus = max(self.cpus, int(ch.cpu.max()) + 1)
        if self.first < 0:
            self.first = int(ch.ts_ns[0])
        self.last = int(ch.ts_ns[-1])
        self.n += ch.pfn.size

    def extent(self, path: str | Path, stats: TraceStats) -> TraceExtent:
        if self.n == 0:
            raise ConfigError(f"{path}: no kmem page events in the trace")
        return TraceExtent(self.max_pfn, max(self.cpus, stats.nr_cpus or 0), self.first,
                           self.last, self.n)


#: a trace of up to this many events is parsed once and kept in memory
#: (~34 bytes an event) while the machine is sized; a longer one is read twice
BUFFER_EVENTS = 32 << 20


def _buffered(path: str | Path, stats: TraceStats
              ) -> tuple[TraceExtent, list[TraceChunk] | None]:
    """Parse the trace once for its extent, keeping the chunks when there are
    at most BUFFER_EVENTS events (else None: read it again)."""
    scan = _ExtentScan()
    kept: list[TraceChunk] | None = []
    for ch in read_trace(path, stats=stats):
        scan.add(ch)
        if kept is not None:
            kept.append(ch)
            if scan.n > BUFFER_EVENTS:
                kept = None
    return scan.extent(path, stats), kept


def machine_for_trace(ext: TraceExtent, nodes: int = 1) -> MachineConfig:
    """A flat machine covering every pfn the trace touches (rounded up to a
    128 MiB section), ``nodes`` nodes sharing it, the trace's CPU count."""
    sec = 1 << 15
    end = (ext.max_pfn // sec + 1) * sec
    return MachineConfig.uniform(nodes=nodes, mem=end << 12, cpus=max(ext.nr_cpus, nodes))


@dataclass
class ReplayResult:
    machine: Machine
    steps: list[Step]
    counts: dict[str, int]
    anomalies: dict[str, int]
    stats: TraceStats
    span_s: float
    wall_seconds: float
    skipped_events: list[str]

    def summary(self) -> dict[str, Any]:
        m = self.machine
        return {"trace": self.stats.to_dict(), "span_s": round(self.span_s, 6),
                "events_per_s": round(sum(self.stats.events.values()) / self.wall_seconds)
                if self.wall_seconds > 0 else None,
                "machine": {"present_pages": m.total_present_pages, "nr_cpus": m.nr_cpus,
                            "nodes_online": list(m.for_each_online_node())},
                "replayed": self.counts, "anomalies": self.anomalies,
                "steps": [s.row() for s in self.steps],
                "skipped_events": self.skipped_events,
                "final": {"misplaced": m.misplaced_pages(), "marked": m.marked_pages(),
                          "moved_on_free": m.moved_on_free,
                          "numastat": {n: m.numastat(n) for n in m.for_each_online_node()}},
                "wall_seconds": round(self.wall_seconds, 3)}


def replay_trace(path: str | Path, config: MachineConfig | None = None,
                 events: Sequence[LayoutEvent] = (), sample: int = NS // 10,
                 observe: Callable[[Machine], Sequence[Observer]] | None = None,
                 progress: Callable[[float], None] | None = None,
                 check: Callable[[Machine], None] | None = None,
                 nodes: int = 1, machine: Machine | None = None) -> ReplayResult:
    """Replay ``path`` (plain, .gz or .xz; streamed).  Times (event ``at``,
    ``sample``) are ns from the trace's first event.  ``progress`` gets the
    fraction of the trace's span done (only when the machine is sized to
    the trace: that parses it first, keeping it in memory up to
    BUFFER_EVENTS events).  ``machine``: replay onto
    this machine as it stands (e.g. one booted from a host) instead."""
    wall0 = time.perf_counter()
    # sizing the machine to the trace takes a parse of it first: its chunks are
    # kept for the replay (a long trace is read again); progress is reported
    # against the trace's span when it is known
    ext = None
    stats = TraceStats()
    chunks: Iterable[TraceChunk] | None = None
    if machine is not None:
        m = machine
    else:
        if config is None:
            ext, chunks = _buffered(path, stats)
            config = machine_for_trace(ext, nodes)
        m = Machine(config)
    if chunks is None:
        stats = TraceStats()
        chunks = read_trace(path, stats=stats)
    plan = LayoutPlan(m, sorted(events, key=lambda e: e.at), "replay")
    observers = list(observe(m)) if observe else []
    seen = np.zeros(m.max_pfn, dtype=np.uint8)
    counts = np.zeros(_kr.NR_X, dtype=np.int64)
    no_mask = np.zeros(m.config.max_numnodes, dtype=np.bool_)
    log = StepLog(m, observers, check)
    # the trace drives the model between events: the loop has nothing to advance
    loop = EventLoop()
    plan.schedule(loop, log)

    def take_sample(t: int) -> None:
        m.sync_zones()
        for o in observers:
            o.sample(t / NS)

    loop.every(0, sample, None, PRIO_SAMPLE, take_sample)
    t_first: int | None = None
    t_rel = 0
    span = (ext.last_ns - ext.first_ns) if ext else 0
    for ch in chunks:
        n = ch.pfn.size
        if n == 0:
            continue
        if t_first is None:
            t_first = int(ch.ts_ns[0])
        ts = ch.ts_ns - t_first
        ev = ch.events()
        i = 0
        while i < n:
            # replay up to the next event or sample, run those due at the
            # first trace event past it
            t_next = loop.peek()
            j = n if t_next is None else int(np.searchsorted(ts, t_next, side="left"))
            if j > i:
                _kr.replay(m.S, ev, i, j, seen, counts, no_mask)
            if j < n:
                loop.run(int(ts[j]))
            i = j
        t_rel = int(ts[-1])
        if progress and span > 0:
            progress(min(1.0, t_rel / span))
    m.sync_zones()
    loop.run(t_rel)
    log.close()
    skipped = [f"{e.name} at {e.at / NS:g} s (after the trace's end, {t_rel / NS:g} s)"
               for e in plan.pending]
    for o in observers:
        o.finish(t_rel / NS)
    if check:
        check(m)
    tally = _kr.ReplayCounts(*counts.tolist())
    return ReplayResult(m, log.steps, tally.replayed(), tally.anomalies(), stats,
                        t_rel / NS, time.perf_counter() - wall0, skipped)
