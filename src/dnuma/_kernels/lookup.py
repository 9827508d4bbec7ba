"""pfn -> nid lookups in a memlayout: a per-pageblock range table for uniform
regions, a binary search over range starts only inside mixed pageblocks."""

from __future__ import annotations

import numpy as np

from ._jit import kernel, kernel_alloc

LOOKUP_SHIFT = 9  # table granularity: 512 pfns
UNCOVERED = -1
MIXED = -2


@kernel_alloc
def build_table(starts, ends, nr_entries):
    """Range index per 2**LOOKUP_SHIFT pfns: the range index, UNCOVERED or MIXED."""
    tbl = np.full(nr_entries, UNCOVERED, np.int32)
    for i in range(starts.shape[0]):
        s = starts[i]
        e = ends[i]
        b0 = s >> LOOKUP_SHIFT
        b1 = e >> LOOKUP_SHIFT
        for b in range(b0, b1 + 1):
            lo = b << LOOKUP_SHIFT
            hi = lo + (1 << LOOKUP_SHIFT) - 1
            if s <= lo and e >= hi and tbl[b] == UNCOVERED:
                tbl[b] = i
            else:
                tbl[b] = MIXED
    return tbl


@kernel
def _search(starts, ends, pfn):
    lo = 0
    hi = starts.shape[0]
    while lo < hi:
        mid = (lo + hi) >> 1
        if starts[mid] <= pfn:
            lo = mid + 1
        else:
            hi = mid
    i = lo - 1
    if i >= 0 and ends[i] >= pfn:
        return i
    return -1


@kernel
def find_range(tbl, starts, ends, pfn):
    """Index of the range holding ``pfn`` (table first, then binary search), or -1."""
    b = pfn >> LOOKUP_SHIFT
    if pfn < 0 or b >= tbl.shape[0]:
        return -1
    i = tbl[b]
    if i == MIXED:
        i = _search(starts, ends, pfn)
    return i


@kernel
def lookup_many(tbl, starts, ends, nids, pfns, out, cache):
    """Fill ``out`` with the nid of each pfn (-1 if uncovered).

    ``cache[0]`` is the range index of the last hit (the RFC's ``ml->cache``);
    returns (hits, misses) counted as the RFC's debugfs counts them.  A pfn
    inside the cached range is a hit; ranges are disjoint, so that is the
    range the search finds, and the search need not wait for the cache: the
    loop carries no memory dependency and random lookups overlap.
    """
    hits = 0
    misses = 0
    last = cache[0]
    for k in range(pfns.shape[0]):
        i = find_range(tbl, starts, ends, pfns[k])
        if last >= 0 and i == last:
            hits += 1
        else:
            misses += 1
            if i >= 0:
                last = i
        out[k] = nids[i] if i >= 0 else -1
    cache[0] = last
    return hits, misses


@kernel
def lookup_fast(tbl, starts, ends, nids, pfns, out):
    """Like lookup_many but without the cache statistics (bulk internal use)."""
    for k in range(pfns.shape[0]):
        i = find_range(tbl, starts, ends, pfns[k])
        out[k] = nids[i] if i >= 0 else -1


@kernel_alloc
def overlay(os_, oe, on, ns, ne, nn):
    """Ranges of the old layout not covered by the new one, plus the new ones,
    sorted by start: (starts, ends, nids)."""
    cap = os_.shape[0] + 2 * ns.shape[0] + 1
    rs = np.empty(cap, np.int64)
    re_ = np.empty(cap, np.int64)
    rn = np.empty(cap, np.int16)
    k = 0
    j = 0
    nnew = ns.shape[0]
    for i in range(os_.shape[0]):
        s = os_[i]
        e = oe[i]
        while j < nnew and ne[j] < s:
            j += 1
        jj = j
        cur = s
        while cur <= e:
            # copy new ranges that start before cur's remainder
            while jj < nnew and ne[jj] < cur:
                jj += 1
            if jj >= nnew or ns[jj] > e:
                rs[k] = cur
                re_[k] = e
                rn[k] = on[i]
                k += 1
                break
            if ns[jj] > cur:
                rs[k] = cur
                re_[k] = ns[jj] - 1
                rn[k] = on[i]
                k += 1
            cur = ne[jj] + 1
            jj += 1
    # merge the kept old pieces with the new ranges (both sorted)
    out_s = np.empty(k + nnew, np.int64)
    out_e = np.empty(k + nnew, np.int64)
    out_n = np.empty(k + nnew, np.int16)
    a = 0
    b = 0
    for t in range(k + nnew):
        if b >= nnew or (a < k and rs[a] < ns[b]):
            out_s[t] = rs[a]
            out_e[t] = re_[a]
            out_n[t] = rn[a]
            a += 1
        else:
            out_s[t] = ns[b]
            out_e[t] = ne[b]
            out_n[t] = nn[b]
            b += 1
    return out_s, out_e, out_n
