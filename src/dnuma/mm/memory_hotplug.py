"""Memory hotplug (mm/memory_hotplug.c, with drivers/base/memory.c's block
side): add_memory, online_pages, offline_pages, remove_memory,
try_offline_node, the zone choice of zone_for_pfn_range and the block state
changes behind ``memoryB/state``.

The model's view of a block's sections: a *present* block is in
``Machine.ram_ranges()`` (System RAM, memblock); it is *online* when its
pfns are present pages of a zone, *offline* when it is listed in
``Machine.offline_blocks`` (block id -> ``mem->nid``), its pfns then holes
(PG_hole: pfn_to_online_page() is NULL).  Every call checks its input first
and raises :class:`~dnuma.mm.errors.HotplugError` carrying the errno the
kernel returns (nothing changed), or ArgError for a value of the wrong type.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import numpy as np

from .._kernels import boot as _kb
from .._kernels import buddy as _kbd
from .._kernels import hotplug as _khp
from .._kernels.state import ZONE_SPAN_DIRTY
from .constants import (
    __GFP_HIGHMEM,
    __GFP_MOVABLE,
    GFP_USER,
    MAX_NR_ZONES,
    MIGRATE_ISOLATE,
    MIGRATE_MOVABLE,
    N_MEMORY,
    N_NORMAL_MEMORY,
    N_ONLINE,
    N_POSSIBLE,
    ZONE_DMA,
    ZONE_MOVABLE,
    ZONE_NAMES,
    ZONE_NORMAL,
    PG_buddy,
    PG_head,
    PG_hole,
    PG_lru,
    PG_reserved,
)
from .dnuma import effective_layout
from .errors import ArgError, HotplugError, check_int, is_int, show
from .memlayout import MemLayout
from .memory_block import memory_block_size_bytes
from .mmzone import zone_span
from .notifier import (
    MEM_CANCEL_OFFLINE,
    MEM_CANCEL_ONLINE,
    MEM_GOING_OFFLINE,
    MEM_GOING_ONLINE,
    MEM_OFFLINE,
    MEM_ONLINE,
    NODE_ADDED_FIRST_MEMORY,
    NODE_ADDING_FIRST_MEMORY,
    NODE_CANCEL_ADDING_FIRST_MEMORY,
    NODE_CANCEL_REMOVING_LAST_MEMORY,
    NODE_REMOVED_LAST_MEMORY,
    NODE_REMOVING_LAST_MEMORY,
    NUMA_NO_NODE,
    MemoryNotify,
    NodeNotify,
)
from .page_alloc import (
    build_all_zonelists,
    init_per_zone_wmark_min,
    min_free_kbytes_after_online,
    zone_pcp_reset,
)

if TYPE_CHECKING:
    from .machine import Machine

#: enum mmop (include/linux/memory_hotplug.h) by the names state_store takes
MMOP_OFFLINE = "offline"
MMOP_ONLINE = "online"
MMOP_ONLINE_KERNEL = "online_kernel"
MMOP_ONLINE_MOVABLE = "online_movable"
ONLINE_TYPES = (MMOP_OFFLINE, MMOP_ONLINE, MMOP_ONLINE_KERNEL, MMOP_ONLINE_MOVABLE)
#: memory_hotplug.online_policy (mm/memory_hotplug.c online_policy_to_str)
ONLINE_POLICY_CONTIG_ZONES = "contig-zones"
ONLINE_POLICY_AUTO_MOVABLE = "auto-movable"
#: SUBSECTION_SHIFT: 2 MiB sub-sections (find_smallest_section_pfn's step)
SUBSECTION_BYTES = 2 << 20


@dataclass
class HotplugTunables:
    """The memory hotplug knobs: ``auto_online_blocks``
    (mhp_default_online_type; Debian 6.12 builds
    MHP_DEFAULT_ONLINE_TYPE_ONLINE_AUTO, i.e. "online"),
    ``memory_hotplug.online_policy`` and its ``auto_movable_ratio`` /
    ``auto_movable_numa_aware``, and ``movable_node``."""

    auto_online_blocks: str = MMOP_ONLINE
    online_policy: str = ONLINE_POLICY_CONTIG_ZONES
    auto_movable_ratio: int = 301
    auto_movable_numa_aware: bool = True
    movable_node: bool = False

    def as_dict(self) -> dict[str, object]:
        return dict(self.__dict__)


# ---------------------------------------------------------------- blocks
def pages_per_block(m: Machine) -> int:
    """memory_block_size_bytes() in pages."""
    return memory_block_size_bytes(m) >> m.profile.page_shift


def block_range(m: Machine, block_id: int) -> tuple[int, int]:
    """(start_pfn, nr_pages) of memory block ``block_id``."""
    n = pages_per_block(m)
    return block_id * n, n


def block_exists(m: Machine, block_id: int) -> bool:
    """A ``memoryB`` device exists: offline, or holding present pages."""
    if block_id in m.offline_blocks:
        return True
    s, n = block_range(m, block_id)
    shift = m.profile.section_size_bits - m.profile.page_shift
    return bool(m.S.sec_present[s >> shift:(s + n) >> shift].any())


def block_zone_pages(m: Machine, block_id: int) -> np.ndarray:
    """Present pages of the block per global zone (int64 [gz])."""
    s, n = block_range(m, block_id)
    shift = m.profile.section_size_bits - m.profile.page_shift
    return m.S.sec_present[s >> shift:(s + n) >> shift].sum(axis=0).astype(np.int64)


def block_zone(m: Machine, block_id: int) -> int:
    """``mem->zone`` of an online block as a global zone index: its single
    (node, zone) with present pages; -1 (NULL) when it holds several."""
    gzs = np.flatnonzero(block_zone_pages(m, block_id))
    return int(gzs[0]) if gzs.size == 1 else -1


def check_block_id(m: Machine, block_id: int) -> int:
    """``block_id`` as an int naming an existing memory block, else ArgError
    (not an integer) or HotplugError ENOENT (no ``memoryB`` directory)."""
    if not is_int(block_id):
        raise ArgError(f"block_id: expected an integer, got {show(block_id)}")
    b = int(block_id)
    if b < 0 or b * pages_per_block(m) >= m.max_pfn or not block_exists(m, b):
        raise HotplugError("ENOENT", f"memory block {b} does not exist (no memory{b} in "
                                     f"/sys/devices/system/memory)")
    return b


def block_is_online(m: Machine, block_id: int) -> bool:
    return block_id not in m.offline_blocks


def memory_block_state(m: Machine, block_id: int) -> str:
    """state_show(): "online" or "offline"."""
    return "online" if block_is_online(m, check_block_id(m, block_id)) else "offline"


# ---------------------------------------------------------------- zone choice
def zone_intersects(m: Machine, gz: int, start_pfn: int, nr_pages: int) -> bool:
    """zone_intersects(): the zone is not empty and its span meets the range
    (a zone never populated spans nothing: its span is not computed)."""
    if not m.S.zone_present[gz] and m.S.zone_flags[gz] & ZONE_SPAN_DIRTY:
        return False
    zs, spanned = zone_span(m, gz)
    if not spanned:
        return False
    return start_pfn < zs + spanned and start_pfn + nr_pages > zs


def default_kernel_zone_for_pfn(m: Machine, nid: int, start_pfn: int, nr_pages: int) -> int:
    """default_kernel_zone_for_pfn(): the first zone below ZONE_NORMAL whose
    span meets the range, else ZONE_NORMAL (a zone index)."""
    for zid in range(ZONE_DMA, ZONE_NORMAL):
        if zone_intersects(m, nid * MAX_NR_ZONES + zid, start_pfn, nr_pages):
            return zid
    return ZONE_NORMAL


def default_zone_for_pfn(m: Machine, nid: int, start_pfn: int, nr_pages: int) -> int:
    """default_zone_for_pfn(): the zone whose span already holds the range
    when only one of the kernel zone and ZONE_MOVABLE does; otherwise
    ZONE_MOVABLE with movable_node, else the kernel zone."""
    kernel = default_kernel_zone_for_pfn(m, nid, start_pfn, nr_pages)
    in_kernel = zone_intersects(m, nid * MAX_NR_ZONES + kernel, start_pfn, nr_pages)
    in_movable = zone_intersects(m, nid * MAX_NR_ZONES + ZONE_MOVABLE, start_pfn, nr_pages)
    if in_kernel != in_movable:
        return kernel if in_kernel else ZONE_MOVABLE
    return ZONE_MOVABLE if m.hotplug.movable_node else kernel


def early_sections(m: Machine) -> np.ndarray:
    """bool per section: early_section() (memory present at boot)."""
    shift = m.profile.section_size_bits - m.profile.page_shift
    early = np.zeros(m.S.sec_present.shape[0], dtype=bool)
    for s, e, _n in m.config.ram:
        early[s >> shift:((e - 1) >> shift) + 1] = True
    return early


def auto_movable_can_online_movable(m: Machine, nid: int, nr_pages: int) -> bool:
    """auto_movable_can_online_movable() without memory groups: MOVABLE
    present pages plus ``nr_pages`` within auto_movable_ratio percent of the
    kernel zones' present_early_pages (of every populated zone, or of node
    ``nid``'s)."""
    S = m.S
    zidx = np.arange(S.zone_present.size) % MAX_NR_ZONES
    sel = S.zone_present > 0
    if nid != NUMA_NO_NODE:
        sel &= (np.arange(S.zone_present.size) // MAX_NR_ZONES) == nid
    movable = int(S.zone_present[sel & (zidx == ZONE_MOVABLE)].sum())
    kernel_early = int(m.present_early[sel & (zidx != ZONE_MOVABLE)].sum())
    return movable + nr_pages <= m.hotplug.auto_movable_ratio * kernel_early // 100


def auto_movable_zone_for_pfn(m: Machine, nid: int, start_pfn: int, nr_pages: int) -> int:
    """auto_movable_zone_for_pfn() for memory without a memory group
    (max_pages = nr_pages): ZONE_MOVABLE if the ratio allows it machine-wide
    and (auto_movable_numa_aware) on the node, else the default kernel zone."""
    t = m.hotplug
    if t.auto_movable_ratio and auto_movable_can_online_movable(m, NUMA_NO_NODE, nr_pages) \
            and (not t.auto_movable_numa_aware
                 or auto_movable_can_online_movable(m, nid, nr_pages)):
        return ZONE_MOVABLE
    return default_kernel_zone_for_pfn(m, nid, start_pfn, nr_pages)


def zone_for_pfn_range(m: Machine, online_type: str, nid: int, start_pfn: int,
                       nr_pages: int) -> int:
    """zone_for_pfn_range(): the zone index memory of ``online_type`` goes to."""
    if online_type == MMOP_ONLINE_KERNEL:
        return default_kernel_zone_for_pfn(m, nid, start_pfn, nr_pages)
    if online_type == MMOP_ONLINE_MOVABLE:
        return ZONE_MOVABLE
    if m.hotplug.online_policy == ONLINE_POLICY_AUTO_MOVABLE:
        return auto_movable_zone_for_pfn(m, nid, start_pfn, nr_pages)
    return default_zone_for_pfn(m, nid, start_pfn, nr_pages)


def valid_zones(m: Machine, block_id: int) -> str:
    """valid_zones_show(): an online block's zone ("none" when it spans
    several); an offline one's default zone (MMOP_ONLINE) followed by the
    kernel and movable choices that differ from it (print_allowed_zone)."""
    b = check_block_id(m, block_id)
    if block_is_online(m, b):
        gz = block_zone(m, b)
        return ZONE_NAMES[gz % MAX_NR_ZONES] if gz >= 0 else "none"
    nid = m.offline_blocks[b]
    s, n = block_range(m, b)
    default = zone_for_pfn_range(m, MMOP_ONLINE, nid, s, n)
    out = [ZONE_NAMES[default]]
    for t in (MMOP_ONLINE_KERNEL, MMOP_ONLINE_MOVABLE):
        z = zone_for_pfn_range(m, t, nid, s, n)
        if z != default:
            out.append(ZONE_NAMES[z])
    return " ".join(out)


# ---------------------------------------------------------------- spans
def resize_zone_range(m: Machine, gz: int, start_pfn: int, nr_pages: int) -> None:
    """resize_zone_range() (move_pfn_range_to_zone): the span grows to hold the range."""
    S = m.S
    zs, spanned = zone_span(m, gz)
    end = zs + spanned
    if not spanned or start_pfn < zs:
        zs = start_pfn
    S.zone_start[gz] = zs
    S.zone_end[gz] = max(start_pfn + nr_pages, end)
    S.zone_flags[gz] &= ~ZONE_SPAN_DIRTY


def _online_subsections(m: Machine, gz: int, lo: int, hi: int) -> np.ndarray:
    """Start pfns of the sub-sections of [lo, hi) holding an online pfn of zone
    ``gz`` (pfn_to_online_page, pfn_to_nid and page_zone checked; the model
    looks at every pfn of a sub-section, not the one the kernel probes)."""
    S = m.S
    sub = SUBSECTION_BYTES >> m.profile.page_shift
    if hi <= lo:
        return np.zeros(0, dtype=np.int64)
    sl = slice(lo, hi)
    ok = (S.page_flags[sl] & PG_hole) == 0
    ok &= S.page_nid[sl] == gz // MAX_NR_ZONES
    ok &= S.page_zone[sl] == gz % MAX_NR_ZONES
    pad = (-ok.size) % sub
    ok = np.concatenate((ok, np.zeros(pad, dtype=bool))).reshape(-1, sub).any(axis=1)
    return lo + np.flatnonzero(ok).astype(np.int64) * sub


def shrink_zone_span(m: Machine, gz: int, start_pfn: int, end_pfn: int) -> None:
    """shrink_zone_span(): only a range at an edge of the zone's span moves
    it, to the nearest online sub-section of the zone
    (find_smallest_section_pfn / find_biggest_section_pfn); none left: 0, 0."""
    S = m.S
    zs, spanned = zone_span(m, gz)
    zend = zs + spanned
    sub = SUBSECTION_BYTES >> m.profile.page_shift
    if zs == start_pfn:
        found = _online_subsections(m, gz, end_pfn, zend)
        if found.size:
            S.zone_start[gz] = int(found[0])
            S.zone_end[gz] = zend
        else:
            S.zone_start[gz] = S.zone_end[gz] = 0
    elif zend == end_pfn:
        found = _online_subsections(m, gz, zs, start_pfn)
        if found.size:
            S.zone_end[gz] = min(int(found[-1]) + sub, start_pfn)
        else:
            S.zone_start[gz] = S.zone_end[gz] = 0


# ---------------------------------------------------------------- accounting
def adjust_present_page_count(m: Machine, gz: int, start_pfn: int, nr_pages: int) -> None:
    """adjust_present_page_count(): present pages of the zone and per
    section (``nr_pages`` < 0 removes them), present_early_pages for early
    sections."""
    S = m.S
    shift = m.profile.section_size_bits - m.profile.page_shift
    n = abs(nr_pages)
    sign = 1 if nr_pages > 0 else -1
    secs = np.arange(start_pfn >> shift, (start_pfn + n) >> shift)
    S.zone_present[gz] += nr_pages
    S.sec_present[secs, gz] += sign * (1 << shift)
    early = early_sections(m)[secs]
    m.present_early[gz] += sign * (int(np.count_nonzero(early)) << shift)


def node_states_check_changes(m: Machine, gz: int, nr_pages: int, online: bool,
                              action: str, start_pfn: int) -> MemoryNotify:
    """node_states_check_changes_online / _offline: the node whose N_MEMORY
    or N_NORMAL_MEMORY the change sets or clears."""
    S = m.S
    nid, zidx = divmod(gz, MAX_NR_ZONES)
    st = m.topo.node_states
    arg = MemoryNotify(action, start_pfn, nr_pages)
    if online:
        if not st[N_MEMORY, nid]:
            arg.status_change_nid = nid
        if zidx <= ZONE_NORMAL and not st[N_NORMAL_MEMORY, nid]:
            arg.status_change_nid_normal = nid
        return arg
    present = S.zone_present[nid * MAX_NR_ZONES:(nid + 1) * MAX_NR_ZONES]
    kernel = int(present[:ZONE_NORMAL + 1].sum())
    if zidx <= ZONE_NORMAL and nr_pages >= kernel:
        arg.status_change_nid_normal = nid
    if nr_pages >= kernel + int(present[ZONE_MOVABLE]):
        arg.status_change_nid = nid
    return arg


def _notify(m: Machine, arg: MemoryNotify, action: str) -> str | None:
    """memory_notify(action, arg): each listener gets its own event."""
    return m.memory_notifier.memory_notify(replace(arg, action=action))


def _node_notify(m: Machine, action: str, nid: int) -> str | None:
    """node_notify(action, nid) when ``nid`` gains its first or loses its
    last memory (``nid`` >= 0); the name of a listener that said NOTIFY_BAD."""
    if nid < 0:
        return None
    return m.node_notifier.memory_notify(NodeNotify(action, nid))


def _cancel(m: Machine, arg: MemoryNotify, node_cancel: str, cancel: str) -> None:
    """MEM_CANCEL_* to the memory notifier, NODE_CANCEL_* to the node notifier."""
    _notify(m, arg, cancel)
    _node_notify(m, node_cancel, arg.status_change_nid)


def _going(m: Machine, arg: MemoryNotify, node_going: str, node_cancel: str, going: str,
           cancel: str) -> str | None:
    """The going phase of an online or offline: the node notifier first (a
    node's first or last memory), then the memory notifier; on a veto the
    cancels go out and the listener's name (with its chain) is returned."""
    who = _node_notify(m, node_going, arg.status_change_nid)
    if who is not None:  # the memory notifier was not asked: the node's cancel only
        _node_notify(m, node_cancel, arg.status_change_nid)
        return f"node notifier {who} ({node_going})"
    who = _notify(m, arg, going)
    if who is not None:
        _cancel(m, arg, node_cancel, cancel)
        return f"memory notifier {who} ({going})"
    return None


# ---------------------------------------------------------------- online
def online_pages(m: Machine, start_pfn: int, nr_pages: int, nid: int, zidx: int) -> None:
    """online_pages(): the range joins zone ``zidx`` of node ``nid``.

    move_pfn_range_to_zone (span grown, memmap's node and zone set) ->
    MEM_GOING_ONLINE (a veto: MEM_CANCEL_ONLINE, the span shrunk back,
    HotplugError EPERM, as notifier_to_errno(NOTIFY_BAD)) -> a fresh pageset
    for an unpopulated zone (setup_zone_pageset) -> online_pages_range:
    MAX_PAGE_ORDER chunks freed to the tail of the buddy lists, managed
    pages counted (generic_online_page -> __free_pages_core) ->
    adjust_present_page_count -> node states -> zonelists rebuilt if the
    zone was unpopulated -> init_per_zone_wmark_min -> MEM_ONLINE.  The
    pageblocks are isolated while the pages are freed and then
    undo_isolate_page_range'd to MIGRATE_MOVABLE: the model tags them
    MIGRATE_MOVABLE before the free, which leaves the same lists; the zone
    is not shuffled (page_alloc.shuffle is off by default).
    """
    S = m.S
    gz = nid * MAX_NR_ZONES + zidx
    end = start_pfn + nr_pages
    span_flags = int(S.zone_flags[gz])
    memmap = S.page_nid[start_pfn:end].copy(), S.page_zone[start_pfn:end].copy()
    move_pfn_range_to_zone(m, start_pfn, end, nid, zidx)
    arg = node_states_check_changes(m, gz, nr_pages, True, MEM_GOING_ONLINE, start_pfn)
    who = _going(m, arg, NODE_ADDING_FIRST_MEMORY, NODE_CANCEL_ADDING_FIRST_MEMORY,
                 MEM_GOING_ONLINE, MEM_CANCEL_ONLINE)
    if who is not None:
        shrink_zone_span(m, gz, start_pfn, end)  # remove_pfn_range_from_zone
        # the memmap of an offline range is unused: the model keeps it as it was
        S.page_nid[start_pfn:end], S.page_zone[start_pfn:end] = memmap
        if span_flags & ZONE_SPAN_DIRTY:  # an empty zone's span was never computed
            S.zone_flags[gz] = span_flags
        raise HotplugError("EPERM", f"online of pfns [{start_pfn:#x}, {end:#x}) vetoed by "
                                    f"{who}")
    populated = bool(S.zone_present[gz])
    if not populated:
        zone_pcp_reset(m)  # setup_zone_pageset: the zone starts from a fresh pageset
    S.zone_managed[gz] += nr_pages
    online_pages_range(m, start_pfn, end)
    adjust_present_page_count(m, gz, start_pfn, nr_pages)
    st = m.topo.node_states
    if arg.status_change_nid_normal >= 0:  # node_states_set_node
        st[N_NORMAL_MEMORY, nid] = True
    if arg.status_change_nid >= 0:
        st[N_MEMORY, nid] = True
    if not populated:
        build_all_zonelists(m)
    init_per_zone_wmark_min(m)
    m.note_zone_setup()
    _node_notify(m, NODE_ADDED_FIRST_MEMORY, arg.status_change_nid)
    _notify(m, arg, MEM_ONLINE)


def move_pfn_range_to_zone(m: Machine, start_pfn: int, end_pfn: int, nid: int,
                           zidx: int) -> None:
    """move_pfn_range_to_zone(): the zone's span grows to hold the range
    (resize_zone_range) and the memmap gets its node and zone
    (memmap_init_range)."""
    resize_zone_range(m, nid * MAX_NR_ZONES + zidx, start_pfn, end_pfn - start_pfn)
    m.S.page_nid[start_pfn:end_pfn] = nid
    m.S.page_zone[start_pfn:end_pfn] = zidx


def online_pages_range(m: Machine, start_pfn: int, end_pfn: int) -> None:
    """online_pages_range() -> generic_online_page -> __free_pages_core: the
    pages become free pages (no flags, order, owner or mark) of movable
    pageblocks (undo_isolate_page_range) and are freed to the tail of the
    buddy lists in MAX_PAGE_ORDER chunks (the caller counts them managed)."""
    S = m.S
    S.page_flags[start_pfn:end_pfn] = 0
    S.page_order[start_pfn:end_pfn] = 0
    S.page_owner[start_pfn:end_pfn] = -1
    S.page_mark[start_pfn >> 3:(end_pfn + 7) >> 3] = 0  # block aligned: whole bytes
    pbo = m.profile.pageblock_order
    S.pb_mt[start_pfn >> pbo:end_pfn >> pbo] = MIGRATE_MOVABLE
    _kb.free_pages_memory(S, np.array([start_pfn], dtype=np.int64),
                          np.array([end_pfn], dtype=np.int64))


def online_memory_blocks(m: Machine, blocks: list[int], online_type: str) -> None:
    """walk_memory_blocks(online_memory_block) over the consecutive offline
    blocks one add_memory registered: each onlined as
    :func:`memory_block_online` onlines it, in order; one a notifier refuses
    stays offline (online_memory_block's result is ignored).

    After each block the ones left may be onlined as one run
    (:func:`online_pages_run`) when the model can tell that doing them one
    by one would leave the same state: no memory notifier is registered
    (nothing can veto or watch a block's MEM_GOING_ONLINE / MEM_ONLINE), the
    zone choice cannot change within the run (an explicit online_kernel /
    online_movable, or the contig-zones policy, while no zone of the node
    spans the rest of the range) and the zone is already populated.
    """
    i = 0
    while i < len(blocks):
        with contextlib.suppress(HotplugError):
            memory_block_online(m, blocks[i], online_type)
        i += 1
        if i < len(blocks) and block_is_online(m, blocks[i - 1]):
            i += online_pages_run(m, blocks[i - 1], blocks[i:], online_type)


def online_pages_run(m: Machine, prev: int, run: list[int], online_type: str) -> int:
    """Online the offline blocks ``run`` (consecutive, of the node of the
    online block ``prev`` just before them) into ``prev``'s zone in one
    pass, leaving the state that onlining them one by one
    (:func:`memory_block_online`) leaves; return how many were onlined, 0
    when that cannot be told in advance (see :func:`online_memory_blocks`).

    Per block, online_pages would grow the span, set the memmap, free the
    pages, count present and managed pages and rerun
    init_per_zone_wmark_min; the zone is populated, so no pageset reset, node
    state change or zonelist rebuild.  Spans, memmap, free lists (every
    block frees MAX_PAGE_ORDER chunks to the tail, in pfn order) and page
    counts come out the same done once for the run.  init_per_zone_wmark_min
    is not history-free: calculate_min_free_kbytes reads the high watermarks
    the previous run left (nr_free_buffer_pages), so min_free_kbytes is
    replayed block by block (page_alloc.min_free_kbytes_after_online) and
    the last block's init_per_zone_wmark_min run for real (what else it sets
    depends on the final state alone).
    """
    m.sync_zones()
    S = m.S
    gz = block_zone(m, prev)
    n = pages_per_block(m)
    if len(m.memory_notifier) or gz < 0 or not run:
        return 0
    if online_type == MMOP_ONLINE and m.hotplug.online_policy != ONLINE_POLICY_CONTIG_ZONES:
        return 0  # auto-movable: the ratio may send a later block elsewhere
    nid, zidx = divmod(gz, MAX_NR_ZONES)
    start, end = run[0] * n, (run[-1] + 1) * n
    if run != list(range(prev + 1, prev + 1 + len(run))) or start != (prev + 1) * n \
            or any(m.offline_blocks.get(b) != nid for b in run):
        return 0
    # zone_for_pfn_range of each block sees every zone of the node miss it
    # (the zone's own span grows up to the block and not into it)
    if any(zone_intersects(m, nid * MAX_NR_ZONES + z, start, end - start)
           for z in range(MAX_NR_ZONES)):
        return 0
    if zone_for_pfn_range(m, online_type, nid, start, n) != zidx:
        return 0
    k = len(run)
    move_pfn_range_to_zone(m, start, end, nid, zidx)
    for _ in range(k - 1):  # the blocks before the last: min_free_kbytes and watermarks
        S.zone_managed[gz] += n
        min_free_kbytes_after_online(m)
    S.zone_managed[gz] += n
    online_pages_range(m, start, end)
    adjust_present_page_count(m, gz, start, end - start)
    init_per_zone_wmark_min(m)  # the last block's
    m.note_zone_setup()
    for b in run:
        del m.offline_blocks[b]
        m.uevents.append(("online", f"/devices/system/memory/memory{b}", "memory"))
    return k


def memory_block_online(m: Machine, block_id: int, online_type: str = MMOP_ONLINE) -> None:
    """memory_subsys_online -> memory_block_change_state -> memory_block_online
    (drivers/base/memory.c): the zone of zone_for_pfn_range, then
    online_pages.  HotplugError EINVAL for an online block, ENOENT for none."""
    b = check_block_id(m, block_id)
    online_type = check_online_type(online_type)
    if online_type == MMOP_OFFLINE:
        raise HotplugError("EINVAL", "online_type: 'offline' does not online a block")
    if block_is_online(m, b):
        raise HotplugError("EINVAL", f"memory block {b} is already online")
    m.sync_zones()
    nid = m.offline_blocks[b]
    s, n = block_range(m, b)
    zidx = zone_for_pfn_range(m, online_type, nid, s, n)
    online_pages(m, s, n, nid, zidx)
    del m.offline_blocks[b]
    m.uevents.append(("online", f"/devices/system/memory/memory{b}", "memory"))


def check_online_type(online_type: str) -> str:
    """mhp_online_type_from_str(): one of ONLINE_TYPES, else HotplugError EINVAL."""
    if not isinstance(online_type, str) or online_type not in ONLINE_TYPES:
        raise HotplugError("EINVAL", f"online_type: {show(online_type)} is not one of "
                                     f"{', '.join(ONLINE_TYPES)}")
    return online_type


# ---------------------------------------------------------------- offline
def _has_unmovable_pages(m: Machine, start_pfn: int, end_pfn: int, zidx: int) -> np.ndarray:
    """has_unmovable_pages() per pageblock of the range: the first
    unmovable pfn of each (a reserved page; outside ZONE_MOVABLE also the
    head of an allocated block that is neither LRU nor __PageMovable: the
    model's PG_lru), -1 where none."""
    S = m.S
    pbo = m.profile.pageblock_order
    f = S.page_flags[start_pfn:end_pfn]
    bad = (f & PG_reserved) != 0
    if zidx != ZONE_MOVABLE:
        bad |= ((f & PG_head) != 0) & ((f & PG_lru) == 0)
    per = bad.reshape(-1, 1 << pbo)
    first = np.where(per.any(axis=1), per.argmax(axis=1), -1)
    base = start_pfn + (np.arange(per.shape[0], dtype=np.int64) << pbo)
    return np.where(first >= 0, base + first, -1)


def _isolation_order(nblocks: int) -> list[int]:
    """start_isolate_page_range's order: the first pageblock, the last, then
    the ones between, ascending."""
    if nblocks == 1:
        return [0]
    return [0, nblocks - 1, *range(1, nblocks - 1)]


def _move_pageblocks(m: Machine, start_pfn: int, blocks: list[int], mt: int) -> int:
    """set_migratetype_isolate / unset_migratetype_isolate on each listed
    pageblock: its free blocks moved to the ``mt`` lists (whole: the
    kernel's move_freepages_block_isolate splits a larger buddy at the
    pageblock boundary and merges it back, which moves only its place on
    the lists).  Returns the free buddy pages moved."""
    S = m.S
    pbo = m.profile.pageblock_order
    moved = 0
    for k in blocks:
        p = start_pfn + (k << pbo)
        heads = p + np.flatnonzero(S.page_flags[p:p + (1 << pbo)] & PG_buddy)
        moved += int((1 << S.page_order[heads].astype(np.int64)).sum())
        _kbd.move_freepages_block(S, p, mt)
    return moved


def _undo_isolation(m: Machine, start_pfn: int, nblocks: int, gz: int) -> None:
    """undo_isolate_page_range(MIGRATE_MOVABLE) of the whole isolated range;
    the isolated free pages count in NR_FREE_PAGES again."""
    moved = _move_pageblocks(m, start_pfn, list(range(nblocks)), MIGRATE_MOVABLE)
    m.S.zone_free[gz] += moved


@dataclass
class OfflineReport:
    """What an offline did: pages migrated (and the blocks), per-cpu pages
    drained by zone_pcp_disable, free pages taken off the buddy lists."""

    start_pfn: int
    nr_pages: int
    pages_migrated: int = 0
    blocks_migrated: int = 0
    pcp_pages_drained: int = 0
    free_pages_removed: int = 0


def offline_pages(m: Machine, start_pfn: int, nr_pages: int, gz: int,
                  cpu: int = 0) -> OfflineReport:
    """offline_pages(): take the range (one zone ``gz``, no holes) out.

    zone_pcp_disable (every CPU's pcp lists of the zone drained; pcp high 0,
    batch 1 until zone_pcp_enable) -> start_isolate_page_range (first,
    last, then the middle pageblocks: an unmovable page in one gives
    HotplugError EBUSY, the pageblocks isolated before it come back as
    MIGRATE_MOVABLE, as the kernel undoes them) -> MEM_GOING_OFFLINE (veto:
    isolation undone, MEM_CANCEL_OFFLINE, EPERM) -> movable blocks
    migrated (``cpu`` runs the migration: its pcp lists serve the target
    allocations; when no target can be had the kernel retries until a
    signal: HotplugError EINTR, isolation undone, pages migrated so far
    stay migrated) -> __offline_isolated_pages (free pages off the lists,
    pfns become holes) -> managed and present pages -> init_per_zone_wmark_min
    -> node states (a node left without memory keeps N_ONLINE) ->
    zone_pcp_reset and build_all_zonelists if the zone is left empty ->
    MEM_OFFLINE -> shrink_zone_span.
    """
    S = m.S
    end = start_pfn + nr_pages
    nid, zidx = divmod(gz, MAX_NR_ZONES)
    rep = OfflineReport(start_pfn, nr_pages)
    pbo = m.profile.pageblock_order
    nblocks = nr_pages >> pbo
    # zone_pcp_disable
    saved_pcp = (int(S.pcp_batch[gz]), int(S.pcp_high_min[gz]), int(S.pcp_high_max[gz]))
    before = int(S.pcp_count[:, gz].sum())
    _kbd.drain_all_pages(S, gz)
    rep.pcp_pages_drained = before
    S.pcp_batch[gz], S.pcp_high_min[gz], S.pcp_high_max[gz] = 1, 0, 0

    def zone_pcp_enable() -> None:
        S.pcp_batch[gz], S.pcp_high_min[gz], S.pcp_high_max[gz] = saved_pcp

    busy = _has_unmovable_pages(m, start_pfn, end, zidx)
    order = _isolation_order(nblocks)
    fail = next((i for i, k in enumerate(order) if busy[k] >= 0), -1)
    if fail >= 0:
        done = order[:fail]
        undo = sorted(k for k in done if k != nblocks - 1) + \
            [k for k in done if k == nblocks - 1]
        _move_pageblocks(m, start_pfn, undo, MIGRATE_MOVABLE)
        zone_pcp_enable()
        pfn = int(busy[order[fail]])
        raise HotplugError("EBUSY", f"offline of pfns [{start_pfn:#x}, {end:#x}): pfn "
                                    f"{pfn:#x} is unmovable (failure to isolate range: "
                                    f"{_unmovable_reason(m, pfn)})")
    isolated = _move_pageblocks(m, start_pfn, order, MIGRATE_ISOLATE)
    S.zone_free[gz] -= isolated  # account_freepages: isolated pages are not free
    arg = node_states_check_changes(m, gz, nr_pages, False, MEM_GOING_OFFLINE, start_pfn)
    who = _going(m, arg, NODE_REMOVING_LAST_MEMORY, NODE_CANCEL_REMOVING_LAST_MEMORY,
                 MEM_GOING_OFFLINE, MEM_CANCEL_OFFLINE)
    if who is not None:
        _undo_isolation(m, start_pfn, nblocks, gz)
        zone_pcp_enable()
        raise HotplugError("EPERM", f"offline of pfns [{start_pfn:#x}, {end:#x}) vetoed by "
                                    f"{who}")
    # do_migrate_range over scan_movable_pages' finds, each block by
    # migrate_pages with alloc_migration_target: the source's node preferred,
    # the nodemask N_MEMORY without it unless that is empty
    mask = m.topo.node_states[N_MEMORY].copy()
    mask[nid] = False
    if not mask.any():
        mask[nid] = True
    # alloc_migration_target: GFP_USER | __GFP_MOVABLE, __GFP_HIGHMEM for a
    # ZONE_MOVABLE source (the target's zone may then be ZONE_MOVABLE too)
    gfp = GFP_USER | __GFP_MOVABLE | (__GFP_HIGHMEM if zidx == ZONE_MOVABLE else 0)
    il = np.full(1, -1, dtype=np.int64)
    moved = np.zeros(2, dtype=np.int64)
    moved_to = np.full(nr_pages, -1, dtype=np.int64)
    h = int(_khp.migrate_range(S, start_pfn, end, gz, cpu, gfp, mask, il, moved, moved_to))
    rep.pages_migrated, rep.blocks_migrated = int(moved[0]), int(moved[1])
    if rep.blocks_migrated:  # whoever holds the old heads hears where they went
        idx = np.flatnonzero(moved_to >= 0)
        for fn in list(m.migration_listeners):
            fn(start_pfn + idx, moved_to[idx])
    if h >= 0:
        _undo_isolation(m, start_pfn, nblocks, gz)
        _cancel(m, arg, NODE_CANCEL_REMOVING_LAST_MEMORY, MEM_CANCEL_OFFLINE)
        zone_pcp_enable()
        raise HotplugError("EINTR", f"offline of pfns [{start_pfn:#x}, {end:#x}): no "
                                    f"migration target for the order-{int(S.page_order[h])} "
                                    f"block at {h:#x} (the kernel retries until a signal)")
    # __offline_isolated_pages: the free pages leave the buddy lists
    rep.free_pages_removed = int(_khp.take_off_free_lists(S, start_pfn, end, gz,
                                                          MIGRATE_ISOLATE))
    S.page_flags[start_pfn:end] = PG_hole
    S.page_order[start_pfn:end] = 0
    S.lru_next[start_pfn:end] = -1
    S.lru_prev[start_pfn:end] = -1
    zone_pcp_enable()
    S.zone_managed[gz] -= nr_pages  # adjust_managed_page_count
    adjust_present_page_count(m, gz, start_pfn, -nr_pages)
    init_per_zone_wmark_min(m)
    st = m.topo.node_states
    if arg.status_change_nid_normal >= 0:  # node_states_clear_node
        st[N_NORMAL_MEMORY, nid] = False
    if arg.status_change_nid >= 0:
        st[N_MEMORY, nid] = False
    if not S.zone_present[gz]:
        zone_pcp_reset(m)
        build_all_zonelists(m)
    m.note_zone_setup()
    _node_notify(m, NODE_REMOVED_LAST_MEMORY, arg.status_change_nid)
    _notify(m, arg, MEM_OFFLINE)
    shrink_zone_span(m, gz, start_pfn, end)  # remove_pfn_range_from_zone
    return rep


def _unmovable_reason(m: Machine, pfn: int) -> str:
    f = int(m.S.page_flags[pfn])
    if f & PG_reserved:
        return "PageReserved"
    return f"an allocated order-{int(m.S.page_order[pfn])} block that is neither LRU nor movable"


def memory_block_offline(m: Machine, block_id: int, cpu: int = 0) -> OfflineReport:
    """memory_subsys_offline -> memory_block_offline (drivers/base/memory.c):
    EINVAL for an offline block, one without a single zone (mem->zone NULL:
    several zones or nodes), or with holes; then :func:`offline_pages`."""
    b = check_block_id(m, block_id)
    if not block_is_online(m, b):
        raise HotplugError("EINVAL", f"memory block {b} is already offline")
    cpu = m.check_online_cpu(cpu)
    m.sync_zones()
    s, n = block_range(m, b)
    gz = block_zone(m, b)
    if gz < 0:
        raise HotplugError("EINVAL", f"memory block {b} spans several zones or nodes "
                                     f"(valid_zones 'none'): it cannot be offlined")
    present = int(block_zone_pages(m, b)[gz])
    if present != n:
        raise HotplugError("EINVAL", f"memory block {b} has memory holes ({n - present} of "
                                     f"{n} pfns are not System RAM)")
    rep = offline_pages(m, s, n, gz, cpu)
    m.offline_blocks[b] = gz // MAX_NR_ZONES
    m.uevents.append(("offline", f"/devices/system/memory/memory{b}", "memory"))
    return rep


# ---------------------------------------------------------------- add / remove
def check_hotplug_memory_range(m: Machine, start_pfn: int, nr_pages: int) -> tuple[int, int]:
    """check_hotplug_memory_range(): integers (ArgError otherwise), the range
    non-empty and memory-block aligned, else HotplugError EINVAL."""
    start_pfn = check_int("start_pfn", start_pfn, 0, 1 << 62)
    nr_pages = check_int("nr_pages", nr_pages, 0, 1 << 62)
    n = pages_per_block(m)
    if not nr_pages or start_pfn % n or nr_pages % n:
        raise HotplugError("EINVAL", f"pfns [{start_pfn:#x}, {start_pfn + nr_pages:#x}): not "
                                     f"a non-empty range aligned to the memory block size "
                                     f"({n:#x} pages, block_size_bytes "
                                     f"{memory_block_size_bytes(m):#x})")
    return start_pfn, nr_pages


def _ranges_overlap(ram: list[tuple[int, int, int]], s: int, e: int) -> tuple[int, int] | None:
    for rs, re_, _n in ram:
        if rs < e and s < re_:
            return rs, re_
    return None


def add_memory(m: Machine, nid: int, start_pfn: int, nr_pages: int,
               online_type: str | None = None) -> list[int]:
    """add_memory() -> add_memory_resource(): hot-add [start_pfn, start_pfn +
    nr_pages) to node ``nid`` and return the new memory block ids.

    Checks, before anything changes: the range (block aligned: EINVAL), the
    node (possible, below MAX_NUMNODES: EINVAL), the hotpluggable room
    (MachineConfig.maxmem_pfn: ERANGE, mhp_range_allowed), overlap with
    System RAM (EEXIST, register_memory_resource), ``online_type`` (EINVAL).
    Then: the sections present (memblock, System RAM), a node that was
    offline brought up (__try_online_node: its zonelist built alone, as
    hotadd_init_pgdat does; N_ONLINE, its sysfs directory), the memory
    blocks registered under the node, offline, and onlined per
    ``online_type`` (default: ``Machine.hotplug.auto_online_blocks``;
    "offline" leaves them offline).  A block whose onlining a notifier
    refuses stays offline (online_memory_block's result is ignored).
    The effective memlayout maps the range to ``nid`` (the model keeps the
    layout true for memory it did not know).
    """
    start_pfn, nr_pages = check_hotplug_memory_range(m, start_pfn, nr_pages)
    if not is_int(nid):
        raise ArgError(f"nid: expected an integer, got {show(nid)}")
    nid = int(nid)
    maxn = m.config.max_numnodes
    if not 0 <= nid < maxn or not m.topo.node_states[N_POSSIBLE, nid]:
        raise HotplugError("EINVAL", f"node {nid} is not possible (node_possible_map: "
                                     f"MAX_NUMNODES {maxn})")
    end = start_pfn + nr_pages
    room = min(m.config.maxmem_pfn or m.max_pfn, m.max_pfn)  # set by __post_init__
    if end > room:
        raise HotplugError("ERANGE", f"pfns [{start_pfn:#x}, {end:#x}) beyond the hotpluggable "
                                     f"range [0, {room:#x}) (maxmem_pfn)")
    hit = _ranges_overlap(m.memblock_ranges(), start_pfn, end)
    if hit is not None:
        raise HotplugError("EEXIST", f"pfns [{start_pfn:#x}, {end:#x}) overlap System RAM "
                                     f"[{hit[0]:#x}, {hit[1]:#x})")
    online_type = check_online_type(m.hotplug.auto_online_blocks if online_type is None
                                    else online_type)
    m.sync_zones()
    st = m.topo.node_states
    if not st[N_ONLINE, nid]:  # __try_online_node
        build_all_zonelists(m, only_nid=nid)  # hotadd_init_pgdat
        st[N_ONLINE, nid] = True
        m.uevents.append(("add", f"/devices/system/node/node{nid}", "node"))
    m.add_memblock(start_pfn, end, nid)
    m.install_effective(_layout_with(m.effective, start_pfn, end, nid))
    n = pages_per_block(m)
    blocks = list(range(start_pfn // n, end // n))
    for b in blocks:  # create_memory_block_devices + register_memory_blocks_under_node
        m.offline_blocks[b] = nid
        m.uevents.append(("add", f"/devices/system/memory/memory{b}", "memory"))
    if online_type != MMOP_OFFLINE:
        online_memory_blocks(m, blocks, online_type)
    return blocks


def _layout_with(ml: MemLayout, start_pfn: int, end_pfn: int, nid: int) -> MemLayout:
    return effective_layout(ml, MemLayout.from_ranges([(start_pfn, end_pfn - 1, nid)])
                            ).with_seq(ml.seq)


def remove_memory(m: Machine, start_pfn: int, nr_pages: int) -> None:
    """remove_memory() -> try_remove_memory(): every memory block of the
    range must be offline (EBUSY otherwise; EINVAL for an unaligned range
    or one holding no memory block); the blocks and the System RAM go, and
    try_offline_node takes the node of the blocks offline if it has neither
    memory nor CPUs left."""
    start_pfn, nr_pages = check_hotplug_memory_range(m, start_pfn, nr_pages)
    end = start_pfn + nr_pages
    n = pages_per_block(m)
    blocks = [b for b in range(start_pfn // n, end // n) if b * n < m.max_pfn
              and block_exists(m, b)]
    if not blocks:
        raise HotplugError("EINVAL", f"pfns [{start_pfn:#x}, {end:#x}): no memory block to "
                                     f"remove")
    online = [b for b in blocks if block_is_online(m, b)]
    if online:
        raise HotplugError("EBUSY", f"memory block {online[0]} is online: offline it before "
                                    f"removing pfns [{start_pfn:#x}, {end:#x})")
    nid = m.offline_blocks[blocks[-1]]  # check_memblock_offlined_cb: the last block's
    for b in blocks:
        del m.offline_blocks[b]
        m.uevents.append(("remove", f"/devices/system/memory/memory{b}", "memory"))
    m.remove_memblock(start_pfn, end)
    try_offline_node(m, nid)


def try_offline_node(m: Machine, nid: int) -> bool:
    """try_offline_node(): offline node ``nid`` (N_ONLINE cleared, its sysfs
    directory gone) when it spans no pages, no memory block names it and no
    present CPU is on it; True if it went offline."""
    nid = m.check_nid(nid)
    S = m.S
    if not m.topo.node_states[N_ONLINE, nid]:
        return False
    if S.zone_present[nid * MAX_NR_ZONES:(nid + 1) * MAX_NR_ZONES].any():
        return False  # node_spanned_pages
    if nid in m.offline_blocks.values():
        return False  # check_no_memblock_for_node_cb
    if np.any(m.topo.cpu_to_node == nid):
        return False  # check_cpu_on_node: every CPU is present
    m.topo.node_states[N_ONLINE, nid] = False
    m.uevents.append(("remove", f"/devices/system/node/node{nid}", "node"))
    return True


__all__ = ["MMOP_OFFLINE", "MMOP_ONLINE", "MMOP_ONLINE_KERNEL", "MMOP_ONLINE_MOVABLE",
           "ONLINE_POLICY_AUTO_MOVABLE", "ONLINE_POLICY_CONTIG_ZONES", "ONLINE_TYPES",
           "HotplugTunables", "OfflineReport", "add_memory", "block_range", "check_block_id",
           "memory_block_offline", "memory_block_online", "memory_block_state",
           "offline_pages", "online_pages", "remove_memory", "try_offline_node",
           "valid_zones", "zone_for_pfn_range"]
