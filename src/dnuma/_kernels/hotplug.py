"""Page migration's loops, compiled: memory hotplug's (mm/memory_hotplug.c
offline_pages) and DNUMA's eager and background migration (mm.migrate),
both through one target allocation (:func:`migration_target`).

:mod:`dnuma.mm.memory_hotplug` checks the range and isolates it first; these
walk its pfns.  tests/test_hotplug_fast.py and tests/test_migrate.py run each
against a plain-Python twin.
"""

from __future__ import annotations

import numpy as np

from ._jit import kernel
from .alloc import alloc_pages, free_pages
from .buddy import clear_mark, del_from_free_list, free_one_page, test_mark
from .consts import MIGRATE_ISOLATE, MODE_NODEMASK, NZ, PG_buddy, PG_head, PG_lru, PG_slab
from .state import P_PB_ORDER

#: the page flags a migration target takes from its source (folio_migrate_flags)
MIGRATED_FLAGS = PG_lru | PG_slab


@kernel
def migration_target(S, p, cpu, gfp, nid, mask, il):
    """alloc_migration_target for the allocated block at ``p``: a block of
    its order (``gfp``, MODE_NODEMASK with ``nid`` preferred and ``mask``
    applied, ``cpu``'s pcp lists) that takes its owner and migrated flags
    (folio_migrate_flags).  Returns the target's head, or -1."""
    order = np.int64(S.page_order[p])
    owner = np.int64(S.page_owner[p])
    t = alloc_pages(S, order, cpu, gfp, MODE_NODEMASK, nid, mask, il, max(owner, 0))
    if t >= 0:
        S.page_flags[t] |= S.page_flags[p] & MIGRATED_FLAGS
        S.page_owner[t] = owner
    return t


@kernel
def migrate_misplaced(S, heads, cpu, gfp, mask, il, budget, out, moved_to):
    """DNUMA's eager and background migration: each of ``heads`` (block
    heads, ascending) that is still allocated, PG_lru (movable) and marked
    (its layout node is not its node) is migrated: a target from
    :func:`migration_target` (its node preferred: the owner's data goes back
    where it was allocated if that node still has memory), then the source
    freed through the DNUMA free path, so its frame joins its layout node.
    Stops once ``budget`` pages have moved.

    Adds pages, blocks and blocks without a target to ``out[0..2]``, writes
    each migrated head's new head to ``moved_to[i]``; returns the index of
    the first head not looked at."""
    i = 0
    n = heads.size
    while i < n and out[0] < budget:
        p = heads[i]
        f = S.page_flags[p]
        if (f & PG_head) != 0 and (f & PG_lru) != 0 and test_mark(S, p):
            order = np.int64(S.page_order[p])
            t = migration_target(S, p, cpu, gfp, np.int64(S.page_nid[p]), mask, il)
            if t < 0:
                out[2] += 1
            else:
                free_pages(S, p, order, cpu)
                moved_to[i] = t
                out[0] += np.int64(1) << order
                out[1] += 1
        i += 1
    return i


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
        t = migration_target(S, p, cpu, gfp, nid, mask, il)
        if t < 0:
            return p
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
