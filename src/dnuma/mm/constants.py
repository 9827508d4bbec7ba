"""Kernel constants of the modelled configuration (Linux 6.12, x86_64 defaults).

Names follow include/linux/mmzone.h, page-flags.h, gfp_types.h and nodemask.h.
"""

from __future__ import annotations

from dataclasses import dataclass

from .._kernels.consts import (  # noqa: F401 - re-exported
    __GFP_ATOMIC_MODEL,
    __GFP_DMA,
    __GFP_DMA32,
    __GFP_HIGH,
    __GFP_HIGHMEM,
    __GFP_MOVABLE,
    __GFP_RECLAIMABLE,
    __GFP_THISNODE,
    MAX_NR_ZONES,
    MIGRATE_CMA,
    MIGRATE_HIGHATOMIC,
    MIGRATE_ISOLATE,
    MIGRATE_MOVABLE,
    MIGRATE_PCPTYPES,
    MIGRATE_RECLAIMABLE,
    MIGRATE_TYPES,
    MIGRATE_UNMOVABLE,
    MODE_NODE,
    MODE_NODEMASK,
    MPOL_BIND,
    MPOL_DEFAULT,
    MPOL_INTERLEAVE,
    MPOL_LOCAL,
    MPOL_PREFERRED,
    N_NORMAL_MEMORY,
    NR_PCP_LISTS,
    NR_VM_NUMA_EVENT_ITEMS,
    NR_WMARK,
    NUMA_FOREIGN,
    NUMA_HIT,
    NUMA_INTERLEAVE_HIT,
    NUMA_LOCAL,
    NUMA_MISS,
    NUMA_OTHER,
    NZ,
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
    PG_buddy,
    PG_head,
    PG_hole,
    PG_lru,
    PG_pcp,
    PG_reserved,
    PG_slab,
)

ZONE_NAMES = ("DMA", "DMA32", "Normal", "Movable")
MIGRATETYPE_NAMES = ("Unmovable", "Movable", "Reclaimable", "HighAtomic", "CMA", "Isolate")

# node states (enum node_states)
N_POSSIBLE = 0
N_ONLINE = 1
N_HIGH_MEMORY = N_NORMAL_MEMORY  # alias on 64-bit without HIGHMEM
N_MEMORY = 3
N_CPU = 4
NR_NODE_STATES = 5
NODE_STATE_NAMES = ("possible", "online", "has_normal_memory", "has_memory", "has_cpu")

NUMA_NO_NODE = -1
LOCAL_DISTANCE = 10
REMOTE_DISTANCE = 20
DEFAULT_MAX_NUMNODES = 64
MAX_MAX_NUMNODES = 1024

NUMASTAT_NAMES = ("numa_hit", "numa_miss", "numa_foreign", "interleave_hit", "local_node",
                  "other_node")

GFP_KERNEL = 0
GFP_ATOMIC = __GFP_HIGH | __GFP_ATOMIC_MODEL
GFP_USER = 0
GFP_HIGHUSER_MOVABLE = __GFP_HIGHMEM | __GFP_MOVABLE
GFP_DMA32 = __GFP_DMA32
POLICY_NAMES = {"default": MPOL_DEFAULT, "local": MPOL_LOCAL, "preferred": MPOL_PREFERRED,
                "bind": MPOL_BIND, "interleave": MPOL_INTERLEAVE}

# lowmem_reserve_ratio defaults: DMA 256, DMA32 256, NORMAL 32, MOVABLE 0
LOWMEM_RESERVE_RATIO = (256, 256, 32, 0)
WATERMARK_SCALE_FACTOR = 10


@dataclass(frozen=True)
class PageProfile:
    """Architecture page-size profile: everything sized in pfns derives from it."""

    name: str
    page_shift: int
    max_page_order: int  # MAX_PAGE_ORDER, inclusive
    pageblock_order: int
    section_size_bits: int
    memory_block_bytes: int
    dma_limit_bytes: int  # ZONE_DMA below this (0: no ZONE_DMA)
    dma32_limit_bytes: int  # ZONE_DMA32 below this (0: no ZONE_DMA32)

    @property
    def page_size(self) -> int:
        return 1 << self.page_shift

    @property
    def nr_page_orders(self) -> int:
        return self.max_page_order + 1

    @property
    def pageblock_nr_pages(self) -> int:
        return 1 << self.pageblock_order

    @property
    def pages_per_section(self) -> int:
        return 1 << (self.section_size_bits - self.page_shift)

    @property
    def pages_per_block(self) -> int:
        return self.memory_block_bytes >> self.page_shift


X86_64 = PageProfile("x86_64", 12, 10, 9, 27, 128 << 20, 16 << 20, 4 << 30)
# powerpc64, 64 KiB pages: ARCH_FORCE_MAX_ORDER 8, 16 MiB hugepages (pageblock order 8),
# SECTION_SIZE_BITS 24, 256 MiB LMBs; book3s64 puts all RAM in ZONE_NORMAL.
PPC64 = PageProfile("ppc64", 16, 8, 8, 24, 256 << 20, 0, 0)
PROFILES = {"x86_64": X86_64, "ppc64": PPC64}
