"""Time series of a run: per-node page counts, misplaced and marked pages,
numastat, and a downsampled physical memory map at every layout change.

The run driver makes one :class:`Metrics` per machine and calls, in virtual
seconds that never go backwards:

* ``Metrics(m, t0=0.0)`` once, before the first layout change: it samples the
  machine and snapshots its memory map as event ``"boot"`` (its ``seq``);
* ``sample(t)`` at each sampling instant;
* ``layout_event(t, name, report)`` right after each commit: it records the
  state just before and just after the commit (measured through the machine's
  memlayout notifier, which ``Metrics`` joins) as two samples at ``t``, and
  snapshots the map, so no extra ``sample(t)`` is needed;
* ``finish(t)`` once at the end: a last sample and an ``"end"`` snapshot
  (``write_report`` calls ``finish()`` at the last sample's time if the driver
  did not).

Every count is in pages of the machine's page size.  A sample is vectorised
over pages (``np.bincount`` over ``page_nid``), O(allocated pages + nodes).
"""

from __future__ import annotations

import csv
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..mm.constants import MAX_NR_ZONES, N_ONLINE, NR_VM_NUMA_EVENT_ITEMS, NUMASTAT_NAMES
from ..mm.constants import PG_head as _PG_HEAD
from ..mm.constants import PG_hole as _PG_HOLE
from ..mm.dnuma import CommitReport
from ..mm.machine import Machine, mark_heads
from ..mm.notifier import MEMLAYOUT_CANCEL, MEMLAYOUT_DONE, MEMLAYOUT_GOING, MemlayoutEvent

#: per-node figures of a sample (pages; ``online`` is 0/1), numastat last
NODE_FIELDS: tuple[str, ...] = (
    "present",  # node_present_pages
    "managed",  # node_managed_pages
    "free",  # buddy + per-cpu list pages on the node
    "allocated",  # pages of allocated blocks whose page_nid is the node
    "misplaced",  # allocated pages on the node that the effective layout puts elsewhere
    "incoming",  # allocated pages elsewhere that the effective layout gives this node
    "marked",  # pages of marked blocks on the node (they move when freed)
    "online",  # N_ONLINE
    *NUMASTAT_NAMES,  # cumulative, as /sys/devices/system/node/nodeN/numastat
)
#: machine-wide integer figures of a sample
TOTAL_FIELDS: tuple[str, ...] = (
    "seq", "nodes_online", "present", "free", "allocated", "misplaced", "marked",
    "moved_on_free", "moved_off_freelists", "local_node", "other_node",
)
_NF = len(NODE_FIELDS)
_MAX_PENDING = 64  # commits measured by the notifier and not yet announced
_Rec = tuple[np.ndarray, np.ndarray, np.ndarray]  # machine-wide, node ids, node figures
_NUMA0 = NODE_FIELDS.index(NUMASTAT_NAMES[0])
_LOCAL = NUMASTAT_NAMES.index("local_node")
_OTHER = NUMASTAT_NAMES.index("other_node")


@dataclass(frozen=True)
class MapSnapshot:
    """The physical memory map at one instant, in ``nbins`` bins of
    ``bin_pfns`` pfns covering pfns [0, pfn_end).

    ``layout_counts[i, k]`` / ``actual_counts[i, k]``: pfns of bin i on node
    k in the effective layout / in ``page_nid``, the last column counting
    holes and uncovered pfns (nr_pages, int32; a bin finer than a stripe is
    mixed, and drawn so).  ``layout[i]`` / ``actual[i]``: the node most of
    them have (ties go to the lowest nid; a bin that is mostly holes or
    uncovered pfns is -1); ``pages[i]``: present pfns of the bin; ``off[i]``:
    those whose page_nid is not the layout's node (pages that will move when
    freed).
    """

    t: float
    name: str
    seq: int
    pfn_end: int
    bin_pfns: int
    layout: np.ndarray
    actual: np.ndarray
    pages: np.ndarray
    off: np.ndarray
    layout_counts: np.ndarray
    actual_counts: np.ndarray

    @property
    def nbins(self) -> int:
        return int(self.layout.size)

    @property
    def differ(self) -> np.ndarray:
        """Share (0..1) of each bin's present pfns that are off their layout node."""
        return np.divide(self.off, self.pages, out=np.zeros(self.nbins),
                         where=self.pages > 0)

    def bin_starts(self) -> np.ndarray:
        """First pfn of each bin."""
        return np.arange(self.nbins, dtype=np.int64) * self.bin_pfns


@dataclass
class LayoutMark:
    """A layout change (or the boot / end marker) at virtual time ``t`` (seconds).

    row: index of the sample taken right after it; report: the commit's
    ``CommitReport.as_dict()`` (None for boot/end or a non-commit event).
    """

    t: float
    name: str
    seq: int
    row: int
    report: dict[str, Any] | None
    snapshot: MapSnapshot | None = field(repr=False, default=None)
    kind: str = "commit"  # "boot", "commit" or "end"


class Metrics:
    """Samples a :class:`Machine` over virtual time (see the module docstring).

    m: the machine; t0: virtual seconds of the boot sample and snapshot;
    width: at most this many bins in each memory-map snapshot.
    """

    def __init__(self, m: Machine, t0: float = 0.0, width: int = 1024) -> None:
        if width < 1:
            raise ValueError(f"width must be >= 1, got {width}")
        self.m = m
        self.width = int(width)
        self.events: list[LayoutMark] = []
        self.moved_off_freelists = 0
        self._t: list[float] = []
        self._tot: list[np.ndarray] = []
        self._node_ids: list[np.ndarray] = []
        self._node_vals: list[np.ndarray] = []
        self._seen = np.zeros(m.config.max_numnodes, dtype=bool)
        self._going: _Rec | None = None
        self._pending: list[tuple[_Rec | None, _Rec, CommitReport]] = []
        self._listener = self._on_layout  # one bound method: unregister compares identity
        m.notifier.register(self._listener, name="report.metrics", priority=-(1 << 30))
        # numastat at construction: the base of the first local_share
        ns = m.S.numa_stat
        self._base_local = int(ns[:, _LOCAL].sum())
        self._base_other = int(ns[:, _OTHER].sum())
        self._sample(float(t0), replace=False)
        self.events.append(LayoutMark(float(t0), "boot", m.seq, 0, None,
                                       self.snapshot(float(t0), "boot"), kind="boot"))

    # ------------------------------------------------------------------ sampling
    @property
    def nsamples(self) -> int:
        return len(self._t)

    @property
    def nodes(self) -> list[int]:
        """Every node seen so far (online, or holding present or allocated pages)."""
        return np.flatnonzero(self._seen).tolist()

    def sample(self, t: float) -> None:
        """Record the machine at virtual time ``t`` (seconds).  A sample at the
        same ``t`` as the previous one replaces it, unless an event came between."""
        self._sample(float(t), replace=True)

    def node_figures(self) -> np.ndarray:
        """[max_numnodes, len(NODE_FIELDS)] int64: the per-node figures now."""
        m = self.m
        S = m.S
        nn = m.config.max_numnodes
        out = np.zeros((nn, _NF), dtype=np.int64)
        ix = NODE_FIELDS.index
        out[:, ix("present")] = S.zone_present.reshape(nn, MAX_NR_ZONES).sum(axis=1)
        out[:, ix("managed")] = S.zone_managed.reshape(nn, MAX_NR_ZONES).sum(axis=1)
        free = S.zone_free + S.pcp_count.sum(axis=0)
        out[:, ix("free")] = free.reshape(nn, MAX_NR_ZONES).sum(axis=1)
        # allocated blocks: every page of a block shares its head's page_nid
        heads = np.flatnonzero(S.page_flags & _PG_HEAD)
        sizes = np.left_shift(1, S.page_order[heads].astype(np.int64))
        hnid = S.page_nid[heads].astype(np.int64)
        out[:, ix("allocated")] = np.bincount(hnid, weights=sizes, minlength=nn)[:nn]
        if heads.size:
            # blocks may straddle layout ranges: look every allocated pfn up
            starts = np.repeat(heads, sizes)
            offs = np.arange(starts.size, dtype=np.int64) - np.repeat(np.cumsum(sizes) - sizes,
                                                                      sizes)
            pfns = starts + offs
            want = m.effective.lookup_nocount(pfns).astype(np.int64)
            have = np.repeat(hnid, sizes)
            bad = (want >= 0) & (want != have)
            out[:, ix("misplaced")] = np.bincount(have[bad], minlength=nn)[:nn]
            out[:, ix("incoming")] = np.bincount(want[bad], minlength=nn)[:nn]
        marked = mark_heads(S)
        if marked.size:
            msz = np.left_shift(1, S.page_order[marked].astype(np.int64))
            out[:, ix("marked")] = np.bincount(S.page_nid[marked].astype(np.int64),
                                               weights=msz, minlength=nn)[:nn]
        out[:, ix("online")] = m.topo.node_states[N_ONLINE]
        numa = S.numa_stat.reshape(nn, MAX_NR_ZONES, NR_VM_NUMA_EVENT_ITEMS).sum(axis=1)
        out[:, _NUMA0:_NUMA0 + NR_VM_NUMA_EVENT_ITEMS] = numa
        return out

    def _measure(self) -> _Rec:
        """The machine now: (machine-wide figures, seen nodes, their figures)."""
        m = self.m
        nf = self.node_figures()
        ix = NODE_FIELDS.index
        self._seen |= (nf[:, ix("online")] > 0) | (nf[:, ix("present")] > 0) \
            | (nf[:, ix("allocated")] > 0)
        ids = np.flatnonzero(self._seen)
        tot = np.array([
            m.seq, int(nf[:, ix("online")].sum()), int(nf[:, ix("present")].sum()),
            int(nf[:, ix("free")].sum()), int(nf[:, ix("allocated")].sum()),
            int(nf[:, ix("misplaced")].sum()), int(nf[:, ix("marked")].sum()),
            m.moved_on_free, self.moved_off_freelists,
            int(nf[:, _NUMA0 + _LOCAL].sum()), int(nf[:, _NUMA0 + _OTHER].sum()),
        ], dtype=np.int64)
        return tot, ids, nf[ids]

    def _sample(self, t: float, replace: bool, rec: _Rec | None = None) -> None:
        if not math.isfinite(t):
            raise ValueError(f"sample time must be finite, got {t}")
        if self._t and t < self._t[-1]:
            raise ValueError(f"sample time {t} s is before the previous one ({self._t[-1]} s)")
        tot, ids, vals = rec if rec is not None else self._measure()
        last_is_event = (bool(self.events) and self.events[-1].kind == "commit"
                         and self.events[-1].row == len(self._t) - 1)
        if replace and self._t and t == self._t[-1] and not last_is_event:
            self._t.pop()
            self._tot.pop()
            self._node_ids.pop()
            self._node_vals.pop()
        self._t.append(t)
        self._tot.append(tot)
        self._node_ids.append(ids)
        self._node_vals.append(vals)

    # ------------------------------------------------------------------ events
    def _on_layout(self, ev: MemlayoutEvent) -> None:
        """Memlayout notifier: measure just before ("going") and just after
        ("done") every commit, for :meth:`layout_event` to record at its ``t``."""
        if ev.stage == MEMLAYOUT_GOING:
            self._going = self._measure()
        elif ev.stage == MEMLAYOUT_CANCEL:
            self._going = None
        elif ev.stage == MEMLAYOUT_DONE and isinstance(ev.report, CommitReport):
            rep = ev.report
            self.moved_off_freelists += rep.free_pages_moved + rep.pcp_pages_moved
            self._pending.append((self._going, self._measure(), rep))
            del self._pending[:-_MAX_PENDING]
            self._going = None

    def detach(self) -> None:
        """Stop listening to the machine's commits (layout_event then samples
        only after the fact)."""
        self.m.notifier.unregister(self._listener)

    def layout_event(self, t: float, name: str, report: CommitReport | None) -> None:
        """Record a layout change made at ``t`` (seconds); call it after the commit.

        For a commit ``report`` the machine's notifier already measured the
        state just before and just after it: both become samples at ``t`` (the
        jump is vertical in the series).  Otherwise the machine is sampled now.
        Then the memory map is snapshotted; the event is ``events[-1]``.
        """
        t = float(t)
        rep = report.as_dict() if report is not None else None
        k = next((i for i, p in enumerate(self._pending) if p[2] is report), -1) \
            if report is not None else -1
        if k >= 0:
            before, after, _r = self._pending[k]
            del self._pending[:k + 1]
            if before is not None:
                self._sample(t, replace=True, rec=before)
            self._sample(t, replace=False, rec=after)
        else:
            if report is not None:  # a commit the notifier did not see
                self.moved_off_freelists += report.free_pages_moved + report.pcp_pages_moved
            self._sample(t, replace=False)
        self.events.append(LayoutMark(t, str(name), self.m.seq, self.nsamples - 1, rep,
                                       self.snapshot(t, str(name))))

    def finish(self, t: float | None = None) -> LayoutMark:
        """The end of the run: a last sample and an ``"end"`` snapshot at ``t``
        (default: the last sample's time).  Once only: later calls return the
        same event."""
        if self.finished:
            return self.events[-1]
        t = self._t[-1] if t is None else float(t)
        self.sample(t)
        ev = LayoutMark(t, "end", self.m.seq, self.nsamples - 1, None,
                         self.snapshot(t, "end"), kind="end")
        self.events.append(ev)
        return ev

    @property
    def finished(self) -> bool:
        return bool(self.events) and self.events[-1].kind == "end"

    def snapshot(self, t: float, name: str) -> MapSnapshot:
        """The memory map now (effective layout and page_nid), at most ``width``
        bins over pfns [0, end of RAM).  Cost O(pfns), in chunks of ~4 M pfns."""
        m = self.m
        end = m.ram_ranges()[-1][1]
        bin_pfns = max(1, -(-end // self.width))
        nbins = -(-end // bin_pfns)
        per_chunk = max(1, (1 << 22) // bin_pfns) * bin_pfns
        k = m.topo.nr_node_ids + 1  # the nodes, then holes / uncovered
        lay_n = np.empty((nbins, k), dtype=np.int32)
        act_n = np.empty((nbins, k), dtype=np.int32)
        pages = np.empty(nbins, dtype=np.int64)
        off = np.empty(nbins, dtype=np.int64)
        flags, page_nid = m.S.page_flags, m.S.page_nid
        for lo in range(0, end, per_chunk):
            hi = min(end, lo + per_chunk)
            b0 = lo // bin_pfns
            nb = -(-(hi - lo) // bin_pfns)
            want = m.effective.lookup_nocount(np.arange(lo, hi, dtype=np.int64))
            present = (flags[lo:hi] & _PG_HOLE) == 0
            have = np.where(present, page_nid[lo:hi], -1).astype(np.int16)
            lay_n[b0:b0 + nb] = _bin_counts(want, bin_pfns, k)
            act_n[b0:b0 + nb] = _bin_counts(have, bin_pfns, k)
            binix = np.arange(hi - lo, dtype=np.int64) // bin_pfns
            pages[b0:b0 + nb] = np.bincount(binix, weights=present, minlength=nb)
            wrong = present & (want >= 0) & (want != have)
            off[b0:b0 + nb] = np.bincount(binix, weights=wrong, minlength=nb)
        return MapSnapshot(float(t), str(name), m.seq, end, bin_pfns, _bin_mode(lay_n),
                           _bin_mode(act_n), pages, off, lay_n, act_n)

    # ------------------------------------------------------------------ output
    def columns(self) -> dict[str, np.ndarray]:
        """The series as flat columns, one row per sample: ``t`` (s, float),
        the machine-wide figures, ``local_share`` (float, NaN when no allocation
        was made since the previous sample), then ``node{N}_{field}`` for every
        node seen (0 before it was first seen)."""
        ns = self.nsamples
        cols: dict[str, np.ndarray] = {"t": np.asarray(self._t, dtype=np.float64)}
        tot = np.vstack(self._tot) if ns else np.zeros((0, len(TOTAL_FIELDS)), np.int64)
        for k, f in enumerate(TOTAL_FIELDS):
            cols[f] = tot[:, k].copy()
        loc = np.diff(tot[:, TOTAL_FIELDS.index("local_node")], prepend=self._base_local)
        oth = np.diff(tot[:, TOTAL_FIELDS.index("other_node")], prepend=self._base_other)
        n = (loc + oth).astype(np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):
            cols["local_share"] = np.where(n > 0, loc / np.where(n > 0, n, 1.0), np.nan)
        nodes = self.nodes
        pos = np.full(self._seen.size, -1, dtype=np.int64)
        pos[nodes] = np.arange(len(nodes))
        per = np.zeros((ns, len(nodes), _NF), dtype=np.int64)
        for i, (ids, vals) in enumerate(zip(self._node_ids, self._node_vals, strict=True)):
            per[i, pos[ids]] = vals
        for j, nid in enumerate(nodes):
            for k, f in enumerate(NODE_FIELDS):
                cols[f"node{nid}_{f}"] = per[:, j, k].copy()
        return cols

    def write_series(self, out_dir: str | Path, fmt: str | None = None) -> Path:
        """Write the columns to ``out_dir/metrics.parquet`` when pyarrow imports
        (``fmt=None`` or ``"parquet"``), else ``out_dir/metrics.csv``.  Returns the path."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        cols = self.columns()
        if fmt in (None, "parquet"):
            try:
                import pyarrow as pa
                import pyarrow.parquet as pq
            except ImportError:
                if fmt == "parquet":
                    raise
            else:
                path = out / "metrics.parquet"
                pq.write_table(pa.table(cols), path)
                return path
        elif fmt != "csv":
            raise ValueError(f"fmt must be None, 'parquet' or 'csv', got {fmt!r}")
        path = out / "metrics.csv"
        names = list(cols)
        with path.open("w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(names)
            lists = [cols[k].tolist() for k in names]
            w.writerows(zip(*lists, strict=True))
        return path

    # ------------------------------------------------------------------ summary
    def event_rows(self) -> list[dict[str, Any]]:
        """One row per commit event: what the commit did and what followed.

        misplaced_after: right after the commit; misplaced_left: at the last
        sample before the next event (or the end); moved_on_free_since_prev:
        pages redirected on free between the previous event and this one;
        moved_on_free_after: between this event and the next (or the end).
        """
        tot = np.vstack(self._tot)
        mis = tot[:, TOTAL_FIELDS.index("misplaced")]
        mvd = tot[:, TOTAL_FIELDS.index("moved_on_free")]
        mrk = tot[:, TOTAL_FIELDS.index("marked")]
        rows: list[dict[str, Any]] = []
        evs = self.events
        last_row = self.nsamples - 1
        for k, ev in enumerate(evs):
            if ev.kind != "commit":
                continue
            prev_row = evs[k - 1].row if k else 0
            nxt = next((e for e in evs[k + 1:] if e.kind == "commit"), None)
            end_row = nxt.row - 1 if nxt is not None else last_row
            end_row = max(end_row, ev.row)
            r = ev.report or {}
            rows.append({
                "t": ev.t, "name": ev.name, "seq": ev.seq,
                "commit_ms": round(float(r.get("seconds", 0.0)) * 1e3, 3) if r else None,
                "ranges": r.get("ranges"),
                "pages_marked": r.get("pages_marked"),
                "free_pages_moved": (r["free_pages_moved"] + r["pcp_pages_moved"]) if r else None,
                "blocks_split": r.get("blocks_split"),
                "nodes_onlined": list(r.get("nodes_onlined", [])),
                "nodes_offlined": list(r.get("nodes_offlined", [])),
                "misplaced_after": int(mis[ev.row]),
                "marked_after": int(mrk[ev.row]),
                "misplaced_left": int(mis[end_row]),
                "t_left": float(self._t[end_row]),
                "moved_on_free_since_prev": int(mvd[ev.row] - mvd[prev_row]),
                "moved_on_free_after": int(mvd[end_row] - mvd[ev.row]),
            })
        return rows

    def final_nodes(self, row: int = -1) -> dict[int, dict[str, int]]:
        """Per-node figures at sample ``row`` (default the last): nid -> field -> value."""
        ids, vals = self._node_ids[row], self._node_vals[row]
        return {int(n): {f: int(v) for f, v in zip(NODE_FIELDS, vals[i], strict=True)}
                for i, n in enumerate(ids.tolist())}

    def to_summary(self) -> dict[str, Any]:
        """JSON-able summary: machine, totals and nodes at the last sample, events
        (with their commit reports) and the per-event rows."""
        m = self.m
        cols = self.columns()
        share = cols["local_share"]
        tot: dict[str, Any] = {f: int(cols[f][-1]) for f in TOTAL_FIELDS}
        loc = tot["local_node"] - self._base_local
        oth = tot["other_node"] - self._base_other
        tot["local_share_overall"] = _json_float(loc / (loc + oth)) if loc + oth else None
        return {
            "machine": {"max_pfn": m.max_pfn, "ram_pfn_end": m.ram_ranges()[-1][1],
                        "page_size": m.profile.page_size, "profile": m.profile.name,
                        "cpus": m.nr_cpus, "max_numnodes": m.config.max_numnodes},
            "samples": self.nsamples,
            "t_start": float(cols["t"][0]), "t_end": float(cols["t"][-1]),
            "totals": tot,
            "local_share_last": _json_float(float(share[-1])),
            "nodes": {str(k): v for k, v in self.final_nodes().items()},
            "events": [{"t": e.t, "name": e.name, "kind": e.kind, "seq": e.seq,
                        "report": e.report} for e in self.events],
            "event_rows": self.event_rows(),
        }


def _json_float(x: float) -> float | None:
    return None if not math.isfinite(x) else float(x)


def _bin_counts(codes: np.ndarray, bin_pfns: int, k: int) -> np.ndarray:
    """Per run of ``bin_pfns`` entries of ``codes`` (a nid in [0, k - 1), or
    -1 for a hole), how many hold each nid, the hole count last: (bins, k)."""
    codes = np.asarray(codes, dtype=np.int64)
    n = codes.size
    nb = -(-n // bin_pfns)
    c = np.where(codes < 0, k - 1, codes)
    key = (np.arange(n, dtype=np.int64) // bin_pfns) * k + c
    return np.bincount(key, minlength=nb * k).reshape(nb, k).astype(np.int32)


def _bin_mode(counts: np.ndarray) -> np.ndarray:
    """The most frequent code of each bin of ``_bin_counts``: a nid, or -1
    when holes win.  Ties: the lowest nid, and any nid before -1."""
    mode = counts.argmax(axis=1)
    return np.where(mode == counts.shape[1] - 1, -1, mode).astype(np.int16)


def read_series(path: str | Path) -> dict[str, np.ndarray]:
    """Read a file written by :meth:`Metrics.write_series` back into columns
    (int64 where every value is an integer, else float64)."""
    p = Path(path)
    if p.suffix == ".parquet":
        import pyarrow.parquet as pq

        table = pq.read_table(p)
        return {k: np.asarray(v) for k, v in table.to_pydict().items()}
    with p.open(newline="") as fh:
        rows = list(csv.reader(fh))
    head, body = rows[0], rows[1:]
    out: dict[str, np.ndarray] = {}
    for j, name in enumerate(head):
        vals = [r[j] for r in body]
        try:
            out[name] = np.array([int(v) for v in vals], dtype=np.int64)
        except ValueError:
            out[name] = np.array([float(v) for v in vals], dtype=np.float64)
    return out


def columns_by_node(cols: Mapping[str, np.ndarray], field_name: str) -> dict[int, np.ndarray]:
    """``node{N}_{field}`` columns as nid -> array."""
    out: dict[int, np.ndarray] = {}
    suffix = f"_{field_name}"
    for k, v in cols.items():
        if k.startswith("node") and k.endswith(suffix):
            mid = k[4:-len(suffix)]
            if mid.isdigit():
                out[int(mid)] = v
    return dict(sorted(out.items()))
