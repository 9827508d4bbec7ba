"""memlayout: builders, validation, lookups and their statistics."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dnuma.mm.errors import LayoutError
from dnuma.mm.memlayout import LayoutBacklog, MemLayout


def brute(ranges, pfns):
    """A dense per-pfn table, filled range by range."""
    table = np.full(int(max(pfns.max(), max(e for _s, e, _n in ranges))) + 1, -1)
    for s, e, n in ranges:
        table[s:e + 1] = n
    return table[pfns]


def test_from_ranges_sorts_and_names_debugfs_files():
    ml = MemLayout.from_ranges([(0x200, 0x2FF, 1), (0, 0x1FF, 0)])
    assert list(ml) == [(0, 0x1FF, 0), (0x200, 0x2FF, 1)]
    assert ml.debugfs_names() == [("0-1FF", 0), ("200-2FF", 1)]
    assert ml.seq == -1 and ml.with_seq(4).seq == 4


@pytest.mark.parametrize("ranges, words", [
    ([], "empty"),
    ([(10, 5, 0)], "start > end"),
    ([(-1, 5, 0)], "negative"),
    ([(0, 5, 1 << 15)], r"nid 32768 outside \[0, 32768\)"),
    ([(0, 5, -1)], "nid -1 outside"),
    ([(0, 1 << 31, 0)], "beyond PFN_LIMIT"),
    ([(0, 5, 0), (9, 7, 1)], r"range #1 \(0x9-0x7 -> node 1\): start > end"),
    ([(0, 5.0, 0)], "end is not an integer"),
    ([("0", 5, 0)], "start is not an integer"),
    ([(0, 5, True)], "nid is not an integer"),
    ([(0, 5)], "expected \\(start, end, nid\\)"),
    ([(0, 10, 0), (10, 20, 1)], "overlapping"),
    ([(0, 100, 0), (5, 6, 1)], "overlapping"),
])
def test_invalid_layouts_raise_typed_errors(ranges, words):
    with pytest.raises(LayoutError, match=words):
        MemLayout.from_ranges(ranges)


def test_stripe_matches_rfc_script_blocks():
    ml = MemLayout.stripe([(0, 1000)], [0, 1, 2], 256)
    assert list(ml) == [(0, 255, 0), (256, 511, 1), (512, 767, 2), (768, 999, 0)]
    # blocks align to absolute pfns, holes stay uncovered
    ml = MemLayout.stripe([(100, 300), (600, 700)], [5, 6], 128)
    assert list(ml) == [(100, 127, 5), (128, 255, 6), (256, 299, 5), (600, 639, 5),
                        (640, 699, 6)]


def test_push_covers_all_ram():
    ml = MemLayout.push([(0, 10), (20, 30)], 3)
    assert list(ml) == [(0, 9, 3), (20, 29, 3)]


def test_current_layout_from_nid_array():
    nid = np.array([0, 0, 1, 1, 1, 0, 0, 2], dtype=np.int16)
    present = np.array([1, 1, 1, 1, 0, 1, 1, 1], dtype=bool)
    ml = MemLayout.from_nid_array(nid, present)
    assert list(ml) == [(0, 1, 0), (2, 3, 1), (5, 6, 0), (7, 7, 2)]


@pytest.mark.parametrize("block", [1, 7, 256, 300, 512, 4096])
def test_vectorised_lookup_equals_brute_force(block):
    rng = np.random.default_rng(block)
    ml = MemLayout.stripe([(3, 20000), (30001, 50000)], [0, 4, 9], block)
    pfns = rng.integers(0, 60000, size=3000)
    assert np.array_equal(ml.lookup(pfns), brute(list(ml), pfns))
    assert np.array_equal(ml.lookup_nocount(pfns), brute(list(ml), pfns))
    assert ml.pfn_to_nid(2) == -1 and ml.pfn_to_nid(25000) == -1


def test_lookup_cache_counts_hits_and_misses_like_the_rfc():
    ml = MemLayout.from_ranges([(0, 99, 0), (100, 199, 1)])
    ml.lookup(np.array([5, 6, 7, 150, 151, 8, 500]))
    # 5 miss, 6 hit, 7 hit, 150 miss, 151 hit, 8 miss, 500 miss (uncovered)
    assert (ml.stats.hits, ml.stats.misses) == (3, 4)


def test_backlog_sizes():
    layouts = [MemLayout.from_ranges([(0, 9, i)]) for i in range(5)]
    for size, kept in [(0, 0), (2, 2), (-1, 5)]:
        b = LayoutBacklog(size)
        for ml in layouts:
            b.feed(ml)
        assert len(b) == kept
    b = LayoutBacklog(2)
    for ml in layouts:
        b.feed(ml)
    assert [next(iter(x))[2] for x in b] == [3, 4]
    with pytest.raises(LayoutError):
        LayoutBacklog(-2)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 3000), st.integers(0, 700), st.integers(0, 3)),
                min_size=1, max_size=40),
       st.lists(st.integers(-5, 60_000), min_size=1, max_size=400), st.booleans())
def test_vectorised_lookup_counts_like_the_rfcs_cache(gaps, pfns, runs):
    """lookup() against the RFC's loop: check the cached range first, search
    on a miss, cache what was found (layouts with holes, uncovered pfns)."""
    ranges, pos = [], 0
    for gap, length, nid in gaps:
        ranges.append((pos + gap, pos + gap + length, nid))
        pos += gap + length + 1
    ml = MemLayout.from_ranges(ranges)
    q = np.array(sorted(pfns) if runs else pfns, dtype=np.int64)
    want, hits, misses, last = [], 0, 0, -1
    for p in q.tolist():
        if last >= 0 and ranges[last][0] <= p <= ranges[last][1]:
            hits += 1
            want.append(ranges[last][2])
            continue
        misses += 1
        i = next((k for k, (s, e, _n) in enumerate(ranges) if s <= p <= e), -1)
        if i >= 0:
            last = i
        want.append(ranges[i][2] if i >= 0 else -1)
    assert ml.lookup(q).tolist() == want
    assert (ml.stats.hits, ml.stats.misses) == (hits, misses)
