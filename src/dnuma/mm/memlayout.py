"""memlayout: an immutable, versioned map of inclusive pfn ranges -> nid.

Follows the RFC's mm/memlayout.c: ranges may not overlap, pfns outside every
range are "not covered" (lookups give NUMA_NO_NODE and a commit leaves their
pages where they are), lookups keep a one-entry cache of the last range found
and count hits and misses as the RFC's debugfs does.  The rbtree is replaced by
sorted arrays plus a per-pageblock table (the RFC asked for "a different data
structure, or more/smarter caching").
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .._kernels import lookup as _lk
from .constants import NUMA_NO_NODE
from .errors import (
    ArgError,
    LayoutError,
    check_bytes,
    check_int,
    check_int_array,
    first_outside,
    is_int,
    show,
)


@dataclass
class LookupStats:
    """The RFC's ``pfn-lookup-cache-hits`` / ``-misses`` counters."""

    hits: int = 0
    misses: int = 0
    cache: np.ndarray = field(default_factory=lambda: np.full(1, -1, np.int64))


#: pfns a layout may name: [0, PFN_LIMIT); machines end below 2**31 (int32 lists)
PFN_LIMIT = 1 << 31
#: bytes building one range of a stripe or a push costs at its peak (the
#: final 18 plus the int64 temporaries of the build and the sort)
BUILD_BYTES_PER_RANGE = 96
#: nids a layout may name: [0, NID_LIMIT) (int16); a machine's commit takes
#: only those below its own MAX_NUMNODES, and says so with its limit
NID_LIMIT = 1 << 15
_NID_NOTE = " (nids are int16; a commit checks the machine's MAX_NUMNODES)"


class MemLayout:
    """pfn ranges (inclusive) -> nid.  Immutable; ``seq`` is set when committed.

    Build one with :meth:`from_ranges`, :meth:`from_arrays`, :meth:`stripe`,
    :meth:`push` or :meth:`from_nid_array` (the current layout); a machine
    installs it with ``Machine.commit``.
    """

    __slots__ = ("_tbl", "ends", "nids", "seq", "starts", "stats")

    def __init__(self, starts: np.ndarray, ends: np.ndarray, nids: np.ndarray,
                 seq: int = -1) -> None:
        """Ranges ``starts[i]..ends[i]`` (inclusive pfns) -> ``nids[i]``: 1-d
        integer arrays of one length, sorted by start pfn and not overlapping,
        pfns in [0, PFN_LIMIT), nids in [0, NID_LIMIT); ``seq`` >= -1
        (-1: not committed).  Raises LayoutError naming the first bad range.
        The arrays are kept (converted to int64, int64, int16 if they are not)
        and made read-only."""
        s, e, n = _check_values(starts, ends, nids)
        _check_sorted(s, e, n)
        self._set(s, e, n.astype(np.int16, copy=False),
                  check_int("seq", seq, -1, 1 << 63, LayoutError))

    def _set(self, starts: np.ndarray, ends: np.ndarray, nids: np.ndarray, seq: int) -> None:
        self.starts = starts
        self.ends = ends
        self.nids = nids
        self.seq = seq
        self.stats = LookupStats()
        self._tbl: np.ndarray | None = None
        for a in (starts, ends, nids):
            a.setflags(write=False)

    def check(self) -> None:
        """Raise LayoutError unless the arrays still hold a valid layout (a
        commit re-checks: the attributes of a layout can be re-bound)."""
        s, e, n = _check_values(self.starts, self.ends, self.nids)
        _check_sorted(s, e, n)

    # ---- builders -------------------------------------------------------
    @classmethod
    def from_ranges(cls, ranges: Iterable[tuple[int, int, int]]) -> MemLayout:
        """From ``(pfn_start, pfn_end_inclusive, nid)`` triples, in any order.

        Raises LayoutError naming the offending range (its index in
        ``ranges``) for an empty layout, a value that is not an integer,
        start > end, a pfn outside [0, PFN_LIMIT), a nid outside
        [0, NID_LIMIT) or an overlap (a commit checks the machine's own
        MAX_NUMNODES).
        """
        rows: list[tuple[Any, ...]] = []
        for i, r in enumerate(ranges):
            try:
                t = tuple(r)
            except TypeError:
                raise LayoutError(f"range #{i}: expected (start, end, nid), got {show(r)}") \
                    from None
            if len(t) != 3:
                raise LayoutError(f"range #{i}: expected (start, end, nid), got {t!r}")
            for what, v in zip(("start", "end", "nid"), t, strict=True):
                if type(v) is not int and not is_int(v):
                    raise LayoutError(f"range #{i}: {what} is not an integer: {show(v)}")
            rows.append(t)
        if not rows:
            raise LayoutError("empty layout: at least one range is needed")
        try:
            arr = np.array(rows, dtype=np.int64).reshape(-1, 3)
        except OverflowError:  # a Python int beyond int64: name the first
            for i, t in enumerate(rows):
                for what, v in zip(("start", "end", "nid"), t, strict=True):
                    if not -(1 << 63) <= int(v) < 1 << 63:
                        raise LayoutError(f"range #{i}: {what} {int(v)} is beyond the int64 "
                                          f"range (pfns must be in [0, {PFN_LIMIT:#x}))") \
                            from None
            raise
        return cls.from_arrays(arr[:, 0], arr[:, 1], arr[:, 2])

    @classmethod
    def from_arrays(cls, starts: np.ndarray, ends: np.ndarray, nids: np.ndarray) -> MemLayout:
        """Vectorised :meth:`from_ranges` (same checks; ranges in any order)."""
        s, e, n = _check_values(starts, ends, nids)
        order = np.argsort(s, kind="stable")
        s, e, n = s[order], e[order], n[order]
        if s.size > 1:
            ov = np.flatnonzero(s[1:] <= e[:-1])
            if ov.size:
                k = int(ov[0])
                a, b = sorted((int(order[k]), int(order[k + 1])))
                raise LayoutError(f"overlapping ranges: {_range(a, starts, ends, nids)} and "
                                  f"{_range(b, starts, ends, nids)}")
        return cls(s.copy(), e.copy(), n.astype(np.int16))

    @classmethod
    def stripe(cls, ram_ranges: Sequence[tuple[int, int]], nodes: Sequence[int],
               block_pfns: int) -> MemLayout:
        """The RFC test script's stripe: memory cut in ``block_pfns`` blocks
        (aligned to absolute pfns), given to ``nodes`` round-robin by block index.

        ram_ranges: ``(start_pfn, end_pfn_exclusive)`` of RAM; holes stay
        uncovered.  Refuses (LayoutError) a stripe whose ranges would not fit
        in memory (BUILD_BYTES_PER_RANGE bytes each while it is built).
        """
        block_pfns = check_int("stripe block_pfns", block_pfns, 1, 1 << 62, LayoutError)
        nd = _node_list(nodes)
        rr = _ram_ranges(ram_ranges)
        nblocks = sum((hi - 1) // block_pfns - lo // block_pfns + 1 for lo, hi in rr)
        check_bytes(f"stripe of {nblocks:,} ranges ({block_pfns} pfns a block)",
                    nblocks * BUILD_BYTES_PER_RANGE, LayoutError)
        parts_s, parts_e, parts_n = [], [], []
        for lo, hi in rr:
            b0, b1 = lo // block_pfns, (hi - 1) // block_pfns
            blk = np.arange(b0, b1 + 1, dtype=np.int64)
            s = np.maximum(blk * block_pfns, lo)
            e = np.minimum((blk + 1) * block_pfns, hi) - 1
            parts_s.append(s)
            parts_e.append(e)
            parts_n.append(nd[blk % nd.size])
        if not parts_s:
            raise LayoutError("stripe over no memory")
        return cls.from_arrays(np.concatenate(parts_s), np.concatenate(parts_e),
                               np.concatenate(parts_n))

    @classmethod
    def push(cls, ram_ranges: Sequence[tuple[int, int]], nid: int) -> MemLayout:
        """The RFC test script's push: every RAM range
        (``(start_pfn, end_pfn_exclusive)``) to ``nid``."""
        nid = check_int("push nid", nid, 0, NID_LIMIT, LayoutError, _NID_NOTE)
        return cls.from_ranges([(lo, hi - 1, nid) for lo, hi in _ram_ranges(ram_ranges)])

    @classmethod
    def from_nid_array(cls, page_nid: np.ndarray, present: np.ndarray) -> MemLayout:
        """Runs of equal nid over present pfns (the "current" layout):
        ``page_nid`` integers and ``present`` bools, one per pfn."""
        nid_all = check_int_array("page_nid", page_nid, LayoutError)
        pres = np.asarray(present)
        if pres.dtype != np.bool_ or pres.shape != nid_all.shape:
            raise LayoutError(f"present: expected {nid_all.size} bools (one per pfn of "
                              f"page_nid), got dtype {pres.dtype} shape {pres.shape}")
        idx = np.flatnonzero(pres)
        if idx.size == 0:
            raise LayoutError("no present pages")
        nid = nid_all[idx].astype(np.int64)
        brk = np.flatnonzero((np.diff(idx) != 1) | (np.diff(nid) != 0))
        first = np.concatenate(([0], brk + 1))
        last = np.concatenate((brk, [idx.size - 1]))
        return cls.from_arrays(idx[first], idx[last], nid[first])

    def with_seq(self, seq: int) -> MemLayout:
        """The same ranges carrying version ``seq`` (arrays are shared)."""
        ml = MemLayout.__new__(MemLayout)
        ml._set(self.starts, self.ends, self.nids, check_int("seq", seq, -1, 1 << 63,
                                                             LayoutError))
        ml._tbl = self._tbl
        return ml

    # ---- queries --------------------------------------------------------
    def __len__(self) -> int:
        return int(self.starts.size)

    def __iter__(self) -> Iterator[tuple[int, int, int]]:
        """``ml_for_each_range``: (pfn_start, pfn_end, nid) in pfn order."""
        yield from zip(self.starts.tolist(), self.ends.tolist(), self.nids.tolist(),
                           strict=True)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, MemLayout):
            return NotImplemented
        return (np.array_equal(self.starts, other.starts)
                and np.array_equal(self.ends, other.ends)
                and np.array_equal(self.nids, other.nids))

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"<MemLayout seq={self.seq} ranges={len(self)} nodes={self.node_ids()}>"

    @property
    def max_pfn(self) -> int:
        """Highest pfn covered (inclusive)."""
        return int(self.ends[-1])

    def node_ids(self) -> list[int]:
        return sorted(set(np.unique(self.nids).tolist()))

    @property
    def table(self) -> np.ndarray:
        if self._tbl is None:
            n = (self.max_pfn >> _lk.LOOKUP_SHIFT) + 1
            self._tbl = _lk.build_table(self.starts, self.ends, n)
        return self._tbl

    def pfn_to_nid(self, pfn: int) -> int:
        """``memlayout_pfn_to_nid_no_pageflags``: nid of ``pfn`` or NUMA_NO_NODE."""
        pfn = check_int("pfn", pfn, -(1 << 63), 1 << 63)
        out = self.lookup(np.array([pfn], dtype=np.int64))
        return int(out[0])

    def lookup(self, pfns: np.ndarray) -> np.ndarray:
        """Vectorised pfn -> nid (int16, -1 where uncovered), counting cache
        stats: ``pfns`` integers of any shape (ArgError for other dtypes)."""
        q = _pfn_array(pfns)
        out = np.empty(q.shape, np.int16)
        h, m = _lk.lookup_many(self.table, self.starts, self.ends, self.nids, q.ravel(),
                               out.reshape(-1), self.stats.cache)
        self.stats.hits += int(h)
        self.stats.misses += int(m)
        return out

    def lookup_nocount(self, pfns: np.ndarray) -> np.ndarray:
        """pfn -> nid without touching the statistics (model-internal reads)."""
        q = _pfn_array(pfns)
        out = np.empty(q.shape, np.int16)
        _lk.lookup_fast(self.table, self.starts, self.ends, self.nids, q.ravel(),
                        out.reshape(-1))
        return out

    def debugfs_names(self) -> list[tuple[str, int]]:
        """The RFC's debugfs range files: (``"%lX-%lX"`` name, nid)."""
        return [(f"{s:X}-{e:X}", n) for s, e, n in self]


def layout_diff(old: MemLayout, new: MemLayout) -> list[tuple[int, int, int, int]]:
    """The pfn ranges ``new`` maps to another node than ``old`` does: (start,
    end inclusive, old nid or -1 where ``old`` has no range, new nid),
    ascending, adjacent pieces with the same pair merged."""
    cuts = np.unique(np.concatenate([old.starts, old.ends + 1, new.starts, new.ends + 1]))
    if cuts.size < 2:
        return []
    lo, hi = cuts[:-1], cuts[1:] - 1
    a, b = old.lookup_nocount(lo).astype(np.int64), new.lookup_nocount(lo).astype(np.int64)
    keep = (b >= 0) & (a != b)
    out: list[tuple[int, int, int, int]] = []
    for s0, e0, x, y in zip(lo[keep].tolist(), hi[keep].tolist(), a[keep].tolist(),
                            b[keep].tolist(), strict=True):
        if out and out[-1][1] + 1 == s0 and out[-1][2:] == (x, y):
            out[-1] = (out[-1][0], e0, x, y)
        else:
            out.append((s0, e0, x, y))
    return out


def _range(k: int, s: np.ndarray, e: np.ndarray, n: np.ndarray) -> str:
    """Range ``k`` of the arrays for a message: ``range #k (start-end -> node n)``."""
    return f"range #{k} ({int(s[k]):#x}-{int(e[k]):#x} -> node {int(n[k])})"


def _check_values(starts: Any, ends: Any, nids: Any) -> tuple[np.ndarray, ...]:
    """The three arrays as int64 (nids still their own integer dtype), or
    LayoutError naming the first range with a bad value: non-integer
    dtypes, unequal lengths, no range, pfns outside [0, PFN_LIMIT), start >
    end, nids outside [0, NID_LIMIT)."""
    raw = [check_int_array(name, a, LayoutError)
           for name, a in (("starts", starts), ("ends", ends), ("nids", nids))]
    s, e, n = raw
    if not s.size == e.size == n.size:
        raise LayoutError(f"starts, ends and nids must have one length, got {s.size}, "
                          f"{e.size} and {n.size}")
    if s.size == 0:
        raise LayoutError("empty layout: at least one range is needed")
    for arr, what in ((s, "start pfn"), (e, "end pfn")):
        k = first_outside(arr, 0, PFN_LIMIT)
        if k >= 0:
            why = f"negative {what}" if arr[k] < 0 else f"{what} beyond PFN_LIMIT"
            raise LayoutError(f"{_range(k, s, e, n)}: {why} (pfns are in [0, {PFN_LIMIT:#x}))")
    k = first_outside(n, 0, NID_LIMIT)
    if k >= 0:
        raise LayoutError(f"{_range(k, s, e, n)}: nid {int(n[k])} outside "
                          f"[0, {NID_LIMIT}){_NID_NOTE}")
    s = np.ascontiguousarray(s, dtype=np.int64)
    e = np.ascontiguousarray(e, dtype=np.int64)
    bad = np.flatnonzero(s > e)
    if bad.size:
        raise LayoutError(f"{_range(int(bad[0]), s, e, n)}: start > end")
    return s, e, np.ascontiguousarray(n)


def _check_sorted(s: np.ndarray, e: np.ndarray, n: np.ndarray) -> None:
    """LayoutError unless the ranges are sorted by start and disjoint."""
    if s.size < 2:
        return
    bad = np.flatnonzero(s[1:] <= e[:-1])
    if bad.size:
        k = int(bad[0]) + 1
        if s[k] < s[k - 1]:
            raise LayoutError(f"{_range(k, s, e, n)} starts before {_range(k - 1, s, e, n)}: "
                              f"ranges must be sorted by start pfn (from_ranges sorts)")
        raise LayoutError(f"overlapping ranges: {_range(k - 1, s, e, n)} and "
                          f"{_range(k, s, e, n)}")


def _pfn_array(pfns: Any) -> np.ndarray:
    """Query pfns as int64 (no copy when they are), refusing non-integers."""
    q = np.asarray(pfns)
    if q.dtype == np.int64:
        return np.ascontiguousarray(q)
    if q.dtype.kind not in "iu":
        raise ArgError(f"pfns: expected integers, got an array of dtype {q.dtype}")
    if q.dtype == np.uint64 and q.size and int(q.max()) >= 1 << 63:
        raise ArgError(f"pfns: {int(q.max())} is beyond the int64 range")
    return np.ascontiguousarray(q, dtype=np.int64)


def _node_list(nodes: Any) -> np.ndarray:
    """A stripe's nodes as int64, or LayoutError naming the bad one."""
    try:
        vals = list(nodes)
    except TypeError:
        raise LayoutError(f"stripe nodes: expected a sequence of node ids, got "
                          f"{show(nodes)}") from None
    if not vals:
        raise LayoutError("stripe needs at least one node")
    for i, v in enumerate(vals):
        check_int(f"stripe nodes[{i}]", v, 0, NID_LIMIT, LayoutError, _NID_NOTE)
    return np.array([int(v) for v in vals], dtype=np.int64)


def _ram_ranges(ram_ranges: Any) -> list[tuple[int, int]]:
    """``(start_pfn, end_pfn_exclusive)`` pairs, the empty ones dropped, or
    LayoutError naming the bad one (not integers, end before start, pfns
    outside [0, PFN_LIMIT])."""
    out = []
    try:
        rows = list(ram_ranges)
    except TypeError:
        raise LayoutError(f"ram_ranges: expected (start_pfn, end_pfn) pairs, got "
                          f"{show(ram_ranges)}") from None
    for i, r in enumerate(rows):
        try:
            lo, hi = r
        except (TypeError, ValueError):
            raise LayoutError(f"ram_ranges[{i}]: expected (start_pfn, end_pfn), got "
                              f"{show(r)}") from None
        lo = check_int(f"ram_ranges[{i}] start", lo, 0, PFN_LIMIT + 1, LayoutError)
        hi = check_int(f"ram_ranges[{i}] end", hi, lo, PFN_LIMIT + 1, LayoutError,
                       " (end is exclusive, at least the start)")
        if hi > lo:
            out.append((lo, hi))
    return out


class LayoutBacklog:
    """Old layouts kept after a commit, like ``CONFIG_DNUMA_BACKLOG``:
    0 keeps none, N keeps the last N, -1 keeps all."""

    def __init__(self, size: int = 0) -> None:
        self.size = check_int("backlog size", size, -1, 1 << 31, LayoutError,
                              " (-1 keeps all, 0 none, N the last N)")
        self._q: deque[MemLayout] = deque(maxlen=None if size < 0 else size)

    def feed(self, ml: MemLayout) -> None:
        """``ml_backlog_feed``: keep ``ml`` if there is room (oldest dropped first)."""
        if self.size != 0:
            self._q.append(ml)

    def __iter__(self) -> Iterator[MemLayout]:
        return iter(self._q)

    def __len__(self) -> int:
        return len(self._q)


__all__ = ["NID_LIMIT", "NUMA_NO_NODE", "PFN_LIMIT", "LayoutBacklog", "LookupStats", "MemLayout",
           "layout_diff"]
