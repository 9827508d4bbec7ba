"""A compiled workload driver: random alloc/free through the same
alloc_pages/free_pages kernels the public API calls (no shortcut)."""

from __future__ import annotations

import numpy as np

from ._jit import kernel
from .alloc import MPOL_LOCAL, alloc_pages, free_pages


@kernel
def _pick(cum):
    r = np.random.random()
    for i in range(cum.shape[0]):
        if r < cum[i]:
            return i
    return cum.shape[0] - 1


@kernel
def churn(S, seed, n_ops, target_pages, order_cum, orders, gfp_cum, gfps, ncpu,
          live_pfn, live_order, live_cpu, state, mask, il):
    """Run ``n_ops`` operations: allocate while fewer than ``target_pages`` are
    live, otherwise free a random live block (from a random CPU).

    ``state`` = [n_live, live_pages, allocs, frees, fails]; live_* arrays hold
    the live blocks (swap-remove); ``mask``/``il`` are scratch policy arrays.
    Deterministic for a given ``seed``.
    """
    if seed >= 0:
        np.random.seed(seed)
    cap = live_pfn.shape[0]
    for _ in range(n_ops):
        n_live = state[0]
        if state[1] < target_pages and n_live < cap:
            o = orders[_pick(order_cum)]
            g = gfps[_pick(gfp_cum)]
            cpu = np.random.randint(0, ncpu)
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
        if state[0] == 0:
            continue
        k = np.random.randint(0, state[0])
        last = state[0] - 1
        p = live_pfn[k]
        o = live_order[k]
        free_pages(S, p, o, np.random.randint(0, ncpu))
        live_pfn[k] = live_pfn[last]
        live_order[k] = live_order[last]
        live_cpu[k] = live_cpu[last]
        state[0] = last
        state[1] -= np.int64(1) << o
        state[3] += 1
