"""Tasks in virtual time, compiled: Poisson allocation arrivals per task,
exponential lifetimes, frees in expiry order from a binary heap.  Every
allocation and free goes through the same alloc_pages/free_pages kernels the
public API calls.

Randomness comes from a splitmix64 state the caller owns (``rng``), not from
numba's global generator, so a run repeats exactly whatever else ran before.
"""

from __future__ import annotations

import numpy as np

from ._jit import kernel
from .alloc import alloc_pages, free_pages

INF_NS = np.int64(2**62)

# task stats columns
T_ALLOCS = 0
T_FREES = 1
T_FAILS = 2
T_LIVE_PAGES = 3
T_LOCAL = 4  # allocations that landed on the allocating CPU's node
NR_T = 5

# ctl: [heap size, free-slot stack size]
CTL_HEAP = 0
CTL_FREE = 1

RUN_DONE = 0
RUN_NEED_SLOTS = 1  # out of live-block slots: grow the arrays and call again


@kernel
def rand_u01(rng):
    """splitmix64 step -> a float in [0, 1)."""
    rng[0] += np.uint64(0x9E3779B97F4A7C15)
    z = rng[0]
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    z = z ^ (z >> np.uint64(31))
    return np.float64(z >> np.uint64(11)) * (1.0 / 9007199254740992.0)


@kernel
def rand_exp_ns(rng, mean_ns):
    """An exponential variate of mean ``mean_ns`` (>= 1 ns)."""
    v = -np.log(1.0 - rand_u01(rng)) * mean_ns
    return max(np.int64(1), np.int64(v))


@kernel
def pick(rng, cum):
    r = rand_u01(rng)
    for i in range(cum.shape[0]):
        if r < cum[i]:
            return i
    return cum.shape[0] - 1


@kernel
def earlier(t1, s1, t2, s2):
    """Heap order: by expiry time, ties by slot."""
    return t1 < t2 or (t1 == t2 and s1 < s2)


@kernel
def heap_push(h_t, h_slot, ctl, t, slot):
    i = ctl[CTL_HEAP]
    ctl[CTL_HEAP] = i + 1
    while i > 0:
        parent = (i - 1) >> 1
        if earlier(h_t[parent], h_slot[parent], t, slot):
            break
        h_t[i] = h_t[parent]
        h_slot[i] = h_slot[parent]
        i = parent
    h_t[i] = t
    h_slot[i] = slot


@kernel
def heap_pop(h_t, h_slot, ctl):
    """Remove the earliest entry; returns its slot (ties: lowest slot)."""
    top = h_slot[0]
    n = ctl[CTL_HEAP] - 1
    ctl[CTL_HEAP] = n
    t = h_t[n]
    slot = h_slot[n]
    i = 0
    while True:
        c = 2 * i + 1
        if c >= n:
            break
        if c + 1 < n and earlier(h_t[c + 1], h_slot[c + 1], h_t[c], h_slot[c]):
            c += 1
        if earlier(t, slot, h_t[c], h_slot[c]):
            break
        h_t[i] = h_t[c]
        h_slot[i] = h_slot[c]
        i = c
    h_t[i] = t
    h_slot[i] = slot
    return top


@kernel
def run_tasks(S, t1, rng, gap_ns, life_ns, stop_ns, next_ns, modes, nids, masks, ils,
              order_cum, orders, gfp_cum, gfps, cpus, ncpus, stats,
              l_pfn, l_order, l_task, fstack, h_t, h_slot, ctl, now):
    """Advance every task to virtual time ``t1`` (ns, exclusive).

    Per task k: allocations arrive every Exp(gap_ns[k]) ns from next_ns[k]
    until stop_ns[k], on a random CPU of cpus[k, :ncpus[k]], under policy
    (modes[k], nids[k], masks[k], ils[k]); each lives Exp(life_ns[k]) ns
    (life_ns <= 0: never freed).  Expiries before or at an arrival run first.
    ``now[0]`` is left at the time of the last operation.  Returns RUN_DONE,
    or RUN_NEED_SLOTS with the state consistent (grow l_*/fstack/h_* and call
    again).
    """
    ntask = gap_ns.shape[0]
    while True:
        kbest = -1
        tbest = t1
        for k in range(ntask):
            if next_ns[k] < tbest:
                tbest = next_ns[k]
                kbest = k
        if ctl[CTL_HEAP] > 0 and h_t[0] < t1 and (kbest < 0 or h_t[0] <= tbest):
            now[0] = h_t[0]
            slot = heap_pop(h_t, h_slot, ctl)
            k = l_task[slot]
            cpu = cpus[k, pick_index(rng, ncpus[k])]
            free_pages(S, l_pfn[slot], l_order[slot], cpu)
            stats[k, T_FREES] += 1
            stats[k, T_LIVE_PAGES] -= np.int64(1) << l_order[slot]
            fstack[ctl[CTL_FREE]] = slot
            ctl[CTL_FREE] += 1
            continue
        if kbest < 0:
            return RUN_DONE
        k = kbest
        forever = life_ns[k] <= 0
        if not forever and ctl[CTL_FREE] == 0:
            return RUN_NEED_SLOTS
        now[0] = tbest
        nxt = tbest + rand_exp_ns(rng, gap_ns[k])
        next_ns[k] = nxt if nxt < stop_ns[k] else INF_NS
        o = orders[k, pick(rng, order_cum[k])]
        g = gfps[k, pick(rng, gfp_cum[k])]
        cpu = cpus[k, pick_index(rng, ncpus[k])]
        p = alloc_pages(S, o, cpu, g, modes[k], nids[k], masks[k], ils[k], k)
        if p < 0:
            stats[k, T_FAILS] += 1
            continue
        stats[k, T_ALLOCS] += 1
        stats[k, T_LIVE_PAGES] += np.int64(1) << o
        if S.page_nid[p] == S.cpu_to_node[cpu]:
            stats[k, T_LOCAL] += 1
        if forever:
            continue
        ctl[CTL_FREE] -= 1
        slot = fstack[ctl[CTL_FREE]]
        l_pfn[slot] = p
        l_order[slot] = o
        l_task[slot] = k
        heap_push(h_t, h_slot, ctl, tbest + rand_exp_ns(rng, life_ns[k]), slot)


@kernel
def pick_index(rng, n):
    """A uniform index in [0, n)."""
    return min(n - 1, np.int64(rand_u01(rng) * n))
