"""Allocation and free entry points, compiled: __alloc_pages, the memory
policies of mm/mempolicy.c, zone_statistics, and __free_pages with the DNUMA
redirect of marked pages."""

from __future__ import annotations

import numpy as np

from ._jit import kernel, kernel_inline
from .buddy import (
    clear_mark,
    drain_all_pages,
    free_pages_prepare,
    free_to_zone,
    ml_range_nocache,
    move_present,
    page_gz,
    rmqueue_mode,
    rmqueue_pcplist,
    split_large_buddy,
    test_mark,
    watermark_fast,
)
from .consts import (
    __GFP_ATOMIC_MODEL,
    __GFP_DMA,
    __GFP_DMA32,
    __GFP_HIGH,
    __GFP_HIGHMEM,
    __GFP_MOVABLE,
    __GFP_RECLAIMABLE,
    __GFP_THISNODE,
    ALLOC_MIN_RESERVE,
    ALLOC_NON_BLOCK,
    ALLOC_WMARK_LOW,
    ALLOC_WMARK_MASK,
    ALLOC_WMARK_MIN,
    MIGRATE_MOVABLE,
    MIGRATE_RECLAIMABLE,
    MIGRATE_UNMOVABLE,
    MODE_NODE,
    MODE_NODEMASK,
    MPOL_BIND,
    MPOL_DEFAULT,
    MPOL_LOCAL,
    MPOL_PREFERRED,
    N_NORMAL_MEMORY,
    NUMA_FOREIGN,
    NUMA_HIT,
    NUMA_INTERLEAVE_HIT,
    NUMA_LOCAL,
    NUMA_MISS,
    NUMA_OTHER,
    NZ,
    PAGE_ALLOC_COSTLY_ORDER,
    RMQUEUE_NORMAL,
    WMARK_HIGH,
    ZONE_DMA,
    ZONE_DMA32,
    ZONE_MOVABLE,
    ZONE_NORMAL,
    PG_head,
    PG_lru,
)
from .state import (
    C_ALLOC_FAIL,
    C_LOOKUP_HITS,
    C_LOOKUP_MISSES,
    C_MOVED_ON_FREE,
    P_MAX_ORDER,
    P_MAX_PFN,
    P_POLICY_ZONE,
    ZONE_BELOW_HIGH,
)

ERR_BAD_FREE = -2


@kernel
def gfp_zone(gfp):
    """gfp_zone on x86_64: the highest zone index the allocation may use."""
    if gfp & __GFP_DMA:
        return ZONE_DMA
    if gfp & __GFP_DMA32:
        return ZONE_DMA32
    if (gfp & __GFP_MOVABLE) and (gfp & __GFP_HIGHMEM):
        return ZONE_MOVABLE
    return ZONE_NORMAL


@kernel
def gfp_migratetype(gfp):
    if gfp & __GFP_MOVABLE:
        return MIGRATE_MOVABLE
    if gfp & __GFP_RECLAIMABLE:
        return MIGRATE_RECLAIMABLE
    return MIGRATE_UNMOVABLE


@kernel
def apply_policy_zone(S, mask, zone):
    """apply_policy_zone: a bind mask applies only to allocations that may use
    policy_zone (ZONE_MOVABLE when none of its nodes has normal memory)."""
    dynamic = S.params[P_POLICY_ZONE]
    normal = False
    for n in range(mask.shape[0]):
        if mask[n] and S.node_states[N_NORMAL_MEMORY, n]:
            normal = True
            break
    if not normal:
        dynamic = ZONE_MOVABLE
    return zone >= dynamic


@kernel
def zone_statistics(S, pref_gz, gz, local_nid):
    """zone_statistics: hit/miss against the preferred zone's node, local/other
    against the allocating CPU's node."""
    nid = gz // NZ
    if nid == pref_gz // NZ:
        S.numa_stat[gz, NUMA_HIT] += 1
    else:
        S.numa_stat[gz, NUMA_MISS] += 1
        S.numa_stat[pref_gz, NUMA_FOREIGN] += 1
    if nid == local_nid:
        S.numa_stat[gz, NUMA_LOCAL] += 1
    else:
        S.numa_stat[gz, NUMA_OTHER] += 1


@kernel_inline
def rmqueue(S, pref_gz, gz, order, mt, cpu):
    """rmqueue: pcp for order <= PAGE_ALLOC_COSTLY_ORDER, else the buddy lists."""
    if order <= PAGE_ALLOC_COSTLY_ORDER:
        p = rmqueue_pcplist(S, cpu, gz, order, mt)
    else:
        p, _mode = rmqueue_mode(S, gz, order, mt, RMQUEUE_NORMAL)
    if p >= 0:
        zone_statistics(S, pref_gz, gz, S.cpu_to_node[cpu])
    return p


@kernel_inline
def get_page_from_freelist(S, zl, nid_row, highest, use_mask, mask, order, alloc_flags,
                           mt, cpu, pref_gz):
    """get_page_from_freelist: walk the zonelist, high-wmark probe, wmark check."""
    for i in range(zl.shape[1]):
        gz = zl[nid_row, i]
        if gz < 0:
            break
        if gz % NZ > highest:
            continue
        if use_mask and not mask[gz // NZ]:
            continue
        ok = False
        if (S.zone_flags[gz] & ZONE_BELOW_HIGH) == 0:
            if watermark_fast(S, gz, order, S.wmark[gz, WMARK_HIGH], highest, alloc_flags):
                ok = True
            else:
                S.zone_flags[gz] |= ZONE_BELOW_HIGH
        if not ok:
            mark = S.wmark[gz, alloc_flags & ALLOC_WMARK_MASK]
            if not watermark_fast(S, gz, order, mark, highest, alloc_flags):
                continue
        p = rmqueue(S, pref_gz, gz, order, mt, cpu)
        if p >= 0:
            return p
    return -1


@kernel
def next_node_in(prev, mask):
    n = mask.shape[0]
    for k in range(1, n + 1):
        c = (prev + k) % n
        if mask[c]:
            return c
    return -1


@kernel
def preferred_zone(zl, nid, highest, use_mask, mask):
    """prepare_alloc_pages' preferred zone: the first zone of node ``nid``'s
    zonelist at or below ``highest`` (and in ``mask`` if used); -1 if none."""
    for i in range(zl.shape[1]):
        gz = zl[nid, i]
        if gz < 0:
            break
        if gz % NZ <= highest and (not use_mask or mask[gz // NZ]):
            return gz
    return -1


@kernel_inline
def alloc_pages(S, order, cpu, gfp, mode, nid, mask, il_prev, owner):
    """__alloc_pages under a memory policy (alloc_pages_mpol / policy_nodemask).

    mode: MODE_NODE (alloc_pages_node, ``nid`` explicit), MODE_NODEMASK
    (__alloc_pages(gfp, order, nid, nodemask): ``nid`` preferred, ``mask``
    applied as given, as alloc_migration_target calls it) or an MPOL_* value.
    ``il_prev`` is the task's 1-element interleave cursor.  Returns the head pfn,
    or -1 when no zone can satisfy the request (no reclaim in the model).
    """
    local = np.int64(S.cpu_to_node[cpu])
    thisnode = (gfp & __GFP_THISNODE) != 0
    use_mask = False
    il_target = -1
    if mode == MODE_NODE:
        pref = nid
    elif mode == MODE_NODEMASK:
        pref = nid
        use_mask = True
    elif thisnode or mode in (MPOL_DEFAULT, MPOL_LOCAL):
        pref = local
    elif mode == MPOL_PREFERRED:
        pref = nid
    elif mode == MPOL_BIND:
        pref = local
        use_mask = apply_policy_zone(S, mask, gfp_zone(gfp))
    else:  # MPOL_INTERLEAVE: interleave_nodes()
        pref = next_node_in(il_prev[0], mask)
        if pref < 0:
            pref = local
        else:
            il_prev[0] = pref
            il_target = pref
    highest = gfp_zone(gfp)
    mt = gfp_migratetype(gfp)
    zl = S.zonelist_nofb if thisnode else S.zonelist
    pref_gz = preferred_zone(zl, pref, highest, use_mask, mask)
    if pref_gz < 0:
        S.counters[C_ALLOC_FAIL] += 1
        return -1
    p = get_page_from_freelist(S, zl, pref, highest, use_mask, mask, order, ALLOC_WMARK_LOW,
                               mt, cpu, pref_gz)
    if p < 0:
        # __alloc_pages_slowpath without reclaim: gfp_to_alloc_flags (min
        # watermark, the reserves __GFP_HIGH opens, ALLOC_NON_BLOCK) and a try.
        flags = ALLOC_WMARK_MIN
        if gfp & __GFP_HIGH:
            flags |= ALLOC_MIN_RESERVE
        atomic = (gfp & __GFP_ATOMIC_MODEL) != 0
        if atomic:
            flags |= ALLOC_NON_BLOCK
        p = get_page_from_freelist(S, zl, pref, highest, use_mask, mask, order, flags, mt,
                                   cpu, pref_gz)
        if p < 0 and atomic:
            # !can_direct_reclaim: the "retry:" attempt, then nopage; no drain.
            # Non-blocking __GFP_HIGH clears ALLOC_CPUSET, so that attempt
            # runs with ac->nodemask = NULL (a retry with nothing changed
            # would change nothing: not repeated)
            if (gfp & __GFP_HIGH) and use_mask:
                pref_gz = preferred_zone(zl, pref, highest, False, mask)
                p = get_page_from_freelist(S, zl, pref, highest, False, mask, order, flags,
                                           mt, cpu, pref_gz)
        elif p < 0:
            # a blocking allocation: drain the pcp lists (as
            # __alloc_pages_direct_reclaim does after reclaim) and try again
            drain_all_pages(S, -1)
            p = get_page_from_freelist(S, zl, pref, highest, use_mask, mask, order, flags,
                                       mt, cpu, pref_gz)
    if p < 0:
        S.counters[C_ALLOC_FAIL] += 1
        return -1
    S.page_flags[p] |= PG_head
    if mt == MIGRATE_MOVABLE:
        S.page_flags[p] |= PG_lru
    S.page_order[p] = order
    S.page_owner[p] = owner
    clear_mark(S, p)
    if il_target >= 0 and S.page_nid[p] == il_target:
        S.numa_stat[page_gz(S, p), NUMA_INTERLEAVE_HIT] += 1
    return p


# ---------------------------------------------------------------- layout lookups
@kernel
def ml_range_of(S, pfn):
    """Index of the effective memlayout range holding ``pfn`` (-1 if none),
    through the one-entry cache; counts the RFC's lookup hits and misses."""
    last = S.ml_cache[0]
    if last >= 0 and S.ml_starts[last] <= pfn and pfn <= S.ml_ends[last]:
        S.counters[C_LOOKUP_HITS] += 1
        return last
    S.counters[C_LOOKUP_MISSES] += 1
    i = ml_range_nocache(S, pfn)
    if i >= 0:
        S.ml_cache[0] = i
    return i


@kernel
def chunk_order(p, run_end, max_order):
    """Largest order o <= max_order with p aligned to 2**o and p + 2**o <= run_end."""
    o = 0
    while o < max_order:
        n = np.int64(1) << (o + 1)
        if (p & (n - 1)) != 0 or p + n > run_end:
            break
        o += 1
    return o


@kernel_inline
def rehome_block(S, pfn, nr, new_nid, managed):
    """Give ``nr`` pages at ``pfn`` (one section) to ``new_nid``, same zone index."""
    old_gz = page_gz(S, pfn)
    new_gz = np.int64(new_nid) * NZ + np.int64(S.page_zone[pfn])
    S.page_nid[pfn:pfn + nr] = new_nid
    move_present(S, pfn, nr, old_gz, new_gz, managed)


@kernel
def free_to_targets(S, h, end, count_lookups):
    """Free [h, end) in maximal aligned chunks, each straight to the buddy
    lists (free_one_page) of the zone of its layout node, re-homing chunks
    whose node changes; ``count_lookups``: through the lookup cache, counted
    (a free), or not (a transplant).  Returns (pages re-homed, 1 if the
    block had to be split)."""
    return free_to_targets_inline(S, h, end, count_lookups)


@kernel_inline
def free_to_targets_inline(S, h, end, count_lookups):
    """:func:`free_to_targets`, inlined into its caller (the commit's walk)."""
    max_order = S.params[P_MAX_ORDER]
    moved = 0
    split = 0
    p = h
    while p < end:
        i = ml_range_of(S, p) if count_lookups else ml_range_nocache(S, p)
        if i >= 0:
            run_end = min(end, S.ml_ends[i] + 1)
            t = np.int64(S.ml_nids[i])
        else:  # not covered (a hole): page by page
            run_end = p + 1
            t = -1
        if p != h or run_end != end:
            split = 1
        while p < run_end:
            co = chunk_order(p, run_end, max_order)
            n = np.int64(1) << co
            if t >= 0 and t != S.page_nid[p]:
                rehome_block(S, p, n, t, True)
                moved += n
            split_large_buddy(S, p, co, page_gz(S, p), False)
            p += n
    return moved, split


@kernel_inline
def free_pages(S, pfn, order, cpu):
    """__free_pages: returns 0, or ERR_BAD_FREE when ``pfn`` is not the head of
    an allocated block of that order.

    A page carrying the LookupNode mark is looked up in the installed memlayout
    and freed straight to its new node's buddy lists (free_one_page, no pcp
    list, as the RFC's hooks do), split at range boundaries (the RFC moves
    the whole block to its head's node; the model cuts it where the layout
    does), its mark cleared and the move counted (the RFC's
    dnuma_prior_free_to_new_zone).
    """
    if pfn < 0 or pfn >= S.params[P_MAX_PFN] or order < 0 or order > S.params[P_MAX_ORDER]:
        return ERR_BAD_FREE
    if (S.page_flags[pfn] & PG_head) == 0 or S.page_order[pfn] != order:
        return ERR_BAD_FREE
    free_pages_prepare(S, pfn)
    if not test_mark(S, pfn):
        free_to_zone(S, pfn, order, cpu, True)
        return 0
    clear_mark(S, pfn)
    # the RFC's hooks (free_hot_cold_page, __free_pages_ok) free a page whose
    # node changed with free_one_page into the destination zone: no pcp list
    moved, _split = free_to_targets(S, pfn, pfn + (np.int64(1) << order), True)
    S.counters[C_MOVED_ON_FREE] += moved
    return 0
