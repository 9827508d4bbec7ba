"""The flat arrays the compiled kernels work on, bundled in one namedtuple.

Per-pfn arrays (struct page as a struct of arrays, 15 1/8 bytes a pfn):
  page_nid int16, page_zone int8, page_flags uint8, page_order int8,
  lru_next/lru_prev int32 (index-linked free and pcp lists, like page->lru),
  page_owner int16;
  page_mark: the RFC's LookupNode mark in its own bitmap, 1 bit a pfn (uint8
  [ceil(max_pfn / 8)], bit ``pfn & 7`` of byte ``pfn >> 3``; ``buddy.test_mark``,
  ``set_mark``, ``clear_mark``).
Zones are indexed globally: ``gz = nid * MAX_NR_ZONES + zone_idx``.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

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
C_MOVED_ON_FREE = 0  # pages redirected to their new node when freed (the RFC's moved-pages)
C_ALLOC_FAIL = 1
C_LOOKUP_HITS = 2  # memlayout lookups made on the free path
C_LOOKUP_MISSES = 3
C_PCP_DRAINED = 4
C_ZONES_CHANGED = 5  # a zone became empty or populated: zonelists need a rebuild
NR_COUNTERS = 8

# zone_flags bits
ZONE_BELOW_HIGH = 1
ZONE_SPAN_DIRTY = 2  # model: zone_start/zone_end must be recomputed

# pcp_flags bits
PCPF_PREV_FREE_HIGH_ORDER = 1
PCPF_FREE_HIGH_BATCH = 2
PCPF_TOUCHED = 4  # model: the CPU used this pcp since the last vmstat tick


class KState(NamedTuple):
    params: np.ndarray
    counters: np.ndarray
    # per pfn
    page_nid: np.ndarray
    page_zone: np.ndarray
    page_flags: np.ndarray
    page_order: np.ndarray
    lru_next: np.ndarray
    lru_prev: np.ndarray
    page_mark: np.ndarray  # bitmap, see above
    page_owner: np.ndarray
    # per pageblock
    pb_mt: np.ndarray
    # per section x global zone: present pages (for spans and memory-block links)
    sec_present: np.ndarray
    # per global zone
    free_head: np.ndarray  # [gz, order, mt]
    free_tail: np.ndarray
    free_cnt: np.ndarray  # nr_free per (gz, order, mt), in blocks
    zone_free: np.ndarray  # NR_FREE_PAGES
    zone_present: np.ndarray
    zone_managed: np.ndarray
    zone_flags: np.ndarray
    zone_start: np.ndarray  # zone_start_pfn (valid unless ZONE_SPAN_DIRTY)
    zone_end: np.ndarray  # zone_end_pfn, exclusive
    wmark: np.ndarray  # [gz, NR_WMARK]
    lowmem_reserve: np.ndarray  # [gz, MAX_NR_ZONES]
    numa_stat: np.ndarray  # [gz, NR_VM_NUMA_EVENT_ITEMS]
    pcp_batch: np.ndarray  # [gz]
    pcp_high_min: np.ndarray  # [gz]
    pcp_high_max: np.ndarray  # [gz]
    # per (cpu, gz)
    pcp_head: np.ndarray  # [cpu, gz, NR_PCP_LISTS]
    pcp_tail: np.ndarray
    pcp_count: np.ndarray
    pcp_high: np.ndarray
    pcp_free_count: np.ndarray
    pcp_alloc_factor: np.ndarray
    pcp_flags: np.ndarray
    pcp_expire: np.ndarray  # NUMA remote-drain countdown (vmstat ticks)
    # per node / cpu
    cpu_to_node: np.ndarray
    node_states: np.ndarray  # [state, nid] bools (N_NORMAL_MEMORY for mempolicy)
    zonelist: np.ndarray  # [nid, MAX_NUMNODES*MAX_NR_ZONES + 1] gz, -1 terminated
    zonelist_nofb: np.ndarray  # [nid, MAX_NR_ZONES + 1]
    # the installed effective memlayout (for redirect on free)
    ml_tbl: np.ndarray
    ml_starts: np.ndarray
    ml_ends: np.ndarray
    ml_nids: np.ndarray
    ml_cache: np.ndarray


def empty_layout_arrays() -> tuple[np.ndarray, ...]:
    return (np.full(1, -1, np.int32), np.zeros(0, np.int64), np.zeros(0, np.int64),
            np.zeros(0, np.int16), np.full(1, -1, np.int64))
