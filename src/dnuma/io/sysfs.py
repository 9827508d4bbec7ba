"""The sysfs trees of ``/sys/devices/system/{node,memory,cpu}``, in the
kernel's exact formats (drivers/base/node.c, memory.c, cpu.c, topology.c).

Each function adds its directory to a :class:`~dnuma.io.export.Tree` (paths
relative to the sysroot).  Model facts used: ``m.topo`` (node states,
cpu_to_node, SLIT), :func:`dnuma.mm.memory_block.memory_blocks` (from
``sec_present``) and the per-node files of :mod:`dnuma.io.procfs`.

CPU topology (the model has none): one package per node with CPUs
(``physical_package_id`` = the CPU's node), one core per CPU, one thread per
core; die = package, cluster = core.  Every CPU is possible and present;
an offline CPU (mm.cpu_hotplug) has ``online`` 0, no ``topology/`` and is in
no sibling mask, and keeps its node links.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ..mm.constants import N_CPU, N_MEMORY, N_NORMAL_MEMORY, N_ONLINE, N_POSSIBLE, ZONE_NAMES
from ..mm.memory_block import MemoryBlocks, memory_blocks, valid_zones
from . import procfs
from .kformat import bitmap_list_string, bitmap_string, distance_line

if TYPE_CHECKING:
    from ..mm.machine import Machine
    from .export import Tree

NODE_DIR = "sys/devices/system/node"
MEMORY_DIR = "sys/devices/system/memory"
CPU_DIR = "sys/devices/system/cpu"

# node_state_attrs[] order (no HIGHMEM on 64-bit); the model has no
# generic initiators, so has_generic_initiator is always empty
NODE_STATE_FILES = (("possible", N_POSSIBLE), ("online", N_ONLINE),
                    ("has_normal_memory", N_NORMAL_MEMORY), ("has_memory", N_MEMORY),
                    ("has_cpu", N_CPU), ("has_generic_initiator", -1))


def node_tree(m: Machine, t: Tree, blocks: MemoryBlocks | None = None) -> None:
    """``node/``: the node-state masks and a ``nodeK/`` per online node
    (``register_one_node()``) with cpumap, cpulist, distance, meminfo,
    numastat, vmstat, compact, hugepages/, memory_failure/, ``cpuN`` links
    to its CPUs and ``memoryB`` links to the memory blocks holding its pages."""
    topo = m.topo
    st = topo.node_states
    blocks = memory_blocks(m) if blocks is None else blocks
    t.dir(NODE_DIR)
    for name, state in NODE_STATE_FILES:
        # print_nodes_state(): "%*pbl\n"
        bits = st[state] if state >= 0 else ()
        t.file(f"{NODE_DIR}/{name}", bitmap_list_string(bits) + "\n")
    online = st[N_ONLINE]
    ncpu = topo.nr_cpu_ids
    for nid in np.flatnonzero(online).tolist():
        d = f"{NODE_DIR}/node{nid}"
        cpus = topo.cpumask_of_node(nid)  # cpumask_of_node() & cpu_online_mask
        t.dir(d)
        t.file(f"{d}/cpumap", bitmap_string(cpus, ncpu) + "\n")  # node_read_cpumap()
        t.file(f"{d}/cpulist", bitmap_list_string(cpus) + "\n")
        t.file(f"{d}/distance", distance_line(topo.distance[nid], online))
        for name, fn in procfs.NODE_FILES.items():
            t.file(f"{d}/{name}", fn(m, nid))
        node_extras(t, d)
        # register_cpu_under_node() at boot: offline CPUs keep their link
        for cpu in np.flatnonzero(topo.cpu_to_node == nid).tolist():
            t.link(f"{d}/cpu{cpu}", f"../../cpu/cpu{cpu}")
        # register_mem_block_under_node_early(): the node side of the links
        for b in blocks.ids[blocks.nodes[:, nid]].tolist():
            t.link(f"{d}/memory{b}", f"../../memory/memory{b}")


#: hugetlb_register_node(): one hstate on qemu64 and most x86_64 guests
#: (1 GiB pages need the pdpe1gb CPU flag); the model reserves no huge pages
HSTATE_DIRS = ("hugepages-2048kB",)
#: memory_failure_attr_group (CONFIG_MEMORY_FAILURE): the per-node
#: memory_failure_stats, all 0 (the model poisons no page)
MF_STATS = ("total", "ignored", "failed", "delayed", "recovered")


def node_extras(t: Tree, d: str) -> None:
    """The rest of a 6.12 node directory ``d``: ``compact`` (write-only:
    compaction_register_node), ``hugepages/`` and ``memory_failure/``."""
    t.file(f"{d}/compact", "", 0o200)
    for h in HSTATE_DIRS:
        t.dir(f"{d}/hugepages/{h}")
        for name in ("nr_hugepages", "free_hugepages", "surplus_hugepages"):
            t.file(f"{d}/hugepages/{h}/{name}", "0\n", 0o644 if name == "nr_hugepages"
                   else 0o444)
    t.dir(f"{d}/memory_failure")
    for name in MF_STATS:
        t.file(f"{d}/memory_failure/{name}", "0\n")


def memory_tree(m: Machine, t: Tree, blocks: MemoryBlocks | None = None) -> None:
    """``memory/``: ``block_size_bytes`` and a ``memoryB/`` per block with a
    present section (online or offline), each linked to every node owning
    pages in it (an offline block: to ``mem->nid``)."""
    blocks = memory_blocks(m) if blocks is None else blocks
    t.dir(MEMORY_DIR)
    t.file(f"{MEMORY_DIR}/block_size_bytes", f"{blocks.block_size_bytes:x}\n")
    t.file(f"{MEMORY_DIR}/auto_online_blocks", m.hotplug.auto_online_blocks + "\n", 0o644)
    online = m.topo.node_states[N_ONLINE]
    for k, b in enumerate(blocks.ids.tolist()):
        d = f"{MEMORY_DIR}/memory{b}"
        z = int(blocks.zone[k])
        t.dir(d)
        t.file(f"{d}/phys_index", f"{b:08x}\n")  # phys_index_show()
        on = bool(blocks.online[k])
        t.file(f"{d}/state", ("online" if on else "offline") + "\n", 0o644)  # state_show()
        t.file(f"{d}/online", f"{int(on)}\n", 0o644)  # online_show(): !dev->offline
        t.file(f"{d}/phys_device", "0\n")
        t.file(f"{d}/removable", "1\n")  # CONFIG_MEMORY_HOTREMOVE
        # valid_zones_show(): an online block's mem->zone ("none" if NULL), an
        # offline one's default zone and the other choices
        zones = (ZONE_NAMES[z] if z >= 0 else "none") if on else valid_zones(m, b)
        t.file(f"{d}/valid_zones", zones + "\n")
        # register_mem_block_under_node_early(): every node owning a pfn here
        for nid in np.flatnonzero(blocks.nodes[k] & online).tolist():
            t.link(f"{d}/node{nid}", f"../../node/node{nid}")


def cpu_tree(m: Machine, t: Tree) -> None:
    """``cpu/``: the possible/present/online masks and a ``cpuN/`` per CPU
    with its ``nodeK`` link and ``topology/`` (drivers/base/topology.c)."""
    topo = m.topo
    ncpu = topo.nr_cpu_ids
    c2n = topo.cpu_to_node.tolist()
    allcpu = bitmap_list_string(range(ncpu)) + "\n"
    up = topo.cpu_online
    t.dir(CPU_DIR)
    for name in ("possible", "present"):
        t.file(f"{CPU_DIR}/{name}", allcpu)
    t.file(f"{CPU_DIR}/online", bitmap_list_string(up) + "\n")
    t.file(f"{CPU_DIR}/offline", bitmap_list_string(~up) + "\n")  # print_cpus_offline()
    online = topo.node_states[N_ONLINE]
    # remove_siblinginfo: an offline CPU leaves every sibling mask
    pkg = {n: [c for c in cpus if up[c]] for n, cpus in topo.cpu_packages().items()}
    for cpu, nid in enumerate(c2n):
        d = f"{CPU_DIR}/cpu{cpu}"
        t.dir(d)
        if cpu:  # 6.12 x86: cpu0 is not hotpluggable, so it has no "online"
            t.file(f"{d}/online", f"{int(up[cpu])}\n", 0o644)
        if online[nid]:  # register_cpu_under_node()
            t.link(f"{d}/node{nid}", f"../../node/node{nid}")
        if not up[cpu]:  # topology_remove_dev (CPUHP_TOPOLOGY_PREPARE)
            continue
        own = bitmap_string((cpu,), ncpu) + "\n"
        own_l = f"{cpu}\n"
        sib = bitmap_string(pkg[nid], ncpu) + "\n"
        sib_l = bitmap_list_string(pkg[nid]) + "\n"
        td = f"{d}/topology"
        t.dir(td)
        for name, text in (
            ("physical_package_id", f"{nid}\n"), ("die_id", "0\n"), ("cluster_id", f"{cpu}\n"),
            ("core_id", f"{pkg[nid].index(cpu)}\n"),
            ("core_cpus", own), ("core_cpus_list", own_l),
            ("thread_siblings", own), ("thread_siblings_list", own_l),
            ("core_siblings", sib), ("core_siblings_list", sib_l),
            ("cluster_cpus", own), ("cluster_cpus_list", own_l),
            ("die_cpus", sib), ("die_cpus_list", sib_l),
            ("package_cpus", sib), ("package_cpus_list", sib_l),
        ):
            t.file(f"{td}/{name}", text)


def sysfs_tree(m: Machine, t: Tree) -> None:
    """``/sys/devices/system/{node,memory,cpu}`` (block facts computed once)."""
    blocks = memory_blocks(m)
    node_tree(m, t, blocks)
    memory_tree(m, t, blocks)
    cpu_tree(m, t)


__all__ = ["CPU_DIR", "MEMORY_DIR", "NODE_DIR", "cpu_tree", "memory_tree", "node_tree",
           "sysfs_tree"]
