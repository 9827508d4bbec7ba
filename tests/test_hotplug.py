"""Memory and CPU hotplug (mm.memory_hotplug, mm.memory_block, mm.cpu_hotplug)
after 6.12's mm/memory_hotplug.c and drivers/base/{memory,node,cpu}.c."""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from dnuma.mm.constants import (
    GFP_HIGHUSER_MOVABLE,
    GFP_KERNEL,
    MAX_NR_ZONES,
    MIGRATE_MOVABLE,
    MODE_NODEMASK,
    N_CPU,
    N_MEMORY,
    N_NORMAL_MEMORY,
    N_ONLINE,
    ZONE_DMA32,
    ZONE_MOVABLE,
    ZONE_NORMAL,
    PG_hole,
    PG_lru,
)
from dnuma.mm.cpu_hotplug import kstrtobool, write_cpu_online
from dnuma.mm.errors import AllocArgError, ArgError, ConfigError, HotplugError
from dnuma.mm.machine import Machine, MachineConfig
from dnuma.mm.memory_block import memory_blocks, valid_zones, write_memory_block_state
from dnuma.mm.memory_hotplug import memory_block_state, try_offline_node
from dnuma.mm.notifier import (
    MEM_CANCEL_OFFLINE,
    MEM_CANCEL_ONLINE,
    MEM_GOING_OFFLINE,
    MEM_GOING_ONLINE,
    MEM_OFFLINE,
    MEM_ONLINE,
    MemoryNotify,
)
from dnuma.mm.validate import validate_all
from tests.helpers import assert_same, snapshot
from tests.naive import RefMachine, assert_agree

BLOCK = 32768  # a 128 MiB memory block of 4 KiB pages
BOOT_END = 4 * BLOCK  # 512 MiB of boot RAM: blocks 0-3, node 0 owns 0-1, node 1 2-3
MAXMEM = 8 * BLOCK  # 1 GiB of hotpluggable room


def hot_machine(**kw: Any) -> Machine:
    return Machine(MachineConfig.uniform(2, "512M", 4, maxmem_pfn=MAXMEM, max_numnodes=4,
                                         **kw))


@pytest.fixture
def hm() -> Machine:
    return hot_machine()


def state(m: Machine) -> dict[str, Any]:
    """Everything an unchanged machine keeps: arrays, scalars, block states."""
    snap: dict[str, Any] = snapshot(m)
    snap["_scalars"] = np.frombuffer(repr(sorted(m.scalars().items())).encode(), np.uint8)
    return snap


def free_counts(m: Machine) -> tuple[list[int], int]:
    return m.S.free_cnt.sum(axis=2).ravel().tolist(), m.nr_free_pages()


# ---------------------------------------------------------------- capacity
def test_maxmem_pfn_sizes_the_arrays_and_starts_as_holes(hm):
    assert hm.config.maxmem_pfn == MAXMEM and hm.max_pfn == MAXMEM
    assert hm.S.page_flags.size == MAXMEM and hm.S.sec_present.shape[0] == MAXMEM // BLOCK
    assert (hm.S.page_flags[BOOT_END:] == PG_hole).all()
    assert hm.ram_ranges() == [(0, BOOT_END)]
    assert memory_blocks(hm).ids.tolist() == [0, 1, 2, 3]
    validate_all(hm)
    # the default: no room
    m = Machine(MachineConfig.uniform(2, "512M", 4))
    assert m.config.maxmem_pfn == BOOT_END == m.max_pfn


@pytest.mark.parametrize("bad", [BOOT_END - 1, 1 << 31, 1.5e6, True, "2G"])
def test_maxmem_pfn_must_cover_boot_ram(bad):
    with pytest.raises(ConfigError, match="maxmem_pfn"):
        MachineConfig.uniform(2, "512M", 4, maxmem_pfn=bad)


def test_block_size_follows_boot_ram_not_the_hotplug_room():
    m = Machine(MachineConfig.uniform(1, "1G", 2, maxmem_pfn=(80 << 30) >> 12))
    assert memory_blocks(m).block_size_bytes == 128 << 20


# ---------------------------------------------------------------- add + online
def test_add_memory_to_an_existing_node(hm):
    events: list[MemoryNotify] = []
    hm.memory_notifier.register(lambda ev: events.append(ev), "rec")
    mfk0 = hm.min_free_kbytes
    blocks = hm.add_memory(1, BOOT_END, 2 * BLOCK)
    validate_all(hm)
    assert blocks == [4, 5]
    z = hm.zone(1, ZONE_NORMAL)  # default_kernel_zone_for_pfn: above DMA32's span
    assert (z.present_pages, z.managed_pages, z.nr_free_pages) == (2 * BLOCK,) * 3
    assert (z.zone_start_pfn, z.spanned_pages) == (BOOT_END, 2 * BLOCK)
    # online_pages_range: MAX_PAGE_ORDER blocks on the MIGRATE_MOVABLE lists
    assert z.nr_free_by_type()[10, MIGRATE_MOVABLE] == 2 * BLOCK // 1024
    assert hm.NODE_DATA(1).node_present_pages == 4 * BLOCK
    assert hm.ram_ranges() == [(0, BOOT_END + 2 * BLOCK)]
    assert [memory_block_state(hm, b) for b in blocks] == ["online", "online"]
    assert [valid_zones(hm, b) for b in blocks] == ["Normal", "Normal"]
    assert hm.min_free_kbytes > mfk0  # init_per_zone_wmark_min reran
    assert z.watermarks["min"] > 0 and z.pcp(0)["high_max"] > 0
    assert [e.action for e in events] == [MEM_GOING_ONLINE, MEM_ONLINE] * 2
    # node 1 had no ZONE_NORMAL: its first block sets nothing (N_MEMORY was set)
    assert events[0].status_change_nid == -1 and events[0].start_pfn == BOOT_END
    assert ("add", "/devices/system/memory/memory4", "memory") in hm.uevents
    # the zonelists hold the new zone, highest zone first
    gz = 1 * MAX_NR_ZONES + ZONE_NORMAL
    assert hm.S.zonelist[1, 0] == gz and gz in hm.S.zonelist[0].tolist()
    # allocations reach it
    p = hm.alloc_pages(9, cpu=3, gfp=GFP_KERNEL)
    assert p is not None and hm.S.page_nid[p] == 1


def test_add_memory_brings_up_a_new_node(hm):
    from dnuma.io.export import build_tree

    assert not hm.topo.node_states[N_ONLINE, 2]
    hm.add_memory(2, BOOT_END + 2 * BLOCK, BLOCK)
    validate_all(hm)
    st_ = hm.topo.node_states
    assert st_[N_ONLINE, 2] and st_[N_MEMORY, 2] and st_[N_NORMAL_MEMORY, 2]
    assert not st_[N_CPU, 2]
    assert hm.uevents[0] == ("add", "/devices/system/node/node2", "node")
    assert hm.S.zonelist[2, 0] == 2 * MAX_NR_ZONES + ZONE_NORMAL
    assert 2 * MAX_NR_ZONES + ZONE_NORMAL in hm.S.zonelist[0].tolist()
    t = build_tree(hm)
    assert "sys/devices/system/node/node2" in t.dirs
    files = {p: text for p, text, _m in t.files}
    assert files["sys/devices/system/node/has_memory"] == "0-2\n"
    assert files["sys/devices/system/node/node2/cpulist"] == "\n"
    assert ("sys/devices/system/node/node2/memory6", "../../memory/memory6") in t.links


def test_online_movable_refuses_kernel_allocations(hm):
    hm.add_memory(2, BOOT_END, BLOCK, online_type="online_movable")
    validate_all(hm)
    z = hm.zone(2, ZONE_MOVABLE)
    assert z.present_pages == BLOCK and valid_zones(hm, 4) == "Movable"
    st_ = hm.topo.node_states
    assert st_[N_MEMORY, 2] and not st_[N_NORMAL_MEMORY, 2]
    # __setup_per_zone_wmarks: ZONE_MOVABLE's min is managed / 1024 clamped to [32, 128]
    assert z.watermarks["min"] == 32
    assert hm.S.zonelist[2].tolist()[0] == 2 * MAX_NR_ZONES + ZONE_MOVABLE
    for _ in range(50):  # gfp_zone(GFP_KERNEL) is ZONE_NORMAL: never the movable zone
        p = hm.alloc_pages(0, cpu=0, nid=2, gfp=GFP_KERNEL)
        assert p is not None and hm.S.page_zone[p] != ZONE_MOVABLE
    p = hm.alloc_pages(0, cpu=0, nid=2, gfp=GFP_HIGHUSER_MOVABLE)
    assert p is not None and hm.S.page_nid[p] == 2 and hm.S.page_zone[p] == ZONE_MOVABLE
    validate_all(hm)


def test_offline_added_memory_and_the_state_file(hm):
    blocks = hm.add_memory(0, BOOT_END, 2 * BLOCK, online_type="offline")
    validate_all(hm)
    assert [memory_block_state(hm, b) for b in blocks] == ["offline"] * 2
    assert hm.zone(0, ZONE_NORMAL).present_pages == 0
    assert valid_zones(hm, 4) == "Normal Movable"
    write_memory_block_state(hm, 5, "online_movable\n")
    validate_all(hm)
    # block 4 lies below the Movable span: default_zone_for_pfn keeps the kernel zone
    assert valid_zones(hm, 4) == "Normal Movable"
    write_memory_block_state(hm, 4, "online")
    assert valid_zones(hm, 4) == "Normal" and valid_zones(hm, 5) == "Movable"
    write_memory_block_state(hm, 4, "offline")
    write_memory_block_state(hm, 4, "online_kernel")
    assert hm.zone(0, ZONE_NORMAL).present_pages == BLOCK
    validate_all(hm)
    # an offline block inside ZONE_MOVABLE's span comes back movable by default
    hm.add_memory(0, BOOT_END + 2 * BLOCK, 2 * BLOCK, online_type="offline")
    hm.online_memory_block(7, "online_movable")
    assert valid_zones(hm, 6) == "Movable Normal"
    write_memory_block_state(hm, 6, "online")
    assert valid_zones(hm, 6) == "Movable"
    validate_all(hm)


@pytest.mark.parametrize(("text", "errname"), [
    ("online", "EINVAL"),  # already online: device_online returns 1
    ("bogus", "EINVAL"), ("Online", "EINVAL"), ("online\n\n", "EINVAL"), ("", "EINVAL"),
])
def test_state_file_errors_change_nothing(hm, text, errname):
    before = state(hm)
    with pytest.raises(HotplugError) as ei:
        write_memory_block_state(hm, 2, text)
    assert ei.value.errname == errname and ei.value.errno == 22
    assert_same(before, state(hm))


def test_offline_an_offline_block_is_einval(hm):
    hm.add_memory(1, BOOT_END, BLOCK, online_type="offline")
    before = state(hm)
    with pytest.raises(HotplugError, match="already offline") as ei:
        write_memory_block_state(hm, 4, "offline")
    assert ei.value.errname == "EINVAL"
    assert_same(before, state(hm))


@pytest.mark.parametrize("block", [7, 8, 1000, -1])
def test_a_block_that_does_not_exist_is_enoent(hm, block):
    before = state(hm)
    with pytest.raises(HotplugError, match=f"memory block {block} does not exist") as ei:
        write_memory_block_state(hm, block, "online")
    assert ei.value.errname == "ENOENT"
    with pytest.raises(ArgError):
        write_memory_block_state(hm, 1.0, "online")  # type: ignore[arg-type]
    assert_same(before, state(hm))


# ---------------------------------------------------------------- offline
def test_offline_migrates_movable_pages_and_keeps_their_owners(hm):
    hm.add_memory(1, BOOT_END, BLOCK)
    held = []
    for i in range(300):  # movable pages, many landing in the new block (node 1's top zone)
        o = i % 4
        p = hm.alloc_pages(o, cpu=2 + i % 2, nid=1, gfp=GFP_HIGHUSER_MOVABLE, owner=7 + i % 5)
        assert p is not None
        held.append((p, o, 7 + i % 5))
    inside = [h for h in held if BOOT_END <= h[0] < BOOT_END + BLOCK]
    assert inside
    free0 = hm.nr_free_pages()
    events: list[str] = []
    hm.memory_notifier.register(lambda ev: events.append(ev.action), "rec")
    rep = hm.offline_memory_block(4)
    validate_all(hm)
    assert events == [MEM_GOING_OFFLINE, MEM_OFFLINE]
    assert rep.blocks_migrated == len(inside)
    assert rep.pages_migrated == sum(1 << o for _p, o, _w in inside)
    # the block's free pages leave, the targets come from elsewhere
    assert hm.nr_free_pages() == free0 - BLOCK
    S = hm.S
    assert (S.page_flags[BOOT_END:BOOT_END + BLOCK] == PG_hole).all()
    heads = np.flatnonzero(S.page_flags & PG_lru)
    owners = sorted((int(S.page_order[h]), int(S.page_owner[h])) for h in heads)
    assert owners == sorted((o, w) for _p, o, w in held)
    # alloc_migration_target: the nodemask leaves the source node out
    moved = set(heads.tolist()) - {p for p, _o, _w in held}
    assert moved and all(S.page_nid[p] == 0 for p in moved)
    assert hm.zone(1, ZONE_NORMAL).present_pages == 0
    assert hm.topo.node_states[N_MEMORY, 1]  # DMA32 still there


def test_offline_refused_by_an_unmovable_page_changes_nothing(hm):
    hm.add_memory(1, BOOT_END, BLOCK)
    pins = [hm.alloc_pages(0, cpu=2, nid=1, gfp=GFP_KERNEL, owner=3) for _ in range(40)]
    assert any(BOOT_END <= p < BOOT_END + BLOCK for p in pins if p is not None)
    hm.drain_all_pages()  # zone_pcp_disable drains anyway
    before = state(hm)
    with pytest.raises(HotplugError, match="unmovable") as ei:
        write_memory_block_state(hm, 4, "offline")
    assert ei.value.errname == "EBUSY" and ei.value.errno == 16
    assert_same(before, state(hm))
    assert memory_block_state(hm, 4) == "online"
    validate_all(hm)


def test_boot_block_with_reserved_pages_is_ebusy(hm):
    with pytest.raises(HotplugError) as ei:
        hm.offline_memory_block(0)
    # block 0 spans DMA and DMA32: mem->zone is NULL
    assert ei.value.errname == "EINVAL" and "several zones" in str(ei.value)


def test_a_notifier_veto_is_eperm_and_changes_nothing(hm):
    hm.add_memory(1, BOOT_END, BLOCK, online_type="offline")
    seen: list[str] = []

    def veto(ev: MemoryNotify) -> bool:
        seen.append(ev.action)
        return not ev.action.startswith("MEM_GOING")

    hm.memory_notifier.register(veto, "veto")
    before = state(hm)
    with pytest.raises(HotplugError, match="vetoed by memory notifier veto") as ei:
        write_memory_block_state(hm, 4, "online")
    assert ei.value.errname == "EPERM"
    assert seen == [MEM_GOING_ONLINE, MEM_CANCEL_ONLINE]
    assert_same(before, state(hm))
    hm.memory_notifier.unregister(veto)
    hm.online_memory_block(4)
    hm.drain_all_pages()
    hm.memory_notifier.register(veto, "veto")
    seen.clear()
    before = state(hm)
    with pytest.raises(HotplugError) as ei:
        hm.offline_memory_block(4)
    assert seen == [MEM_GOING_OFFLINE, MEM_CANCEL_OFFLINE]
    assert_same(before, state(hm))
    validate_all(hm)


def test_last_memory_offlined_keeps_the_node_online_and_remove_offlines_it(hm):
    hm.add_memory(2, BOOT_END, BLOCK)
    assert hm.topo.node_states[N_MEMORY, 2]
    hm.offline_memory_block(4)
    validate_all(hm)
    st_ = hm.topo.node_states
    assert not st_[N_MEMORY, 2] and not st_[N_NORMAL_MEMORY, 2] and st_[N_ONLINE, 2]
    assert 2 * MAX_NR_ZONES + ZONE_NORMAL not in hm.S.zonelist[0].tolist()
    assert hm.zone(2, ZONE_NORMAL).pcp(0)["high"] == 0  # zone_pcp_reset
    assert not try_offline_node(hm, 2) or True  # the offline block still names node 2
    assert st_[N_ONLINE, 2]
    hm.remove_memory(BOOT_END, BLOCK)
    validate_all(hm)
    assert not st_[N_ONLINE, 2]
    assert hm.uevents[-1] == ("remove", "/devices/system/node/node2", "node")
    assert hm.ram_ranges() == [(0, BOOT_END)]
    assert 4 not in memory_blocks(hm).ids.tolist()
    # and it can come back, on another node
    hm.add_memory(3, BOOT_END, BLOCK)
    validate_all(hm)
    assert hm.NODE_DATA(3).node_present_pages == BLOCK


def test_remove_keeps_a_node_with_cpus_online(hm):
    hm.add_memory(1, BOOT_END, BLOCK)
    hm.offline_memory_block(4)
    hm.remove_memory(BOOT_END, BLOCK)
    assert hm.topo.node_states[N_ONLINE, 1]
    assert not try_offline_node(hm, 1)
    validate_all(hm)


def test_remove_of_an_online_block_is_ebusy(hm):
    hm.add_memory(1, BOOT_END, 2 * BLOCK)
    hm.offline_memory_block(4)
    before = state(hm)
    with pytest.raises(HotplugError, match="memory block 5 is online") as ei:
        hm.remove_memory(BOOT_END, 2 * BLOCK)
    assert ei.value.errname == "EBUSY"
    assert_same(before, state(hm))


def test_shrink_zone_span_moves_only_at_the_edges(hm):
    hm.add_memory(1, BOOT_END, 3 * BLOCK)
    z = hm.zone(1, ZONE_NORMAL)
    hm.offline_memory_block(5)  # the middle: the span stays
    assert (z.zone_start_pfn, z.spanned_pages) == (BOOT_END, 3 * BLOCK)
    hm.offline_memory_block(6)  # the end: back to the last online sub-section
    assert (z.zone_start_pfn, z.spanned_pages) == (BOOT_END, BLOCK)
    hm.online_memory_block(6)
    hm.offline_memory_block(4)  # the start: the next online sub-section
    assert (z.zone_start_pfn, z.spanned_pages) == (BOOT_END + 2 * BLOCK, BLOCK)
    hm.offline_memory_block(6)
    assert (z.zone_start_pfn, z.spanned_pages) == (0, 0)
    validate_all(hm)


# ---------------------------------------------------------------- bad input
@pytest.mark.parametrize(("args", "errname", "words"), [
    ((1, BOOT_END + 1, BLOCK), "EINVAL", "aligned"),
    ((1, BOOT_END, BLOCK - 512), "EINVAL", "aligned"),
    ((1, BOOT_END, 0), "EINVAL", "non-empty"),
    ((1, BLOCK, BLOCK), "EEXIST", "overlap System RAM"),
    ((1, BOOT_END + 4 * BLOCK, BLOCK), "ERANGE", "maxmem_pfn"),
    ((4, BOOT_END, BLOCK), "EINVAL", "node 4 is not possible"),
    ((64, BOOT_END, BLOCK), "EINVAL", "node 64"),
    ((-1, BOOT_END, BLOCK), "EINVAL", "node -1"),
])
def test_bad_add_memory_changes_nothing(hm, args, errname, words):
    before = state(hm)
    with pytest.raises(HotplugError, match=words) as ei:
        hm.add_memory(*args)
    assert ei.value.errname == errname
    assert_same(before, state(hm))


def test_overlapping_hot_added_memory_is_eexist(hm):
    hm.add_memory(1, BOOT_END, 2 * BLOCK)
    before = state(hm)
    with pytest.raises(HotplugError, match="overlap") as ei:
        hm.add_memory(2, BOOT_END + BLOCK, 2 * BLOCK)
    assert ei.value.errname == "EEXIST"
    assert_same(before, state(hm))


@pytest.mark.parametrize("args", [(1.0, BOOT_END, BLOCK), (1, float(BOOT_END), BLOCK),
                                  (1, BOOT_END, "128M"), (True, BOOT_END, BLOCK)])
def test_add_memory_arguments_of_the_wrong_type(hm, args):
    before = state(hm)
    with pytest.raises(ArgError):
        hm.add_memory(*args)
    assert_same(before, state(hm))


def test_bad_online_type_and_remove_ranges(hm):
    before = state(hm)
    with pytest.raises(HotplugError, match="online_type") as ei:
        hm.add_memory(1, BOOT_END, BLOCK, online_type="online_dma")
    assert ei.value.errname == "EINVAL"
    with pytest.raises(HotplugError, match="no memory block"):
        hm.remove_memory(BOOT_END, BLOCK)
    with pytest.raises(HotplugError, match="aligned"):
        hm.remove_memory(BOOT_END + 5, BLOCK)
    assert_same(before, state(hm))


# ---------------------------------------------------------------- CPUs
def test_cpu_down_drains_and_recomputes_high(hm):
    from dnuma.io.export import build_tree

    for _ in range(20):
        hm.free_pages(hm.alloc_pages(0, cpu=3), 0, cpu=3)
    assert hm.S.pcp_count[3].sum() > 0
    gz = 1 * MAX_NR_ZONES + ZONE_DMA32
    hi0 = hm.S.pcp_high_min[gz]
    zl0 = hm.S.zonelist.copy()
    rebuilds0 = hm.zonelist_rebuilds
    hm.cpu_down(3)
    validate_all(hm)
    assert hm.S.pcp_count[3].sum() == 0
    assert hm.S.pcp_high_min[gz] == max(hm.S.wmark[gz, 1] // 1, hm.S.pcp_batch[gz] * 4)
    assert hm.S.pcp_high_min[gz] > hi0  # node 1 now splits over one CPU
    assert hm.topo.node_states[N_CPU, 1]
    hm.cpu_down(2)  # node 1's last CPU
    st_ = hm.topo.node_states
    assert not st_[N_CPU, 1] and st_[N_ONLINE, 1]
    # zone_highsize of a CPU-less node: num_online_cpus()
    assert hm.S.pcp_high_min[gz] == max(hm.S.wmark[gz, 1] // 2, hm.S.pcp_batch[gz] * 4)
    # 6.12 rebuilds no zonelist on CPU hotplug
    assert np.array_equal(hm.S.zonelist, zl0) and hm.zonelist_rebuilds == rebuilds0
    with pytest.raises(AllocArgError, match="offline"):
        hm.alloc_pages(0, cpu=2)
    files = {p: text for p, text, _m in build_tree(hm).files}
    assert files["sys/devices/system/cpu/online"] == "0-1\n"
    assert files["sys/devices/system/cpu/offline"] == "2-3\n"
    assert files["sys/devices/system/cpu/cpu3/online"] == "0\n"
    assert "sys/devices/system/cpu/cpu0/online" not in files
    assert "sys/devices/system/cpu/cpu3/topology/core_id" not in files
    assert files["sys/devices/system/node/node1/cpulist"] == "\n"
    assert files["sys/devices/system/node/has_cpu"] == "0\n"
    hm.cpu_up(2)
    hm.cpu_up(3)
    validate_all(hm)
    assert st_[N_CPU, 1] and hm.topo.cpu_online.all()
    assert hm.alloc_pages(0, cpu=3) is not None


def test_cpu_up_counts_one_cpu_more_for_every_zone(hm):
    """page_alloc_cpu_online: zone_pcp_update(zone, 1) before the CPU is in
    its node's cpumask: other nodes' zones split over one CPU too many."""
    hm.cpu_down(3)
    hm.cpu_up(3)
    g0 = 0 * MAX_NR_ZONES + ZONE_DMA32
    g1 = 1 * MAX_NR_ZONES + ZONE_DMA32
    S = hm.S
    assert S.pcp_high_min[g1] == max(S.wmark[g1, 1] // 2, S.pcp_batch[g1] * 4)
    assert S.pcp_high_min[g0] == max(S.wmark[g0, 1] // 3, S.pcp_batch[g0] * 4)
    hm.add_memory(1, BOOT_END, BLOCK)  # init_per_zone_wmark_min: cpu_online 0 again
    assert S.pcp_high_min[g0] == max(S.wmark[g0, 1] // 2, S.pcp_batch[g0] * 4)


def test_stat_thresholds_follow_online_cpus(hm):
    gz = 0 * MAX_NR_ZONES + ZONE_DMA32
    t4 = int(hm.S.zone_stat_threshold[gz])
    hm.cpu_down(3)
    hm.cpu_down(2)  # fls(2) = 2 < fls(4) = 3
    assert hm.S.zone_stat_threshold[gz] < t4
    hm.cpu_up(2)
    hm.cpu_up(3)
    assert hm.S.zone_stat_threshold[gz] == t4


def test_an_offline_cpu_keeps_its_pagesets_across_vmstat_ticks(hm):
    for _ in range(40):
        hm.free_pages(hm.alloc_pages(0, cpu=3), 0, cpu=3)
    hm.cpu_down(3)
    high = hm.S.pcp_high[3].copy()
    for _ in range(5):
        hm.vmstat_tick()
    assert np.array_equal(hm.S.pcp_high[3], high)


def test_cpu0_and_bad_cpus(hm):
    before = state(hm)
    for call, args, errname in ((hm.cpu_down, (0,), "EPERM"),
                                (write_cpu_online, (hm, 0, "0"), "ENOENT"),
                                (hm.cpu_down, (4,), "EINVAL"),
                                (write_cpu_online, (hm, 2, "maybe"), "EINVAL")):
        with pytest.raises(HotplugError) as ei:
            call(*args)
        assert ei.value.errname == errname
    with pytest.raises(ArgError):
        hm.cpu_up(1.0)  # type: ignore[arg-type]
    hm.cpu_up(1)  # already online: nothing
    assert_same(before, state(hm))
    write_cpu_online(hm, 2, "0\n")
    write_cpu_online(hm, 2, "0")  # already offline: device_offline returns 1, no error
    assert not hm.topo.cpu_online[2]
    write_cpu_online(hm, 2, "on")
    assert hm.topo.cpu_online[2]


@pytest.mark.parametrize(("text", "val"), [("1", True), ("y", True), ("on\n", True),
                                           ("0", False), ("N", False), ("off", False)])
def test_kstrtobool(text, val):
    assert kstrtobool(text) is val


# ---------------------------------------------------------------- reference model
def test_alloc_with_a_nodemask_matches_the_reference():
    """MODE_NODEMASK (alloc_migration_target's __alloc_pages with a
    nodemask) in the compiled allocator and in tests/naive.py."""
    from dnuma._kernels import alloc as _ka

    m = Machine(MachineConfig.uniform(3, "48M", 3))
    r = RefMachine.boot(m)
    rnd = random.Random(5)
    for _ in range(400):
        nid, order, cpu = rnd.randrange(3), rnd.choice([0, 0, 1, 3, 5]), rnd.randrange(3)
        allowed = [n for n in range(3) if n != nid] if rnd.random() < 0.8 else [nid]
        mask = np.zeros(m.config.max_numnodes, dtype=np.bool_)
        mask[allowed] = True
        gfp = rnd.choice([GFP_KERNEL, GFP_HIGHUSER_MOVABLE])
        a = int(_ka.alloc_pages(m.S, order, cpu, gfp, MODE_NODEMASK, nid, mask,
                                np.full(1, -1, dtype=np.int64), 0))
        b = r.alloc_pages(order, cpu, nid=nid, gfp=gfp, nodes_allowed=allowed)
        r.sync_setup(m)
        assert (a if a >= 0 else None) == b
        if a >= 0:
            assert int(m.S.page_nid[a]) in allowed
    assert_agree(r, m, "nodemask allocations")


# ---------------------------------------------------------------- snapshots, host
def test_snapshot_keeps_the_hotplug_state(hm, tmp_path):
    from dnuma.io.snapshot import load_snapshot, save_snapshot

    hm.add_memory(2, BOOT_END, 2 * BLOCK, online_type="offline")
    hm.online_memory_block(5, "online_movable")
    hm.cpu_down(1)
    save_snapshot(hm, tmp_path / "s.dnuma")
    m2 = load_snapshot(tmp_path / "s.dnuma")
    validate_all(m2)
    assert m2.offline_blocks == {4: 2} and m2.ram_ranges() == hm.ram_ranges()
    assert m2.topo.cpu_online.tolist() == [True, False, True, True]
    assert valid_zones(m2, 4) == valid_zones(hm, 4)
    m2.online_memory_block(4)
    validate_all(m2)


def test_boot_from_host_passes_maxmem_pfn(host_snapshot):
    from dnuma.io.host import boot_from_host

    res = boot_from_host(host_snapshot, kpageflags=False)
    end = res.machine.max_pfn
    res2 = boot_from_host(host_snapshot, kpageflags=False, maxmem_pfn=end + (1 << 20))
    assert res2.machine.config.maxmem_pfn == end + (1 << 20)
    assert res2.machine.max_pfn >= end + (1 << 20)


# ---------------------------------------------------------------- random sequences
class HotplugSequences(RuleBasedStateMachine):
    """Hot-add, online (every type), offline, remove, CPU down/up, mixed with
    allocations and frees; every invariant of mm.validate after each step,
    and a refused step changes nothing."""

    def __init__(self) -> None:
        super().__init__()
        self.m = Machine(MachineConfig.uniform(2, "256M", 3, maxmem_pfn=6 * BLOCK,
                                               max_numnodes=3))
        self.live: list[tuple[int, int]] = []

    def _refusable(self, fn: Any, *args: Any) -> None:
        self.m.drain_all_pages()  # a refused offline drains the zone's pcp lists
        before = state(self.m)
        try:
            fn(*args)
        except HotplugError:
            assert_same(before, state(self.m))

    @rule(block=st.integers(0, 6), nid=st.integers(0, 3),
          kind=st.sampled_from(["offline", "online", "online_kernel", "online_movable"]))
    def add(self, block: int, nid: int, kind: str) -> None:
        self._refusable(self.m.add_memory, nid, block * BLOCK, BLOCK, kind)

    @rule(block=st.integers(0, 6),
          text=st.sampled_from(["online", "offline", "online_kernel", "online_movable", "x"]))
    def state_write(self, block: int, text: str) -> None:
        self._refusable(write_memory_block_state, self.m, block, text)

    @rule(block=st.integers(0, 6))
    def remove(self, block: int) -> None:
        self._refusable(self.m.remove_memory, block * BLOCK, BLOCK)

    @rule(cpu=st.integers(0, 2), up=st.booleans())
    def cpu(self, cpu: int, up: bool) -> None:
        self._refusable(self.m.cpu_up if up else self.m.cpu_down, cpu)

    @rule(order=st.integers(0, 10), gfp=st.sampled_from([GFP_KERNEL, GFP_HIGHUSER_MOVABLE]),
          nid=st.integers(0, 2), n=st.integers(1, 30))
    def alloc(self, order: int, gfp: int, nid: int, n: int) -> None:
        cpu = int(np.flatnonzero(self.m.topo.cpu_online)[-1])
        for _ in range(n):
            p = self.m.alloc_pages(order, cpu=cpu, nid=nid, gfp=gfp)
            if p is not None:
                self.live.append((p, order))

    @precondition(lambda self: self.live)
    @rule(k=st.integers(0, 1000))
    def free(self, k: int) -> None:
        pfn, order = self.live.pop(k % len(self.live))
        heads = np.flatnonzero(self.m.S.page_flags & 4)  # PG_head: migration moves blocks
        if pfn in set(heads.tolist()) and int(self.m.S.page_order[pfn]) == order:
            self.m.free_pages(pfn, order, cpu=0)

    @invariant()
    def valid(self) -> None:
        validate_all(self.m)


TestHotplugSequences = HotplugSequences.TestCase
TestHotplugSequences.settings = settings(
    max_examples=max(5, settings.default.max_examples // 4), stateful_step_count=25,
    deadline=None, suppress_health_check=[HealthCheck.too_slow])


def test_the_node_notifier_hears_first_and_last_memory_and_may_veto(hm):
    from dnuma.mm.notifier import (
        NODE_ADDED_FIRST_MEMORY,
        NODE_ADDING_FIRST_MEMORY,
        NODE_CANCEL_ADDING_FIRST_MEMORY,
        NODE_CANCEL_REMOVING_LAST_MEMORY,
        NODE_REMOVED_LAST_MEMORY,
        NODE_REMOVING_LAST_MEMORY,
    )

    hm.add_memory(2, BOOT_END, 2 * BLOCK, online_type="offline")
    seen: list[tuple[str, int]] = []
    mem: list[str] = []

    def veto(ev) -> bool:
        seen.append((ev.action, ev.nid))
        return "ING_" not in ev.action  # NODE_ADDING_* / NODE_REMOVING_*: NOTIFY_BAD

    hm.node_notifier.register(veto, "slab")
    hm.memory_notifier.register(lambda ev: mem.append(ev.action), "watch")
    before = state(hm)
    with pytest.raises(HotplugError, match=r"vetoed by node notifier slab "
                                           r"\(NODE_ADDING_FIRST_MEMORY\)") as ei:
        write_memory_block_state(hm, 4, "online")
    assert ei.value.errname == "EPERM" and mem == []  # the memory chain was not asked
    assert seen == [(NODE_ADDING_FIRST_MEMORY, 2), (NODE_CANCEL_ADDING_FIRST_MEMORY, 2)]
    assert_same(before, state(hm))
    hm.node_notifier.unregister(veto)
    seen.clear()
    hm.node_notifier.register(lambda ev: seen.append((ev.action, ev.nid)), "log")
    hm.online_memory_block(4)
    hm.online_memory_block(5)  # not the first memory: no node event
    assert seen == [(NODE_ADDING_FIRST_MEMORY, 2), (NODE_ADDED_FIRST_MEMORY, 2)]
    seen.clear()
    hm.drain_all_pages()
    hm.offline_memory_block(4)
    assert seen == []
    hm.node_notifier.register(veto, "slab", priority=-1)
    before = state(hm)
    with pytest.raises(HotplugError, match="NODE_REMOVING_LAST_MEMORY"):
        hm.offline_memory_block(5)
    assert_same(before, state(hm))
    # the log, then the veto; then the cancel to both (the chain is blocking)
    assert seen == [(NODE_REMOVING_LAST_MEMORY, 2)] * 2 \
        + [(NODE_CANCEL_REMOVING_LAST_MEMORY, 2)] * 2
    hm.node_notifier.unregister(veto)
    seen.clear()
    hm.offline_memory_block(5)
    assert seen == [(NODE_REMOVING_LAST_MEMORY, 2), (NODE_REMOVED_LAST_MEMORY, 2)]
    validate_all(hm)
