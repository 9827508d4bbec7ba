"""A compiled workload driver: random alloc/free through the same
alloc_pages/free_pages kernels the public API calls (no shortcut).

Randomness comes from a splitmix64 sequence held in a local variable (a
numba global-generator call costs ~20 ns, a splitmix64 step ~2 ns)."""

from __future__ import annotations

import numpy as np

from ._jit import kernel, kernel_inline, prefetch
from .alloc import MPOL_LOCAL, alloc_pages, free_pages

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_TO_U01 = 1.0 / 9007199254740992.0  # 2**-53


@kernel
def _splitmix(s):
    """One splitmix64 step: (new state, a float in [0, 1))."""
    s = s + _GOLDEN
    z = s
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    z = z ^ (z >> np.uint64(31))
    return s, np.float64(z >> np.uint64(11)) * _TO_U01


@kernel
def _below(u, n):
    """A uniform integer in [0, n) from a float ``u`` in [0, 1)."""
    return min(np.int64(u * n), n - 1)


@kernel
def _pick(u, cum):
    for i in range(cum.shape[0]):
        if u < cum[i]:
            return i
    return cum.shape[0] - 1


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
def churn(S, seed, n_ops, target_pages, order_cum, orders, gfp_cum, gfps, ncpu,
          live_pfn, live_order, live_cpu, state, mask, il):
    """Run ``n_ops`` operations: allocate while fewer than ``target_pages`` are
    live, otherwise free a random live block (from a random CPU).

    ``state`` = [n_live, live_pages, allocs, frees, fails]; live_* arrays hold
    the live blocks (swap-remove); ``mask``/``il`` are scratch policy arrays.
    Deterministic for a given ``seed`` >= 0 (a negative seed draws one from
    numba's global generator).

    The slot a free takes is drawn two frees ahead (``uf1``, ``uf2``: uniform
    in [0, 1), scaled by the live count when the free happens), so the live
    arrays and the block's page fields can be prefetched while the operations
    in between run: random frees over a large machine are bound by cache misses.
    """
    if seed < 0:
        seed = np.random.randint(0, 2**62)
    rs = np.uint64(seed) * _GOLDEN
    rs, uf1 = _splitmix(rs)
    rs, uf2 = _splitmix(rs)
    cap = live_pfn.shape[0]
    for _ in range(n_ops):
        n_live = state[0]
        if state[1] < target_pages and n_live < cap:
            rs, u = _splitmix(rs)
            o = orders[_pick(u, order_cum)]
            rs, u = _splitmix(rs)
            g = gfps[_pick(u, gfp_cum)]
            rs, u = _splitmix(rs)
            cpu = _below(u, ncpu)
            p = alloc_pages(S, o, cpu, g, MPOL_LOCAL, 0, mask, il, cpu)
            if p < 0:
                state[4] += 1
                # fall through to a free so a full machine keeps churning
            else:
                live_pfn[n_live] = p
                live_order[n_live] = o
                live_cpu[n_live] = cpu
                state[0] = n_live + 1
                state[1] += np.int64(1) << o
                state[2] += 1
                continue
        if n_live == 0:
            continue
        k = _below(uf1, n_live)
        rs, u = _splitmix(rs)
        cpu = _below(u, ncpu)
        last = n_live - 1
        p = live_pfn[k]
        o = live_order[k]
        # look ahead: the next free's block (its slot was prefetched at the
        # previous free) and the slot of the free after it
        uf1 = uf2
        rs, uf2 = _splitmix(rs)
        if last > 0:
            _prefetch_block(S, live_pfn[_below(uf1, last)])
            k2 = _below(uf2, last)
            prefetch(live_pfn, k2)
            prefetch(live_order, k2)
            prefetch(live_cpu, k2)
        free_pages(S, p, o, cpu)
        live_pfn[k] = live_pfn[last]
        live_order[k] = live_order[last]
        live_cpu[k] = live_cpu[last]
        state[0] = last
        state[1] -= np.int64(1) << o
        state[3] += 1
