"""Export the model as a filesystem tree that real tools read
(``lsmem --sysroot``, ``lscpu --sysroot``, ``lstopo -i``; ``numactl`` and
``numastat`` with ``node/`` bind-mounted over ``/sys/devices/system/node``).

A tree holds ``sys/devices/system/{node,memory,cpu}`` (:mod:`.sysfs`),
``proc/`` (:mod:`.procfs`) and ``sys/kernel/debug/memlayout`` (:mod:`.debugfs`).

What each tool reflects of the model:
- lsmem: blocks x ``block_size_bytes`` (every block online); a block's node
  is the first ``node*`` entry ``readdir`` gives in ``memoryB/`` (one of the
  nodes owning pages there);
- lscpu, lstopo, numactl, numastat: ``nodeK/meminfo`` ``MemTotal`` = the
  node's managed pages, ``MemFree`` = its free pages; CPUs from ``cpumap``;
  distances from ``distance``.
"""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ..mm.errors import DnumaError
from . import procfs
from .debugfs import debugfs_tree
from .sysfs import sysfs_tree

if TYPE_CHECKING:
    from ..mm.dnuma import CommitReport
    from ..mm.machine import Machine
    from ..mm.memlayout_debugfs import MemlayoutDebugfs

PROC_DIR = "proc"
# sysroot entries write_sysroot owns: it replaces a directory holding only these
TOP_ENTRIES = frozenset({"sys", "proc"})
PROC_MODES = {"pagetypeinfo": 0o400}  # proc_create_seq("pagetypeinfo", 0400, ...)


@dataclass
class Tree:
    """Directories, files and symlinks to create, by path relative to the
    root (``/``-separated); a directory's parents are created with it, and
    a file or link must lie in a directory added to the tree."""

    dirs: list[str] = field(default_factory=list)
    files: list[tuple[str, str, int]] = field(default_factory=list)
    links: list[tuple[str, str]] = field(default_factory=list)

    def dir(self, path: str) -> None:
        self.dirs.append(path)

    def file(self, path: str, text: str, mode: int = 0o444) -> None:
        self.files.append((path, text, mode))

    def link(self, path: str, target: str) -> None:
        self.links.append((path, target))

    def write(self, root: str | Path) -> None:
        """Create everything under ``root`` (which must exist and be empty):
        one mkdir per directory (parents first), one open/write/close per
        file, one symlink per link."""
        r = os.fspath(root)
        mkdir, op, wr, cl, sl = os.mkdir, os.open, os.write, os.close, os.symlink
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
        for d in dict.fromkeys(p for x in self.dirs for p in _prefixes(x)):
            mkdir(f"{r}/{d}")
        for path, text, mode in self.files:
            fd = op(f"{r}/{path}", flags, mode)
            try:
                wr(fd, text.encode())
            finally:
                cl(fd)
        for path, target in self.links:
            sl(target, f"{r}/{path}")


def _prefixes(path: str) -> list[str]:
    """``a/b/c`` -> ``a``, ``a/b``, ``a/b/c``."""
    parts = path.split("/")
    return ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]


def proc_tree(m: Machine, t: Tree) -> None:
    """``proc/``: cpuinfo, meminfo, buddyinfo, pagetypeinfo, zoneinfo, vmstat."""
    t.dir(PROC_DIR)
    for name, fn in procfs.PROC_FILES.items():
        t.file(f"{PROC_DIR}/{name}", fn(m), PROC_MODES.get(name, 0o444))


def build_tree(m: Machine, debugfs: MemlayoutDebugfs | None = None) -> Tree:
    """The whole sysroot of ``m`` as a :class:`Tree` (nothing written yet)."""
    t = Tree()
    sysfs_tree(m, t)
    proc_tree(m, t)
    debugfs_tree(m, t, debugfs)
    return t


class SysrootError(DnumaError):
    """A sysroot that cannot be written (names the folder and why)."""


def check_sysroot_target(root: str | Path, what: str = "") -> Path:
    """``root`` as a Path if :func:`write_sysroot` may write there: absent (with
    a directory, or nothing but directories, above it), or a directory
    holding only ``sys`` and ``proc``.  Raises SysrootError (``what``, e.g.
    ``--sysroot ``, before the path) otherwise.  Cheap: commands call it
    before they build a machine."""
    root = Path(root)
    for up in root.absolute().parents:
        if up.exists():
            if not up.is_dir():
                raise SysrootError(f"{what}{root}: cannot create: {up} is not a directory")
            if not os.access(up, os.W_OK | os.X_OK):
                raise SysrootError(f"{what}{root}: cannot create: {up} is not writable")
            break
    if root.exists() and not root.is_dir():
        raise SysrootError(f"{what}{root}: not a directory, not a sysroot; refusing to "
                           "replace it")
    extra = _foreign(root)
    if extra is not None:
        raise SysrootError(f"{what}{root}: not a sysroot (holds {', '.join(extra[:5])}); "
                           "refusing to replace it")
    return root


def _foreign(root: Path) -> list[str] | None:
    """What in ``root`` a sysroot would not hold: None when ``root`` is absent,
    empty or holds only ``sys`` and ``proc``; ``[root]`` for a non-directory."""
    try:
        extra = sorted(set(os.listdir(root)) - TOP_ENTRIES)
    except FileNotFoundError:
        return None
    except NotADirectoryError:
        return [str(root)]
    return extra or None


def write_sysroot(m: Machine, root: str | Path,
                  debugfs: MemlayoutDebugfs | None = None) -> Path:
    """Write the sysroot of ``m`` into ``root`` and return ``root``.

    ``root`` is created with its parents; an existing tree there is replaced
    as a whole: the new one is written beside it and swapped in by two
    renames, so a reader sees a complete tree, old or new (or, between the
    renames, none).  Raises SysrootError, touching nothing, if ``root``
    is not a directory, holds anything but ``sys`` and ``proc``, or cannot
    be written.
    ``debugfs``: the machine's memlayout directory (for its user files).
    """
    root = check_sysroot_target(root)
    tree = build_tree(m, debugfs)
    tag = f"{os.getpid()}-{id(tree):x}"
    tmp = root.parent / f".{root.name}.new-{tag}"
    try:
        root.parent.mkdir(parents=True, exist_ok=True)
        tmp.mkdir()
    except OSError as exc:
        raise SysrootError(f"{root}: cannot create: {exc.strerror}") from None
    try:
        tree.write(tmp)
        _swap_in(tmp, root, root.parent / f".{root.name}.old-{tag}")
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise SysrootError(f"{root}: cannot write the tree: {exc.strerror}") from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return root


def _swap_in(tmp: Path, root: Path, old: Path) -> None:
    """Move the finished tree ``tmp`` to ``root``, dropping what was there."""
    if not root.exists():
        os.rename(tmp, root)
        return
    try:
        os.rename(root, old)
    except OSError:  # root is a mount point or busy: swap its entries one by one
        old.mkdir()
        for name in os.listdir(root):
            os.rename(root / name, old / name)
        for name in os.listdir(tmp):
            os.rename(tmp / name, root / name)
        tmp.rmdir()
        shutil.rmtree(old)
        return
    os.rename(tmp, root)
    shutil.rmtree(old)


_UNSAFE = re.compile(r"[^A-Za-z0-9._+-]+")
_TREE_NAME = re.compile(r"^(\d{2,}-.+|final)$")


def safe_name(name: str) -> str:
    """A layout event's name as a directory name: runs of characters other
    than letters, digits and ``._+-`` become ``_``; dots and ``_`` are
    stripped from both ends (no hidden name, no ``..``); at most 64
    characters; ``event`` if nothing is left."""
    s = _UNSAFE.sub("_", str(name)).strip("._")[:64].strip("._")
    return s or "event"


class SysrootWriter:
    """A run observer (see :class:`dnuma.sim.run.Observer`) writing one
    sysroot per layout event and one at the end.

    ``root/<NN>-<name>/`` is written right after the NN-th layout event
    (NN = 01, 02, ...; ``name`` through :func:`safe_name`) and
    ``root/final/`` by :meth:`finish`.  An event whose ``report`` is None
    (skipped: nothing was committed) writes no tree but still takes its
    number, so NN is always the event's ordinal in the run and a gap shows
    the skip.  Trees left in ``root`` by an earlier run (``NN-*`` and
    ``final`` directories holding only a sysroot) are removed when the
    writer is created; other entries are left alone.

    trees: the paths written, in order.
    """

    def __init__(self, m: Machine, root: str | Path,
                 debugfs: MemlayoutDebugfs | None = None) -> None:
        self.m = m
        self.root = Path(root)
        self.debugfs = debugfs
        self.trees: list[Path] = []
        self.events = 0
        self._final: Path | None = None
        self._clear_stale()

    def _clear_stale(self) -> None:
        if not self.root.is_dir():
            return
        for name in os.listdir(self.root):
            p = self.root / name
            if (_TREE_NAME.match(name) and p.is_dir() and not p.is_symlink()
                    and _foreign(p) is None):
                shutil.rmtree(p)

    def sample(self, t: float) -> None:
        """Samples write nothing."""

    def layout_event(self, t: float, name: str, report: CommitReport | None) -> None:
        """Write ``root/<NN>-<name>/`` for a committed layout (``t`` in seconds)."""
        self.events += 1
        if report is None:
            return
        path = self.root / f"{self.events:02d}-{safe_name(name)}"
        self.trees.append(write_sysroot(self.m, path, self.debugfs))

    def finish(self, t: float | None = None) -> Path:
        """Write ``root/final/`` (once; later calls return the same path)."""
        if self._final is None:
            self._final = write_sysroot(self.m, self.root / "final", self.debugfs)
            self.trees.append(self._final)
        return self._final


__all__ = ["PROC_DIR", "SysrootWriter", "Tree", "build_tree", "check_sysroot_target",
           "proc_tree", "safe_name", "write_sysroot"]
