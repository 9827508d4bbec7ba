"""A plain-Python reference model of dnuma's page allocator and DNUMA commit.

This is the slow, obvious twin of the compiled engine (``dnuma._kernels``): the
same page-level state machine written with dicts, lists and OrderedDicts, one
function per mm/page_alloc.c (Linux 6.12) function it follows.  It never reads
the engine's page state.  It computes the zone set-up that follows from
managed pages itself, one loop per kernel function (init_per_zone_wmark_min:
calculate_min_free_kbytes, setup_per_zone_wmarks, zone_pcp_update,
setup_per_zone_lowmem_reserve, khugepaged's set_recommended_min_free_kbytes;
hugepage_init at boot), at boot and whenever managed pages change (a commit,
a redirect on free), as the kernel does; it reads only the engine's zonelists
and node states (:meth:`RefMachine.sync_setup` copies them after boot and
after every operation), whose construction is not page-level state.

State (all plain Python):

- per pfn: ``nid``, ``zone`` (zone index), ``hole``, ``reserved`` (lists);
- ``blocks``: head pfn -> :class:`Block` for every free (buddy or pcp) and
  allocated block;
- ``free_area[(gz, order, mt)]`` and ``pcp_lists[(cpu, gz, pindex)]``:
  ``OrderedDict`` used as a list (first key = list head, last key = tail);
- per zone counters, per (cpu, zone) pcp fields, numastat, ``pb_mt``;
- the effective memlayout as a sorted list of ``(start, end_inclusive, nid)``.

Where the engine deliberately models less than the kernel (no reclaim, no
compaction, no ALLOC_NOFRAGMENT, no THP pcp lists, no highatomic reserves, no
CMA) this model does the same; where the kernel does something the engine
claims to follow, this model follows the kernel, so a difference shows up as a
failing comparison.
"""

from __future__ import annotations

import bisect
import math
from collections import OrderedDict, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from dnuma.mm.constants import (
    __GFP_ATOMIC_MODEL,
    __GFP_DMA,
    __GFP_DMA32,
    __GFP_HIGH,
    __GFP_HIGHMEM,
    __GFP_MOVABLE,
    __GFP_RECLAIMABLE,
    __GFP_THISNODE,
    MAX_NR_ZONES,
    MIGRATE_ISOLATE,
    MIGRATE_MOVABLE,
    MIGRATE_PCPTYPES,
    MIGRATE_RECLAIMABLE,
    MIGRATE_TYPES,
    MIGRATE_UNMOVABLE,
    MPOL_BIND,
    MPOL_DEFAULT,
    MPOL_INTERLEAVE,
    MPOL_LOCAL,
    MPOL_PREFERRED,
    N_NORMAL_MEMORY,
    NR_PCP_LISTS,
    NR_VM_NUMA_EVENT_ITEMS,
    NUMA_FOREIGN,
    NUMA_HIT,
    NUMA_INTERLEAVE_HIT,
    NUMA_LOCAL,
    NUMA_MISS,
    NUMA_OTHER,
    PAGE_ALLOC_COSTLY_ORDER,
    PCP_BATCH_SCALE_MAX,
    WMARK_HIGH,
    WMARK_LOW,
    WMARK_MIN,
    WMARK_PROMO,
    ZONE_DMA,
    ZONE_DMA32,
    ZONE_MOVABLE,
    ZONE_NORMAL,
)

NZ = MAX_NR_ZONES
# gfp bits under names that class bodies do not mangle
G_DMA = __GFP_DMA
G_DMA32 = __GFP_DMA32
G_HIGHMEM = __GFP_HIGHMEM
G_MOVABLE = __GFP_MOVABLE
G_RECLAIMABLE = __GFP_RECLAIMABLE
G_HIGH = __GFP_HIGH
G_ATOMIC_MODEL = __GFP_ATOMIC_MODEL
G_THISNODE = __GFP_THISNODE

# fallbacks[] of 6.12 (MIGRATE_UNMOVABLE, MIGRATE_MOVABLE, MIGRATE_RECLAIMABLE)
FALLBACKS = {
    MIGRATE_UNMOVABLE: (MIGRATE_RECLAIMABLE, MIGRATE_MOVABLE),
    MIGRATE_MOVABLE: (MIGRATE_RECLAIMABLE, MIGRATE_UNMOVABLE),
    MIGRATE_RECLAIMABLE: (MIGRATE_UNMOVABLE, MIGRATE_MOVABLE),
}

# the zone set-up's constants (mm/page_alloc.c, mm/huge_memory.c)
LOWMEM_RESERVE_RATIO = (256, 256, 32, 0)  # sysctl_lowmem_reserve_ratio, DMA..MOVABLE
WATERMARK_SCALE_FACTOR = 10
SWAP_CLUSTER_MAX = 32
MIN_PERCPU_PAGELIST_HIGH_FRACTION = 8


def clamp(v: int, lo: int, hi: int) -> int:
    """include/linux/minmax.h __clamp: hi wins when lo > hi."""
    return hi if v >= hi else (lo if v <= lo else v)


# alloc_flags (mm/internal.h): only the bits the model uses
ALLOC_WMARK_MIN = 0
ALLOC_WMARK_LOW = 1
ALLOC_WMARK_MASK = 3
ALLOC_MIN_RESERVE = 0x100
ALLOC_NON_BLOCK = 0x200

# enum rmqueue_mode
RMQUEUE_NORMAL, RMQUEUE_CMA, RMQUEUE_CLAIM, RMQUEUE_STEAL = range(4)

# pcp->flags
PCPF_PREV_FREE_HIGH_ORDER = 1
PCPF_FREE_HIGH_BATCH = 2
PCPF_TOUCHED = 4  # model: alloc/free through this pcp since the last vmstat tick


class RefBadFree(ValueError):
    """Freeing something that is not an allocated block head of that order."""


class Block:
    """One block of 2**order pages starting at its head pfn.

    kind "buddy": on free_area[(gz, order, mt)]; "pcp": on
    pcp_lists[(cpu, gz, pindex)]; "alloc": allocated (mark = LookupNode mark,
    movable = PageLRU in the engine's sense, owner = the caller's tag).
    """

    __slots__ = ("cpu", "gz", "kind", "mark", "movable", "mt", "order", "owner", "pindex")

    def __init__(self, kind: str, order: int, **kw: Any) -> None:
        self.kind = kind
        self.order = order
        self.gz = kw.get("gz", -1)
        self.mt = kw.get("mt", -1)
        self.cpu = kw.get("cpu", -1)
        self.pindex = kw.get("pindex", -1)
        self.mark = kw.get("mark", False)
        self.movable = kw.get("movable", False)
        self.owner = kw.get("owner", 0)

    def __repr__(self) -> str:
        return f"Block({self.kind}, order={self.order}, gz={self.gz})"


@dataclass
class RefCommitReport:
    """What the reference's commit did (fields as the engine's CommitReport)."""

    pages_marked: int = 0
    pages_unmarked: int = 0
    free_pages_moved: int = 0
    pcp_pages_moved: int = 0
    blocks_split: int = 0
    reserved_rehomed: int = 0
    pcp_pages_drained: int = 0


def chunk_order(p: int, end: int, max_order: int) -> int:
    """__free_pages_memory's chunk: the largest order with ``p`` aligned to it
    and ``p + 2**order <= end``, at most MAX_PAGE_ORDER."""
    order = max_order
    while order > 0 and (p % (1 << order) != 0 or p + (1 << order) > end):
        order -= 1
    return order


def maximal_chunks(start: int, end: int, max_order: int) -> list[tuple[int, int]]:
    """[start, end) cut into maximal aligned (pfn, order) chunks, in pfn order."""
    out = []
    p = start
    while p < end:
        o = chunk_order(p, end, max_order)
        out.append((p, o))
        p += 1 << o
    return out


def overlay(old: list[tuple[int, int, int]],
            new: list[tuple[int, int, int]]) -> list[tuple[int, int, int]]:
    """The effective layout: every range of ``new``, plus the pieces of the
    ranges of ``old`` that no range of ``new`` covers, sorted by start."""
    new_sorted = sorted(new)
    out = list(new_sorted)
    for s, e, n in old:
        pieces = [(s, e)]
        for ns, ne, _nn in new_sorted:
            if ne < s or ns > e:
                continue
            cut = []
            for a, b in pieces:
                if ne < a or ns > b:
                    cut.append((a, b))
                    continue
                if a < ns:
                    cut.append((a, ns - 1))
                if ne < b:
                    cut.append((ne + 1, b))
            pieces = cut
        out.extend((a, b, n) for a, b in pieces)
    return sorted(out)


def overlay_per_pfn(old: Iterable[tuple[int, int, int]],
                    new: Iterable[tuple[int, int, int]]) -> dict[int, int]:
    """The effective layout pfn by pfn: ``old``'s targets, then ``new``'s
    written over them (inclusive ends); pfns neither covers are absent."""
    out: dict[int, int] = {}
    for ranges in (old, new):
        for s, e, n in ranges:
            for pfn in range(s, e + 1):
                out[pfn] = n
    return out


def _add(lst: OrderedDict, pfn: int, tail: bool) -> None:
    """list_add (head) / list_add_tail (tail)."""
    assert pfn not in lst
    lst[pfn] = None
    if not tail:
        lst.move_to_end(pfn, last=False)


def _first(lst: OrderedDict | None) -> int | None:
    return next(iter(lst)) if lst else None


def _last(lst: OrderedDict) -> int:
    return next(reversed(lst))


class RefMachine:
    """The reference machine.  Build it from a freshly booted engine Machine
    (for its config and zone set-up values) with :meth:`boot`."""

    # ------------------------------------------------------------------ boot
    @classmethod
    def boot(cls, m: Any) -> RefMachine:
        r = cls(m)
        r.build_all_zonelists(boot=True)  # mm_core_init, before memblock_free_all
        r._boot_free_memory()
        r.init_per_zone_wmark_min()  # postcore_initcall
        r.hugepage_init()  # subsys_initcall
        if m.config.min_free_kbytes is not None:  # the sysctl, after the initcalls
            r.min_free_kbytes = r.user_min_free_kbytes = int(m.config.min_free_kbytes)
            r.setup_per_zone_wmarks()
        r.sync_setup(m)
        return r

    def __init__(self, m: Any) -> None:
        cfg = m.config
        p = cfg.profile
        self.max_order = p.max_page_order
        self.pbo = p.pageblock_order
        self.page_shift = p.page_shift
        self.thp = bool(cfg.thp)
        self.min_free_kbytes = 1024
        self.user_min_free_kbytes = -1
        self.khugepaged_thread = False
        self.mobility_off = False  # page_group_by_mobility_disabled (build_all_zonelists)
        self.max_numnodes = cfg.max_numnodes
        self.ngz = self.max_numnodes * NZ
        self.cpu_to_node = [int(n) for n in cfg.cpu_to_node]
        self.nr_cpus = len(self.cpu_to_node)
        self.cpu_online = [bool(v) for v in m.topo.cpu_online]  # cpu_online_mask
        self.ram = sorted((int(s), int(e), int(n)) for s, e, n in cfg.ram)
        sec = p.pages_per_section
        end = self.ram[-1][1]
        self.max_pfn = -(-end // sec) * sec
        self.section_pages = sec
        dma = p.dma_limit_bytes >> p.page_shift
        dma32 = p.dma32_limit_bytes >> p.page_shift
        self.dma_limit, self.dma32_limit = dma, dma32

        n = self.max_pfn
        self.hole = [True] * n
        self.nid = [0] * n
        self.zone = [self.zone_idx_of(pfn) for pfn in range(n)]
        self.reserved = [False] * n
        for s, e, nid in self.ram:
            for pfn in range(s, e):
                self.hole[pfn] = False
                self.nid[pfn] = nid
        for s, e in cfg.reserved:
            for pfn in range(max(0, s), min(e, n)):
                if not self.hole[pfn]:
                    self.reserved[pfn] = True
        self.reserved_ranges = [(int(s), int(e)) for s, e in cfg.reserved]
        self.pb_mt = [MIGRATE_MOVABLE] * (n >> self.pbo)

        ngz = self.ngz
        self.present = [0] * ngz
        self.managed = [0] * ngz
        for pfn in range(n):
            if not self.hole[pfn]:
                g = self.gz_of(pfn)
                self.present[g] += 1
                if not self.reserved[pfn]:
                    self.managed[g] += 1
        self.zone_free = [0] * ngz  # NR_FREE_PAGES
        self.wmark = [[0] * 4 for _ in range(ngz)]  # _watermark[WMARK_MIN..WMARK_PROMO]
        self.lowmem_reserve = [[0] * NZ for _ in range(ngz)]
        self.pcp_batch = [1] * ngz  # the boot pageset
        self.pcp_high_min = [0] * ngz
        self.pcp_high_max = [0] * ngz
        self.below_high = [False] * ngz  # ZONE_BELOW_HIGH
        self.numa_stat = [[0] * NR_VM_NUMA_EVENT_ITEMS for _ in range(ngz)]

        self.blocks: dict[int, Block] = {}
        self.free_area: defaultdict[tuple[int, int, int], OrderedDict] = defaultdict(OrderedDict)
        self.pcp_lists: defaultdict[tuple[int, int, int], OrderedDict] = defaultdict(OrderedDict)
        c = self.nr_cpus
        self.pcp_count = [[0] * ngz for _ in range(c)]
        self.pcp_high = [[0] * ngz for _ in range(c)]
        self.pcp_free_count = [[0] * ngz for _ in range(c)]
        self.pcp_alloc_factor = [[0] * ngz for _ in range(c)]
        self.pcp_flags = [[0] * ngz for _ in range(c)]
        self.pcp_expire = [[0] * ngz for _ in range(c)]  # pcp->expire (vmstat ticks)

        self.moved_on_free = 0
        self.moved_at_commit = 0  # free pages a commit re-homed (part of the RFC's moved-pages)
        self.alloc_fail = 0
        self.pcp_drained = 0  # pages drain_pages_zone() returned to the buddy lists
        self.il_prev: dict[int, int] = {}  # id(policy) -> the task's interleave cursor
        self.policy_zone = ZONE_DMA
        # the initial memlayout: one range per memblock range
        self.layout = sorted((s, e - 1, nid) for s, e, nid in self.ram)
        self._layout_starts = [r[0] for r in self.layout]
        self._spans: dict[int, tuple[int, int]] | None = None

    def zone_idx_of(self, pfn: int) -> int:
        if pfn < self.dma_limit:
            return ZONE_DMA
        if pfn < self.dma32_limit:
            return ZONE_DMA32
        return ZONE_NORMAL

    def gz_of(self, pfn: int) -> int:
        return self.nid[pfn] * NZ + self.zone[pfn]

    # ------------------------------------------------------------------ zone set-up
    def nr_free_buffer_pages(self) -> int:
        """nr_free_zone_pages(gfp_zone(GFP_USER)): zones up to ZONE_NORMAL,
        managed above the high watermark."""
        total = 0
        for g in range(self.ngz):
            if g % NZ <= ZONE_NORMAL and self.managed[g] > self.wmark[g][WMARK_HIGH]:
                total += self.managed[g] - self.wmark[g][WMARK_HIGH]
        return total

    def calculate_min_free_kbytes(self) -> None:
        lowmem_kbytes = self.nr_free_buffer_pages() * ((1 << self.page_shift) >> 10)
        new = math.isqrt(lowmem_kbytes * 16)
        if new > self.user_min_free_kbytes:
            self.min_free_kbytes = clamp(new, 128, 262144)

    def setup_per_zone_wmarks(self) -> None:
        """__setup_per_zone_wmarks over every zone (the engine keeps offline
        nodes' zones too: managed 0), then zone_pcp_update for each."""
        pages_min = self.min_free_kbytes >> (self.page_shift - 10)
        lowmem_pages = sum(self.managed[g] for g in range(self.ngz) if g % NZ != ZONE_MOVABLE)
        for g in range(self.ngz):
            managed = self.managed[g]
            tmp = pages_min * managed // lowmem_pages if lowmem_pages else 0
            movable = g % NZ == ZONE_MOVABLE
            wmin = clamp(managed // 1024, SWAP_CLUSTER_MAX, 128) if movable else tmp
            delta = max(tmp >> 2, managed * WATERMARK_SCALE_FACTOR // 10000)
            w = self.wmark[g]
            w[WMARK_MIN] = wmin
            w[WMARK_LOW] = wmin + delta
            w[WMARK_HIGH] = wmin + 2 * delta
            w[WMARK_PROMO] = wmin + 3 * delta
        for g in range(self.ngz):
            self.zone_pcp_update(g)

    @staticmethod
    def zone_batchsize(managed: int, page_size: int) -> int:
        batch = min(managed >> 10, (1 << 20) // page_size) // 4
        if batch < 1:
            batch = 1
        v = batch + batch // 2
        return (1 << (v.bit_length() - 1)) - 1  # rounddown_pow_of_two(v) - 1

    def zone_highsize(self, g: int, batch: int, fraction: int) -> int:
        total = self.wmark[g][WMARK_LOW] if not fraction else self.managed[g] // fraction
        # zone_highsize: the node's online CPUs, else num_online_cpus()
        split = sum(1 for c, n in enumerate(self.cpu_to_node)
                    if n == g // NZ and self.cpu_online[c]) or sum(self.cpu_online)
        return max(total // split, batch << 2)

    def zone_pcp_update(self, g: int) -> None:
        """zone_set_pageset_high_and_batch (percpu_pagelist_high_fraction 0)."""
        batch = max(1, self.zone_batchsize(self.managed[g], 1 << self.page_shift))
        self.pcp_batch[g] = batch
        self.pcp_high_min[g] = self.zone_highsize(g, batch, 0)
        self.pcp_high_max[g] = self.zone_highsize(g, batch, MIN_PERCPU_PAGELIST_HIGH_FRACTION)

    def setup_per_zone_lowmem_reserve(self) -> None:
        for nid in range(self.max_numnodes):
            for i in range(NZ - 1):
                g = nid * NZ + i
                ratio = LOWMEM_RESERVE_RATIO[i]
                clear = not ratio or not self.managed[g]
                upper = 0
                for j in range(i + 1, NZ):
                    upper += self.managed[nid * NZ + j]
                    self.lowmem_reserve[g][j] = 0 if clear else upper // ratio

    def set_recommended_min_free_kbytes(self) -> None:
        """mm/khugepaged.c (hugepage_pmd_enabled() is ``thp``)."""
        if not self.thp:
            self.calculate_min_free_kbytes()
        else:
            nr_zones = sum(1 for g in range(self.ngz)
                           if self.present[g] and g % NZ <= ZONE_NORMAL)
            pb = 1 << self.pbo
            recommended = pb * nr_zones * 2
            recommended += pb * nr_zones * MIGRATE_PCPTYPES * MIGRATE_PCPTYPES
            recommended = min(recommended, self.nr_free_buffer_pages() // 20)
            recommended <<= self.page_shift - 10
            if recommended > self.min_free_kbytes:
                self.min_free_kbytes = recommended
        self.setup_per_zone_wmarks()

    def hugepage_init(self) -> None:
        """mm/huge_memory.c: nothing below 512 MiB of RAM, else
        start_stop_khugepaged."""
        if sum(self.managed) < (512 << 20) >> self.page_shift:
            self.thp = False  # transparent_hugepage_flags = 0
            return
        self.khugepaged_thread = self.thp
        self.set_recommended_min_free_kbytes()

    def init_per_zone_wmark_min(self) -> None:
        self.calculate_min_free_kbytes()
        self.setup_per_zone_wmarks()
        self.setup_per_zone_lowmem_reserve()
        if self.thp and self.khugepaged_thread:  # khugepaged_min_free_kbytes_update
            self.set_recommended_min_free_kbytes()

    def build_all_zonelists(self, boot: bool = False) -> None:
        """build_all_zonelists' page_group_by_mobility_disabled (the lists
        themselves are copied from the engine, :meth:`sync_setup`): fewer
        than pageblock_nr_pages * MIGRATE_TYPES (5: no CMA) pages above the
        high watermark in the zones up to ZONE_MOVABLE; at boot (before
        memblock_free_all and the first watermarks) managed = present pages."""
        if boot:
            total = sum(self.present)
        else:
            total = sum(max(0, self.managed[g] - self.wmark[g][WMARK_HIGH])
                        for g in range(self.ngz))
        self.mobility_off = total < (1 << self.pbo) * 5

    def zone_pcp_reset(self) -> None:
        """zone_pcp_reset / setup_zone_pageset: every empty zone's per-cpu
        state back to the boot pageset's (high, free_count, alloc_factor,
        flags, expire 0), as the engine does at each zone set-up rebuild."""
        for g in range(self.ngz):
            if not self.present[g]:
                for arr in (self.pcp_high, self.pcp_free_count, self.pcp_alloc_factor,
                            self.pcp_flags, self.pcp_expire):
                    for cpu in range(self.nr_cpus):
                        arr[cpu][g] = 0

    def populated(self) -> list[bool]:
        return [p > 0 for p in self.present]

    def sync_setup(self, m: Any) -> None:
        """Copy the zonelists and N_HIGH_MEMORY from the engine (see the
        module doc).  Called after boot and after every operation."""
        S = m.S
        arrays = (S.zonelist, S.zonelist_nofb, m.topo.node_states[N_NORMAL_MEMORY])
        key = b"".join(a.tobytes() for a in arrays)
        if key == getattr(self, "_setup_key", None):
            return
        self._setup_key = key
        self.zonelist = [[g for g in row if g >= 0] for row in S.zonelist.tolist()]
        self.zonelist_nofb = [[g for g in row if g >= 0] for row in S.zonelist_nofb.tolist()]
        self.n_high_memory = [bool(v) for v in m.topo.node_states[N_NORMAL_MEMORY].tolist()]
        # check_highest_zone(): policy_zone only ever grows
        for row in self.zonelist:
            for g in row:
                z = g % NZ
                if z != ZONE_MOVABLE and z > self.policy_zone:
                    self.policy_zone = z

    def _free_runs(self) -> list[tuple[int, int]]:
        """memblock's free ranges: each RAM range minus the reserved ranges."""
        runs = []
        for s, e, _nid in self.ram:
            cur = s
            for pfn in range(s, e + 1):
                if pfn == e or self.reserved[pfn]:
                    if cur < pfn:
                        runs.append((cur, pfn))
                    cur = pfn + 1
        return runs

    def _boot_free_memory(self) -> None:
        """memblock_free_all: __free_pages_memory() per free range, each chunk
        through __free_pages_core() -> __free_pages_ok(FPI_TO_TAIL)."""
        for s, e in self._free_runs():
            for p, o in maximal_chunks(s, e, self.max_order):
                self.free_one_page(self.gz_of(p), p, o, to_tail=True)

    # ------------------------------------------------------------------ free lists
    def add_to_free_list(self, pfn: int, gz: int, order: int, mt: int, tail: bool) -> None:
        """__add_to_free_list + set_buddy_order."""
        assert pfn not in self.blocks, f"pfn {pfn} already in a block"
        assert self.gz_of(pfn) == gz, f"pfn {pfn} added to zone {gz}, it is in {self.gz_of(pfn)}"
        self.blocks[pfn] = Block("buddy", order, gz=gz, mt=mt)
        _add(self.free_area[(gz, order, mt)], pfn, tail)

    def del_from_free_list(self, pfn: int, gz: int, order: int, mt: int) -> None:
        """__del_page_from_free_list (no NR_FREE_PAGES accounting)."""
        b = self.blocks.pop(pfn)
        assert b.kind == "buddy" and (b.gz, b.order, b.mt) == (gz, order, mt), \
            f"del pfn {pfn}: on list {(b.gz, b.order, b.mt)}, asked {(gz, order, mt)}"
        del self.free_area[(gz, order, mt)][pfn]

    def move_to_free_list(self, pfn: int, new_mt: int) -> None:
        """move_to_free_list: list_move_tail onto the new type's list."""
        b = self.blocks[pfn]
        del self.free_area[(b.gz, b.order, b.mt)][pfn]
        b.mt = new_mt
        _add(self.free_area[(b.gz, b.order, new_mt)], pfn, True)

    def page_is_buddy(self, page: int, buddy: int, order: int) -> bool:
        """page_is_buddy: ``buddy`` is a free buddy block of ``order`` in the
        same zone (node and zone index) as ``page``."""
        if not 0 <= buddy < self.max_pfn:
            return False
        b = self.blocks.get(buddy)
        return (b is not None and b.kind == "buddy" and b.order == order
                and self.gz_of(page) == self.gz_of(buddy))

    def change_pageblock_range(self, pfn: int, order: int, mt: int) -> None:
        nr_pageblocks = 1 << (order - self.pbo) if order >= self.pbo else 1
        for k in range(nr_pageblocks):
            self.pb_mt[(pfn >> self.pbo) + k] = mt

    def pfnblock_mt(self, pfn: int) -> int:
        return self.pb_mt[pfn >> self.pbo]

    def _free_one_page(self, pfn: int, gz: int, order: int, mt: int, to_tail: bool) -> None:
        """__free_one_page: account, merge with free buddies, place the block
        (tail for FPI_TO_TAIL, else tail when buddy_merge_likely())."""
        self.zone_free[gz] += 1 << order
        buddy_pfn = 0
        while order < self.max_order:
            buddy_pfn = pfn ^ (1 << order)
            if not self.page_is_buddy(pfn, buddy_pfn, order):
                break
            buddy_mt = mt
            if order >= self.pbo:
                buddy_mt = self.pfnblock_mt(buddy_pfn)
                if mt != buddy_mt and (mt >= MIGRATE_PCPTYPES or buddy_mt >= MIGRATE_PCPTYPES):
                    break
            self.del_from_free_list(buddy_pfn, gz, order, buddy_mt)
            if buddy_mt != mt:
                self.change_pageblock_range(buddy_pfn, order, mt)
            pfn &= buddy_pfn
            order += 1
        if not to_tail:
            to_tail = self.buddy_merge_likely(pfn, buddy_pfn, order)
        self.add_to_free_list(pfn, gz, order, mt, to_tail)

    def buddy_merge_likely(self, pfn: int, buddy_pfn: int, order: int) -> bool:
        if order >= self.max_order - 1:
            return False
        higher = buddy_pfn & pfn
        return self.page_is_buddy(higher, higher ^ (1 << (order + 1)), order + 1)

    def free_one_page(self, gz: int, pfn: int, order: int, to_tail: bool = False) -> None:
        """free_one_page -> split_large_buddy: a block bigger than a pageblock
        is freed one pageblock at a time, each with its own migratetype."""
        end = pfn + (1 << order)
        if order > self.pbo:
            order = self.pbo
        while True:
            self._free_one_page(pfn, gz, order, self.pfnblock_mt(pfn), to_tail)
            pfn += 1 << order
            if pfn == end:
                break

    # ------------------------------------------------------------------ buddy alloc
    def expand(self, pfn: int, low: int, high: int, gz: int, mt: int) -> None:
        while high > low:
            high -= 1
            self.add_to_free_list(pfn + (1 << high), gz, high, mt, False)

    def page_del_and_expand(self, pfn: int, gz: int, low: int, high: int, mt: int) -> None:
        self.del_from_free_list(pfn, gz, high, mt)
        self.expand(pfn, low, high, gz, mt)
        self.zone_free[gz] -= 1 << low

    def rmqueue_smallest(self, gz: int, order: int, mt: int) -> int | None:
        """__rmqueue_smallest."""
        for o in range(order, self.max_order + 1):
            p = _first(self.free_area.get((gz, o, mt)))
            if p is not None:
                self.page_del_and_expand(p, gz, order, o, mt)
                return p
        return None

    def can_steal_fallback(self, order: int, start_mt: int) -> bool:
        if order >= self.pbo:
            return True
        return (order >= self.pbo // 2
                or start_mt in (MIGRATE_RECLAIMABLE, MIGRATE_UNMOVABLE) or self.mobility_off)

    def find_suitable_fallback(self, gz: int, order: int, mt: int) -> tuple[int, bool]:
        """find_suitable_fallback(only_stealable=false)."""
        nr_free = sum(len(self.free_area.get((gz, order, m), ())) for m in range(MIGRATE_TYPES))
        if nr_free == 0:
            return -1, False
        for fmt in FALLBACKS[mt]:
            if not self.free_area.get((gz, order, fmt)):
                continue
            return fmt, self.can_steal_fallback(order, mt)
        return -1, False

    def zone_span(self, gz: int) -> tuple[int, int]:
        """[zone_start_pfn, zone_end_pfn): first to last present pfn of the zone
        (the engine's zone_span, as resize_zone_range / shrink_zone_span keep it)."""
        if self._spans is None:
            spans: dict[int, tuple[int, int]] = {}
            for pfn in range(self.max_pfn):
                if self.hole[pfn]:
                    continue
                g = self.gz_of(pfn)
                lo, _hi = spans.get(g, (pfn, pfn))
                spans[g] = (lo, pfn + 1)
            self._spans = spans
        return self._spans.get(gz, (0, 0))

    def zone_spans_pfn(self, gz: int, pfn: int) -> bool:
        lo, hi = self.zone_span(gz)
        return lo <= pfn < hi

    def move_freepages_block(self, start: int, new_mt: int) -> None:
        """__move_freepages_block: every free block of the pageblock to the tail
        of ``new_mt``'s list (each on its own zone's lists, as the engine does
        for pageblocks that DNUMA has shared between nodes)."""
        end = start + (1 << self.pbo)
        pfn = start
        while pfn < end:
            b = self.blocks.get(pfn)
            if b is not None and b.kind == "buddy":
                self.move_to_free_list(pfn, new_mt)
                pfn += 1 << b.order
            else:
                pfn += 1
        self.pb_mt[start >> self.pbo] = new_mt

    def try_to_steal_block(self, gz: int, pfn: int, current_order: int, order: int,
                           start_type: int) -> int | None:
        """try_to_steal_block."""
        block_type = self.pfnblock_mt(pfn)
        if block_type >= MIGRATE_PCPTYPES:
            return None
        if current_order >= self.pbo:
            self.del_from_free_list(pfn, gz, current_order, block_type)
            self.change_pageblock_range(pfn, current_order, start_type)
            self.expand(pfn, order, current_order, gz, start_type)
            self.zone_free[gz] -= 1 << order
            return pfn
        # prep_move_freepages_block
        start = (pfn >> self.pbo) << self.pbo
        end = start + (1 << self.pbo)
        if not (
                self.zone_spans_pfn(gz, start) and self.zone_spans_pfn(gz, end - 1)):
            return None
        free_pages = movable_pages = 0
        p = start
        while p < end:
            b = self.blocks.get(p)
            if b is not None and b.kind == "buddy":
                free_pages += 1 << b.order
                p += 1 << b.order
                continue
            # PageLRU: every page of an allocated movable block (PF_HEAD flag)
            h = self.find_block(p)
            if h is not None and self.blocks[h].kind == "alloc" and self.blocks[h].movable:
                movable_pages += 1
            p += 1
        if start_type == MIGRATE_MOVABLE:
            alike = movable_pages
        elif block_type == MIGRATE_MOVABLE:
            alike = (1 << self.pbo) - (free_pages + movable_pages)
        else:
            alike = 0
        if free_pages + alike >= (1 << (self.pbo - 1)) or self.mobility_off:
            self.move_freepages_block(start, start_type)
            return self.rmqueue_smallest(gz, order, start_type)
        return None

    def rmqueue_claim(self, gz: int, order: int, mt: int) -> int | None:
        """__rmqueue_claim (no ALLOC_NOFRAGMENT in the model)."""
        for co in range(self.max_order, order - 1, -1):
            fmt, can_steal = self.find_suitable_fallback(gz, co, mt)
            if fmt < 0:
                continue
            if not can_steal:
                break
            page = _first(self.free_area[(gz, co, fmt)])
            assert page is not None
            got = self.try_to_steal_block(gz, page, co, order, mt)
            if got is not None:
                return got
        return None

    def rmqueue_steal(self, gz: int, order: int, mt: int) -> int | None:
        """__rmqueue_steal."""
        for co in range(order, self.max_order + 1):
            fmt, _cs = self.find_suitable_fallback(gz, co, mt)
            if fmt < 0:
                continue
            page = _first(self.free_area[(gz, co, fmt)])
            assert page is not None
            self.page_del_and_expand(page, gz, order, co, fmt)
            return page
        return None

    def _rmqueue(self, gz: int, order: int, mt: int, mode: list[int]) -> int | None:
        """__rmqueue: normal -> (cma) -> claim -> steal, remembering the mode."""
        if mode[0] == RMQUEUE_NORMAL:
            p = self.rmqueue_smallest(gz, order, mt)
            if p is not None:
                return p
        if mode[0] <= RMQUEUE_CLAIM:  # NORMAL, CMA (no CMA pages), CLAIM fall through
            p = self.rmqueue_claim(gz, order, mt)
            if p is not None:
                mode[0] = RMQUEUE_NORMAL
                return p
        p = self.rmqueue_steal(gz, order, mt)
        if p is not None:
            mode[0] = RMQUEUE_STEAL
        return p

    # ------------------------------------------------------------------ pcp
    @staticmethod
    def order_to_pindex(mt: int, order: int) -> int:
        return MIGRATE_PCPTYPES * order + mt

    def pcp_add(self, cpu: int, gz: int, pindex: int, pfn: int, order: int, tail: bool) -> None:
        assert pfn not in self.blocks
        self.blocks[pfn] = Block("pcp", order, gz=gz, cpu=cpu, pindex=pindex)
        _add(self.pcp_lists[(cpu, gz, pindex)], pfn, tail)

    def pcp_del(self, pfn: int) -> Block:
        b = self.blocks.pop(pfn)
        assert b.kind == "pcp"
        del self.pcp_lists[(b.cpu, b.gz, b.pindex)][pfn]
        return b

    def free_pcppages_bulk(self, cpu: int, gz: int, count: int, pindex: int,
                           stage: bool = False) -> list[tuple[int, int]]:
        """free_pcppages_bulk: round-robin from ``pindex``, oldest (tail) first.
        ``stage`` (the RFC's hook, for the commit's drain): a block whose
        node the layout changes is set aside instead; returns those, in the
        order the RFC's need_move list holds them (newest first), as (pfn,
        order)."""
        count = min(self.pcp_count[cpu][gz], count)
        pindex -= 1
        staged: list[tuple[int, int]] = []
        while count > 0:
            while True:
                pindex += 1
                if pindex > NR_PCP_LISTS - 1:
                    pindex = 0
                if self.pcp_lists.get((cpu, gz, pindex)):
                    break
            lst = self.pcp_lists[(cpu, gz, pindex)]
            order = pindex // MIGRATE_PCPTYPES
            nr = 1 << order
            while True:
                page = _last(lst)
                mt = self.pfnblock_mt(page)
                self.pcp_del(page)
                count -= nr
                self.pcp_count[cpu][gz] -= nr
                if stage and self.needs_move(page, nr):
                    staged.insert(0, (page, order))
                else:
                    self._free_one_page(page, gz, order, mt, False)
                if count <= 0 or not lst:
                    break
        return staged

    def drain_pages_zone(self, cpu: int, gz: int, rep: RefCommitReport | None = None) -> None:
        """drain_pages_zone; with ``rep`` (the commit's drain) the pages whose
        node changes are freed into their new zones after each chunk."""
        while self.pcp_count[cpu][gz]:
            count = self.pcp_count[cpu][gz]
            to_drain = min(count, self.pcp_batch[gz] << PCP_BATCH_SCALE_MAX)
            staged = self.free_pcppages_bulk(cpu, gz, to_drain, 0, stage=rep is not None)
            drained = count - self.pcp_count[cpu][gz]  # a high-order block may overshoot
            self.pcp_drained += drained
            if rep is not None:
                rep.pcp_pages_drained += drained
                for p, o in staged:
                    self.release_block(p, o, rep, "pcp_pages_moved")

    def drain_all_pages(self, rep: RefCommitReport | None = None) -> None:
        """drain_all_pages(NULL): each CPU, each populated zone."""
        for cpu in range(self.nr_cpus):
            for gz in range(self.ngz):
                if self.present[gz] and self.pcp_count[cpu][gz]:
                    self.drain_pages_zone(cpu, gz, rep)

    def decay_pcp_high(self, cpu: int, gz: int) -> None:
        """decay_pcp_high: high down by 1/8 toward high_min (not below
        count - batch << PCP_BATCH_SCALE_MAX), the excess freed batch by batch."""
        hmin, batch = self.pcp_high_min[gz], self.pcp_batch[gz]
        if self.pcp_high[cpu][gz] > hmin:
            high = self.pcp_high[cpu][gz]
            self.pcp_high[cpu][gz] = max(self.pcp_count[cpu][gz] - (batch << PCP_BATCH_SCALE_MAX),
                                         high - (high >> 3), hmin)
        to_drain = self.pcp_count[cpu][gz] - self.pcp_high[cpu][gz]
        while to_drain > 0:
            n = min(to_drain, batch)
            self.free_pcppages_bulk(cpu, gz, n, 0)
            to_drain -= n

    def vmstat_tick(self) -> None:
        """refresh_cpu_vm_stats(do_pagesets=true) on each CPU in turn, each
        populated zone: a pcp used since the last tick (the model's stand-in
        for a non-zero vm_stat_diff) gets expire = 3; decay_pcp_high; a remote
        zone's pcp idle for 3 ticks gives one batch back (drain_zone_pages)."""
        for cpu in range(self.nr_cpus):
            for gz in range(self.ngz):
                if not self.present[gz]:
                    continue
                if self.pcp_flags[cpu][gz] & PCPF_TOUCHED:
                    self.pcp_flags[cpu][gz] &= ~PCPF_TOUCHED
                    self.pcp_expire[cpu][gz] = 3
                self.decay_pcp_high(cpu, gz)
                if not self.pcp_expire[cpu][gz] or not self.pcp_count[cpu][gz]:
                    continue
                if gz // NZ == self.cpu_to_node[cpu]:
                    self.pcp_expire[cpu][gz] = 0
                    continue
                self.pcp_expire[cpu][gz] -= 1
                if self.pcp_expire[cpu][gz]:
                    continue
                n = min(self.pcp_count[cpu][gz], self.pcp_batch[gz])
                if n > 0:
                    self.free_pcppages_bulk(cpu, gz, n, 0)

    def nr_pcp_high(self, cpu: int, gz: int, batch: int, free_high: bool) -> int:
        """nr_pcp_high (no ZONE_RECLAIM_ACTIVE: no reclaim in the model)."""
        hmin, hmax = self.pcp_high_min[gz], self.pcp_high_max[gz]
        high = self.pcp_high[cpu][gz] = clamp(self.pcp_high[cpu][gz], hmin, hmax)
        if not high:
            return 0
        if free_high:
            self.pcp_high[cpu][gz] = max(high - (batch << PCP_BATCH_SCALE_MAX), hmin)
            return 0
        if hmin == hmax:
            return high
        if self.below_high[gz]:
            free_count = max(self.pcp_free_count[cpu][gz], batch)
            self.pcp_high[cpu][gz] = max(high - free_count, hmin)
            high = max(self.pcp_count[cpu][gz], hmin)
        elif self.pcp_count[cpu][gz] >= high:
            need_high = self.pcp_free_count[cpu][gz] + batch
            if self.pcp_high[cpu][gz] < need_high:
                self.pcp_high[cpu][gz] = clamp(need_high, hmin, hmax)
        return high

    def nr_pcp_free(self, cpu: int, gz: int, batch: int, high: int, free_high: bool) -> int:
        if free_high:
            return min(self.pcp_count[cpu][gz], batch << PCP_BATCH_SCALE_MAX)
        if high < batch:
            return 1
        return clamp(self.pcp_free_count[cpu][gz], batch, high - batch)

    def free_unref_page_commit(self, gz: int, cpu: int, pfn: int, mt: int, order: int) -> None:
        self.pcp_alloc_factor[cpu][gz] >>= 1
        self.pcp_flags[cpu][gz] |= PCPF_TOUCHED
        pindex = self.order_to_pindex(mt, order)
        self.pcp_add(cpu, gz, pindex, pfn, order, tail=False)
        self.pcp_count[cpu][gz] += 1 << order
        batch = self.pcp_batch[gz]
        free_high = False
        flags = self.pcp_flags[cpu][gz]
        if order and order <= PAGE_ALLOC_COSTLY_ORDER:
            free_high = (self.pcp_free_count[cpu][gz] >= batch
                         and bool(flags & PCPF_PREV_FREE_HIGH_ORDER)
                         and (not flags & PCPF_FREE_HIGH_BATCH
                              or self.pcp_count[cpu][gz] >= batch))
            self.pcp_flags[cpu][gz] = flags | PCPF_PREV_FREE_HIGH_ORDER
        elif flags & PCPF_PREV_FREE_HIGH_ORDER:
            self.pcp_flags[cpu][gz] = flags & ~PCPF_PREV_FREE_HIGH_ORDER
        if self.pcp_free_count[cpu][gz] < (batch << PCP_BATCH_SCALE_MAX):
            self.pcp_free_count[cpu][gz] += 1 << order
        high = self.nr_pcp_high(cpu, gz, batch, free_high)
        if self.pcp_count[cpu][gz] >= high:
            self.free_pcppages_bulk(cpu, gz, self.nr_pcp_free(cpu, gz, batch, high, free_high),
                                    pindex)
            if self.below_high[gz] and self.zone_watermark_ok(
                    gz, 0, self.wmark[gz][WMARK_HIGH], ZONE_MOVABLE, 0):
                self.below_high[gz] = False

    def free_to_zone(self, pfn: int, order: int, cpu: int) -> None:
        """free_unref_page (pcp orders) or __free_pages_ok."""
        gz = self.gz_of(pfn)
        if order <= PAGE_ALLOC_COSTLY_ORDER:
            mt = self.pfnblock_mt(pfn)
            if mt >= MIGRATE_PCPTYPES:
                if mt == MIGRATE_ISOLATE:
                    self.free_one_page(gz, pfn, order)
                    return
                mt = MIGRATE_MOVABLE
            self.free_unref_page_commit(gz, cpu, pfn, mt, order)
        else:
            self.free_one_page(gz, pfn, order)

    def nr_pcp_alloc(self, cpu: int, gz: int, order: int) -> int:
        base = self.pcp_batch[gz]
        hmin, hmax = self.pcp_high_min[gz], self.pcp_high_max[gz]
        high = self.pcp_high[cpu][gz] = clamp(self.pcp_high[cpu][gz], hmin, hmax)
        if high < base:
            return 1
        batch = base if order else base << self.pcp_alloc_factor[cpu][gz]
        if hmin != hmax and not self.below_high[gz]:
            high = self.pcp_high[cpu][gz] = min(high + batch, hmax)
        if not order:
            max_nr_alloc = max(high - self.pcp_count[cpu][gz] - base, base)
            if batch <= max_nr_alloc and self.pcp_alloc_factor[cpu][gz] < PCP_BATCH_SCALE_MAX:
                self.pcp_alloc_factor[cpu][gz] += 1
            batch = min(batch, max_nr_alloc)
        if batch > 1:
            batch = max(batch >> order, 2)
        return batch

    def rmqueue_pcplist(self, pref_gz: int, gz: int, order: int, mt: int,
                        cpu: int) -> int | None:
        """rmqueue_pcplist + __rmqueue_pcplist + rmqueue_bulk."""
        self.pcp_free_count[cpu][gz] >>= 1
        self.pcp_flags[cpu][gz] |= PCPF_TOUCHED
        pindex = self.order_to_pindex(mt, order)
        lst = self.pcp_lists[(cpu, gz, pindex)]
        if not lst:
            batch = self.nr_pcp_alloc(cpu, gz, order)
            mode = [RMQUEUE_NORMAL]
            alloced = 0
            for _ in range(batch):
                p = self._rmqueue(gz, order, mt, mode)
                if p is None:
                    break
                self.pcp_add(cpu, gz, pindex, p, order, tail=True)
                alloced += 1
            self.pcp_count[cpu][gz] += alloced << order
            if not lst:
                return None
        page = _first(lst)
        assert page is not None
        self.pcp_del(page)
        self.pcp_count[cpu][gz] -= 1 << order
        self.zone_statistics(pref_gz, gz, cpu)
        return page

    def rmqueue_buddy(self, pref_gz: int, gz: int, order: int, mt: int,
                      cpu: int) -> int | None:
        p = self._rmqueue(gz, order, mt, [RMQUEUE_NORMAL])
        if p is not None:
            self.zone_statistics(pref_gz, gz, cpu)
        return p

    def rmqueue(self, pref_gz: int, gz: int, order: int, mt: int, cpu: int) -> int | None:
        if order <= PAGE_ALLOC_COSTLY_ORDER:
            p = self.rmqueue_pcplist(pref_gz, gz, order, mt, cpu)
            if p is not None:
                return p
        return self.rmqueue_buddy(pref_gz, gz, order, mt, cpu)

    def zone_statistics(self, pref_gz: int, gz: int, cpu: int) -> None:
        nid = gz // NZ
        if nid == pref_gz // NZ:
            self.numa_stat[gz][NUMA_HIT] += 1
        else:
            self.numa_stat[gz][NUMA_MISS] += 1
            self.numa_stat[pref_gz][NUMA_FOREIGN] += 1
        if nid == self.cpu_to_node[cpu]:
            self.numa_stat[gz][NUMA_LOCAL] += 1
        else:
            self.numa_stat[gz][NUMA_OTHER] += 1

    # ------------------------------------------------------------------ watermarks
    def zone_watermark_ok(self, gz: int, order: int, mark: int, highest: int,
                          alloc_flags: int) -> bool:
        """__zone_watermark_ok (no CMA, no highatomic reserves)."""
        free_pages = self.zone_free[gz] - ((1 << order) - 1)
        mn = mark
        if alloc_flags & ALLOC_MIN_RESERVE:
            mn -= mn // 2
            if alloc_flags & ALLOC_NON_BLOCK:
                mn -= mn // 4
        if free_pages <= mn + self.lowmem_reserve[gz][highest]:
            return False
        if not order:
            return True
        for o in range(order, self.max_order + 1):
            for mt in range(MIGRATE_PCPTYPES):
                if self.free_area.get((gz, o, mt)):
                    return True
        return False

    def zone_watermark_fast(self, gz: int, order: int, mark: int, highest: int,
                            alloc_flags: int) -> bool:
        if not order and self.zone_free[gz] > mark + self.lowmem_reserve[gz][highest]:
            return True
        return self.zone_watermark_ok(gz, order, mark, highest, alloc_flags)

    def get_page_from_freelist(self, zl: list[int], highest: int, nodemask: set[int] | None,
                               order: int, alloc_flags: int, mt: int, cpu: int,
                               pref_gz: int) -> int | None:
        for gz in zl:
            if gz % NZ > highest or (nodemask is not None and gz // NZ not in nodemask):
                continue
            ok = False
            if not self.below_high[gz]:
                if self.zone_watermark_fast(gz, order, self.wmark[gz][WMARK_HIGH], highest,
                                            alloc_flags):
                    ok = True
                else:
                    self.below_high[gz] = True
            if not ok:
                mark = self.wmark[gz][alloc_flags & ALLOC_WMARK_MASK]
                if not self.zone_watermark_fast(gz, order, mark, highest, alloc_flags):
                    continue
            page = self.rmqueue(pref_gz, gz, order, mt, cpu)
            if page is not None:
                return page
        return None

    # ------------------------------------------------------------------ alloc / free
    @staticmethod
    def gfp_zone(gfp: int) -> int:
        if gfp & G_DMA:
            return ZONE_DMA
        if gfp & G_DMA32:
            return ZONE_DMA32
        if gfp & G_MOVABLE and gfp & G_HIGHMEM:
            return ZONE_MOVABLE
        return ZONE_NORMAL

    @staticmethod
    def gfp_migratetype(gfp: int) -> int:
        if gfp & G_MOVABLE:
            return MIGRATE_MOVABLE
        if gfp & G_RECLAIMABLE:
            return MIGRATE_RECLAIMABLE
        return MIGRATE_UNMOVABLE

    def apply_policy_zone(self, nodes: list[int], zone: int) -> bool:
        dynamic_policy_zone = self.policy_zone
        if not any(self.n_high_memory[n] for n in nodes if n < self.max_numnodes):
            dynamic_policy_zone = ZONE_MOVABLE
        return zone >= dynamic_policy_zone

    def alloc_pages(self, order: int, cpu: int, nid: int | None = None, gfp: int = 0,
                    policy: Any = None, owner: int = 0,
                    nodes_allowed: Iterable[int] | None = None) -> int | None:
        """alloc_pages_node(nid) when ``nid`` is given (with ``nodes_allowed``:
        __alloc_pages(gfp, order, nid, nodemask), as alloc_migration_target
        calls it), else alloc_pages() under the task ``policy``
        (alloc_pages_mpol / policy_nodemask), then __alloc_pages with the
        model's slowpath (min watermark, drain, retry)."""
        local = self.cpu_to_node[cpu]
        thisnode = bool(gfp & G_THISNODE)
        highest = self.gfp_zone(gfp)
        nodemask: set[int] | None = None
        il_target = None
        mode = MPOL_LOCAL if policy is None else policy.mode
        if nid is not None:
            pref = nid
            if nodes_allowed is not None:
                nodemask = set(nodes_allowed)
        elif thisnode or mode in (MPOL_DEFAULT, MPOL_LOCAL):
            pref = local  # G_THISNODE uses the default (local) policy
        elif mode == MPOL_PREFERRED:
            pref = policy.nodes[0]
        elif mode == MPOL_BIND:
            pref = local
            if self.apply_policy_zone(policy.nodes, highest):
                nodemask = set(policy.nodes)
        else:
            assert mode == MPOL_INTERLEAVE
            prev = self.il_prev.get(id(policy), self.max_numnodes - 1)
            nodes = sorted(policy.nodes)
            nxt = [n for n in nodes if n > prev]
            pref = nxt[0] if nxt else nodes[0]  # next_node_in()
            self.il_prev[id(policy)] = pref
            il_target = pref
        mt = self.gfp_migratetype(gfp)
        zl = self.zonelist_nofb[pref] if thisnode else self.zonelist[pref]
        pref_gz = next((g for g in zl if g % NZ <= highest
                        and (nodemask is None or g // NZ in nodemask)), None)
        page = None
        if pref_gz is not None:
            page = self.get_page_from_freelist(zl, highest, nodemask, order, ALLOC_WMARK_LOW,
                                               mt, cpu, pref_gz)
            if page is None:
                flags = ALLOC_WMARK_MIN
                if gfp & G_HIGH:
                    flags |= ALLOC_MIN_RESERVE
                if gfp & G_ATOMIC_MODEL:
                    flags |= ALLOC_NON_BLOCK
                page = self.get_page_from_freelist(zl, highest, nodemask, order, flags, mt,
                                                   cpu, pref_gz)
                if page is None and gfp & G_ATOMIC_MODEL:
                    # cannot reclaim: the retry attempt, then nopage (no drain);
                    # non-blocking __GFP_HIGH drops ALLOC_CPUSET: no nodemask
                    if gfp & G_HIGH and nodemask is not None:
                        nodemask = None
                        pref_gz = next(g for g in zl if g % NZ <= highest)
                        page = self.get_page_from_freelist(zl, highest, None, order, flags,
                                                           mt, cpu, pref_gz)
                elif page is None:
                    self.drain_all_pages()
                    page = self.get_page_from_freelist(zl, highest, nodemask, order, flags,
                                                       mt, cpu, pref_gz)
        if page is None:
            self.alloc_fail += 1
            return None
        self.blocks[page] = Block("alloc", order, movable=mt == MIGRATE_MOVABLE, owner=owner)
        if il_target is not None and self.nid[page] == il_target:
            self.numa_stat[self.gz_of(page)][NUMA_INTERLEAVE_HIT] += 1
        return page

    def free_pages(self, pfn: int, order: int, cpu: int) -> None:
        """__free_pages, with the DNUMA redirect of a marked block: cut at the
        effective layout's range boundaries into maximal aligned chunks, each
        chunk re-homed to its range's node (moved-on-free) and freed straight
        to the buddy lists (free_one_page)."""
        b = self.blocks.get(pfn)
        if b is None or b.kind != "alloc" or b.order != order:
            raise RefBadFree(f"pfn {pfn} order {order}")
        del self.blocks[pfn]
        if not b.mark:
            self.free_to_zone(pfn, order, cpu)
            return
        end = pfn + (1 << order)
        moved = False
        populated = self.populated()
        for p, co, t in self.layout_chunks(pfn, end):
            n = 1 << co
            if t is not None and t != self.nid[p]:
                self.rehome(p, n, t, managed=True)
                self.moved_on_free += n
                moved = True
            self.free_one_page(self.gz_of(p), p, co)  # the RFC's hooks: no pcp list
        if moved:  # managed pages changed: the kernel reruns init_per_zone_wmark_min
            if self.populated() != populated:  # the engine rebuilds its zone set-up
                self.zone_pcp_reset()
                self.init_per_zone_wmark_min()
                self.build_all_zonelists()
            else:
                self.init_per_zone_wmark_min()

    # ------------------------------------------------------------------ layout
    def layout_range(self, pfn: int) -> tuple[int, int, int] | None:
        """The effective layout's range holding ``pfn``, or None."""
        i = bisect.bisect_right(self._layout_starts, pfn) - 1
        if i >= 0 and self.layout[i][1] >= pfn:
            return self.layout[i]
        return None

    def target(self, pfn: int) -> int | None:
        r = self.layout_range(pfn)
        return None if r is None else r[2]

    def layout_chunks(self, start: int, end: int) -> list[tuple[int, int, int | None]]:
        """[start, end) cut at every range boundary of the effective layout (and
        page by page where no range covers it), each run into maximal aligned
        chunks: (pfn, order, target nid or None)."""
        out = []
        p = start
        while p < end:
            r = self.layout_range(p)
            run_end, t = (min(end, r[1] + 1), r[2]) if r is not None else (p + 1, None)
            out.extend((c, o, t) for c, o in maximal_chunks(p, run_end, self.max_order))
            p = run_end
        return out

    def needs_move(self, h: int, n: int) -> bool:
        nid = self.nid[h]
        for p in range(h, h + n):
            t = self.target(p)
            if t is not None and t != nid:
                return True
        return False

    def rehome(self, pfn: int, n: int, new_nid: int, managed: bool) -> None:
        """Give pages [pfn, pfn + n) to ``new_nid``'s zone of the same index."""
        for p in range(pfn, pfn + n):
            old = self.gz_of(p)
            new = new_nid * NZ + self.zone[p]
            self.present[old] -= 1
            self.present[new] += 1
            if managed:
                self.managed[old] -= 1
                self.managed[new] += 1
            self.nid[p] = new_nid
        self._spans = None

    def find_block(self, pfn: int) -> int | None:
        """Head of the block (free, pcp or allocated) holding ``pfn``."""
        if pfn in self.blocks:
            return pfn
        for o in range(1, self.max_order + 1):
            h = (pfn >> o) << o
            b = self.blocks.get(h)
            if b is not None and h + (1 << b.order) > pfn:
                return h
        return None

    def release_block(self, h: int, order: int, rep: RefCommitReport, counter: str) -> None:
        """Free a detached block into its target zones, straight to the buddy
        lists: whole when one range of the effective layout holds it, else (a
        split) in maximal aligned chunks cut at the range boundaries."""
        n = 1 << order
        chunks = self.layout_chunks(h, h + n)
        if len(chunks) > 1:
            rep.blocks_split += 1
        for p, co, t in chunks:
            c = 1 << co
            if t is not None and t != self.nid[p]:
                self.rehome(p, c, t, managed=True)
                setattr(rep, counter, getattr(rep, counter) + c)
            self.free_one_page(self.gz_of(p), p, co)

    def commit(self, ranges: Iterable[tuple[int, int, int]]) -> RefCommitReport:
        """The DNUMA commit's page work, in the engine's order: install the
        effective layout (new over old), walk the new layout's ranges in pfn
        order (reserved pages re-homed, allocated blocks marked/unmarked,
        misplaced free blocks moved), then drain every pcp list, freeing the
        pages whose node changes into their new zones.  The zone set-up
        that follows is init_per_zone_wmark_min (the zonelists are copied
        from the engine by :meth:`sync_setup`)."""
        new = sorted((int(s), int(e), int(n)) for s, e, n in ranges)
        self.layout = overlay(self.layout, new)
        self._layout_starts = [r[0] for r in self.layout]
        rep = RefCommitReport()
        # the walk over the new layout's ranges
        for s, e, _nid in new:
            pfn = s
            e = min(e, self.max_pfn - 1)
            while pfn <= e:
                if self.hole[pfn]:
                    pfn += 1
                    continue
                if self.reserved[pfn]:
                    t = self.target(pfn)
                    if t is not None and t != self.nid[pfn]:
                        self.rehome(pfn, 1, t, managed=False)
                        rep.reserved_rehomed += 1
                    pfn += 1
                    continue
                h = self.find_block(pfn)
                if h is None:
                    pfn += 1
                    continue
                b = self.blocks[h]
                n = 1 << b.order
                if b.kind == "buddy":
                    if self.needs_move(h, n):
                        self.del_from_free_list(h, b.gz, b.order, b.mt)
                        self.zone_free[b.gz] -= n
                        self.release_block(h, b.order, rep, "free_pages_moved")
                elif b.kind == "alloc":
                    mv = self.needs_move(h, n)
                    if mv and not b.mark:
                        b.mark = True
                        rep.pages_marked += n
                    elif not mv and b.mark:
                        b.mark = False
                        rep.pages_unmarked += n
                pfn = h + n
        # memlayout_commit's last step: drain_all_pages(), the pages whose
        # node changes redirected as they drain
        self.drain_all_pages(rep)
        self.moved_at_commit += rep.free_pages_moved + rep.pcp_pages_moved
        # present/managed pages moved: init_per_zone_wmark_min, as memory
        # hotplug and the RFC run it (the pagesets of zones emptied or refilled
        # reset first); then the zonelists are rebuilt
        self.zone_pcp_reset()
        self.init_per_zone_wmark_min()
        self.build_all_zonelists()
        return rep

    # ------------------------------------------------------------------ views
    def free_pfns(self) -> set[int]:
        out: set[int] = set()
        for h, b in self.blocks.items():
            if b.kind != "alloc":
                out.update(range(h, h + (1 << b.order)))
        return out

    def nr_free_pages(self) -> int:
        return sum(1 << b.order for b in self.blocks.values() if b.kind != "alloc")


# ---------------------------------------------------------------------- compare
def _walk(head: int, nxt: list[int], limit: int) -> list[int]:
    out = []
    p = head
    while p >= 0:
        out.append(p)
        p = nxt[p]
        if len(out) > limit:
            raise AssertionError("engine list has a cycle")
    return out


def differences(r: RefMachine, m: Any, check_counters: bool = True) -> list[str]:
    """Every observable difference between the reference and the engine
    machine ``m`` (empty when they agree)."""
    import numpy as np

    from dnuma._kernels import state as st
    from dnuma.mm.constants import PG_buddy, PG_head, PG_hole, PG_lru, PG_pcp, PG_reserved

    S = m.S
    bad: list[str] = []

    def cmp(name: str, have: Any, want: Any) -> None:
        if have != want:
            if isinstance(have, list) and isinstance(want, list) and len(have) == len(want):
                idx = [i for i, (a, b) in enumerate(zip(have, want, strict=True)) if a != b]
                bad.append(f"{name}: {len(idx)} entries differ, first at {idx[0]}: "
                           f"engine {have[idx[0]]!r}, reference {want[idx[0]]!r}")
            else:
                bad.append(f"{name}: engine {have!r}, reference {want!r}")

    n = r.max_pfn
    flags = S.page_flags.tolist()
    cmp("hole", ((S.page_flags & PG_hole) != 0).tolist(), r.hole)
    cmp("reserved", ((S.page_flags & PG_reserved) != 0).tolist(), r.reserved)
    cmp("page_nid", S.page_nid.tolist(), r.nid)
    cmp("page_zone", S.page_zone.tolist(), r.zone)
    cmp("pb_mt", S.pb_mt.tolist(), r.pb_mt)
    # blocks by kind
    order = S.page_order.tolist()
    mark = m.mark_mask().tolist()
    owner = S.page_owner.tolist()
    def heads(flag: int) -> list[int]:
        return np.flatnonzero(S.page_flags & flag).tolist()

    e_buddy = {p: order[p] for p in heads(PG_buddy)}
    e_pcp = {p: order[p] for p in heads(PG_pcp)}
    e_alloc = {p: (order[p], bool(mark[p]), bool(flags[p] & PG_lru), owner[p])
               for p in heads(PG_head)}
    r_buddy = {p: b.order for p, b in r.blocks.items() if b.kind == "buddy"}
    r_pcp = {p: b.order for p, b in r.blocks.items() if b.kind == "pcp"}
    r_alloc = {p: (b.order, b.mark, b.movable, b.owner)
               for p, b in r.blocks.items() if b.kind == "alloc"}
    for name, a, b in (("buddy blocks", e_buddy, r_buddy), ("pcp blocks", e_pcp, r_pcp),
                       ("allocated blocks", e_alloc, r_alloc)):
        if a != b:
            only_e = sorted(set(a.items()) - set(b.items()))[:5]
            only_r = sorted(set(b.items()) - set(a.items()))[:5]
            bad.append(f"{name}: engine only {only_e}, reference only {only_r}")
    # free lists, in list order
    nxt = S.lru_next.tolist()
    e_lists = {}
    for gz, o, mt in np.argwhere(S.free_head >= 0).tolist():
        e_lists[(gz, o, mt)] = _walk(int(S.free_head[gz, o, mt]), nxt, n)
    r_lists = {k: list(v) for k, v in r.free_area.items() if v}
    if e_lists != r_lists:
        keys = sorted(set(e_lists) | set(r_lists))
        diff = [k for k in keys if e_lists.get(k) != r_lists.get(k)]
        k = diff[0]
        bad.append(f"free lists differ on {len(diff)} lists, first (gz, order, mt) {k}: "
                   f"engine {e_lists.get(k, [])[:12]}, reference {r_lists.get(k, [])[:12]}")
    cnt = S.free_cnt
    r_cnt = np.zeros_like(cnt)
    for (gz, o, mt), v in r.free_area.items():
        r_cnt[gz, o, mt] = len(v)
    if not np.array_equal(cnt, r_cnt):
        k = tuple(np.argwhere(cnt != r_cnt)[0].tolist())
        bad.append(f"nr_free {k}: engine {int(cnt[k])}, reference {int(r_cnt[k])}")
    # pcp lists
    e_pl = {}
    for cpu, gz, pi in np.argwhere(S.pcp_head >= 0).tolist():
        e_pl[(cpu, gz, pi)] = _walk(int(S.pcp_head[cpu, gz, pi]), nxt, n)
    r_pl = {k: list(v) for k, v in r.pcp_lists.items() if v}
    if e_pl != r_pl:
        keys = sorted(set(e_pl) | set(r_pl))
        diff = [k for k in keys if e_pl.get(k) != r_pl.get(k)]
        k = diff[0]
        bad.append(f"pcp lists differ on {len(diff)} lists, first (cpu, gz, pindex) {k}: "
                   f"engine {e_pl.get(k, [])[:12]}, reference {r_pl.get(k, [])[:12]}")
    cmp("pcp count", S.pcp_count.tolist(), r.pcp_count)
    cmp("pcp high", S.pcp_high.tolist(), r.pcp_high)
    cmp("pcp free_count", S.pcp_free_count.tolist(), r.pcp_free_count)
    cmp("pcp alloc_factor", S.pcp_alloc_factor.tolist(), r.pcp_alloc_factor)
    cmp("pcp flags", S.pcp_flags.tolist(), r.pcp_flags)
    cmp("pcp expire", S.pcp_expire.tolist(), r.pcp_expire)
    # zones and nodes
    cmp("NR_FREE_PAGES", S.zone_free.tolist(), r.zone_free)
    cmp("present_pages", S.zone_present.tolist(), r.present)
    cmp("managed_pages", S.zone_managed.tolist(), r.managed)
    cmp("min_free_kbytes", m.min_free_kbytes, r.min_free_kbytes)
    cmp("watermarks", S.wmark.tolist(), r.wmark)
    cmp("lowmem_reserve", S.lowmem_reserve.tolist(), r.lowmem_reserve)
    cmp("pcp batch", S.pcp_batch.tolist(), r.pcp_batch)
    cmp("pcp high_min", S.pcp_high_min.tolist(), r.pcp_high_min)
    cmp("pcp high_max", S.pcp_high_max.tolist(), r.pcp_high_max)
    cmp("ZONE_BELOW_HIGH", [bool(f & st.ZONE_BELOW_HIGH) for f in S.zone_flags.tolist()],
        r.below_high)
    cmp("numa_stat", S.numa_stat.tolist(), r.numa_stat)
    for nid in range(r.max_numnodes):
        gzs = range(nid * NZ, nid * NZ + NZ)
        want = [sum(r.numa_stat[g][i] for g in gzs) for i in range(NR_VM_NUMA_EVENT_ITEMS)]
        have = list(m.numastat(nid).values())
        if have != want:
            bad.append(f"numastat node {nid}: engine {have}, reference {want}")
        pd = m.NODE_DATA(nid)
        cmp(f"node {nid} present", pd.node_present_pages, sum(r.present[g] for g in gzs))
        cmp(f"node {nid} managed", pd.node_managed_pages, sum(r.managed[g] for g in gzs))
    # zone spans: what zone_start_pfn/spanned_pages report (computed, when the
    # engine's are stale, on copies so that comparing changes nothing), minus
    # holes at either end (a boot span may start or end in one), against the
    # reference's first and last present pfn
    from dnuma._kernels.buddy import zone_span_refresh

    hole = r.hole
    for gz in range(r.ngz):
        if S.zone_flags[gz] & st.ZONE_SPAN_DIRTY:
            S2 = S._replace(zone_start=S.zone_start.copy(), zone_end=S.zone_end.copy(),
                            zone_flags=S.zone_flags.copy())
            zone_span_refresh(S2, gz)
            lo, hi = int(S2.zone_start[gz]), int(S2.zone_end[gz])
        else:
            lo, hi = int(S.zone_start[gz]), int(S.zone_end[gz])
        while lo < hi and hole[lo]:
            lo += 1
        while hi > lo and hole[hi - 1]:
            hi -= 1
        want = r.zone_span(gz) if r.present[gz] else (0, 0)
        if (lo, hi) != want and not (lo == hi and want[0] == want[1]):
            bad.append(f"zone {gz} span (holes at the ends trimmed): engine [{lo}, {hi}), "
                       f"reference [{want[0]}, {want[1]})")
    # the effective layout
    eff = list(zip(m.effective.starts.tolist(), m.effective.ends.tolist(),
                   m.effective.nids.tolist(), strict=True))
    if eff != r.layout:
        bad.append(f"effective layout: engine {eff[:6]}... ({len(eff)}), "
                   f"reference {r.layout[:6]}... ({len(r.layout)})")
    if check_counters:
        cmp("moved_on_free", int(S.counters[st.C_MOVED_ON_FREE]), r.moved_on_free)
        cmp("moved_at_commit", int(S.counters[st.C_MOVED_AT_COMMIT]), r.moved_at_commit)
        cmp("alloc failures", int(S.counters[st.C_ALLOC_FAIL]), r.alloc_fail)
    return bad


def assert_agree(r: RefMachine, m: Any, what: str = "", **kw: Any) -> None:
    bad = differences(r, m, **kw)
    if bad:
        raise AssertionError(f"engine and reference disagree{' after ' + what if what else ''}:"
                             "\n  " + "\n  ".join(bad))


# ---------------------------------------------------------------- both models at once
def ref_boot(m: Any) -> RefMachine:
    """The reference booted like the freshly booted engine machine ``m``
    (checked equal)."""
    r = RefMachine.boot(m)
    assert_agree(r, m, "boot")
    return r


def both_alloc(m: Any, r: RefMachine, order: int, cpu: int, **kw: Any) -> int | None:
    """The same alloc_pages on both; they must return the same pfn."""
    a = m.alloc_pages(order, cpu, **kw)
    b = r.alloc_pages(order, cpu, **kw)
    r.sync_setup(m)
    assert a == b, f"alloc_pages(order={order}, cpu={cpu}, {kw}): engine {a}, reference {b}"
    return a


def both_free(m: Any, r: RefMachine, pfn: int, order: int, cpu: int) -> None:
    m.free_pages(pfn, order, cpu)
    r.free_pages(pfn, order, cpu)
    r.sync_setup(m)


def both_commit(m: Any, r: RefMachine, layout: Any) -> Any:
    """Commit the MemLayout ``layout`` on both; the engine's CommitReport
    must carry the reference's page counts.  Returns the engine's report."""
    rep = m.commit(layout)
    want = r.commit(list(layout))
    r.sync_setup(m)
    got = {k: getattr(rep, k) for k in vars(want)}
    assert got == vars(want), f"commit report: engine {got}, reference {vars(want)}"
    return rep
