"""Kernel constants of the modelled configuration (Linux 6.12, x86_64 defaults).

Names follow include/linux/mmzone.h, page-flags.h, gfp_types.h and nodemask.h.
"""

from __future__ import annotations

from dataclasses import dataclass

# --- zones (enum zone_type) -------------------------------------------------
ZONE_DMA = 0
ZONE_DMA32 = 1
ZONE_NORMAL = 2
ZONE_MOVABLE = 3
MAX_NR_ZONES = 4
ZONE_NAMES = ("DMA", "DMA32", "Normal", "Movable")

# --- migratetypes -------------------------------------------------------------
MIGRATE_UNMOVABLE = 0
MIGRATE_MOVABLE = 1
MIGRATE_RECLAIMABLE = 2
MIGRATE_PCPTYPES = 3
MIGRATE_HIGHATOMIC = 3
MIGRATE_CMA = 4
MIGRATE_ISOLATE = 5
MIGRATE_TYPES = 6
MIGRATETYPE_NAMES = ("Unmovable", "Movable", "Reclaimable", "HighAtomic", "CMA", "Isolate")

# --- per-cpu lists ------------------------------------------------------------
PAGE_ALLOC_COSTLY_ORDER = 3
NR_PCP_LISTS = MIGRATE_PCPTYPES * (PAGE_ALLOC_COSTLY_ORDER + 1)  # no THP lists
PCP_BATCH_SCALE_MAX = 5

# --- struct page flags, as bits of the per-pfn ``page_flags`` uint8 array ------
PG_buddy = 1  # head of a free block on a buddy free list (PageBuddy)
PG_pcp = 2  # head of a free block on a per-cpu list (the kernel uses page->pcp_list)
PG_head = 4  # head of an allocated block (order in page_order)
PG_reserved = 8  # never handed to the buddy allocator
PG_slab = 16
PG_lru = 32
PG_hole = 64  # model only: not RAM (no struct page, !pfn_valid)

# --- node states (enum node_states) ------------------------------------------
N_POSSIBLE = 0
N_ONLINE = 1
N_NORMAL_MEMORY = 2
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

# --- numastat items (enum numa_stat_item), order of nodeN/numastat -----------
NUMA_HIT = 0
NUMA_MISS = 1
NUMA_FOREIGN = 2
NUMA_INTERLEAVE_HIT = 3
NUMA_LOCAL = 4
NUMA_OTHER = 5
NR_VM_NUMA_EVENT_ITEMS = 6
NUMASTAT_NAMES = ("numa_hit", "numa_miss", "numa_foreign", "interleave_hit", "local_node",
                  "other_node")

# --- watermarks (enum zone_watermarks) ---------------------------------------
WMARK_MIN = 0
WMARK_LOW = 1
WMARK_HIGH = 2
WMARK_PROMO = 3
NR_WMARK = 4

# --- gfp flags (a model subset of include/linux/gfp_types.h) ------------------
__GFP_DMA = 0x01
__GFP_HIGHMEM = 0x02
__GFP_DMA32 = 0x04
__GFP_MOVABLE = 0x08
__GFP_RECLAIMABLE = 0x10
__GFP_HIGH = 0x20
__GFP_ATOMIC_MODEL = 0x40  # model: ALLOC_NON_BLOCK (no direct reclaim)
__GFP_THISNODE = 0x200000
GFP_KERNEL = 0
GFP_ATOMIC = __GFP_HIGH | __GFP_ATOMIC_MODEL
GFP_USER = 0
GFP_HIGHUSER_MOVABLE = __GFP_HIGHMEM | __GFP_MOVABLE
GFP_DMA32 = __GFP_DMA32

# --- memory policies (enum mempolicy_mode) ------------------------------------
MPOL_DEFAULT = 0
MPOL_PREFERRED = 1
MPOL_BIND = 2
MPOL_INTERLEAVE = 3
MPOL_LOCAL = 4
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
