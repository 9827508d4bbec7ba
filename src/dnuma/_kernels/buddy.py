"""The buddy allocator and per-cpu lists of one machine, compiled.

Each function names the mm/page_alloc.c (Linux 6.12.117) function it follows.
All take the :class:`~dnuma._kernels.state.KState` bundle ``S`` first; pfns and
page counts are int64, ``gz`` is a global zone index (nid * 4 + zone_idx).
"""

from __future__ import annotations

import numpy as np

from ._jit import kernel, kernel_inline
from .consts import (
    ALLOC_MIN_RESERVE,
    ALLOC_NON_BLOCK,
    MIGRATE_ISOLATE,
    MIGRATE_MOVABLE,
    MIGRATE_PCPTYPES,
    MIGRATE_RECLAIMABLE,
    MIGRATE_UNMOVABLE,
    NR_PCP_LISTS,
    NZ,
    PAGE_ALLOC_COSTLY_ORDER,
    PCP_BATCH_SCALE_MAX,
    RMQUEUE_CLAIM,
    RMQUEUE_NORMAL,
    RMQUEUE_STEAL,
    WMARK_HIGH,
    ZONE_MOVABLE,
    PG_buddy,
    PG_head,
    PG_hole,
    PG_lru,
    PG_pcp,
    PG_slab,
)
from .lookup import find_range
from .state import (
    C_PCP_DRAINED,
    C_ZONES_CHANGED,
    P_MAX_ORDER,
    P_MAX_PFN,
    P_MOBILITY_OFF,
    P_PB_ORDER,
    P_SECTION_SHIFT,
    PCPF_FREE_HIGH_BATCH,
    PCPF_PREV_FREE_HIGH_ORDER,
    PCPF_TOUCHED,
    ZONE_BELOW_HIGH,
    ZONE_SPAN_DIRTY,
)

# fallbacks[] of 6.12: UNMOVABLE -> RECLAIMABLE, MOVABLE; MOVABLE -> RECLAIMABLE,
# UNMOVABLE; RECLAIMABLE -> UNMOVABLE, MOVABLE
FALLBACKS = np.array([[MIGRATE_RECLAIMABLE, MIGRATE_MOVABLE],
                      [MIGRATE_RECLAIMABLE, MIGRATE_UNMOVABLE],
                      [MIGRATE_UNMOVABLE, MIGRATE_MOVABLE]], dtype=np.int64)


@kernel_inline
def block_head(S, pfn):
    """Head pfn of the block (buddy, pcp or allocated) holding ``pfn``, or -1
    when none does (a hole or a reserved page): the walk up the orders of
    is_free_buddy_page (mm/page_alloc.c), for pcp and allocated heads too."""
    for o in range(S.params[P_MAX_ORDER] + 1):
        h = (pfn >> o) << o
        f = S.page_flags[h]
        if (f & (PG_buddy | PG_pcp | PG_head)) and h + (np.int64(1) << S.page_order[h]) > pfn:
            return h
    return -1


# ---------------------------------------------------------------- layout lookups
@kernel_inline
def ml_range_nocache(S, pfn):
    """Index of the effective memlayout range holding ``pfn`` (-1 if none),
    not counted as a lookup."""
    return find_range(S.ml_tbl, S.ml_starts, S.ml_ends, pfn)


@kernel_inline
def block_target(S, h, n):
    """(uniform nid or -1 if mixed, range index of h) for the block [h, h+n)."""
    i = ml_range_nocache(S, h)
    if i >= 0 and S.ml_ends[i] >= h + n - 1:
        return np.int64(S.ml_nids[i]), i
    return -1, i


@kernel_inline
def needs_move(S, h, n):
    """True if any page of [h, h+n) has a layout nid other than its own (the
    RFC's dnuma_page_needs_move, for a whole block)."""
    nid = S.page_nid[h]
    tt, i = block_target(S, h, n)
    if tt >= 0:
        return tt != nid
    p = h
    end = h + n
    while p < end:
        i = ml_range_nocache(S, p)
        if i >= 0:
            if S.ml_nids[i] != nid:
                return True
            p = min(end, S.ml_ends[i] + 1)
        else:
            p += 1
    return False


# ---------------------------------------------------------------- free lists
@kernel_inline
def _link_first(first, last, fwd, back, key, pfn):
    """Put ``pfn`` first on the list ``key``, seen in the direction ``fwd``
    (``first``/``fwd`` swapped with ``last``/``back`` puts it last)."""
    old = first[key]
    fwd[pfn] = old
    back[pfn] = -1
    if old >= 0:
        back[old] = pfn
    else:
        last[key] = pfn
    first[key] = pfn


@kernel
def list_add(head, tail, nxt, prv, key, pfn, to_tail):
    """list_add / list_add_tail on an index-linked list identified by ``key``."""
    if to_tail:
        _link_first(tail, head, prv, nxt, key, pfn)
    else:
        _link_first(head, tail, nxt, prv, key, pfn)


@kernel
def list_del(head, tail, nxt, prv, key, pfn):
    """list_del on an index-linked list identified by ``key``."""
    n = nxt[pfn]
    p = prv[pfn]
    if p >= 0:
        nxt[p] = n
    else:
        head[key] = n
    if n >= 0:
        prv[n] = p
    else:
        tail[key] = p
    nxt[pfn] = -1
    prv[pfn] = -1


@kernel
def add_to_free_list(S, pfn, gz, order, mt, to_tail):
    """__add_to_free_list + set_buddy_order: the block becomes PageBuddy."""
    key = (gz, order, mt)
    list_add(S.free_head, S.free_tail, S.lru_next, S.lru_prev, key, pfn, to_tail)
    S.free_cnt[gz, order, mt] += 1
    S.page_flags[pfn] |= PG_buddy
    S.page_order[pfn] = order


@kernel
def del_from_free_list(S, pfn, gz, order, mt):
    """__del_page_from_free_list: unlink and clear PageBuddy."""
    list_del(S.free_head, S.free_tail, S.lru_next, S.lru_prev, (gz, order, mt), pfn)
    S.free_cnt[gz, order, mt] -= 1
    S.page_flags[pfn] &= np.uint8(0xFF ^ PG_buddy)


@kernel
def page_gz(S, pfn):
    return np.int64(S.page_nid[pfn]) * NZ + np.int64(S.page_zone[pfn])


# ---------------------------------------------------------------- LookupNode marks
# ``S.page_mark`` is a bitmap: bit ``pfn & 7`` of byte ``pfn >> 3`` (little bit order,
# numpy's ``unpackbits(bitorder="little")``).
@kernel_inline
def test_mark(S, pfn):
    """The page carries the RFC's LookupNode mark."""
    return (S.page_mark[pfn >> 3] >> (pfn & 7)) & 1 != 0


@kernel_inline
def set_mark(S, pfn):
    S.page_mark[pfn >> 3] |= np.uint8(1 << (pfn & 7))


@kernel_inline
def clear_mark(S, pfn):
    S.page_mark[pfn >> 3] &= np.uint8(~(1 << (pfn & 7)) & 0xFF)


@kernel
def is_buddy(S, buddy, order, gz):
    """page_is_buddy: free at ``order`` and in the same zone (node and zone idx)."""
    if buddy < 0 or buddy >= S.params[P_MAX_PFN]:
        return False
    return ((S.page_flags[buddy] & PG_buddy) != 0 and S.page_order[buddy] == order
            and page_gz(S, buddy) == gz)


@kernel
def set_pageblock_range(S, pfn, order, mt):
    """change_pageblock_range: retag every pageblock of a block >= pageblock_order."""
    pbo = S.params[P_PB_ORDER]
    if order < pbo:
        S.pb_mt[pfn >> pbo] = mt
        return
    first = pfn >> pbo
    for b in range(first, first + (1 << (order - pbo))):
        S.pb_mt[b] = mt


@kernel
def free_one_page(S, pfn, order, gz, mt, to_tail_flag):
    """__free_one_page: account, merge with free buddies in the same zone, add.

    Placement: tail with FPI_TO_TAIL, else tail when buddy_merge_likely().
    """
    free_one_page_inline(S, pfn, order, gz, mt, to_tail_flag)


@kernel_inline
def free_one_page_inline(S, pfn, order, gz, mt, to_tail_flag):
    """:func:`free_one_page`, inlined into its caller (the commit's transplant)."""
    max_order = S.params[P_MAX_ORDER]
    pbo = S.params[P_PB_ORDER]
    S.zone_free[gz] += np.int64(1) << order
    buddy_pfn = pfn ^ (np.int64(1) << order)
    while order < max_order:
        buddy_pfn = pfn ^ (np.int64(1) << order)
        if not is_buddy(S, buddy_pfn, order, gz):
            break
        buddy_mt = mt
        if order >= pbo:
            buddy_mt = S.pb_mt[buddy_pfn >> pbo]
            if buddy_mt != mt and (mt >= MIGRATE_PCPTYPES or buddy_mt >= MIGRATE_PCPTYPES):
                break
        del_from_free_list(S, buddy_pfn, gz, order, buddy_mt)
        if buddy_mt != mt:
            set_pageblock_range(S, buddy_pfn, order, mt)
        pfn = pfn & buddy_pfn
        order += 1
    to_tail = to_tail_flag
    if not to_tail and order < max_order - 1:
        # buddy_merge_likely: is the buddy of our order+1 parent free?
        higher = buddy_pfn & pfn
        hb = higher ^ (np.int64(1) << (order + 1))
        to_tail = is_buddy(S, hb, order + 1, page_gz(S, higher))
    add_to_free_list(S, pfn, gz, order, mt, to_tail)


@kernel_inline
def split_large_buddy(S, pfn, order, gz, to_tail_flag):
    """free_one_page -> split_large_buddy: a block above pageblock_order is
    freed one pageblock at a time, each under its own pageblock's
    migratetype (get_pfnblock_migratetype), merging as __free_one_page
    does; a smaller block is one __free_one_page."""
    pbo = S.params[P_PB_ORDER]
    if order <= pbo:
        free_one_page_inline(S, pfn, order, gz, S.pb_mt[pfn >> pbo], to_tail_flag)
        return
    end = pfn + (np.int64(1) << order)
    while pfn < end:
        free_one_page_inline(S, pfn, pbo, gz, S.pb_mt[pfn >> pbo], to_tail_flag)
        pfn += np.int64(1) << pbo


@kernel
def expand(S, pfn, low, high, gz, mt):
    """expand: split a free block of order ``high`` down to ``low``; the caller
    keeps the lowest piece, upper halves go on the free lists."""
    while high > low:
        high -= 1
        size = np.int64(1) << high
        add_to_free_list(S, pfn + size, gz, high, mt, False)


@kernel
def page_del_and_expand(S, pfn, gz, low, high, mt):
    """page_del_and_expand: take a free block, keep 2**low pages."""
    del_from_free_list(S, pfn, gz, high, mt)
    expand(S, pfn, low, high, gz, mt)
    S.zone_free[gz] -= np.int64(1) << low


@kernel_inline
def rmqueue_smallest(S, gz, order, mt):
    """__rmqueue_smallest: the smallest free block of type ``mt`` that fits."""
    for o in range(order, S.params[P_MAX_ORDER] + 1):
        p = S.free_head[gz, o, mt]
        if p >= 0:
            page_del_and_expand(S, p, gz, order, o, mt)
            return p
    return -1


@kernel
def can_steal_fallback(S, order, start_mt):
    pbo = S.params[P_PB_ORDER]
    if order >= pbo:
        return True
    return (order >= pbo // 2 or start_mt in (MIGRATE_RECLAIMABLE, MIGRATE_UNMOVABLE)
            or S.params[P_MOBILITY_OFF] != 0)


@kernel
def find_suitable_fallback(S, gz, order, mt):
    """find_suitable_fallback(only_stealable=false): (fallback_mt, can_steal)."""
    total = 0
    for m in range(S.free_cnt.shape[2]):
        total += S.free_cnt[gz, order, m]
    if total == 0:
        return -1, False
    for i in range(MIGRATE_PCPTYPES - 1):
        fmt = FALLBACKS[mt, i]
        if S.free_cnt[gz, order, fmt] == 0:
            continue
        return fmt, can_steal_fallback(S, order, mt)
    return -1, False


@kernel
def move_freepages_block(S, start, new_mt):
    """__move_freepages_block: every free block of the pageblock to ``new_mt``.

    The kernel only ever finds its own zone's pages here; with DNUMA a pageblock
    can hold several nodes' pages, so each free block moves on its own zone's list.
    """
    pbo = S.params[P_PB_ORDER]
    end = start + (np.int64(1) << pbo)
    old_mt = S.pb_mt[start >> pbo]
    pfn = start
    while pfn < end:
        if S.page_flags[pfn] & PG_buddy:
            o = np.int64(S.page_order[pfn])
            g = page_gz(S, pfn)
            del_from_free_list(S, pfn, g, o, old_mt)
            add_to_free_list(S, pfn, g, o, new_mt, True)
            pfn += np.int64(1) << o
        else:
            pfn += 1
    S.pb_mt[start >> pbo] = new_mt


@kernel
def try_to_steal_block(S, gz, pfn, current_order, order, start_type):
    """try_to_steal_block: claim the pageblock when big enough or mostly alike."""
    pbo = S.params[P_PB_ORDER]
    block_type = S.pb_mt[pfn >> pbo]
    if block_type >= MIGRATE_PCPTYPES:
        return -1
    if current_order >= pbo:
        del_from_free_list(S, pfn, gz, current_order, block_type)
        set_pageblock_range(S, pfn, current_order, start_type)
        expand(S, pfn, order, current_order, gz, start_type)
        S.zone_free[gz] -= np.int64(1) << order
        return pfn
    # prep_move_freepages_block: the zone must span the whole pageblock;
    # then count its free and movable pages
    start = (pfn >> pbo) << pbo
    end = start + (np.int64(1) << pbo)
    if not (zone_spans_pfn(S, gz, start) and zone_spans_pfn(S, gz, end - 1)):
        return -1
    free_pages = 0
    movable = 0
    p = start
    while p < end:
        f = S.page_flags[p]
        if f & PG_buddy:
            n = np.int64(1) << S.page_order[p]
            free_pages += n
            p += n
            continue
        if f & PG_head:
            n = np.int64(1) << S.page_order[p]
            if f & PG_lru:
                movable += min(n, end - p)
            p += n
            continue
        p += 1
    if start_type == MIGRATE_MOVABLE:
        alike = movable
    elif block_type == MIGRATE_MOVABLE:
        alike = (end - start) - (free_pages + movable)
    else:
        alike = 0
    if free_pages + alike >= (np.int64(1) << (pbo - 1)) or S.params[P_MOBILITY_OFF] != 0:
        move_freepages_block(S, start, start_type)
        return rmqueue_smallest(S, gz, order, start_type)
    return -1


@kernel
def rmqueue_claim(S, gz, order, mt):
    """__rmqueue_claim: largest fallback block first, try to claim its pageblock."""
    for co in range(S.params[P_MAX_ORDER], order - 1, -1):
        fmt, can_steal = find_suitable_fallback(S, gz, co, mt)
        if fmt < 0:
            continue
        if not can_steal:
            break
        p = S.free_head[gz, co, fmt]
        got = try_to_steal_block(S, gz, p, co, order, mt)
        if got >= 0:
            return got
    return -1


@kernel
def rmqueue_steal(S, gz, order, mt):
    """__rmqueue_steal: the smallest fallback block, pageblock type unchanged."""
    for co in range(order, S.params[P_MAX_ORDER] + 1):
        fmt, _cs = find_suitable_fallback(S, gz, co, mt)
        if fmt < 0:
            continue
        p = S.free_head[gz, co, fmt]
        page_del_and_expand(S, p, gz, order, co, fmt)
        return p
    return -1


@kernel_inline
def rmqueue_mode(S, gz, order, mt, mode):
    """__rmqueue (6.12.117, no CMA, no ALLOC_NOFRAGMENT): normal -> claim -> steal.

    ``mode`` (RMQUEUE_NORMAL, _CLAIM or _STEAL) is remembered across rmqueue_bulk.
    Returns (head pfn or -1, the new mode).  Inline: its common first step
    runs in the caller; the claim and steal steps stay a real call.
    """
    if mode == RMQUEUE_NORMAL:
        p = rmqueue_smallest(S, gz, order, mt)
        if p >= 0:
            return p, mode
    return rmqueue_fallback(S, gz, order, mt, mode)


@kernel
def rmqueue_fallback(S, gz, order, mt, mode):
    """The claim and steal steps of :func:`rmqueue_mode`, after
    __rmqueue_smallest found nothing (or was skipped by the remembered mode)."""
    if mode <= RMQUEUE_CLAIM:
        p = rmqueue_claim(S, gz, order, mt)
        if p >= 0:
            return p, RMQUEUE_NORMAL
    p = rmqueue_steal(S, gz, order, mt)
    if p >= 0:
        return p, RMQUEUE_STEAL
    return p, mode


# ---------------------------------------------------------------- per-cpu lists
@kernel
def order_to_pindex(mt, order):
    return MIGRATE_PCPTYPES * order + mt


@kernel
def pcp_add(S, cpu, gz, pindex, pfn, order, to_tail):
    """Put a block on a CPU's pcp list.  Model: the page's owner field holds
    cpu * NR_PCP_LISTS + pindex while it sits there, so the block can be found
    and taken off by pfn (replay of a trace's allocation of that pfn)."""
    list_add(S.pcp_head, S.pcp_tail, S.lru_next, S.lru_prev, (cpu, gz, pindex), pfn, to_tail)
    S.page_flags[pfn] |= PG_pcp
    S.page_order[pfn] = order
    S.page_owner[pfn] = cpu * NR_PCP_LISTS + pindex


@kernel
def pcp_del(S, cpu, gz, pindex, pfn):
    list_del(S.pcp_head, S.pcp_tail, S.lru_next, S.lru_prev, (cpu, gz, pindex), pfn)
    S.page_flags[pfn] &= np.uint8(0xFF ^ PG_pcp)


@kernel
def free_pcppages_bulk(S, cpu, gz, count, pindex, stage):
    """free_pcppages_bulk: round-robin over the lists from pindex, oldest (tail) first.

    ``stage``: the RFC's hook (v2 16/25) for the commit's drain_all_pages: a
    block whose node the effective layout changes (:func:`needs_move`) is
    not freed into this zone but put aside on a list linked through
    ``lru_next``, newest first (the RFC's ``need_move`` list, filled with
    list_add); returns its first pfn (-1: none), for the caller to free into
    the new zones after this zone's pages.
    """
    count = min(count, S.pcp_count[cpu, gz])
    pbo = S.params[P_PB_ORDER]
    pindex = pindex - 1
    staged = np.int64(-1)
    while count > 0:
        while True:
            pindex += 1
            if pindex > NR_PCP_LISTS - 1:
                pindex = 0
            if S.pcp_head[cpu, gz, pindex] >= 0:
                break
        order = pindex // MIGRATE_PCPTYPES
        nr = np.int64(1) << order
        while True:
            p = S.pcp_tail[cpu, gz, pindex]
            pcp_del(S, cpu, gz, pindex, p)
            count -= nr
            S.pcp_count[cpu, gz] -= nr
            if stage and needs_move(S, p, nr):
                S.lru_next[p] = staged
                staged = p
            else:
                free_one_page(S, p, order, gz, S.pb_mt[p >> pbo], False)
            if count <= 0 or S.pcp_head[cpu, gz, pindex] < 0:
                break
    return staged


@kernel
def drain_pages_chunk(S, cpu, gz, stage):
    """One step of drain_pages_zone: free_pcppages_bulk of at most
    batch << PCP_BATCH_SCALE_MAX pages (counted in C_PCP_DRAINED); returns
    the staged list of :func:`free_pcppages_bulk`."""
    c = S.pcp_count[cpu, gz]
    staged = free_pcppages_bulk(S, cpu, gz, min(c, S.pcp_batch[gz] << PCP_BATCH_SCALE_MAX), 0,
                                stage)
    S.counters[C_PCP_DRAINED] += c - S.pcp_count[cpu, gz]
    return staged


@kernel
def drain_pages_zone(S, cpu, gz):
    """drain_pages_zone: empty one CPU's pcp of one zone, batch << 5 at a time."""
    while S.pcp_count[cpu, gz] > 0:
        drain_pages_chunk(S, cpu, gz, False)


@kernel
def drain_all_pages(S, gz):
    """drain_all_pages(zone): every CPU; ``gz`` < 0 drains every zone."""
    ncpu = S.pcp_count.shape[0]
    nzones = S.pcp_count.shape[1]
    for cpu in range(ncpu):
        if gz >= 0:
            drain_pages_zone(S, cpu, gz)
        else:
            for g in range(nzones):
                if S.pcp_count[cpu, g] > 0:
                    drain_pages_zone(S, cpu, g)


@kernel
def clamp(v, lo, hi):
    """include/linux/minmax.h __clamp: hi wins when lo > hi."""
    return hi if v >= hi else (lo if v <= lo else v)


@kernel
def nr_pcp_high(S, cpu, gz, batch, free_high):
    """nr_pcp_high (ZONE_RECLAIM_ACTIVE is never set: no reclaim in the model)."""
    hmin = S.pcp_high_min[gz]
    hmax = S.pcp_high_max[gz]
    high = clamp(S.pcp_high[cpu, gz], hmin, hmax)
    S.pcp_high[cpu, gz] = high
    if high == 0:
        return 0
    if free_high:
        S.pcp_high[cpu, gz] = max(high - (batch << PCP_BATCH_SCALE_MAX), hmin)
        return 0
    if hmin == hmax:
        return high
    if S.zone_flags[gz] & ZONE_BELOW_HIGH:
        fc = max(S.pcp_free_count[cpu, gz], batch)
        S.pcp_high[cpu, gz] = max(high - fc, hmin)
        high = max(S.pcp_count[cpu, gz], hmin)
    elif S.pcp_count[cpu, gz] >= high:
        need = S.pcp_free_count[cpu, gz] + batch
        if S.pcp_high[cpu, gz] < need:
            S.pcp_high[cpu, gz] = clamp(need, hmin, hmax)
    return high


@kernel
def nr_pcp_free(S, cpu, gz, batch, high, free_high):
    if free_high:
        return min(S.pcp_count[cpu, gz], batch << PCP_BATCH_SCALE_MAX)
    if high < batch:
        return 1
    return clamp(S.pcp_free_count[cpu, gz], batch, high - batch)


@kernel_inline
def free_unref_page_commit(S, cpu, gz, pfn, order, mt, drain):
    """free_unref_page_commit: onto the CPU's list head; bulk-free past ``high``
    unless ``drain`` is False (a replay following a trace's pcp lists: its
    mm_page_pcpu_drain events say what left)."""
    S.pcp_alloc_factor[cpu, gz] >>= 1
    S.pcp_flags[cpu, gz] |= PCPF_TOUCHED
    pindex = order_to_pindex(mt, order)
    pcp_add(S, cpu, gz, pindex, pfn, order, False)
    S.pcp_count[cpu, gz] += np.int64(1) << order
    batch = S.pcp_batch[gz]
    free_high = False
    fl = S.pcp_flags[cpu, gz]
    if order > 0 and order <= PAGE_ALLOC_COSTLY_ORDER:
        free_high = (S.pcp_free_count[cpu, gz] >= batch and (fl & PCPF_PREV_FREE_HIGH_ORDER) != 0
                     and ((fl & PCPF_FREE_HIGH_BATCH) == 0 or S.pcp_count[cpu, gz] >= batch))
        S.pcp_flags[cpu, gz] = fl | PCPF_PREV_FREE_HIGH_ORDER
    elif fl & PCPF_PREV_FREE_HIGH_ORDER:
        S.pcp_flags[cpu, gz] = fl & ~PCPF_PREV_FREE_HIGH_ORDER
    if S.pcp_free_count[cpu, gz] < (batch << PCP_BATCH_SCALE_MAX):
        S.pcp_free_count[cpu, gz] += np.int64(1) << order
    if not drain:
        return
    high = nr_pcp_high(S, cpu, gz, batch, free_high)
    if S.pcp_count[cpu, gz] >= high:
        free_pcppages_bulk(S, cpu, gz, nr_pcp_free(S, cpu, gz, batch, high, free_high), pindex,
                           False)
        if (S.zone_flags[gz] & ZONE_BELOW_HIGH) and watermark_ok(
                S, gz, 0, S.wmark[gz, WMARK_HIGH], ZONE_MOVABLE, 0):
            S.zone_flags[gz] &= ~ZONE_BELOW_HIGH


@kernel_inline
def free_pages_prepare(S, pfn):
    """What free_pages_prepare undoes of an allocation: the head, LRU and slab
    flags and the owner."""
    S.page_flags[pfn] &= np.uint8(0xFF ^ (PG_head | PG_lru | PG_slab))
    S.page_owner[pfn] = -1


@kernel_inline
def free_to_zone(S, pfn, order, cpu, drain):
    """free_unref_page / __free_pages_ok: pcp up to PAGE_ALLOC_COSTLY_ORDER, else the buddy
    lists; ``drain``: see free_unref_page_commit."""
    gz = page_gz(S, pfn)
    mt = S.pb_mt[pfn >> S.params[P_PB_ORDER]]
    if order <= PAGE_ALLOC_COSTLY_ORDER:
        if mt >= MIGRATE_PCPTYPES:
            if mt == MIGRATE_ISOLATE:
                free_one_page(S, pfn, order, gz, mt, False)
                return
            mt = MIGRATE_MOVABLE
        free_unref_page_commit(S, cpu, gz, pfn, order, mt, drain)
    else:
        split_large_buddy(S, pfn, order, gz, False)


@kernel
def nr_pcp_alloc(S, cpu, gz, order):
    base = S.pcp_batch[gz]
    hmin = S.pcp_high_min[gz]
    hmax = S.pcp_high_max[gz]
    high = clamp(S.pcp_high[cpu, gz], hmin, hmax)
    S.pcp_high[cpu, gz] = high
    if high < base:
        return 1
    batch = base if order else base << S.pcp_alloc_factor[cpu, gz]
    if hmin != hmax and (S.zone_flags[gz] & ZONE_BELOW_HIGH) == 0:
        high = min(high + batch, hmax)
        S.pcp_high[cpu, gz] = high
    if order == 0:
        max_nr = max(high - S.pcp_count[cpu, gz] - base, base)
        if batch <= max_nr and S.pcp_alloc_factor[cpu, gz] < PCP_BATCH_SCALE_MAX:
            S.pcp_alloc_factor[cpu, gz] += 1
        batch = min(batch, max_nr)
    if batch > 1:
        batch = max(batch >> order, 2)
    return batch


@kernel_inline
def rmqueue_pcplist(S, cpu, gz, order, mt):
    """rmqueue_pcplist + __rmqueue_pcplist: refill with rmqueue_bulk when empty."""
    S.pcp_free_count[cpu, gz] >>= 1
    S.pcp_flags[cpu, gz] |= PCPF_TOUCHED
    pindex = order_to_pindex(mt, order)
    if S.pcp_head[cpu, gz, pindex] < 0:
        batch = nr_pcp_alloc(S, cpu, gz, order)
        mode = RMQUEUE_NORMAL
        alloced = 0
        for _ in range(batch):
            p, mode = rmqueue_mode(S, gz, order, mt, mode)
            if p < 0:
                break
            pcp_add(S, cpu, gz, pindex, p, order, True)
            alloced += 1
        S.pcp_count[cpu, gz] += alloced << order
        if S.pcp_head[cpu, gz, pindex] < 0:
            return -1
    p = S.pcp_head[cpu, gz, pindex]
    pcp_del(S, cpu, gz, pindex, p)
    S.pcp_count[cpu, gz] -= np.int64(1) << order
    return p


# ---------------------------------------------------------------- watermarks


@kernel
def watermark_ok(S, gz, order, mark, highest_zoneidx, alloc_flags):
    """__zone_watermark_ok (no CMA, no highatomic reserve)."""
    free = S.zone_free[gz] - ((np.int64(1) << order) - 1)
    mn = mark
    if alloc_flags & ALLOC_MIN_RESERVE:
        mn -= mn // 2
        if alloc_flags & ALLOC_NON_BLOCK:
            mn -= mn // 4
    if free <= mn + S.lowmem_reserve[gz, highest_zoneidx]:
        return False
    if order == 0:
        return True
    for o in range(order, S.params[P_MAX_ORDER] + 1):
        for mt in range(MIGRATE_PCPTYPES):
            if S.free_cnt[gz, o, mt] > 0:
                return True
    return False


@kernel
def watermark_fast(S, gz, order, mark, highest_zoneidx, alloc_flags):
    """zone_watermark_fast: the order-0 shortcut, then __zone_watermark_ok."""
    if order == 0 and S.zone_free[gz] > mark + S.lowmem_reserve[gz, highest_zoneidx]:
        return True
    return watermark_ok(S, gz, order, mark, highest_zoneidx, alloc_flags)


# ---------------------------------------------------------------- section counts
@kernel_inline
def move_present(S, pfn, nr, old_gz, new_gz, managed):
    """Move ``nr`` present pages at ``pfn`` (within one section) between zones."""
    sec = pfn >> S.params[P_SECTION_SHIFT]
    if S.zone_present[new_gz] == 0 or S.zone_present[old_gz] == nr:
        S.counters[C_ZONES_CHANGED] += 1
    # resize_zone_range for the new zone; the old one may shrink (shrink_zone_span)
    if S.zone_present[new_gz] == 0:
        S.zone_start[new_gz] = pfn
        S.zone_end[new_gz] = pfn + nr
    elif (S.zone_flags[new_gz] & ZONE_SPAN_DIRTY) == 0:
        S.zone_start[new_gz] = min(S.zone_start[new_gz], pfn)
        S.zone_end[new_gz] = max(S.zone_end[new_gz], pfn + nr)
    if pfn <= S.zone_start[old_gz] or pfn + nr >= S.zone_end[old_gz]:
        S.zone_flags[old_gz] |= ZONE_SPAN_DIRTY
    S.sec_present[sec, old_gz] -= nr
    S.sec_present[sec, new_gz] += nr
    S.zone_present[old_gz] -= nr
    S.zone_present[new_gz] += nr
    if managed:
        S.zone_managed[old_gz] -= nr
        S.zone_managed[new_gz] += nr


# ---------------------------------------------------------------- vmstat tick
@kernel
def decay_pcp_high(S, cpu, gz):
    """decay_pcp_high: lower high by 1/8 toward high_min, free the excess in batches."""
    hmin = S.pcp_high_min[gz]
    batch = S.pcp_batch[gz]
    if S.pcp_high[cpu, gz] > hmin:
        S.pcp_high[cpu, gz] = max(S.pcp_count[cpu, gz] - (batch << PCP_BATCH_SCALE_MAX),
                                  S.pcp_high[cpu, gz] - (S.pcp_high[cpu, gz] >> 3), hmin)
    to_drain = S.pcp_count[cpu, gz] - S.pcp_high[cpu, gz]
    while to_drain > 0:
        n = min(to_drain, batch)
        free_pcppages_bulk(S, cpu, gz, n, 0, False)
        to_drain -= n


@kernel
def refresh_cpu_vm_stats(S):
    """vmstat_update on every CPU (refresh_cpu_vm_stats(do_pagesets=true)):
    decay each pcp's high; drain a remote zone's pcp by one batch once it has
    been idle for 3 ticks.  "Idle" is modelled as: no alloc/free through this
    pcp since the last tick (the kernel looks at the CPU's zone stat diffs)."""
    ncpu = S.pcp_count.shape[0]
    ngz = S.pcp_count.shape[1]
    for cpu in range(ncpu):
        local = S.cpu_to_node[cpu]
        for gz in range(ngz):
            if S.zone_present[gz] == 0:
                continue
            if S.pcp_flags[cpu, gz] & PCPF_TOUCHED:
                S.pcp_flags[cpu, gz] &= ~PCPF_TOUCHED
                S.pcp_expire[cpu, gz] = 3
            decay_pcp_high(S, cpu, gz)
            if S.pcp_expire[cpu, gz] == 0 or S.pcp_count[cpu, gz] == 0:
                continue
            if gz // NZ == local:
                S.pcp_expire[cpu, gz] = 0
                continue
            S.pcp_expire[cpu, gz] -= 1
            if S.pcp_expire[cpu, gz] > 0:
                continue
            # drain_zone_pages
            n = min(S.pcp_count[cpu, gz], S.pcp_batch[gz])
            if n > 0:
                free_pcppages_bulk(S, cpu, gz, n, 0, False)


# ---------------------------------------------------------------- zone spans
@kernel
def _first_present(S, gz, lo, hi, step):
    p = lo
    while p != hi:
        if (S.page_flags[p] & PG_hole) == 0 and page_gz(S, p) == gz:
            return p
        p += step
    return -1


@kernel
def zone_span_refresh(S, gz):
    """The zone's first and last present pfn (shrink_zone_span's result),
    found through the per-section counts, then pfn by pfn in the edge sections."""
    S.zone_flags[gz] &= ~ZONE_SPAN_DIRTY
    if S.zone_present[gz] == 0:
        S.zone_start[gz] = 0
        S.zone_end[gz] = 0
        return
    shift = S.params[P_SECTION_SHIFT]
    nsec = S.sec_present.shape[0]
    first = 0
    while S.sec_present[first, gz] == 0:
        first += 1
    last = nsec - 1
    while S.sec_present[last, gz] == 0:
        last -= 1
    lo = first << shift
    S.zone_start[gz] = _first_present(S, gz, lo, lo + (np.int64(1) << shift), 1)
    hi = (last + 1) << shift
    S.zone_end[gz] = _first_present(S, gz, hi - 1, (last << shift) - 1, -1) + 1


@kernel
def zone_spans_pfn(S, gz, pfn):
    """zone_spans_pfn: zone_start_pfn <= pfn < zone_end_pfn."""
    if S.zone_flags[gz] & ZONE_SPAN_DIRTY:
        zone_span_refresh(S, gz)
    return S.zone_start[gz] <= pfn and pfn < S.zone_end[gz]
