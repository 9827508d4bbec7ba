"""Real tools read exported trees and show the model's truth: lsmem, lscpu,
lstopo (hwloc), numactl and numastat (the last two in a private mount
namespace with the tree's ``node/`` bind-mounted over /sys/devices/system/node).

The RFC's experiment on a 512 MiB, 2-node, 8-CPU machine with about half its
memory allocated, exported after each step:
- ``stripe``: 256-pfn stripe over nodes 0, 1 and a new node 2 (every memory
  block holds pages of all three);
- ``push``: everything to a new node 3; the allocated pages stay on nodes 0
  and 1 (marked) until freed, node 2 goes offline;
- ``freed``: every page freed, so nodes 0 and 1 keep their CPUs but have no
  memory, and node 3 has memory but no CPUs.

What each tool reflects of the model (asserted exactly):
- lsmem: one row per memory block (blocks x block size); the NODE of a block
  held by several nodes is the first ``node*`` entry readdir gives in
  ``memoryB/`` (any of the nodes owning pages there);
- lscpu: the online nodes and each node's CPUs;
- lstopo: per node ``local_memory`` = managed pages x page size (MemTotal),
  its CPUs, the SLIT of the online nodes;
- numactl --hardware: size = managed bytes >> 20, free = free (buddy) bytes
  >> 20 (MB, truncated), CPUs, distances;
- numastat -m: MemTotal / MemFree / MemUsed in MB with two decimals;
  numastat: the six numastat counters of each node.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from dnuma.io.export import write_sysroot
from dnuma.io.sysfs import MEMORY_DIR, NODE_DIR
from dnuma.mm.constants import MAX_NR_ZONES, N_ONLINE, ZONE_NAMES
from dnuma.mm.machine import Machine, boot
from dnuma.mm.memlayout import MemLayout
from dnuma.mm.memory_block import memory_blocks

PKG = {"lsmem": "util-linux", "lscpu": "util-linux", "lstopo-no-graphics": "hwloc",
       "numactl": "numactl", "numastat": "numactl", "unshare": "util-linux"}
ENV = {**os.environ, "LC_ALL": "C", "LANG": "C"}
BIND = ('mount --bind "$1/sys/devices/system/node" /sys/devices/system/node '
        '&& shift && exec "$@"')
STATES = ("stripe", "push", "freed")


@dataclass
class State:
    """An exported tree and the model's numbers at the time of the export."""

    name: str
    root: Path
    page_size: int
    online: list[int]
    managed: dict[int, int]  # pages
    free: dict[int, int]  # NR_FREE_PAGES (buddy lists), pages
    present: dict[int, int]
    cpus: dict[int, list[int]]
    distance: dict[tuple[int, int], int]
    numastat: dict[int, dict[str, int]]
    block_size: int
    blocks: dict[int, list[int]]  # block id -> nodes owning pages in it
    zones: dict[int, str]  # block id -> valid_zones


def facts(m: Machine, name: str, root: Path) -> State:
    S = m.S
    online = np.flatnonzero(m.topo.node_states[N_ONLINE]).tolist()

    def per_node(arr: np.ndarray) -> dict[int, int]:
        v = arr.reshape(-1, MAX_NR_ZONES).sum(axis=1)
        return {n: int(v[n]) for n in online}

    mb = memory_blocks(m)
    return State(
        name, root, 1 << m.profile.page_shift, online, per_node(S.zone_managed),
        per_node(S.zone_free), per_node(S.zone_present),
        {n: m.topo.cpumask_of_node(n) for n in online},
        {(a, b): m.topo.node_distance(a, b) for a in online for b in online},
        {n: m.numastat(n) for n in online}, mb.block_size_bytes,
        {b: mb.nodes_of(k) for k, b in enumerate(mb.ids.tolist())},
        {b: ZONE_NAMES[z] if z >= 0 else "none" for b, z in zip(mb.ids.tolist(),
                                                                 mb.zone.tolist(),
                                                                 strict=True)})


@pytest.fixture(scope="module")
def states(tmp_path_factory: pytest.TempPathFactory, fill) -> dict[str, State]:
    base = tmp_path_factory.mktemp("sysroots")
    m = boot(nodes=2, mem="512M", cpus=8)
    pages = fill(m, 0.5, seed=7)
    assert sum(1 << order for _pfn, order, _cpu in pages) >= m.total_present_pages // 2
    out = {}

    def export(name: str) -> None:
        out[name] = facts(m, name, write_sysroot(m, base / name))

    m.commit(MemLayout.stripe(m.ram_ranges(), [0, 1, 2], 256))
    export("stripe")
    m.commit(MemLayout.push(m.ram_ranges(), 3))
    export("push")
    for pfn, order, cpu in pages:
        m.free_pages(pfn, order, cpu)
    export("freed")
    # the states the tests expect
    assert out["stripe"].online == [0, 1, 2]
    assert all(v == [0, 1, 2] for v in out["stripe"].blocks.values())
    # node 2 lost its memory in the push but stays online (6.12 offline_pages)
    assert out["push"].online == [0, 1, 2, 3] and out["push"].managed[0] > 0
    assert out["push"].present[2] == 0 and out["push"].cpus[2] == []
    assert out["freed"].online == [0, 1, 2, 3]
    assert out["freed"].managed[0] == out["freed"].managed[1] == out["freed"].managed[2] == 0
    assert out["freed"].cpus[3] == []
    return out


def need(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        pytest.skip(f"{tool} is not installed (Debian package {PKG[tool]}; "
                    "`make sysdeps` installs it as root)")
    return path


def run(*cmd: str | Path) -> str:
    res = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, env=ENV,
                         timeout=60, check=False)
    assert res.returncode == 0, f"{' '.join(map(str, cmd))}: exit {res.returncode}: " \
                                f"{res.stderr.strip()}"
    return res.stdout


_NS_REFUSED: dict[str, str] = {}


def in_node_namespace(st: State, *cmd: str) -> str:
    """Run ``cmd`` with the tree's node/ bind-mounted over /sys/devices/system/node."""
    need("unshare")
    need(cmd[0])
    if "why" not in _NS_REFUSED:
        probe = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c",
                                BIND, "sh", str(st.root), "true"],
                               capture_output=True, text=True, env=ENV, timeout=60,
                               check=False)
        _NS_REFUSED["why"] = "" if probe.returncode == 0 else (
            probe.stderr.strip() or f"exit {probe.returncode}")
    if _NS_REFUSED["why"]:
        pytest.skip(f"private mount namespace with a bind mount refused: {_NS_REFUSED['why']}")
    return run("unshare", "--mount", "--propagation", "private", "sh", "-c", BIND, "sh",
               st.root, *cmd)


def readdir_nodes(st: State, block: int) -> list[int]:
    """The ``node*`` entries of memoryB in readdir order (what lsmem walks)."""
    names = os.listdir(st.root / MEMORY_DIR / f"memory{block}")
    return [int(n[4:]) for n in names if re.fullmatch(r"node\d+", n)]


# ---------------------------------------------------------------- lsmem
@pytest.mark.parametrize("state", STATES)
def test_lsmem_shows_every_block_and_a_node_owning_it(states, state):
    need("lsmem")
    st = states[state]
    doc = json.loads(run("lsmem", "--sysroot", st.root, "-J", "-a", "-b",
                         "-o", "RANGE,SIZE,STATE,BLOCK,NODE,ZONES"))
    rows = doc["memory"]
    assert [int(r["block"]) for r in rows] == sorted(st.blocks)
    bs = st.block_size
    for r in rows:
        b = int(r["block"])
        lo, hi = (int(x, 16) for x in r["range"].split("-"))
        assert (lo, hi + 1, int(r["size"]), r["state"]) == (b * bs, (b + 1) * bs, bs, "online")
        links = readdir_nodes(st, b)
        assert sorted(links) == st.blocks[b]  # the links written: every owning node
        assert r["node"] == links[0]  # lsmem: the first node* entry readdir gives
        # valid_zones; lsmem prints "none" as "None"
        assert r["zones"] == ("None" if st.zones[b] == "none" else st.zones[b])
    if state == "stripe":
        assert {r["zones"] for r in rows} == {"None"}  # three nodes in every block

    # merged rows and the summary: blocks x block size, per shown node
    merged = json.loads(run("lsmem", "--sysroot", st.root, "-J", "-b",
                            "-o", "RANGE,SIZE,STATE,BLOCK,NODE"))["memory"]
    shown: dict[int, int] = {}
    for b in st.blocks:
        shown[readdir_nodes(st, b)[0]] = shown.get(readdir_nodes(st, b)[0], 0) + bs
    got: dict[int, int] = {}
    for r in merged:
        got[r["node"]] = got.get(r["node"], 0) + int(r["size"])
    assert got == shown
    text = run("lsmem", "--sysroot", st.root, "-b")
    assert re.search(r"Memory block size:\s+(\d+)", text).group(1) == str(bs)
    assert re.search(r"Total online memory:\s+(\d+)", text).group(1) == str(len(st.blocks) * bs)
    assert re.search(r"Total offline memory:\s+(\d+)", text).group(1) == "0"
    if state == "freed":  # single-node blocks: lsmem's size is node 3's present memory
        assert got == {3: st.present[3] * st.page_size}


# ---------------------------------------------------------------- lscpu
@pytest.mark.parametrize("state", STATES)
def test_lscpu_shows_the_nodes_and_their_cpus(states, state):
    need("lscpu")
    st = states[state]
    text = run("lscpu", "--sysroot", st.root)
    field = dict(re.findall(r"^([^:\n]+):[ \t]*(.*)$", text, re.M))
    assert field["CPU(s)"] == "8"
    assert field["On-line CPU(s) list"] == "0-7"
    assert field["NUMA node(s)"] == str(len(st.online))
    nodes = {int(k[9:-7]): v for k, v in field.items() if re.fullmatch(r"NUMA node\d+ CPU\(s\)", k)}
    assert sorted(nodes) == st.online
    for n in st.online:
        assert expand(nodes[n]) == st.cpus[n], f"node {n}"


def expand(text: str) -> list[int]:
    """``0-3,8`` -> [0, 1, 2, 3, 8]; ``""`` -> []."""
    out: list[int] = []
    for part in filter(None, text.replace(" ", "").split(",")):
        lo, _, hi = part.partition("-")
        out.extend(range(int(lo), int(hi or lo) + 1))
    return out


# ---------------------------------------------------------------- hwloc
def hwloc_set(text: str) -> list[int]:
    """An hwloc bitmap ``0x000000ff,0xffffffff`` (or ``0x0``) as set bits."""
    val = int("".join(p.replace("0x", "") for p in text.split(",")), 16)
    return [i for i in range(val.bit_length()) if val >> i & 1]


@pytest.mark.parametrize("state", STATES)
def test_lstopo_shows_node_memory_cpus_and_distances(states, state):
    need("lstopo-no-graphics")
    st = states[state]
    xml = ET.fromstring(run("lstopo-no-graphics", "-i", st.root, "--of", "xml"))
    numa = {int(o.get("os_index")): o for o in xml.iter("object") if o.get("type") == "NUMANode"}
    assert sorted(numa) == st.online
    for n, o in numa.items():
        assert int(o.get("local_memory", "0")) == st.managed[n] * st.page_size, f"node {n}"
        assert hwloc_set(o.get("cpuset")) == st.cpus[n], f"node {n}"
    pus = sorted(int(o.get("os_index")) for o in xml.iter("object") if o.get("type") == "PU")
    assert pus == list(range(8))
    (dist,) = [d for d in xml.iter("distances2") if d.get("type") == "NUMANode"]
    idx = [int(v) for v in dist.find("indexes").text.split()]
    # hwloc writes the matrix 10 values to a u64values element
    vals = [int(v) for e in dist.findall("u64values") for v in e.text.split()]
    assert idx == st.online
    k = len(idx)
    assert {(idx[i], idx[j]): vals[i * k + j] for i in range(k) for j in range(k)} == st.distance
    # the console view lists every node, the CPU-less ones included
    text = run("lstopo-no-graphics", "-i", st.root, "--of", "console")
    assert sorted(int(x) for x in re.findall(r"NUMANode L#\d+ \(P#(\d+)", text)) == st.online


# ---------------------------------------------------------------- numactl / numastat
@pytest.mark.parametrize("state", STATES)
def test_numactl_hardware_shows_sizes_free_cpus_distances(states, state):
    st = states[state]
    text = in_node_namespace(st, "numactl", "--hardware")
    avail = re.search(r"^available: (\d+) nodes \(([^)]*)\)", text, re.M)
    assert int(avail.group(1)) == len(st.online) and expand(avail.group(2)) == st.online
    for n in st.online:
        cpus = re.search(rf"^node {n} cpus:(.*)$", text, re.M).group(1).split()
        assert [int(c) for c in cpus] == st.cpus[n]
        size = int(re.search(rf"^node {n} size: (\d+) MB", text, re.M).group(1))
        free = int(re.search(rf"^node {n} free: (\d+) MB", text, re.M).group(1))
        assert size == (st.managed[n] * st.page_size) >> 20
        assert free == (st.free[n] * st.page_size) >> 20
    head, *rows = text.split("node distances:\n")[1].strip().splitlines()
    cols = [int(c) for c in head.split()[1:]]
    assert cols == st.online
    got = {}
    for row in rows:
        a, *vals = row.replace(":", "").split()
        got.update({(int(a), b): int(v) for b, v in zip(cols, vals, strict=True)})
    assert got == st.distance


@pytest.mark.parametrize("state", STATES)
def test_numastat_shows_meminfo_and_counters(states, state):
    st = states[state]
    text = in_node_namespace(st, "numastat", "-m")
    header = re.search(r"^\s+((?:Node \d+\s+)+)Total", text, re.M).group(1)
    cols = [int(x) for x in re.findall(r"Node (\d+)", header)]
    assert cols == st.online
    rows = {ln.split()[0]: ln.split()[1:] for ln in text.splitlines() if ln.strip()}
    kb = st.page_size // 1024
    for i, n in enumerate(cols):
        total, free = st.managed[n] * kb, st.free[n] * kb
        assert rows["MemTotal"][i] == f"{total / 1024:.2f}"
        assert rows["MemFree"][i] == f"{free / 1024:.2f}"
        assert rows["MemUsed"][i] == f"{(total - free) / 1024:.2f}"
    text = in_node_namespace(st, "numastat")
    lines = text.strip().splitlines()
    assert [int(x[4:]) for x in lines[0].split()] == st.online
    for ln in lines[1:]:
        name, *vals = ln.split()
        assert [int(v) for v in vals] == [st.numastat[n][name] for n in st.online], name


def test_the_tree_is_what_the_tools_read(states):
    """The facts above come from the model; the files hold the same numbers."""
    st = states["freed"]
    for n in st.online:
        mi = (st.root / NODE_DIR / f"node{n}" / "meminfo").read_text()
        assert f"Node {n} MemTotal: " in mi
        assert int(re.search(r"MemTotal:\s+(\d+) kB", mi).group(1)) == \
            st.managed[n] * st.page_size // 1024
