"""Tasks in virtual time, compiled: Poisson allocation arrivals per task,
exponential lifetimes, frees in expiry order from a binary min-heap.  Every
allocation and free goes through the same alloc_pages/free_pages kernels the
public API calls.

Randomness is one splitmix64 stream (:mod:`.rng`) whose state the caller owns
(``rng``, a 1-element uint64 array).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ._jit import kernel
from .alloc import alloc_pages, free_pages
from .rng import below, exp_ns, next_u01, pick

INF_NS = np.int64(2**62)


class TaskCounts(NamedTuple):
    """One task's counters (a row of ``TaskTable.stats``)."""

    allocs: int
    frees: int
    fails: int
    live_pages: int
    local_allocs: int  # allocations that landed on the allocating CPU's node


T_ALLOCS, T_FREES, T_FAILS, T_LIVE_PAGES, T_LOCAL = range(len(TaskCounts._fields))
NR_T = len(TaskCounts._fields)


class TaskTable(NamedTuple):
    """Per task k (row k): what it allocates, when, where, and its counters.

    Times in ns: ``gap_ns``/``life_ns`` float64 means (life_ns <= 0: never
    freed), ``stop_ns``/``next_ns`` int64 (INF_NS: none; ``next_ns`` is the
    next arrival, updated).  Policy: ``modes``, ``nids`` int64, ``masks`` bool
    [k, MAX_NUMNODES], ``ils`` int64 [k, 1].  ``orders``/``gfps`` int64 [k, j]
    drawn by the cumulative odds ``order_cum``/``gfp_cum``; ``cpus`` int64
    [k, j], the first ``ncpus[k]`` valid.  ``stats`` int64 [k, NR_T]
    (:class:`TaskCounts`).
    """

    gap_ns: np.ndarray
    life_ns: np.ndarray
    stop_ns: np.ndarray
    next_ns: np.ndarray
    modes: np.ndarray
    nids: np.ndarray
    masks: np.ndarray
    ils: np.ndarray
    order_cum: np.ndarray
    orders: np.ndarray
    gfp_cum: np.ndarray
    gfps: np.ndarray
    cpus: np.ndarray
    ncpus: np.ndarray
    stats: np.ndarray


class LiveBlocks(NamedTuple):
    """Blocks waiting to be freed, int64 arrays: per slot the block's head
    ``pfn``, ``order`` and ``task``; ``free_slots`` a stack of unused slots;
    the expiry min-heap ``heap_t`` (ns) / ``heap_slot``, ordered by time,
    ties by slot; ``ctl`` = [heap size, free-slot stack size]."""

    pfn: np.ndarray
    order: np.ndarray
    task: np.ndarray
    free_slots: np.ndarray
    heap_t: np.ndarray
    heap_slot: np.ndarray
    ctl: np.ndarray


CTL_HEAP = 0
CTL_FREE = 1

RUN_DONE = 0
RUN_NEED_SLOTS = 1  # out of live-block slots: grow the arrays and call again


@kernel
def earlier(t1, s1, t2, s2):
    """Heap order: by expiry time, ties by slot."""
    return t1 < t2 or (t1 == t2 and s1 < s2)


@kernel
def min_heap_sift(lb, n, i, t, slot, up):
    """Move the hole at heap index ``i`` of a heap of ``n`` entries towards
    the root (``up``) or the leaves until the entry (t, slot) fits there, and
    put it there (min_heap_sift_up / min_heap_sift_down of
    include/linux/min_heap.h, one loop for both)."""
    ht = lb.heap_t
    hs = lb.heap_slot
    while True:
        if up:
            if i == 0:
                break
            j = (i - 1) >> 1
            if earlier(ht[j], hs[j], t, slot):
                break
        else:
            j = 2 * i + 1
            if j >= n:
                break
            if j + 1 < n and earlier(ht[j + 1], hs[j + 1], ht[j], hs[j]):
                j += 1
            if earlier(t, slot, ht[j], hs[j]):
                break
        ht[i] = ht[j]
        hs[i] = hs[j]
        i = j
    ht[i] = t
    hs[i] = slot


@kernel
def min_heap_push(lb, t, slot):
    """Add the entry (t, slot)."""
    i = lb.ctl[CTL_HEAP]
    lb.ctl[CTL_HEAP] = i + 1
    min_heap_sift(lb, i + 1, i, t, slot, True)


@kernel
def min_heap_pop(lb):
    """Remove the earliest entry; returns its slot (ties: lowest slot)."""
    top = lb.heap_slot[0]
    n = lb.ctl[CTL_HEAP] - 1
    lb.ctl[CTL_HEAP] = n
    min_heap_sift(lb, n, 0, lb.heap_t[n], lb.heap_slot[n], False)
    return top


@kernel
def run_tasks(S, t1, tt, lb, rng, now):
    """Advance every task of ``tt`` (a TaskTable) to virtual time ``t1`` (ns,
    exclusive), its live blocks in ``lb`` (LiveBlocks).

    Per task k: allocations arrive every Exp(gap_ns[k]) ns from next_ns[k]
    until stop_ns[k], on a random CPU of cpus[k, :ncpus[k]], under policy
    (modes[k], nids[k], masks[k], ils[k]); each lives Exp(life_ns[k]) ns
    (life_ns <= 0: never freed).  Expiries before or at an arrival run first.
    ``now[0]`` is left at the time of the last operation.  Returns RUN_DONE,
    or RUN_NEED_SLOTS with the state consistent (grow ``lb`` and call again).
    """
    ntask = tt.gap_ns.shape[0]
    ctl = lb.ctl
    stats = tt.stats
    while True:
        kbest = -1
        tbest = t1
        for k in range(ntask):
            if tt.next_ns[k] < tbest:
                tbest = tt.next_ns[k]
                kbest = k
        if ctl[CTL_HEAP] > 0 and lb.heap_t[0] < t1 and (kbest < 0 or lb.heap_t[0] <= tbest):
            now[0] = lb.heap_t[0]
            slot = min_heap_pop(lb)
            k = lb.task[slot]
            cpu = tt.cpus[k, below(next_u01(rng), tt.ncpus[k])]
            free_pages(S, lb.pfn[slot], lb.order[slot], cpu)
            stats[k, T_FREES] += 1
            stats[k, T_LIVE_PAGES] -= np.int64(1) << lb.order[slot]
            lb.free_slots[ctl[CTL_FREE]] = slot
            ctl[CTL_FREE] += 1
            continue
        if kbest < 0:
            return RUN_DONE
        k = kbest
        forever = tt.life_ns[k] <= 0
        if not forever and ctl[CTL_FREE] == 0:
            return RUN_NEED_SLOTS
        now[0] = tbest
        nxt = tbest + exp_ns(next_u01(rng), tt.gap_ns[k])
        tt.next_ns[k] = nxt if nxt < tt.stop_ns[k] else INF_NS
        o = tt.orders[k, pick(next_u01(rng), tt.order_cum[k])]
        g = tt.gfps[k, pick(next_u01(rng), tt.gfp_cum[k])]
        cpu = tt.cpus[k, below(next_u01(rng), tt.ncpus[k])]
        p = alloc_pages(S, o, cpu, g, tt.modes[k], tt.nids[k], tt.masks[k], tt.ils[k], k)
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
        slot = lb.free_slots[ctl[CTL_FREE]]
        lb.pfn[slot] = p
        lb.order[slot] = o
        lb.task[slot] = k
        min_heap_push(lb, tbest + exp_ns(next_u01(rng), tt.life_ns[k]), slot)
