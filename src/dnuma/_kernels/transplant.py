"""The DNUMA commit's page walk, compiled: mark allocated pages whose node
changes, transplant free pages (buddy and per-cpu lists) to their new node's
zone, splitting blocks at range boundaries (mm/dnuma.c of the RFC, done for
every pfn rather than warned about)."""

from __future__ import annotations

import numpy as np

from ._jit import kernel
from .alloc import free_to_targets, ml_range_nocache, rehome_block
from .buddy import (
    del_from_free_list,
    page_gz,
    pcp_del,
)
from .consts import NR_PCP_LISTS, PG_buddy, PG_head, PG_hole, PG_pcp, PG_reserved
from .state import P_MAX_ORDER, P_PB_ORDER

R_MARKED = 0  # pages newly carrying the LookupNode mark
R_UNMARKED = 1  # marks cleared because the page's node is right again
R_FREE_MOVED = 2  # free pages moved off buddy lists
R_PCP_MOVED = 3  # free pages moved off per-cpu lists
R_SPLIT = 4  # free blocks split at a range boundary
R_RESERVED = 5  # reserved pages re-homed in place
NR_R = 8


@kernel
def find_head(S, pfn):
    """Head pfn of the block (free, pcp or allocated) holding ``pfn``, or -1."""
    for o in range(1, S.params[P_MAX_ORDER] + 1):
        h = (pfn >> o) << o
        f = S.page_flags[h]
        if (f & (PG_buddy | PG_pcp | PG_head)) and h + (np.int64(1) << S.page_order[h]) > pfn:
            return h
    return -1


@kernel
def block_target(S, h, n):
    """(uniform nid or -1 if mixed, range index of h) for the block [h, h+n)."""
    i = ml_range_nocache(S, h)
    if i >= 0 and S.ml_ends[i] >= h + n - 1:
        return np.int64(S.ml_nids[i]), i
    return -1, i


@kernel
def release_block(S, h, o, rep, counter):
    """Free a detached block [h, h + 2**o) into its target zones (split at
    range boundaries), counting re-homed pages in ``rep[counter]``."""
    moved, split = free_to_targets(S, h, h + (np.int64(1) << o), 0, False, False)
    rep[counter] += moved
    rep[R_SPLIT] += split


@kernel
def needs_move(S, h, n):
    """True if any page of [h, h+n) has a layout nid other than its own."""
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


@kernel
def transplant_pcp(S, rep):
    """Take every per-cpu page whose node changes off its list and free it
    into its new zone (what drain_all_pages would do, for those pages only)."""
    ncpu = S.pcp_head.shape[0]
    nzones = S.pcp_head.shape[1]
    for cpu in range(ncpu):
        for gz in range(nzones):
            if S.pcp_count[cpu, gz] == 0:
                continue
            for pindex in range(NR_PCP_LISTS):
                p = S.pcp_head[cpu, gz, pindex]
                while p >= 0:
                    nxt = S.lru_next[p]
                    o = np.int64(S.page_order[p])
                    if needs_move(S, p, np.int64(1) << o):
                        pcp_del(S, cpu, gz, pindex, p)
                        S.pcp_count[cpu, gz] -= np.int64(1) << o
                        release_block(S, p, o, rep, R_PCP_MOVED)
                    p = nxt


@kernel
def commit_walk(S, starts, ends, rep):
    """Walk the committed ranges: mark/unmark allocated blocks, re-home
    reserved pages, transplant free buddy blocks.  ``S`` already holds the new
    effective layout.  Counts go to ``rep`` (R_* indices)."""
    pbo = S.params[P_PB_ORDER]
    max_pfn = S.page_flags.shape[0]
    for r in range(starts.shape[0]):
        pfn = starts[r]
        e = min(ends[r], max_pfn - 1)
        while pfn <= e:
            f = S.page_flags[pfn]
            if f & PG_hole:
                pfn += 1
                continue
            if f & PG_reserved:
                i = ml_range_nocache(S, pfn)
                if i >= 0 and S.ml_nids[i] != S.page_nid[pfn]:
                    rehome_block(S, pfn, 1, S.ml_nids[i], False)
                    rep[R_RESERVED] += 1
                pfn += 1
                continue
            h = pfn
            if (f & (PG_buddy | PG_pcp | PG_head)) == 0:
                h = find_head(S, pfn)
                if h < 0:
                    pfn += 1
                    continue
                f = S.page_flags[h]
            o = np.int64(S.page_order[h])
            n = np.int64(1) << o
            if f & PG_buddy:
                if needs_move(S, h, n):
                    gz = page_gz(S, h)
                    del_from_free_list(S, h, gz, o, S.pb_mt[h >> pbo])
                    S.zone_free[gz] -= n
                    release_block(S, h, o, rep, R_FREE_MOVED)
            elif f & PG_head:
                mv = needs_move(S, h, n)
                if mv and S.page_mark[h] == 0:
                    S.page_mark[h] = 1
                    rep[R_MARKED] += n
                elif not mv and S.page_mark[h] != 0:
                    S.page_mark[h] = 0
                    rep[R_UNMARKED] += n
            pfn = h + n
