"""Constants shared by the compiled kernels and the model (Linux 6.12,
x86_64): zone and migratetype indices, struct page flag bits, gfp bits, memory
policy modes, numastat items, watermark indices.  :mod:`dnuma.mm.constants`
re-exports them with their names and the page-size profiles."""

from __future__ import annotations

# zones (enum zone_type)
ZONE_DMA = 0
ZONE_DMA32 = 1
ZONE_NORMAL = 2
ZONE_MOVABLE = 3
MAX_NR_ZONES = 4
NZ = MAX_NR_ZONES  # short form for global zone indices: gz = nid * NZ + zone_idx

# node states used by the kernels (enum node_states)
N_NORMAL_MEMORY = 2

# migratetypes
MIGRATE_UNMOVABLE = 0
MIGRATE_MOVABLE = 1
MIGRATE_RECLAIMABLE = 2
MIGRATE_PCPTYPES = 3
MIGRATE_HIGHATOMIC = 3
MIGRATE_CMA = 4
MIGRATE_ISOLATE = 5
MIGRATE_TYPES = 6

# per-cpu lists
PAGE_ALLOC_COSTLY_ORDER = 3
NR_PCP_LISTS = MIGRATE_PCPTYPES * (PAGE_ALLOC_COSTLY_ORDER + 1)  # no THP lists
PCP_BATCH_SCALE_MAX = 5

# struct page flags, as bits of the per-pfn ``page_flags`` uint8 array
PG_buddy = 1  # head of a free block on a buddy free list (PageBuddy)
PG_pcp = 2  # head of a free block on a per-cpu list (the kernel uses page->pcp_list)
PG_head = 4  # head of an allocated block (order in page_order)
PG_reserved = 8  # never handed to the buddy allocator
PG_slab = 16
PG_lru = 32
PG_hole = 64  # model only: not RAM (no struct page, !pfn_valid)

# numastat items (enum numa_stat_item), the order of nodeN/numastat
NUMA_HIT = 0
NUMA_MISS = 1
NUMA_FOREIGN = 2
NUMA_INTERLEAVE_HIT = 3
NUMA_LOCAL = 4
NUMA_OTHER = 5
NR_VM_NUMA_EVENT_ITEMS = 6

# watermarks (enum zone_watermarks)
WMARK_MIN = 0
WMARK_LOW = 1
WMARK_HIGH = 2
WMARK_PROMO = 3
NR_WMARK = 4

# alloc_flags of the allocator (mm/internal.h); the low bits index the watermarks
ALLOC_WMARK_MIN = WMARK_MIN
ALLOC_WMARK_LOW = WMARK_LOW
ALLOC_WMARK_HIGH = WMARK_HIGH
ALLOC_NO_WATERMARKS = 0x04
ALLOC_WMARK_MASK = ALLOC_NO_WATERMARKS - 1
ALLOC_NON_BLOCK = 0x10  # caller cannot block: 25% more of the min watermark
ALLOC_MIN_RESERVE = 0x20  # __GFP_HIGH: half the min watermark

# __rmqueue's remembered step (enum rmqueue_mode, mm/page_alloc.c)
RMQUEUE_NORMAL = 0
RMQUEUE_CMA = 1
RMQUEUE_CLAIM = 2
RMQUEUE_STEAL = 3

# gfp flags (a model subset of include/linux/gfp_types.h)
__GFP_DMA = 0x01
__GFP_HIGHMEM = 0x02
__GFP_DMA32 = 0x04
__GFP_MOVABLE = 0x08
__GFP_RECLAIMABLE = 0x10
__GFP_HIGH = 0x20
__GFP_ATOMIC_MODEL = 0x40  # model: ALLOC_NON_BLOCK (no direct reclaim)
__GFP_THISNODE = 0x200000

# memory policies (enum mempolicy_mode)
MPOL_DEFAULT = 0
MPOL_PREFERRED = 1
MPOL_BIND = 2
MPOL_INTERLEAVE = 3
MPOL_LOCAL = 4
MODE_NODE = -1  # model: alloc_pages_node(nid), no task policy
MODE_NODEMASK = -2  # model: __alloc_pages(gfp, order, nid, nodemask), e.g. alloc_migration_target
