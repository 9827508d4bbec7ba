"""Machines the benchmarks run on, and how a state-changing operation (a
commit) is repeated from the same state."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

from .._kernels import state as _st
from ..mm.machine import InitialState, Machine, MachineConfig
from ..mm.memlayout import MemLayout

#: how an allocated aligned order-3 chunk (8 pfns) is cut: one order-3
#: block, two order-2, four order-1 or eight order-0 blocks (equal odds)
CHUNK_ORDERS = (3, 2, 1, 0)


def mixed_initial_state(config: MachineConfig, fill: float = 0.6, run_chunks: int = 192,
                        seed: int = 0, ranges: list[tuple[int, int]] | None = None,
                        flags: int = 0) -> InitialState:
    """An allocation state of about ``fill`` of the pages in mixed orders
    0-3, built vectorised (no allocator calls), clustered as an allocator
    leaves memory: alternating runs of allocated and free aligned order-3
    chunks (8 pfns), the run lengths geometric with means ``run_chunks``
    (allocated) and ``run_chunks * (1 - fill) / fill`` (free).  With the
    defaults a free run averages 1024 pfns, which the buddy allocator holds
    as ~12 blocks of ~85 pfns (the host snapshot's Normal zone: 46).  Each
    allocated chunk is one order-3, two order-2, four order-1 or eight
    order-0 blocks; blocks carry ``flags`` (extra page flags, e.g. PG_lru:
    movable) and owner 0.  ``ranges``: the ``(start_pfn, end_pfn)`` ranges
    to allocate in (default: all of ``config.ram``).
    """
    if not 0.0 < fill < 1.0:
        raise ValueError(f"fill {fill} not in (0, 1)")
    rng = np.random.default_rng(seed)
    heads_by_range = []
    for s, e in ranges if ranges is not None else [(s, e) for s, e, _n in config.ram]:
        lo, hi = -(-int(s) // 8) * 8, (int(e) // 8) * 8
        if hi > lo:
            heads_by_range.append(np.arange(lo, hi, 8, dtype=np.int64))
    chunks = np.concatenate(heads_by_range)
    # alternating run lengths (allocated first), enough to cover every chunk
    mean_free = run_chunks * (1 - fill) / fill
    n_runs = int(2 * chunks.size / (run_chunks + mean_free)) + 64
    lens = np.empty(2 * n_runs, dtype=np.int64)
    lens[0::2] = rng.geometric(1 / run_chunks, n_runs)
    lens[1::2] = rng.geometric(1 / mean_free, n_runs)
    allocated = np.repeat(np.arange(lens.size) % 2 == 0, lens)[:chunks.size]
    held = chunks[allocated]
    cut = np.asarray(CHUNK_ORDERS, dtype=np.int8)[rng.integers(0, len(CHUNK_ORDERS),
                                                               held.size)]
    del chunks, allocated
    heads, orders = [], []
    for order in CHUNK_ORDERS:
        h = held[cut == order]
        offs = np.arange(0, 8, 1 << order, dtype=np.int64)
        heads.append((h[:, None] + offs[None, :]).ravel())
        orders.append(np.full(heads[-1].size, order, dtype=np.int8))
        del h
    pfn = np.concatenate(heads)
    order_arr = np.concatenate(orders)
    return InitialState(alloc_pfn=pfn, alloc_order=order_arr,
                        alloc_flags=np.full(pfn.size, flags, dtype=np.uint8))


class Rewind:
    """Repeat state-changing operations on a machine from one state.

    Keeps a pristine copy of the machine's arrays; :meth:`fresh` copies it
    back into the working arrays in place (no new allocation, so no page
    faults) and wraps them in a new machine (``Machine.restore``).  Holds two
    machines' worth of arrays, unless ``uniform_from`` is given: the per-pfn
    arrays' entries from that pfn on (a multiple of 8), where they all hold
    one value (the hotplug room of a machine with a large ``maxmem_pfn``:
    holes), are kept as that value and filled back.
    """

    def __init__(self, m: Machine, uniform_from: int | None = None) -> None:
        self.config = m.config
        self.work = m.state_arrays()
        self.pristine: dict[str, np.ndarray] = {}
        self.tails: dict[str, tuple[int, Any]] = {}  # name -> (first index, the value)
        for k, v in self.work.items():
            cut = _tail_index(k, uniform_from)
            if cut is not None and cut < v.size and bool((v[cut:] == v[cut]).all()):
                self.pristine[k] = v[:cut].copy()
                self.tails[k] = (cut, v[cut].item())
            else:
                self.pristine[k] = v.copy()
        self.layout, self.effective = m.layout, m.effective
        self.backlog = list(m.backlog)
        self.scalars = m.scalars()

    def fresh(self) -> Machine:
        """A machine in the saved state (the previous one's arrays reused)."""
        for k, v in self.pristine.items():
            w = self.work[k]
            if k in self.tails:
                cut, val = self.tails[k]
                np.copyto(w[:cut], v)
                w[cut:] = val
            else:
                np.copyto(w, v)
        return Machine.restore(self.config, dict(self.work), self.layout, self.effective,
                               self.backlog, self.scalars)

    def nbytes(self) -> int:
        """Bytes of the pristine copy."""
        return int(sum(v.nbytes for v in self.pristine.values()))

    def timed_commit(self, layout: MemLayout, reports: list[Any]) -> Callable[[], float]:
        """An operation for :func:`~dnuma.bench.harness.measure`: commit a
        fresh copy of ``layout`` on a fresh machine; returns the commit's
        seconds and leaves its report in ``reports[0]``."""
        def op() -> float:
            m = self.fresh()
            ml = fresh_layout(layout)
            t0 = time.perf_counter()
            rep = m.commit(ml)
            secs = time.perf_counter() - t0
            reports[:] = [rep]
            return secs
        return op


def _tail_index(name: str, pfn: int | None) -> int | None:
    """The index of pfn ``pfn`` in per-pfn state array ``name`` (None: not
    a per-pfn array, or no pfn)."""
    if pfn is None:
        return None
    dim = _st.STATE_BY_NAME[name].dims[0]
    if dim == "pfn":
        return pfn
    if dim == "pfn8" and pfn % 8 == 0:
        return pfn >> 3
    return None


def fresh_layout(ml: MemLayout) -> MemLayout:
    """The same ranges without the cached lookup table, so a commit of it
    builds the table as a first commit would."""
    return MemLayout(ml.starts, ml.ends, ml.nids)

