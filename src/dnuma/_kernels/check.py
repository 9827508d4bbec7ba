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
def check_lists(S):
    """Walk every free list and pcp list.  Returns (code, pfn, gz, order, mt_or_cpu)."""
    pbo = S.params[P_PB_ORDER]
    ngz = S.free_head.shape[0]
    no = S.free_head.shape[1]
    nmt = S.free_head.shape[2]
    limit = S.page_flags.shape[0]
    listed = 0
    for gz in range(ngz):
        for o in range(no):
            for mt in range(nmt):
                p = S.free_head[gz, o, mt]
                prev = -1
                n = 0
                while p >= 0:
                    if S.lru_prev[p] != prev or n > limit:
                        return E_BROKEN_LINK, p, gz, o, mt
                    if (S.page_flags[p] & PG_buddy) == 0:
                        return E_NOT_BUDDY, p, gz, o, mt
                    if S.page_order[p] != o:
                        return E_WRONG_ORDER, p, gz, o, mt
                    if np.int64(S.page_nid[p]) * NZ + S.page_zone[p] != gz:
                        return E_WRONG_ZONE, p, gz, o, mt
                    if S.pb_mt[p >> pbo] != mt:
                        return E_WRONG_MT, p, gz, o, mt
                    n += 1
                    prev = p
                    p = S.lru_next[p]
                if prev != S.free_tail[gz, o, mt]:
                    return E_BROKEN_LINK, prev, gz, o, mt
                if n != S.free_cnt[gz, o, mt]:
                    return E_COUNT, -1, gz, o, mt
                listed += n
    ncpu = S.pcp_head.shape[0]
    pcp_listed = 0
    for cpu in range(ncpu):
        for gz in range(ngz):
            total = 0
            for pi in range(NR_PCP_LISTS):
                p = S.pcp_head[cpu, gz, pi]
                prev = -1
                n = 0
                while p >= 0:
                    if S.lru_prev[p] != prev or n > limit:
                        return E_BROKEN_LINK, p, gz, pi, cpu
                    if (S.page_flags[p] & PG_pcp) == 0 or S.page_order[p] != pi // MIGRATE_PCPTYPES:
                        return E_NOT_PCP, p, gz, pi, cpu
                    if np.int64(S.page_nid[p]) * NZ + S.page_zone[p] != gz:
                        return E_WRONG_ZONE, p, gz, pi, cpu
                    total += np.int64(1) << S.page_order[p]
                    n += 1
                    prev = p
                    p = S.lru_next[p]
                if prev != S.pcp_tail[cpu, gz, pi]:
                    return E_BROKEN_LINK, prev, gz, pi, cpu
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
