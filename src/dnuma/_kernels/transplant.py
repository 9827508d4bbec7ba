"""The DNUMA commit's page walk, compiled: mark allocated pages whose node
changes, transplant free buddy blocks to their new node's zone, splitting
blocks at range boundaries (mm/dnuma.c of the RFC, done for every pfn rather
than warned about); then drain every per-cpu list, redirecting the pages
whose node changes (:func:`drain_all_pages_dnuma`, memlayout_commit's last
step).

The walk visits each committed range's blocks in pfn order.  Inside a range
that one effective-layout range covers (every range of a commit: the
effective layout holds the committed ranges as they are), the target node is
known, so a block wholly inside the range needs moving iff its node differs;
and a run of allocated blocks (no free, per-cpu, reserved or hole pfn between)
is marked a bitmap byte (8 pfns) at a time when its section holds one node's
pages only (``sec_present``).  Marking is independent of the free-page
transplant (it reads only allocated pages, whose node a commit never
changes), so the result is exactly that of visiting every block in turn.
A committed range that is 8-aligned and inside one such section has all its
marks set (or cleared) in one pass over its flags first, then only its free,
per-cpu, reserved and hole pfns are visited (:func:`walk_range_bulk`).  Free
blocks ahead of the walk get prefetch hints (:func:`prefetch_ahead`).

All helpers are inlined into :func:`commit_walk` and :func:`drain_all_pages_dnuma`:
a real call would pass the KState bundle by value (see ``_jit``).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ._jit import kernel, kernel_inline, prefetch
from .alloc import free_to_targets_inline, rehome_block
from .buddy import (
    block_head,
    clear_mark,
    del_from_free_list,
    drain_pages_chunk,
    ml_range_nocache,
    needs_move,
    page_gz,
    set_mark,
    test_mark,
)
from .consts import NZ, PG_buddy, PG_head, PG_hole, PG_pcp, PG_reserved
from .state import P_PB_ORDER, P_SECTION_SHIFT


class WalkCounts(NamedTuple):
    """What commit_walk and drain_all_pages_dnuma did (an int64 array of these is
    their ``rep``), in pages unless said otherwise."""

    marked: int  # pages newly carrying the LookupNode mark
    unmarked: int  # marks cleared because the page's node is right again
    free_moved: int  # free pages moved off buddy lists
    pcp_moved: int  # per-cpu pages redirected to a new node as they drained
    split: int  # free blocks split at a range boundary (blocks)
    reserved: int  # reserved pages re-homed in place
    pcp_drained: int  # pages drain_all_pages took off the per-cpu lists


(R_MARKED, R_UNMARKED, R_FREE_MOVED, R_PCP_MOVED, R_SPLIT, R_RESERVED,
 R_PCP_DRAINED) = range(
    len(WalkCounts._fields))
NR_R = len(WalkCounts._fields)

# pfns a run of allocated blocks stops at
_SPECIAL = PG_buddy | PG_pcp | PG_reserved | PG_hole
_BYTES = np.uint64(0x0101010101010101)
_SPECIAL8 = np.uint64(_SPECIAL * 0x0101010101010101)
# (flags word >> log2(PG_head)) & _BYTES, times _GATHER, >> 56: the PG_head bit
# of each of 8 flags bytes, packed into one byte (pfn k -> bit k)
_GATHER = np.uint64(0x0102040810204080)
_HEAD_SHIFT = np.uint64(2)  # log2(PG_head)
_U56 = np.uint64(56)


@kernel_inline
def release_block(S, h, o, rep, counter):
    """Free a detached block [h, h + 2**o) into its target zones (split at
    range boundaries), counting re-homed pages in ``rep[counter]``."""
    moved, split = free_to_targets_inline(S, h, h + (np.int64(1) << o), False)
    rep[counter] += moved
    rep[R_SPLIT] += split


@kernel_inline
def mark_block(S, h, n, mv, rep):
    """Set or clear the LookupNode mark of the allocated block [h, h+n)."""
    mk = test_mark(S, h)
    if mv and not mk:
        set_mark(S, h)
        rep[R_MARKED] += n
    elif not mv and mk:
        clear_mark(S, h)
        rep[R_UNMARKED] += n


@kernel_inline
def move_free_block_inline(S, h, o, rep):
    """Take the buddy block [h, h + 2**o) off its free list and free it into
    its target zones."""
    gz = page_gz(S, h)
    del_from_free_list(S, h, gz, o, S.pb_mt[h >> S.params[P_PB_ORDER]])
    S.zone_free[gz] -= np.int64(1) << o
    release_block(S, h, o, rep, R_FREE_MOVED)


# The transplant (free_to_targets, free_one_page, all inlined) is the biggest
# body of the walk: inlined once, where most free blocks move (the bulk walk),
# and called everywhere else, numba compiles it twice instead of five times
# (commit_walk: ~35 s of compilation instead of ~100 s).
@kernel
def move_free_block(S, h, o, rep):
    """:func:`move_free_block_inline` as a call."""
    move_free_block_inline(S, h, o, rep)


@kernel_inline
def free_block_moves(S, pfn, e, t):
    """The free block at ``pfn`` in a range [.., e] whose target node is
    ``t``: (its order, whether it moves: a block inside the range moves iff
    its node is not the target; one wider than the range is looked up)."""
    o = np.int64(S.page_order[pfn])
    n = np.int64(1) << o
    return o, (S.page_nid[pfn] != t if pfn + n - 1 <= e else needs_move(S, pfn, n))


@kernel_inline
def free_block_step(S, pfn, e, t, rep):
    """Move the free block at ``pfn`` if it must (:func:`free_block_moves`);
    returns the pfn after it."""
    o, mv = free_block_moves(S, pfn, e, t)
    if mv:
        move_free_block(S, pfn, o, rep)
    return pfn + (np.int64(1) << o)


@kernel
def drain_all_pages_dnuma(S, rep):
    """The commit's last step, drain_all_pages(NULL) (memlayout_commit in
    every RFC version): every CPU's pcp lists emptied into the buddy lists,
    batch << PCP_BATCH_SCALE_MAX pages at a time (drain_pages_zone), through
    the RFC's free_pcppages_bulk hook: a block whose node changes is set
    aside and, after the chunk, freed into its new node's zone, split at
    range boundaries (the hook's need_move list, newest first).  Counts the
    pages drained (R_PCP_DRAINED) and redirected (R_PCP_MOVED)."""
    ncpu = S.pcp_count.shape[0]
    nzones = S.pcp_count.shape[1]
    for cpu in range(ncpu):
        for gz in range(nzones):
            while S.pcp_count[cpu, gz] > 0:
                c = S.pcp_count[cpu, gz]
                p = drain_pages_chunk(S, cpu, gz, True)
                rep[R_PCP_DRAINED] += c - S.pcp_count[cpu, gz]
                while p >= 0:
                    nxt = S.lru_next[p]
                    S.lru_next[p] = -1
                    release_block(S, p, np.int64(S.page_order[p]), rep, R_PCP_MOVED)
                    p = nxt


@kernel_inline
def walk_step(S, pfn, rep):
    """One step of the walk at ``pfn`` for any layout: the block there (or
    the one holding it) marked or transplanted; returns the next pfn."""
    f = S.page_flags[pfn]
    if f & PG_hole:
        return pfn + 1
    if f & PG_reserved:
        i = ml_range_nocache(S, pfn)
        if i >= 0 and S.ml_nids[i] != S.page_nid[pfn]:
            rehome_block(S, pfn, 1, S.ml_nids[i], False)
            rep[R_RESERVED] += 1
        return pfn + 1
    h = pfn
    if (f & (PG_buddy | PG_pcp | PG_head)) == 0:
        h = block_head(S, pfn)
        if h < 0:
            return pfn + 1
        f = S.page_flags[h]
    o = np.int64(S.page_order[h])
    n = np.int64(1) << o
    if f & PG_buddy:
        if needs_move(S, h, n):
            move_free_block(S, h, o, rep)
    elif f & PG_head:
        mark_block(S, h, n, needs_move(S, h, n), rep)
    return h + n


@kernel_inline
def section_nid(S, sec):
    """The node of every present page of section ``sec`` if there is one
    (``sec_present`` counts pages by zone), else -1."""
    u = -1
    for gz in range(S.sec_present.shape[1]):
        if S.sec_present[sec, gz] != 0:
            nd = gz // NZ
            if u < 0:
                u = nd
            elif nd != u:
                return -1
    return u


@kernel_inline
def next_special(S, lo, hi):
    """The first pfn in [lo, hi] that is free, per-cpu, reserved or a hole
    (by its flags), or hi + 1.  The flags array's length is a multiple of 8."""
    p = lo
    while p <= hi and (p & 7) != 0:
        if S.page_flags[p] & _SPECIAL:
            return p
        p += 1
    words = S.page_flags.view(np.uint64)
    while p + 7 <= hi:
        if words[p >> 3] & _SPECIAL8:
            break
        p += 8
    while p <= hi:
        if S.page_flags[p] & _SPECIAL:
            return p
        p += 1
    return hi + 1


@kernel_inline
def byte_span(a, b, k):
    """The bits of bitmap byte ``k`` (pfns 8k..8k+7) that lie in [a, b]."""
    lo = max(a - (k << 3), 0)
    hi = min(b - (k << 3), 7)
    return ((1 << (hi + 1)) - (1 << lo)) & 0xFF


@kernel_inline
def mark_run(S, a, b, t, u, rep):
    """Marks of the allocated blocks tiling [a, b] exactly, all inside one
    committed range whose target is ``t``; ``u`` the node of all their pages
    (>= 0) or -1 (not known: block by block)."""
    if u < 0:
        p = a
        while p <= b:
            n = np.int64(1) << S.page_order[p]
            mark_block(S, p, n, S.page_nid[p] != t, rep)
            p += n
        return
    words = S.page_flags.view(np.uint64)
    if u == t:
        # every block stays: clear any mark
        for k in range(a >> 3, (b >> 3) + 1):
            old = np.int64(S.page_mark[k]) & byte_span(a, b, k)
            if old != 0:
                for j in range(8):
                    if (old >> j) & 1:
                        rep[R_UNMARKED] += np.int64(1) << S.page_order[(k << 3) + j]
                S.page_mark[k] &= np.uint8(~old & 0xFF)
        return
    # every block moves: mark every head (the blocks tile [a, b])
    marked = b - a + 1
    for k in range(a >> 3, (b >> 3) + 1):
        em = byte_span(a, b, k)
        heads = np.int64((((words[k] >> _HEAD_SHIFT) & _BYTES) * _GATHER) >> _U56)
        old = np.int64(S.page_mark[k])
        if old & em:
            for j in range(8):
                if (old & em) >> j & 1:
                    marked -= np.int64(1) << S.page_order[(k << 3) + j]
        S.page_mark[k] = np.uint8((old & ~em) | (heads & em))
    rep[R_MARKED] += marked


_FLAG8 = np.uint64((_SPECIAL | PG_head) * 0x0101010101010101)


@kernel_inline
def last_flagged(S, s, e):
    """The last pfn in [s, e] that is an allocated head or special (by its
    flags), or -1; s and e + 1 are multiples of 8."""
    words = S.page_flags.view(np.uint64)
    k = e >> 3
    while k >= (s >> 3):
        if words[k] & _FLAG8:
            p = (k << 3) + 7
            while (S.page_flags[p] & (_SPECIAL | PG_head)) == 0:
                p -= 1
            return p
        k -= 1
    return -1


@kernel_inline
def walk_range_bulk(S, s, e, t, u, rep, pf, pf2):
    """The walk over [s, e] (8-aligned, in one section whose pages are all
    on node ``u``, inside one committed range with target ``t``): the marks
    of every allocated block with its head inside are set (u != t) or
    cleared (u == t) in one pass over the flags, then only free, per-cpu,
    reserved and hole pfns are visited.  Returns False (nothing changed) if
    a mark lies on a pfn that is not an allocated head (the per-run walk
    handles that), and the :func:`prefetch_ahead` cursors."""
    k0 = s >> 3
    k1 = e >> 3
    words = S.page_flags.view(np.uint64)
    anyold = 0
    for k in range(k0, k1 + 1):
        anyold |= np.int64(S.page_mark[k])
    if anyold != 0:
        for k in range(k0, k1 + 1):
            heads = np.int64((((words[k] >> _HEAD_SHIFT) & _BYTES) * _GATHER) >> _U56)
            if np.int64(S.page_mark[k]) & ~heads & 0xFF:
                return False, pf, pf2
    # an allocated block with its head inside that sticks out past e
    x = last_flagged(S, s, e)
    xn = np.int64(0)
    if x >= 0 and (S.page_flags[x] & PG_head):
        xn = np.int64(1) << S.page_order[x]
        if x + xn - 1 <= e:
            x = -1
    else:
        x = -1
    xk = x >> 3 if x >= 0 else -1
    xbit = np.int64(1) << (x & 7) if x >= 0 else np.int64(0)
    adj = np.int64(0)
    if u != t:
        for k in range(k0, k1 + 1):
            heads = np.int64((((words[k] >> _HEAD_SHIFT) & _BYTES) * _GATHER) >> _U56)
            if k == xk:
                heads &= ~xbit
            old = np.int64(S.page_mark[k])
            if old & heads:
                for j in range(8):
                    if (old & heads) >> j & 1:
                        adj += np.int64(1) << S.page_order[(k << 3) + j]
            S.page_mark[k] = np.uint8(old | heads)
    elif anyold != 0:
        for k in range(k0, k1 + 1):
            old = np.int64(S.page_mark[k])
            if old != 0:
                heads = np.int64((((words[k] >> _HEAD_SHIFT) & _BYTES) * _GATHER) >> _U56)
                if k == xk:
                    heads &= ~xbit
                clr = old & heads
                if clr:
                    for j in range(8):
                        if (clr >> j) & 1:
                            adj += np.int64(1) << S.page_order[(k << 3) + j]
                    S.page_mark[k] = np.uint8(old & ~clr)
    if x >= 0:
        mark_block(S, x, xn, needs_move(S, x, xn), rep)
    # the free, per-cpu, reserved and hole pfns, in order
    run = np.int64(0)
    pfn = s
    while pfn <= e:
        f = S.page_flags[pfn]
        if f & PG_head:
            q = next_special(S, pfn + 1, e)
            if q <= e:
                run += q - pfn
                pfn = q
            elif x >= pfn:
                run += x - pfn
                pfn = x + xn
            else:
                run += e + 1 - pfn
                pfn = e + 1
        elif f & PG_buddy:
            pf, pf2 = prefetch_ahead(S, pf, pf2, pfn)
            o, mv = free_block_moves(S, pfn, e, t)
            if mv:
                move_free_block_inline(S, pfn, o, rep)
            pfn += np.int64(1) << o
        else:
            pfn = walk_step(S, pfn, rep)
    if u != t:
        rep[R_MARKED] += run - adj
    else:
        rep[R_UNMARKED] += adj
    return True, pf, pf2


_BUDDY8 = np.uint64(PG_buddy * 0x0101010101010101)
# how far ahead of the walk (in pfns) free blocks' pages and free-list links
# are prefetched, and their list neighbours' links
_PF_AHEAD = 8192
_PF_NBRS = 4096


@kernel_inline
def prefetch_ahead(S, pf, pf2, pfn):
    """Prefetch hints (no effect on results) for the free blocks ahead of the
    walk at ``pfn``: their order, node, zone and list links up to
    ``_PF_AHEAD`` pfns ahead (cursor ``pf``), then their list neighbours'
    links and their buddies' order, node and zone up to ``_PF_NBRS`` ahead
    (cursor ``pf2``; the walk unlinks and merges them).
    Returns the cursors moved on."""
    nw = S.page_flags.shape[0] >> 3
    pf = prefetch_buddies(S, max(pf, pfn) >> 3, min((pfn + _PF_AHEAD) >> 3, nw), False)
    pf2 = prefetch_buddies(S, max(pf2, pfn) >> 3, min((pfn + _PF_NBRS) >> 3, nw), True)
    return pf, pf2


@kernel_inline
def prefetch_buddies(S, k, kend, nbrs):
    """Prefetch hints for the buddy pfns of flags words [k, kend) (8 pfns a
    word): their order, node, zone and next link, or (``nbrs``) their list
    neighbours' links and their buddies' order, node and zone.  Returns the
    first pfn after them."""
    words = S.page_flags.view(np.uint64)
    while k < kend:
        w = words[k]
        if w & _BUDDY8:
            for j in range(8):
                if (w >> np.uint64(8 * j)) & np.uint64(PG_buddy):
                    p = (k << 3) + j
                    if not nbrs:
                        prefetch(S.page_order, p)
                        prefetch(S.page_nid, p)
                        prefetch(S.page_zone, p)
                        prefetch(S.lru_next, p)
                        continue
                    nx = S.lru_next[p]
                    pv = S.lru_prev[p]
                    if nx >= 0:
                        prefetch(S.lru_prev, nx)
                    if pv >= 0:
                        prefetch(S.lru_next, pv)
                    b = p ^ (np.int64(1) << S.page_order[p])
                    if b < words.shape[0] << 3:
                        prefetch(S.page_order, b)
                        prefetch(S.page_nid, b)
                        prefetch(S.page_zone, b)
        k += 1
    return k << 3


@kernel_inline
def walk_range_known(S, s, e, t, rep, csec, cu, pf, pf2):
    """The walk over [s, e], a range wholly inside one effective-layout range
    with target node ``t``.  (csec, cu): the last section seen and its
    :func:`section_nid`, carried from range to range, and (pf, pf2), the
    :func:`prefetch_ahead` cursors; returned updated."""
    shift = S.params[P_SECTION_SHIFT]
    sec = s >> shift
    if sec != csec:
        csec = sec
        cu = section_nid(S, sec)
    if cu >= 0 and (e >> shift) == sec and (s & 7) == 0 and (e & 7) == 7:
        done, pf, pf2 = walk_range_bulk(S, s, e, t, cu, rep, pf, pf2)
        if done:
            return csec, cu, pf, pf2
    pfn = s
    while pfn <= e:
        sec = pfn >> shift
        if sec != csec:
            # Looked up on entering the section (ranges ascend: before any of
            # its free pages moved).  A node found stays right for its
            # allocated pages: a commit never changes their node.
            csec = sec
            cu = section_nid(S, sec)
        f = S.page_flags[pfn]
        if f & PG_head:
            # a run of allocated blocks, up to the next special pfn
            q = next_special(S, pfn + 1, e)
            if q <= e:
                last = q - 1
                nxt = q
            else:
                h = e
                while (S.page_flags[h] & PG_head) == 0:
                    h -= 1
                n = np.int64(1) << S.page_order[h]
                if h + n - 1 > e:  # the last block sticks out of the range
                    mark_block(S, h, n, needs_move(S, h, n), rep)
                    last = h - 1
                    nxt = h + n
                else:
                    last = e
                    nxt = e + 1
            if last >= pfn:
                u = cu if (last >> shift) == sec else -1
                mark_run(S, pfn, last, t, u, rep)
            pfn = nxt
        elif f & PG_buddy:
            pfn = free_block_step(S, pfn, e, t, rep)
        else:
            pfn = walk_step(S, pfn, rep)
    return csec, cu, pf, pf2


@kernel
def commit_walk(S, starts, ends, rep):
    """Walk the committed ranges: mark/unmark allocated blocks, re-home
    reserved pages, transplant free buddy blocks.  ``S`` already holds the new
    effective layout.  Counts go to ``rep`` (R_* indices)."""
    max_pfn = S.page_flags.shape[0]
    fast = (max_pfn & 7) == 0
    csec = -1
    cu = -1
    pf = 0
    pf2 = 0
    for r in range(starts.shape[0]):
        pfn = starts[r]
        e = min(ends[r], max_pfn - 1)
        if pfn > e:
            continue
        if fast:
            pf, pf2 = prefetch_ahead(S, pf, pf2, pfn)
        i = ml_range_nocache(S, pfn)
        if fast and i >= 0 and S.ml_starts[i] <= pfn and S.ml_ends[i] >= e:
            csec, cu, pf, pf2 = walk_range_known(S, pfn, e, np.int64(S.ml_nids[i]), rep,
                                                 csec, cu, pf, pf2)
        else:
            while pfn <= e:
                pfn = walk_step(S, pfn, rep)
