"""Invariant checks that walk linked lists, compiled.  Each returns an error
code (0 = fine) and the pfn and list where it was found."""

from __future__ import annotations

import numpy as np

from ._jit import kernel
from .consts import MIGRATE_PCPTYPES, NR_PCP_LISTS, NZ, PG_buddy, PG_pcp
from .state import P_PB_ORDER

E_OK = 0
E_NOT_BUDDY = 1  # a pfn on a free list lacks PageBuddy
E_WRONG_ORDER = 2  # its order is not the list's
E_WRONG_ZONE = 3  # it belongs to another zone
E_WRONG_MT = 4  # its pageblock type is not the list's
E_COUNT = 5  # nr_free disagrees with the list length
E_BROKEN_LINK = 6  # prev/next pointers disagree, or a cycle
E_NOT_PCP = 7  # a pfn on a pcp list lacks the pcp mark or has a bad order
E_PCP_COUNT = 8  # pcp->count disagrees with the lists
E_UNLISTED = 9  # PageBuddy/pcp heads that are on no list


@kernel
def _walk_list(S, p, tail, gz, order, mt, flag, e_flag, e_order, limit):
    """Walk one list from its head ``p``: links, ``flag`` and ``order`` of
    each block, its zone ``gz`` and (``mt`` >= 0) its pageblock type.
    Returns (code, pfn, blocks, pages); ``e_flag``/``e_order`` are the codes
    for a block without ``flag`` or of another order."""
    pbo = S.params[P_PB_ORDER]
    prev = -1
    n = 0
    pages = 0
    while p >= 0:
        if S.lru_prev[p] != prev or n > limit:
            return E_BROKEN_LINK, p, n, pages
        if (S.page_flags[p] & flag) == 0:
            return e_flag, p, n, pages
        if S.page_order[p] != order:
            return e_order, p, n, pages
        if np.int64(S.page_nid[p]) * NZ + S.page_zone[p] != gz:
            return E_WRONG_ZONE, p, n, pages
        if mt >= 0 and S.pb_mt[p >> pbo] != mt:
            return E_WRONG_MT, p, n, pages
        n += 1
        pages += np.int64(1) << order
        prev = p
        p = S.lru_next[p]
    if prev != tail:
        return E_BROKEN_LINK, prev, n, pages
    return E_OK, -1, n, pages


@kernel
def check_lists(S):
    """Walk every free list and pcp list.  Returns (code, pfn, gz, order, mt_or_cpu)."""
    ngz = S.free_head.shape[0]
    no = S.free_head.shape[1]
    nmt = S.free_head.shape[2]
    limit = S.page_flags.shape[0]
    listed = 0
    for gz in range(ngz):
        for o in range(no):
            for mt in range(nmt):
                code, p, n, _pages = _walk_list(S, S.free_head[gz, o, mt], S.free_tail[gz, o, mt],
                                                gz, o, mt, PG_buddy, E_NOT_BUDDY,
                                                E_WRONG_ORDER, limit)
                if code != E_OK:
                    return code, p, gz, o, mt
                if n != S.free_cnt[gz, o, mt]:
                    return E_COUNT, -1, gz, o, mt
                listed += n
    ncpu = S.pcp_head.shape[0]
    pcp_listed = 0
    for cpu in range(ncpu):
        for gz in range(ngz):
            total = 0
            for pi in range(NR_PCP_LISTS):
                code, p, n, pages = _walk_list(S, S.pcp_head[cpu, gz, pi], S.pcp_tail[cpu, gz, pi],
                                               gz, pi // MIGRATE_PCPTYPES, -1, PG_pcp, E_NOT_PCP,
                                               E_NOT_PCP, limit)
                if code != E_OK:
                    return code, p, gz, pi, cpu
                total += pages
                pcp_listed += n
            if total != S.pcp_count[cpu, gz]:
                return E_PCP_COUNT, -1, gz, -1, cpu
    nb = 0
    npc = 0
    for p in range(limit):
        f = S.page_flags[p]
        if f & PG_buddy:
            nb += 1
        if f & PG_pcp:
            npc += 1
    if nb != listed or npc != pcp_listed:
        return E_UNLISTED, -1, -1, nb - listed, npc - pcp_listed
    return E_OK, -1, -1, -1, -1
