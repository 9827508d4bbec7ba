"""Booting a model from a real machine: the saved 24 GiB Linux 6.18 snapshot
in tests/data/host-snapshot-1 (and the running host where readable)."""

from __future__ import annotations

import json
import lzma
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from dnuma.cli import main
from dnuma.io.host import (
    KPF_BUDDY,
    KPF_COMPOUND_HEAD,
    KPF_COMPOUND_TAIL,
    KPF_NOPAGE,
    HostImportError,
    boot_from_host,
    parse_buddyinfo,
    parse_iomem,
    parse_pagetypeinfo_blocks,
    parse_zoneinfo,
)
from dnuma.mm.constants import (
    MIGRATE_MOVABLE,
    MIGRATE_RECLAIMABLE,
    MIGRATE_UNMOVABLE,
    PG_head,
    PG_hole,
    PG_reserved,
)
from dnuma.mm.validate import validate_all


@pytest.fixture(scope="module")
def snap(host_snapshot: Path):
    return boot_from_host(host_snapshot)


@pytest.fixture(scope="module")
def kpf(host_snapshot: Path) -> np.ndarray:
    with lzma.open(host_snapshot / "kpageflags.bin.xz") as f:
        return np.frombuffer(f.read(), dtype="<u8")


def _zone(res, name):
    return next(r for r in res.zones if r["zone"] == name)


def test_zones_match_zoneinfo(snap, host_snapshot):
    host = {z.name: z for z in parse_zoneinfo((host_snapshot / "zoneinfo").read_text(), "zoneinfo")}
    m = snap.machine
    for zi, name in enumerate(("DMA", "DMA32", "Normal")):
        z, mz = host[name], m.zone(0, zi)
        assert (mz.zone_start_pfn, mz.spanned_pages, mz.present_pages, mz.managed_pages) == \
            (z.start_pfn, z.spanned, z.present, z.managed), name
    # DMA32 spans the hole below 4 GiB, as the kernel's zone ranges do
    assert m.zone(0, 1).spanned_pages > m.zone(0, 1).present_pages
    assert [n for n in m.for_each_online_node()] == [0]
    assert m.nr_cpus == 2
    validate_all(m)


def test_pcp_high_is_taken_as_history(snap, host_snapshot):
    """Each pageset's pcp->high, moved by every allocation and free since
    boot, is imported as the kernel holds it (zoneinfo's ``high:``)."""
    zones = parse_zoneinfo((host_snapshot / "zoneinfo").read_text(), "zoneinfo")
    m = snap.machine
    seen = 0
    for z in zones:
        if z.name in ("DMA", "DMA32", "Normal"):
            gz = m.zone(z.nid, ("DMA", "DMA32", "Normal").index(z.name)).gz
            for cpu, high in z.pcp_high.items():
                assert m.S.pcp_high[cpu, gz] == high
                seen += 1
    assert seen >= 2 and "pcp high" in snap.notes[-1]
    z = parse_zoneinfo("Node 0, zone      DMA\n  pages free     3\n        spanned  9\n"
                       "        present  9\n        managed  9\n        high     7\n"
                       "  pagesets\n    cpu: 1\n              count: 5\n"
                       "              high:  42\n  start_pfn:           1\n", "zi")[0]
    assert z.pcp_high == {1: 42} and z.wmark == [-1, -1, 7, -1]


def test_watermarks_are_taken_without_the_boost(tmp_path):
    """zoneinfo's min/low/high/promo include watermark_boost (wmark_pages):
    the import takes _watermark[] as the kernel holds it, the boost left out."""
    from dnuma.oracle.record import open_recording

    snaps, _ = open_recording(Path(__file__).parent / "data/oracle/rfc.tar.xz", tmp_path)
    text = (snaps / "00-boot/proc/zoneinfo").read_text()
    boosted = text.replace("        boost    0\n        min      ", "        boost    5\n"
                           "        min      ", 1)
    (snaps / "00-boot/proc/zoneinfo").write_text(boosted)
    z = parse_zoneinfo(boosted, "zi")[0]
    assert z.boost == 5 and z.wmark[0] > 5
    m = boot_from_host(snaps / "00-boot", max_numnodes=2).machine
    assert m.S.wmark[m.zone(z.nid, 0).gz].tolist()[:4] == [w - 5 for w in z.wmark]


def test_free_pages_per_order(snap, kpf, host_snapshot):
    """DMA and DMA32 were quiet while the files were read: every order
    matches buddyinfo.  Normal drifted (the machine was running): the model
    holds exactly the free pages kpageflags shows, within 10% of buddyinfo."""
    bi = parse_buddyinfo((host_snapshot / "buddyinfo").read_text(), "buddyinfo")
    for name in ("DMA", "DMA32"):
        assert _zone(snap, name)["nr_free"]["model"] == bi[(0, name)]
    m = snap.machine
    normal = m.zone(0, 2)
    lo, hi = normal.zone_start_pfn, normal.zone_start_pfn + normal.spanned_pages
    buddy = int(((kpf[lo:hi] >> KPF_BUDDY) & 1).sum())
    assert normal.nr_free_pages == buddy
    host_free = sum(c << o for o, c in enumerate(bi[(0, "Normal")]))
    assert abs(normal.nr_free_pages - host_free) < 0.10 * normal.managed_pages
    # the free blocks are the maximal aligned pieces of each free run
    nr = normal.nr_free()
    assert sum(c << o for o, c in enumerate(nr)) == buddy


def test_allocated_state(snap, kpf):
    m = snap.machine
    S = m.S
    heads = np.flatnonzero(S.page_flags & PG_head)
    # compound pages keep their order: every order-9 allocated block is a THP head
    big = heads[S.page_order[heads] >= 9]
    assert big.size > 0
    assert np.all((kpf[big] >> KPF_COMPOUND_HEAD) & 1)
    assert np.all((kpf[big + 1] >> KPF_COMPOUND_TAIL) & 1)
    # conservation: free + allocated + reserved = present
    alloc = int((np.int64(1) << S.page_order[heads].astype(np.int64)).sum())
    resv = int(np.count_nonzero(S.page_flags & PG_reserved))
    assert m.nr_free_pages() + alloc + resv == m.total_present_pages
    assert m.total_present_pages - resv == int(S.zone_managed.sum())


def test_pageblock_types_match_pagetypeinfo(snap, host_snapshot):
    blocks = parse_pagetypeinfo_blocks((host_snapshot / "pagetypeinfo").read_text(), "pagetypeinfo")
    m = snap.machine
    pbo = m.profile.pageblock_order
    for zi, name in enumerate(("DMA", "DMA32", "Normal")):
        z = m.zone(0, zi)
        # the kernel steps from zone_start_pfn (1 for DMA here), not from 0
        pfn = np.arange(z.zone_start_pfn, z.zone_start_pfn + z.spanned_pages, 1 << pbo)
        pfn = pfn[((m.S.page_flags[pfn] & PG_hole) == 0) & (m.S.page_zone[pfn] == zi)]
        # the kernel does not count the blocks whose struct pages are not
        # initialised yet (deferred): Normal's trailing unmanaged pages
        if name == "Normal":
            pfn = pfn[pfn < z.zone_start_pfn + z.spanned_pages
                      - (z.present_pages - z.managed_pages)]
        inz = pfn >> pbo
        mt = m.S.pb_mt[inz]
        want = blocks[(0, name)]
        assert int((mt == MIGRATE_UNMOVABLE).sum()) == want["Unmovable"], name
        assert int((mt == MIGRATE_RECLAIMABLE).sum()) == want["Reclaimable"], name
        assert int((mt == MIGRATE_MOVABLE).sum()) == want["Movable"], name


def test_without_kpageflags_matches_free_counts(host_snapshot):
    res = boot_from_host(host_snapshot, kpageflags=False)
    bi = parse_buddyinfo((host_snapshot / "buddyinfo").read_text(), "buddyinfo")
    for zi, name in enumerate(("DMA", "DMA32", "Normal")):
        z = res.machine.zone(0, zi)
        assert z.nr_free_pages == sum(c << o for o, c in enumerate(bi[(0, name)]))
    assert any("buddyinfo" in n for n in res.notes)
    validate_all(res.machine)


def test_dnuma_experiment_on_real_state(tmp_path, host_snapshot):
    """Split the real machine into 4 nodes by stripe; the boot allocations are
    freed over time (an adopting task) and the machine converges."""
    sc = tmp_path / "split.toml"
    sc.write_text(f"""
duration = "3s"
sample = "500ms"
[machine]
from = "{host_snapshot}"
[[task]]
name = "boot-pages"
adopt = true
rate = 0
lifetime = "500ms"
[[task]]
rate = 2000
lifetime = "200ms"
[[event]]
at = "0.5s"
stripe = {{ nodes = [0, 1, 2, 3], block = 512 }}
""")
    from dnuma.cli.machine import scenario_machine
    from dnuma.sim.run import run_scenario
    from dnuma.sim.scenario import load_scenario

    s = load_scenario(sc)
    m = scenario_machine(s)
    res = run_scenario(s, machine=m, check=validate_all)
    step = res.steps[0]
    assert step.report.pages_marked > 10_000
    assert sorted(step.report.nodes_onlined) == [1, 2, 3]
    assert step.moved_on_free > 0.9 * step.report.pages_marked
    assert step.misplaced_left < 0.1 * step.report.pages_marked
    adopted = res.tasks.task_stats()[0]
    assert adopted["frees"] > 0


def test_cli_boot_json(capsys, host_snapshot):
    assert main(["boot", "--from", str(host_snapshot), "--json", "--check"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["kpageflags"] is True
    dma32 = next(z for z in out["zones"] if z["zone"] == "DMA32")
    assert dma32["free"]["host"] == dma32["free"]["model"]
    assert out["machine"]["cpus"] == 2


def test_cli_boot_table(capsys, host_snapshot):
    assert main(["boot", "--from", str(host_snapshot), "--no-kpageflags"]) == 0
    out = capsys.readouterr().out
    assert "Normal" in out and "note: kpageflags not used" in out


def _copy(tmp_path: Path, host_snapshot: Path) -> Path:
    d = tmp_path / "snap"
    shutil.copytree(host_snapshot, d, symlinks=True)
    return d


@pytest.mark.parametrize("name,text,msg", [
    ("iomem", "00000000-00000fff : Reserved\n", "no 'System RAM'"),
    ("iomem", "zz-1 : System RAM\n", "iomem:1: cannot parse"),
    ("zoneinfo", "Node 0, zone DMA\n  pages free     x1\n", "zoneinfo:2: pages free"),
    ("buddyinfo", "Node 0, zone DMA 1 2 x\n", "buddyinfo:1: node 0 DMA: cannot parse the count "
                                             "of order 2: 'x'"),
    ("buddyinfo", "Node 0, zone DMA 0 0 0 0 0 0 0 0 0 0 9\n",
     "buddyinfo:1: node 0 DMA: 9216 free pages .* more than the zone's managed 3840"),
    ("buddyinfo", "Node 0, zone DMA 0 0 0\n", "buddyinfo:1: node 0 DMA: 3 orders, expected 11"),
    ("buddyinfo", "Node 7, zone DMA 0 0 0 0 0 0 0 0 0 0 0\n", "buddyinfo:1: node 7 DMA: no such"),
    ("iomem", "00001000-0009ffff : System RAM\n00010000-0001ffff : System RAM\n",
     "iomem:2: System RAM pfns .* overlaps line 1"),
    ("iomem", "00001000-fffffffffffff : System RAM\n", "iomem:1: .*beyond the model's limit"),
    ("zoneinfo", "Node 0, zone DMA\n  pages free 1\n  spanned 2\n  present 3\n  managed 1\n"
                 "  start_pfn: 1\n", "zoneinfo:4: node 0 DMA: present 3 is more than spanned 2"),
    ("zoneinfo", "", "zoneinfo: no 'Node N, zone NAME' lines"),
    ("sys/devices/system/cpu/possible", "0-262143\n", "262143 is beyond NR_CPUS"),
    ("sys/devices/system/node/online", "0-99999\n", "99999 is beyond MAX_NUMNODES"),
])
def test_bad_files(tmp_path, name, text, msg, host_snapshot):
    d = _copy(tmp_path, host_snapshot)
    (d / name).chmod(0o644)
    (d / name).write_text(text)
    with pytest.raises(HostImportError, match=msg):
        boot_from_host(d)
    assert main(["boot", "--from", str(d)]) == 2


def test_missing_and_truncated(tmp_path, capsys, host_snapshot):
    d = _copy(tmp_path, host_snapshot)
    (d / "zoneinfo").unlink()
    with pytest.raises(HostImportError, match="no proc/zoneinfo or zoneinfo"):
        boot_from_host(d)
    d2 = tmp_path / "t"
    shutil.copytree(host_snapshot, d2)
    with lzma.open(d2 / "kpageflags.bin.xz") as f:
        raw = f.read()
    (d2 / "kpageflags.bin.xz").chmod(0o644)
    with lzma.open(d2 / "kpageflags.bin.xz", "wb") as g:
        g.write(raw[:1001])
    with pytest.raises(HostImportError, match="not a whole number of u64"):
        boot_from_host(d2)
    assert main(["boot", "--from", str(tmp_path / "nope")]) == 2
    assert "not a directory" in capsys.readouterr().err


def test_parsers(host_snapshot):
    assert parse_iomem("00001000-0009fbff : System RAM\n00100000-bfffffff : System RAM\n"
                       "  01000000-022090c7 : Kernel code\n", "x") == [(1, 0x9f),
                                                                       (0x100, 0xc0000)]
    z = parse_zoneinfo((host_snapshot / "zoneinfo").read_text(), "zoneinfo")
    assert [(x.name, x.start_pfn) for x in z if x.present] == [
        ("DMA", 1), ("DMA32", 4096), ("Normal", 1048576)]


@pytest.mark.skipif(not os.access("/proc/kpageflags", os.R_OK),
                    reason="/proc/kpageflags is readable by root only")
def test_live_host():
    """The running machine: zones exact, free pages within the drift of a
    machine that keeps running between the reads."""
    res = boot_from_host("/")
    validate_all(res.machine)
    for r in res.zones:
        for k in ("start_pfn", "spanned", "present"):
            assert r[k]["host"] == r[k]["model"], (r["zone"], k)
        assert abs(r["managed"]["host"] - r["managed"]["model"]) <= \
            0.02 * r["managed"]["host"] + 1024
        assert abs(r["free"]["host"] - r["free"]["model"]) <= 0.10 * r["managed"]["host"] + 1024


# ------------------------------------------------------------------ synthetic hosts
BUDDY = 1 << KPF_BUDDY


def make_host(d: Path, kpf: np.ndarray | None = None, nodes: int = 1,
              distance: list[str] | None = None, cpus: str = "0-3",
              block_size: str = "8000000") -> Path:
    """A 128 MiB host folder: RAM at pfns [1, 0x8000), node k owning the k-th
    share of it; every page free unless ``kpf`` says otherwise."""
    end = 0x8000
    (d / "sys/devices/system/cpu").mkdir(parents=True)
    (d / "sys/devices/system/cpu/possible").write_text(cpus + "\n")
    (d / "iomem").write_text(f"00001000-{end * 4096 - 1:08x} : System RAM\n")
    per = end // nodes
    zi = []
    for n in range(nodes):
        lo, hi = max(1, n * per), (n + 1) * per
        nd = d / f"sys/devices/system/node/node{n}"
        nd.mkdir(parents=True)
        (nd / "cpulist").write_text(f"{2 * n}-{2 * n + 1}\n")
        (nd / "distance").write_text((distance or [" ".join(
            "10" if a == n else "20" for a in range(nodes))])[n] + "\n")
        for name, zlo, zhi in (("DMA", 0, 4096), ("DMA32", 4096, 1 << 20)):
            a, b = max(lo, zlo), min(hi, zhi)
            if a < b:
                zi.append(f"Node {n}, zone {name:>8}\n  pages free     {b - a}\n"
                          f"        spanned  {b - a}\n        present  {b - a}\n"
                          f"        managed  {b - a}\n  start_pfn:           {a}\n")
    (d / "sys/devices/system/node/online").write_text(f"0-{nodes - 1}\n")
    (d / "sys/devices/system/node/possible").write_text(f"0-{nodes - 1}\n")
    (d / "zoneinfo").write_text("".join(zi))
    md = d / "sys/devices/system/memory"
    md.mkdir(parents=True)
    (md / "block_size_bytes").write_text(block_size + "\n")
    (md / "memory0").mkdir()
    (md / "memory0/node0").write_text("")
    if kpf is None:
        kpf = np.full(end, BUDDY, dtype="<u8")
        kpf[0] = 1 << 32  # reserved pfn 0 (not RAM anyway)
    (d / "kpageflags.bin").write_bytes(kpf.astype("<u8").tobytes())
    return d


def test_synthetic_two_nodes_with_distances(tmp_path):
    d = make_host(tmp_path, nodes=2, distance=["10 21", "21 10"])
    res = boot_from_host(d)
    m = res.machine
    validate_all(m)
    assert list(m.for_each_online_node()) == [0, 1]
    assert m.topo.node_distance(0, 1) == 21 and m.topo.node_distance(1, 0) == 21
    assert m.topo.cpumask_of_node(1) == [2, 3]
    assert m.NODE_DATA(1).node_present_pages == 0x4000
    assert m.NODE_DATA(0).node_present_pages == 0x4000 - 1
    assert m.nr_free_pages() == 0x7fff  # every page free, as kpageflags says


def test_compound_page_at_the_end_of_ram(tmp_path):
    kpf = np.full(0x8000, BUDDY, dtype="<u8")
    kpf[0x7ff8] = 1 << KPF_COMPOUND_HEAD
    kpf[0x7ff9:] = 1 << KPF_COMPOUND_TAIL
    m = boot_from_host(make_host(tmp_path, kpf)).machine
    assert m.S.page_flags[0x7ff8] & PG_head and m.S.page_order[0x7ff8] == 3
    assert m.nr_free_pages() == 0x7fff - 8
    validate_all(m)


def test_nopage_pfns_are_holes(tmp_path):
    kpf = np.full(0x8000, BUDDY, dtype="<u8")
    kpf[0x4000:0x4800] = 1 << KPF_NOPAGE
    res = boot_from_host(make_host(tmp_path, kpf))
    assert res.machine.total_present_pages == 0x7fff - 0x800
    assert np.all(res.machine.S.page_flags[0x4000:0x4800] & PG_hole)
    assert any("KPF_NOPAGE" in n for n in res.notes)
    validate_all(res.machine)


@pytest.mark.parametrize(("kw", "msg"), [
    ({"kpf": np.full(0x4000, BUDDY, dtype="<u8")}, "covers 0x4000 pfns, but RAM ends"),
    ({"nodes": 2, "distance": ["10 20 30", "20 10"]}, "3 distances for 2 online nodes"),
    ({"cpus": ""}, "possible: no CPUs"),
    ({"cpus": "3-1"}, "runs backwards"),
    ({"block_size": "3000000"}, "not a power of two"),
])
def test_synthetic_bad_input(tmp_path, kw, msg):
    with pytest.raises(HostImportError, match=msg):
        boot_from_host(make_host(tmp_path, **kw))
