"""``/proc`` and ``/sys/devices/system/node/nodeN`` text files of the model
machine, exactly as Linux 6.12 (x86_64) prints them.

Pure functions of a :class:`~dnuma.mm.machine.Machine`; each names the kernel
function it follows.  The kernel configuration is Debian's 6.12 amd64 one
(``linux-config-6.12``), which decides which lines exist:

- ``CONFIG_ZONE_DEVICE=y``: the kernel has a fifth zone, ``Device``, after the
  model's four.  It is never populated, but ``/proc/zoneinfo`` prints it and
  every ``protection:`` tuple has ``MAX_NR_ZONES`` = 5 entries.
- ``CONFIG_CMA`` is off: no ``CMA`` migratetype in ``/proc/pagetypeinfo``, no
  ``CmaTotal``/``CmaFree`` and no ``cma_alloc_*`` events.  The model never
  uses its MIGRATE_CMA lists.
- On: NUMA, SWAP, ZSWAP, ZSMALLOC, MEMORY_FAILURE, TRANSPARENT_HUGEPAGE (with
  PUD), HUGETLB_PAGE, UNACCEPTED_MEMORY, NUMA_BALANCING, IOMMU_SUPPORT,
  MIGRATION, COMPACTION, MEMORY_BALLOON, BALLOON_COMPACTION, KSM,
  X86_DIRECT_GBPAGES.  Off: HIGHMEM, SHADOW_CALL_STACK, PAGE_OWNER,
  DEBUG_TLBFLUSH, PER_VMA_LOCK_STATS, DEBUG_STACK_USAGE.

Counters the model keeps are printed from its arrays: managed/present/free
pages, buddy lists by order and migratetype, pageblock migratetypes,
watermarks, lowmem_reserve, numastat, per-cpu lists.  Counters it does not
keep (page cache, anon, slab, reclaim and fault events, ...) print as 0.
Everything costs O(zones + nodes + CPUs) Python work plus, for
pagetypeinfo's block counts, one strided numpy pass over pageblock starts.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from ..mm.constants import (
    MAX_NR_ZONES,
    MIGRATE_CMA,
    MIGRATE_TYPES,
    MIGRATETYPE_NAMES,
    N_MEMORY,
    WMARK_HIGH,
    WMARK_LOW,
    WMARK_MIN,
    WMARK_PROMO,
    ZONE_NAMES,
    PG_hole,
)
from ..mm.mmzone import zone_span

if TYPE_CHECKING:
    from ..mm.machine import Machine

# ---------------------------------------------------------------- configuration
#: zone names as the kernel has them (zone_names[]): the model's zones + Device
KZONE_NAMES: tuple[str, ...] = (*ZONE_NAMES, "Device")
KMAX_NR_ZONES = len(KZONE_NAMES)  # the kernel's MAX_NR_ZONES with CONFIG_ZONE_DEVICE
#: migratetypes the kernel prints (migratetype_names[] without CONFIG_CMA)
PRINTED_MIGRATETYPES: tuple[int, ...] = tuple(t for t in range(MIGRATE_TYPES)
                                              if t != MIGRATE_CMA)
SIZEOF_STRUCT_PAGE = 64
PAGEBLOCK_COUNT_CAP = 100000  # pagetypeinfo_showfree_print() stops counting here
VM_DIRTY_RATIO = 20  # vm.dirty_ratio default
DIRTY_BACKGROUND_RATIO = 10  # vm.dirty_background_ratio default
OVERCOMMIT_RATIO = 50  # vm.overcommit_ratio default
UINT_MAX = 2**32 - 1
VMALLOC_TOTAL_KB = ((32 << 40) - 1) >> 10  # x86_64 4-level paging: 32 TiB less one byte
ISA_END_ADDRESS = 1 << 20

# ---------------------------------------------------------------- item names
# Names of the 6.12 enums as mm/vmstat.c vmstat_text[] lists them, with the
# configuration above.  (Linux 6.18, the host snapshot in tests/data, has
# nr_free_pages_blocks, nr_hugetlb, pgdemote_proactive, ... in addition and no
# nr_bounce / nr_writeback_temp.)
ZONE_STAT_NAMES: tuple[str, ...] = (
    "nr_free_pages", "nr_zone_inactive_anon", "nr_zone_active_anon",
    "nr_zone_inactive_file", "nr_zone_active_file", "nr_zone_unevictable",
    "nr_zone_write_pending", "nr_mlock", "nr_bounce", "nr_zspages", "nr_free_cma",
    "nr_unaccepted",
)
NR_FREE_PAGES = 0  # enum zone_stat_item
NUMA_EVENT_NAMES: tuple[str, ...] = (
    "numa_hit", "numa_miss", "numa_foreign", "numa_interleave", "numa_local", "numa_other",
)
NODE_STAT_NAMES: tuple[str, ...] = (
    "nr_inactive_anon", "nr_active_anon", "nr_inactive_file", "nr_active_file",
    "nr_unevictable", "nr_slab_reclaimable", "nr_slab_unreclaimable", "nr_isolated_anon",
    "nr_isolated_file", "workingset_nodes",
    *(f"workingset_{w}_{k}" for w in ("refault", "activate", "restore")
      for k in ("anon", "file")),
    "workingset_nodereclaim", "nr_anon_pages", "nr_mapped", "nr_file_pages", "nr_dirty",
    "nr_writeback", "nr_writeback_temp", "nr_shmem", "nr_shmem_hugepages",
    "nr_shmem_pmdmapped", "nr_file_hugepages", "nr_file_pmdmapped",
    "nr_anon_transparent_hugepages", "nr_vmscan_write", "nr_vmscan_immediate_reclaim",
    "nr_dirtied", "nr_written", "nr_throttled_written", "nr_kernel_misc_reclaimable",
    "nr_foll_pin_acquired", "nr_foll_pin_released", "nr_kernel_stack",
    "nr_page_table_pages", "nr_sec_page_table_pages", "nr_iommu_pages", "nr_swapcached",
    "pgpromote_success", "pgpromote_candidate",
    "pgdemote_kswapd", "pgdemote_direct", "pgdemote_khugepaged",
)
VM_STAT_NAMES: tuple[str, ...] = (
    "nr_dirty_threshold", "nr_dirty_background_threshold", "nr_memmap_pages",
    "nr_memmap_boot_pages",
)


def _per_zone(prefix: str) -> tuple[str, ...]:
    """TEXTS_FOR_ZONES(): one event per kernel zone."""
    return tuple(f"{prefix}_{z.lower()}" for z in KZONE_NAMES)


VM_EVENT_NAMES: tuple[str, ...] = (
    "pgpgin", "pgpgout", "pswpin", "pswpout",
    *_per_zone("pgalloc"), *_per_zone("allocstall"), *_per_zone("pgskip"),
    "pgfree", "pgactivate", "pgdeactivate", "pglazyfree", "pgfault", "pgmajfault",
    "pglazyfreed", "pgrefill", "pgreuse",
    "pgsteal_kswapd", "pgsteal_direct", "pgsteal_khugepaged",
    "pgscan_kswapd", "pgscan_direct", "pgscan_khugepaged", "pgscan_direct_throttle",
    "pgscan_anon", "pgscan_file", "pgsteal_anon", "pgsteal_file",
    "zone_reclaim_success", "zone_reclaim_failed",
    "pginodesteal", "slabs_scanned", "kswapd_inodesteal", "kswapd_low_wmark_hit_quickly",
    "kswapd_high_wmark_hit_quickly", "pageoutrun", "pgrotated", "drop_pagecache",
    "drop_slab", "oom_kill",
    "numa_pte_updates", "numa_huge_pte_updates", "numa_hint_faults",
    "numa_hint_faults_local", "numa_pages_migrated",
    "pgmigrate_success", "pgmigrate_fail", "thp_migration_success", "thp_migration_fail",
    "thp_migration_split",
    "compact_migrate_scanned", "compact_free_scanned", "compact_isolated", "compact_stall",
    "compact_fail", "compact_success", "compact_daemon_wake",
    "compact_daemon_migrate_scanned", "compact_daemon_free_scanned",
    "htlb_buddy_alloc_success", "htlb_buddy_alloc_fail",
    *(f"unevictable_pgs_{w}" for w in ("culled", "scanned", "rescued", "mlocked",
                                        "munlocked", "cleared", "stranded")),
    "thp_fault_alloc", "thp_fault_fallback", "thp_fault_fallback_charge",
    "thp_collapse_alloc", "thp_collapse_alloc_failed", "thp_file_alloc",
    "thp_file_fallback", "thp_file_fallback_charge", "thp_file_mapped", "thp_split_page",
    "thp_split_page_failed", "thp_deferred_split_page", "thp_underused_split_page",
    "thp_split_pmd", "thp_scan_exceed_none_pte", "thp_scan_exceed_swap_pte",
    "thp_scan_exceed_share_pte", "thp_split_pud", "thp_zero_page_alloc",
    "thp_zero_page_alloc_failed", "thp_swpout", "thp_swpout_fallback",
    "balloon_inflate", "balloon_deflate", "balloon_migrate",
    "swap_ra", "swap_ra_hit", "swpin_zero", "swpout_zero", "ksm_swpin_copy", "cow_ksm",
    "zswpin", "zswpout", "zswpwb",
    "direct_map_level2_splits", "direct_map_level3_splits",
)

# ---------------------------------------------------------------- model facts


def _kb(m: Machine, pages: int) -> int:
    """pages -> kB (the kernel's ``K()`` / ``<< (PAGE_SHIFT - 10)``)."""
    return int(pages) << (m.profile.page_shift - 10)


def _zone_stats(m: Machine) -> np.ndarray:
    """[gz, zone_stat_item] counters the kernel keeps per zone (pages).

    NR_FREE_PAGES is the buddy lists only: pages on per-cpu lists were taken
    off the buddy lists by rmqueue_bulk() and count as allocated, exactly as
    in the kernel (and isolated or CMA pages the model never has).
    """
    S = m.S
    out = np.zeros((S.zone_free.size, len(ZONE_STAT_NAMES)), dtype=np.int64)
    out[:, NR_FREE_PAGES] = S.zone_free
    return out


def _node_gz(nid: int) -> slice:
    return slice(nid * MAX_NR_ZONES, (nid + 1) * MAX_NR_ZONES)


def _online_mask(m: Machine) -> np.ndarray:
    """bool per global zone: the zone's node is online (for_each_zone)."""
    nodes = np.zeros(m.config.max_numnodes, dtype=bool)
    nodes[list(m.for_each_online_node())] = True
    return np.repeat(nodes, MAX_NR_ZONES)


def totalreserve_pages(m: Machine) -> int:
    """calculate_totalreserve_pages(): over the zones of online nodes, the
    largest lowmem_reserve plus the high watermark, capped at managed pages."""
    S = m.S
    res = np.maximum(S.lowmem_reserve.max(axis=1), 0) + S.wmark[:, WMARK_HIGH]
    res = np.minimum(res, S.zone_managed)
    return int(res[_online_mask(m)].sum())


def si_mem_available(m: Machine) -> int:
    """si_mem_available(): free pages less totalreserve_pages, plus the
    reclaimable part of page cache and reclaimable slab (both 0 in the
    model), never negative.  Pages."""
    S = m.S
    free = int(S.zone_free.sum())
    wmark_low = int(S.wmark[_online_mask(m), WMARK_LOW].sum())
    available = free - totalreserve_pages(m)
    pagecache = 0  # NR_ACTIVE_FILE + NR_INACTIVE_FILE
    available += pagecache - min(pagecache // 2, wmark_low)
    reclaimable = 0  # NR_SLAB_RECLAIMABLE_B + NR_KERNEL_MISC_RECLAIMABLE
    available += reclaimable - min(reclaimable // 2, wmark_low)
    return max(available, 0)


def global_dirty_limits(m: Machine) -> tuple[int, int]:
    """global_dirty_limits() -> (background, dirty) thresholds in pages:
    vm.dirty_background_ratio / vm.dirty_ratio of global_dirtyable_memory()
    (free pages above totalreserve_pages, plus file LRU pages, plus 1)."""
    free = int(m.S.zone_free.sum())
    avail = free - min(free, totalreserve_pages(m)) + 0 + 1
    page = m.profile.page_size
    ratio = VM_DIRTY_RATIO * page // 100  # domain_dirty_limits(): per-PAGE_SIZE ratios
    bg_ratio = DIRTY_BACKGROUND_RATIO * page // 100
    thresh = min(ratio * avail // page, UINT_MAX)
    bg = bg_ratio * avail // page
    if bg >= thresh:
        bg = thresh // 2
    return bg, thresh


def nr_memmap_boot_pages(m: Machine) -> int:
    """sparse_init_nid(): each present section's memmap, in pages."""
    S = m.S
    nsec = int(np.count_nonzero(S.sec_present.sum(axis=1)))
    per = -(-(m.profile.pages_per_section * SIZEOF_STRUCT_PAGE) // m.profile.page_size)
    return nsec * per


def _direct_map(m: Machine) -> tuple[int, int, int]:
    """Bytes of the direct map in 4 KiB, 2 MiB and 1 GiB pages.

    init_mem_mapping(): the ISA range first with 4 KiB pages, then each RAM
    range cut by split_mem_range() (4k head, 2M up to 1G alignment, 1G body,
    2M tail, 4k tail).  Later splits by set_memory_*() are not modelled.
    """
    shift = m.profile.page_shift
    pmd, pud = 1 << 21, 1 << 30
    out = [0, 0, 0]

    def up(x: int, a: int) -> int:
        return -(-x // a) * a

    for s_pfn, e_pfn in m.ram_ranges():
        s, e = s_pfn << shift, e_pfn << shift
        if s < ISA_END_ADDRESS:
            out[0] += min(e, ISA_END_ADDRESS) - s
            s = min(e, ISA_END_ADDRESS)
        if s >= e:
            continue
        pos = s
        cut = min(up(pos, pmd), e)
        out[0] += cut - pos
        pos = cut
        cut = min(up(pos, pud), e // pmd * pmd)
        if cut > pos:
            out[1] += cut - pos
            pos = cut
        cut = e // pud * pud
        if cut > up(pos, pud):
            out[2] += cut - pos
            pos = cut
        cut = e // pmd * pmd
        if cut > up(pos, pmd):
            out[1] += cut - pos
            pos = cut
        out[0] += e - pos
    return out[0], out[1], out[2]


def _hugepage_kb(m: Machine) -> int:
    """The default hstate's size (HPAGE_PMD_SIZE: 2 MiB on x86_64), kB."""
    return (m.profile.page_size << m.profile.pageblock_order) >> 10


# ---------------------------------------------------------------- /proc/cpuinfo
CPU_VENDOR = "GenuineIntel"
CPU_FAMILY, CPU_MODEL, CPU_STEPPING = 6, 85, 7
CPU_MODEL_NAME = "Intel Xeon Processor (Cascadelake)"
CPU_MHZ = "2400.000"
CPU_CACHE_KB = 16384
CPU_CPUID_LEVEL = 13
CPU_BOGOMIPS = "4800.00"
CPU_FLAGS = (
    "fpu vme de pse tsc msr pae mce cx8 apic sep mtrr pge mca cmov pat pse36 clflush mmx "
    "fxsr sse sse2 ss syscall nx pdpe1gb rdtscp lm constant_tsc rep_good nopl xtopology "
    "cpuid tsc_known_freq pni pclmulqdq ssse3 fma cx16 pcid sse4_1 sse4_2 x2apic movbe "
    "popcnt tsc_deadline_timer aes xsave avx f16c rdrand hypervisor lahf_lm abm "
    "3dnowprefetch fsgsbase tsc_adjust bmi1 avx2 smep bmi2 erms invpcid avx512f avx512dq "
    "rdseed adx smap clflushopt clwb avx512cd avx512bw avx512vl xsaveopt xsavec xgetbv1 "
    "xsaves arat pku ospke avx512_vnni md_clear arch_capabilities"
)
CPU_BUGS = "spectre_v1 spectre_v2 spec_store_bypass swapgs taa itlb_multihit mmio_stale_data"


def cpuinfo(m: Machine) -> str:
    """``/proc/cpuinfo``: one stanza per online CPU (show_cpuinfo(), x86).

    The model has no CPU identity: every CPU is the same virtual Cascade
    Lake.  Topology as the sysfs tree has it: one package per node
    (``physical id`` = the CPU's node), one core per CPU, one thread per core.
    """
    c2n = m.topo.cpu_to_node.tolist()
    pkg = m.topo.cpu_packages()
    width = max(len(v) for v in pkg.values())
    core_bits = (width - 1).bit_length()
    top = (m.max_pfn << m.profile.page_shift) - 1
    phys_bits = max(40, top.bit_length())
    out: list[str] = []
    for cpu, nid in enumerate(c2n):
        cores = pkg[nid]
        core = cores.index(cpu)
        apicid = (nid << core_bits) | core
        out.append(
            f"processor\t: {cpu}\n"
            f"vendor_id\t: {CPU_VENDOR}\n"
            f"cpu family\t: {CPU_FAMILY}\n"
            f"model\t\t: {CPU_MODEL}\n"
            f"model name\t: {CPU_MODEL_NAME}\n"
            f"stepping\t: {CPU_STEPPING}\n"
            f"microcode\t: 0x1\n"
            f"cpu MHz\t\t: {CPU_MHZ}\n"
            f"cache size\t: {CPU_CACHE_KB} KB\n"
            # show_cpuinfo_core()
            f"physical id\t: {nid}\n"
            f"siblings\t: {len(cores)}\n"
            f"core id\t\t: {core}\n"
            f"cpu cores\t: {len(cores)}\n"
            f"apicid\t\t: {apicid}\n"
            f"initial apicid\t: {apicid}\n"
            # show_cpuinfo_misc(), x86_64
            f"fpu\t\t: yes\n"
            f"fpu_exception\t: yes\n"
            f"cpuid level\t: {CPU_CPUID_LEVEL}\n"
            f"wp\t\t: yes\n"
            f"flags\t\t: {CPU_FLAGS}\n"
            f"bugs\t\t: {CPU_BUGS}\n"
            f"bogomips\t: {CPU_BOGOMIPS}\n"
            f"clflush size\t: 64\n"
            f"cache_alignment\t: 64\n"
            f"address sizes\t: {phys_bits} bits physical, 48 bits virtual\n"
            f"power management:\n\n"
        )
    return "".join(out)


# ---------------------------------------------------------------- meminfo


def _val_kb(label: str, kb: int) -> str:
    """show_val_kb(): the label padded to 16 columns, the value in 8."""
    return f"{label:<16}{kb:>8} kB\n"


def meminfo(m: Machine) -> str:
    """``/proc/meminfo`` (meminfo_proc_show()), values in kB.

    MemTotal = totalram_pages() = Σ managed pages; MemFree = NR_FREE_PAGES
    (buddy lists only, not per-cpu lists); MemAvailable = si_mem_available();
    CommitLimit = overcommit_ratio (50 %) of MemTotal; the DirectMap lines
    follow the RAM ranges (see :func:`_direct_map`).
    """
    m.sync_zones()  # watermarks and reserves as the kernel holds them
    S = m.S
    total = int(S.zone_managed.sum())
    free = int(S.zone_free.sum())
    lines = [
        _val_kb("MemTotal:", _kb(m, total)),
        _val_kb("MemFree:", _kb(m, free)),
        _val_kb("MemAvailable:", _kb(m, si_mem_available(m))),
    ]
    lines += [_val_kb(f"{name}:", 0) for name in (
        "Buffers", "Cached", "SwapCached", "Active", "Inactive", "Active(anon)",
        "Inactive(anon)", "Active(file)", "Inactive(file)", "Unevictable", "Mlocked",
        "SwapTotal", "SwapFree", "Zswap", "Zswapped", "Dirty", "Writeback", "AnonPages",
        "Mapped", "Shmem", "KReclaimable", "Slab", "SReclaimable", "SUnreclaim",
        "KernelStack", "PageTables", "SecPageTables", "NFS_Unstable", "Bounce",
        "WritebackTmp")]
    lines += [
        _val_kb("CommitLimit:", _kb(m, total * OVERCOMMIT_RATIO // 100)),  # vm_commit_limit()
        _val_kb("Committed_AS:", 0),
        _val_kb("VmallocTotal:", VMALLOC_TOTAL_KB),
        _val_kb("VmallocUsed:", 0),
        _val_kb("VmallocChunk:", 0),
        _val_kb("Percpu:", 0),
        f"HardwareCorrupted: {0:>5} kB\n",  # CONFIG_MEMORY_FAILURE
    ]
    lines += [_val_kb(f"{name}:", 0) for name in (
        "AnonHugePages", "ShmemHugePages", "ShmemPmdMapped", "FileHugePages",
        "FilePmdMapped", "Unaccepted")]
    # hugetlb_report_meminfo(): the default hstate, no huge pages reserved
    lines += [
        f"HugePages_Total:   {0:>5}\n",
        f"HugePages_Free:    {0:>5}\n",
        f"HugePages_Rsvd:    {0:>5}\n",
        f"HugePages_Surp:    {0:>5}\n",
        _val_kb("Hugepagesize:", _hugepage_kb(m)),
        _val_kb("Hugetlb:", 0),
    ]
    if m.profile.name == "x86_64":  # arch_report_meminfo(), arch/x86/mm/pat/set_memory.c
        d4k, d2m, d1g = _direct_map(m)
        lines += [_val_kb("DirectMap4k:", d4k >> 10), _val_kb("DirectMap2M:", d2m >> 10),
                  _val_kb("DirectMap1G:", d1g >> 10)]
    return "".join(lines)


def node_meminfo(m: Machine, nid: int) -> str:
    """``/sys/devices/system/node/node<nid>/meminfo`` (node_read_meminfo()):
    ``Node <nid> `` + label padded to 16 columns + ``%8lu kB``, in kB, then
    the default hstate's HugePages lines (hugetlb_report_node_meminfo())."""
    S = m.S
    g = _node_gz(nid)
    total = int(S.zone_managed[g].sum())  # si_meminfo_node()
    free = int(S.zone_free[g].sum())
    vals = [("MemTotal", total), ("MemFree", free), ("MemUsed", total - free)]
    vals += [(name, 0) for name in (
        "SwapCached", "Active", "Inactive", "Active(anon)", "Inactive(anon)",
        "Active(file)", "Inactive(file)", "Unevictable", "Mlocked", "Dirty", "Writeback",
        "FilePages", "Mapped", "AnonPages", "Shmem", "KernelStack", "PageTables",
        "SecPageTables", "NFS_Unstable", "Bounce", "WritebackTmp", "KReclaimable", "Slab",
        "SReclaimable", "SUnreclaim", "AnonHugePages", "ShmemHugePages", "ShmemPmdMapped",
        "FileHugePages", "FilePmdMapped", "Unaccepted")]
    lines = [f"Node {nid} {name + ':':<16}{_kb(m, v):>8} kB\n" for name, v in vals]
    lines += [f"Node {nid} {label:<17}{0:>5}\n"
              for label in ("HugePages_Total:", "HugePages_Free:", "HugePages_Surp:")]
    return "".join(lines)


# ---------------------------------------------------------------- numastat / vmstat


def node_numastat(m: Machine, nid: int) -> str:
    """``node<nid>/numastat`` (node_read_numastat()): the six numa events
    summed over the node's zones, ``<name> %lu`` each."""
    return "".join(f"{k} {v}\n" for k, v in m.numastat(nid).items())


def _items(names: tuple[str, ...], values: np.ndarray | list[int] | None = None) -> list[str]:
    if values is None:
        return [f"{n} 0\n" for n in names]
    return [f"{n} {int(v)}\n" for n, v in zip(names, values, strict=True)]


def node_vmstat(m: Machine, nid: int) -> str:
    """``node<nid>/vmstat`` (node_read_vmstat()): zone items summed over the
    node's zones, the numa events, then the node items (0 in the model)."""
    g = _node_gz(nid)
    zs = _zone_stats(m)[g].sum(axis=0)
    numa = m.S.numa_stat[g].sum(axis=0)
    return "".join(_items(ZONE_STAT_NAMES, zs) + _items(NUMA_EVENT_NAMES, numa)
                   + _items(NODE_STAT_NAMES))


def vmstat(m: Machine) -> str:
    """``/proc/vmstat`` (vmstat_start()/vmstat_show()): global zone items,
    numa events, node items, the dirty thresholds and memmap pages, the vm
    events (0: the model counts none of them), and the deprecated
    ``nr_unstable 0`` last."""
    m.sync_zones()  # the dirty thresholds follow totalreserve_pages
    zs = _zone_stats(m).sum(axis=0)
    numa = m.S.numa_stat.sum(axis=0)
    bg, dirty = global_dirty_limits(m)
    vm = [dirty, bg, 0, nr_memmap_boot_pages(m)]
    return "".join(_items(ZONE_STAT_NAMES, zs) + _items(NUMA_EVENT_NAMES, numa)
                   + _items(NODE_STAT_NAMES) + _items(VM_STAT_NAMES, vm)
                   + _items(VM_EVENT_NAMES) + ["nr_unstable 0\n"])


# ---------------------------------------------------------------- buddy lists


def _populated(m: Machine, nid: int) -> list[int]:
    """Populated zone indices of node ``nid`` (populated_zone())."""
    return np.flatnonzero(m.S.zone_present[_node_gz(nid)] > 0).tolist()


def buddyinfo(m: Machine) -> str:
    """``/proc/buddyinfo`` (frag_show_print()): per online node and populated
    zone, ``free_area[order].nr_free`` (blocks, all migratetypes) for each
    order, ``%6lu `` each."""
    nr_free = m.S.free_cnt.sum(axis=2)
    out: list[str] = []
    for nid in m.for_each_online_node():
        for z in _populated(m, nid):
            cols = "".join(f"{c:6d} " for c in nr_free[nid * MAX_NR_ZONES + z].tolist())
            out.append(f"Node {nid}, zone {KZONE_NAMES[z]:>8} {cols}\n")
    return "".join(out)


def pageblock_counts(m: Machine, gz: int) -> np.ndarray:
    """Pageblocks of zone ``gz`` by migratetype, as
    pagetypeinfo_showblockcount_print() counts them: the pfns
    zone_start_pfn + k * pageblock_nr_pages below zone_end_pfn that are
    present and belong to the zone, each counted by its pageblock's type.

    One strided view of page_nid / page_zone / page_flags per zone, no loop
    over pageblocks.  (The kernel also counts holes with an initialised
    memmap inside an online section; the model has no struct page for holes.)
    """
    S = m.S
    start, spanned = zone_span(m, gz)
    counts = np.zeros(MIGRATE_TYPES, dtype=np.int64)
    if spanned <= 0:
        return counts
    step = 1 << m.profile.pageblock_order
    sl = slice(start, start + spanned, step)
    nid, zidx = divmod(gz, MAX_NR_ZONES)
    ok = ((S.page_nid[sl] == nid) & (S.page_zone[sl] == zidx)
          & ((S.page_flags[sl] & PG_hole) == 0))
    pfns_pb = np.arange(start, start + spanned, step)[ok] >> m.profile.pageblock_order
    counts += np.bincount(S.pb_mt[pfns_pb].astype(np.int64), minlength=MIGRATE_TYPES)[
        :MIGRATE_TYPES]
    return counts


def pagetypeinfo(m: Machine) -> str:
    """``/proc/pagetypeinfo`` (pagetypeinfo_show()): for each online node
    with memory, free blocks by zone, migratetype and order (a count reaching
    100000 prints as ``>100000``), then pageblocks by migratetype per zone.
    No mixed-blocks section (CONFIG_PAGE_OWNER is off)."""
    S = m.S
    p = m.profile
    names = [MIGRATETYPE_NAMES[t] for t in PRINTED_MIGRATETYPES]
    orders = "".join(f"{o:6d} " for o in range(p.nr_page_orders))
    out: list[str] = []
    for nid in m.for_each_online_node():
        if not m.topo.node_states[N_MEMORY, nid]:
            continue
        zones = _populated(m, nid)
        out.append(f"Page block order: {p.pageblock_order}\n"
                   f"Pages per block:  {p.pageblock_nr_pages}\n\n")
        # pagetypeinfo_showfree()
        out.append(f"{'Free pages count per migrate type at order':<43} {orders}\n")
        for z in zones:
            cnt = S.free_cnt[nid * MAX_NR_ZONES + z]
            for t in PRINTED_MIGRATETYPES:
                cols = "".join(">100000 " if c >= PAGEBLOCK_COUNT_CAP else f"{c:6d} "
                               for c in cnt[:, t].tolist())
                out.append(f"Node {nid:4d}, zone {KZONE_NAMES[z]:>8}, type "
                           f"{MIGRATETYPE_NAMES[t]:>12} {cols}\n")
        # pagetypeinfo_showblockcount()
        out.append(f"\n{'Number of blocks type ':<23}" + "".join(f"{n:>12} " for n in names)
                   + "\n")
        for z in zones:
            bc = pageblock_counts(m, nid * MAX_NR_ZONES + z).tolist()
            cols = "".join(f"{bc[t]:12d} " for t in PRINTED_MIGRATETYPES)
            out.append(f"Node {nid}, zone {KZONE_NAMES[z]:>8} {cols}\n")
    return "".join(out)


# ---------------------------------------------------------------- zoneinfo


def _protection(m: Machine, gz: int | None) -> list[int]:
    """lowmem_reserve[0..KMAX_NR_ZONES-1] of a zone (gz None: ZONE_DEVICE).

    The Device column is setup_per_zone_lowmem_reserve()'s value for the
    empty ZONE_DEVICE: the sum of managed pages above zone i up to Device,
    i.e. the Movable column again (ZONE_MOVABLE's ratio is 0, so its own is 0).
    """
    if gz is None:
        return [0] * KMAX_NR_ZONES
    row = m.S.lowmem_reserve[gz].tolist()
    return [*row, row[-1] if gz % MAX_NR_ZONES < MAX_NR_ZONES - 1 else 0]


def zoneinfo(m: Machine) -> str:
    """``/proc/zoneinfo`` (zoneinfo_show_print()): every zone of every online
    node, populated or not, including the never-populated ``Device`` zone.

    The node's first populated zone carries the per-node stats; an
    unpopulated zone stops after ``protection``; a populated one goes on with
    its zone stats, numa events, the pageset of every online CPU (count,
    high, batch, vm stats threshold), node_unreclaimable and start_pfn.
    Watermarks, spans and counts are pages.
    """
    m.sync_zones()  # watermarks, protection and pcp batch as the kernel holds them
    S = m.S
    zstats = _zone_stats(m)
    online = np.flatnonzero(m.topo.cpu_online).tolist()
    out: list[str] = []
    node_stats = "".join(f"\n      {n:<12} 0" for n in NODE_STAT_NAMES)
    for nid in m.for_each_online_node():
        zones = _populated(m, nid)
        first = zones[0] if zones else -1
        for z in range(KMAX_NR_ZONES):
            out.append(f"Node {nid}, zone {KZONE_NAMES[z]:>8}")
            if z == first:
                out.append("\n  per-node stats" + node_stats)
            gz = nid * MAX_NR_ZONES + z if z < MAX_NR_ZONES else None
            if gz is None:
                free = boost = spanned = present = managed = 0
                wm = [0, 0, 0, 0]
                start = 0
            else:
                free = int(S.zone_free[gz])
                boost = 0  # watermark_boost: the model does not boost
                start, spanned = zone_span(m, gz)
                present = int(S.zone_present[gz])
                managed = int(S.zone_managed[gz])
                w = S.wmark[gz]
                wm = [int(w[WMARK_MIN]), int(w[WMARK_LOW]), int(w[WMARK_HIGH]),
                      int(w[WMARK_PROMO])]
            out.append(
                f"\n  pages free     {free}"
                f"\n        boost    {boost}"
                f"\n        min      {wm[0]}"
                f"\n        low      {wm[1]}"
                f"\n        high     {wm[2]}"
                f"\n        promo    {wm[3]}"
                f"\n        spanned  {spanned}"
                f"\n        present  {present}"
                f"\n        managed  {managed}"
                f"\n        cma      0"
                f"\n        protection: ({', '.join(map(str, _protection(m, gz)))})")
            if gz is None or present == 0:
                out.append("\n")
                continue
            out.append("".join(f"\n      {n:<12} {int(v)}"
                               for n, v in zip(ZONE_STAT_NAMES, zstats[gz], strict=True)))
            out.append("".join(f"\n      {n:<12} {int(v)}"
                               for n, v in zip(NUMA_EVENT_NAMES, S.numa_stat[gz], strict=True)))
            out.append("\n  pagesets")  # for_each_online_cpu
            batch = int(S.pcp_batch[gz])
            thr = int(S.zone_stat_threshold[gz])  # refresh_zone_stat_thresholds' value
            count = S.pcp_count[:, gz].tolist()
            high = S.pcp_high[:, gz].tolist()
            out.append("".join(
                f"\n    cpu: {cpu}"
                f"\n              count: {count[cpu]}"
                f"\n              high:  {high[cpu]}"
                f"\n              batch: {batch}"
                f"\n  vm stats threshold: {thr}" for cpu in online))
            out.append(f"\n  node_unreclaimable:  0"
                       f"\n  start_pfn:           {start}\n")
    return "".join(out)


# ---------------------------------------------------------------- tables

PROC_FILES: dict[str, Callable[[Machine], str]] = {
    "cpuinfo": cpuinfo,
    "meminfo": meminfo,
    "buddyinfo": buddyinfo,
    "pagetypeinfo": pagetypeinfo,
    "zoneinfo": zoneinfo,
    "vmstat": vmstat,
}
NODE_FILES: dict[str, Callable[[Machine, int], str]] = {
    "meminfo": node_meminfo,
    "numastat": node_numastat,
    "vmstat": node_vmstat,
}

__all__ = [
    "NODE_FILES", "PROC_FILES", "buddyinfo", "cpuinfo", "meminfo", "node_meminfo",
    "node_numastat", "node_vmstat", "pageblock_counts", "pagetypeinfo", "vmstat", "zoneinfo",
]
