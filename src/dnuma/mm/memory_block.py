"""Memory blocks (drivers/base/memory.c): the block size, which blocks exist,
and, per block, the nodes owning its pages and its zone.

Everything is computed from ``S.sec_present`` (present pages per section and
global zone), never from the per-pfn arrays, so it costs O(sections x zones).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from .constants import MAX_NR_ZONES
from .errors import HotplugError, show

if TYPE_CHECKING:
    from .machine import Machine

MEM_SIZE_FOR_LARGE_BLOCK = 64 << 30  # arch/x86/mm/init_64.c
MAX_BLOCK_SIZE = 2 << 30


def memory_block_size_bytes(m: Machine) -> int:
    """Bytes per memory block (``memory_block_size_bytes()``).

    x86_64 follows ``probe_memory_block_size()`` for a guest
    (X86_FEATURE_HYPERVISOR set; dnuma's machines are VMs): boot memory end
    below 64 GiB -> one section (128 MiB); otherwise the largest power of two
    <= 2 GiB that divides the boot memory end, at least one section.  An
    explicit size in the config wins (a machine imported from a host).  Other
    profiles (ppc64) use their ``memory_block_bytes`` (the LMB size).
    """
    p = m.profile
    min_block = 1 << p.section_size_bits  # MIN_MEMORY_BLOCK_SIZE
    if m.config.memory_block_bytes is not None:  # set_memory_block_size_order()
        return m.config.memory_block_bytes
    if p.name != "x86_64":
        return max(p.memory_block_bytes, min_block)
    # max_pfn << PAGE_SHIFT: boot RAM's end, whatever is hot-added later
    boot_mem_end = max(e for _s, e, _n in m.config.ram) << p.page_shift
    if boot_mem_end < MEM_SIZE_FOR_LARGE_BLOCK:
        return min_block
    bz = MAX_BLOCK_SIZE
    while bz > min_block and boot_mem_end % bz:
        bz >>= 1
    return bz


@dataclass(frozen=True)
class MemoryBlocks:
    """The memory block devices of a machine, from its present pages.

    ids: block ids (``memoryB``) with at least one present section, ascending;
    nodes: bool [len(ids), max_numnodes], node K owns present pages in block;
    zone: int8 [len(ids)], the block's zone index (``mem->zone``), -1 when the
    block holds pages of several zones or several nodes (``none``) and for
    an offline block; present: int64 [len(ids)], present pages in the block;
    online: bool [len(ids)], the block's state (an offline block has no
    present pages and links to ``mem->nid``).
    """

    block_size_bytes: int
    ids: np.ndarray
    nodes: np.ndarray
    zone: np.ndarray
    present: np.ndarray
    online: np.ndarray

    def nodes_of(self, k: int) -> list[int]:
        """Nodes linked to the k-th block (``memoryB/nodeK`` entries)."""
        return np.flatnonzero(self.nodes[k]).tolist()


def block_zone_pages(m: Machine) -> tuple[np.ndarray, int]:
    """Present pages per (block, node, zone): int64 [nblocks, max_numnodes,
    MAX_NR_ZONES] over every block id up to the last section, with the block
    size in bytes."""
    p = m.profile
    bsz = memory_block_size_bytes(m)
    spb = bsz >> p.section_size_bits  # sections_per_block
    sp = m.S.sec_present
    nsec, ngz = sp.shape
    nblk = -(-nsec // spb)
    pad = np.zeros((nblk * spb, ngz), dtype=np.int64)
    pad[:nsec] = sp
    per = pad.reshape(nblk, spb, ngz).sum(axis=1)
    return per.reshape(nblk, ngz // MAX_NR_ZONES, MAX_NR_ZONES), bsz


def memory_blocks(m: Machine) -> MemoryBlocks:
    """The memory blocks and their node links and zones.

    Linking follows ``register_mem_block_under_node_early()``: a block is
    linked under *every* node owning at least one present pfn in it.  The
    zone follows ``memory_block_add_nid()`` / ``early_node_zone_for_memory_block()``:
    the single populated zone of the block's only node, NULL (``none``)
    when a second node links or the node has several zones there.  (The
    kernel tests zone spans; on x86_64 only block 0 can meet two zone types,
    DMA and DMA32, and there span and present pages give the same answer.)
    Blocks with no present section do not exist (holes), unless they are
    offline (``Machine.offline_blocks``: hot-added or offlined memory).
    """
    per, bsz = block_zone_pages(m)
    nz_pages = per.sum(axis=2)  # [nblk, nnodes]
    present = nz_pages.sum(axis=1)
    exists = present > 0
    offline = np.zeros(exists.size, dtype=bool)
    off = np.fromiter(m.offline_blocks, dtype=np.int64, count=len(m.offline_blocks))
    offline[off] = True
    ids = np.flatnonzero(exists | offline)
    per = per[ids]
    flat = per.reshape(ids.size, -1)
    single = np.count_nonzero(flat, axis=1) == 1
    zone = np.where(single, flat.argmax(axis=1) % MAX_NR_ZONES, -1).astype(np.int8)
    nodes = nz_pages[ids] > 0
    for k in np.flatnonzero(offline[ids]).tolist():
        nodes[k, m.offline_blocks[int(ids[k])]] = True  # the mem->nid link
    return MemoryBlocks(bsz, ids, nodes, zone, present[ids], ~offline[ids])


def write_memory_block_state(m: Machine, block_id: int, text: str) -> None:
    """A write of ``/sys/devices/system/memory/memoryB/state`` (state_store).

    ``text``: "online", "offline", "online_kernel" or "online_movable"
    (sysfs_streq: one trailing newline allowed).  HotplugError carrying the
    errno state_store returns: ENOENT for no such block, EINVAL for other
    text or a block already in that state (device_online / device_offline
    return 1), EBUSY for an offline refused by an unmovable page, EPERM for
    a memory notifier's veto, EINVAL for a block with holes or several
    zones; the machine is then unchanged (a refused offline leaves the
    zone's pcp lists drained and the pageblocks it isolated MIGRATE_MOVABLE,
    as the kernel does: see memory_hotplug.offline_pages).
    """
    from . import memory_hotplug as mh
    b = mh.check_block_id(m, block_id)
    if not isinstance(text, str):
        raise HotplugError("EINVAL", f"memory{b}/state: expected text, got {show(text)}")
    word = text[:-1] if text.endswith("\n") else text
    if word not in mh.ONLINE_TYPES:
        raise HotplugError("EINVAL", f"memory{b}/state: {text[:40]!r} is not one of "
                                     f"{', '.join(mh.ONLINE_TYPES)}")
    if word == mh.MMOP_OFFLINE:
        mh.memory_block_offline(m, b)
    else:
        mh.memory_block_online(m, b, word)


def write_auto_online_blocks(m: Machine, text: str) -> None:
    """A write of ``/sys/devices/system/memory/auto_online_blocks``
    (auto_online_blocks_store): one of "offline", "online",
    "online_kernel", "online_movable" (mhp_online_type_from_str, sysfs_streq)
    sets how hot-added blocks come up; HotplugError EINVAL otherwise."""
    from . import memory_hotplug as mh
    word = text[:-1] if isinstance(text, str) and text.endswith("\n") else text
    if word not in mh.ONLINE_TYPES:
        raise HotplugError("EINVAL", f"auto_online_blocks: {show(text)} is not one of "
                                     f"{', '.join(mh.ONLINE_TYPES)}")
    m.hotplug.auto_online_blocks = str(word)


def eject_memory(m: Machine, start_pfn: int, nr_pages: int) -> bool:
    """A DIMM's eject (acpi_scan_hot_remove): offline each online block of
    [start_pfn, start_pfn + nr_pages) in order (acpi_scan_try_to_offline);
    when one refuses, online the ones taken back (memory_subsys_online:
    MMOP_ONLINE) and keep the memory; else remove it (acpi_memory_device_remove
    -> __remove_memory).  True when the memory went."""
    from . import memory_hotplug as mh
    n = mh.pages_per_block(m)
    taken: list[int] = []
    for b in range(start_pfn // n, (start_pfn + nr_pages) // n):
        if not mh.block_exists(m, b) or not mh.block_is_online(m, b):
            continue
        try:
            mh.memory_block_offline(m, b)
        except HotplugError:
            for t in taken:
                mh.memory_block_online(m, t)
            return False
        taken.append(b)
    mh.remove_memory(m, start_pfn, nr_pages)
    return True


def valid_zones(m: Machine, block_id: int) -> str:
    """``memoryB/valid_zones`` without its newline (valid_zones_show)."""
    from . import memory_hotplug as mh
    return mh.valid_zones(m, block_id)


__all__ = ["MAX_BLOCK_SIZE", "MEM_SIZE_FOR_LARGE_BLOCK", "MemoryBlocks", "block_zone_pages",
           "eject_memory", "memory_block_size_bytes", "memory_blocks", "valid_zones",
           "write_auto_online_blocks", "write_memory_block_state"]
