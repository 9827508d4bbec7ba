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

import numpy as np

from .._kernels import lookup as _lk
from .constants import MAX_MAX_NUMNODES, NUMA_NO_NODE
from .errors import LayoutError


@dataclass
class LookupStats:
    """The RFC's ``pfn-lookup-cache-hits`` / ``-misses`` counters."""

    hits: int = 0
    misses: int = 0
    cache: np.ndarray = field(default_factory=lambda: np.full(1, -1, np.int64))


class MemLayout:
    """pfn ranges (inclusive) -> nid.  Immutable; ``seq`` is set when committed.

    Build one with :meth:`from_ranges`, :meth:`stripe`, :meth:`push` or
    :meth:`current`; a machine installs it with ``Machine.commit``.
    """

    __slots__ = ("_tbl", "ends", "nids", "seq", "starts", "stats")

    def __init__(self, starts: np.ndarray, ends: np.ndarray, nids: np.ndarray,
                 seq: int = -1) -> None:
        self.starts = starts
        self.ends = ends
        self.nids = nids
        self.seq = seq
        self.stats = LookupStats()
        self._tbl: np.ndarray | None = None
        for a in (starts, ends, nids):
            a.setflags(write=False)

    # ---- builders -------------------------------------------------------
    @classmethod
    def from_ranges(cls, ranges: Iterable[tuple[int, int, int]]) -> MemLayout:
        """From ``(pfn_start, pfn_end_inclusive, nid)`` triples, in any order.

        Raises LayoutError naming the offending range for an empty layout,
        start > end, a negative pfn, a nid outside [0, 1024) or an overlap.
        """
        rows = [tuple(int(v) for v in r) for r in ranges]
        if not rows:
            raise LayoutError("empty layout: at least one range is needed")
        for i, r in enumerate(rows):
            if len(r) != 3:
                raise LayoutError(f"range #{i}: expected (start, end, nid), got {r!r}")
        arr = np.array(rows, dtype=np.int64).reshape(-1, 3)
        return cls.from_arrays(arr[:, 0], arr[:, 1], arr[:, 2])

    @classmethod
    def from_arrays(cls, starts: np.ndarray, ends: np.ndarray, nids: np.ndarray) -> MemLayout:
        """Vectorised :meth:`from_ranges` (same checks)."""
        starts = np.asarray(starts, dtype=np.int64)
        ends = np.asarray(ends, dtype=np.int64)
        nids = np.asarray(nids, dtype=np.int64)
        if starts.size == 0:
            raise LayoutError("empty layout: at least one range is needed")
        if not (starts.shape == ends.shape == nids.shape) or starts.ndim != 1:
            raise LayoutError("starts, ends and nids must be 1-d arrays of one length")
        _first_bad(starts > ends, "start > end", starts, ends, nids)
        _first_bad(starts < 0, "negative pfn", starts, ends, nids)
        _first_bad((nids < 0) | (nids >= MAX_MAX_NUMNODES),
                   f"nid outside [0, {MAX_MAX_NUMNODES})", starts, ends, nids)
        order = np.argsort(starts, kind="stable")
        s, e, n = starts[order], ends[order], nids[order]
        if s.size > 1:
            ov = np.flatnonzero(s[1:] <= e[:-1])
            if ov.size:
                k = int(ov[0])
                raise LayoutError(
                    f"overlapping ranges: {s[k]:#x}-{e[k]:#x} (node {n[k]}) and "
                    f"{s[k + 1]:#x}-{e[k + 1]:#x} (node {n[k + 1]})")
        return cls(s.copy(), e.copy(), n.astype(np.int16))

    @classmethod
    def stripe(cls, ram_ranges: Sequence[tuple[int, int]], nodes: Sequence[int],
               block_pfns: int) -> MemLayout:
        """The RFC test script's stripe: memory cut in ``block_pfns`` blocks
        (aligned to absolute pfns), given to ``nodes`` round-robin by block index.

        ram_ranges: ``(start_pfn, end_pfn_exclusive)`` of RAM; holes stay uncovered.
        """
        if block_pfns <= 0:
            raise LayoutError(f"stripe block must be > 0 pfns, got {block_pfns}")
        if not nodes:
            raise LayoutError("stripe needs at least one node")
        nd = np.asarray(list(nodes), dtype=np.int64)
        parts_s, parts_e, parts_n = [], [], []
        for lo, hi in ram_ranges:
            if hi <= lo:
                continue
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
        """The RFC test script's push: every RAM range to ``nid``."""
        rows = [(lo, hi - 1, nid) for lo, hi in ram_ranges if hi > lo]
        return cls.from_ranges(rows)

    @classmethod
    def from_nid_array(cls, page_nid: np.ndarray, present: np.ndarray) -> MemLayout:
        """Runs of equal nid over present pfns (the "current" layout)."""
        idx = np.flatnonzero(present)
        if idx.size == 0:
            raise LayoutError("no present pages")
        nid = page_nid[idx].astype(np.int64)
        brk = np.flatnonzero((np.diff(idx) != 1) | (np.diff(nid) != 0))
        first = np.concatenate(([0], brk + 1))
        last = np.concatenate((brk, [idx.size - 1]))
        return cls.from_arrays(idx[first], idx[last], nid[first])

    def with_seq(self, seq: int) -> MemLayout:
        """The same ranges carrying version ``seq`` (arrays are shared)."""
        ml = MemLayout(self.starts, self.ends, self.nids, seq)
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
        out = self.lookup(np.array([pfn], dtype=np.int64))
        return int(out[0])

    def lookup(self, pfns: np.ndarray) -> np.ndarray:
        """Vectorised pfn -> nid (int16, -1 where uncovered), counting cache stats."""
        pfns = np.ascontiguousarray(pfns, dtype=np.int64)
        out = np.empty(pfns.shape, np.int16)
        h, m = _lk.lookup_many(self.table, self.starts, self.ends, self.nids, pfns, out,
                               self.stats.cache)
        self.stats.hits += int(h)
        self.stats.misses += int(m)
        return out

    def lookup_nocount(self, pfns: np.ndarray) -> np.ndarray:
        """pfn -> nid without touching the statistics (model-internal reads)."""
        pfns = np.ascontiguousarray(pfns, dtype=np.int64)
        out = np.empty(pfns.shape, np.int16)
        _lk.lookup_fast(self.table, self.starts, self.ends, self.nids, pfns, out)
        return out

    def debugfs_names(self) -> list[tuple[str, int]]:
        """The RFC's debugfs range files: (``"%lX-%lX"`` name, nid)."""
        return [(f"{s:X}-{e:X}", n) for s, e, n in self]


def _first_bad(mask: np.ndarray, rule: str, s: np.ndarray, e: np.ndarray,
               n: np.ndarray) -> None:
    bad = np.flatnonzero(mask)
    if bad.size:
        k = int(bad[0])
        raise LayoutError(f"range #{k} ({s[k]:#x}-{e[k]:#x} -> node {n[k]}): {rule}")


class LayoutBacklog:
    """Old layouts kept after a commit, like ``CONFIG_DNUMA_BACKLOG``:
    0 keeps none, N keeps the last N, -1 keeps all."""

    def __init__(self, size: int = 0) -> None:
        if size < -1:
            raise LayoutError(f"backlog size must be -1, 0 or N > 0, got {size}")
        self.size = size
        self._q: deque[MemLayout] = deque(maxlen=None if size < 0 else size)

    def feed(self, ml: MemLayout) -> None:
        """``ml_backlog_feed``: keep ``ml`` if there is room (oldest dropped first)."""
        if self.size != 0:
            self._q.append(ml)

    def __iter__(self) -> Iterator[MemLayout]:
        return iter(self._q)

    def __len__(self) -> int:
        return len(self._q)


__all__ = ["NUMA_NO_NODE", "LayoutBacklog", "LookupStats", "MemLayout"]
