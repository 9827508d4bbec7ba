"""min_free_kbytes and the watermarks: the real kernel's figures, khugepaged's
raise (set_recommended_min_free_kbytes), recomputation on commit and after
redirected frees, and __clamp.

The real-kernel facts below were recorded on 2026-12-02 from Debian's
linux-image-6.12.117+deb12-amd64-unsigned (6.12.117-1~deb12u1, the config
with TRANSPARENT_HUGEPAGE_ALWAYS=y) booted under QEMU 7.2 with TCG
(``-accel tcg -cpu qemu64``, the default ``pc`` machine), two NUMA nodes of
equal size (``-object memory-backend-ram`` + ``-numa node,memdev=``), an
initramfs whose busybox ``/init`` printed ``/proc/sys/vm/min_free_kbytes``,
``/proc/zoneinfo`` and the boot log's e820 map, "Early memory node ranges"
and mem_init's ``Memory: A/B available (... R reserved ...)`` line.

The model does not model the kernel's own boot allocations (kernel image,
memmap, per-cpu areas, NODE_DATA, the reserved first MiB), so each guest's
MachineConfig gives them as ``reserved`` ranges: the totals are the guest's
boot-time totalram (physpages minus the ``reserved`` of the Memory: line);
ZONE_DMA's managed pages are zoneinfo's (nothing is freed into it after
boot); the split of the rest between the DMA32/Normal zones is the one the
kernel's own watermarks were computed from (zoneinfo's ``min`` is
pages_min * managed / lowmem_pages: it pins each zone's boot managed pages
to about lowmem_pages / pages_min pages).  zoneinfo's later ``managed`` is
larger (the initramfs and __init memory are freed after the initcalls), and
its watermarks are history from boot.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from dnuma.mm.constants import PPC64, ZONE_DMA, ZONE_DMA32, ZONE_NORMAL
from dnuma.mm.errors import ConfigError
from dnuma.mm.machine import Machine, MachineConfig, boot
from dnuma.mm.memlayout import MemLayout
from dnuma.mm.page_alloc import (
    init_per_zone_wmark_min,
    khugepaged_recommended_min_free_kbytes,
    nr_free_buffer_pages,
)
from tests.naive import clamp as ref_clamp

MiB = 256  # pages of 4 KiB


def qemu_config(node_ranges: list[tuple[int, int, int]], cpus: tuple[int, ...],
                boot_managed: dict[tuple[int, int], int]) -> MachineConfig:
    """The guest's RAM (its "Early memory node ranges", pfns) with the first
    MiB and the kernel's boot allocations reserved so that each zone has
    ``boot_managed[(nid, zone_idx)]`` managed pages: above the first MiB in
    ZONE_DMA, from 16 MiB (where the kernel image is) in node 0's DMA32, at
    the top of the other zones (memblock allocates top-down)."""
    first = MachineConfig(ram=tuple(node_ranges), cpu_to_node=cpus, reserved=((0, MiB),))
    m = Machine(first)
    resv = [(0, MiB)]
    for (nid, z), want in boot_managed.items():
        zone = m.zone(nid, z)
        extra = zone.managed_pages - want
        assert extra >= 0
        if z == ZONE_DMA:
            start = MiB
        elif (nid, z) == (0, ZONE_DMA32):
            start = 16 * MiB
        else:  # below the zone's last RAM pfn (its span may end in a hole)
            zend = zone.zone_start_pfn + zone.spanned_pages
            start = max(min(e, zend) for s, e, n in node_ranges
                        if n == nid and s < zend and e > zone.zone_start_pfn) - extra
        if extra:
            resv.append((start, start + extra))
    return MachineConfig(ram=tuple(node_ranges), cpu_to_node=cpus, reserved=tuple(resv))


# (nid, zone_idx) -> (min, low, high) as zoneinfo showed them after boot
Wmarks = dict[tuple[int, int], tuple[int, int, int]]

#: the QEMU guests: name -> (node ranges, cpu_to_node, boot managed pages per
#: zone, min_free_kbytes, zoneinfo watermarks)
QEMU_GUESTS: dict[str, tuple[list[tuple[int, int, int]], tuple[int, ...],
                             dict[tuple[int, int], int], int, Wmarks]] = {
    # -m 128M -smp 8, 64M per node, CPUs 0-3 / 4-7.  Memory: 73276K/130552K
    # available (... 51348K reserved): totalram 32638 - 12837 = 19801 pages.
    # Below 512 MiB: hugepage_init leaves khugepaged off, the sqrt formula
    # stands.  (Node 0 DMA32 showed 525/528/531: watermark_boost 511 on top
    # of 14/17/20; zoneinfo's min/low/high include the boost.)
    "128M": ([(0x1, 0x9f, 0), (0x100, 0x4000, 0), (0x4000, 0x7fe0, 1)],
             (0,) * 4 + (1,) * 4,
             {(0, ZONE_DMA): 3328, (0, ZONE_DMA32): 1006, (1, ZONE_DMA32): 15467},
             1125,
             {(0, ZONE_DMA): (47, 58, 69), (1, ZONE_DMA32): (219, 273, 327)}),
    # -m 1G -smp 2, 512M per node, CPU 0 / CPU 1.  Memory: 976348K/1048056K
    # available (... 64052K reserved): totalram 262014 - 16013 = 246001.
    # khugepaged: 512 * 3 zones * 11 = 16896 pages, capped at
    # nr_free_buffer_pages / 20 = 12225 pages = 48900 kB.
    "1G": ([(0x1, 0x9f, 0), (0x100, 0x20000, 0), (0x20000, 0x3ffe0, 1)],
           (0, 1),
           {(0, ZONE_DMA): 3840, (0, ZONE_DMA32): 113544, (1, ZONE_DMA32): 128617},
           48900,
           {(0, ZONE_DMA): (190, 237, 284), (0, ZONE_DMA32): (5642, 7052, 8462),
            (1, ZONE_DMA32): (6391, 7988, 9585)}),
    # -m 4G -smp 4, 2G per node, CPUs 0-1 / 2-3; the pc machine puts 3 GiB
    # below 4 GiB, so node 1 has DMA32 and Normal: 4 zones.  Memory:
    # 3998044K/4193784K available (... 180068K reserved): totalram
    # 1048446 - 45017 = 1003429.  khugepaged: 512 * 4 * 11 * 4 = 90112 kB.
    "4G": ([(0x1, 0x9f, 0), (0x100, 0x80000, 0), (0x80000, 0xbffe0, 1),
            (0x100000, 0x140000, 1)],
           (0, 0, 1, 1),
           {(0, ZONE_DMA): 3840, (0, ZONE_DMA32): 500541, (1, ZONE_DMA32): 245491,
            (1, ZONE_NORMAL): 253557},
           90112,
           {(0, ZONE_DMA): (86, 107, 128), (0, ZONE_DMA32): (11237, 14046, 16855),
            (1, ZONE_DMA32): (5511, 6888, 8265), (1, ZONE_NORMAL): (5692, 7115, 8538)}),
}


@pytest.mark.parametrize("name", list(QEMU_GUESTS))
def test_qemu_guests_min_free_kbytes_and_watermarks(name: str) -> None:
    ranges, cpus, managed, mfk, wmarks = QEMU_GUESTS[name]
    m = Machine(qemu_config(ranges, cpus, managed))
    for (nid, z), n in managed.items():
        assert m.zone(nid, z).managed_pages == n
    assert m.min_free_kbytes == mfk
    for (nid, z), want in wmarks.items():
        w = m.zone(nid, z).watermarks
        assert (w["min"], w["low"], w["high"]) == want, (nid, z)


def test_host_snapshot_min_free_kbytes_and_watermarks(data_dir: Path) -> None:
    """tests/data/host-snapshot-1 (a real 24 GiB guest, Linux 6.18, THP on):
    its zoneinfo's watermarks follow from min_free_kbytes 67584 = 512 * 3
    zones * 11 pageblocks * 4 kB (the development machine's
    /proc/sys/vm/min_free_kbytes read the same).  The snapshot has no
    min_free_kbytes file: the model computes it from the zones' managed
    pages, and a recomputation gives the kernel's watermarks."""
    from dnuma.io.host import boot_from_host

    m = boot_from_host(data_dir / "host-snapshot-1", kpageflags=False).machine
    assert [m.zone(0, z).managed_pages for z in range(3)] == [3840, 772918, 589824]
    assert m.khugepaged_thread and m.min_free_kbytes == 67584
    init_per_zone_wmark_min(m)
    assert m.min_free_kbytes == 67584
    wm = [m.zone(0, z).watermarks for z in range(3)]
    assert [(w["min"], w["low"], w["high"]) for w in wm] == [
        (47, 58, 69), (9556, 11945, 14334), (7292, 9115, 10938)]
    assert m.zone(0, ZONE_DMA).lowmem_reserve == [0, 3019, 5323, 5323]
    assert m.zone(0, ZONE_DMA32).lowmem_reserve == [0, 0, 2304, 2304]


# ---------------------------------------------------------------- the formula
def high_wmarks(managed: list[int], mfk: int, page_shift: int = 12) -> list[int]:
    """__setup_per_zone_wmarks' high watermark of each zone (kernel zones
    only, so lowmem_pages is their sum)."""
    pages_min = mfk >> (page_shift - 10)
    lowmem = sum(managed)
    out = []
    for n in managed:
        tmp = pages_min * n // lowmem
        out.append(tmp + 2 * max(tmp // 4, n * 10 // 10000))
    return out


def free_buffer(managed: list[int], high: list[int]) -> int:
    """nr_free_buffer_pages over kernel zones."""
    return sum(max(0, n - h) for n, h in zip(managed, high, strict=True))


def kernel_boot(managed: list[int], present: list[int], zidx: list[int], pb: int,
                page_shift: int, thp: bool) -> int:
    """min_free_kbytes after boot, from the kernel's code (init_per_zone_wmark_min
    at postcore with every watermark 0, then hugepage_init), for zones given as
    lists (the watermark arithmetic of __setup_per_zone_wmarks inlined)."""
    kb = (1 << page_shift) >> 10

    def highs(mfk: int) -> list[int]:
        return high_wmarks(managed, mfk, page_shift)  # no ZONE_MOVABLE here

    def nr_free_buffer(high: list[int]) -> int:
        return sum(max(0, n - h) for n, h, z in zip(managed, high, zidx, strict=True)
                   if z <= ZONE_NORMAL)

    mfk = min(max(math.isqrt(16 * kb * nr_free_buffer([0] * len(managed))), 128), 262144)
    if sum(managed) < (512 << 20) >> page_shift:
        return mfk
    if not thp:
        return min(max(math.isqrt(16 * kb * nr_free_buffer(highs(mfk))), 128), 262144)
    nr_zones = sum(1 for p, z in zip(present, zidx, strict=True) if p and z <= ZONE_NORMAL)
    rec = min(pb * nr_zones * 2 + pb * nr_zones * 3 * 3, nr_free_buffer(highs(mfk)) // 20)
    return max(mfk, rec << (page_shift - 10))


def zones_of(m: Machine) -> tuple[list[int], list[int], list[int]]:
    gz = np.flatnonzero(m.S.zone_present > 0)
    return (m.S.zone_managed[gz].tolist(), m.S.zone_present[gz].tolist(),
            (gz % 4).tolist())


@pytest.mark.parametrize("kw", [
    dict(nodes=2, mem="128M", cpus=8),
    dict(nodes=2, mem="511M", cpus=2),
    dict(nodes=1, mem="512M", cpus=1),
    dict(nodes=2, mem="1G", cpus=4),
    dict(nodes=2, mem="6G", cpus=4),
    dict(nodes=4, mem="16G", cpus=8),
    dict(nodes=2, mem="2G", cpus=4, thp=False),
    dict(nodes=2, mem="8G", cpus=4, thp=False),
    dict(nodes=2, mem="2G", cpus=4, profile=PPC64),
], ids=lambda kw: "-".join(f"{v.name if k == 'profile' else v}" for k, v in kw.items()))
def test_khugepaged_raise_follows_the_kernel(kw: dict) -> None:
    m = boot(**kw)
    managed, present, zidx = zones_of(m)
    p = m.profile
    assert m.min_free_kbytes == kernel_boot(managed, present, zidx, p.pageblock_nr_pages,
                                            p.page_shift, kw.get("thp", True))
    big = sum(managed) >= (512 << 20) >> p.page_shift
    assert m.khugepaged_thread == (big and kw.get("thp", True))


def test_khugepaged_counts_populated_zones_of_every_node() -> None:
    """16G over 4 nodes of 4 GiB: node 0 DMA + DMA32, nodes 1-3 Normal: 5
    zones, 512 * 5 * 11 pages; 6G over 2 nodes: node 1 has DMA32 and Normal."""
    m = boot(nodes=4, mem="16G", cpus=4)
    assert m.min_free_kbytes == 512 * 5 * 11 * 4
    assert khugepaged_recommended_min_free_kbytes(m) == 512 * 5 * 11 * 4
    assert boot(nodes=2, mem="6G", cpus=2).min_free_kbytes == 512 * 4 * 11 * 4


def test_thp_off_is_the_sqrt_formula_recomputed() -> None:
    """2 GiB, 2 nodes: 3 zones up to ZONE_NORMAL.  With THP off,
    set_recommended_min_free_kbytes only runs calculate_min_free_kbytes again,
    now over managed - high (the high watermarks of the first, sqrt, value):
    a little below sqrt(16 * 2 GiB in kB) = 5792."""
    on, off = boot(nodes=2, mem="2G", cpus=2), boot(nodes=2, mem="2G", cpus=2, thp=False)
    assert on.min_free_kbytes == 512 * 3 * 11 * 4
    assert math.isqrt(16 * 4 * 524288) == 5792
    assert 5700 < off.min_free_kbytes < 5792


def test_thp_config_is_checked() -> None:
    with pytest.raises(ConfigError, match="thp: expected true or false"):
        MachineConfig.uniform(2, "128M", 2, thp="yes")
    assert MachineConfig.uniform(2, "128M", 2, thp=False).thp is False


def test_user_value_holds_until_init_per_zone_wmark_min_raises_it() -> None:
    """vm.min_free_kbytes written after boot holds (no khugepaged update in
    min_free_kbytes_sysctl_handler); the next init_per_zone_wmark_min (a
    commit) keeps it only if it beats both the sqrt value and khugepaged's."""
    layout = MemLayout.stripe([(0, 262144)], nodes=[0, 1], block_pfns=4096)
    m = boot(config=MachineConfig.uniform(2, "1G", 2, min_free_kbytes=2000))
    assert m.min_free_kbytes == m.user_min_free_kbytes == 2000
    kernel = np.flatnonzero((m.S.zone_present > 0) & (np.arange(m.S.zone_present.size) % 4
                                                      <= ZONE_NORMAL))
    old_high = m.S.wmark[kernel, 2].tolist()
    m.commit(layout)
    managed = m.S.zone_managed[kernel].tolist()
    # init_per_zone_wmark_min over the new managed pages: the sqrt over the
    # old high watermarks (beats 2000), then khugepaged's 5% of
    # nr_free_buffer_pages over the sqrt value's watermarks (beats that)
    sqrt_kb = math.isqrt(16 * 4 * free_buffer(managed, old_high))
    assert sqrt_kb > 2000
    rec = min(512 * len(kernel) * 11, free_buffer(managed, high_wmarks(managed, sqrt_kb)) // 20)
    assert m.min_free_kbytes == rec * 4 > sqrt_kb
    assert m.user_min_free_kbytes == 2000
    m = boot(config=MachineConfig.uniform(2, "1G", 2, min_free_kbytes=100000))
    m.commit(MemLayout.stripe(m.ram_ranges(), nodes=[0, 1], block_pfns=4096))
    assert m.min_free_kbytes == 100000


# ---------------------------------------------------------------- recomputation
def fresh_setup(m: Machine) -> dict[str, list]:
    """What init_per_zone_wmark_min gives from today's managed pages, on copies."""
    S = m.S
    keep = {k: getattr(S, k).copy() for k in ("wmark", "lowmem_reserve", "pcp_batch",
                                              "pcp_high_min", "pcp_high_max")}
    mfk = m.min_free_kbytes
    init_per_zone_wmark_min(m)
    out = {k: getattr(S, k).tolist() for k in keep}
    out["min_free_kbytes"] = [m.min_free_kbytes]
    for k, v in keep.items():
        getattr(S, k)[:] = v
    m.min_free_kbytes = mfk
    return out


def current_setup(m: Machine) -> dict[str, list]:
    S = m.S
    out = {k: getattr(S, k).tolist() for k in ("wmark", "lowmem_reserve", "pcp_batch",
                                               "pcp_high_min", "pcp_high_max")}
    out["min_free_kbytes"] = [m.min_free_kbytes]
    return out


def test_commit_recomputes_min_free_kbytes() -> None:
    """A7: the commit runs init_per_zone_wmark_min with calculate_min_free_kbytes,
    as online_pages / offline_pages and the RFC do: on the 128 MiB demo
    machine sqrt(16 * 4 * (managed - high)) = 1436 kB after the boot's 1448."""
    m = boot(nodes=2, mem="128M", cpus=8)
    assert m.min_free_kbytes == 1448
    free_buffer = nr_free_buffer_pages(m)  # managed - high, zones up to NORMAL
    assert free_buffer < 32768
    m.commit(MemLayout.stripe(m.ram_ranges(), nodes=[0, 1, 2], block_pfns=256))
    assert m.min_free_kbytes == math.isqrt(16 * 4 * free_buffer) == 1436


def test_redirected_frees_bring_the_zone_setup_along() -> None:
    """A2: freeing marked pages moves managed pages between zones; watermarks,
    lowmem_reserve, pcp batch/high and min_free_kbytes follow, as the kernel
    never changes managed pages without init_per_zone_wmark_min."""
    m = boot(nodes=2, mem="1G", cpus=4)
    held = [m.alloc_pages(order=0, cpu=c % 4) for c in range(20000)]
    m.commit(MemLayout.stripe(m.ram_ranges(), nodes=[0, 1, 2], block_pfns=512))
    before = m.S.zone_managed.copy()
    for pfn in held:
        assert pfn is not None
        m.free_pages(pfn, 0, cpu=0)
    assert not np.array_equal(before, m.S.zone_managed)
    assert current_setup(m) == fresh_setup(m)
    zoneinfo_min = int(m.S.wmark[2 * 4 + 1, 0])
    from dnuma.io.procfs import zoneinfo
    assert f"\n        min      {zoneinfo_min}\n" in zoneinfo(m)


def test_compiled_runs_are_synced_at_the_vmstat_tick() -> None:
    """After a compiled run moves managed pages (here the free path itself,
    called without Machine.free_pages), the next vmstat tick (or export)
    recomputes the zone set-up; nothing is recomputed when nothing moved."""
    from dnuma._kernels import alloc as _ka

    m = boot(nodes=2, mem="1G", cpus=4)
    held = [m.alloc_pages(order=0, cpu=0) for _ in range(5000)]
    m.commit(MemLayout.push(m.ram_ranges(), 2))
    for pfn in held:
        assert _ka.free_pages(m.S, pfn, 0, 0) == 0
    assert current_setup(m) != fresh_setup(m)
    m.vmstat_tick()
    assert current_setup(m) == fresh_setup(m)
    w = m.S.wmark.copy()
    m.sync_zones()
    assert np.array_equal(w, m.S.wmark)


def test_clamp_follows_the_kernel_when_lo_exceeds_hi() -> None:
    """include/linux/minmax.h __clamp: v >= hi ? hi : (v <= lo ? lo : v)."""
    from dnuma._kernels.buddy import clamp

    for v, lo, hi, want in ((5, 8, 4, 4), (9, 8, 4, 4), (0, 8, 4, 8), (3, 1, 7, 3),
                            (0, 1, 7, 1), (9, 1, 7, 7)):
        assert clamp(v, lo, hi) == want == ref_clamp(v, lo, hi)
