"""Machines the benchmarks run on, and how a state-changing operation (a
commit) is repeated from the same state."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

from ..mm.machine import InitialState, Machine, MachineConfig
from ..mm.memlayout import MemLayout

#: how an allocated aligned order-3 chunk (8 pfns) is cut: one order-3
#: block, two order-2, four order-1 or eight order-0 blocks (equal odds)
CHUNK_ORDERS = (3, 2, 1, 0)


def mixed_initial_state(config: MachineConfig, fill: float = 0.6, run_chunks: int = 192,
                        seed: int = 0) -> InitialState:
    """An allocation state of about ``fill`` of the pages in mixed orders
    0-3, built vectorised (no allocator calls), clustered as an allocator
    leaves memory: alternating runs of allocated and free aligned order-3
    chunks (8 pfns), the run lengths geometric with means ``run_chunks``
    (allocated) and ``run_chunks * (1 - fill) / fill`` (free).  With the
    defaults a free run averages 1024 pfns, which the buddy allocator holds
    as ~12 blocks of ~85 pfns (the host snapshot's Normal zone: 46).  Each
    allocated chunk is one order-3, two order-2, four order-1 or eight
    order-0 blocks; blocks carry no extra page flags and owner 0.
    """
    if not 0.0 < fill < 1.0:
        raise ValueError(f"fill {fill} not in (0, 1)")
    rng = np.random.default_rng(seed)
    heads_by_range = []
    for s, e, _nid in config.ram:
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
                        alloc_flags=np.zeros(pfn.size, dtype=np.uint8))


class Rewind:
    """Repeat state-changing operations on a machine from one state.

    Keeps a pristine copy of the machine's arrays; :meth:`fresh` copies it
    back into the working arrays in place (no new allocation, so no page
    faults) and wraps them in a new machine (``Machine.restore``).  Holds two
    machines' worth of arrays.
    """

    def __init__(self, m: Machine) -> None:
        self.config = m.config
        self.work = m.state_arrays()
        self.pristine = {k: v.copy() for k, v in self.work.items()}
        self.layout, self.effective = m.layout, m.effective
        self.backlog = list(m.backlog)
        self.scalars = m.scalars()

    def fresh(self) -> Machine:
        """A machine in the saved state (the previous one's arrays reused)."""
        for k, v in self.pristine.items():
            np.copyto(self.work[k], v)
        return Machine.restore(self.config, dict(self.work), self.layout, self.effective,
                               self.backlog, self.scalars)

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


def fresh_layout(ml: MemLayout) -> MemLayout:
    """The same ranges without the cached lookup table, so a commit of it
    builds the table as a first commit would."""
    return MemLayout(ml.starts, ml.ends, ml.nids)

