"""Kernels the big state machine (tests/test_reference.py) reaches rarely,
each against the plain-Python reference (tests/naive.py) directly:

- ``overlay`` (the effective layout: the new layout over the old one) on
  random range sets, against a per-pfn overlay and the reference's ranges;
- ``chunk_order`` against the obvious definition, and the decomposition of
  [start, end) into its chunks against the reference's and a minimal tiling;
- the commit walk (``Machine.commit``) from boot on machines whose node
  boundaries fall on section boundaries (every section holds one node's
  pages: the walk's whole-range marking paths) or not, after random
  allocations, for stripes whose blocks are section multiples, pageblock
  multiples or odd, pushes and arbitrary ranges; the whole state (page nids,
  free and pcp lists, orders, migratetypes, marks, present/managed/spanned
  pages, counters) must equal the reference's.

Example counts scale with the Hypothesis profile (tests/conftest.py).
"""

from __future__ import annotations

import dataclasses
import itertools
import random
from typing import Any

import numpy as np
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from dnuma._kernels.alloc import chunk_order
from dnuma.mm.constants import PPC64, X86_64
from dnuma.mm.dnuma import effective_layout
from dnuma.mm.machine import Machine, MachineConfig
from dnuma.mm.memlayout import MemLayout
from dnuma.mm.validate import validate_all
from tests.naive import (
    RefMachine,
    assert_agree,
    both_alloc,
    both_commit,
    both_free,
    maximal_chunks,
    overlay,
    overlay_per_pfn,
    ref_boot,
)
from tests.naive import chunk_order as ref_chunk_order
from tests.test_reference import GFPS, ORDERS


def examples(n: int) -> int:
    """``n`` examples under the default profile (max_examples 100), scaled
    with the loaded profile's max_examples."""
    return max(1, n * settings.default.max_examples // 100)


# ---------------------------------------------------------------------- overlay
@st.composite
def range_sets(draw: Any, span: int) -> list[tuple[int, int, int]]:
    """Sorted, non-overlapping (start, end_inclusive, nid) ranges in [0, span):
    gaps or none (adjacent ranges), single-pfn ranges, repeated nids (runs
    that a merge could join)."""
    out: list[tuple[int, int, int]] = []
    pos = draw(st.integers(0, 3))
    nids = st.integers(0, 3)
    for _ in range(draw(st.integers(0, 10))):
        if pos >= span:
            break
        length = draw(st.one_of(st.just(1), st.integers(1, max(1, span // 4))))
        end = min(span, pos + length) - 1
        out.append((pos, end, draw(nids)))
        pos = end + 1 + draw(st.sampled_from([0, 0, 1, 2, 7]))  # adjacent or a gap
    return out


@st.composite
def layout_pairs(draw: Any) -> tuple[list[tuple[int, int, int]], list[tuple[int, int, int]]]:
    """(old, new): independent range sets, or ``new`` derived from ``old``
    (the same ranges, some of them, with the same or other nids, or with
    their ends moved by one)."""
    span = draw(st.sampled_from([8, 40, 300]))
    old = draw(range_sets(span).filter(bool))
    how = draw(st.sampled_from(["independent", "same", "subset", "nudged"]))
    if how == "independent":
        new = draw(range_sets(span).filter(bool))
    else:
        keep = [r for r in old if how != "subset" or draw(st.booleans())] or old[:1]
        new = []
        for s, e, n in keep:
            if how == "nudged":
                s = max(0, s + draw(st.integers(-1, 1)))
                e = max(s, e + draw(st.integers(-1, 1)))
                if new and s <= new[-1][1]:
                    continue
            new.append((s, e, draw(st.sampled_from([n, n, (n + 1) % 4]))))
    return old, new


def as_rows(ml: MemLayout) -> list[tuple[int, int, int]]:
    return list(zip(ml.starts.tolist(), ml.ends.tolist(), ml.nids.tolist(), strict=True))


@settings(max_examples=examples(400), deadline=None)
@given(layout_pairs())
@example(([(0, 9, 0)], [(0, 9, 0)]))  # identical
@example(([(0, 4, 0), (5, 9, 1)], [(4, 5, 2)]))  # across an adjacency
@example(([(3, 3, 1)], [(0, 2, 0), (4, 6, 0)]))  # single pfn between two new ranges
@example(([(0, 9, 0)], [(2, 2, 1), (4, 4, 1), (6, 6, 1)]))  # one old range cut thrice
@example(([(0, 1, 0), (4, 5, 0)], [(2, 3, 0)]))  # same nid: adjacent, not merged
def test_overlay_equals_the_per_pfn_overlay(pair: tuple[list, list]) -> None:
    old, new = pair
    got = as_rows(effective_layout(MemLayout.from_ranges(old), MemLayout.from_ranges(new)))
    # pfn by pfn: new over old, uncovered pfns stay uncovered
    per_pfn = {p: n for s, e, n in got for p in range(s, e + 1)}
    assert per_pfn == overlay_per_pfn(old, new)
    # sorted and non-overlapping (what lookups and the walk rely on)
    assert all(s <= e for s, e, _n in got)
    assert all(a[1] < b[0] for a, b in itertools.pairwise(got))
    # not merged (lookup.overlay promises no merge): the new ranges as they
    # are, plus the old ranges' uncovered pieces, as the reference builds them
    assert set(new) <= set(got)
    assert got == overlay(old, new)
    assert len(got) <= len(old) + 2 * len(new)


# ---------------------------------------------------------------------- chunk_order
def naive_chunk_order(p: int, run_end: int, max_order: int) -> int:
    """The largest o <= max_order with p % 2**o == 0 and p + 2**o <= run_end
    (0 when none fits)."""
    fits = [o for o in range(max_order + 1) if p % (1 << o) == 0 and p + (1 << o) <= run_end]
    return max(fits, default=0)


def min_tiling(start: int, end: int, max_order: int) -> int:
    """The fewest aligned blocks of order <= max_order that tile [start, end)."""
    best = [0] + [end - start + 1] * (end - start)
    for i in range(end - start):
        p = start + i
        for o in range(max_order + 1):
            n = 1 << o
            if p % n or p + n > end:
                break
            best[i + n] = min(best[i + n], best[i] + 1)
    return best[end - start]


@settings(max_examples=examples(300), deadline=None)
@given(p=st.one_of(st.integers(0, 5000), st.integers(0, 1 << 40).map(lambda v: v << 10)),
       length=st.integers(-2, 3000), max_order=st.integers(0, 12))
def test_chunk_order_is_the_largest_aligned_fitting_order(p: int, length: int,
                                                          max_order: int) -> None:
    run_end = p + length
    want = naive_chunk_order(p, run_end, max_order)
    assert chunk_order(p, run_end, max_order) == want == ref_chunk_order(p, run_end, max_order)


@settings(max_examples=examples(200), deadline=None)
@given(start=st.integers(0, 1 << 14), length=st.integers(0, 1500),
       max_order=st.sampled_from([0, 1, 3, 8, 10]))
def test_chunks_tile_the_run_like_the_reference(start: int, length: int, max_order: int) -> None:
    end = start + length
    chunks, p = [], start
    while p < end:
        o = chunk_order(p, end, max_order)
        chunks.append((p, o))
        p += 1 << o
    assert p == end  # exactly [start, end): no chunk sticks out
    assert all(c % (1 << o) == 0 and o <= max_order for c, o in chunks)  # aligned
    assert chunks == maximal_chunks(start, end, max_order)
    assert len(chunks) == min_tiling(start, end, max_order)  # greedy is optimal


# ---------------------------------------------------------------------- commit walk
# x86_64 with 4 MiB sections (1024 pfns, one MAX_PAGE_ORDER block): several
# sections and zones (DMA, DMA32) in a few MiB
X86_SMALL_SECTIONS = dataclasses.replace(X86_64, name="x86_64-4M-sections", section_size_bits=22)
MAX_NODES = 8
NODE_POOL = 6


@st.composite
def walk_configs(draw: Any) -> MachineConfig:
    """1-4 nodes, each a whole number of sections (so every section holds one
    node's pages) unless ``unaligned`` moves the boundaries off them; holes
    between nodes, reserved ranges, CPUs on any node."""
    prof = draw(st.sampled_from([X86_SMALL_SECTIONS, PPC64]))
    sec = prof.pages_per_section
    per_node = (1, 3) if prof is X86_SMALL_SECTIONS else (2, 8)
    unaligned = draw(st.booleans())
    nodes = draw(st.integers(1, 4))
    ram, cur = [], draw(st.sampled_from([0, 0, sec, 2 * sec]))
    for nid in range(nodes):
        if nid and draw(st.booleans()):
            cur += draw(st.integers(1, 2)) * sec  # a hole of whole sections
        size = draw(st.integers(*per_node)) * sec
        if unaligned:
            size += draw(st.integers(-sec // 2, sec // 2))
            if nid and draw(st.booleans()):
                cur += draw(st.integers(1, 300))  # a hole inside a section
        ram.append((cur, cur + size, nid))
        cur += size
    reserved = []
    for _ in range(draw(st.integers(0, 2))):
        s = draw(st.integers(ram[0][0], cur - 2))
        reserved.append((s, min(cur, s + draw(st.integers(1, 300)))))
    ncpu = draw(st.integers(1, 4))
    c2n = tuple(draw(st.lists(st.integers(0, nodes - 1), min_size=ncpu, max_size=ncpu)))
    return MachineConfig(ram=tuple(ram), cpu_to_node=c2n, profile=prof,
                         reserved=tuple(reserved), max_numnodes=MAX_NODES)


node_sets = st.lists(st.integers(0, NODE_POOL - 1), min_size=1, max_size=3, unique=True)
walk_layouts = st.one_of(
    # stripe blocks: k sections, k pageblocks, 8-aligned, odd
    st.tuples(st.just("stripe"), node_sets, st.sampled_from(["section", "pageblock", "8"]),
              st.integers(1, 3)),
    st.tuples(st.just("stripe"), node_sets, st.just("odd"), st.integers(8, 1500)),
    st.tuples(st.just("push"), st.integers(0, NODE_POOL - 1)),
    # arbitrary ranges, their ends multiples of a unit (1: anywhere; 8 and a
    # section: ranges the walk may mark a byte or a section at a time)
    st.tuples(st.just("ranges"), st.sampled_from(["1", "8", "section"]),
              st.lists(st.integers(0, 1 << 16), min_size=2, max_size=12), node_sets),
)


def build_layout(m: Machine, spec: tuple[Any, ...]) -> MemLayout:
    ram = m.ram_ranges()
    sec, pb = m.profile.pages_per_section, m.profile.pageblock_nr_pages
    last = ram[-1][1] - 1
    if spec[0] == "stripe":
        _kind, nodes, unit, k = spec
        block = {"section": k * sec, "pageblock": k * pb, "8": 8 * k, "odd": 2 * k + 1}[unit]
        return MemLayout.stripe(ram, nodes, block)
    if spec[0] == "push":
        return MemLayout.push(ram, spec[1])
    _kind, unit, cuts, nodes = spec
    u = {"1": 1, "8": 8, "section": sec}[unit]
    npts = last // u + 1
    pts = sorted({(c % npts) * u for c in cuts})
    rows = []
    for i in range(0, len(pts) - 1, 2):
        rows.append((pts[i], min(last, pts[i + 1] - 1), nodes[(i // 2) % len(nodes)]))
    if not rows:
        rows = [(pts[0], min(last, pts[0] + u - 1), nodes[0])]
    return MemLayout.from_ranges(rows)


def traffic(m: Machine, r: RefMachine, rnd: random.Random, live: list[tuple[int, int, int]],
            fill: float, free_share: float) -> None:
    """Allocations of mixed orders, gfps and CPUs on both machines until about
    ``fill`` of the managed pages are allocated (failures included: a zone
    the gfp asks for may not exist or be full; at most 3000 tries), then a
    random ``free_share`` of the live blocks freed from random CPUs."""
    orders = [o for o in ORDERS if o <= m.profile.max_page_order]
    target = fill * sum(m.S.zone_managed.tolist())
    held = sum(1 << o for _p, o, _c in live)
    for _ in range(3000):
        if held >= target:
            break
        order, cpu, gfp = rnd.choice(orders), rnd.randrange(m.nr_cpus), rnd.choice(GFPS)
        p = both_alloc(m, r, order, cpu, gfp=gfp)
        if p is not None:
            live.append((p, order, cpu))
            held += 1 << order
    rnd.shuffle(live)
    k = int(len(live) * free_share)
    for p, order, _cpu in live[:k]:
        both_free(m, r, p, order, rnd.randrange(m.nr_cpus))
    del live[:k]


def check(m: Machine, r: RefMachine, what: str) -> None:
    validate_all(m)
    assert_agree(r, m, what)


@settings(max_examples=examples(150), deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(cfg=walk_configs(), seed=st.integers(0, 1 << 16),
       fill=st.sampled_from([0.0, 0.3, 0.6, 0.9, 1.0]),
       free_share=st.sampled_from([0.0, 0.3, 0.6]),
       layouts=st.lists(walk_layouts, min_size=1, max_size=2))
def test_commit_walk_from_boot_matches_reference(cfg: MachineConfig, seed: int, fill: float,
                                                 free_share: float,
                                                 layouts: list[tuple[Any, ...]]) -> None:
    m = Machine(cfg)
    r = ref_boot(m)
    rnd = random.Random(seed)
    live: list[tuple[int, int, int]] = []
    traffic(m, r, rnd, live, fill, free_share)
    check(m, r, "allocations")
    for i, spec in enumerate(layouts):
        both_commit(m, r, build_layout(m, spec))
        check(m, r, f"commit {i} {spec}")
        if i + 1 < len(layouts):
            traffic(m, r, rnd, live, fill, free_share)
    # marked blocks go to their new nodes when freed
    for p, order, cpu in live[: len(live) // 2]:
        both_free(m, r, p, order, cpu)
    check(m, r, "frees after the commits")


def test_section_stripe_marks_whole_sections_like_the_reference() -> None:
    """Every section on one node, half the memory allocated, each committed
    range one section (the walk's whole-range marking), then the boot
    layout back (every mark cleared the same way)."""
    m = Machine(MachineConfig.uniform(4, "1G", 4, profile=PPC64, max_numnodes=MAX_NODES))
    r = ref_boot(m)
    live: list[tuple[int, int, int]] = []
    traffic(m, r, random.Random(5), live, 0.7, 0.2)
    sec = m.profile.pages_per_section
    rep = both_commit(m, r, MemLayout.stripe(m.ram_ranges(), [1, 2, 3, 0], sec))
    check(m, r, "stripe")
    assert rep.pages_marked > 0 and rep.free_pages_moved > 0
    assert m.marked_pages() == rep.pages_marked
    boot_layout = MemLayout.from_ranges((s, e - 1, n) for s, e, n in m.config.ram)
    rep2 = both_commit(m, r, boot_layout)
    check(m, r, "boot layout")
    assert rep2.pages_unmarked == rep.pages_marked and m.marked_pages() == 0
    assert np.array_equal(m.S.page_nid, np.array(r.nid, dtype=m.S.page_nid.dtype))
