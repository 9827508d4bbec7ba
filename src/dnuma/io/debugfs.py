"""The RFC's ``<debugfs>/memlayout/`` directory as files (mm/memlayout-debugfs.c),
read through :class:`dnuma.mm.memlayout_debugfs.MemlayoutDebugfs`.

Holds the counters (``moved-pages``, ``pfn-lookup-cache-hits``,
``pfn-lookup-cache-misses``), the user files (``start``, ``end``, ``node``,
``commit``, ``clear``: their last values, with the kernel's modes), a
``layout.<seq>/`` directory per installed or backlogged layout with one file
per range named as ``MemlayoutDebugfs.listdir`` names it, holding the nid,
and ``current`` -> ``layout.<seq>`` of the live layout.  One file per range:
a 256-pfn stripe of 1 TiB is a million files.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..mm.memlayout_debugfs import STAT_FILES, WRITABLE, MemlayoutDebugfs

if TYPE_CHECKING:
    from ..mm.machine import Machine
    from .export import Tree

DEBUGFS_DIR = "sys/kernel/debug/memlayout"
# memlayout-debugfs.c: debugfs_create_x64 (0600) for start/end, 0200 for the
# write-only files, 0400 for the counters and range files
FILE_MODES = {"start": 0o600, "end": 0o600, "node": 0o200, "commit": 0o200, "clear": 0o200}


def debugfs_tree(m: Machine, t: Tree, debugfs: MemlayoutDebugfs | None = None) -> None:
    """Add ``sys/kernel/debug/memlayout/`` to ``t``.  ``debugfs``: the
    machine's directory, for the user files' values (default: a fresh one)."""
    d = MemlayoutDebugfs(m) if debugfs is None else debugfs
    t.dir("sys/kernel/debug")
    t.dir(DEBUGFS_DIR)
    for name in (*STAT_FILES, *WRITABLE):
        t.file(f"{DEBUGFS_DIR}/{name}", d.read(name), FILE_MODES.get(name, 0o400))
    for seq, ml in sorted(d.layouts().items()):
        ld = f"{DEBUGFS_DIR}/layout.{seq}"
        t.dir(ld)
        # memlayout_create_debugfs_layout(): one u32 file per range
        for name, nid in ml.debugfs_names():
            t.file(f"{ld}/{name}", f"{nid}\n", 0o400)
    t.link(f"{DEBUGFS_DIR}/current", d.readlink("current"))


__all__ = ["DEBUGFS_DIR", "debugfs_tree"]
