"""Tasks of a scenario: each pinned to a set of CPUs, under a memory policy,
allocating at a rate (Poisson arrivals in virtual time) with an order and
gfp mix, each block living an exponential lifetime.  Driven by one compiled
kernel (``_kernels.tasks.run_tasks``) through the allocator's own paths."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from .._kernels import tasks as _kt
from ..mm.constants import MPOL_PREFERRED, PG_head
from ..mm.errors import ConfigError
from ..mm.machine import Machine
from ..mm.page_alloc import MemPolicy

NS = 1_000_000_000


@dataclass(frozen=True)
class TaskSpec:
    """One task.  rate: allocations a second; lifetime: mean seconds a block
    lives (0: never freed); start/stop: seconds of virtual time; cpus empty:
    every CPU; adopt: the task owns the blocks allocated before the run (a
    machine booted from a host) and frees them with its lifetime."""

    name: str
    cpus: tuple[int, ...]
    rate: float
    lifetime: float = 1.0
    orders: tuple[tuple[int, float], ...] = ((0, 1.0),)
    gfps: tuple[tuple[int, float], ...] = ((0, 1.0),)
    policy: str = "local"
    nodes: tuple[int, ...] = ()
    start: float = 0.0
    stop: float | None = None
    adopt: bool = False


def _cum(pairs: Sequence[tuple[int, float]]) -> tuple[np.ndarray, np.ndarray]:
    w = np.array([p[1] for p in pairs], dtype=np.float64)
    return np.array([p[0] for p in pairs], dtype=np.int64), np.cumsum(w / w.sum())


@dataclass
class TaskSet:
    """The run-time state of a scenario's tasks on one machine."""

    machine: Machine
    specs: Sequence[TaskSpec]
    seed: int = 0
    stats: np.ndarray = field(init=False)
    l_pfn: np.ndarray = field(init=False)  # live-block slots: head pfn, order, task
    l_order: np.ndarray = field(init=False)
    l_task: np.ndarray = field(init=False)
    h_t: np.ndarray = field(init=False)  # expiry heap: time (ns), slot
    h_slot: np.ndarray = field(init=False)
    fstack: np.ndarray = field(init=False)  # free slots

    def __post_init__(self) -> None:
        m = self.machine
        self.specs = [s if s.cpus else dataclasses.replace(s, cpus=tuple(range(m.nr_cpus)))
                      for s in self.specs]
        n = len(self.specs)
        kmax = max((len(s.orders) for s in self.specs), default=1)
        gmax = max((len(s.gfps) for s in self.specs), default=1)
        cmax = max((len(s.cpus) for s in self.specs), default=1)
        self.gap_ns = np.zeros(n)
        self.life_ns = np.zeros(n)
        self.stop_ns = np.full(n, _kt.INF_NS, dtype=np.int64)
        self.next_ns = np.full(n, _kt.INF_NS, dtype=np.int64)
        self.modes = np.zeros(n, dtype=np.int64)
        self.nids = np.zeros(n, dtype=np.int64)
        self.masks = np.zeros((n, m.config.max_numnodes), dtype=np.bool_)
        self.ils = np.zeros((n, 1), dtype=np.int64)
        self.order_cum = np.ones((n, kmax))
        self.orders = np.zeros((n, kmax), dtype=np.int64)
        self.gfp_cum = np.ones((n, gmax))
        self.gfps = np.zeros((n, gmax), dtype=np.int64)
        self.cpus = np.zeros((n, cmax), dtype=np.int64)
        self.ncpus = np.zeros(n, dtype=np.int64)
        self.stats = np.zeros((n, _kt.NR_T), dtype=np.int64)
        for k, s in enumerate(self.specs):
            self._load(k, s)
        # splitmix64 state: one stream for the whole task set
        self.rng = np.array([(self.seed * 0x9E3779B97F4A7C15 + 1) % 2**64], dtype=np.uint64)
        self.ctl = np.zeros(2, dtype=np.int64)
        self.now = np.zeros(1, dtype=np.int64)
        self._alloc_slots(1024)
        for k, s in enumerate(self.specs):
            if s.adopt:
                self._adopt(k, s)
        for k, s in enumerate(self.specs):
            if s.rate > 0:
                t0 = int(s.start * NS)
                self.next_ns[k] = t0 + _kt.rand_exp_ns(self.rng, self.gap_ns[k])

    def _load(self, k: int, s: TaskSpec) -> None:
        m = self.machine
        if any(not 0 <= c < m.nr_cpus for c in s.cpus):
            raise ConfigError(f"task {s.name!r}: cpus must be in [0, {m.nr_cpus})")
        mo = m.profile.max_page_order
        if any(not 0 <= o <= mo for o, _ in s.orders):
            raise ConfigError(f"task {s.name!r}: orders must be in [0, {mo}]")
        pol = MemPolicy(s.policy, s.nodes)
        mask, il = pol.arrays(m.config.max_numnodes)
        self.masks[k] = mask
        self.ils[k] = il
        self.modes[k] = pol.mode
        if pol.mode == MPOL_PREFERRED:
            self.nids[k] = pol.nodes[0]
        self.gap_ns[k] = NS / s.rate if s.rate > 0 else 0.0
        self.life_ns[k] = s.lifetime * NS
        if s.stop is not None:
            self.stop_ns[k] = int(s.stop * NS)
        o, oc = _cum(s.orders)
        self.orders[k, :o.size] = o
        self.order_cum[k, :oc.size] = oc
        g, gc = _cum(s.gfps)
        self.gfps[k, :g.size] = g
        self.gfp_cum[k, :gc.size] = gc
        self.cpus[k, :len(s.cpus)] = s.cpus
        self.ncpus[k] = len(s.cpus)

    def _adopt(self, k: int, s: TaskSpec) -> None:
        """Task ``k`` takes over every block allocated before the run: each
        gets an exponential lifetime (never freed when lifetime is 0)."""
        S = self.machine.S
        heads = np.flatnonzero(S.page_flags & PG_head)
        orders = S.page_order[heads].astype(np.int64)
        S.page_owner[heads] = k
        self.stats[k, _kt.T_LIVE_PAGES] += int((np.int64(1) << orders).sum())
        if s.lifetime <= 0 or heads.size == 0:
            return
        self._alloc_slots(max(1024, 1 << int(heads.size).bit_length()))
        rng = np.random.default_rng(self.seed)
        t = (int(s.start * NS) + rng.exponential(self.life_ns[k], heads.size)).astype(np.int64)
        slots = np.arange(heads.size, dtype=np.int64)
        order = np.lexsort((slots, t))  # a sorted array is a binary heap
        self.l_pfn[slots] = heads
        self.l_order[slots] = orders
        self.l_task[slots] = k
        self.h_t[:heads.size] = t[order]
        self.h_slot[:heads.size] = slots[order]
        self.ctl[_kt.CTL_HEAP] = heads.size
        free = np.arange(self.l_pfn.size - 1, heads.size - 1, -1, dtype=np.int64)
        self.fstack[:free.size] = free
        self.ctl[_kt.CTL_FREE] = free.size

    def _alloc_slots(self, cap: int) -> None:
        """(Re)size the live-block slots to ``cap``, keeping the heap and the
        free-slot stack; new slots go on the stack, lowest index on top."""
        def grow(a: np.ndarray | None) -> np.ndarray:
            out = np.zeros(cap, dtype=np.int64)
            if a is not None:
                out[:a.size] = a
            return out

        first = not hasattr(self, "l_pfn")
        n_old = 0 if first else self.l_pfn.size
        self.l_pfn = grow(None if first else self.l_pfn)
        self.l_order = grow(None if first else self.l_order)
        self.l_task = grow(None if first else self.l_task)
        self.h_t = grow(None if first else self.h_t)
        self.h_slot = grow(None if first else self.h_slot)
        self.fstack = grow(None if first else self.fstack)
        nf = int(self.ctl[_kt.CTL_FREE])
        new = np.arange(cap - 1, n_old - 1, -1, dtype=np.int64)
        self.fstack[nf:nf + new.size] = new
        self.ctl[_kt.CTL_FREE] = nf + new.size

    def run_until(self, t_ns: int) -> None:
        """Run every task up to virtual time ``t_ns`` (exclusive)."""
        while _kt.run_tasks(
                self.machine.S, np.int64(t_ns), self.rng, self.gap_ns, self.life_ns,
                self.stop_ns, self.next_ns, self.modes, self.nids, self.masks, self.ils,
                self.order_cum, self.orders, self.gfp_cum, self.gfps, self.cpus, self.ncpus,
                self.stats, self.l_pfn, self.l_order, self.l_task, self.fstack, self.h_t,
                self.h_slot, self.ctl, self.now) == _kt.RUN_NEED_SLOTS:
            self._alloc_slots(2 * self.l_pfn.size)
        self.machine.sync_zones()

    @property
    def live_blocks(self) -> int:
        """Blocks waiting to be freed (excludes never-freed ones)."""
        return int(self.ctl[_kt.CTL_HEAP])

    def task_stats(self) -> list[dict[str, int | str]]:
        """Per task: allocs, frees, fails, live pages, local allocations."""
        keys = ("allocs", "frees", "fails", "live_pages", "local_allocs")
        return [{"task": s.name, **dict(zip(keys, map(int, self.stats[k]), strict=True))}
                for k, s in enumerate(self.specs)]
