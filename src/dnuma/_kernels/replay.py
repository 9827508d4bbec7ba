"""Replay of a real kmem trace onto the model, compiled: the model allocates
exactly the pfns the trace allocated (taking them off the buddy or pcp lists
wherever the model holds them) and frees them through free_pages, so a
marked page is redirected to its new node as it would be in the kernel."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ._jit import kernel
from .alloc import (
    ERR_BAD_FREE,
    chunk_order,
    free_pages,
    gfp_zone,
    preferred_zone,
    rehome_block,
    zone_statistics,
)
from .buddy import (
    add_to_free_list,
    block_head,
    clear_mark,
    del_from_free_list,
    page_gz,
    pcp_del,
    set_mark,
)
from .consts import (
    MIGRATE_MOVABLE,
    NR_PCP_LISTS,
    PG_buddy,
    PG_head,
    PG_hole,
    PG_lru,
    PG_reserved,
)
from .ftrace import EV_ALLOC, EV_FREE, EV_FREE_BATCHED, EV_PCPU_DRAIN
from .state import P_MAX_ORDER, P_MAX_PFN, P_PB_ORDER
from .transplant import needs_move


class ReplayCounts(NamedTuple):
    """What a replay did (events replayed or counted), then the anomalies it
    met (events it could not replay); an int64 array of these is the replay
    kernel's ``counts``."""

    allocs: int
    frees: int
    free_batched: int  # mm_page_free_batched: the page's mm_page_free came first
    pcpu_drains: int  # mm_page_pcpu_drain in the trace (the model drains on its own)
    alloc_fails: int
    local_allocs: int  # replayed allocations on the allocating CPU's node
    remote_allocs: int
    free_unseen: int  # free of a page allocated before the trace began
    double_free: int  # free of a page the trace already freed
    free_mismatch: int  # free whose order or head does not match the allocation
    alloc_busy: int  # allocation of a page the model holds allocated (a free missed)
    outside_model: int  # pfn beyond the model, in a hole or reserved; order > MAX_PAGE_ORDER
    unaligned: int  # block head not aligned to its order

    def replayed(self) -> dict[str, int]:
        """The fields up to the anomalies, by name."""
        return dict(zip(self._fields[:A_FREE_UNSEEN], self[:A_FREE_UNSEEN], strict=True))

    def anomalies(self) -> dict[str, int]:
        """The anomalies, by name."""
        return dict(zip(self._fields[A_FREE_UNSEEN:], self[A_FREE_UNSEEN:], strict=True))


(X_ALLOCS, X_FREES, X_BATCHED, X_DRAINS, X_ALLOC_FAILS, X_LOCAL, X_REMOTE, A_FREE_UNSEEN,
 A_DOUBLE_FREE, A_FREE_MISMATCH, A_ALLOC_BUSY, A_OUTSIDE,
 A_UNALIGNED) = range(len(ReplayCounts._fields))
NR_X = len(ReplayCounts._fields)

# seen[] states
SEEN_ALLOCATED = 1
SEEN_FREED = 2


@kernel
def free_head(S, p):
    """Head of the free (buddy or pcp) block holding ``p``; -1 if ``p`` is
    allocated, -2 if it is a hole or reserved."""
    if S.page_flags[p] & (PG_hole | PG_reserved):
        return -2
    h = block_head(S, p)
    if h < 0 or S.page_flags[h] & PG_head:
        return -1
    return h


@kernel
def give_back(S, a, b, gz):
    """Put [a, b) back on the free lists as maximal aligned blocks, without
    merging (break_down_buddy_pages: the pieces' buddies are all taken)."""
    pbo = S.params[P_PB_ORDER]
    mo = S.params[P_MAX_ORDER]
    while a < b:
        o = chunk_order(a, b, mo)
        add_to_free_list(S, a, gz, o, S.pb_mt[a >> pbo], False)
        S.zone_free[gz] += np.int64(1) << o
        a += np.int64(1) << o


@kernel
def take_range(S, pfn, n):
    """take_page_off_buddy for [pfn, pfn + n): detach every free block that
    overlaps it (buddy or pcp) and give back the parts outside.  Returns 0,
    -1 if a page is allocated, -2 if one is a hole/reserved (nothing changed)."""
    end = pfn + n
    p = pfn
    while p < end:
        h = free_head(S, p)
        if h < 0:
            return h
        p = h + (np.int64(1) << S.page_order[h])
    pbo = S.params[P_PB_ORDER]
    p = pfn
    while p < end:
        h = free_head(S, p)
        o = np.int64(S.page_order[h])
        gz = page_gz(S, h)
        if S.page_flags[h] & PG_buddy:
            del_from_free_list(S, h, gz, o, S.pb_mt[h >> pbo])
            S.zone_free[gz] -= np.int64(1) << o
        else:
            code = np.int64(S.page_owner[h])
            cpu = code // NR_PCP_LISTS
            pcp_del(S, cpu, gz, code % NR_PCP_LISTS, h)
            S.pcp_count[cpu, gz] -= np.int64(1) << o
        blk_end = h + (np.int64(1) << o)
        give_back(S, h, max(h, pfn), gz)
        give_back(S, min(blk_end, end), blk_end, gz)
        p = blk_end
    # the real block was one zone's; under the model's layout its pages may
    # belong to several nodes: keep it whole in the head's zone (the caller
    # marks it, so it is split to its layout nodes when freed)
    hn = S.page_nid[pfn]
    p = pfn
    while p < end:
        nid = S.page_nid[p]
        if nid == hn:
            p += 1
            continue
        q = p
        while q < end and S.page_nid[q] == nid:
            q += 1
        rehome_block(S, p, q - p, hn, True)
        p = q
    return 0


@kernel
def replay(S, ev, start, stop, seen, counts, no_mask):
    """Apply the events [start, stop) of ``ev`` (ftrace.TraceEvents) to the
    model; count in ``counts`` (ReplayCounts fields)."""
    max_pfn = S.params[P_MAX_PFN]
    max_order = S.params[P_MAX_ORDER]
    ncpu = S.cpu_to_node.shape[0]
    for i in range(start, stop):
        k = ev.kind[i]
        p = ev.pfn[i]
        o = np.int64(ev.order[i])
        c = np.int64(ev.cpu[i]) % ncpu
        if k == EV_ALLOC:
            # an order above MAX_PAGE_ORDER has no free list (and 1 << 63 overflows)
            if o > max_order:
                counts[A_OUTSIDE] += 1
                continue
            n = np.int64(1) << o
            if p < 0 or p + n > max_pfn:
                counts[A_OUTSIDE] += 1
                continue
            if p & (n - 1):
                counts[A_UNALIGNED] += 1
                continue
            r = take_range(S, p, n)
            if r == -1:
                counts[A_ALLOC_BUSY] += 1
                continue
            if r == -2:
                counts[A_OUTSIDE] += 1
                continue
            S.page_flags[p] |= PG_head
            if ev.migratetype[i] == MIGRATE_MOVABLE:
                S.page_flags[p] |= PG_lru
            S.page_order[p] = o
            S.page_owner[p] = c
            if needs_move(S, p, n):
                set_mark(S, p)
            else:
                clear_mark(S, p)
            seen[p] = SEEN_ALLOCATED
            counts[X_ALLOCS] += 1
            local = np.int64(S.cpu_to_node[c])
            gz = page_gz(S, p)
            if S.page_nid[p] == local:
                counts[X_LOCAL] += 1
            else:
                counts[X_REMOTE] += 1
            pref = preferred_zone(S.zonelist, local, gfp_zone(ev.gfp[i]), False, no_mask)
            if pref >= 0:
                zone_statistics(S, pref, gz, local)
        elif k == EV_FREE:
            if p < 0 or p >= max_pfn or o > max_order:
                counts[A_OUTSIDE] += 1
                continue
            if free_pages(S, p, o, c) == ERR_BAD_FREE:
                s = seen[p]
                if s == 0:
                    counts[A_FREE_UNSEEN] += 1
                elif s == SEEN_FREED:
                    counts[A_DOUBLE_FREE] += 1
                else:
                    counts[A_FREE_MISMATCH] += 1
                continue
            seen[p] = SEEN_FREED
            counts[X_FREES] += 1
        elif k == EV_FREE_BATCHED:
            counts[X_BATCHED] += 1
        elif k == EV_PCPU_DRAIN:
            counts[X_DRAINS] += 1
        else:
            counts[X_ALLOC_FAILS] += 1
