"""Tasks of a scenario: each pinned to a set of CPUs, under a memory policy,
allocating at a rate (Poisson arrivals in virtual time) with an order and
gfp mix, each block living an exponential lifetime.  Driven by one compiled
kernel (``_kernels.tasks.run_tasks``) through the allocator's own paths."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from .._kernels import rng as _rng
from .._kernels import tasks as _kt
from ..mm.constants import MPOL_PREFERRED, PG_head
from ..mm.errors import ConfigError
from ..mm.machine import Machine
from ..mm.page_alloc import MemPolicy
from .events import NS


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


def cumulative_weights(weights: Sequence[float], what: str) -> np.ndarray:
    """The cumulative odds (float64, the last 1.0) of ``weights``, for
    ``_kernels.rng.pick``; ConfigError naming ``what`` unless they are
    non-negative and not all zero."""
    w = np.asarray(weights, dtype=np.float64)
    if w.size == 0 or np.any(w < 0) or w.sum() <= 0:
        raise ConfigError(f"{what}: weights must be non-negative and not all zero")
    return np.cumsum(w / w.sum())


@dataclass
class TaskSet:
    """The run-time state of a scenario's tasks on one machine."""

    machine: Machine
    specs: Sequence[TaskSpec]
    seed: int = 0
    table: _kt.TaskTable = field(init=False)
    live: _kt.LiveBlocks = field(init=False)

    def __post_init__(self) -> None:
        m = self.machine
        m.migration_listeners.append(self.follow_migration)
        self.specs = [s if s.cpus else dataclasses.replace(s, cpus=tuple(range(m.nr_cpus)))
                      for s in self.specs]
        n = len(self.specs)
        kmax = max((len(s.orders) for s in self.specs), default=1)
        gmax = max((len(s.gfps) for s in self.specs), default=1)
        cmax = max((len(s.cpus) for s in self.specs), default=1)
        self.table = _kt.TaskTable(
            gap_ns=np.zeros(n), life_ns=np.zeros(n),
            stop_ns=np.full(n, _kt.INF_NS, dtype=np.int64),
            next_ns=np.full(n, _kt.INF_NS, dtype=np.int64),
            modes=np.zeros(n, dtype=np.int64), nids=np.zeros(n, dtype=np.int64),
            masks=np.zeros((n, m.config.max_numnodes), dtype=np.bool_),
            ils=np.zeros((n, 1), dtype=np.int64),
            order_cum=np.ones((n, kmax)), orders=np.zeros((n, kmax), dtype=np.int64),
            gfp_cum=np.ones((n, gmax)), gfps=np.zeros((n, gmax), dtype=np.int64),
            cpus=np.zeros((n, cmax), dtype=np.int64), ncpus=np.zeros(n, dtype=np.int64),
            stats=np.zeros((n, _kt.NR_T), dtype=np.int64))
        for k, s in enumerate(self.specs):
            self._load(k, s)
        # splitmix64 state: one stream for the whole task set
        self.rng = np.array([(self.seed * int(_rng.GOLDEN) + 1) % 2**64], dtype=np.uint64)
        self.now = np.zeros(1, dtype=np.int64)
        none = np.zeros(0, dtype=np.int64)
        self.live = _kt.LiveBlocks(none, none, none, none, none, none,
                                   ctl=np.zeros(2, dtype=np.int64))  # [CTL_HEAP, CTL_FREE]
        self._grow(1024)
        for k, s in enumerate(self.specs):
            if s.adopt:
                self._adopt(k, s)
        for k, s in enumerate(self.specs):
            if s.rate > 0:
                t0 = int(s.start * NS)
                self.table.next_ns[k] = t0 + _rng.exp_ns(_rng.next_u01(self.rng),
                                                         self.table.gap_ns[k])

    def _load(self, k: int, s: TaskSpec) -> None:
        m, tt = self.machine, self.table
        if any(not 0 <= c < m.nr_cpus for c in s.cpus):
            raise ConfigError(f"task {s.name!r}: cpus must be in [0, {m.nr_cpus})")
        mo = m.profile.max_page_order
        if any(not 0 <= o <= mo for o, _ in s.orders):
            raise ConfigError(f"task {s.name!r}: orders must be in [0, {mo}]")
        pol = MemPolicy(s.policy, s.nodes)
        mask, il = pol.arrays(m.config.max_numnodes)
        tt.masks[k] = mask
        tt.ils[k] = il
        tt.modes[k] = pol.mode
        if pol.mode == MPOL_PREFERRED:
            tt.nids[k] = pol.nodes[0]
        tt.gap_ns[k] = NS / s.rate if s.rate > 0 else 0.0
        tt.life_ns[k] = s.lifetime * NS
        if s.stop is not None:
            tt.stop_ns[k] = int(s.stop * NS)
        for pairs, values, cum, what in ((s.orders, tt.orders, tt.order_cum, "orders"),
                                         (s.gfps, tt.gfps, tt.gfp_cum, "gfp")):
            values[k, :len(pairs)] = [v for v, _w in pairs]
            cum[k, :len(pairs)] = cumulative_weights([w for _v, w in pairs],
                                                     f"task {s.name!r}: {what}")
        tt.cpus[k, :len(s.cpus)] = s.cpus
        tt.ncpus[k] = len(s.cpus)

    def _adopt(self, k: int, s: TaskSpec) -> None:
        """Task ``k`` takes over every block allocated before the run: each
        gets an exponential lifetime (never freed when lifetime is 0)."""
        S = self.machine.S
        heads = np.flatnonzero(S.page_flags & PG_head)
        orders = S.page_order[heads].astype(np.int64)
        S.page_owner[heads] = k
        self.table.stats[k, _kt.T_LIVE_PAGES] += int((np.int64(1) << orders).sum())
        if s.lifetime <= 0 or heads.size == 0:
            return
        self._grow(max(1024, 1 << int(heads.size).bit_length()))
        lb = self.live
        rng = np.random.default_rng(self.seed)
        t = (int(s.start * NS) + rng.exponential(self.table.life_ns[k], heads.size)
             ).astype(np.int64)
        slots = np.arange(heads.size, dtype=np.int64)
        order = np.lexsort((slots, t))  # a sorted array is a binary heap
        lb.pfn[slots] = heads
        lb.order[slots] = orders
        lb.task[slots] = k
        lb.heap_t[:heads.size] = t[order]
        lb.heap_slot[:heads.size] = slots[order]
        lb.ctl[_kt.CTL_HEAP] = heads.size
        free = np.arange(lb.pfn.size - 1, heads.size - 1, -1, dtype=np.int64)
        lb.free_slots[:free.size] = free
        lb.ctl[_kt.CTL_FREE] = free.size

    def _grow(self, cap: int) -> None:
        """Resize the live-block slots to ``cap``, keeping the heap and the
        free-slot stack; new slots go on the stack, lowest index on top."""
        def grow(a: np.ndarray) -> np.ndarray:
            out = np.zeros(cap, dtype=np.int64)
            out[:a.size] = a
            return out

        old = self.live
        lb = _kt.LiveBlocks(grow(old.pfn), grow(old.order), grow(old.task),
                            grow(old.free_slots), grow(old.heap_t), grow(old.heap_slot), old.ctl)
        n_old = old.pfn.size
        nf = int(lb.ctl[_kt.CTL_FREE])
        new = np.arange(cap - 1, n_old - 1, -1, dtype=np.int64)
        lb.free_slots[nf:nf + new.size] = new
        lb.ctl[_kt.CTL_FREE] = nf + new.size
        self.live = lb

    def follow_migration(self, old: np.ndarray, new: np.ndarray) -> None:
        """Blocks that migrated (old head pfns, ascending -> new heads;
        Machine.migration_listeners): the live blocks at the old heads are
        freed at the new ones."""
        lb = self.live
        slots = lb.heap_slot[:int(lb.ctl[_kt.CTL_HEAP])]
        if not slots.size or not old.size:
            return
        pfn = lb.pfn[slots]
        pos = np.minimum(np.searchsorted(old, pfn), old.size - 1)
        hit = old[pos] == pfn
        lb.pfn[slots[hit]] = new[pos[hit]]

    def run_until(self, t_ns: int) -> None:
        """Run every task up to virtual time ``t_ns`` (exclusive)."""
        while _kt.run_tasks(self.machine.S, np.int64(t_ns), self.table, self.live, self.rng,
                            self.now) == _kt.RUN_NEED_SLOTS:
            self._grow(2 * self.live.pfn.size)
        self.machine.sync_zones()

    @property
    def live_blocks(self) -> int:
        """Blocks waiting to be freed (excludes never-freed ones)."""
        return int(self.live.ctl[_kt.CTL_HEAP])

    def task_stats(self) -> list[dict[str, int | str]]:
        """Per task: allocs, frees, fails, live pages, local allocations."""
        return [{"task": s.name, **_kt.TaskCounts(*self.table.stats[k].tolist())._asdict()}
                for k, s in enumerate(self.specs)]
