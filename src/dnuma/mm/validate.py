"""Invariant checks (docs/DESIGN.md), one ``validate_*`` function each.

Each raises :class:`~dnuma.mm.errors.ValidationError` naming the invariant and
the pfn or zone where it fails.  ``validate_all`` runs every one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from .._kernels import check as _kc
from .constants import (
    MAX_NR_ZONES,
    MIGRATE_PCPTYPES,
    ZONE_NAMES,
    PG_buddy,
    PG_head,
    PG_hole,
    PG_pcp,
    PG_reserved,
)
from .errors import ValidationError
from .machine import block_pfns
from .memory_block import memory_block_size_bytes

if TYPE_CHECKING:
    from .machine import Machine

_LIST_ERRORS = {
    _kc.E_NOT_BUDDY: "a pfn on a free list is not PageBuddy",
    _kc.E_WRONG_ORDER: "a pfn on a free list has another order",
    _kc.E_WRONG_ZONE: "a pfn on a list belongs to another zone",
    _kc.E_WRONG_MT: "a pfn on a free list sits in a pageblock of another migratetype",
    _kc.E_COUNT: "nr_free disagrees with the length of the free list",
    _kc.E_BROKEN_LINK: "list links are broken (prev/next disagree or a cycle)",
    _kc.E_NOT_PCP: "a pfn on a pcp list is not marked pcp or has another order",
    _kc.E_PCP_COUNT: "pcp->count disagrees with the pages on its lists",
    _kc.E_UNLISTED: "free block heads that are on no list",
}


def zone_name(gz: int) -> str:
    return f"node {gz // MAX_NR_ZONES} zone {ZONE_NAMES[gz % MAX_NR_ZONES]}"


def validate_lists(m: Machine) -> None:
    """Every free block is on exactly the list of its zone, order and pageblock
    migratetype; list lengths equal nr_free and pcp->count."""
    code, pfn, gz, a, b = (int(v) for v in _kc.check_lists(m.S))
    if code == _kc.E_OK:
        return
    where = f"pfn {pfn:#x}" if pfn >= 0 else "list"
    zone = zone_name(gz) if gz >= 0 else "all zones"
    raise ValidationError("free-lists", f"{_LIST_ERRORS[code]}: {where} in {zone} "
                          f"(order/pindex {a}, migratetype/cpu {b})")


def _cover(m: Machine) -> np.ndarray:
    """How many blocks (free, pcp, allocated) and reserved pages cover each pfn."""
    S = m.S
    cover = np.zeros(S.page_flags.size, dtype=np.int16)
    np.add.at(cover, block_pfns(S, PG_buddy | PG_pcp | PG_head)[1], 1)
    cover += (S.page_flags & PG_reserved) != 0
    return cover


def validate_page_states(m: Machine) -> None:
    """Every present pfn is in exactly one state (free in one list, allocated,
    reserved); holes are in none; a block is all in one zone."""
    S = m.S
    cover = _cover(m)
    hole = (S.page_flags & PG_hole) != 0
    bad = np.flatnonzero(cover[~hole] != 1)
    if bad.size:
        pfn = int(np.flatnonzero(~hole)[bad[0]])
        raise ValidationError("page-state", f"pfn {pfn:#x} is in {int(cover[pfn])} states "
                              f"(flags {int(S.page_flags[pfn]):#x})")
    bad = np.flatnonzero(cover[hole] != 0)
    if bad.size:
        pfn = int(np.flatnonzero(hole)[bad[0]])
        raise ValidationError("page-state", f"hole pfn {pfn:#x} is inside a block")
    heads = np.flatnonzero(S.page_flags & (PG_buddy | PG_pcp | PG_head))
    n = 1 << S.page_order[heads].astype(np.int64)
    last = heads + n - 1
    gz_h = S.page_nid[heads].astype(np.int64) * MAX_NR_ZONES + S.page_zone[heads]
    gz_l = S.page_nid[last].astype(np.int64) * MAX_NR_ZONES + S.page_zone[last]
    bad = np.flatnonzero(gz_h != gz_l)
    if bad.size:
        raise ValidationError("page-state", f"block at pfn {heads[bad[0]]:#x} spans two zones")
    bad = np.flatnonzero(heads & (n - 1))
    if bad.size:
        raise ValidationError("page-state", f"block at pfn {heads[bad[0]]:#x} is not aligned")


def validate_counters(m: Machine) -> None:
    """NR_FREE_PAGES, present, managed and per-section counts equal the arrays."""
    S = m.S
    ngz = S.zone_free.size
    present = (S.page_flags & PG_hole) == 0
    gz_all = S.page_nid.astype(np.int64) * MAX_NR_ZONES + S.page_zone
    want_present = np.bincount(gz_all[present], minlength=ngz)
    _cmp("present_pages", S.zone_present, want_present)
    resv = (S.page_flags & PG_reserved) != 0
    want_managed = want_present - np.bincount(gz_all[resv], minlength=ngz)
    _cmp("managed_pages", S.zone_managed, want_managed)
    bud = np.flatnonzero(S.page_flags & PG_buddy)
    want_free = np.bincount(gz_all[bud], weights=1 << S.page_order[bud].astype(np.int64),
                            minlength=ngz).astype(np.int64)
    _cmp("NR_FREE_PAGES", S.zone_free, want_free)
    shift = m.profile.section_size_bits - m.profile.page_shift
    sec = np.flatnonzero(present) >> shift
    want_sec = np.zeros_like(S.sec_present)
    np.add.at(want_sec, (sec, gz_all[present]), 1)
    bad = np.argwhere(want_sec != S.sec_present)
    if bad.size:
        s, gz = (int(v) for v in bad[0])
        raise ValidationError("counters", f"section {s} {zone_name(gz)}: present "
                              f"{int(S.sec_present[s, gz])}, pages say {int(want_sec[s, gz])}")


def _cmp(name: str, have: np.ndarray, want: np.ndarray) -> None:
    bad = np.flatnonzero(have != want)
    if bad.size:
        gz = int(bad[0])
        raise ValidationError("counters", f"{zone_name(gz)}: {name} is {int(have[gz])}, "
                              f"the pages say {int(want[gz])}")


def validate_buddies_merged(m: Machine) -> None:
    """No two free buddies of one order sit side by side un-merged in a zone
    (unless __free_one_page's migratetype rule forbids the merge)."""
    S = m.S
    pbo = m.profile.pageblock_order
    heads = np.flatnonzero(S.page_flags & PG_buddy)
    order = S.page_order[heads].astype(np.int64)
    sel = order < m.profile.max_page_order
    heads, order = heads[sel], order[sel]
    buddy = heads ^ (1 << order)
    ok = buddy < S.page_flags.size
    heads, order, buddy = heads[ok], order[ok], buddy[ok]
    gz = S.page_nid[heads].astype(np.int64) * MAX_NR_ZONES + S.page_zone[heads]
    bgz = S.page_nid[buddy].astype(np.int64) * MAX_NR_ZONES + S.page_zone[buddy]
    same = (((S.page_flags[buddy] & PG_buddy) != 0) & (S.page_order[buddy] == order)
            & (gz == bgz))
    mt = S.pb_mt[heads >> pbo]
    bmt = S.pb_mt[buddy >> pbo]
    blocked = (order >= pbo) & (mt != bmt) & ((mt >= MIGRATE_PCPTYPES) | (bmt >= MIGRATE_PCPTYPES))
    bad = np.flatnonzero(same & ~blocked)
    if bad.size:
        k = int(bad[0])
        raise ValidationError("buddies-merged", f"free buddies {heads[k]:#x} and {buddy[k]:#x} "
                              f"of order {order[k]} in {zone_name(int(gz[k]))} are not merged")


def validate_layout(m: Machine) -> None:
    """Every free page sits on the node the effective layout says; an allocated
    page on another node carries the LookupNode mark."""
    S = m.S
    free = m.free_mask()
    pfns = np.flatnonzero(free)
    want = m.effective.lookup_nocount(pfns)
    bad = np.flatnonzero((want >= 0) & (want != S.page_nid[pfns]))
    if bad.size:
        p = int(pfns[bad[0]])
        raise ValidationError("layout", f"free pfn {p:#x} is on node {int(S.page_nid[p])}, "
                              f"the layout says {int(want[bad[0]])}")
    starts, pf = block_pfns(S, PG_head)
    want = m.effective.lookup_nocount(pf)
    wrong = (want >= 0) & (want != S.page_nid[pf])
    marks = m.mark_mask()
    unmarked = wrong & ~marks[starts]
    bad = np.flatnonzero(unmarked)
    if bad.size:
        p = int(pf[bad[0]])
        raise ValidationError("layout", f"allocated pfn {p:#x} (block {int(starts[bad[0]]):#x}) "
                              f"is on node {int(S.page_nid[p])}, the layout says "
                              f"{int(want[bad[0]])}, and it is not marked")
    stray = np.flatnonzero(marks & ((S.page_flags & PG_head) == 0))
    if stray.size:
        raise ValidationError("layout", f"pfn {int(stray[0]):#x} carries a mark but is not "
                              f"an allocated block head")


def validate_conservation(m: Machine, total_pages: int | None = None) -> None:
    """Nothing is lost: free + allocated + reserved = present = the RAM
    pages (boot and hot-added) less those of offline memory blocks."""
    S = m.S
    present = int(S.zone_present.sum())
    ram = sum(e - s for s, e in m.ram_ranges())
    offline = len(m.offline_blocks) * (memory_block_size_bytes(m) >> m.profile.page_shift)
    if present != ram - offline:
        raise ValidationError("conservation", f"present pages {present} != RAM pages {ram} "
                                              f"- offline pages {offline}")
    if total_pages is not None and present != total_pages:
        raise ValidationError("conservation", f"present pages {present} != {total_pages}")
    heads = np.flatnonzero(S.page_flags & PG_head)
    allocated = int((1 << S.page_order[heads].astype(np.int64)).sum())
    reserved = int(np.count_nonzero(S.page_flags & PG_reserved))
    free = m.nr_free_pages()
    if free + allocated + reserved != present:
        raise ValidationError("conservation", f"free {free} + allocated {allocated} + reserved "
                              f"{reserved} != present {present}")


def validate_all(m: Machine) -> None:
    """Every invariant, cheapest first."""
    validate_conservation(m)
    validate_counters(m)
    validate_lists(m)
    validate_page_states(m)
    validate_buddies_merged(m)
    validate_layout(m)
