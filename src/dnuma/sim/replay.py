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
``mm_page_pcpu_drain`` and ``mm_page_alloc_zone_locked`` are counted (the
model drains and refills its pcp lists itself), unless the replay follows the
trace's pcp lists (``follow``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .._kernels import replay as _kr
from ..mm.constants import DEFAULT_MAX_NUMNODES, MAX_MAX_NUMNODES, X86_64
from ..mm.errors import ConfigError
from ..mm.machine import Machine, MachineConfig
from ..mm.memlayout import PFN_LIMIT
from ..mm.topology import NR_CPUS
from .events import NS, PRIO_SAMPLE, EventLoop, parse_duration
from .ftrace import (
    EV_ALLOC_FAIL,
    TraceChunk,
    TraceError,
    TraceStats,
    read_trace,
    rereadable,
    trace_name,
)
from .run import LayoutPlan, Observer, Step, StepLog
from .scenario import MACHINE_ACTIONS, LayoutEvent, ScenarioError, parse_id_list, parse_range_map

#: the latest time (ns) a --event or --sample may name (about 146 years)
MAX_TIME_NS = 1 << 62
#: samples of one replay at most (each walks the model's allocated pages)
MAX_SAMPLES = 20_000
#: CPUs of a machine sized from a trace at most: the model's NR_CPUS
MAX_CPUS = NR_CPUS
#: pfns of a machine sized from a trace at most: 1 TiB of 4 KiB pages, about
#: 4 GiB of model state (16 bytes a pfn)
MAX_PFNS = 1 << 28

_ACTIONS = "stripe:NODES:BLOCK, push:NODE, boot or ranges:START-END=NODE,..."


def parse_trace_time(text: str, what: str) -> int:
    """A time or interval of trace time (``0.5``, ``1s``, ``250ms``) -> ns in
    [0, MAX_TIME_NS]; ConfigError naming ``what`` otherwise."""
    try:
        t = parse_duration(text, what)
    except (OverflowError, ValueError):  # 1e400s: float infinity
        t = MAX_TIME_NS + 1
    if not 0 <= t <= MAX_TIME_NS:
        raise ConfigError(f"{what}: {text!r} is beyond {MAX_TIME_NS / NS:.3g} s")
    return t


def _node_id(text: str, spec: str) -> int:
    v = int(text)
    if not 0 <= v < MAX_MAX_NUMNODES:
        raise ConfigError(f"--event {spec!r}: node {v} outside [0, {MAX_MAX_NUMNODES})")
    return v


def parse_event_spec(spec: str) -> LayoutEvent:
    """``AT:ACTION[:ARGS]`` -> a layout event, AT in trace seconds from the
    first event: ``0.5:stripe:0,1,2:256``, ``1s:push:3``, ``2s:boot``,
    ``1.5:ranges:0-7FFF=1,8000-FFFF=0``.  Errors (ConfigError) name the
    spec; a layout the machine cannot take is refused by the replay."""
    parts = spec.split(":")
    if len(parts) < 2:
        raise ConfigError(f"--event {spec!r}: expected AT:ACTION[:ARGS] "
                          "(e.g. 0.5:stripe:0,1:256, 1s:push:3, 2s:boot)")
    at = parse_trace_time(parts[0], f"--event {spec!r}: time")
    act, args = parts[1], parts[2:]
    if act not in ("stripe", "push", "boot", "ranges"):
        raise ConfigError(f"--event {spec!r}: unknown action {act!r}; expected {_ACTIONS}")
    try:
        if act == "stripe" and len(args) == 2:
            nodes = parse_id_list(args[0])
            block = int(args[1])
            if not nodes:
                raise ConfigError(f"--event {spec!r}: stripe needs at least one node")
            for n in nodes:
                _node_id(str(n), spec)
            if not 0 < block < PFN_LIMIT:
                raise ConfigError(f"--event {spec!r}: stripe block must be > 0 pfns "
                                  f"(and below {PFN_LIMIT:#x}), got {block}")
            return LayoutEvent(at, act, (nodes, block), act)
        if act == "push" and len(args) == 1:
            return LayoutEvent(at, act, _node_id(args[0], spec), act)
        if act == "boot" and not args:
            return LayoutEvent(at, act, None, act)
        if act == "ranges" and len(args) == 1:
            tbl: dict[str, Any] = {}
            for item in args[0].split(","):
                k, _, v = item.partition("=")
                tbl[k] = _node_id(v, spec)
            return LayoutEvent(at, act, parse_range_map(tbl, "ranges"), act)
    except (ValueError, ScenarioError) as exc:
        raise ConfigError(f"--event {spec!r}: {exc}") from None
    raise ConfigError(f"--event {spec!r}: {act} takes "
                      + {"stripe": "NODES:BLOCK", "push": "NODE", "boot": "no arguments",
                         "ranges": "START-END=NODE,..."}[act])


@dataclass
class TraceExtent:
    """What a first pass over a trace finds: lowest and highest pfn touched
    (-1 if none: only failed allocations), CPUs, the first timestamp and
    the latest one (trace clock, ns; not the last if the clock jumps back)."""

    min_pfn: int
    max_pfn: int
    nr_cpus: int
    first_ns: int
    last_ns: int
    events: int


class _ExtentScan:
    """Accumulates a TraceExtent chunk by chunk; when ``sizing`` (a machine
    is sized to the trace) refuses, naming the line, a CPU beyond MAX_CPUS
    and a pfn beyond MAX_PFNS before anything is allocated."""

    def __init__(self, name: str, sizing: bool) -> None:
        self.name, self.sizing = name, sizing
        self.min_pfn, self.max_pfn, self.cpus, self.first, self.last, self.n = -1, -1, 0, -1, -1, 0

    def add(self, ch: TraceChunk) -> None:
        if ch.pfn.size == 0:
            return
        # an order above MAX_PAGE_ORDER is not replayed (outside_model): it sizes nothing
        ok = (ch.kind != EV_ALLOC_FAIL) & (ch.order <= X86_64.max_page_order)
        if ok.any():
            pfn = ch.pfn[ok]
            top = pfn + (np.int64(1) << ch.order[ok].astype(np.int64)) - 1
            if self.sizing and int(top.max()) >= MAX_PFNS:
                i = int(np.argmax(top >= MAX_PFNS))
                raise TraceError(
                    f"{self.name}: line {int(ch.line[ok][i])}: pfn {int(pfn[i]):#x} (order "
                    f"{int(ch.order[ok][i])}) is beyond the {MAX_PFNS:#x} pfns (1 TiB) a machine "
                    "sized from a trace may have (replay it onto a --scenario machine)")
            lo = int(pfn.min())
            self.min_pfn = lo if self.min_pfn < 0 else min(self.min_pfn, lo)
            self.max_pfn = max(self.max_pfn, int(top.max()))
        top_cpu = int(ch.cpu.max())
        if self.sizing and top_cpu >= MAX_CPUS:
            i = int(np.argmax(ch.cpu >= MAX_CPUS))
            raise TraceError(f"{self.name}: line {int(ch.line[i])}: CPU {int(ch.cpu[i])} is "
                             f"beyond the model's limit of {MAX_CPUS} CPUs")
        self.cpus = max(self.cpus, top_cpu + 1)
        if self.first < 0:
            self.first = int(ch.ts_ns[0])
        self.last = max(self.last, int(ch.ts_ns.max()))
        self.n += ch.pfn.size

    def extent(self, stats: TraceStats) -> TraceExtent:
        name = self.name
        if self.n == 0:
            if stats.bytes == 0:
                raise TraceError(f"{name}: empty (no lines to replay)")
            raise TraceError(f"{name}: no kmem page events in the trace's {stats.lines} lines "
                             f"({stats.malformed} malformed)")
        cpus = self.cpus
        if self.sizing:
            if self.max_pfn < 0:
                raise TraceError(f"{name}: nothing to size a machine on: each of its {self.n} "
                                 "events is a failed allocation (no pfn)")
            if stats.nr_cpus is not None and stats.nr_cpus > MAX_CPUS:
                raise TraceError(f"{name}: line {stats.nr_cpus_line}: the header's "
                                 f"#P:{stats.nr_cpus} is beyond the model's limit of {MAX_CPUS} "
                                 "CPUs")
            cpus = max(cpus, stats.nr_cpus or 0)
        return TraceExtent(self.min_pfn, self.max_pfn, cpus, self.first, self.last, self.n)


#: a trace of up to this many events is parsed once and kept in memory
#: (~34 bytes an event) while the machine is sized; a longer one is read
#: twice, unless it comes from a stream (stdin, a pipe, a FIFO): that is kept
BUFFER_EVENTS = 32 << 20


def _buffered(path: str | Path, stats: TraceStats, sizing: bool
              ) -> tuple[TraceExtent, list[TraceChunk] | None]:
    """Parse the trace once for its extent, keeping the chunks when there are
    at most BUFFER_EVENTS events or it cannot be read again (else None:
    read it again)."""
    scan = _ExtentScan(trace_name(path), sizing)
    again = rereadable(path)
    kept: list[TraceChunk] | None = []
    for ch in read_trace(path, stats=stats):
        scan.add(ch)
        if kept is not None:
            kept.append(ch)
            if again and scan.n > BUFFER_EVENTS:
                kept = None
    return scan.extent(stats), kept


def machine_for_trace(ext: TraceExtent, nodes: int = 1) -> MachineConfig:
    """A flat machine covering every pfn the trace touches (rounded up to a
    128 MiB section), ``nodes`` nodes (1..MAX_NUMNODES) sharing it, the
    trace's CPU count."""
    if not 1 <= nodes <= DEFAULT_MAX_NUMNODES:
        raise ConfigError(f"nodes: {nodes} outside [1, {DEFAULT_MAX_NUMNODES}] (MAX_NUMNODES)")
    sec = 1 << 15
    end = (max(ext.max_pfn, 0) // sec + 1) * sec
    return MachineConfig.uniform(nodes=nodes, mem=end << 12, cpus=max(ext.nr_cpus, nodes))


def _fmt_ns(t: int) -> str:
    """``t`` ns in the largest unit that holds it exactly: 1ns, 250us, 2s."""
    for unit, scale in (("s", NS), ("ms", 10**6), ("us", 10**3)):
        if t and t % scale == 0:
            return f"{t // scale}{unit}"
    return f"{t}ns"


def _plan(m: Machine, events: Sequence[LayoutEvent], labels: Sequence[str] | None
          ) -> LayoutPlan:
    """The replay's LayoutPlan (events in time order); a layout the machine
    refuses is named by its label (``--event '1s:push:9'``) when given."""
    order = sorted(range(len(events)), key=lambda i: events[i].at)
    hot = [e for e in events if e.action in MACHINE_ACTIONS]
    if hot:
        raise ScenarioError(f"replay: {hot[0].name} ({hot[0].action}): a trace replay makes "
                            f"layout events only (the trace holds the kernel's own hotplug)")
    try:
        return LayoutPlan(m, [events[i] for i in order], "replay")
    except ScenarioError:
        if labels is None:
            raise
        for i in order:  # find the event at fault and name it
            try:
                LayoutPlan(m, [events[i]], labels[i])
            except ScenarioError as exc:
                raise ScenarioError(str(exc).replace(f"{labels[i]}: event[0] ",
                                                     f"{labels[i]} ", 1)) from None
        raise


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
    sample_ns: int = NS // 10

    def summary(self) -> dict[str, Any]:
        m = self.machine
        return {"trace": self.stats.to_dict(), "span_s": round(self.span_s, 6),
                "sample_s": self.sample_ns / NS,
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
                 events: Sequence[LayoutEvent] = (), sample: int | None = NS // 10,
                 observe: Callable[[Machine], Sequence[Observer]] | None = None,
                 progress: Callable[[float], None] | None = None,
                 check: Callable[[Machine], None] | None = None,
                 nodes: int = 1, machine: Machine | None = None,
                 event_labels: Sequence[str] | None = None,
                 follow: bool = False) -> ReplayResult:
    """Replay ``path`` (plain, .gz or .xz; ``-`` for stdin).  Times (event
    ``at``, ``sample``) are ns from the trace's first event; ``sample`` None:
    100 ms, or wider to keep to MAX_SAMPLES samples; an explicit one giving
    more samples than that is refused.  The trace is parsed first (for its
    span, and to size the machine when neither ``config`` nor ``machine`` is
    given) and kept in memory up to BUFFER_EVENTS events (a stream: all of
    it); ``progress`` gets the fraction of the trace's span done.
    ``machine``: replay onto this machine as it stands (e.g. one booted from
    a host) instead.  ``event_labels``: how errors name each of ``events``
    (``--event '1s:push:9'``).  ``follow``: the trace is the truth about
    every page it names, pcp lists included (the oracle replays a guest's
    trace from its own snapshot so; see :mod:`dnuma._kernels.replay`).
    Raises TraceError, naming the trace, for a
    trace without events, one beyond the model's limits when it sizes the
    machine (MAX_CPUS, MAX_PFNS) and one of which no pfn lies on the machine."""
    wall0 = time.perf_counter()
    name = trace_name(path)
    stats = TraceStats()
    sizing = machine is None and config is None
    ext, kept = _buffered(path, stats, sizing)
    span = ext.last_ns - ext.first_ns
    if sample is None:
        sample = max(NS // 10, -(-span // (MAX_SAMPLES - 1)))
    elif sample <= 0:
        raise ConfigError(f"sample: must be > 0 ns, got {sample}")
    elif span // sample + 1 > MAX_SAMPLES:
        raise ConfigError(f"{name}: --sample {_fmt_ns(sample)} takes {span // sample + 1} "
                          f"samples over the trace's {span / NS:g} s, more than {MAX_SAMPLES} "
                          f"(give --sample {_fmt_ns(-(-span // (MAX_SAMPLES - 1)))} or more)")
    if machine is not None:
        m = machine
    else:
        m = Machine(config if config is not None else machine_for_trace(ext, nodes))
    chunks: Iterable[TraceChunk] = kept if kept is not None else ()
    if kept is None:  # past BUFFER_EVENTS: read it again
        stats = TraceStats()
        chunks = read_trace(path, stats=stats)
    plan = _plan(m, events, event_labels)
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
                _kr.replay(m.S, ev, i, j, seen, counts, no_mask, follow)
            if j < n:
                loop.run(int(ts[j]))
            i = j
        t_rel = max(t_rel, int(ts.max()))  # the clock may jump back: the latest time
        if progress and span > 0:
            progress(min(1.0, t_rel / span))
    tally = _kr.ReplayCounts(*counts.tolist())
    # allocations and frees the model could place: none of them is a machine
    # that holds nothing of the trace
    placeable = stats.events["mm_page_alloc"] - stats.alloc_failed + stats.events["mm_page_free"]
    if placeable and tally.outside_model == placeable:
        lo = min(s for s, _, _ in m.config.ram)
        hi = max(e for _, e, _ in m.config.ram)
        pfns = f" (pfns {ext.min_pfn:#x}-{ext.max_pfn:#x})" if ext.min_pfn >= 0 else ""
        raise TraceError(f"{name}: none of the trace's {placeable} allocations and frees{pfns} "
                         f"lies on the machine's pfns {lo:#x}-{hi:#x}: nothing to replay")
    m.sync_zones()
    loop.run(t_rel)
    log.close()
    skipped = [f"{e.name} at {e.at / NS:g} s (after the trace's end, {t_rel / NS:g} s)"
               for e in plan.pending]
    for o in observers:
        o.finish(t_rel / NS)
    if check:
        check(m)
    return ReplayResult(m, log.steps, tally.replayed(), tally.anomalies(), stats,
                        t_rel / NS, time.perf_counter() - wall0, skipped, sample)
