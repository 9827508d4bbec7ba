"""The Dynamic NUMA commit (the RFC's memlayout_commit, in docs/DESIGN.md's order):

validate -> notify "going" (veto: nothing changed) -> online nodes -> install
the layout (seq + 1) -> mark allocated pages whose node changes -> transplant
free buddy blocks, splitting at range boundaries -> drain_all_pages, every
pcp list emptied and the pages whose node changes redirected to their new
zone as they drain -> fix present/managed/spanned, watermarks, pcp
high/batch -> rebuild zonelists once -> node states (N_MEMORY follows
present pages; N_ONLINE is never cleared, as 6.12's offline_pages keeps it)
-> notify "done" -> uevents.

Marking and the buddy transplant share one walk over the committed ranges;
in a single-threaded model the result is the same as the RFC's two passes
(dnuma_move_free_pages, then dnuma_mark_page_range), and each page is
visited once.  The drain comes last, as memlayout_commit's drain_all_pages()
does in every RFC version: after a commit no CPU holds a pcp page.

The RFC's race (a page freed to the old node between transplant and the map
swap) cannot happen: the map is installed before any page moves, and the
model's commit runs to completion between two allocator calls.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from .._kernels import lookup as _lk
from .._kernels import state as _st
from .._kernels import transplant as _kt
from .constants import N_ONLINE, N_POSSIBLE
from .errors import LayoutError
from .memlayout import MemLayout
from .notifier import MEMLAYOUT_DONE, MEMLAYOUT_GOING, MemlayoutEvent

if TYPE_CHECKING:
    from .machine import Machine


@dataclass
class CommitReport:
    """What one commit did (page counts in pages of the machine's page size).

    free_pages_moved: buddy pages transplanted by the walk; pcp_pages_moved:
    per-cpu pages redirected to a new node by the final drain_all_pages;
    pcp_pages_drained: every page that drain took off the per-cpu lists
    (moved or not).  The two moved counts are what the RFC's moved-pages
    counter adds at commit time (``Machine.moved_pages``)."""

    seq: int
    ranges: int
    pages_marked: int
    pages_unmarked: int
    free_pages_moved: int
    pcp_pages_moved: int
    blocks_split: int
    reserved_rehomed: int
    pcp_pages_drained: int = 0
    nodes_onlined: list[int] = field(default_factory=list)
    # always empty: neither a commit nor a free offlines a node (update_node_states)
    nodes_offlined: list[int] = field(default_factory=list)
    zonelist_rebuilds: int = 0
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def validate_layout_for(m: Machine, layout: MemLayout) -> None:
    """Raise LayoutError (naming the range) if ``layout`` cannot go on ``m``:
    not a valid MemLayout, pfns beyond the end of memory, or a node outside
    the machine's MAX_NUMNODES or not possible."""
    if not isinstance(layout, MemLayout):
        raise LayoutError(f"layout: expected a MemLayout, got {type(layout).__name__}")
    layout.check()
    end = m.ram_ranges()[-1][1]
    bad = np.flatnonzero(layout.ends >= end)
    if bad.size:
        k = int(bad[0])
        raise LayoutError(f"range {layout.starts[k]:#x}-{layout.ends[k]:#x}: beyond "
                          f"the end of memory (last pfn {end - 1:#x}; range #{k})")
    maxn = m.config.max_numnodes
    nids = layout.nids.astype(np.int64)
    bad = np.flatnonzero(nids >= maxn)
    if bad.size:
        k = int(bad[0])
        raise LayoutError(f"range {layout.starts[k]:#x}-{layout.ends[k]:#x}: node "
                          f"{nids[k]} is not possible: outside [0, {maxn}) (this machine's "
                          f"MAX_NUMNODES; range #{k})")
    possible = m.topo.node_states[N_POSSIBLE]
    bad = np.flatnonzero(~possible[nids])
    if bad.size:
        k = int(bad[0])
        raise LayoutError(f"range {layout.starts[k]:#x}-{layout.ends[k]:#x}: node "
                          f"{nids[k]} is not possible (MAX_NUMNODES {maxn}; range #{k})")


def effective_layout(old: MemLayout, new: MemLayout) -> MemLayout:
    """``new`` over ``old``: pfns the new layout leaves out keep their target."""
    s, e, n = _lk.overlay(old.starts, old.ends, old.nids, new.starts, new.ends, new.nids)
    return MemLayout(s, e, n)


def commit(m: Machine, layout: MemLayout) -> CommitReport:
    """Install ``layout`` on ``m``; see the module docstring for the order.

    Raises LayoutError or NotifyVeto with the machine unchanged.
    """
    t0 = time.perf_counter()
    validate_layout_for(m, layout)
    seq = m.seq + 1
    nodes = layout.node_ids()
    eff = effective_layout(m.effective, layout).with_seq(seq)
    old_eff = m.effective
    m.notifier.call_going(MemlayoutEvent(MEMLAYOUT_GOING, seq, nodes, old=old_eff, new=eff))

    states = m.topo.node_states
    onlined = [n for n in nodes if not states[N_ONLINE, n]]
    states[N_ONLINE, onlined] = True
    m.uevents.extend(("add", f"/devices/system/node/node{n}", "node") for n in onlined)

    m.backlog.feed(m.layout)
    m.layout = layout.with_seq(seq)
    m.seq = seq
    m.install_effective(eff)

    rep = np.zeros(_kt.NR_R, dtype=np.int64)
    _kt.commit_walk(m.S, layout.starts, layout.ends, rep)
    _kt.drain_all_pages_dnuma(m.S, rep)
    walk = _kt.WalkCounts(*rep.tolist())
    # ml_stat_count_moved_pages in dnuma_post_free_to_new_zone: every page a
    # commit re-homes counts in debugfs moved-pages
    m.S.counters[_st.C_MOVED_AT_COMMIT] += walk.free_moved + walk.pcp_moved

    rebuilds0 = m.zonelist_rebuilds
    _on, off = m.rebuild_after_layout_change()
    report = CommitReport(
        seq=seq, ranges=len(layout), pages_marked=walk.marked, pages_unmarked=walk.unmarked,
        free_pages_moved=walk.free_moved, pcp_pages_moved=walk.pcp_moved,
        blocks_split=walk.split, reserved_rehomed=walk.reserved,
        pcp_pages_drained=walk.pcp_drained,
        nodes_onlined=onlined, nodes_offlined=off,
        zonelist_rebuilds=m.zonelist_rebuilds - rebuilds0,
        seconds=time.perf_counter() - t0)
    m.notifier.call_done(MemlayoutEvent(MEMLAYOUT_DONE, seq, nodes, report, old=old_eff,
                                        new=eff))
    return report
