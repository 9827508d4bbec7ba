"""Allocation churn: many alloc/free operations driven from compiled code
through the machine's own allocator paths."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from .._kernels import workload as _kw
from ..mm.constants import __GFP_RECLAIMABLE, GFP_HIGHUSER_MOVABLE, GFP_KERNEL
from ..mm.errors import ConfigError
from ..mm.machine import Machine
from .tasks import cumulative_weights

DEFAULT_GFPS = (GFP_KERNEL, GFP_HIGHUSER_MOVABLE, __GFP_RECLAIMABLE)


@dataclass
class Churn:
    """A steady alloc/free churn of mixed orders and migratetypes.

    fill: the fraction of the machine's present pages kept allocated.
    orders/order_weights: buddy orders and their odds; gfps/gfp_weights likewise.
    """

    machine: Machine
    fill: float = 0.5
    orders: Sequence[int] = (0, 1, 2, 3)
    order_weights: Sequence[float] = (8, 4, 2, 1)
    gfps: Sequence[int] = DEFAULT_GFPS
    gfp_weights: Sequence[float] = (3, 6, 1)
    seed: int = 0
    capacity: int | None = None
    live: _kw.ChurnLive = field(init=False)

    def __post_init__(self) -> None:
        if not 0.0 <= self.fill <= 1.0:
            raise ConfigError(f"fill: {self.fill} not in [0, 1]")
        mo = self.machine.profile.max_page_order
        if any(not 0 <= o <= mo for o in self.orders):
            raise ConfigError(f"orders: each must be in [0, {mo}]")
        if len(self.orders) != len(self.order_weights) or len(self.gfps) != len(self.gfp_weights):
            raise ConfigError("orders/gfps and their weights must have the same length")
        self._mix = _kw.ChurnMix(
            order_cum=cumulative_weights(self.order_weights, "order_weights"),
            orders=np.asarray(self.orders, dtype=np.int64),
            gfp_cum=cumulative_weights(self.gfp_weights, "gfp_weights"),
            gfps=np.asarray(self.gfps, dtype=np.int64),
            mask=np.zeros(self.machine.config.max_numnodes, dtype=np.bool_),
            il=np.full(1, -1, dtype=np.int64))
        present = self.machine.total_present_pages
        self.target_pages = int(present * self.fill)
        cap = self.capacity or max(16, self.target_pages + 16)
        self.live = _kw.ChurnLive(pfn=np.full(cap, -1, dtype=np.int64),
                                  order=np.zeros(cap, dtype=np.int64),
                                  cpu=np.zeros(cap, dtype=np.int64),
                                  counts=np.zeros(_kw.NR_W, dtype=np.int64))
        self._calls = 0

    @property
    def counts(self) -> _kw.ChurnCounts:
        """Live blocks and pages, allocations, frees and failed allocations so far."""
        return _kw.ChurnCounts(*self.live.counts.tolist())

    @property
    def live_pages(self) -> int:
        return self.counts.live_pages

    @property
    def allocs(self) -> int:
        return self.counts.allocs

    def run(self, n_ops: int) -> None:
        """Run ``n_ops`` operations (deterministic for the churn's seed)."""
        # reseed every call from (seed, call number): runs repeat exactly even
        # when several churns share numba's generator
        seed = (self.seed * 1_000_003 + self._calls) % (2**31)
        self._calls += 1
        _kw.churn(self.machine.S, seed, n_ops, self.target_pages, self.machine.nr_cpus,
                  self._mix, self.live)
        self.machine.sync_zones()

    def warm_up(self, max_ops: int | None = None) -> None:
        """Allocate until the target fill is reached (or ``max_ops`` run out)."""
        budget = max_ops if max_ops is not None else 4 * self.target_pages + 1024
        while self.live_pages < self.target_pages and budget > 0:
            step = min(budget, max(1024, self.target_pages - self.live_pages))
            before = self.allocs
            self.run(step)
            budget -= step
            if self.allocs == before:
                break

    def free_all(self) -> None:
        """Free every live block (from the CPU that allocated it)."""
        lb = self.live
        for k in range(self.counts.nr_live):
            self.machine.free_pages(int(lb.pfn[k]), int(lb.order[k]), int(lb.cpu[k]))
        lb.counts[_kw.W_NR_LIVE] = 0
        lb.counts[_kw.W_LIVE_PAGES] = 0
