"""A compiled workload driver: random alloc/free through the same
alloc_pages/free_pages kernels the public API calls (no shortcut).

Randomness is the splitmix64 sequence of :mod:`.rng`, its state held in a
local variable."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ._jit import kernel, kernel_inline, prefetch
from .alloc import MPOL_LOCAL, alloc_pages, free_pages
from .rng import GOLDEN, below, pick, splitmix64


class ChurnCounts(NamedTuple):
    """The churn's counters (``ChurnLive.counts``)."""

    nr_live: int  # live blocks
    live_pages: int
    allocs: int
    frees: int
    fails: int


W_NR_LIVE, W_LIVE_PAGES, W_ALLOCS, W_FREES, W_FAILS = range(len(ChurnCounts._fields))
NR_W = len(ChurnCounts._fields)


class ChurnMix(NamedTuple):
    """What the churn allocates: ``orders``/``gfps`` (int64) drawn by the
    cumulative odds ``order_cum``/``gfp_cum`` (float64), under MPOL_LOCAL
    (``mask`` bool[MAX_NUMNODES] and ``il`` int64[1]: scratch policy arrays)."""

    order_cum: np.ndarray
    orders: np.ndarray
    gfp_cum: np.ndarray
    gfps: np.ndarray
    mask: np.ndarray
    il: np.ndarray


class ChurnLive(NamedTuple):
    """The live blocks, int64 arrays of one capacity: head ``pfn``, ``order``
    and the ``cpu`` that allocated it, the first ``counts[W_NR_LIVE]`` valid
    (swap-remove); ``counts`` int64[NR_W] (:class:`ChurnCounts`)."""

    pfn: np.ndarray
    order: np.ndarray
    cpu: np.ndarray
    counts: np.ndarray


@kernel_inline
def _prefetch_block(S, p):
    """Prefetch the per-pfn fields free_pages reads and writes for ``p``."""
    prefetch(S.page_flags, p)
    prefetch(S.page_order, p)
    prefetch(S.page_owner, p)
    prefetch(S.page_mark, p >> 3)
    prefetch(S.page_nid, p)
    prefetch(S.page_zone, p)
    prefetch(S.lru_next, p)
    prefetch(S.lru_prev, p)


@kernel
def churn(S, seed, n_ops, target_pages, ncpu, mix, live):
    """Run ``n_ops`` operations: allocate (a ChurnMix ``mix`` draw, from a
    random CPU of ``ncpu``) while fewer than ``target_pages`` are live,
    otherwise free a random live block of ``live`` (ChurnLive) from a random
    CPU.  Deterministic for a given ``seed`` >= 0 (a negative seed draws one
    from numba's global generator).

    The slot a free takes is drawn two frees ahead (``uf1``, ``uf2``: uniform
    in [0, 1), scaled by the live count when the free happens), so the live
    arrays and the block's page fields can be prefetched while the operations
    in between run: random frees over a large machine are bound by cache misses.
    """
    if seed < 0:
        seed = np.random.randint(0, 2**62)
    state = live.counts
    rs = np.uint64(seed) * GOLDEN
    rs, uf1 = splitmix64(rs)
    rs, uf2 = splitmix64(rs)
    cap = live.pfn.shape[0]
    for _ in range(n_ops):
        n_live = state[W_NR_LIVE]
        if state[W_LIVE_PAGES] < target_pages and n_live < cap:
            rs, u = splitmix64(rs)
            o = mix.orders[pick(u, mix.order_cum)]
            rs, u = splitmix64(rs)
            g = mix.gfps[pick(u, mix.gfp_cum)]
            rs, u = splitmix64(rs)
            cpu = below(u, ncpu)
            p = alloc_pages(S, o, cpu, g, MPOL_LOCAL, 0, mix.mask, mix.il, cpu)
            if p < 0:
                state[W_FAILS] += 1
                # fall through to a free so a full machine keeps churning
            else:
                live.pfn[n_live] = p
                live.order[n_live] = o
                live.cpu[n_live] = cpu
                state[W_NR_LIVE] = n_live + 1
                state[W_LIVE_PAGES] += np.int64(1) << o
                state[W_ALLOCS] += 1
                continue
        if n_live == 0:
            continue
        k = below(uf1, n_live)
        rs, u = splitmix64(rs)
        cpu = below(u, ncpu)
        last = n_live - 1
        p = live.pfn[k]
        o = live.order[k]
        # look ahead: the next free's block (its slot was prefetched at the
        # previous free) and the slot of the free after it
        uf1 = uf2
        rs, uf2 = splitmix64(rs)
        if last > 0:
            _prefetch_block(S, live.pfn[below(uf1, last)])
            k2 = below(uf2, last)
            prefetch(live.pfn, k2)
            prefetch(live.order, k2)
            prefetch(live.cpu, k2)
        free_pages(S, p, o, cpu)
        live.pfn[k] = live.pfn[last]
        live.order[k] = live.order[last]
        live.cpu[k] = live.cpu[last]
        state[W_NR_LIVE] = last
        state[W_LIVE_PAGES] -= np.int64(1) << o
        state[W_FREES] += 1
