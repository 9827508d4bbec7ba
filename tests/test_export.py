"""The exported sysroot: kernel bitmap and distance formats, memory blocks
from sec_present against a per-pfn brute force, the node/memory/cpu/debugfs
trees, re-export, and the SysrootWriter observer."""

from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from dnuma.io.debugfs import DEBUGFS_DIR
from dnuma.io.export import SysrootError, SysrootWriter, build_tree, safe_name, write_sysroot
from dnuma.io.kformat import bitmap_list_string, bitmap_string, distance_line
from dnuma.io.sysfs import CPU_DIR, MEMORY_DIR, NODE_DIR
from dnuma.mm.constants import MAX_NR_ZONES, PPC64, X86_64, PG_hole
from dnuma.mm.machine import Machine, MachineConfig, boot
from dnuma.mm.memlayout import MemLayout
from dnuma.mm.memlayout_debugfs import MemlayoutDebugfs
from dnuma.mm.memory_block import memory_block_size_bytes, memory_blocks
from dnuma.sim.run import run_scenario
from dnuma.sim.scenario import parse_scenario


def read(root: Path, rel: str) -> str:
    return (root / rel).read_text()


def tree_paths(root: Path) -> set[str]:
    """Every entry under root, relative (symlinks not followed)."""
    out: set[str] = set()
    for dirpath, dirnames, filenames in os.walk(root):
        for n in dirnames + filenames:
            out.add(os.path.relpath(os.path.join(dirpath, n), root))
    return out


# ---------------------------------------------------------------- kformat
@pytest.mark.parametrize(("bits", "nbits", "text"), [
    ([0, 1, 2, 3], 8, "0f"), ([4, 5, 6, 7], 8, "f0"), ([], 8, "00"),
    ([0, 1, 2, 3], 64, "00000000,0000000f"), ([63], 64, "80000000,00000000"),
    ([32], 33, "1,00000000"), ([0], 36, "0,00000001"), ([35], 36, "8,00000000"),
    (list(range(32)), 32, "ffffffff"), ([0, 2], 3, "5"), ([1, 99], 8, "02"),
])
def test_bitmap_string_is_kernel_pb(bits, nbits, text):
    assert bitmap_string(bits, nbits) == text
    assert bitmap_string(np.isin(np.arange(max(nbits, 100)), bits), nbits) == text


@pytest.mark.parametrize(("bits", "text"), [
    ([0, 1, 2, 3, 8, 9, 10, 11], "0-3,8-11"), ([5], "5"), ([1, 3], "1,3"), ([], ""),
    ([0, 1, 3, 4, 5, 63], "0-1,3-5,63"), ([2, 0, 1], "0-2"),
])
def test_bitmap_list_string_is_kernel_pbl(bits, text):
    assert bitmap_list_string(bits) == text


def test_distance_line_keeps_the_offline_node0_leading_space():
    row = [10, 20, 30, 40]
    assert distance_line(row, [0, 1, 2, 3]) == "10 20 30 40\n"
    assert distance_line(row, [1, 3]) == " 20 40\n"  # node_read_distance(): i ? " " : ""
    assert distance_line(row, np.array([True, False, True, False])) == "10 30\n"


# ---------------------------------------------------------------- block size
def fake(end_bytes: int, profile=X86_64, block: int | None = None) -> SimpleNamespace:
    """A machine as memory_block_size_bytes sees it: boot RAM [0, end_bytes)."""
    return SimpleNamespace(profile=profile, config=SimpleNamespace(
        memory_block_bytes=block, ram=((0, end_bytes >> profile.page_shift, 0),)))


@pytest.mark.parametrize(("end", "size"), [
    (128 << 20, 128 << 20), ((64 << 30) - (128 << 20), 128 << 20),  # below 64 GiB
    (64 << 30, 2 << 30), (1 << 40, 2 << 30), ((64 << 30) + (1 << 30), 1 << 30),
    ((64 << 30) + (384 << 20), 128 << 20), ((80 << 30) + (512 << 20), 512 << 20),
    ((64 << 30) + 4096, 128 << 20),  # no power of two divides it: one section
])
def test_memory_block_size_follows_probe_memory_block_size(end, size):
    assert memory_block_size_bytes(fake(end)) == size


def test_ppc64_memory_block_is_the_lmb():
    assert memory_block_size_bytes(fake(1 << 40, PPC64)) == 256 << 20


def test_explicit_block_size_wins():
    """set_memory_block_size_order(): e.g. a machine imported from a host."""
    assert memory_block_size_bytes(fake(1 << 40, block=1 << 30)) == 1 << 30


# ---------------------------------------------------------------- memory blocks
def brute_blocks(m: Machine) -> tuple[list[int], dict[int, set[int]], dict[int, int], dict]:
    """Per-pfn: block ids with present pfns, their nodes, (node, zone) pairs
    and present pages (register_mem_block_under_node_early's pfn scan)."""
    S = m.S
    bpages = memory_block_size_bytes(m) >> m.profile.page_shift
    pfns = np.flatnonzero((S.page_flags & PG_hole) == 0)
    blk = pfns // bpages
    nodes: dict[int, set[int]] = {}
    pairs: dict[int, set[tuple[int, int]]] = {}
    for b, n, z in zip(blk.tolist(), S.page_nid[pfns].tolist(), S.page_zone[pfns].tolist(),
                       strict=True):
        nodes.setdefault(b, set()).add(n)
        pairs.setdefault(b, set()).add((n, z))
    present = dict(zip(*np.unique(blk, return_counts=True), strict=True))
    return sorted(nodes), nodes, present, pairs


def check_blocks(m: Machine) -> None:
    mb = memory_blocks(m)
    ids, nodes, present, pairs = brute_blocks(m)
    assert mb.ids.tolist() == ids
    for k, b in enumerate(ids):
        assert mb.nodes_of(k) == sorted(nodes[b]), f"block {b}"
        assert int(mb.present[k]) == int(present[b])
        want_zone = next(iter(pairs[b]))[1] if len(pairs[b]) == 1 else -1
        assert int(mb.zone[k]) == want_zone, f"block {b}: {pairs[b]}"


def holey() -> Machine:
    """384 MiB of pfns: block 0 on node 0 (DMA + DMA32), block 1 a hole,
    block 2 shared by nodes 1 and 2."""
    return Machine(MachineConfig(ram=((0, 30000, 0), (70000, 80000, 1), (80000, 90000, 2)),
                                 cpu_to_node=(0, 0, 1, 1)))


def test_block_links_from_sec_present_equal_a_per_pfn_scan(fill):
    m = holey()
    check_blocks(m)
    mb = memory_blocks(m)
    assert mb.ids.tolist() == [0, 2]  # no memory1: a hole
    assert mb.nodes_of(1) == [1, 2]
    pages = fill(m, 0.4)
    m.commit(MemLayout.stripe(m.ram_ranges(), [0, 1, 3], 300))
    check_blocks(m)
    for pfn, order, cpu in pages[::3]:
        m.free_pages(pfn, order, cpu)
    check_blocks(m)
    m.commit(MemLayout.push(m.ram_ranges(), 2))
    check_blocks(m)


def test_valid_zones_none_for_multi_zone_and_multi_node_blocks(tmp_path):
    m = boot(nodes=1, mem="5G", cpus=2)
    root = write_sysroot(m, tmp_path / "t")
    vz = {b: read(root, f"{MEMORY_DIR}/memory{b}/valid_zones") for b in (0, 1, 31, 32, 39)}
    # block 0: DMA below 16 MiB and DMA32 above it; 4 GiB starts block 32
    assert vz == {0: "none\n", 1: "DMA32\n", 31: "DMA32\n", 32: "Normal\n", 39: "Normal\n"}
    m2 = holey()
    root2 = write_sysroot(m2, tmp_path / "t2")
    assert read(root2, f"{MEMORY_DIR}/memory2/valid_zones") == "none\n"  # nodes 1 and 2
    assert not (root2 / MEMORY_DIR / "memory1").exists()


# ---------------------------------------------------------------- the tree
def test_tree_formats_and_links(tmp_path):
    m = holey()
    root = write_sysroot(m, tmp_path / "t")
    nd, md, cd = root / NODE_DIR, root / MEMORY_DIR, root / CPU_DIR
    assert {p.name for p in nd.iterdir() if p.name.startswith("node")} == \
        {"node0", "node1", "node2"}
    assert read(nd, "possible") == "0-63\n"
    assert read(nd, "online") == read(nd, "has_memory") == read(nd, "has_normal_memory") \
        == "0-2\n"
    assert read(nd, "has_cpu") == "0-1\n"
    assert read(nd, "has_generic_initiator") == "\n"
    assert read(nd, "node0/cpumap") == "3\n"  # nr_cpu_ids = 4: one hex digit
    assert read(nd, "node1/cpulist") == "2-3\n"
    assert read(nd, "node2/cpumap") == "0\n" and read(nd, "node2/cpulist") == "\n"
    assert read(nd, "node1/distance") == "20 10 20\n"
    assert read(md, "block_size_bytes") == "8000000\n"
    assert read(md, "memory2/phys_index") == "00000002\n"
    assert read(md, "memory2/state") == "online\n" and read(md, "memory2/online") == "1\n"
    assert sorted(p.name for p in (md / "memory2").iterdir() if p.name.startswith("node")) \
        == ["node1", "node2"]
    assert os.readlink(md / "memory2/node1") == "../../node/node1"
    assert os.readlink(nd / "node2/memory2") == "../../memory/memory2"
    # the rest of a 6.12 node directory: compact, hugepages/, memory_failure/
    assert (nd / "node0/hugepages/hugepages-2048kB/free_hugepages").read_text() == "0\n"
    assert (nd / "node0/memory_failure/recovered").read_text() == "0\n"
    assert (nd / "node0/compact").stat().st_mode & 0o777 == 0o200
    assert sorted(p.name for p in (nd / "node0").iterdir()
                  if p.name.startswith("memory") and p.is_symlink()) == ["memory0"]
    assert os.readlink(cd / "cpu3/node1") == "../../node/node1"
    assert os.readlink(nd / "node1/cpu3") == "../../cpu/cpu3"
    assert read(cd, "possible") == read(cd, "online") == "0-3\n"
    assert not (cd / "cpu0/online").exists() and read(cd, "cpu1/online") == "1\n"
    assert read(cd, "cpu3/topology/thread_siblings") == "8\n"
    assert read(cd, "cpu3/topology/core_siblings") == "c\n"
    assert read(cd, "cpu3/topology/core_siblings_list") == "2-3\n"
    assert read(cd, "cpu3/topology/physical_package_id") == "1\n"
    assert read(cd, "cpu3/topology/core_id") == "1\n"
    for k in range(3):
        assert read(nd, f"node{k}/meminfo").startswith(f"Node {k} MemTotal:")
    # every link resolves inside the tree
    for p in tree_paths(root):
        if (root / p).is_symlink():
            assert (root / p).resolve().is_relative_to(root.resolve()), p
            assert (root / p).resolve().is_dir(), p
    assert {p.name for p in (root / "proc").iterdir()} == \
        {"cpuinfo", "meminfo", "buddyinfo", "pagetypeinfo", "zoneinfo", "vmstat"}


@pytest.mark.parametrize(("cpus", "node0"), [(8, "0f\n"), (64, "00000000,ffffffff\n")])
def test_cpumap_width_follows_nr_cpu_ids(tmp_path, cpus, node0):
    m = boot(nodes=2, mem="32M", cpus=cpus)
    root = write_sysroot(m, tmp_path / "t")
    assert read(root, f"{NODE_DIR}/node0/cpumap") == node0
    assert read(root, f"{NODE_DIR}/node0/cpulist") == f"0-{cpus // 2 - 1}\n"


def test_offline_node0_distance_line_starts_with_a_space(tmp_path):
    # node 0 has neither memory nor CPUs at boot: never online (a commit
    # that empties a node leaves it online, as 6.12's offline_pages does)
    m = Machine(MachineConfig(ram=((0, 8192, 1),), cpu_to_node=(1, 1)))
    m.commit(MemLayout.push(m.ram_ranges(), 1))
    root = write_sysroot(m, tmp_path / "t")
    nd = root / NODE_DIR
    assert read(nd, "online") == "1\n"
    assert not (nd / "node0").exists()
    assert read(nd, "node1/distance") == " 10\n"


def test_ppc64_tree_uses_lmb_blocks(tmp_path):
    m = boot(nodes=2, mem="1G", cpus=2, profile=PPC64)
    root = write_sysroot(m, tmp_path / "t")
    assert read(root, f"{MEMORY_DIR}/block_size_bytes") == "10000000\n"
    assert sorted(p.name for p in (root / MEMORY_DIR).glob("memory*")) == \
        [f"memory{b}" for b in range(4)]
    assert read(root, f"{MEMORY_DIR}/memory0/valid_zones") == "Normal\n"
    check_blocks(m)


def test_reexport_replaces_the_tree_and_leaves_no_stale_files(tmp_path, fill):
    m = boot(nodes=2, mem="256M", cpus=4)
    pages = fill(m, 0.3)
    m.commit(MemLayout.stripe(m.ram_ranges(), [0, 1, 2], 256))
    root = tmp_path / "t"
    write_sysroot(m, root)
    assert (root / NODE_DIR / "node2").is_dir()
    assert (root / MEMORY_DIR / "memory1" / "node2").is_symlink()
    m.commit(MemLayout.push(m.ram_ranges(), 3))
    for pfn, order, cpu in pages:
        m.free_pages(pfn, order, cpu)
    assert read(root, f"{NODE_DIR}/online") == "0-2\n"
    write_sysroot(m, root)
    # exactly what the model's tree lists, nothing left from the first export
    t = build_tree(m)
    want = set(t.dirs) | {p for p, _, _ in t.files} | {p for p, _ in t.links}
    want |= {os.path.dirname(p) for p in want} - {""}
    want |= {"sys/kernel", "sys/devices", "sys"}
    assert tree_paths(root) == want
    assert read(root, f"{NODE_DIR}/online") == "0-3\n"  # node 2 emptied, still online
    assert read(root, f"{NODE_DIR}/has_memory") == "3\n"
    assert (root / NODE_DIR / "node2").is_dir()
    assert [p.name for p in (root / MEMORY_DIR / "memory1").iterdir()
            if p.name.startswith("node")] == ["node3"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp dirs


def test_write_sysroot_refuses_a_directory_that_is_not_a_sysroot(tmp_path):
    (tmp_path / "keep.txt").write_text("mine")
    m = boot(nodes=1, mem="16M", cpus=1)
    with pytest.raises(SysrootError, match=r"keep\.txt"):
        write_sysroot(m, tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == ["keep.txt"]
    (tmp_path / "file").write_text("")
    with pytest.raises(SysrootError, match="not a sysroot"):
        write_sysroot(m, tmp_path / "file")
    empty = tmp_path / "empty"
    empty.mkdir()
    assert (write_sysroot(m, empty) / "proc/meminfo").is_file()


def test_debugfs_files_match_memlayout_debugfs_read(tmp_path, fill):
    m = boot(nodes=2, mem="64M", cpus=2, backlog=-1)
    pages = fill(m, 0.3)
    m.commit(MemLayout.stripe(m.ram_ranges(), [0, 1, 2], 256))
    for pfn, order, cpu in pages[::2]:
        m.free_pages(pfn, order, cpu)
    m.commit(MemLayout.push(m.ram_ranges(), 1))
    d = MemlayoutDebugfs(m)
    d.write("start", "0x10")
    root = write_sysroot(m, tmp_path / "t", debugfs=d)
    dd = root / DEBUGFS_DIR
    assert sorted(os.listdir(dd)) == sorted(d.listdir(""))
    assert os.readlink(dd / "current") == d.readlink("current") == f"layout.{m.layout.seq}"
    layouts = [n for n in d.listdir("") if n.startswith("layout.")]
    assert len(layouts) == 3  # boot, stripe (backlog) and the live push
    nfiles = 0
    for name in d.listdir(""):
        if name == "current" or name.startswith("layout."):
            assert sorted(os.listdir(dd / name)) == sorted(d.listdir(name))
            for f in d.listdir(name):
                assert (dd / name / f).read_text() == d.read(f"{name}/{f}")
                nfiles += 1
        else:
            assert (dd / name).read_text() == d.read(name)
    assert nfiles == 2 + 64 + 1 + 1  # boot, stripe, push, and current (= push)
    assert read(dd, "start") == "0x0000000000000010\n"
    assert int(read(dd, "moved-pages")) == m.moved_pages > m.moved_on_free > 0
    assert (dd / "moved-pages").stat().st_mode & 0o777 == 0o400
    assert (dd / "start").stat().st_mode & 0o777 == 0o600


# ---------------------------------------------------------------- SysrootWriter
def test_safe_name():
    assert safe_name("stripe") == "stripe"
    assert safe_name("debugfs#2") == "debugfs_2"
    assert safe_name("../../etc") == "etc"
    assert safe_name("a b/c") == "a_b_c"
    assert safe_name("...") == safe_name("") == "event"
    assert len(safe_name("x" * 500)) == 64


def test_sysroot_writer_names_trees_and_counts_skipped_events(tmp_path):
    m = boot(nodes=2, mem="32M", cpus=2)
    (tmp_path / "07-old").mkdir()
    (tmp_path / "07-old" / "sys").mkdir()  # a tree from an earlier run
    (tmp_path / "notes.txt").write_text("kept")
    w = SysrootWriter(m, tmp_path)
    assert not (tmp_path / "07-old").exists() and (tmp_path / "notes.txt").exists()
    w.sample(0.0)
    rep = m.commit(MemLayout.stripe(m.ram_ranges(), [0, 1, 2], 256))
    w.layout_event(1.0, "stripe", rep)
    w.layout_event(1.5, "debugfs#2", None)  # skipped: no tree, but number 02 is used
    rep = m.commit(MemLayout.push(m.ram_ranges(), 3))
    w.layout_event(2.0, "push to 3", rep)
    final = w.finish(3.0)
    assert w.finish() == final
    assert [p.name for p in w.trees] == ["01-stripe", "03-push_to_3", "final"]
    assert sorted(p.name for p in tmp_path.iterdir()) == \
        ["01-stripe", "03-push_to_3", "final", "notes.txt"]
    assert read(tmp_path, f"01-stripe/{NODE_DIR}/has_memory") == "0-2\n"
    assert read(tmp_path, f"03-push_to_3/{NODE_DIR}/has_memory") == "3\n"
    assert read(tmp_path, f"01-stripe/{DEBUGFS_DIR}/current/0-FF") == "0\n"


def test_sysroot_writer_as_a_run_observer(tmp_path):
    sc = parse_scenario("""
duration = "0.3s"
[machine]
nodes = 2
cpus = 2
mem = "16M"
[[task]]
rate = 2000
lifetime = "50ms"
[[event]]
at = "0.1s"
stripe = { nodes = [0, 1, 2], block = 100 }
[[event]]
at = "0.2s"
push = 3
""", "<test>")
    writers: list[SysrootWriter] = []

    def observe(m: Machine) -> list[SysrootWriter]:
        writers.append(SysrootWriter(m, tmp_path))
        return writers

    res = run_scenario(sc, observe=observe)
    w = writers[0]
    assert [p.name for p in w.trees] == [f"01-{sc.events[0].name}",
                                         f"02-{sc.events[1].name}", "final"]
    m = res.machine
    final = w.trees[-1]
    assert read(final, f"{NODE_DIR}/online") == \
        bitmap_list_string(list(m.for_each_online_node())) + "\n"
    for nid in m.for_each_online_node():
        managed = int(m.S.zone_managed[nid * MAX_NR_ZONES:(nid + 1) * MAX_NR_ZONES].sum())
        line = read(final, f"{NODE_DIR}/node{nid}/meminfo").splitlines()[0]
        assert line.split()[3] == str(managed * 4)


def test_check_sysroot_target(tmp_path):
    from dnuma.io.export import check_sysroot_target

    assert check_sysroot_target(tmp_path / "a" / "b") == tmp_path / "a" / "b"
    (tmp_path / "f").write_text("")
    with pytest.raises(SysrootError, match=r"--sysroot .*f: not a directory"):
        check_sysroot_target(tmp_path / "f", "--sysroot ")
    with pytest.raises(SysrootError, match=r"f/x: cannot create: .*f is not a directory"):
        check_sysroot_target(tmp_path / "f" / "x")
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "keep.txt").write_text("")
    with pytest.raises(SysrootError, match=r"not a sysroot \(holds keep\.txt\)"):
        check_sysroot_target(tmp_path / "d")
