"""/proc and node files rendered from the model: their numbers against the
model's own state, their line shapes against a real Linux host's files
(tests/data/host-snapshot-1, Linux 6.18; the 6.12 differences are listed
where they show)."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from dnuma.io import procfs
from dnuma.io.procfs import (
    KZONE_NAMES,
    NODE_FILES,
    PROC_FILES,
    buddyinfo,
    cpuinfo,
    meminfo,
    node_meminfo,
    node_numastat,
    node_vmstat,
    pagetypeinfo,
    vmstat,
    zoneinfo,
)
from dnuma.mm.constants import (
    GFP_HIGHUSER_MOVABLE,
    GFP_KERNEL,
    MAX_NR_ZONES,
    MIGRATE_CMA,
    MIGRATE_TYPES,
    MIGRATETYPE_NAMES,
    N_MEMORY,
    NUMASTAT_NAMES,
    PPC64,
    PG_hole,
)
from dnuma.mm.machine import Machine, boot
from dnuma.mm.memlayout import MemLayout
from dnuma.mm.page_alloc import MemPolicy

TYPES = [t for t in range(MIGRATE_TYPES) if t != MIGRATE_CMA]  # no CONFIG_CMA
ZONEINFO_NUMA = ("numa_hit", "numa_miss", "numa_foreign", "numa_interleave", "numa_local",
                 "numa_other")  # the zoneinfo/vmstat names of NUMASTAT_NAMES


def _busy(m: Machine, seed: int = 1) -> list[tuple[int, int, int]]:
    """Allocate a mix of orders and migratetypes from every CPU (some on the
    other node, some interleaved), free every third block; return the rest."""
    rng = np.random.default_rng(seed)
    nodes = list(m.for_each_node_state(N_MEMORY))
    held: list[tuple[int, int, int]] = []
    for i in range(400):
        cpu = int(rng.integers(m.nr_cpus))
        order = int(rng.choice([0, 0, 0, 1, 2, 3, 5, 9]))
        gfp = GFP_HIGHUSER_MOVABLE if i % 3 else GFP_KERNEL
        if i % 7 == 0:
            pfn = m.alloc_pages(order, cpu=cpu, nid=nodes[i % len(nodes)], gfp=gfp)
        elif i % 11 == 0:
            pfn = m.alloc_pages(order, cpu=cpu, gfp=gfp, policy=MemPolicy("interleave", nodes))
        else:
            pfn = m.alloc_pages(order, cpu=cpu, gfp=gfp)
        if pfn is not None:
            held.append((pfn, order, cpu))
    for pfn, order, cpu in held[::3]:
        m.free_pages(pfn, order, cpu)
    return [h for k, h in enumerate(held) if k % 3]


@pytest.fixture(scope="module")
def small() -> Machine:
    """128 MiB, 2 nodes, 4 CPUs: DMA and DMA32 only."""
    m = boot(nodes=2, mem="128M", cpus=4)
    _busy(m)
    return m


@pytest.fixture(scope="module")
def big() -> Machine:
    """6 GiB, 2 nodes, 4 CPUs: node 0 has DMA+DMA32, node 1 DMA32+Normal."""
    m = boot(nodes=2, mem="6G", cpus=4)
    _busy(m, seed=2)
    return m


@pytest.fixture(scope="module")
def striped() -> Machine:
    """128 MiB striped in 256-pfn blocks over nodes 0, 1 and a new node 2."""
    m = boot(nodes=2, mem="128M", cpus=4)
    held = _busy(m, seed=3)
    m.commit(MemLayout.stripe(m.ram_ranges(), [0, 1, 2], 256))
    for pfn, order, cpu in held[::2]:
        m.free_pages(pfn, order, cpu)  # some marked pages go to their new node
    _busy(m, seed=4)
    return m


@pytest.fixture(scope="session")
def node0(host_snapshot: Path) -> Path:
    """The host's node 0 directory in sysfs."""
    return host_snapshot / "sys" / "devices" / "system" / "node" / "node0"


MACHINES = ["small", "big", "striped"]


@pytest.fixture(params=MACHINES)
def mach(request: pytest.FixtureRequest) -> Machine:
    m: Machine = request.getfixturevalue(request.param)
    return m


def populated(m: Machine) -> Iterator[tuple[int, int]]:
    for nid in m.for_each_online_node():
        for z in range(MAX_NR_ZONES):
            if m.zone(nid, z).populated():
                yield nid, z


# ---------------------------------------------------------------- parsers


def parse_buddyinfo(text: str) -> dict[tuple[int, str], list[int]]:
    out = {}
    for line in text.splitlines():
        mt = re.fullmatch(r"Node (\d+), zone +(\w+) ((?: +\d+ )+)", line)
        assert mt, line
        out[(int(mt[1]), mt[2])] = [int(v) for v in mt[3].split()]
    return out


def parse_pagetypeinfo(text: str) -> tuple[dict[tuple[int, str, str], list[int]],
                                           dict[tuple[int, str], dict[str, int]]]:
    free: dict[tuple[int, str, str], list[int]] = {}
    blocks: dict[tuple[int, str], dict[str, int]] = {}
    names: list[str] = []
    for line in text.splitlines():
        if mt := re.fullmatch(r"Node +(\d+), zone +(\w+), type +(\w+) ((?:>?\s*\d+ )+)", line):
            free[(int(mt[1]), mt[2], mt[3])] = [
                int(v.lstrip(">")) for v in mt[4].split()]
        elif line.startswith("Number of blocks type"):
            names = line[len("Number of blocks type"):].split()
        elif mt := re.fullmatch(r"Node (\d+), zone +(\w+) ((?: +\d+ )+)", line):
            blocks[(int(mt[1]), mt[2])] = dict(zip(names, map(int, mt[3].split()), strict=True))
    return free, blocks


def parse_zoneinfo(text: str) -> dict[tuple[int, str], dict]:
    """Each zone's fields; ``per_node`` (the node stats, if printed here),
    ``protection`` (list) and ``pagesets`` (one dict per CPU)."""
    zones: dict[tuple[int, str], dict] = {}
    cur: dict = {}
    where = "zone"
    for line in text.splitlines():
        if mt := re.fullmatch(r"Node (\d+), zone +(\w+)", line):
            cur = {"pagesets": []}
            zones[(int(mt[1]), mt[2])] = cur
            where = "zone"
        elif line == "  per-node stats":
            cur["per_node"] = {}
            where = "node"
        elif mt := re.fullmatch(r"  pages free +(\d+)", line):
            cur["pages free"] = int(mt[1])
            where = "zone"
        elif mt := re.fullmatch(r" +protection: \((.*)\)", line):
            cur["protection"] = [int(v) for v in mt[1].split(", ")]
        elif line == "  pagesets":
            where = "pcp"
        elif mt := re.fullmatch(r"    cpu: (\d+)", line):
            cur["pagesets"].append({"cpu": int(mt[1])})
        elif mt := re.fullmatch(r" +(count|high|batch): +(\d+)", line):
            cur["pagesets"][-1][mt[1]] = int(mt[2])
        elif mt := re.fullmatch(r"  vm stats threshold: (\d+)", line):
            cur["pagesets"][-1]["threshold"] = int(mt[1])
        elif mt := re.fullmatch(r" +([a-z_]+):? +(\d+)", line):
            (cur["per_node"] if where == "node" else cur)[mt[1]] = int(mt[2])
        else:
            raise AssertionError(f"unparsed zoneinfo line {line!r}")
    return zones


def parse_kv(text: str) -> list[tuple[str, int]]:
    return [(k, int(v)) for k, v in (line.split(" ") for line in text.splitlines())]


def parse_node_meminfo(text: str) -> dict[str, int]:
    out = {}
    for line in text.splitlines():
        mt = re.fullmatch(r"Node \d+ (\S+): +(\d+)(?: kB)?", line)
        assert mt, line
        out[mt[1]] = int(mt[2])
    return out


# ---------------------------------------------------------------- numbers


def test_buddyinfo_is_nr_free_per_zone_and_order(mach: Machine) -> None:
    got = parse_buddyinfo(buddyinfo(mach))
    want = {(nid, KZONE_NAMES[z]): mach.zone(nid, z).nr_free() for nid, z in populated(mach)}
    assert got == want
    assert len(next(iter(got.values()))) == mach.profile.nr_page_orders
    pages = sum(c << o for cols in got.values() for o, c in enumerate(cols))
    assert pages == int(mach.S.zone_free.sum())  # the buddy lists hold NR_FREE_PAGES


def test_pagetypeinfo_free_counts(mach: Machine) -> None:
    free, _ = parse_pagetypeinfo(pagetypeinfo(mach))
    bud = parse_buddyinfo(buddyinfo(mach))
    assert {(n, z) for n, z, _t in free} == set(bud)
    for (nid, zname), cols in bud.items():
        z = KZONE_NAMES.index(zname)
        by_type = mach.zone(nid, z).nr_free_by_type()
        for t in TYPES:
            assert free[(nid, zname, MIGRATETYPE_NAMES[t])] == by_type[:, t].tolist()
        summed = np.sum([free[(nid, zname, MIGRATETYPE_NAMES[t])] for t in TYPES], axis=0)
        assert summed.tolist() == cols


def naive_block_counts(m: Machine, nid: int, z: int) -> dict[str, int]:
    """pagetypeinfo_showblockcount_print(), one pageblock at a time."""
    zone = m.zone(nid, z)
    S = m.S
    counts = dict.fromkeys((MIGRATETYPE_NAMES[t] for t in TYPES), 0)
    step = m.profile.pageblock_nr_pages
    for pfn in range(zone.zone_start_pfn, zone.zone_start_pfn + zone.spanned_pages, step):
        if S.page_flags[pfn] & PG_hole or S.page_nid[pfn] != nid or S.page_zone[pfn] != z:
            continue
        counts[MIGRATETYPE_NAMES[int(S.pb_mt[pfn >> m.profile.pageblock_order])]] += 1
    return counts


def test_pagetypeinfo_block_counts(mach: Machine) -> None:
    _, blocks = parse_pagetypeinfo(pagetypeinfo(mach))
    assert set(blocks) == {(nid, KZONE_NAMES[z]) for nid, z in populated(mach)}
    for (nid, zname), got in blocks.items():
        assert got == naive_block_counts(mach, nid, KZONE_NAMES.index(zname))


def test_pagetypeinfo_block_counts_cover_an_unstriped_zone(big: Machine) -> None:
    _, blocks = parse_pagetypeinfo(pagetypeinfo(big))
    for nid, z in populated(big):
        zone = big.zone(nid, z)
        assert sum(blocks[(nid, KZONE_NAMES[z])].values()) == \
            -(-zone.spanned_pages // big.profile.pageblock_nr_pages)


def test_pagetypeinfo_caps_counts_at_100000(small: Machine) -> None:
    gz = 1 * MAX_NR_ZONES + 1  # node 1 DMA32
    small.S.free_cnt[gz, 0, 1] += 100000
    try:
        free, _ = parse_pagetypeinfo(pagetypeinfo(small))
        text = pagetypeinfo(small)
    finally:
        small.S.free_cnt[gz, 0, 1] -= 100000
    row = next(line for line in text.splitlines()
               if line.startswith("Node    1, zone    DMA32, type      Movable"))
    assert row.split()[6] == ">100000"
    assert free[(1, "DMA32", "Movable")][0] == 100000


def test_node_meminfo_in_kb(mach: Machine) -> None:
    for nid in mach.for_each_online_node():
        info = parse_node_meminfo(node_meminfo(mach, nid))
        pg = mach.NODE_DATA(nid)
        kb = mach.profile.page_size // 1024
        assert info["MemTotal"] == pg.node_managed_pages * kb
        assert info["MemFree"] == pg.nr_free_pages * kb
        assert info["MemUsed"] == info["MemTotal"] - info["MemFree"]
        assert info["HugePages_Total"] == 0


def test_meminfo_totals_and_available(mach: Machine) -> None:
    info = {k.rstrip(":"): int(v) for k, v, *_ in
            (line.split() for line in meminfo(mach).splitlines())}
    S = mach.S
    assert info["MemTotal"] == int(S.zone_managed.sum()) * 4
    assert info["MemFree"] == int(S.zone_free.sum()) * 4  # pcp pages are not free here
    assert info["MemFree"] == sum(parse_node_meminfo(node_meminfo(mach, n))["MemFree"]
                                  for n in mach.for_each_online_node())
    # si_mem_available() with no page cache or slab: free less totalreserve_pages
    reserve = 0
    for nid in mach.for_each_online_node():
        for z in mach.NODE_DATA(nid).node_zones:
            reserve += min(max(z.lowmem_reserve) + z.watermarks["high"], z.managed_pages)
    assert info["MemAvailable"] == max(0, int(S.zone_free.sum()) - reserve) * 4
    assert info["CommitLimit"] == info["MemTotal"] // 2
    direct = info["DirectMap4k"] + info["DirectMap2M"] + info["DirectMap1G"]
    assert direct == sum(e - s for s, e in mach.ram_ranges()) * 4


def test_zoneinfo_round_trip(mach: Machine) -> None:
    zi = parse_zoneinfo(zoneinfo(mach))
    online = list(mach.for_each_online_node())
    assert list(zi) == [(n, name) for n in online for name in KZONE_NAMES]
    for nid in online:
        firsts = [z for z in range(MAX_NR_ZONES) if mach.zone(nid, z).populated()]
        with_stats = [name for (n, name), f in zi.items() if n == nid and "per_node" in f]
        assert with_stats == ([KZONE_NAMES[firsts[0]]] if firsts else [])
        for z in range(MAX_NR_ZONES):
            zone = mach.zone(nid, z)
            f = zi[(nid, KZONE_NAMES[z])]
            assert f["pages free"] == zone.nr_free_pages
            for w in ("min", "low", "high", "promo"):
                assert f[w] == zone.watermarks[w]
            assert (f["spanned"], f["present"], f["managed"], f["boost"], f["cma"]) == (
                zone.spanned_pages, zone.present_pages, zone.managed_pages, 0, 0)
            assert f["protection"][:MAX_NR_ZONES] == zone.lowmem_reserve
            assert len(f["protection"]) == len(KZONE_NAMES)
            if not zone.populated():
                assert "start_pfn" not in f and not f["pagesets"]
                continue
            assert f["start_pfn"] == zone.zone_start_pfn
            assert f["nr_free_pages"] == zone.nr_free_pages
            ev = zone.numa_events()
            assert [f[k] for k in ZONEINFO_NUMA] == [ev[k] for k in NUMASTAT_NAMES]
            assert [p["cpu"] for p in f["pagesets"]] == list(range(mach.nr_cpus))
            thr = min(125, 2 * mach.nr_cpus.bit_length()
                      * (1 + (zone.managed_pages >> 15).bit_length()))
            for p in f["pagesets"]:
                pcp = zone.pcp(p["cpu"])
                assert (p["count"], p["high"], p["batch"], p["threshold"]) == (
                    pcp["count"], pcp["high"], pcp["batch"], thr)
        dev = zi[(nid, "Device")]
        assert dev["managed"] == 0 and dev["protection"] == [0] * len(KZONE_NAMES)


def test_zoneinfo_device_column_repeats_movable(big: Machine) -> None:
    zi = parse_zoneinfo(zoneinfo(big))
    prot = zi[(0, "DMA")]["protection"]
    assert prot[1] > 0 and prot[-1] == prot[-2]


def test_numastat_and_vmstat_numa_items(mach: Machine) -> None:
    total = np.zeros(6, dtype=np.int64)
    for nid in mach.for_each_online_node():
        got = dict(parse_kv(node_numastat(mach, nid)))
        assert list(got) == list(NUMASTAT_NAMES)
        assert got == mach.numastat(nid)
        nv = dict(parse_kv(node_vmstat(mach, nid)))
        assert [nv[k] for k in ZONEINFO_NUMA] == [got[k] for k in NUMASTAT_NAMES]
        assert nv["nr_free_pages"] == mach.NODE_DATA(nid).nr_free_pages
        total += [got[k] for k in NUMASTAT_NAMES]
    vm = dict(parse_kv(vmstat(mach)))
    assert [vm[k] for k in ZONEINFO_NUMA] == total.tolist()
    assert vm["nr_free_pages"] == int(mach.S.zone_free.sum())
    assert total[0] + total[1] > 0  # the workload allocated
    assert vm["nr_unstable"] == 0 and list(vm)[-1] == "nr_unstable"


def test_numastat_counts_misses_and_remote_cpus() -> None:
    m = boot(nodes=2, mem="128M", cpus=4)
    for _ in range(5):
        m.alloc_pages(0, cpu=0, nid=1)  # preferred node 1 from a CPU on node 0
    stat = [dict(parse_kv(node_numastat(m, n))) for n in (0, 1)]
    assert stat[1]["numa_hit"] == 5 and stat[1]["other_node"] == 5
    assert stat[1]["local_node"] == 0 and stat[0]["numa_hit"] == 0


def test_vmstat_dirty_thresholds_and_memmap(big: Machine) -> None:
    vm = dict(parse_kv(vmstat(big)))
    free = int(big.S.zone_free.sum())
    reserve = sum(min(max(z.lowmem_reserve) + z.watermarks["high"], z.managed_pages)
                  for nid in big.for_each_online_node()
                  for z in big.NODE_DATA(nid).node_zones)
    avail = free - min(free, reserve) + 1
    assert vm["nr_dirty_threshold"] == 819 * avail // 4096
    assert vm["nr_dirty_background_threshold"] == 409 * avail // 4096
    # 6 GiB = 48 sections of 128 MiB, 512 memmap pages each
    assert vm["nr_memmap_boot_pages"] == 48 * 512


def test_stripe_brings_node_2_everywhere(striped: Machine) -> None:
    m = striped
    assert 2 in m.for_each_online_node()
    assert any(nid == 2 for nid, _ in parse_buddyinfo(buddyinfo(m)))
    free, blocks = parse_pagetypeinfo(pagetypeinfo(m))
    assert any(k[0] == 2 for k in free) and any(k[0] == 2 for k in blocks)
    zi = parse_zoneinfo(zoneinfo(m))
    assert (2, "DMA32") in zi and "per_node" in zi[(2, "DMA")]
    info = parse_node_meminfo(node_meminfo(m, 2))
    assert info["MemTotal"] == m.NODE_DATA(2).node_managed_pages * 4 > 0
    glob = int(meminfo(m).split()[1])
    assert glob == sum(parse_node_meminfo(node_meminfo(m, n))["MemTotal"]
                       for n in m.for_each_online_node())
    # node 0's zones now span pfns of the other nodes: the block counts skip them
    _, b = parse_pagetypeinfo(pagetypeinfo(m))
    assert sum(b[(0, "DMA32")].values()) < -(-m.zone(0, 1).spanned_pages // 512)


def test_memoryless_online_node() -> None:
    """A node with CPUs and no memory: in zoneinfo (all zones empty, no
    per-node stats), not in buddyinfo or pagetypeinfo."""
    from dnuma.mm.machine import MachineConfig

    m = boot(config=MachineConfig(ram=((0, 16384, 0), (16384, 32768, 1)),
                                  cpu_to_node=(0, 1, 2, 2)))
    assert 2 in m.for_each_online_node()
    zi = parse_zoneinfo(zoneinfo(m))
    assert [k for k in zi if k[0] == 2] == [(2, n) for n in KZONE_NAMES]
    assert not any("per_node" in f for k, f in zi.items() if k[0] == 2)
    assert not any(n == 2 for n, _ in parse_buddyinfo(buddyinfo(m)))
    assert "Node    2," not in pagetypeinfo(m)
    assert parse_node_meminfo(node_meminfo(m, 2))["MemTotal"] == 0


def test_cpuinfo_one_package_per_node(big: Machine) -> None:
    stanzas = cpuinfo(big).split("\n\n")
    assert stanzas[-1] == ""
    stanzas = stanzas[:-1]
    assert len(stanzas) == big.nr_cpus
    for cpu, st in enumerate(stanzas):
        f = dict(re.split(r"\t+: ", line, maxsplit=1) if "\t" in line
                 else (line.rstrip(":"), "") for line in st.splitlines())
        nid = int(big.topo.cpu_to_node[cpu])
        cores = big.topo.cpumask_of_node(nid)
        assert f["processor"].strip() == str(cpu)
        assert int(f["physical id"]) == nid
        assert int(f["siblings"]) == int(f["cpu cores"]) == len(cores)
        assert int(f["core id"]) == cores.index(cpu)
        assert "pdpe1gb" in f["flags"].split()  # DirectMap1G is printed


def test_ppc64_page_size() -> None:
    m = boot(nodes=2, mem="1G", cpus=2, profile=PPC64)
    info = parse_node_meminfo(node_meminfo(m, 0))
    assert info["MemTotal"] == m.NODE_DATA(0).node_managed_pages * 64
    assert pagetypeinfo(m).startswith("Page block order: 8\nPages per block:  256\n")
    assert "DirectMap" not in meminfo(m)


def test_tables() -> None:
    assert set(PROC_FILES) == {"cpuinfo", "meminfo", "buddyinfo", "pagetypeinfo",
                               "zoneinfo", "vmstat"}
    assert set(NODE_FILES) == {"meminfo", "numastat", "vmstat"}
    m = boot(nodes=1, mem="64M", cpus=1)
    for fn in PROC_FILES.values():
        assert fn(m).endswith("\n")
    for nfn in NODE_FILES.values():
        assert nfn(m, 0).endswith("\n")


def test_layering() -> None:
    """io.procfs imports numpy, the standard library and dnuma.mm/_kernels only."""
    tree = ast.parse(Path(procfs.__file__).read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level:
            assert (node.module or "").split(".")[0] in ("mm", "_kernels"), node.module
        elif isinstance(node, ast.ImportFrom):
            assert node.module in ("__future__", "collections.abc", "typing"), node.module
        elif isinstance(node, ast.Import):
            assert [a.name for a in node.names] == ["numpy"]


# ---------------------------------------------------------------- shapes vs a real host
ZONE_WORDS = set(KZONE_NAMES)
TYPE_WORDS = set(MIGRATETYPE_NAMES)


def col_shape(line: str) -> tuple[tuple[str, int], ...]:
    """A line's column layout: each token's class and anchor column.

    Numbers are right-aligned by the kernel (``%6lu``, ``%8lu``...), so they
    anchor at their end; so do zone names (``%8s``) and migratetype names
    (``%12s``).  ``Label:`` tokens and other words anchor at their start.
    """
    out = []
    for mt in re.finditer(r"\S+", line):
        tok = mt.group()
        comma = "," if tok.endswith(",") else ""
        core = tok.rstrip(",")
        if re.fullmatch(r">?\d+", core):
            out.append(("N" + comma, mt.end()))
        elif core in ZONE_WORDS:
            out.append(("Z" + comma, mt.end()))
        elif core in TYPE_WORDS:
            out.append(("T", mt.end()))
        elif tok.endswith(":"):
            out.append(("L", mt.start()))
        else:
            out.append((tok, mt.start()))
    return tuple(out)


def flat_shape(line: str) -> str:
    """For unpadded ``%lu`` fields: digit runs collapse to N, padding kept."""
    return re.sub(r"\d+", "N", line)


def real(path: Path) -> list[str]:
    return path.read_text().splitlines()


def labels(lines: list[str], prefix: str = "") -> list[str]:
    return [line[len(prefix):].split(":")[0] for line in lines]


def test_shape_buddyinfo(big: Machine, host_snapshot: Path) -> None:
    want = {col_shape(line) for line in real(host_snapshot / "buddyinfo")}
    for line in buddyinfo(big).splitlines():
        assert col_shape(line) in want, line


def test_shape_pagetypeinfo(big: Machine, host_snapshot: Path) -> None:
    host = real(host_snapshot / "pagetypeinfo")
    want = {col_shape(line) for line in host}
    ours = pagetypeinfo(big).splitlines()
    for line in ours:
        assert col_shape(line) in want, line
    # the same header and block, line for line (the host has no CONFIG_CMA either)
    assert ours[:4] == host[:4]
    assert "Number of blocks type     Unmovable      Movable  Reclaimable   HighAtomic" \
        "      Isolate " in ours


def test_shape_node_meminfo(big: Machine, node0: Path) -> None:
    host = real(node0 / "meminfo")
    want = {col_shape(line) for line in host}
    ours = node_meminfo(big, 0).splitlines()
    for line in ours:
        assert col_shape(line) in want, line
        if "HugePages" not in line:  # label padded to 16 columns, value to 8
            assert len(line) == len("Node 0 ") + 16 + 8 + 3, line
    ol, hl = labels(ours, "Node 0 "), labels(host, "Node 0 ")
    # 6.12 with CONFIG_UNACCEPTED_MEMORY (Debian) has Unaccepted; the host kernel does not
    assert [x for x in ol if x != "Unaccepted"] == hl


def test_shape_meminfo(big: Machine, host_snapshot: Path) -> None:
    host = real(host_snapshot / "meminfo")
    want = {col_shape(line) for line in host}
    ours = meminfo(big).splitlines()
    for line in ours:
        assert col_shape(line) in want, line
    ol, hl = labels(ours), labels(host)
    # HardwareCorrupted (CONFIG_MEMORY_FAILURE) and Unaccepted are in Debian's 6.12
    # config, not the host's; Balloon is new after 6.12
    assert [x for x in ol if x not in ("HardwareCorrupted", "Unaccepted")] == \
        [x for x in hl if x != "Balloon"]


def test_shape_numastat(big: Machine, node0: Path) -> None:
    host = real(node0 / "numastat")
    assert [flat_shape(x) for x in node_numastat(big, 1).splitlines()] == \
        [flat_shape(x) for x in host]


# Linux 6.18 (the host) vs 6.12 (modelled), item names only
VMSTAT_618_ONLY = {
    "nr_free_pages_blocks", "pgpromote_candidate_nrl", "pgdemote_proactive", "nr_hugetlb",
    "nr_balloon_pages", "nr_kernel_file_pages", "pgsteal_proactive", "pgscan_proactive",
    "direct_map_level2_collapses", "direct_map_level3_collapses",
}
VMSTAT_612_ONLY = {"nr_bounce", "nr_writeback_temp", "nr_unaccepted"}  # + CONFIG_UNACCEPTED


def _order_ok(ours: list[str], host: list[str]) -> None:
    assert set(ours) - set(host) <= VMSTAT_612_ONLY, set(ours) - set(host)
    assert set(host) - set(ours) <= VMSTAT_618_ONLY, set(host) - set(ours)
    common = set(ours) & set(host)
    assert [x for x in ours if x in common] == [x for x in host if x in common]


def test_vmstat_names_and_order(big: Machine, host_snapshot: Path, node0: Path) -> None:
    _order_ok([k for k, _ in parse_kv(vmstat(big))], [k for k, _ in parse_kv(
        (host_snapshot / "vmstat").read_text())])
    _order_ok([k for k, _ in parse_kv(node_vmstat(big, 0))],
              [k for k, _ in parse_kv((node0 / "vmstat").read_text())])


def test_shape_zoneinfo(big: Machine, host_snapshot: Path) -> None:
    want = {flat_shape(line) for line in real(host_snapshot / "zoneinfo")}
    extra = {flat_shape(line) for line in zoneinfo(big).splitlines()} - want
    # 6.12's pageset lines (6.18 pads them and adds high_min/high_max) and
    # the zone/node items 6.18 dropped or this host's config lacks
    assert extra == {
        "              count: N", "              high:  N", "              batch: N",
        "      nr_bounce    N", "      nr_writeback_temp N", "      nr_unaccepted N",
    }
    ours = zoneinfo(big).splitlines()
    assert ours[0] == "Node 0, zone      DMA" and ours[1] == "  per-node stats"
    assert "Node 0, zone   Device" in ours and "Node 1, zone  Movable" in ours
