"""The model's state: every array declared once (:data:`STATE`), and the
namedtuple ``KState`` bundling them for the compiled kernels.

struct page is a struct of per-pfn arrays (15 1/8 bytes a pfn, see
:func:`per_pfn_bytes`); the RFC's LookupNode mark is a bitmap of its own
(``buddy.test_mark``, ``set_mark``, ``clear_mark``).  Zones are indexed
globally: ``gz = nid * MAX_NR_ZONES + zone_idx``.
"""

from __future__ import annotations

from collections import namedtuple
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from .consts import (
    MAX_NR_ZONES,
    MIGRATE_MOVABLE,
    MIGRATE_TYPES,
    NR_PCP_LISTS,
    NR_VM_NUMA_EVENT_ITEMS,
    NR_WMARK,
    PG_hole,
)

# params[] indices (read-only scalars of the machine)
P_MAX_ORDER = 0  # MAX_PAGE_ORDER (inclusive)
P_PB_ORDER = 1  # pageblock_order
P_MAX_PFN = 2  # arrays cover pfns [0, max_pfn)
P_NR_CPUS = 3
P_MAX_NUMNODES = 4
P_SECTION_SHIFT = 5  # log2(pages per section)
P_MOBILITY_OFF = 6  # page_group_by_mobility_disabled
P_POLICY_ZONE = 7  # policy_zone: highest non-movable zone ever populated
NR_PARAMS = 8

# counters[] indices (model-wide event counts)
C_MOVED_ON_FREE = 0  # pages redirected to their new node when freed
C_ALLOC_FAIL = 1
C_LOOKUP_HITS = 2  # memlayout lookups made on the free path
C_LOOKUP_MISSES = 3
C_PCP_DRAINED = 4
C_ZONES_CHANGED = 5  # a zone became empty or populated: zonelists need a rebuild
C_MOVED_AT_COMMIT = 6  # free pages a commit moved to a new node (buddy transplants and
#                        pcp-drain redirects); with C_MOVED_ON_FREE the RFC's moved-pages
NR_COUNTERS = 8

# zone_flags bits
ZONE_BELOW_HIGH = 1
ZONE_SPAN_DIRTY = 2  # model: zone_start/zone_end must be recomputed

# pcp_flags bits
PCPF_PREV_FREE_HIGH_ORDER = 1
PCPF_FREE_HIGH_BATCH = 2
PCPF_TOUCHED = 4  # model: the CPU used this pcp since the last vmstat tick


# owners of a state array (who sets it up; what a snapshot saves)
MACHINE = "machine"  # allocated at boot from this table, saved by snapshots
TOPOLOGY = "topology"  # held by mm.topology.Topology and shared with the kernels; saved
LAYOUT = "layout"  # derived from the installed effective memlayout; not saved

#: the size of each symbolic dimension that is not a machine quantity
FIXED_DIMS = {"param": NR_PARAMS, "counter": NR_COUNTERS, "one": 1, "zone": MAX_NR_ZONES,
              "mt": MIGRATE_TYPES, "pcp_list": NR_PCP_LISTS, "wmark": NR_WMARK,
              "numa_item": NR_VM_NUMA_EVENT_ITEMS, "zonelist_nofb": MAX_NR_ZONES + 1}
#: bytes of a per-pfn dimension's element counted per pfn (``pfn8``: a bitmap byte)
PER_PFN_DIMS = {"pfn": 1.0, "pfn8": 1 / 8}


class StateArray(NamedTuple):
    """One array of the model state: its name (a KState field), numpy dtype,
    symbolic dimensions (``pfn``, ``pfn8`` = ceil(pfn / 8), ``pageblock``,
    ``section``, ``gz`` = global zones, ``order``, ``cpu``, ``node``,
    ``node_state``, ``zonelist`` = gz + 1, or a FIXED_DIMS name; ``range`` and
    ``table`` are sized by the layout), initial fill, owner and meaning."""

    name: str
    dtype: str
    dims: tuple[str, ...]
    fill: int
    owner: str
    doc: str


def _a(name: str, dtype: str, dims: str, fill: int, owner: str, doc: str) -> StateArray:
    return StateArray(name, dtype, tuple(dims.split()), fill, owner, doc)


#: Every state array, declared once: allocation, KState's fields, snapshots
#: and their checks, restore and bytes per pfn all follow from this table.
STATE: tuple[StateArray, ...] = (
    _a("params", "i8", "param", 0, MACHINE, "read-only scalars of the machine (P_*)"),
    _a("counters", "i8", "counter", 0, MACHINE, "model-wide event counts (C_*)"),
    # struct page, as a struct of arrays
    _a("page_nid", "i2", "pfn", 0, MACHINE, "page_to_nid()"),
    _a("page_zone", "i1", "pfn", 0, MACHINE, "page_zonenum()"),
    _a("page_flags", "u1", "pfn", PG_hole, MACHINE, "PG_* bits (consts); PG_hole: not RAM"),
    _a("page_order", "i1", "pfn", 0, MACHINE, "buddy_order() of a free head, order of an "
       "allocated head"),
    _a("lru_next", "i4", "pfn", 0, MACHINE, "page->lru: next pfn on its free or pcp list"),
    _a("lru_prev", "i4", "pfn", 0, MACHINE, "page->lru: previous pfn on its list"),
    _a("page_mark", "u1", "pfn8", 0, MACHINE, "the RFC's LookupNode mark, a bitmap: bit "
       "pfn & 7 of byte pfn >> 3"),
    _a("page_owner", "i2", "pfn", 0, MACHINE, "the task that allocated the block (-1 free)"),
    _a("pb_mt", "i1", "pageblock", MIGRATE_MOVABLE, MACHINE, "get_pageblock_migratetype()"),
    _a("sec_present", "i4", "section gz", 0, MACHINE, "present pages of each zone in each "
       "section (spans, memory-block links)"),
    # struct zone, indexed by global zone gz = nid * MAX_NR_ZONES + zone_idx
    _a("free_head", "i8", "gz order mt", -1, MACHINE, "free_area[order].free_list[mt] head"),
    _a("free_tail", "i8", "gz order mt", -1, MACHINE, "free_list tail"),
    _a("free_cnt", "i8", "gz order mt", 0, MACHINE, "blocks on each free list (nr_free)"),
    _a("zone_free", "i8", "gz", 0, MACHINE, "NR_FREE_PAGES (buddy lists only)"),
    _a("zone_present", "i8", "gz", 0, MACHINE, "present_pages"),
    _a("zone_managed", "i8", "gz", 0, MACHINE, "managed_pages"),
    _a("zone_flags", "i8", "gz", ZONE_SPAN_DIRTY, MACHINE, "ZONE_BELOW_HIGH, "
       "ZONE_SPAN_DIRTY"),
    _a("zone_start", "i8", "gz", 0, MACHINE, "zone_start_pfn (unless ZONE_SPAN_DIRTY)"),
    _a("zone_end", "i8", "gz", 0, MACHINE, "zone_end_pfn(), exclusive"),
    _a("wmark", "i8", "gz wmark", 0, MACHINE, "_watermark[WMARK_*] (pages)"),
    _a("lowmem_reserve", "i8", "gz zone", 0, MACHINE, "lowmem_reserve[] (pages)"),
    _a("numa_stat", "i8", "gz numa_item", 0, MACHINE, "vm_numa_event[] (numastat)"),
    _a("pcp_batch", "i8", "gz", 1, MACHINE, "pageset_batch"),
    _a("pcp_high_min", "i8", "gz", 0, MACHINE, "pageset_high_min"),
    _a("pcp_high_max", "i8", "gz", 0, MACHINE, "pageset_high_max"),
    _a("zone_stat_threshold", "i8", "gz", 0, MACHINE, "per_cpu_zonestats->stat_threshold "
       "(every CPU's), set by refresh_zone_stat_thresholds"),
    # struct per_cpu_pages, per (cpu, gz)
    _a("pcp_head", "i8", "cpu gz pcp_list", -1, MACHINE, "pcp->lists[] heads"),
    _a("pcp_tail", "i8", "cpu gz pcp_list", -1, MACHINE, "pcp->lists[] tails"),
    _a("pcp_count", "i8", "cpu gz", 0, MACHINE, "pcp->count (pages)"),
    _a("pcp_high", "i8", "cpu gz", 0, MACHINE, "pcp->high (pages)"),
    _a("pcp_free_count", "i8", "cpu gz", 0, MACHINE, "pcp->free_count"),
    _a("pcp_alloc_factor", "i8", "cpu gz", 0, MACHINE, "pcp->alloc_factor"),
    _a("pcp_flags", "i8", "cpu gz", 0, MACHINE, "pcp->flags (PCPF_*)"),
    _a("pcp_expire", "i8", "cpu gz", 0, MACHINE, "pcp->expire: remote-drain countdown "
       "(vmstat ticks)"),
    # nodes and CPUs
    _a("cpu_to_node", "i4", "cpu", 0, TOPOLOGY, "cpu_to_node()"),
    _a("node_states", "?", "node_state node", 0, TOPOLOGY, "node_states[] as bools"),
    _a("distance", "i2", "node node", 0, TOPOLOGY, "node_distance() (the SLIT)"),
    _a("zonelist", "i4", "node zonelist", -1, MACHINE, "ZONELIST_FALLBACK: gz, -1 ended"),
    _a("zonelist_nofb", "i4", "node zonelist_nofb", -1, MACHINE, "ZONELIST_NOFALLBACK"),
    # the installed effective memlayout (lookups on free)
    _a("ml_tbl", "i4", "table", -1, LAYOUT, "MemLayout.table: pfn bucket -> first range"),
    _a("ml_starts", "i8", "range", 0, LAYOUT, "range start pfns"),
    _a("ml_ends", "i8", "range", 0, LAYOUT, "range end pfns, inclusive"),
    _a("ml_nids", "i2", "range", 0, LAYOUT, "range node ids"),
    _a("ml_cache", "i8", "one", -1, MACHINE, "the last range a lookup found (-1: none); "
       "reset when a layout is installed"),
)
STATE_BY_NAME = {a.name: a for a in STATE}

if TYPE_CHECKING:
    class KState(tuple[np.ndarray, ...]):
        """The typed face of the namedtuple below: every STATE name is a field."""

        _fields: tuple[str, ...]

        def __new__(cls, **arrays: np.ndarray) -> KState: ...

        def __getattr__(self, name: str) -> np.ndarray: ...

        def _asdict(self) -> dict[str, np.ndarray]: ...
else:
    #: the bundle of every state array the compiled kernels take (fields in STATE order)
    KState = namedtuple("KState", [a.name for a in STATE])


def owned_by(*owners: str) -> list[StateArray]:
    """The STATE entries of the given owners, in table order."""
    return [a for a in STATE if a.owner in owners]


def shape_of(a: StateArray, dims: dict[str, int]) -> tuple[int, ...]:
    """The shape of ``a`` for a machine whose dimension sizes are ``dims``
    (FIXED_DIMS are added)."""
    return tuple(dims[d] if d in dims else FIXED_DIMS[d] for d in a.dims)


def new_array(name: str, dims: dict[str, int]) -> np.ndarray:
    """A fresh array ``name`` of STATE, shaped by ``dims`` and filled
    (zeros come from calloc: untouched pages cost nothing until written)."""
    a = STATE_BY_NAME[name]
    shape, dtype = shape_of(a, dims), np.dtype(a.dtype)
    return np.full(shape, a.fill, dtype=dtype) if a.fill else np.zeros(shape, dtype=dtype)


def per_pfn_bytes() -> float:
    """Bytes a pfn costs in the per-pfn arrays (the mark bitmap's 1/8 included)."""
    return sum(np.dtype(a.dtype).itemsize * PER_PFN_DIMS[a.dims[0]]
               for a in STATE if a.dims[0] in PER_PFN_DIMS)
