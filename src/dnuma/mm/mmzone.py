"""Read-only views of zones and nodes over the machine's arrays
(``struct zone`` and ``pglist_data`` of include/linux/mmzone.h)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from .._kernels import buddy as _kb
from .._kernels.state import ZONE_SPAN_DIRTY
from .constants import (
    MAX_NR_ZONES,
    NR_VM_NUMA_EVENT_ITEMS,
    NUMASTAT_NAMES,
    WMARK_HIGH,
    WMARK_LOW,
    WMARK_MIN,
    WMARK_PROMO,
    ZONE_NAMES,
)
from .errors import AllocArgError, check_int

if TYPE_CHECKING:
    from .machine import Machine


def zone_span(m: Machine, gz: int) -> tuple[int, int]:
    """(zone_start_pfn, spanned_pages): first to last present pfn of the zone,
    as resize_zone_range / shrink_zone_span keep them."""
    S = m.S
    if S.zone_flags[gz] & ZONE_SPAN_DIRTY:
        _kb.zone_span_refresh(S, gz)
    return int(S.zone_start[gz]), int(S.zone_end[gz] - S.zone_start[gz])


@dataclass(frozen=True)
class Zone:
    """A view of one zone: ``NODE_DATA(nid)->node_zones[zone_idx]``."""

    m: Machine
    nid: int
    zone_idx: int

    def __post_init__(self) -> None:
        check_int("nid", self.nid, 0, self.m.config.max_numnodes, AllocArgError,
                  " (this machine's MAX_NUMNODES)")
        check_int("zone_idx", self.zone_idx, 0, MAX_NR_ZONES, AllocArgError,
                  " (MAX_NR_ZONES)")

    @property
    def gz(self) -> int:
        return self.nid * MAX_NR_ZONES + self.zone_idx

    @property
    def name(self) -> str:
        return ZONE_NAMES[self.zone_idx]

    @property
    def zone_start_pfn(self) -> int:
        return zone_span(self.m, self.gz)[0]

    @property
    def spanned_pages(self) -> int:
        return zone_span(self.m, self.gz)[1]

    @property
    def present_pages(self) -> int:
        return int(self.m.S.zone_present[self.gz])

    @property
    def managed_pages(self) -> int:
        return int(self.m.S.zone_managed[self.gz])

    def populated(self) -> bool:
        """populated_zone: the zone holds present pages."""
        return self.present_pages > 0

    @property
    def nr_free_pages(self) -> int:
        """NR_FREE_PAGES: pages on the buddy lists (not the per-cpu lists)."""
        return int(self.m.S.zone_free[self.gz])

    def nr_free(self) -> list[int]:
        """``free_area[order].nr_free`` for each order (blocks)."""
        return self.m.S.free_cnt[self.gz].sum(axis=1).tolist()

    def nr_free_by_type(self) -> np.ndarray:
        """[order, migratetype] counts of free blocks (/proc/pagetypeinfo)."""
        return self.m.S.free_cnt[self.gz].copy()

    @property
    def watermarks(self) -> dict[str, int]:
        w = self.m.S.wmark[self.gz]
        return {"min": int(w[WMARK_MIN]), "low": int(w[WMARK_LOW]),
                "high": int(w[WMARK_HIGH]), "promo": int(w[WMARK_PROMO])}

    @property
    def lowmem_reserve(self) -> list[int]:
        return self.m.S.lowmem_reserve[self.gz].tolist()

    def pcp(self, cpu: int) -> dict[str, int]:
        """The CPU's per_cpu_pages: count, high, batch, high_min, high_max
        (counts in pages); AllocArgError for a cpu outside [0, nr_cpu_ids)."""
        S = self.m.S
        cpu = check_int("cpu", cpu, 0, self.m.nr_cpus, AllocArgError, " (nr_cpu_ids)")
        return {"count": int(S.pcp_count[cpu, self.gz]), "high": int(S.pcp_high[cpu, self.gz]),
                "batch": int(S.pcp_batch[self.gz]), "high_min": int(S.pcp_high_min[self.gz]),
                "high_max": int(S.pcp_high_max[self.gz])}

    def numa_events(self) -> dict[str, int]:
        v = self.m.S.numa_stat[self.gz]
        return {NUMASTAT_NAMES[i]: int(v[i]) for i in range(NR_VM_NUMA_EVENT_ITEMS)}

    def __repr__(self) -> str:
        return (f"<Zone node {self.nid} {self.name}: present {self.present_pages}, "
                f"managed {self.managed_pages}, free {self.nr_free_pages}>")


@dataclass(frozen=True)
class PgData:
    """A view of one node: ``NODE_DATA(nid)``."""

    m: Machine
    node_id: int

    def __post_init__(self) -> None:
        check_int("nid", self.node_id, 0, self.m.config.max_numnodes, AllocArgError,
                  " (this machine's MAX_NUMNODES)")

    @property
    def node_zones(self) -> list[Zone]:
        return [Zone(self.m, self.node_id, z) for z in range(MAX_NR_ZONES)]

    def _gzs(self) -> slice:
        return slice(self.node_id * MAX_NR_ZONES, (self.node_id + 1) * MAX_NR_ZONES)

    @property
    def node_present_pages(self) -> int:
        return int(self.m.S.zone_present[self._gzs()].sum())

    @property
    def node_managed_pages(self) -> int:
        return int(self.m.S.zone_managed[self._gzs()].sum())

    @property
    def nr_free_pages(self) -> int:
        return int(self.m.S.zone_free[self._gzs()].sum())

    @property
    def node_start_pfn(self) -> int:
        return self._span()[0]

    @property
    def node_spanned_pages(self) -> int:
        return self._span()[1]

    def _span(self) -> tuple[int, int]:
        spans = [zone_span(self.m, z.gz) for z in self.node_zones if z.populated()]
        if not spans:
            return 0, 0
        lo = min(s for s, _ in spans)
        hi = max(s + n for s, n in spans)
        return lo, hi - lo

    def numastat(self) -> dict[str, int]:
        """/sys/devices/system/node/nodeN/numastat: the sums over the node's zones."""
        v = self.m.S.numa_stat[self._gzs()].sum(axis=0)
        return {NUMASTAT_NAMES[i]: int(v[i]) for i in range(NR_VM_NUMA_EVENT_ITEMS)}

    def __repr__(self) -> str:
        return (f"<PgData node {self.node_id}: present {self.node_present_pages}, "
                f"managed {self.node_managed_pages}, free {self.nr_free_pages}>")
