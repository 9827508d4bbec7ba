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

DEFAULT_GFPS = (GFP_KERNEL, GFP_HIGHUSER_MOVABLE, __GFP_RECLAIMABLE)


def _cum(weights: Sequence[float], what: str) -> np.ndarray:
    w = np.asarray(weights, dtype=np.float64)
    if w.size == 0 or np.any(w < 0) or w.sum() <= 0:
        raise ConfigError(f"{what}: weights must be non-negative and not all zero")
    return np.cumsum(w / w.sum())


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
    state: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        if not 0.0 <= self.fill <= 1.0:
            raise ConfigError(f"fill: {self.fill} not in [0, 1]")
        mo = self.machine.profile.max_page_order
        if any(not 0 <= o <= mo for o in self.orders):
            raise ConfigError(f"orders: each must be in [0, {mo}]")
        if len(self.orders) != len(self.order_weights) or len(self.gfps) != len(self.gfp_weights):
            raise ConfigError("orders/gfps and their weights must have the same length")
        self._order_cum = _cum(self.order_weights, "order_weights")
        self._gfp_cum = _cum(self.gfp_weights, "gfp_weights")
        self._orders = np.asarray(self.orders, dtype=np.int64)
        self._gfps = np.asarray(self.gfps, dtype=np.int64)
        present = self.machine.total_present_pages
        self.target_pages = int(present * self.fill)
        cap = self.capacity or max(16, self.target_pages + 16)
        self.live_pfn = np.full(cap, -1, dtype=np.int64)
        self.live_order = np.zeros(cap, dtype=np.int64)
        self.live_cpu = np.zeros(cap, dtype=np.int64)
        self.state = np.zeros(5, dtype=np.int64)
        self._mask = np.zeros(self.machine.config.max_numnodes, dtype=np.bool_)
        self._il = np.full(1, -1, dtype=np.int64)
        self._calls = 0

    @property
    def live_pages(self) -> int:
        return int(self.state[1])

    @property
    def allocs(self) -> int:
        return int(self.state[2])

    @property
    def frees(self) -> int:
        return int(self.state[3])

    @property
    def fails(self) -> int:
        return int(self.state[4])

    def run(self, n_ops: int) -> None:
        """Run ``n_ops`` operations (deterministic for the churn's seed)."""
        # reseed every call from (seed, call number): runs repeat exactly even
        # when several churns share numba's generator
        seed = (self.seed * 1_000_003 + self._calls) % (2**31)
        self._calls += 1
        _kw.churn(self.machine.S, seed, n_ops, self.target_pages, self._order_cum, self._orders,
                  self._gfp_cum, self._gfps, self.machine.nr_cpus, self.live_pfn,
                  self.live_order, self.live_cpu, self.state, self._mask, self._il)
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
        """Free every live block (from CPU 0)."""
        for k in range(int(self.state[0])):
            self.machine.free_pages(int(self.live_pfn[k]), int(self.live_order[k]),
                                    int(self.live_cpu[k]))
        self.state[0] = 0
        self.state[1] = 0
