"""Allocator and free paths the audit found off the kernel's (or the RFC's):
the non-blocking slowpath (no drain, nodemask dropped for __GFP_HIGH),
split_large_buddy, redirected frees straight to the buddy lists, the pcp
reset of emptied zones and the stored vmstat threshold."""

from __future__ import annotations

import re

import numpy as np

from dnuma._kernels import state as _st
from dnuma.io.procfs import zoneinfo
from dnuma.io.snapshot import load_snapshot, save_snapshot
from dnuma.mm.constants import (
    __GFP_ATOMIC_MODEL,
    GFP_ATOMIC,
    GFP_KERNEL,
    MAX_NR_ZONES,
    MIGRATE_RECLAIMABLE,
    MIGRATE_UNMOVABLE,
    ZONE_DMA32,
    PG_buddy,
)
from dnuma.mm.machine import boot
from dnuma.mm.memlayout import MemLayout
from dnuma.mm.page_alloc import MemPolicy, calculate_normal_threshold
from dnuma.mm.validate import validate_all


def _exhaust(m, cpu, **kw):
    """Allocate order-0 pages until the allocator says no; their pfns."""
    got = []
    while (p := m.alloc_pages(0, cpu=cpu, **kw)) is not None:
        got.append(p)
    return got


# ---------------------------------------------------------------- A5
def test_non_blocking_allocations_do_not_drain_the_pcp_lists():
    """__alloc_pages_slowpath: a caller that cannot reclaim goes to nopage
    after the retry attempt; only direct reclaim drains the pcp lists."""
    m = boot(nodes=1, mem="16M", cpus=2)
    got = _exhaust(m, 0)
    assert m.pages_on_pcp() == 0  # the failing blocking allocation drained
    for p in got[:2]:
        m.free_pages(p, 0, cpu=1)
    assert m.pages_on_pcp() == 2
    assert m.alloc_pages(0, cpu=0, gfp=__GFP_ATOMIC_MODEL) is None  # GFP_NOWAIT-like
    assert m.pages_on_pcp() == 2
    m.alloc_pages(0, cpu=0, gfp=GFP_KERNEL)  # can reclaim: drains, then tries again
    assert int(m.S.pcp_count[1].sum()) == 0  # CPU 1's pages went back
    validate_all(m)


def test_gfp_atomic_drops_the_bind_nodemask_on_the_retry():
    """gfp_to_alloc_flags clears ALLOC_CPUSET for non-blocking __GFP_HIGH,
    and the slowpath's retry then runs with ac->nodemask = NULL: a bound
    GFP_ATOMIC allocation takes another node's page rather than fail."""
    m = boot(nodes=2, mem="64M", cpus=2)
    bind1 = MemPolicy("bind", [1])
    nids = [int(m.S.page_nid[p]) for p in _exhaust(m, 0, gfp=GFP_ATOMIC, policy=bind1)]
    assert nids[0] == 1 and nids[-1] == 0  # node 1 ran out, then node 0 served
    assert nids.count(0) > 1000
    validate_all(m)


# ---------------------------------------------------------------- A4
def test_a_block_above_pageblock_order_frees_pageblock_by_pageblock():
    """free_one_page -> split_large_buddy: each pageblock is freed under its
    own migratetype; __free_one_page merges them, retagging the buddy."""
    m = boot(nodes=1, mem="16M", cpus=1)
    p = m.alloc_pages(10, cpu=0, gfp=GFP_KERNEL)
    assert p is not None
    pbo = m.profile.pageblock_order
    first, second = p >> pbo, (p >> pbo) + 1
    assert m.S.pb_mt[first] == m.S.pb_mt[second] == MIGRATE_UNMOVABLE
    m.S.pb_mt[second] = MIGRATE_RECLAIMABLE  # as a host import can leave them
    m.free_pages(p, 10, cpu=0)
    validate_all(m)
    # the second pageblock merged onto the first, which took its type
    assert m.S.pb_mt[first] == m.S.pb_mt[second] == MIGRATE_RECLAIMABLE
    assert m.S.page_flags[p] & PG_buddy and m.S.page_order[p] == 10
    assert m.zone(0, 0).nr_free_by_type()[10, MIGRATE_RECLAIMABLE] == 1


def test_mixed_pageblock_types_stay_consistent_under_churn():
    """The audit's case: alternating pageblock types from an initial state
    (what /proc/kpageflags imports give), then allocations and frees."""
    from dnuma.mm.machine import InitialState, Machine, MachineConfig, state_dims

    cfg = MachineConfig.uniform(1, "16M", 2)
    npb = state_dims(cfg)["pageblock"]
    e = np.zeros(0, dtype=np.int64)
    init = InitialState(e, e, e.astype(np.uint8),
                        pb_mt=np.array([MIGRATE_UNMOVABLE, 1] * (npb // 2), dtype=np.int8))
    m = Machine(cfg, init)
    validate_all(m)
    rng = np.random.default_rng(5)
    live: list[tuple[int, int]] = []
    for _ in range(600):
        if live and rng.random() < 0.45:
            pfn, o = live.pop(int(rng.integers(len(live))))
            m.free_pages(pfn, o, cpu=int(rng.integers(2)))
        else:
            o = int(rng.choice([0, 1, 3, 9, 10]))
            got = m.alloc_pages(o, cpu=int(rng.integers(2)), gfp=int(rng.choice([0, 8])))
            if got is not None:
                live.append((got, o))
    validate_all(m)
    for pfn, o in live:
        m.free_pages(pfn, o, cpu=0)
    validate_all(m)


# ---------------------------------------------------------------- D2
def test_a_marked_page_is_freed_straight_to_the_new_nodes_buddy_lists():
    """The RFC's free_hot_cold_page / __free_pages_ok hooks: a page whose
    node changed goes to free_one_page of the destination zone, no pcp."""
    m = boot(nodes=2, mem="64M", cpus=2)
    pages = [m.alloc_pages(0, cpu=0, nid=0) for _ in range(50)]
    m.commit(MemLayout.push(m.ram_ranges(), 1))
    assert m.pages_on_pcp() == 0 and m.marked_pages() == 50
    for p in pages:
        m.free_pages(p, 0, cpu=0)
    assert m.pages_on_pcp() == 0 and m.moved_on_free == 50
    assert all(int(m.S.page_nid[p]) == 1 for p in pages)
    free = m.free_mask()
    assert all(free[p] for p in pages)
    validate_all(m)


# ---------------------------------------------------------------- A6
def test_a_zone_emptied_and_refilled_gets_a_fresh_pageset():
    """zone_pcp_reset when a zone is left empty, setup_zone_pageset when it
    gets pages again: high, free_count, alloc_factor, flags start at 0."""
    m = boot(nodes=2, mem="128M", cpus=4)
    m.commit(MemLayout.stripe(m.ram_ranges(), [0, 1, 2], 256))
    gz = 2 * MAX_NR_ZONES + ZONE_DMA32
    pages = [m.alloc_pages(0, cpu=c % 4, nid=2) for c in range(400)]
    for i, p in enumerate(pages):
        m.free_pages(p, 0, cpu=i % 4)
    assert m.S.pcp_high[:, gz].any() and m.S.pcp_flags[:, gz].any()
    m.commit(MemLayout.push(m.ram_ranges(), 3))  # node 2 empties
    assert m.S.zone_present[gz] == 0
    m.commit(MemLayout.stripe(m.ram_ranges(), [0, 1, 2], 256))  # and refills
    assert m.S.zone_present[gz] > 0
    for a in (m.S.pcp_high, m.S.pcp_free_count, m.S.pcp_alloc_factor, m.S.pcp_flags,
              m.S.pcp_expire):
        assert not a[:, gz].any()
    assert re.search(r"Node 2, zone\s+DMA32.*?cpu: 0\n\s+count: 0\n\s+high:  0\n",
                     zoneinfo(m), re.S)
    validate_all(m)


# ---------------------------------------------------------------- F3
def test_vm_stats_threshold_is_stored_by_refresh_zone_stat_thresholds(tmp_path):
    """zoneinfo prints the threshold refresh_zone_stat_thresholds stored
    (init_per_zone_wmark_min), not one computed when it prints."""
    m = boot(nodes=2, mem="256M", cpus=4)
    S = m.S
    for gz in np.flatnonzero(S.zone_present).tolist():
        assert S.zone_stat_threshold[gz] == calculate_normal_threshold(
            m, int(S.zone_managed[gz])) > 0
    gz = ZONE_DMA32
    S.zone_stat_threshold[gz] = 77  # what an older refresh would have left
    assert "vm stats threshold: 77" in zoneinfo(m)
    save_snapshot(m, tmp_path / "s.dnuma")
    m2 = load_snapshot(tmp_path / "s.dnuma")
    assert m2.S.zone_stat_threshold[gz] == 77  # a STATE array: saved and restored
    m.commit(MemLayout.push(m.ram_ranges(), 1))  # init_per_zone_wmark_min
    assert S.zone_stat_threshold[gz] == 0  # node 0's zones emptied: boot_zonestats
    one = MAX_NR_ZONES + ZONE_DMA32
    assert S.zone_stat_threshold[one] == calculate_normal_threshold(m, int(S.zone_managed[one]))
    assert _st.STATE_BY_NAME["zone_stat_threshold"].owner == _st.MACHINE
