"""Memory hotplug's per-page loops (mm/memory_hotplug.c offline_pages), compiled.

:mod:`dnuma.mm.memory_hotplug` checks the range and isolates it first; these
walk its pfns.  tests/test_hotplug.py runs each against a plain-Python twin.
"""

from __future__ import annotations

import numpy as np

from ._jit import kernel
from .alloc import alloc_pages
from .buddy import clear_mark, del_from_free_list, free_one_page
from .consts import MIGRATE_ISOLATE, MODE_NODEMASK, NZ, PG_buddy, PG_head, PG_lru, PG_slab
from .state import P_PB_ORDER

#: the page flags a migration target takes from its source (folio_migrate_flags)
MIGRATED_FLAGS = PG_lru | PG_slab


@kernel
def migrate_range(S, start, end, gz, cpu, gfp, mask, il, out, moved_to):
    """do_migrate_range over scan_movable_pages' finds: every allocated block
    (a PG_head) of [start, end), in pfn order, gets a target from
    alloc_migration_target (``gfp``; MODE_NODEMASK, the source's node
    preferred, ``mask`` applied; ``cpu``'s pcp lists) that takes the owner
    and the migrated flags; the source is freed straight to the buddy lists
    of its isolated pageblock (free_unref_page -> free_one_page, pageblock
    by pageblock as split_large_buddy) and leaves NR_FREE_PAGES.

    Adds the pages and blocks migrated to ``out[0]`` and ``out[1]``, and
    writes each migrated head's new head to ``moved_to[head - start]``.
    Returns -1, or the head of the first block no target could be found for
    (the blocks before it stay migrated)."""
    pbo = S.params[P_PB_ORDER]
    nid = gz // NZ
    p = start
    while p < end:
        f = S.page_flags[p]
        if (f & PG_head) == 0:
            p += 1
            continue
        order = np.int64(S.page_order[p])
        owner = np.int64(S.page_owner[p])
        t = alloc_pages(S, order, cpu, gfp, MODE_NODEMASK, nid, mask, il, max(owner, 0))
        if t < 0:
            return p
        S.page_flags[t] |= f & MIGRATED_FLAGS
        S.page_owner[t] = owner
        S.page_flags[p] = f & np.uint8(0xFF ^ (PG_head | MIGRATED_FLAGS))
        S.page_owner[p] = -1
        moved_to[p - start] = t
        clear_mark(S, p)
        n = np.int64(1) << order
        step = min(order, pbo)
        q = p
        while q < p + n:
            free_one_page(S, q, step, gz, MIGRATE_ISOLATE, False)
            q += np.int64(1) << step
        S.zone_free[gz] -= n
        out[0] += n
        out[1] += 1
        p += n
    return -1


@kernel
def take_off_free_lists(S, start, end, gz, mt):
    """__offline_isolated_pages: every free block of [start, end) leaves the
    ``mt`` lists of zone ``gz`` (its PageBuddy cleared).  Returns the pages."""
    total = 0
    p = start
    while p < end:
        if S.page_flags[p] & PG_buddy:
            o = np.int64(S.page_order[p])
            del_from_free_list(S, p, gz, o, mt)
            total += np.int64(1) << o
            p += np.int64(1) << o
        else:
            p += 1
    return total
