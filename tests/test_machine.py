"""Boot, the allocator's public paths, policies and numastat."""

from __future__ import annotations

import math

import numpy as np
import pytest

from dnuma._kernels import state as _st
from dnuma.mm.constants import (
    __GFP_DMA,
    __GFP_THISNODE,
    GFP_HIGHUSER_MOVABLE,
    N_CPU,
    N_MEMORY,
    N_NORMAL_MEMORY,
    N_ONLINE,
    PPC64,
    ZONE_DMA,
    ZONE_DMA32,
    ZONE_NORMAL,
)
from dnuma.mm.errors import AllocArgError, BadFreeError, ConfigError
from dnuma.mm.machine import Machine, MachineConfig, boot, parse_size
from dnuma.mm.memlayout import MemLayout
from dnuma.mm.page_alloc import MemPolicy, zone_batchsize
from dnuma.mm.validate import validate_all


def test_boot_zones_and_counts(m128):
    m = m128
    z = m.zone(0, ZONE_DMA)
    assert (z.zone_start_pfn, z.spanned_pages, z.present_pages) == (0, 4096, 4096)
    z = m.zone(0, ZONE_DMA32)
    assert (z.zone_start_pfn, z.spanned_pages) == (4096, 12288)
    z = m.zone(1, ZONE_DMA32)
    assert (z.zone_start_pfn, z.spanned_pages, z.managed_pages) == (16384, 16384, 16384)
    assert m.NODE_DATA(1).node_start_pfn == 16384
    assert m.nr_free_pages() == 32768 == m.total_present_pages
    # boot memory is handed over in MAX_PAGE_ORDER blocks
    assert m.zone(1, ZONE_DMA32).nr_free() == [0] * 10 + [16]
    assert list(m.for_each_online_node()) == [0, 1]
    st = m.topo.node_states
    assert st[N_MEMORY, :2].all() and st[N_NORMAL_MEMORY, :2].all() and st[N_CPU, :2].all()
    assert not st[N_ONLINE, 2:].any()
    validate_all(m)


def test_boot_watermarks_follow_the_kernel_formulas(m128):
    m = m128
    lowmem_kb = 32768 * 4
    assert m.min_free_kbytes == max(128, math.isqrt(16 * lowmem_kb))
    pages_min = m.min_free_kbytes // 4
    for z in m.for_each_populated_zone():
        tmp = pages_min * z.managed_pages // 32768
        delta = max(tmp // 4, z.managed_pages * 10 // 10000)
        assert z.watermarks == {"min": tmp, "low": tmp + delta, "high": tmp + 2 * delta,
                                "promo": tmp + 3 * delta}
    # lowmem_reserve: DMA protects against DMA32 allocations by managed(DMA32)/256
    assert m.zone(0, ZONE_DMA).lowmem_reserve[ZONE_DMA32] == 12288 // 256


@pytest.mark.parametrize("managed, batch", [(0, 1), (4096, 1), (262144, 63), (1 << 30, 63),
                                            (16384, 3)])
def test_zone_batchsize(managed, batch):
    assert zone_batchsize(managed, 4096) == batch


def test_alloc_takes_the_lowest_piece_and_free_merges_back(m128):
    m = m128
    p = m.alloc_pages(order=10, cpu=0)  # order > 3 goes straight to the buddy
    assert p is not None and p % 1024 == 0
    assert m.S.page_nid[p] == 0
    q = m.alloc_pages(order=4, cpu=0, gfp=__GFP_DMA)
    assert q == 0  # the DMA zone's lowest block, split down from order 10
    assert m.zone(0, ZONE_DMA).nr_free()[4:10] == [1, 1, 1, 1, 1, 1]
    m.free_pages(q, 4)
    assert m.zone(0, ZONE_DMA).nr_free()[10] == 4
    m.free_pages(p, 10)
    assert m.nr_free_pages() == 32768
    validate_all(m)


def test_pcp_refill_in_batches_and_numastat(m128):
    m = m128
    p = m.alloc_pages(order=0, cpu=7)  # cpu 7 is on node 1
    assert m.S.page_nid[p] == 1
    z = m.zone(1, ZONE_DMA32)
    pcp = z.pcp(7)
    assert pcp["count"] > 0  # rmqueue_bulk put a batch on the list
    assert z.nr_free_pages + pcp["count"] + 1 == 16384
    assert m.numastat(1) == {"numa_hit": 1, "numa_miss": 0, "numa_foreign": 0,
                             "interleave_hit": 0, "local_node": 1, "other_node": 0}
    m.free_pages(p, 0, cpu=7)
    assert z.pcp(7)["count"] == pcp["count"] + 1
    m.drain_all_pages()
    assert m.pages_on_pcp() == 0 and m.nr_free_pages() == 32768
    validate_all(m)


def test_remote_nid_counts_hit_on_that_node_and_other_node(m128):
    m = m128
    p = m.alloc_pages(0, cpu=0, nid=1)
    assert m.S.page_nid[p] == 1
    assert m.numastat(1)["numa_hit"] == 1 and m.numastat(1)["other_node"] == 1


def test_thisnode_fails_when_the_node_is_full_and_fallback_counts_miss():
    m = boot(2, "64M", 2)
    got = []
    while (p := m.alloc_pages(3, cpu=0, nid=0, gfp=__GFP_THISNODE)) is not None:
        got.append(p)
    assert all(m.S.page_nid[p] == 0 for p in got)
    assert m.NODE_DATA(0).nr_free_pages < 1024  # stopped at the watermark, not at zero
    p = m.alloc_pages(3, cpu=0)  # local policy falls back to node 1
    assert p is not None and m.S.page_nid[p] == 1
    assert m.numastat(1)["numa_miss"] == 1 and m.numastat(0)["numa_foreign"] == 1
    validate_all(m)


def test_allocation_failure_is_a_result_not_a_crash():
    m = boot(1, "16M", 1)
    n = 0
    while m.alloc_pages(0, cpu=0) is not None:
        n += 1
    assert 0 < n < 4096
    assert m.alloc_pages(10, cpu=0) is None
    validate_all(m)


def test_interleave_round_robin_and_interleave_hit(m128):
    m = m128
    pol = MemPolicy("interleave", [0, 1])
    nids = [int(m.S.page_nid[m.alloc_pages(0, cpu=0, policy=pol)]) for _ in range(6)]
    assert nids == [0, 1, 0, 1, 0, 1]
    assert m.numastat(0)["interleave_hit"] == 3 and m.numastat(1)["interleave_hit"] == 3


def test_bind_and_preferred(m128):
    m = m128
    p = m.alloc_pages(0, cpu=0, policy=MemPolicy("bind", [1]))
    assert m.S.page_nid[p] == 1
    p = m.alloc_pages(0, cpu=0, policy=MemPolicy("preferred", [1]))
    assert m.S.page_nid[p] == 1
    with pytest.raises(AllocArgError, match="needs at least one node"):
        MemPolicy("bind", [])
    with pytest.raises(AllocArgError, match="unknown mode"):
        MemPolicy("weighted")


def test_movable_gfp_may_use_zone_movable_index_and_marks_lru(m128):
    p = m128.alloc_pages(0, cpu=0, gfp=GFP_HIGHUSER_MOVABLE)
    assert m128.S.page_flags[p] & 32  # PG_lru


def test_bad_frees_raise_and_change_nothing(m128, unchanged):
    m = m128
    p = m.alloc_pages(2, cpu=0)
    with unchanged(m):
        with pytest.raises(BadFreeError, match="order-2 block, freed as order 0"):
            m.free_pages(p, 0)
        with pytest.raises(BadFreeError, match="not the head"):
            m.free_pages(p + 1, 0)
        with pytest.raises(BadFreeError, match="outside"):
            m.free_pages(10**9, 0)
    m.free_pages(p, 2)
    with pytest.raises(BadFreeError, match="double free"):
        m.free_pages(p, 2)


def test_bad_alloc_arguments(m128, unchanged):
    with unchanged(m128):
        with pytest.raises(AllocArgError, match=r"order: 11 outside \[0, 10\]"):
            m128.alloc_pages(11)
        with pytest.raises(AllocArgError, match=r"cpu: 8 outside \[0, 8\)"):
            m128.alloc_pages(0, cpu=8)
        with pytest.raises(AllocArgError, match=r"nid: 64 outside \[0, 64\)"):
            m128.alloc_pages(0, nid=64)
        with pytest.raises(AllocArgError, match="order: expected an integer, got float"):
            m128.alloc_pages(1.5)


@pytest.mark.parametrize("kw, words", [
    (dict(ram=(), cpu_to_node=(0,)), "no memory"),
    (dict(ram=((0, 100, 0), (50, 200, 1)), cpu_to_node=(0,)), "overlaps"),
    (dict(ram=((0, 100, 0), (70, 80, 0), (40, 60, 0)), cpu_to_node=(0,)),
     r"ram range #2 \[0x28, 0x3c\) overlaps range #0"),
    (dict(ram=((0, 100, 99),), cpu_to_node=(0,)), "node 99"),
    (dict(ram=((0, 100, 0),), cpu_to_node=(5,), max_numnodes=4), "cpu 0 on node 5"),
    (dict(ram=((0, 100, 0),), cpu_to_node=()), "at least one CPU"),
    (dict(ram=((0, 100, 0),), cpu_to_node=(0,), max_numnodes=2000), "max_numnodes"),
    (dict(ram=((0, 100, 0),), cpu_to_node=(0,), distance=((10, 5), (5, 10))), "distance"),
    (dict(ram=((0, 100, 0),), cpu_to_node=(0,), distance=((10, 20), (20,))), "row 1"),
    (dict(ram=((0, 100, 0),), cpu_to_node=(0,), distance=((10, 20), (255, 10))), "254"),
    (dict(ram=((0, 100, 0),), cpu_to_node=(0,) * 2731), r"\[1, 2730\] \(the model's NR_CPUS"),
    (dict(ram=((0, 100.0, 0),), cpu_to_node=(0,)), "ram range #0: expected integers"),
    (dict(ram=((0, 4096, 0),), cpu_to_node=(0,), min_free_kbytes=16385),
     r"min_free_kbytes: 16385 outside \[0, 16384\]"),
])
def test_bad_configs(kw, words):
    with pytest.raises(ConfigError, match=words):
        Machine(MachineConfig(**kw))


def test_parse_size():
    assert parse_size("128M") == 128 << 20 and parse_size("1TiB") == 1 << 40
    assert parse_size(4096) == 4096
    for bad in ("lots", 1.5e9, float("nan"), -1, True, "9" * 30):
        with pytest.raises(ConfigError, match="size"):
            parse_size(bad)


def test_holes_reserved_and_distances():
    cfg = MachineConfig(ram=((0, 8192, 0), (12288, 20480, 1), (20480, 24576, 2)),
                        cpu_to_node=(0, 1, 1), reserved=((0, 16), (12288, 12300)),
                        distance=((10, 20, 30), (20, 10, 20), (30, 20, 10)), max_numnodes=4)
    m = Machine(cfg)
    z = m.zone(0, ZONE_DMA)
    assert z.present_pages == 4096 and z.managed_pages == 4096 - 16
    assert m.zone(1, ZONE_DMA32).managed_pages == 8192 - 12
    assert m.fallback_order[0] == [0, 1, 2]
    # node 2 has no CPUs: find_next_best_node prefers it at equal distance from node 1
    assert m.fallback_order[1] == [1, 2, 0]
    assert m.topo.node_states[N_MEMORY, 2] and not m.topo.node_states[N_CPU, 2]
    assert m.nr_free_pages() == 8192 + 8192 + 4096 - 16 - 12
    validate_all(m)
    p = m.alloc_pages(0, cpu=0)
    assert p >= 16  # reserved pages are never handed out


def test_ppc64_profile_boots():
    m = Machine(MachineConfig.uniform(2, "1G", 4, profile=PPC64))
    assert m.profile.page_size == 65536 and m.total_present_pages == 16384
    assert all(z.zone_idx == ZONE_NORMAL for z in m.for_each_populated_zone())
    assert m.zone(0, ZONE_NORMAL).nr_free()[8] == 8192 // 256
    validate_all(m)


def test_bytes_per_pfn_within_budget(m128):
    assert m128.per_pfn_bytes() <= 16
    assert m128.nbytes() / m128.max_pfn < 64  # small machines carry fixed overheads
    assert np.all(m128.S.sec_present.sum(axis=0) == m128.S.zone_present)


def test_vmstat_tick_decays_high_and_drains_idle_remote_pcps(m128):
    m = m128
    p = m.alloc_pages(0, cpu=0, nid=1)  # cpu 0 (node 0) fills its pcp of node 1's zone
    m.free_pages(p, 0, cpu=0)
    z = m.zone(1, ZONE_DMA32)
    count0 = z.pcp(0)["count"]
    assert count0 > 0
    counts = []
    for _ in range(6):
        m.vmstat_tick()
        counts.append(z.pcp(0)["count"])
    # touched -> expire 3; two idle ticks count down, the third drains one batch
    batch = z.pcp(0)["batch"]
    assert counts[0] == counts[1] == count0
    assert counts[2] == count0 - min(count0, batch)
    local = m.alloc_pages(0, cpu=0)
    m.free_pages(local, 0, cpu=0)
    lz = m.zone(0, ZONE_DMA32)
    for _ in range(5):
        m.vmstat_tick()
    assert lz.pcp(0)["count"] > 0  # a local pcp is never expired
    assert lz.pcp(0)["high"] >= lz.pcp(0)["high_min"]
    validate_all(m)


# ------------------------------------------------------------------ initial state
def _initial(heads, orders, **kw):
    from dnuma.mm.machine import InitialState

    return InitialState(np.array(heads), np.array(orders),
                        np.zeros(len(heads), dtype=np.uint8), **kw)


def test_boot_into_an_initial_state():
    from dnuma.mm.machine import Machine, MachineConfig

    cfg = MachineConfig.uniform(2, "32M", 2)
    m = Machine(cfg, _initial([0x100, 0x1000, 0x1800], [3, 9, 0]))
    assert m.allocated_mask().sum() == 8 + 512 + 1
    assert m.nr_free_pages() == m.total_present_pages - 521
    m.free_pages(0x1000, 9)
    validate_all(m)


@pytest.mark.parametrize(("heads", "orders", "kw", "msg"), [
    ([0x100], [11], {}, "above MAX_PAGE_ORDER"),
    ([0x101], [1], {}, "unaligned"),
    ([0x100, 0x104], [3, 0], {}, "overlap"),
    ([0x100], [3, 1], {}, "same length"),
    ([0x3c00], [10], {}, "spans two zones or nodes"),
    ([0x100], [0], {"pb_mt": np.zeros(3, dtype=np.int8)}, "one migratetype for each"),
])
def test_bad_initial_state(heads, orders, kw, msg):
    from dnuma.mm.machine import Machine, MachineConfig

    # 30 MiB over 2 nodes: node 1 starts at pfn 0x3e00, inside the order-10 block at 0x3c00
    cfg = MachineConfig(ram=((0, 0x3e00, 0), (0x3e00, 0x7800, 1)), cpu_to_node=(0, 1))
    with pytest.raises(ConfigError, match=msg):
        Machine(cfg, _initial(heads, orders, **kw))


def test_boot_zonelists_have_no_cpu_penalty_later_builds_do():
    """x86_64 builds the boot zonelists (mm_core_init) before any CPU is
    attached to its node, so find_next_best_node's PENALTY_FOR_NODE_WITH_CPUS
    is absent at boot and present in every later build (here a commit)."""
    m = Machine(MachineConfig(ram=((0, 8192, 0), (8192, 16384, 1), (16384, 24576, 2)),
                              cpu_to_node=(0, 0), max_numnodes=4))
    assert m.fallback_order[2] == [2, 0, 1]  # the kernel's boot order: the tie to node 0
    m.commit(MemLayout.from_ranges([(0, 8191, 0)]))  # changes nothing but rebuilds
    assert m.fallback_order[2] == [2, 1, 0]  # node 0 has CPUs: penalised
    validate_all(m)


def test_page_group_by_mobility_disabled_on_tiny_machines():
    """build_all_zonelists turns grouping by mobility off below
    pageblock_nr_pages * MIGRATE_TYPES (512 * 5 pages) above the high
    watermark (present pages at boot)."""
    tiny = boot(nodes=1, mem="8M", cpus=1)  # 2048 pages
    assert tiny.S.params[_st.P_MOBILITY_OFF] == 1
    big = boot(nodes=1, mem="16M", cpus=1)  # 4096 pages at boot ...
    assert big.S.params[_st.P_MOBILITY_OFF] == 0
    big.commit(MemLayout.from_ranges([(0, 4095, 0)]))  # ... 4096 - high wmark > 2560 later
    assert big.S.params[_st.P_MOBILITY_OFF] == 0
    # 12 MiB: 3072 present pages at boot; after a rebuild, with min_free_kbytes
    # 4096 (high watermark 1536 pages), 1536 above it
    mid = boot(nodes=1, mem="12M", cpus=1, min_free_kbytes=4096)
    assert mid.S.params[_st.P_MOBILITY_OFF] == 0
    mid.commit(MemLayout.from_ranges([(0, 3071, 0)]))
    assert mid.S.params[_st.P_MOBILITY_OFF] == 1
