"""The benchmarks of ``dnuma bench``, one function each, in the README's order.

Sizes are the full run's; ``--quick`` shrinks them (see each docstring) and
then judges only the floors whose meaning does not depend on size
(``seed-stripe`` and ``startup``, which run at full size anyway).
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..mm.constants import PG_buddy
from ..sim.hotplug import (
    KERNEL_MOVE_PAGES_BYTES_PER_S,
    KERNEL_ONLINE_MS_PER_256MIB,
    KERNEL_ONLINE_MS_PER_256MIB_BEFORE_2018,
)
from . import NAMES, BenchError, baselines
from .harness import Check, Context, Result, measure, median, release
from .machines import Rewind, mixed_initial_state

#: the RFC's stripe commit of 128 MiB: "~9 min" on the author's laptop
RFC_SECONDS = 9 * 60.0
QUICK_NOTE = ("quick sizes: the floors apply to the full sizes and are not judged here "
              "(ok is null)")


@dataclass(frozen=True)
class Bench:
    """A benchmark: its function and what the table says it measures."""

    name: str
    what: str
    fn: Callable[[Context], tuple[Result, str]]


def _sized(ctx: Context) -> dict[str, Any]:
    """Result fields of a benchmark whose size shrinks in quick mode."""
    return {"quick": ctx.quick, "meaningful": not ctx.quick,
            "note": QUICK_NOTE if ctx.quick else ""}


def _size(mem: str) -> int:
    from ..mm.machine import parse_size

    return parse_size(mem) >> 12


# ------------------------------------------------------------------ seed-stripe
def seed_stripe(ctx: Context) -> tuple[Result, str]:
    """The RFC's experiment: 128 MiB, 2 nodes, 8 CPUs, churned to ~50%
    allocated (``Churn``, orders 0-3, through alloc_pages/free_pages with pcp
    lists); commit the 256-pfn stripe over nodes 0,1,2 (node 2 new), each
    repetition from that same state.  Same size in quick mode."""
    from ..mm.machine import boot
    from ..mm.memlayout import MemLayout
    from ..sim.workload import Churn

    m = boot(2, "128M", 8)
    ch = Churn(m, fill=0.5, seed=1)
    ch.warm_up()
    ch.run(20_000)
    alloc_frac = 1 - m.nr_free_pages() / m.total_present_pages
    lay = MemLayout.stripe(m.ram_ranges(), [0, 1, 2], 256)
    rw = Rewind(m)
    del ch
    last: list[Any] = []
    commit = rw.timed_commit(lay, last)
    s = measure({"commit": commit}, ctx.pick(21, 11), warmups=2, tick=ctx.tick)
    rep = last[0]
    secs = median(s["commit"])
    res = Result("seed-stripe", secs * 1e3, "ms", "<= 5 ms per commit (RFC: ~9 min)",
                 s["commit"], [Check("value", "<=", 5.0)], quick=ctx.quick, extra={
                     "pfns": int(rw.pristine["page_flags"].size),
                     "allocated_fraction": alloc_frac, "ranges": len(lay),
                     "pages_marked": rep.pages_marked,
                     "free_pages_moved": rep.free_pages_moved,
                     "pcp_pages_moved": rep.pcp_pages_moved, "blocks_split": rep.blocks_split,
                     "nodes_onlined": rep.nodes_onlined, "rfc_seconds": RFC_SECONDS,
                     "speedup_vs_rfc": RFC_SECONDS / secs})
    return res, (f"{rep.pages_marked} marked, {rep.free_pages_moved + rep.pcp_pages_moved} "
                 f"free moved; {RFC_SECONDS / secs:.2g}x the RFC")


# ------------------------------------------------------------------ tib-stripe
def tib_stripe(ctx: Context) -> tuple[Result, str]:
    """1 TiB (268,435,456 pfns), 4 nodes, 8 CPUs, booted straight into ~60%
    allocated in mixed orders 0-3 (:func:`~dnuma.bench.machines.
    mixed_initial_state`); commit a 2 MiB-block (512-pfn) stripe over nodes
    0-3 (``commit_walk``, ``drain_all_pages_dnuma``), each repetition from the same
    state, interleaved with the baseline: numpy writing one byte per pfn.
    Quick: 4 GiB."""
    from ..mm.machine import Machine, MachineConfig
    from ..mm.memlayout import MemLayout

    t_setup = time.perf_counter()
    config = MachineConfig.uniform(4, ctx.pick("1T", "4G"), 8)
    state = mixed_initial_state(config, seed=0)
    nblocks = int(state.alloc_pfn.size)
    m = Machine(config, state)
    del state
    release()
    pfns = m.max_pfn
    alloc_frac = 1 - m.nr_free_pages() / m.total_present_pages
    free_blocks = int(np.count_nonzero(m.S.page_flags & PG_buddy))
    lay = MemLayout.stripe(m.ram_ranges(), [0, 1, 2, 3], 512)
    rw = Rewind(m)
    del m
    release()
    setup = time.perf_counter() - t_setup
    last: list[Any] = []
    commit = rw.timed_commit(lay, last)
    s = measure({"commit": commit, "one_pass": baselines.one_pass(pfns)}, ctx.pick(5, 5),
                tick=ctx.tick)
    rep = last[0]
    c, p = median(s["commit"]), median(s["one_pass"])
    res = Result("tib-stripe", c, "s", "<= 1 s; ratio <= 25 (commit / one numpy pass)",
                 s["commit"], [Check("value", "<=", 1.0), Check("ratio", "<=", 25.0)],
                 **_sized(ctx),
                 extra={"pfns": pfns, "allocated_fraction": alloc_frac,
                        "allocated_blocks": nblocks, "free_blocks": free_blocks,
                        "ranges": len(lay),
                        "commit_seconds": c, "one_pass_seconds": p, "ratio": c / p,
                        "one_pass_samples": s["one_pass"], "pages_marked": rep.pages_marked,
                        "free_pages_moved": rep.free_pages_moved,
                        "pcp_pages_moved": rep.pcp_pages_moved,
                        "blocks_split": rep.blocks_split, "setup_seconds": setup})
    return res, (f"ratio {c / p:.3g} (one pass {p * 1e3:.3g} ms); {rep.pages_marked} marked, "
                 f"{rep.free_pages_moved} free moved")


# ------------------------------------------------------------------ boot-tib
def boot_tib(ctx: Context) -> tuple[Result, str]:
    """Boot a 1 TiB, 4-node, 8-CPU machine (``free_pages_memory``, zonelists,
    watermarks).  The last one booted is kept for ``export``.  Quick: 4 GiB."""
    from ..mm.machine import boot

    mem = ctx.pick("1T", "4G")
    ctx.keep.pop("tib-machine", None)
    held: list[Any] = []

    def op() -> float:
        held.clear()  # drop the previous machine first (outside the timing)
        release()
        t0 = time.perf_counter()
        m = boot(4, mem, 8)
        secs = time.perf_counter() - t0
        held.append(m)
        return secs

    s = measure({"boot": op}, ctx.pick(3, 3), tick=ctx.tick)
    m = held.pop()
    ctx.keep["tib-machine"] = (mem, m)
    secs = median(s["boot"])
    bpp = m.nbytes() / m.max_pfn
    fresh = _fresh_process_boot(mem)
    res = Result("boot-tib", secs, "s", "<= 5 s; bytes_per_pfn <= 16", s["boot"],
                 [Check("value", "<=", 5.0), Check("bytes_per_pfn", "<=", 16.0)],
                 **_sized(ctx),
                 extra={"pfns": m.max_pfn, "model_bytes": m.nbytes(), "bytes_per_pfn": bpp,
                        "per_pfn_array_bytes": m.per_pfn_bytes(),
                        "fresh_process_seconds": fresh})
    return res, (f"{bpp:.3f} bytes/pfn ({m.per_pfn_bytes()} in per-pfn arrays); "
                 f"{fresh:.2f} s as a fresh process's first boot")


_FRESH_BOOT = """
import sys, time
from dnuma.mm.machine import boot
boot(2, "64M", 2)  # load the cached kernels first
t0 = time.perf_counter()
boot(4, sys.argv[1], 8)
print(time.perf_counter() - t0)
"""


def _fresh_process_boot(mem: str) -> float:
    """The same boot as a new process's first: the repeats above reuse memory
    the process already faulted in; a fresh process pays the kernel's page
    faults for every array it touches (seconds, one sample)."""
    out = baselines.run_process([sys.executable, "-c", _FRESH_BOOT, mem],
                                "bench boot-tib: a fresh process's boot")
    return float(out.decode().strip().splitlines()[-1])


# ------------------------------------------------------------------ lookup
def lookup(ctx: Context) -> tuple[Result, str]:
    """Vectorised pfn -> nid (``MemLayout.lookup``: ``lookup_many``, counting
    the RFC's cache hits/misses) of 10M uniformly random pfns in a 1 TiB
    stripe of 512-pfn blocks over 4 nodes (524,288 ranges), interleaved with
    ``np.take`` on a dense per-pfn int16 nid table of the same machine.
    Quick: 4 GiB (2,048 ranges), 1M pfns."""
    from ..mm.memlayout import MemLayout

    nr = _size(ctx.pick("1T", "4G"))
    n = ctx.pick(10_000_000, 1_000_000)
    lay = MemLayout.stripe([(0, nr)], [0, 1, 2, 3], 512)
    pfns = np.random.default_rng(0).integers(0, nr, size=n, dtype=np.int64)
    dense = baselines.dense_nid_table(lay.starts, lay.ends, lay.nids, nr)
    if not np.array_equal(lay.lookup_nocount(pfns), np.take(dense, pfns)):
        raise BenchError("bench lookup: the layout and the dense table disagree")

    def op() -> float:
        t0 = time.perf_counter()
        lay.lookup(pfns)
        return time.perf_counter() - t0

    s = measure({"lookup": op, "dense": baselines.dense_lookup(dense, pfns)},
                ctx.pick(7, 5), tick=ctx.tick)
    h0, m0 = lay.stats.hits, lay.stats.misses
    lay.lookup(pfns)
    hits, misses = lay.stats.hits - h0, lay.stats.misses - m0
    lk, dn = median(s["lookup"]), median(s["dense"])
    layout_bytes = sum(a.nbytes for a in (lay.starts, lay.ends, lay.nids, lay.table))
    res = Result("lookup", n / lk, "lookups/s", ">= 100M/s; ratio <= 3 (vs np.take, dense)",
                 s["lookup"], [Check("value", ">=", 1e8), Check("ratio", "<=", 3.0)],
                 **_sized(ctx),
                 extra={"ranges": len(lay), "lookups": n, "pfns": nr, "lookup_seconds": lk,
                        "dense_seconds": dn, "dense_samples": s["dense"],
                        "dense_lookups_per_s": n / dn, "ratio": lk / dn,
                        "dense_table_bytes": int(dense.nbytes), "layout_bytes": layout_bytes,
                        "cache_hits": hits, "cache_misses": misses})
    return res, f"ratio {lk / dn:.2f} (dense {n / dn / 1e6:.0f}M/s); {len(lay)} ranges"


# ------------------------------------------------------------------ churn
def churn(ctx: Context) -> tuple[Result, str]:
    """64 GiB, 2 nodes, 8 CPUs, steady near 50% allocated: ``Churn.run``
    (orders 0-3 weighted 8:4:2:1, the ``churn`` kernel calling the
    allocator's own ``alloc_pages``/``free_pages`` with pcp lists),
    interleaved with the host kernel populating and unmapping 1 GiB of
    anonymous memory (MAP_POPULATE).  Quick: 1 GiB, 256 MiB host mapping."""
    from ..mm.machine import boot
    from ..sim.workload import Churn

    m = boot(2, ctx.pick("64G", "1G"), 8)
    ch = Churn(m, fill=0.5, seed=0)
    ch.warm_up()
    ch.run(ctx.pick(1_000_000, 100_000))  # into the alloc/free steady state
    n_ops = ctx.pick(2_000_000, 300_000)
    host_bytes = ctx.pick(1 << 30, 256 << 20)

    def op() -> float:
        t0 = time.perf_counter()
        ch.run(n_ops)
        return time.perf_counter() - t0

    s = measure({"churn": op, "host": baselines.host_populate(host_bytes)}, ctx.pick(5, 3),
                tick=ctx.tick)
    fill = ch.live_pages / m.total_present_pages
    w = np.asarray(ch.order_weights, dtype=np.float64)
    pages_per_op = float((w * (1 << np.asarray(ch.orders))).sum() / w.sum())
    secs, hs = median(s["churn"]), median(s["host"])
    ops = n_ops / secs
    host = (host_bytes >> 12) / hs
    res = Result("churn", ops, "ops/s", ">= 5M/s; realtime_factor >= 10 (vs host kernel)",
                 s["churn"], [Check("value", ">=", 5e6), Check("realtime_factor", ">=", 10.0)],
                 **_sized(ctx),
                 extra={"ops": n_ops, "fill": fill, "host_bytes": host_bytes,
                        "host_seconds": hs, "host_samples": s["host"],
                        "host_pages_per_s": host, "realtime_factor": ops / host,
                        "pages_per_op": pages_per_op, "model_pages_per_s": ops * pages_per_op})
    return res, (f"realtime x{ops / host:.1f} (host {host / 1e6:.2f}M pages/s); "
                 f"model {ops * pages_per_op / 1e6:.1f}M pages/s")


# ------------------------------------------------------------------ replay
#: the traces of the source tree's tests/data: a real ftrace capture and an
#: excerpt of it (see tests/data/README.md)
DATA = Path(__file__).resolve().parents[3] / "tests" / "data"
FULL_TRACE = "kmem-trace-A.txt.xz"
EXCERPT_TRACE = "kmem-trace-excerpt.txt.xz"


def trace_path(ctx: Context) -> Path:
    """--trace, else tests/data's full capture (its excerpt in quick mode);
    :class:`~dnuma.bench.BenchError` when that file is not there."""
    path = Path(ctx.trace) if ctx.trace else DATA / ctx.pick(FULL_TRACE, EXCERPT_TRACE)
    if not path.is_file():
        where = "" if ctx.trace else " (tests/data of a source checkout)"
        raise BenchError(f"bench replay: no trace at {path}{where}; give --trace PATH")
    return path


def replay(ctx: Context) -> tuple[Result, str]:
    """Replay a real kmem trace end to end (``replay_trace``: read and
    decompress, parse, size a 2-node machine, apply every event with the
    ``replay`` kernel).  Trace: :func:`trace_path`."""
    from ..sim.replay import replay_trace

    path = trace_path(ctx)
    last: list[Any] = []

    def op() -> None:
        last[:] = [replay_trace(path, nodes=2)]

    s = measure({"replay": op}, ctx.pick(3, 3), tick=ctx.tick)
    res_ = last.pop()
    events = int(sum(res_.stats.events.values()))
    secs = median(s["replay"])
    res = Result("replay", events / secs, "events/s", ">= 1M events/s end to end",
                 s["replay"], [Check("value", ">=", 1e6)], **_sized(ctx),
                 extra={"trace": str(path), "events": events,
                        "trace_bytes": int(res_.stats.bytes), "lines": int(res_.stats.lines)})
    del res_
    release()
    return res, f"{events} events of {path.name}"


# ------------------------------------------------------------------ export
def _tmpfs() -> Path | None:
    """A writable tmpfs (``/dev/shm``) or None."""
    shm = Path("/dev/shm")
    try:
        with open("/proc/mounts") as f:
            mounted = any(ln.split()[1] == str(shm) and ln.split()[2] == "tmpfs" for ln in f)
    except OSError:
        return None
    return shm if mounted and os.access(shm, os.W_OK) else None


def export(ctx: Context) -> tuple[Result, str]:
    """``write_sysroot`` of a 1 TiB, 4-node machine (as booted; the one
    ``boot-tib`` left, when it ran) into a fresh directory per repetition,
    removed after it (untimed).  The value is measured on a tmpfs (the
    exporter's own speed: the tree is ephemeral, made for the tools to read);
    the same write to the temporary directory's disk is timed beside it
    (``disk_seconds``), since file creation there costs what the filesystem
    makes it cost.  Quick: 4 GiB."""
    from ..io.export import write_sysroot
    from ..mm.machine import boot

    mem = ctx.pick("1T", "4G")
    kept = ctx.keep.pop("tib-machine", None)
    m = kept[1] if kept is not None and kept[0] == mem else boot(4, mem, 8)
    del kept
    tree: dict[str, int] = {}
    shm = _tmpfs()

    def write_into(base: str | None) -> Callable[[], float]:
        def op() -> float:
            d = Path(tempfile.mkdtemp(prefix="dnuma-bench-export-", dir=base))
            try:
                t0 = time.perf_counter()
                write_sysroot(m, d / "sysroot")
                secs = time.perf_counter() - t0
                if not tree:
                    files = [p for p in (d / "sysroot").rglob("*") if p.is_file()]
                    tree.update(files=len(files), bytes=sum(p.stat().st_size for p in files))
            finally:
                shutil.rmtree(d, ignore_errors=True)
            return secs
        return op

    ops = {"export": write_into(str(shm) if shm else None)}
    if shm:
        ops["disk"] = write_into(None)
    s = measure(ops, ctx.pick(5, 3), tick=ctx.tick)
    secs = median(s["export"])
    where = f"{shm or tempfile.gettempdir()}/dnuma-bench-export-*/sysroot"
    extra: dict[str, Any] = {"wrote": where + " (removed after each repetition)",
                             "files": tree.get("files", 0), "bytes": tree.get("bytes", 0),
                             "tmpfs": shm is not None}
    if shm:
        extra["disk_seconds"] = median(s["disk"])
        extra["disk_samples"] = s["disk"]
        extra["disk_dir"] = tempfile.gettempdir()
    res = Result("export", secs, "s", "<= 1 s", s["export"], [Check("value", "<=", 1.0)],
                 **_sized(ctx), extra=extra)
    disk = f"; {extra['disk_seconds']:.2f} s on {extra['disk_dir']}" if shm else ""
    return res, f"{tree.get('files', 0)} files in {where}{disk}"


# ------------------------------------------------------------------ online-tib
MIB_256 = 256 << 20


def online_tib(ctx: Context) -> tuple[Result, str]:
    """Hot-add 1 TiB (268,435,456 pfns, 8,192 memory blocks of 128 MiB) to
    node 1, which has no memory, of a 4 GiB one-node 8-CPU machine built
    with the room for it (``MachineConfig.maxmem_pfn``), and online it:
    ``Machine.add_memory(1, 4 GiB, 1 TiB, "online")`` (sections, node
    bring-up, blocks registered, online_pages of every block), each
    repetition from the same state (``Rewind``, the hotplug room kept as
    its fill).  The warm-up run pays the page faults of the room's arrays,
    which the machine's boot leaves untouched: ``first_run_seconds``.
    Quick: 4 GiB."""
    from ..mm.machine import Machine, MachineConfig
    from .harness import peak_rss_bytes

    t_setup = time.perf_counter()
    base = _size("4G")
    nr = _size(ctx.pick("1T", "4G"))
    m = Machine(MachineConfig.uniform(1, "4G", 8, maxmem_pfn=base + nr))
    rw = Rewind(m, uniform_from=base)
    model_bytes = m.nbytes()
    del m
    release()
    setup = time.perf_counter() - t_setup
    runs: list[float] = []
    last: list[Any] = []

    def op() -> float:
        last.clear()
        mm = rw.fresh()
        t0 = time.perf_counter()
        blocks = mm.add_memory(1, base, nr, "online")
        secs = time.perf_counter() - t0
        runs.append(secs)
        last.append((mm, blocks))
        return secs

    s = measure({"online": op}, ctx.pick(5, 3), tick=ctx.tick)
    mm, blocks = last.pop()
    if mm.nr_free_pages() < nr or len(mm.offline_blocks):
        raise BenchError("bench online-tib: the hot-added memory did not come online")
    secs = median(s["online"])
    hot_bytes = nr << 12
    ms_256 = secs * 1e3 / (hot_bytes / MIB_256)
    lo, hi = KERNEL_ONLINE_MS_PER_256MIB_BEFORE_2018
    ratio = ms_256 / KERNEL_ONLINE_MS_PER_256MIB
    del mm
    res = Result("online-tib", secs, "s", "<= 1 s (kernel: < 1 ms per 256 MiB section)",
                 s["online"], [Check("value", "<=", 1.0)], **_sized(ctx),
                 extra={"pfns": nr, "hot_added_bytes": hot_bytes, "memory_blocks": len(blocks),
                        "ms_per_256mib": ms_256, "ms_per_gib": ms_256 * 4,
                        "kernel_ms_per_256mib": KERNEL_ONLINE_MS_PER_256MIB,
                        "kernel_ms_per_256mib_before_2018": [lo, hi],
                        "kernel_ratio": ratio,
                        "kernel_before_2018_ratio": ms_256 / ((lo + hi) / 2),
                        "first_run_seconds": runs[0], "setup_seconds": setup,
                        "model_bytes": model_bytes, "rewind_bytes": rw.nbytes(),
                        "peak_rss_bytes": peak_rss_bytes()})
    return res, (f"{ms_256:.3g} ms per 256 MiB, ratio {ratio:.2g} to the kernel's < 1 ms "
                 f"(50-60 ms before 2018); first run {runs[0]:.2f} s (page faults)")


# ------------------------------------------------------------------ offline-gib
def offline_gib(ctx: Context) -> tuple[Result, str]:
    """Offline 1 GiB (8 memory blocks of 128 MiB: the top of node 1 of a
    2-node 8-CPU machine, node 0 4 GiB, node 1 2 GiB) half allocated with
    movable pages (LRU blocks of orders 0-3, clustered as
    :func:`~dnuma.bench.machines.mixed_initial_state` leaves them):
    ``Machine.offline_memory_block`` of each (zone_pcp_disable, isolation,
    migration to node 0, the free pages taken off, accounting), each
    repetition from the same state.  The value is the pages migrated per
    second of the whole offline, beside the kernel's ``move_pages`` figure
    (about 3.7 GB/s for 4 KiB pages).  Same size in quick mode."""
    from ..mm.constants import PG_lru
    from ..mm.machine import Machine, MachineConfig

    block = 128 << 20
    n0, n1, gib = _size("4G"), _size("2G"), _size("1G")
    lo = n0 + n1 - gib
    config = MachineConfig(ram=((0, n0, 0), (n0, n0 + n1, 1)),
                           cpu_to_node=(0, 0, 0, 0, 1, 1, 1, 1), memory_block_bytes=block)
    m = Machine(config, mixed_initial_state(config, fill=0.5, seed=0, ranges=[(lo, lo + gib)],
                                            flags=PG_lru))
    blocks = list(range(lo // _size("128M"), (lo + gib) // _size("128M")))
    allocated = int(m.allocated_mask()[lo:lo + gib].sum())
    rw = Rewind(m)
    del m
    last: list[Any] = []

    def op() -> float:
        mm = rw.fresh()
        t0 = time.perf_counter()
        reps = [mm.offline_memory_block(b) for b in blocks]
        secs = time.perf_counter() - t0
        last[:] = [reps]
        return secs

    s = measure({"offline": op}, ctx.pick(5, 5), tick=ctx.tick)
    reps = last.pop()
    pages = sum(r.pages_migrated for r in reps)
    if pages != allocated:
        raise BenchError(f"bench offline-gib: {pages} pages migrated, {allocated} allocated")
    secs = median(s["offline"])
    kernel = KERNEL_MOVE_PAGES_BYTES_PER_S / 4096
    rate = pages / secs
    res = Result("offline-gib", rate, "pages/s",
                 ">= 0.9M pages/s (kernel move_pages: ~3.7 GB/s of 4 KiB pages)",
                 s["offline"], [Check("value", ">=", kernel)], quick=ctx.quick,
                 extra={"offlined_bytes": gib << 12, "memory_blocks": len(blocks),
                        "allocated_fraction": allocated / gib, "pages_migrated": pages,
                        "blocks_migrated": sum(r.blocks_migrated for r in reps),
                        "free_pages_removed": sum(r.free_pages_removed for r in reps),
                        "pcp_pages_drained": sum(r.pcp_pages_drained for r in reps),
                        "offline_seconds": secs, "ms_per_block": secs * 1e3 / len(blocks),
                        "bytes_per_s": rate * 4096,
                        "kernel_bytes_per_s": KERNEL_MOVE_PAGES_BYTES_PER_S,
                        "kernel_pages_per_s": kernel, "kernel_ratio": rate / kernel})
    return res, (f"{pages} pages migrated in {secs * 1e3:.0f} ms ({rate * 4096 / 1e9:.2g} GB/s), "
                 f"ratio {rate / kernel:.2g} to the kernel's move_pages (3.7 GB/s)")


# ------------------------------------------------------------------ startup
def startup(ctx: Context) -> tuple[Result, str]:
    """``python -m dnuma.cli --version`` as a new process, wall time,
    interleaved with ``python -c pass``.  Same in quick mode."""
    argv = [sys.executable, "-m", "dnuma.cli", "--version"]
    s = measure({"dnuma": baselines.new_process(argv), "python": baselines.python_pass()},
                ctx.pick(7, 5), tick=ctx.tick)
    secs, base = median(s["dnuma"]), median(s["python"])
    res = Result("startup", secs, "s", "<= 0.5 s (dnuma --version)", s["dnuma"],
                 [Check("value", "<=", 0.5)], quick=ctx.quick,
                 extra={"baseline_seconds": base, "baseline_samples": s["python"],
                        "overhead_seconds": secs - base})
    return res, f"python -c pass {base * 1e3:.0f} ms"


BENCHMARKS: tuple[Bench, ...] = (
    Bench("seed-stripe", "128 MiB, ~50% allocated: commit the 256-pfn stripe over nodes 0,1,2",
          seed_stripe),
    Bench("tib-stripe", "1 TiB, ~60% allocated: commit a 2 MiB-block stripe over 4 nodes",
          tib_stripe),
    Bench("boot-tib", "boot a 1 TiB, 4-node machine", boot_tib),
    Bench("lookup", "524,288 ranges: 10M random pfns, vectorised pfn->nid", lookup),
    Bench("churn", "64 GiB, ~50% allocated: alloc+free through the allocator", churn),
    Bench("replay", "parse and apply a real kmem trace", replay),
    Bench("export", "write the sysroot of a 1 TiB, 4-node machine", export),
    Bench("online-tib", "hot-add and online 1 TiB on a new node", online_tib),
    Bench("offline-gib", "offline 1 GiB holding 50% movable pages, migration included",
          offline_gib),
    Bench("startup", "dnuma --version as a new process", startup),
)

assert tuple(b.name for b in BENCHMARKS) == NAMES

#: the order they run in: ``export`` right after ``boot-tib`` (it takes its
#: machine), the rest as listed
RUN_ORDER = ("seed-stripe", "tib-stripe", "boot-tib", "export", "lookup", "churn", "replay",
             "online-tib", "offline-gib", "startup")


def run_benchmarks(names: list[str], ctx: Context,
                   progress: Callable[[float], None] = lambda done: None
                   ) -> tuple[list[Result], dict[str, str], dict[str, Any], dict[str, Any]]:
    """Warm the kernels up (``warm_up``: compiled or loaded from numba's
    cache on a tiny scenario), then run the named benchmarks.

    Returns the results in table order, a line of key extras by name, the
    host's facts (:func:`~dnuma.bench.harness.host_facts`) and the run's
    (wall seconds, peak RSS).  ``progress`` gets the number of benchmarks
    done (fractions included).
    """
    from ..sim.run import warm_up
    from .harness import host_facts, peak_rss_bytes

    t0 = time.perf_counter()
    warm = warm_up()
    order = [n for n in RUN_ORDER if n in names]
    by_name = {b.name: b for b in BENCHMARKS}
    results: dict[str, Result] = {}
    details: dict[str, str] = {}
    for i, name in enumerate(order):
        def tick(frac: float, i: int = i) -> None:
            progress(i + frac)
        ctx.tick = tick
        results[name], details[name] = by_name[name].fn(ctx)
        if "export" not in order[i + 1:]:
            ctx.keep.clear()  # the 1 TiB machine boot-tib left
        release()
        progress(i + 1)
    facts = host_facts(warm)  # numba's counts cover the whole run
    run = {"quick": ctx.quick, "benchmarks": order, "wall_seconds": time.perf_counter() - t0,
           "peak_rss_bytes": peak_rss_bytes()}
    return [results[b.name] for b in BENCHMARKS if b.name in results], details, facts, run
