"""Migrating the pages a commit left behind: the RFC fixed an allocated page
only when its owner freed it (the mark, redirected on free); migration fixes
the movable ones at once.

A marked page sits in a frame whose layout node is not its node.  Migrating
it is what offlining does to a page (do_migrate_range ->
alloc_migration_target, the source's node preferred): its data is copied to
a free frame (every free frame is on its layout node) and the source is
freed through the DNUMA free path, so its frame joins its layout node.
Unmovable pages (no PG_lru) stay marked until freed.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from .._kernels import hotplug as _khp
from .constants import GFP_HIGHUSER_MOVABLE, N_MEMORY, PG_lru
from .errors import ArgError, check_int

if TYPE_CHECKING:
    from .machine import Machine


@dataclass
class MigrateReport:
    """What one :func:`migrate_misplaced_pages` did: pages and blocks
    migrated, blocks no target could be had for, movable marked pages left."""

    pages_migrated: int = 0
    blocks_migrated: int = 0
    blocks_failed: int = 0
    movable_left: int = 0
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def misplaced_movable_heads(m: Machine) -> np.ndarray:
    """Heads (ascending) of the allocated movable (PG_lru) blocks that carry
    the mark: those a migration can fix."""
    from .machine import mark_heads

    heads = mark_heads(m.S)
    return heads[(m.S.page_flags[heads] & PG_lru) != 0]


def migrate_misplaced_pages(m: Machine, max_pages: int | None = None,
                            cpu: int = 0) -> MigrateReport:
    """Migrate marked movable blocks, in pfn order, until ``max_pages``
    pages have moved (None: all of them), from ``cpu`` (its pcp lists serve
    the targets).  The holders of the blocks hear where they went
    (``m.migration_listeners``, as an offline's migration tells them); the
    zone set-up follows (:meth:`Machine.sync_zones`).  ArgError for a bad
    ``max_pages`` or ``cpu``, before anything changes."""
    t0 = time.perf_counter()
    budget = (1 << 62) if max_pages is None else check_int(
        "max_pages", max_pages, 0, 1 << 62, ArgError, " (pages)")
    cpu = m.check_online_cpu(cpu)
    heads = misplaced_movable_heads(m)
    rep = MigrateReport()
    if heads.size and budget:
        # alloc_migration_target: GFP_USER | __GFP_MOVABLE (| __GFP_HIGHMEM:
        # a target may be in ZONE_MOVABLE), any node with memory
        mask = m.topo.node_states[N_MEMORY].copy()
        il = np.full(1, -1, dtype=np.int64)
        out = np.zeros(3, dtype=np.int64)
        moved_to = np.full(heads.size, -1, dtype=np.int64)
        seen = int(_khp.migrate_misplaced(m.S, heads, cpu, GFP_HIGHUSER_MOVABLE, mask, il,
                                          budget, out, moved_to))
        rep.pages_migrated, rep.blocks_migrated, rep.blocks_failed = (int(x) for x in out)
        idx = np.flatnonzero(moved_to[:seen] >= 0)
        if idx.size:
            for fn in list(m.migration_listeners):
                fn(heads[idx], moved_to[idx])
        m.sync_zones()
    rep.movable_left = int(misplaced_movable_heads(m).size)
    rep.seconds = time.perf_counter() - t0
    return rep


__all__ = ["MigrateReport", "migrate_misplaced_pages", "misplaced_movable_heads"]
