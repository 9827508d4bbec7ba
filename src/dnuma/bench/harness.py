"""The benchmark harness: repeated, interleaved timing; results with their
targets; the host's facts; the table.

Every benchmark times its measured operation ``repeats`` times after
``warmups`` untimed runs and reports the median (seconds).  Where a
benchmark has a baseline (a same-run measurement of this machine, e.g. one
numpy pass over the pfns), the two are interleaved round-robin, so that a
noisy neighbour slows both alike and their ratio holds.
"""

from __future__ import annotations

import gc
import os
import platform
import resource
import statistics
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import BenchError

#: a measured operation: returns its own duration in seconds (to leave its
#: set-up untimed) or None (then the whole call is timed)
Op = Callable[[], float | None]


def measure(ops: Mapping[str, Op], repeats: int, warmups: int = 1,
            tick: Callable[[float], None] | None = None) -> dict[str, list[float]]:
    """Run every op ``warmups`` times untimed, then ``repeats`` rounds in
    which each op runs once, in turn (interleaved).  Returns the samples in
    seconds by op name.  ``tick`` gets the fraction of rounds done."""
    if repeats < 1:
        raise BenchError(f"repeats must be >= 1, got {repeats}")
    for _ in range(warmups):
        for op in ops.values():
            op()
    samples: dict[str, list[float]] = {k: [] for k in ops}
    for r in range(repeats):
        for k, op in ops.items():
            t0 = time.perf_counter()
            own = op()
            samples[k].append(time.perf_counter() - t0 if own is None else float(own))
        if tick:
            tick((r + 1) / repeats)
    return samples


def median(samples: list[float]) -> float:
    """The median of ``samples`` (seconds)."""
    return float(statistics.median(samples))


@dataclass
class Check:
    """One floor: ``field`` (a key of the result's JSON) compared with ``limit``."""

    field: str
    op: str  # "<=" or ">="
    limit: float

    def holds(self, actual: float) -> bool:
        return actual <= self.limit if self.op == "<=" else actual >= self.limit


@dataclass
class Result:
    """One benchmark's outcome.

    value/unit: the headline figure; seconds: the median of ``samples``, the
    measured operation's times in seconds; extra: further named figures (the
    baselines and ratios the targets name); checks: the floors of ``target``;
    ``meaningful``: whether those floors are judged at this run's sizes (in
    quick mode only the benchmarks whose size does not shrink are).
    """

    name: str
    value: float
    unit: str
    target: str
    samples: list[float]
    checks: list[Check]
    extra: dict[str, Any] = field(default_factory=dict)
    quick: bool = False
    meaningful: bool = True
    note: str = ""

    @property
    def seconds(self) -> float:
        return median(self.samples)

    def actual(self, name: str) -> float:
        return float(self.value if name == "value" else self.extra[name])

    @property
    def ok(self) -> bool | None:
        """All floors hold; None when they are not judged (quick sizes)."""
        if not self.meaningful:
            return None
        return all(c.holds(self.actual(c.field)) for c in self.checks)

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name, "value": self.value, "unit": self.unit, "target": self.target,
            "ok": self.ok, "quick": self.quick, "repeats": len(self.samples),
            "seconds": self.seconds, "samples": self.samples,
        }
        out.update(self.extra)
        out["checks"] = [{"field": c.field, "op": c.op, "limit": c.limit,
                          "actual": self.actual(c.field),
                          "ok": c.holds(self.actual(c.field)) if self.meaningful else None}
                         for c in self.checks]
        if self.note:
            out["note"] = self.note
        return out


@dataclass
class Context:
    """What every benchmark is given: the mode, the trace, a progress hook
    and a place to hand a big machine to a later benchmark (``keep``)."""

    quick: bool = False
    trace: str | None = None
    tick: Callable[[float], None] = lambda frac: None
    keep: dict[str, Any] = field(default_factory=dict)

    def pick(self, full: Any, quick: Any) -> Any:
        """``full`` normally, ``quick`` with --quick."""
        return quick if self.quick else full


def release() -> None:
    """Let go of dropped machines now (they hold gigabytes)."""
    gc.collect()


# ------------------------------------------------------------------ host facts
def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _mem_total() -> int | None:
    """MemTotal in bytes (None when /proc/meminfo cannot be read)."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def numba_cache_stats() -> tuple[int, int]:
    """(cache hits, cache misses) summed over every compiled kernel of
    :mod:`dnuma._kernels` so far; a miss is a compilation."""
    hits = misses = 0
    for name, mod in list(sys.modules.items()):
        if not name.startswith("dnuma._kernels") or mod is None:
            continue
        for obj in vars(mod).values():
            st = getattr(obj, "stats", None)
            if st is not None and hasattr(st, "cache_misses"):
                hits += sum(st.cache_hits.values())
                misses += sum(st.cache_misses.values())
    return hits, misses


def host_facts(warm_up_seconds: float) -> dict[str, Any]:
    """This host: CPU, memory, kernel, Python and library versions, and
    whether numba's on-disk cache already held the kernels (nothing compiled
    in this process so far; the warm-up's seconds show the cost if not)."""
    import numba
    import numpy as np

    hits, misses = numba_cache_stats()
    un = os.uname()
    return {
        "cpu_model": _cpu_model(), "nr_cpus": os.cpu_count(), "mem_total_bytes": _mem_total(),
        "kernel": f"{un.sysname} {un.release} {un.version} {un.machine}",
        "python": platform.python_version(), "numpy": np.__version__,
        "numba": numba.__version__, "numba_cache_warm": misses == 0,
        "numba_cache_hits": hits, "numba_compilations": misses,
        "warm_up_seconds": warm_up_seconds,
    }


def peak_rss_bytes() -> int:
    """The highest resident set size of this process so far (bytes)."""
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024


# ------------------------------------------------------------------ table
def si(v: float) -> str:
    """3 significant digits with a k/M/G suffix: 12345678 -> '12.3M'."""
    for div, suf in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(v) >= div:
            return f"{v / div:.3g}{suf}"
    return f"{v:.3g}"


def format_table(results: list[Result], details: Mapping[str, str]) -> str:
    """The stdout table: name, value, unit, target, ok, key extras."""
    rows = [("name", "value", "unit", "target", "ok", "details")]
    for r in results:
        ok = {True: "yes", False: "NO", None: "-"}[r.ok]
        rows.append((r.name, si(r.value), r.unit, r.target, ok, details.get(r.name, "")))
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    lines = []
    for row in rows:
        lines.append("  ".join(c.ljust(w) for c, w in zip(row[:5], widths, strict=True))
                     + "  " + row[5])
    return "\n".join(line.rstrip() for line in lines)
