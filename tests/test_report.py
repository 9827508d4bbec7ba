"""The report layer: metrics against the machine's own counts, memory-map
snapshots against layout lookups, the series files, figures and the HTML page."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from dnuma.mm.constants import MAX_NR_ZONES, PG_hole
from dnuma.mm.machine import Machine, MachineConfig
from dnuma.mm.memlayout import MemLayout
from dnuma.report import Metrics, plots, read_series, write_report
from dnuma.report.metrics import NODE_FIELDS, _bin_counts, _bin_mode, columns_by_node
from dnuma.report.plots import _bands

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def allocate(m: Machine, n: int, orders: tuple[int, ...] = (0, 1, 3)) -> list[tuple[int, int, int]]:
    """``n`` blocks, cycling orders and CPUs: [(pfn, order, cpu)]."""
    out = []
    for i in range(n):
        order, cpu = orders[i % len(orders)], i % m.nr_cpus
        pfn = m.alloc_pages(order=order, cpu=cpu)
        assert pfn is not None
        out.append((pfn, order, cpu))
    return out


def scenario(m: Machine) -> tuple[Machine, Metrics, list[tuple[int, int, int]]]:
    """On a fresh m16: allocate, stripe over nodes 0,1,2, free half: a machine
    with marked and misplaced pages, free pages moved and pages moved on free."""
    met = Metrics(m)
    blocks = allocate(m, 300)
    met.sample(1.0)
    rep = m.commit(MemLayout.stripe(m.ram_ranges(), [0, 1, 2], 256))
    met.layout_event(1.0, "stripe", rep)
    for pfn, order, cpu in blocks[::2]:
        m.free_pages(pfn, order, cpu)
    met.sample(2.0)
    return m, met, blocks[1::2]


def naive_node_figures(m: Machine) -> dict[int, dict[str, int]]:
    """Per-node allocated/misplaced/incoming/free by a plain loop over pages."""
    S = m.S
    out: dict[int, dict[str, int]] = {}

    def row(n: int) -> dict[str, int]:
        return out.setdefault(n, {"allocated": 0, "misplaced": 0, "incoming": 0, "free": 0})

    for pfn in np.flatnonzero(m.allocated_mask()).tolist():
        have = int(S.page_nid[pfn])
        want = m.effective.pfn_to_nid(pfn)
        row(have)["allocated"] += 1
        if want >= 0 and want != have:
            row(have)["misplaced"] += 1
            row(want)["incoming"] += 1
    for nid in m.for_each_online_node():
        nd = m.NODE_DATA(nid)
        row(nid)["free"] = sum(z.nr_free_pages + sum(z.pcp(c)["count"] for c in range(m.nr_cpus))
                               for z in nd.node_zones)
    return out


# ---------------------------------------------------------------- metrics
def test_sample_matches_machine_counts(m16: Machine) -> None:
    m, met, _live = scenario(m16)
    cols = met.columns()
    nodes = met.nodes
    assert nodes == [0, 1, 2]
    last = {f: {n: int(cols[f"node{n}_{f}"][-1]) for n in nodes} for f in NODE_FIELDS}
    assert m.misplaced_pages() > 0 and m.moved_on_free > 0
    assert sum(last["misplaced"].values()) == m.misplaced_pages() == cols["misplaced"][-1]
    assert sum(last["incoming"].values()) == m.misplaced_pages()
    assert sum(last["free"].values()) == m.nr_free_pages() == cols["free"][-1]
    assert sum(last["present"].values()) == m.total_present_pages == cols["present"][-1]
    assert sum(last["allocated"].values()) == int(m.allocated_mask().sum())
    assert sum(last["marked"].values()) == m.marked_pages() == cols["marked"][-1]
    assert cols["moved_on_free"][-1] == m.moved_on_free
    for n in nodes:
        nd = m.NODE_DATA(n)
        assert last["present"][n] == nd.node_present_pages
        assert last["managed"][n] == nd.node_managed_pages
        for k, v in m.numastat(n).items():
            assert last[k][n] == v
    ref = naive_node_figures(m)
    for n in nodes:
        for f in ("allocated", "misplaced", "incoming", "free"):
            assert last[f][n] == ref.get(n, {}).get(f, 0), (n, f)


def test_node_seen_later_is_zero_before(m16: Machine) -> None:
    _m, met, _live = scenario(m16)
    cols = met.columns()
    # node 2 came with the stripe (sample rows: boot, t=1 before, t=1 event, t=2)
    assert cols["t"].tolist() == [0.0, 1.0, 1.0, 2.0]
    assert cols["node2_present"].tolist()[:2] == [0, 0]
    assert cols["node2_present"][2] > 0
    assert cols["node2_online"].tolist() == [0, 0, 1, 1]
    assert set(columns_by_node(cols, "free")) == {0, 1, 2}


def test_moved_off_freelists_and_event_rows(m16: Machine) -> None:
    m = m16
    met = Metrics(m)
    blocks = allocate(m, 200)
    met.sample(0.5)
    rep1 = m.commit(MemLayout.stripe(m.ram_ranges(), [0, 1, 2], 256))
    met.layout_event(1.0, "stripe", rep1)
    for pfn, order, cpu in blocks[:100]:
        m.free_pages(pfn, order, cpu)
    met.sample(1.5)
    moved_a = m.moved_on_free
    rep2 = m.commit(MemLayout.push(m.ram_ranges(), 3))
    met.layout_event(2.0, "push", rep2)
    for pfn, order, cpu in blocks[100:150]:
        m.free_pages(pfn, order, cpu)
    met.finish(3.0)
    cols = met.columns()
    moved = sum(r.free_pages_moved + r.pcp_pages_moved for r in (rep1, rep2))
    assert cols["moved_off_freelists"][-1] == moved > 0
    rows = met.event_rows()
    assert [r["name"] for r in rows] == ["stripe", "push"]
    a, b = rows
    assert a["pages_marked"] == rep1.pages_marked and a["blocks_split"] == rep1.blocks_split
    assert a["free_pages_moved"] == rep1.free_pages_moved + rep1.pcp_pages_moved
    assert a["nodes_onlined"] == [2] and b["nodes_onlined"] == [3]
    assert a["moved_on_free_since_prev"] == 0
    assert a["moved_on_free_after"] == moved_a == b["moved_on_free_since_prev"]
    assert b["moved_on_free_after"] == m.moved_on_free - moved_a
    assert b["misplaced_left"] == m.misplaced_pages()
    assert [e.kind for e in met.events] == ["boot", "commit", "commit", "end"]
    s = met.to_summary()
    json.dumps(s, allow_nan=False)
    assert s["totals"]["misplaced"] == m.misplaced_pages()
    assert s["nodes"]["3"]["present"] == m.NODE_DATA(3).node_present_pages


def test_local_share(m16: Machine) -> None:
    m = m16
    met = Metrics(m)
    met.sample(1.0)
    assert math.isnan(met.columns()["local_share"][-1])  # no allocation since boot
    for _ in range(3):
        assert m.alloc_pages(0, cpu=0) is not None  # cpu 0 is on node 0: local
    assert m.alloc_pages(0, cpu=0, nid=1) is not None  # forced remote
    met.sample(2.0)
    assert met.columns()["local_share"][-1] == pytest.approx(0.75)
    for _ in range(4):
        assert m.alloc_pages(0, cpu=1, nid=0) is not None  # cpu 1 is on node 1: remote
    met.sample(3.0)
    met.sample(4.0)
    share = met.columns()["local_share"]
    assert share[-2] == 0.0 and math.isnan(share[-1])
    assert met.to_summary()["totals"]["local_share_overall"] == pytest.approx(3 / 8)


def test_sample_times(m16: Machine) -> None:
    m = m16
    met = Metrics(m, t0=0.0)
    met.sample(0.0)  # replaces the boot sample
    assert met.nsamples == 1
    met.sample(1.0)
    allocate(m, 5)
    met.sample(1.0)  # same instant: replaces
    assert met.nsamples == 2 and met.columns()["allocated"][-1] > 0
    rep = m.commit(MemLayout.stripe(m.ram_ranges(), [0, 1], 128))
    met.layout_event(1.0, "s", rep)  # kept beside the pre-commit sample
    met.sample(1.0)  # replaces nothing: the event's sample stays
    assert met.nsamples == 4
    with pytest.raises(ValueError, match="before"):
        met.sample(0.5)


def test_event_records_state_before_and_after_commit(m16: Machine) -> None:
    m = m16
    met = Metrics(m)
    allocate(m, 100)
    met.sample(0.5)
    allocate(m, 100)  # after the last sample: only the notifier sees these
    allocated = int(m.allocated_mask().sum())
    rep = m.commit(MemLayout.stripe(m.ram_ranges(), [0, 1, 2], 256))
    met.layout_event(1.0, "stripe", rep)
    cols = met.columns()
    assert cols["t"].tolist() == [0.0, 0.5, 1.0, 1.0]
    assert cols["seq"].tolist() == [0, 0, 0, 1]
    assert cols["allocated"][2] == allocated  # just before the commit, not at t=0.5
    assert cols["misplaced"][2] == 0 and cols["misplaced"][3] == m.misplaced_pages() > 0
    assert cols["marked"][3] == rep.pages_marked
    assert cols["moved_off_freelists"].tolist()[2:] == [0, rep.free_pages_moved
                                                        + rep.pcp_pages_moved]
    assert math.isnan(cols["local_share"][3])  # no time between the two rows
    assert met.events[-1].row == 3


def test_commits_announced_late_vetoed_or_unseen(m16: Machine) -> None:
    from dnuma.mm.errors import NotifyVeto

    m = m16
    met = Metrics(m)
    allocate(m, 50)
    r1 = m.commit(MemLayout.stripe(m.ram_ranges(), [0, 1], 128))
    r2 = m.commit(MemLayout.push(m.ram_ranges(), 1))
    met.layout_event(1.0, "a", r1)
    met.layout_event(1.0, "b", r2)
    cols = met.columns()
    assert cols["seq"].tolist() == [0, 0, 1, 1, 2]
    total = sum(r.free_pages_moved + r.pcp_pages_moved for r in (r1, r2))
    assert cols["moved_off_freelists"][-1] == total
    # a listener after ours vetoes: we hear "cancel" and keep nothing
    def veto(ev: object) -> bool:
        return False

    m.notifier.register(veto, priority=-(1 << 31))
    with pytest.raises(NotifyVeto):
        m.commit(MemLayout.push(m.ram_ranges(), 0))
    assert met._going is None and met._pending == []
    # a commit made while detached is counted from its report at layout_event
    met.detach()
    m.notifier.unregister(veto)
    assert len(m.notifier) == 0
    r3 = m.commit(MemLayout.push(m.ram_ranges(), 0))
    met.layout_event(2.0, "c", r3)
    assert met.columns()["moved_off_freelists"][-1] == total + r3.free_pages_moved \
        + r3.pcp_pages_moved
    assert met.columns()["seq"][-1] == 3


def test_sample_cost_is_small() -> None:
    m = Machine(MachineConfig.uniform(nodes=2, mem="128M", cpus=8))
    allocate(m, 4000, orders=(0, 2, 4))
    met = Metrics(m)
    m.commit(MemLayout.stripe(m.ram_ranges(), [0, 1, 2], 256))
    t0 = time.perf_counter()
    for k in range(10):
        met.sample(float(k + 1))
    assert (time.perf_counter() - t0) / 10 < 0.05  # a few ms is expected


# ---------------------------------------------------------------- snapshots
def test_bin_mode() -> None:
    codes = np.array([0, 0, 1, 1, 1, -1, -1, 2, -1, -1, -1, 3, 5])

    def mode(c: np.ndarray, b: int) -> list[int]:
        return _bin_mode(_bin_counts(c, b, 7)).tolist()  # nids 0-5, then holes
    assert mode(codes, 4) == [0, -1, -1, 5]
    assert mode(codes, 2) == [0, 1, 1, 2, -1, 3, 5]  # ties: lower nid
    assert mode(codes, 1) == codes.tolist()
    assert mode(np.array([-1, -1, 4, 4]), 2) == [-1, 4]
    assert _bin_counts(codes, 4, 7).tolist()[1] == [0, 1, 1, 0, 0, 0, 2]


def test_a_stripe_finer_than_a_bin_draws_mixed() -> None:
    """A bin holding two nodes half and half is drawn half in each colour
    (not in its majority's), a pure bin in one."""
    lut = np.array([[1.0, 0, 0], [0, 0, 1.0], [0.5, 0.5, 0.5]])  # node 0, node 1, hole
    img = _bands(np.array([[8, 8, 0], [16, 0, 0], [0, 4, 12]]), lut, height=16)
    assert img.shape == (16, 3, 3)
    assert (img[:8, 0] == lut[0]).all() and (img[8:, 0] == lut[1]).all()
    assert (img[:, 1] == lut[0]).all()
    assert (img[:4, 2] == lut[1]).all() and (img[4:, 2] == lut[2]).all()


def test_snapshot_unbinned_matches_lookup() -> None:
    cfg = MachineConfig(ram=((0, 2048, 0), (3072, 4096, 1)), cpu_to_node=(0, 1))
    m = Machine(cfg)
    allocate(m, 100)
    m.commit(MemLayout.stripe(m.ram_ranges(), [0, 1, 2], 256))
    met = Metrics(m, width=4096)
    s = met.events[0].snapshot
    assert s is not None and s.bin_pfns == 1 and s.pfn_end == 4096 and s.nbins == 4096
    pfns = np.arange(4096)
    assert np.array_equal(s.layout, m.effective.lookup_nocount(pfns))
    hole = (m.S.page_flags[:4096] & PG_hole) != 0
    assert hole[2048:3072].all() and not hole[:2048].any()
    assert np.array_equal(s.actual, np.where(hole, -1, m.S.page_nid[:4096]))
    assert (s.layout[2048:3072] == -1).all()
    assert int(s.pages.sum()) == m.total_present_pages
    assert int(s.off.sum()) == m.misplaced_pages() > 0


def test_snapshot_binned_stripe(m16: Machine) -> None:
    m = m16
    allocate(m, 100)
    met = Metrics(m, width=16)
    boot = met.events[0].snapshot
    assert boot is not None and boot.bin_pfns == 256
    assert boot.layout.tolist() == [0] * 8 + [1] * 8 == boot.actual.tolist()
    rep = m.commit(MemLayout.stripe(m.ram_ranges(), [0, 1, 2], 256))
    met.layout_event(1.0, "stripe", rep)
    s = met.events[-1].snapshot
    assert s is not None and s.seq == 1
    assert s.layout.tolist() == [i % 3 for i in range(16)]
    firsts = m.effective.lookup_nocount(s.bin_starts())
    assert np.array_equal(s.layout, firsts)
    assert int(s.off.sum()) == m.misplaced_pages()
    assert np.all((s.differ >= 0) & (s.differ <= 1))


# ---------------------------------------------------------------- files
def test_csv_round_trip(m16: Machine, tmp_path: Path) -> None:
    _m, met, _live = scenario(m16)
    path = met.write_series(tmp_path, fmt="csv")
    assert path.name == "metrics.csv"
    back = read_series(path)
    cols = met.columns()
    assert list(back) == list(cols)
    for k, v in cols.items():
        np.testing.assert_array_equal(back[k], v, err_msg=k)  # NaN == NaN here
        assert back[k].dtype.kind == v.dtype.kind, k
    head = path.read_text().splitlines()[0].split(",")
    assert head[0] == "t" and "node2_misplaced" in head and "local_share" in head


def test_parquet_round_trip(m16: Machine, tmp_path: Path) -> None:
    pytest.importorskip("pyarrow")
    _m, met, _live = scenario(m16)
    path = met.write_series(tmp_path)
    assert path.suffix == ".parquet"
    back = read_series(path)
    for k, v in met.columns().items():
        np.testing.assert_array_equal(back[k], v, err_msg=k)


def test_write_series_auto_without_pyarrow(m16: Machine, tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # import fails
    _m, met, _live = scenario(m16)
    assert met.write_series(tmp_path).name == "metrics.csv"


# ---------------------------------------------------------------- figures and html
def test_node_colors() -> None:
    cols = [plots.node_color(n) for n in range(64)]
    assert cols[:10] == list(plots.TAB10)
    assert len(set(cols)) == 64 and plots.HOLE_COLOR not in cols
    assert plots.node_color(-1) == plots.HOLE_COLOR
    assert all(len(c) == 7 and c.startswith("#") for c in cols)


def test_report_html(m16: Machine, tmp_path: Path) -> None:
    m, met, live = scenario(m16)
    rep = m.commit(MemLayout.push(m.ram_ranges(), 3))
    met.layout_event(2.5, "push <all>", rep)
    for pfn, order, cpu in live[::2]:
        m.free_pages(pfn, order, cpu)
    met.finish(3.0)
    figs = plots.all_figures(met)
    assert set(figs) == {"memory_map", "misplaced", "node_bars", "local_share"}
    for name, png in figs.items():
        assert png.startswith(PNG_MAGIC) and len(png) < 200_000, name
    path = write_report(tmp_path, "Test <run> & co", {"scenario": "unit", "seed": 7,
                                                      "steps": [{"a": 1, "b": "x<y"}]},
                        met, extra_tables={"Extra": [{"k": "v"}]}, figures=figs,
                        write_images=True)
    assert path == tmp_path / "report.html"
    text = path.read_text()
    assert text.count("data:image/png;base64,") == 4
    assert "http://" not in text and "https://" not in text
    assert "<script" not in text and "<link" not in text
    assert "Test &lt;run&gt; &amp; co" in text and "Test <run>" not in text
    assert "push &lt;all&gt;" in text and "x&lt;y" in text
    for head in ("free pages moved", "blocks split", "misplaced left", "commit ms"):
        assert head in text
    assert f"{rep.pages_marked:,}" in text
    assert "Nodes at the end of the run" in text and "Extra" in text
    assert (tmp_path / "memory_map.png").read_bytes() == figs["memory_map"]


def test_import_does_not_load_matplotlib() -> None:
    code = "import sys, dnuma.report; assert 'matplotlib' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_zone_layout_assumption(m16: Machine) -> None:
    # node_figures reshapes per-zone arrays as [node, zone]: gz = nid * MAX_NR_ZONES + zone
    m = m16
    assert m.S.zone_present.size == m.config.max_numnodes * MAX_NR_ZONES
