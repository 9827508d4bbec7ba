"""Replay of a real kmem trace onto the model, compiled: the model allocates
exactly the pfns the trace allocated (taking them off the buddy or pcp lists
wherever the model holds them) and frees them through free_pages, so a
marked page is redirected to its new node as it would be in the kernel.

``follow`` (the oracle's replay from a snapshot of the same kernel): the
trace is the truth about every page it names, and the model's pcp policy
is left out.  A free goes on the freeing CPU's pcp list (orders up to
PAGE_ALLOC_COSTLY_ORDER) or the buddy lists, and leaves a pcp list only
where the trace says so (``mm_page_pcpu_drain``); a pcp refill
(``mm_page_alloc_zone_locked percpu_refill=1``, or a fallback's
``mm_page_alloc_extfrag``, which rmqueue_bulk's __rmqueue_claim and
__rmqueue_steal fire instead) moves the block from the buddy lists to the
CPU's pcp list; a page the model holds allocated that
the kernel allocates or drains (it sat on a pcp list at the snapshot, where
kpageflags cannot see it) and a free the model cannot match (an allocation
the trace could not show, such as alloc_pages_bulk's) are taken as the
trace says.  The anomalies are counted all the same."""

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
    free_one_page,
    free_pages_prepare,
    free_to_zone,
    order_to_pindex,
    page_gz,
    pcp_add,
    pcp_del,
    set_mark,
    test_mark,
)
from .consts import (
    MIGRATE_MOVABLE,
    MIGRATE_PCPTYPES,
    NR_PCP_LISTS,
    PAGE_ALLOC_COSTLY_ORDER,
    PG_buddy,
    PG_head,
    PG_hole,
    PG_lru,
    PG_pcp,
    PG_reserved,
    PG_slab,
)
from .ftrace import (
    EV_ALLOC,
    EV_BUDDY_ALLOC,
    EV_EXTFRAG,
    EV_FREE,
    EV_FREE_BATCHED,
    EV_PCPU_DRAIN,
    EV_REFILL,
)
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
    zone_locked: int  # mm_page_alloc_zone_locked (pcp refills and buddy allocations)
    extfrag: int  # mm_page_alloc_extfrag (a fallback took a block of another type)
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


(X_ALLOCS, X_FREES, X_BATCHED, X_DRAINS, X_ZONE_LOCKED, X_EXTFRAG, X_ALLOC_FAILS, X_LOCAL, X_REMOTE,
 A_FREE_UNSEEN, A_DOUBLE_FREE, A_FREE_MISMATCH, A_ALLOC_BUSY, A_OUTSIDE,
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
    p = pfn
    while p < end:
        p = detach_free(S, free_head(S, p), pfn, end)
    keep_whole(S, pfn, end)
    return 0


@kernel
def detach_free(S, h, lo, hi):
    """Take the free block at ``h`` off its buddy or pcp list and give back
    its parts outside [lo, hi); returns the block's end pfn."""
    o = np.int64(S.page_order[h])
    gz = page_gz(S, h)
    if S.page_flags[h] & PG_buddy:
        del_from_free_list(S, h, gz, o, S.pb_mt[h >> S.params[P_PB_ORDER]])
        S.zone_free[gz] -= np.int64(1) << o
    else:
        code = np.int64(S.page_owner[h])
        cpu = code // NR_PCP_LISTS
        pcp_del(S, cpu, gz, code % NR_PCP_LISTS, h)
        S.pcp_count[cpu, gz] -= np.int64(1) << o
    blk_end = h + (np.int64(1) << o)
    give_back(S, h, max(h, lo), gz)
    give_back(S, min(blk_end, hi), blk_end, gz)
    return blk_end


@kernel
def keep_whole(S, pfn, end):
    """After [pfn, end) was taken as one block: keep it in the head's zone."""
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


@kernel
def claim(S, pfn, n):
    """Take [pfn, pfn + n) as one allocated block, as the trace says the
    kernel holds it (follow mode): free blocks overlapping it are detached
    (their outside parts given back), allocated blocks overlapping it are
    cut at its edges (their outside pages stay allocated, as order-0
    blocks).  Returns 0, or -2 if a page is a hole or reserved (nothing
    changed); the caller sets the head."""
    end = pfn + n
    for p in range(pfn, end):
        if S.page_flags[p] & (PG_hole | PG_reserved):
            return -2
    p = pfn
    while p < end:
        h = free_head(S, p)
        if h >= 0:
            p = detach_free(S, h, pfn, end)
            continue
        h = block_head(S, p)
        if h < 0:  # an allocated page no head covers: a block of its own
            h = p
            blk_end = p + 1
        else:
            blk_end = h + (np.int64(1) << S.page_order[h])
        if test_mark(S, h):
            clear_mark(S, h)
        owner = S.page_owner[h]
        for q in range(h, blk_end):
            if q < pfn or q >= end:
                S.page_flags[q] |= PG_head
                S.page_order[q] = 0
                S.page_owner[q] = owner
            else:
                S.page_flags[q] &= np.uint8(0xFF ^ (PG_head | PG_lru | PG_slab))
        p = blk_end
    keep_whole(S, pfn, end)
    return 0


@kernel
def follow_free(S, p, o, cpu):
    """Free the allocated block ``p`` of order ``o`` where the kernel puts
    it, and no further (follow mode): free_to_zone without the pcp drain (the
    trace's mm_page_pcpu_drain events say what left).  The model has no THP
    pcp list: a free of HPAGE_PMD_ORDER (pageblock_order on x86_64) stays
    off the free lists, as it would sit on the kernel's, until its
    mm_page_pcpu_drain or the allocation that takes it again."""
    if o == S.params[P_PB_ORDER]:
        return
    free_pages_prepare(S, p)
    free_to_zone(S, p, o, cpu, False)


@kernel
def follow_to_buddy(S, p, o):
    """mm_page_pcpu_drain (follow mode): the block ``p`` left a pcp list for
    the buddy lists (free_pcppages_bulk -> __free_one_page).  A block the
    model holds allocated sat on a pcp list kpageflags could not show."""
    n = np.int64(1) << o
    if S.page_flags[p] & PG_buddy:
        return
    if S.page_flags[p] & PG_pcp and S.page_order[p] == o:
        detach_free(S, p, p, p + n)
    elif claim(S, p, n) < 0:
        return
    free_pages_prepare(S, p)
    free_one_page(S, p, o, page_gz(S, p), S.pb_mt[p >> S.params[P_PB_ORDER]], False)


@kernel
def follow_refill(S, p, o, mt, cpu):
    """mm_page_alloc_zone_locked percpu_refill=1 (follow mode): rmqueue_bulk
    took the block ``p`` off the buddy lists for the CPU's pcp list."""
    n = np.int64(1) << o
    if o > PAGE_ALLOC_COSTLY_ORDER:  # a THP refill: no such pcp list in the model
        return
    if take_range(S, p, n) != 0:  # not free in the model: its mm_page_alloc will claim it
        return
    if mt < 0 or mt >= MIGRATE_PCPTYPES:
        mt = MIGRATE_MOVABLE
    gz = page_gz(S, p)
    pcp_add(S, cpu, gz, order_to_pindex(mt, o), p, o, True)
    S.pcp_count[cpu, gz] += n


@kernel
def count_bad_free(s, counts):
    """Count a free the model could not match, by what ``seen`` knew of it."""
    if s == 0:
        counts[A_FREE_UNSEEN] += 1
    elif s == SEEN_FREED:
        counts[A_DOUBLE_FREE] += 1
    else:
        counts[A_FREE_MISMATCH] += 1


@kernel
def replay(S, ev, start, stop, seen, counts, no_mask, follow):
    """Apply the events [start, stop) of ``ev`` (ftrace.TraceEvents) to the
    model; count in ``counts`` (ReplayCounts fields).  ``follow``: see the
    module docstring."""
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
                # follow: a THP the trace freed onto its pcp list, taken again
                held = (o == S.params[P_PB_ORDER] and seen[p] == SEEN_FREED
                        and (S.page_flags[p] & PG_head) != 0 and S.page_order[p] == o)
                if not held:
                    counts[A_ALLOC_BUSY] += 1
                if not follow:
                    continue
                r = claim(S, p, n)
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
            matched = (S.page_flags[p] & PG_head) != 0 and S.page_order[p] == o
            if follow and matched and not test_mark(S, p):
                follow_free(S, p, o, c)
            elif follow and not matched and p + (np.int64(1) << o) <= max_pfn \
                    and claim(S, p, np.int64(1) << o) == 0:
                count_bad_free(seen[p], counts)
                follow_free(S, p, o, c)
            elif free_pages(S, p, o, c) == ERR_BAD_FREE:
                count_bad_free(seen[p], counts)
                continue
            seen[p] = SEEN_FREED
            counts[X_FREES] += 1
        elif k == EV_FREE_BATCHED:
            counts[X_BATCHED] += 1
        elif k == EV_PCPU_DRAIN:
            counts[X_DRAINS] += 1
            if follow and p >= 0 and o <= max_order and p + (np.int64(1) << o) <= max_pfn:
                follow_to_buddy(S, p, o)
        elif k == EV_REFILL or k == EV_BUDDY_ALLOC or k == EV_EXTFRAG:  # noqa: SIM109
            counts[X_EXTFRAG if k == EV_EXTFRAG else X_ZONE_LOCKED] += 1
            # a fallback's block (mm_page_alloc_extfrag) went where a refill's
            # goes, or straight to the allocation its mm_page_alloc then takes
            if follow and k != EV_BUDDY_ALLOC and p >= 0 and o <= max_order \
                    and p + (np.int64(1) << o) <= max_pfn and (p & ((np.int64(1) << o) - 1)) == 0:
                follow_refill(S, p, o, np.int64(ev.migratetype[i]), c)
        else:
            counts[X_ALLOC_FAILS] += 1
