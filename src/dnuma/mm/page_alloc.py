"""Zone set-up of mm/page_alloc.c done in Python (a few values per zone):
watermarks, lowmem reserves, per-cpu batch/high, zonelists, node states; and
the memory-policy object that alloc_pages() takes."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from .._kernels.state import P_MOBILITY_OFF, P_POLICY_ZONE
from .constants import (
    LOWMEM_RESERVE_RATIO,
    MAX_NR_ZONES,
    MIGRATE_PCPTYPES,
    MPOL_BIND,
    MPOL_DEFAULT,
    MPOL_INTERLEAVE,
    MPOL_LOCAL,
    MPOL_PREFERRED,
    N_CPU,
    N_MEMORY,
    N_NORMAL_MEMORY,
    N_ONLINE,
    POLICY_NAMES,
    WATERMARK_SCALE_FACTOR,
    WMARK_HIGH,
    WMARK_LOW,
    WMARK_MIN,
    WMARK_PROMO,
    ZONE_MOVABLE,
    ZONE_NORMAL,
)
from .errors import AllocArgError, check_int, is_int, show
from .memlayout import NID_LIMIT

if TYPE_CHECKING:
    from .machine import Machine

SWAP_CLUSTER_MAX = 32
MIN_PERCPU_PAGELIST_HIGH_FRACTION = 8
PENALTY_FOR_NODE_WITH_CPUS = 1
#: MIGRATE_TYPES of the modelled config (CONFIG_CMA off: UNMOVABLE, MOVABLE,
#: RECLAIMABLE, HIGHATOMIC, ISOLATE), which page_group_by_mobility_disabled uses
MIGRATE_TYPES_NO_CMA = 5


class MemPolicy:
    """A task memory policy (mm/mempolicy.c): local, preferred, bind or
    interleave over ``nodes``.  Interleave keeps its cursor (``il_prev``)."""

    def __init__(self, mode: str | int = "local", nodes: Sequence[int] = ()) -> None:
        """``mode``: a POLICY_NAMES name or an MPOL_* value; ``nodes``: node ids
        in [0, NID_LIMIT) (a machine checks its own MAX_NUMNODES when it
        allocates).  AllocArgError otherwise."""
        m = POLICY_NAMES.get(mode) if isinstance(mode, str) else mode if is_int(mode) else None
        if m is None or m not in (MPOL_DEFAULT, MPOL_LOCAL, MPOL_PREFERRED, MPOL_BIND,
                                  MPOL_INTERLEAVE):
            raise AllocArgError(f"policy: unknown mode {mode!r} (expected one of "
                                f"{', '.join(POLICY_NAMES)})")
        self.mode = int(m)
        try:
            vals = list(nodes)
        except TypeError:
            raise AllocArgError(f"policy nodes: expected a sequence of node ids, got "
                                f"{show(nodes)}") from None
        self.nodes = sorted({check_int(f"policy nodes[{i}]", n, 0, NID_LIMIT, AllocArgError,
                                       " (nids are int16; a machine checks its MAX_NUMNODES)")
                             for i, n in enumerate(vals)})
        if self.mode in (MPOL_PREFERRED, MPOL_BIND, MPOL_INTERLEAVE) and not self.nodes:
            raise AllocArgError(f"policy {mode!r} needs at least one node")
        self._arrays: tuple[np.ndarray, np.ndarray] | None = None

    def arrays(self, max_numnodes: int) -> tuple[np.ndarray, np.ndarray]:
        """(nodemask as bools, interleave cursor) sized for a machine."""
        if self._arrays is None or self._arrays[0].size != max_numnodes:
            if self.nodes and self.nodes[-1] >= max_numnodes:
                raise AllocArgError(f"policy: node {self.nodes[-1]} outside "
                                    f"[0, {max_numnodes}) (this machine's MAX_NUMNODES)")
            mask = np.zeros(max_numnodes, dtype=np.bool_)
            mask[self.nodes] = True
            # set_mempolicy resets il_prev to MAX_NUMNODES - 1: the first
            # interleaved allocation lands on the lowest node of the mask.
            self._arrays = (mask, np.full(1, max_numnodes - 1, dtype=np.int64))
        return self._arrays

    def __repr__(self) -> str:
        name = {v: k for k, v in POLICY_NAMES.items()}[self.mode]
        return f"MemPolicy({name!r}, {self.nodes})"


@dataclass
class VmTunables:
    """The vm tunables the zone set-up reads (mm/page_alloc.c's and
    mm/huge_memory.c's globals, written through /proc/sys/vm and
    /sys/kernel/mm/transparent_hugepage; see :mod:`dnuma.mm.sysctl`)."""

    watermark_scale_factor: int = WATERMARK_SCALE_FACTOR
    lowmem_reserve_ratio: tuple[int, ...] = LOWMEM_RESERVE_RATIO  # per zone (MAX_NR_ZONES)
    percpu_pagelist_high_fraction: int = 0  # 0: pcp high auto-tuned
    thp: bool = True  # hugepage_pmd_enabled(): THP "always" or "madvise"

    def as_dict(self) -> dict[str, Any]:
        return {"watermark_scale_factor": self.watermark_scale_factor,
                "lowmem_reserve_ratio": list(self.lowmem_reserve_ratio),
                "percpu_pagelist_high_fraction": self.percpu_pagelist_high_fraction,
                "thp": self.thp}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> VmTunables:
        return cls(int(d["watermark_scale_factor"]),
                   tuple(int(v) for v in d["lowmem_reserve_ratio"]),
                   int(d["percpu_pagelist_high_fraction"]), bool(d["thp"]))


def int_sqrt(x: int) -> int:
    return math.isqrt(max(0, x))


#: calculate_min_free_kbytes() clamps the value it computes to these (kB)
MIN_FREE_KBYTES_MIN = 128
MIN_FREE_KBYTES_MAX = 262144
#: mm/huge_memory.c hugepage_init(): THP (and khugepaged) stay off below this much RAM
THP_MIN_TOTALRAM_BYTES = 512 << 20


def _kernel_zones(m: Machine) -> np.ndarray:
    """bool per global zone: zone_idx <= gfp_zone(GFP_USER) (ZONE_NORMAL)."""
    return (np.arange(m.S.zone_managed.size) % MAX_NR_ZONES) <= ZONE_NORMAL


def totalram_pages(m: Machine) -> int:
    """totalram_pages(): managed pages of every zone."""
    return int(m.S.zone_managed.sum())


def nr_free_buffer_pages(m: Machine) -> int:
    """nr_free_buffer_pages() -> nr_free_zone_pages(gfp_zone(GFP_USER)): over
    the zones up to ZONE_NORMAL of the local node's GFP_KERNEL zonelist (every
    zone with managed pages), managed - high watermark where positive."""
    S = m.S
    free_buf = np.maximum(0, S.zone_managed - S.wmark[:, WMARK_HIGH])[_kernel_zones(m)]
    return int(free_buf.sum())


def calculate_min_free_kbytes(m: Machine) -> None:
    """calculate_min_free_kbytes: sqrt(16 * lowmem kB), clamped to
    [MIN_FREE_KBYTES_MIN, MIN_FREE_KBYTES_MAX] kB, unless the user's value
    (user_min_free_kbytes, set by a sysctl write) is at least that."""
    lowmem_kb = nr_free_buffer_pages(m) * (m.profile.page_size >> 10)
    new = int_sqrt(lowmem_kb * 16)
    if new > m.user_min_free_kbytes:
        m.min_free_kbytes = min(max(new, MIN_FREE_KBYTES_MIN), MIN_FREE_KBYTES_MAX)


def khugepaged_recommended_min_free_kbytes(m: Machine) -> int:
    """set_recommended_min_free_kbytes()'s value (kB): 2 + MIGRATE_PCPTYPES**2
    pageblocks for each populated zone up to ZONE_NORMAL (of every node;
    ZONE_MOVABLE is skipped), at most 5% of nr_free_buffer_pages()."""
    nr_zones = int(np.count_nonzero((m.S.zone_present > 0) & _kernel_zones(m)))
    pb = m.profile.pageblock_nr_pages
    recommended = pb * nr_zones * 2
    recommended += pb * nr_zones * MIGRATE_PCPTYPES * MIGRATE_PCPTYPES
    recommended = min(recommended, nr_free_buffer_pages(m) // 20)
    return recommended << (m.profile.page_shift - 10)


def set_recommended_min_free_kbytes(m: Machine) -> None:
    """mm/khugepaged.c set_recommended_min_free_kbytes: with PMD-sized THP on,
    raise min_free_kbytes to the recommendation if it is larger (a value the
    user wrote is raised too: the kernel only logs it); with THP off
    (hugepage_pmd_enabled() false) recompute it with
    calculate_min_free_kbytes.  Then setup_per_zone_wmarks either way."""
    if not m.vm.thp:
        calculate_min_free_kbytes(m)
    else:
        recommended = khugepaged_recommended_min_free_kbytes(m)
        if recommended > m.min_free_kbytes:
            m.min_free_kbytes = recommended
    setup_per_zone_wmarks(m)


def hugepage_init(m: Machine) -> None:
    """mm/huge_memory.c hugepage_init (subsys_initcall, after
    init_per_zone_wmark_min): below THP_MIN_TOTALRAM_BYTES of RAM THP is
    turned off and khugepaged never starts; otherwise start_stop_khugepaged
    starts the thread if THP is on (``thp``) and calls
    set_recommended_min_free_kbytes in both cases."""
    m.khugepaged_thread = False
    if totalram_pages(m) < THP_MIN_TOTALRAM_BYTES >> m.profile.page_shift:
        m.vm.thp = False  # transparent_hugepage_flags = 0: THP "never"
        return
    start_stop_khugepaged(m)


def start_stop_khugepaged(m: Machine) -> None:
    """mm/khugepaged.c start_stop_khugepaged: the thread runs while PMD THP
    is on; set_recommended_min_free_kbytes either way."""
    m.khugepaged_thread = bool(m.vm.thp)
    set_recommended_min_free_kbytes(m)


def khugepaged_min_free_kbytes_update(m: Machine) -> None:
    """khugepaged_min_free_kbytes_update: set_recommended_min_free_kbytes
    again when PMD THP is on and khugepaged runs."""
    if m.vm.thp and m.khugepaged_thread:
        set_recommended_min_free_kbytes(m)


def min_free_kbytes_sysctl_handler(m: Machine, kbytes: int) -> None:
    """A write of vm.min_free_kbytes (the caller checks the value):
    user_min_free_kbytes = min_free_kbytes = the value, then
    setup_per_zone_wmarks (no khugepaged update)."""
    m.min_free_kbytes = int(kbytes)
    m.user_min_free_kbytes = int(kbytes)
    setup_per_zone_wmarks(m)


def setup_per_zone_wmarks(m: Machine) -> None:
    """setup_per_zone_wmarks: __setup_per_zone_wmarks, then zone_pcp_update
    for every zone."""
    __setup_per_zone_wmarks(m)
    zone_pcp_update(m)


def __setup_per_zone_wmarks(m: Machine) -> None:
    """__setup_per_zone_wmarks: min proportional to managed pages, capped for
    ZONE_MOVABLE; low/high/promo spaced by max(min/4, 0.1% of managed)."""
    S = m.S
    pages_min = m.min_free_kbytes >> (m.profile.page_shift - 10)
    managed = S.zone_managed.astype(np.int64)
    zidx = np.arange(managed.size) % MAX_NR_ZONES
    movable = zidx == ZONE_MOVABLE
    lowmem = int(managed[~movable].sum())
    tmp = (pages_min * managed) // lowmem if lowmem else np.zeros_like(managed)
    wmin = np.where(movable, np.clip(managed // 1024, SWAP_CLUSTER_MAX, 128), tmp)
    delta = np.maximum(tmp >> 2, managed * m.vm.watermark_scale_factor // 10000)
    S.wmark[:, WMARK_MIN] = wmin
    S.wmark[:, WMARK_LOW] = wmin + delta
    S.wmark[:, WMARK_HIGH] = wmin + 2 * delta
    S.wmark[:, WMARK_PROMO] = wmin + 3 * delta


def min_free_kbytes_after_online(m: Machine) -> None:
    """What init_per_zone_wmark_min leaves of min_free_kbytes and the
    watermarks after managed pages joined a zone: calculate_min_free_kbytes,
    __setup_per_zone_wmarks and khugepaged_min_free_kbytes_update, without
    the parts that depend on the final state alone (pcp, stat thresholds,
    lowmem_reserve).  The one-pass online of several blocks runs it for each
    block but the last (calculate_min_free_kbytes reads the high watermarks
    the block before left)."""
    calculate_min_free_kbytes(m)
    __setup_per_zone_wmarks(m)
    if m.vm.thp and m.khugepaged_thread:  # set_recommended_min_free_kbytes
        recommended = khugepaged_recommended_min_free_kbytes(m)
        if recommended > m.min_free_kbytes:
            m.min_free_kbytes = recommended
        __setup_per_zone_wmarks(m)


def setup_per_zone_lowmem_reserve(m: Machine) -> None:
    """setup_per_zone_lowmem_reserve: reserve[i][j] = managed(i+1..j) / ratio[i]."""
    S = m.S
    managed = S.zone_managed.reshape(-1, MAX_NR_ZONES)
    res = S.lowmem_reserve.reshape(-1, MAX_NR_ZONES, MAX_NR_ZONES)
    res[:] = 0
    for i in range(MAX_NR_ZONES - 1):
        ratio = m.vm.lowmem_reserve_ratio[i]
        if not ratio:
            continue
        upper = np.cumsum(managed[:, i + 1:], axis=1)  # j = i+1 .. MAX-1
        val = upper // ratio
        val[managed[:, i] == 0] = 0
        res[:, i, i + 1:] = val


def zone_batchsize(managed: int, page_size: int) -> int:
    """zone_batchsize (MMU): about a quarter of managed/1024, at most 1 MiB/4."""
    batch = min(managed >> 10, (1 << 20) // page_size)
    batch //= 4
    batch = max(batch, 1)
    v = batch + batch // 2
    return max(1, (1 << (v.bit_length() - 1)) - 1)


def zone_batchsizes(managed: np.ndarray, page_size: int) -> np.ndarray:
    """zone_batchsize for an array of managed page counts."""
    batch = np.maximum(np.minimum(managed >> 10, (1 << 20) // page_size) // 4, 1)
    v = batch + batch // 2  # >= 1 and small: frexp's exponent is exact
    return np.maximum(1, (np.int64(1) << (np.frexp(v.astype(np.float64))[1] - 1)) - 1)


def zone_pcp_update(m: Machine, cpu_online: int = 0, populated_only: bool = False,
                    nids: Sequence[int] | None = None) -> None:
    """zone_pcp_update(zone, cpu_online) -> zone_set_pageset_high_and_batch
    for every zone (``populated_only``: for_each_populated_zone, as the CPU
    hotplug callbacks call it): with percpu_pagelist_high_fraction 0, high
    is auto-tuned between high_min (the low watermark) and high_max
    (managed / MIN_PERCPU_PAGELIST_HIGH_FRACTION); with a fraction, both are
    managed / fraction.  zone_highsize splits them over the node's online
    CPUs plus ``cpu_online`` (page_alloc_cpu_online passes 1 for every zone,
    before the new CPU is in cpumask_of_node), num_online_cpus() when that
    is 0.  ``nids``: only the zones of those nodes."""
    S = m.S
    topo = m.topo
    managed = S.zone_managed.astype(np.int64)
    split = np.repeat(topo.online_cpus_per_node() + cpu_online, MAX_NR_ZONES)[:managed.size]
    split = np.where(split > 0, split, topo.num_online_cpus())
    batch = zone_batchsizes(managed, m.profile.page_size)
    sel = (S.zone_present > 0) if populated_only else np.ones(managed.size, dtype=bool)
    if nids is not None:
        sel &= np.isin(np.arange(managed.size) // MAX_NR_ZONES, np.asarray(nids, dtype=np.int64))
    S.pcp_batch[sel] = batch[sel]
    frac = m.vm.percpu_pagelist_high_fraction
    if frac:
        hi = np.maximum(managed // frac // split, batch << 2)
        S.pcp_high_min[sel] = hi[sel]
        S.pcp_high_max[sel] = hi[sel]
        return
    lo = np.maximum(S.wmark[:, WMARK_LOW] // split, batch << 2)
    hi = np.maximum(managed // MIN_PERCPU_PAGELIST_HIGH_FRACTION // split, batch << 2)
    S.pcp_high_min[sel] = lo[sel]
    S.pcp_high_max[sel] = hi[sel]


def calculate_normal_threshold(m: Machine, managed: int) -> int:
    """mm/vmstat.c calculate_normal_threshold: the per-cpu vmstat drift a
    zone of ``managed`` pages allows, 2 * fls(online CPUs) * (1 +
    fls(managed in 128 MiB units)), at most 125."""
    mem = managed >> (27 - m.profile.page_shift)
    return min(125, 2 * m.topo.num_online_cpus().bit_length() * (1 + mem.bit_length()))


def refresh_zone_stat_thresholds(m: Machine) -> None:
    """mm/vmstat.c refresh_zone_stat_thresholds: every populated zone's
    stat_threshold from its managed pages now (an empty zone keeps its
    value).  The kernel runs it from init_per_zone_wmark_min and on CPU
    hotplug (vmstat_cpu_online, vmstat_cpu_dead: mm.cpu_hotplug)."""
    S = m.S
    for gz in np.flatnonzero(S.zone_present > 0).tolist():
        S.zone_stat_threshold[gz] = calculate_normal_threshold(m, int(S.zone_managed[gz]))


def zone_pcp_reset(m: Machine) -> None:
    """zone_pcp_reset (offline_pages, when a zone is left empty) and the
    fresh pageset of setup_zone_pageset (online_pages, when an empty zone
    gets pages): an empty zone's per-cpu state back to the boot pageset's,
    every CPU's high, free_count, alloc_factor, flags and expire 0, and its
    stat threshold 0 (boot_zonestats).  Run for every empty zone at each
    zone set-up rebuild (:meth:`Machine.rebuild_after_layout_change`): a
    zone emptied since the last one gets the reset, and a zone populated
    again starts from it (an empty zone's pagesets never change)."""
    S = m.S
    empty = S.zone_present == 0
    for a in (S.pcp_high, S.pcp_free_count, S.pcp_alloc_factor, S.pcp_flags, S.pcp_expire):
        a[:, empty] = 0
    S.zone_stat_threshold[empty] = 0


def init_per_zone_wmark_min(m: Machine) -> None:
    """init_per_zone_wmark_min (at boot, and on every memory online/offline):
    calculate_min_free_kbytes, setup_per_zone_wmarks (and pcp),
    refresh_zone_stat_thresholds, setup_per_zone_lowmem_reserve, then
    khugepaged_min_free_kbytes_update."""
    calculate_min_free_kbytes(m)
    setup_per_zone_wmarks(m)
    refresh_zone_stat_thresholds(m)
    setup_per_zone_lowmem_reserve(m)
    khugepaged_min_free_kbytes_update(m)


def find_next_best_node(m: Machine, node: int, used: np.ndarray,
                        node_load: np.ndarray, cpu_penalty: bool = True) -> int:
    """find_next_best_node: local node first (if it has memory), then the
    N_MEMORY node minimising (distance + [n < node] + [n has CPUs]) *
    MAX_NUMNODES + node_load[n]; ties to the lowest n.

    ``cpu_penalty`` False: the [n has CPUs] term (PENALTY_FOR_NODE_WITH_CPUS,
    from cpumask_of_node) is left out, as in the x86_64 boot-time build,
    which runs before any CPU is attached to its node (see
    :func:`build_all_zonelists`)."""
    topo = m.topo
    states = topo.node_states
    if not used[node] and states[N_MEMORY, node]:
        used[node] = True
        return node
    cand = np.flatnonzero(states[N_MEMORY] & ~used)
    if cand.size == 0:
        return -1
    val = topo.distance[node, cand].astype(np.int64) + (cand < node)
    if cpu_penalty:
        val += states[N_CPU, cand] * PENALTY_FOR_NODE_WITH_CPUS
    val = val * topo.max_numnodes + node_load[cand]
    best = int(cand[int(np.argmin(val))])
    used[best] = True
    return best


def nr_free_zone_pages(m: Machine, offset: int) -> int:
    """nr_free_zone_pages(offset): managed pages above the high watermark of
    the zones up to ``offset`` in the local node's ZONELIST_FALLBACK (every
    populated zone: the fallback list holds every node with memory)."""
    S = m.S
    zones = (np.arange(S.zone_managed.size) % MAX_NR_ZONES) <= offset
    return int(np.maximum(0, S.zone_managed - S.wmark[:, WMARK_HIGH])[zones].sum())


def build_all_zonelists(m: Machine, boot: bool = False, only_nid: int | None = None) -> None:
    """build_all_zonelists -> __build_all_zonelists: for every possible node,
    the fallback zonelist (nodes by find_next_best_node, each node's
    populated zones high -> low) and the __GFP_THISNODE list; node_load
    spreads equal-distance tiers.  Then page_group_by_mobility_disabled:
    on when nr_free_zone_pages(gfp_zone(GFP_HIGHUSER_MOVABLE)) is below
    pageblock_nr_pages * MIGRATE_TYPES.

    ``boot``: the build of mm_core_init (build_all_zonelists_init), which on
    x86_64 runs before arch_cpu_finalize_init attaches the CPUs to their
    nodes (numa_add_cpu): cpumask_of_node() is empty for every node, so the
    CPU penalty of find_next_best_node does not apply, and it runs before
    memblock_free_all and the first watermarks, so the mobility check sees
    managed = present pages (zone_init_internals) and no high watermark.
    Every later build (a commit, a zone emptied or populated) has both.

    ``only_nid``: __build_all_zonelists(pgdat) for a hot-added node that is
    not online yet (hotadd_init_pgdat): that node's zonelists alone, the
    others kept.
    """
    S = m.S
    topo = m.topo
    populated = (S.zone_present.reshape(-1, MAX_NR_ZONES) > 0)
    node_load = np.zeros(topo.max_numnodes, dtype=np.int64)
    nodes = list(topo.for_each_node()) if only_nid is None else [only_nid]
    S.zonelist[nodes] = -1
    S.zonelist_nofb[nodes] = -1
    if only_nid is None:
        m.fallback_order = {}
    for nid in nodes:
        used = np.zeros(topo.max_numnodes, dtype=bool)
        prev = nid
        order: list[int] = []
        while (node := find_next_best_node(m, nid, used, node_load, not boot)) >= 0:
            if topo.distance[nid, node] != topo.distance[nid, prev]:
                node_load[node] += 1
            order.append(node)
            prev = node
        refs = [n * MAX_NR_ZONES + z for n in order
                for z in range(MAX_NR_ZONES - 1, -1, -1) if populated[n, z]]
        S.zonelist[nid, :len(refs)] = refs
        own = [nid * MAX_NR_ZONES + z for z in range(MAX_NR_ZONES - 1, -1, -1)
               if populated[nid, z]]
        S.zonelist_nofb[nid, :len(own)] = own
        m.fallback_order[nid] = order
    # check_highest_zone: policy_zone only grows, and never to ZONE_MOVABLE
    kernel_zones = np.flatnonzero(populated[:, :ZONE_MOVABLE].any(axis=0))
    if kernel_zones.size:
        S.params[P_POLICY_ZONE] = max(int(S.params[P_POLICY_ZONE]), int(kernel_zones[-1]))
    vm_total_pages = (int(S.zone_present.sum()) if boot
                      else nr_free_zone_pages(m, ZONE_MOVABLE))
    S.params[P_MOBILITY_OFF] = int(
        vm_total_pages < m.profile.pageblock_nr_pages * MIGRATE_TYPES_NO_CMA)
    m.zonelist_rebuilds += 1


def update_node_states(m: Machine) -> tuple[list[int], list[int]]:
    """node_states_set_node / node_states_clear_node from present pages:
    N_MEMORY and N_NORMAL_MEMORY (= N_HIGH_MEMORY on x86_64) follow the
    node's present pages, N_CPU its CPUs; N_ONLINE is only ever set.  As
    6.12's offline_pages, a node left without memory keeps N_ONLINE (and its
    sysfs directory): only try_offline_node, on memory *removal*, offlines a
    node, and neither a commit nor a redirected free removes memory.

    Returns (nodes that went online, nodes that went offline: always empty).
    """
    S = m.S
    topo = m.topo
    st = topo.node_states
    present = S.zone_present.reshape(-1, MAX_NR_ZONES)
    before = st[N_ONLINE].copy()
    st[N_MEMORY] = present.sum(axis=1) > 0
    st[N_NORMAL_MEMORY] = present[:, :ZONE_NORMAL + 1].sum(axis=1) > 0
    topo.refresh_cpu_states()
    st[N_ONLINE] |= st[N_MEMORY] | st[N_CPU]
    went_on = np.flatnonzero(st[N_ONLINE] & ~before).tolist()
    return went_on, []
