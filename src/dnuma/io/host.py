"""Boot a model from a real machine: the running host's /proc and /sys, or a
saved folder of the same files (``tests/data/host-snapshot-1``).

Read: nodes, CPUs and distances from ``sys/devices/system/node``, memory
blocks from ``sys/devices/system/memory``, RAM from ``/proc/iomem``, zones
from ``/proc/zoneinfo``, free counts from ``/proc/buddyinfo``, pageblock
types from ``/proc/pagetypeinfo`` and, where readable, every pfn's state from
``/proc/kpageflags`` (or ``kpageflags.bin[.xz]`` in a folder).  Files are
looked up as ``ROOT/proc/NAME`` and then ``ROOT/NAME``.

How kpageflags becomes the model's state (fs/proc/page.c stable_page_flags):
- KPF_BUDDY is set on *every* page of a free buddy block (is_free_buddy_page),
  so free pages are known exactly; the buddy merges them back into maximal
  aligned blocks, which is what the kernel's lists hold.
- KPF_RESERVED, KPF_HWPOISON: reserved (present, not managed).
- Pages never handed to the allocator (deferred or unaccepted memory) carry no
  flags; they are the trailing flagless run of a zone, capped at what
  zoneinfo's ``present - managed`` leaves unexplained.  They become reserved.
- Every other present page is allocated: compound pages keep their order
  (head + tails), other pages are order 0; KPF_SLAB / KPF_LRU are kept.
  Pages on per-cpu lists carry no flags either and so count as allocated.
- Pageblock migratetypes are assigned to reproduce pagetypeinfo's "Number of
  blocks type" per zone: blocks with the most unmovable pages become
  Unmovable, then the most slab-heavy Reclaimable, the rest Movable.
Without kpageflags the model takes ``present - managed`` reserved pages at
the top of each zone and allocates ``managed - free`` (buddyinfo) order-0
pages from the zone's bottom, so per-zone free counts match but not their
orders or places.

Every file is a regular UTF-8 file of at most MAX_TEXT_BYTES; every size
taken from it is bounded before anything is allocated (RAM below
MAX_HOST_PFN and MAX_IMPORT_BYTES, CPU ids below NR_CPUS, node ids below
MAX_NUMNODES, zone counts nested, buddyinfo within the zone's managed
pages); a violation raises HostImportError naming the file and line.
"""

from __future__ import annotations

import itertools
import lzma
import os
import re
import stat
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from ..mm.constants import (
    MAX_MAX_NUMNODES,
    MIGRATE_MOVABLE,
    MIGRATE_RECLAIMABLE,
    MIGRATE_UNMOVABLE,
    X86_64,
    ZONE_DMA,
    ZONE_DMA32,
    ZONE_NAMES,
    ZONE_NORMAL,
    PageProfile,
    PG_lru,
    PG_slab,
)
from ..mm.errors import ConfigError, DnumaError, available_bytes
from ..mm.machine import InitialState, Machine, MachineConfig, block_cover
from ..mm.memlayout import MemLayout
from ..mm.memory_hotplug import ONLINE_TYPES
from ..mm.nodemask import bitmap_parselist
from .sysfs import CPU_DIR, MEMORY_DIR, NODE_DIR

# include/uapi/linux/kernel-page-flags.h (+ KPF_RESERVED from the hacking bits)
KPF_SLAB = 7
KPF_LRU = 5
KPF_BUDDY = 10
KPF_COMPOUND_HEAD = 15
KPF_COMPOUND_TAIL = 16
KPF_HWPOISON = 19
KPF_NOPAGE = 20
KPF_RESERVED = 32

# Bounds on what a host tree may declare, checked before anything is allocated.
MAX_HOST_PFN = 1 << 31  # pfns: the model's limit (int32 pfn lists), 8 TiB of 4 KiB pages
NR_CPUS = 8192  # CPU ids: x86_64's largest CONFIG_NR_CPUS (MAXSMP)
MAX_NUMNODES = MAX_MAX_NUMNODES  # node ids: 1 << NODES_SHIFT with CONFIG_NODES_SHIFT=10
MAX_TEXT_BYTES = 64 << 20  # bytes: the largest /proc or /sys text file read
MAX_IMPORT_BYTES = 16 << 30  # bytes: the most an import may allocate (host arrays + model)
IMPORT_BYTES_PER_PFN = 64  # bytes: what an import allocates per pfn (measured: ~55 with kpageflags)


class HostImportError(DnumaError, ValueError):
    """A host tree that cannot be read or booted (names the file and line)."""


@dataclass
class HostZone:
    """One zone as /proc/zoneinfo (and buddyinfo) show it; counts in pages."""

    nid: int
    name: str
    line: int = 0  # zoneinfo line of the zone's header (1-based)
    start_pfn: int = 0
    spanned: int = 0
    present: int = 0
    managed: int = 0
    free: int = 0
    nr_free: list[int] | None = None  # buddyinfo, per order
    blocks: dict[str, int] | None = None  # pagetypeinfo pageblocks per type
    # _watermark[WMARK_MIN..WMARK_PROMO] and lowmem_reserve[] (pages), as the
    # kernel computed them at its last setup_per_zone_wmarks/_lowmem_reserve
    wmark: list[int] | None = None
    protection: list[int] | None = None
    # watermark_boost (pages): zoneinfo's min/low/high/promo include it
    # (wmark_pages); kswapd clears it
    boost: int = 0
    # pcp->high of each CPU's pageset (pages): moved by every allocation and
    # free since boot (nr_pcp_alloc, decay_pcp_high), so history too
    pcp_high: dict[int, int] = field(default_factory=dict)


@dataclass
class HostFacts:
    """What the host's files say, parsed; pfns are exclusive at the end."""

    source: str
    ram: list[tuple[int, int]]
    possible: list[int]
    online: list[int]
    cpu_to_node: list[int]
    distance: dict[int, list[int]]
    block_size_bytes: int | None
    block_nodes: dict[int, list[int]]
    zones: list[HostZone]
    kpageflags: np.ndarray | None = None
    notes: list[str] = field(default_factory=list)
    min_free_kbytes: int | None = None  # /proc/sys/vm/min_free_kbytes
    thp: str | None = None  # transparent_hugepage/enabled: always, madvise or never
    auto_online_blocks: str | None = None  # memory/auto_online_blocks: how hot-adds come up


# ------------------------------------------------------------------ parsers
def parse_cpulist(text: str, where: str, limit: int = NR_CPUS,
                  limit_name: str = "NR_CPUS") -> list[int]:
    """``0-3,8,10-11`` -> [0, 1, 2, 3, 8, 10, 11] (the kernel's ``%*pbl``);
    every id below ``limit`` (checked before the list is expanded)."""
    for part in text.strip().split(",") if text.strip() else []:
        for num in part.strip().partition("-")[::2]:
            if num.strip().isdigit() and int(num) >= limit:
                raise HostImportError(f"{where}: {text.strip()!r}: id {int(num)} is beyond "
                                      f"{limit_name} ({limit})")
    try:
        return bitmap_parselist(text)
    except ValueError as exc:
        raise HostImportError(f"{where}: {exc}") from None


def parse_iomem(text: str, where: str, page_shift: int = 12) -> list[tuple[int, int]]:
    """Top-level ``System RAM`` lines -> [(start_pfn, end_pfn)), whole pages only
    (memblock trims partial pages at both ends)."""
    out: list[tuple[int, int]] = []
    lines: list[int] = []
    for i, line in enumerate(text.splitlines(), 1):
        if line.startswith(" ") or ": System RAM" not in line:
            continue
        mt = re.match(r"([0-9a-fA-F]{1,16})-([0-9a-fA-F]{1,16}) : System RAM", line)
        if not mt:
            raise HostImportError(f"{where}:{i}: cannot parse {line!r}")
        a, b = int(mt.group(1), 16), int(mt.group(2), 16) + 1
        if b <= a:
            raise HostImportError(f"{where}:{i}: empty range {line!r}")
        s, e = -(-a >> page_shift), b >> page_shift
        if e > MAX_HOST_PFN:
            raise HostImportError(f"{where}:{i}: System RAM {line.split(' :')[0]} ends at pfn "
                                  f"{e:#x}, beyond the model's limit of pfn {MAX_HOST_PFN:#x}")
        if e > s:
            out.append((s, e))
            lines.append(i)
    order = sorted(range(len(out)), key=lambda k: out[k])
    for k0, k1 in itertools.pairwise(order):
        if out[k1][0] < out[k0][1]:
            raise HostImportError(f"{where}:{lines[k1]}: System RAM pfns [{out[k1][0]:#x}, "
                                  f"{out[k1][1]:#x}) overlaps line {lines[k0]} "
                                  f"[{out[k0][0]:#x}, {out[k0][1]:#x})")
    if not out:
        raise HostImportError(f"{where}: no 'System RAM' ranges (addresses are shown to root only)")
    if all(s == 0 for s, _ in out) and len(out) > 1:
        raise HostImportError(f"{where}: all addresses are zero (read it as root)")
    return sorted(out)


_ZONE_HDR = re.compile(r"^Node (\d+), zone\s+(\S+)")


_ZONE_KEYS = {"pages free": "free", "spanned": "spanned", "present": "present",
              "managed": "managed", "start_pfn:": "start_pfn"}


def parse_zoneinfo(text: str, where: str) -> list[HostZone]:
    """/proc/zoneinfo -> zones (pages free, spanned, present, managed, start_pfn).

    Every zone needs pages free, spanned, present and managed, a populated one
    also start_pfn (zoneinfo_show_print() stops early for an empty zone); the
    counts must nest (managed <= present <= spanned) and the span end below
    :data:`MAX_HOST_PFN`."""
    zones: list[HostZone] = []
    cpu = -1  # the pageset being read
    seen: list[dict[str, int]] = []  # per zone: key -> line
    for i, line in enumerate(text.splitlines(), 1):
        mt = _ZONE_HDR.match(line)
        if mt:
            nid = int(mt.group(1))
            if nid >= MAX_NUMNODES:
                raise HostImportError(f"{where}:{i}: node {nid} is beyond MAX_NUMNODES "
                                      f"({MAX_NUMNODES})")
            zones.append(HostZone(nid, mt.group(2), line=i))
            seen.append({})
            cpu = -1  # the pageset being read
            continue
        s = line.strip()
        if zones and _wmark_line(zones[-1], s, where, i):
            continue
        if zones and _pcp_line(zones[-1], s, cpu):
            if s.startswith("cpu:"):
                cpu = int(s.split()[1])
            continue
        for k, attr in _ZONE_KEYS.items():
            if s.startswith(k + " ") or s.startswith(k + "\t"):
                if not zones:
                    raise HostImportError(f"{where}:{i}: {k!r} before any 'Node N, zone' line")
                val = s[len(k):].strip()
                if not val.isdigit() or len(val) > 20:
                    raise HostImportError(f"{where}:{i}: {k}: expected a number, got {val!r}")
                if int(val) > MAX_HOST_PFN:
                    raise HostImportError(f"{where}:{i}: node {zones[-1].nid} "
                                          f"{zones[-1].name}: {k} {val} pages reaches beyond "
                                          f"the model's limit of pfn {MAX_HOST_PFN:#x}")
                setattr(zones[-1], attr, int(val))
                seen[-1].setdefault(attr, i)
    if not zones:
        raise HostImportError(f"{where}: no 'Node N, zone NAME' lines")
    for z, keys in zip(zones, seen, strict=True):
        _check_zone(z, keys, where)
    return zones


_WMARK_KEYS = ("min", "low", "high", "promo")


def _wmark_line(z: HostZone, s: str, where: str, i: int) -> bool:
    """A zone's ``boost``, ``min``/``low``/``high``/``promo`` or ``protection: (...)``
    line into ``z`` (True), else False.  Only the first of each counts (the
    per-cpu part of zoneinfo below has other keys)."""
    w = s.split()
    if len(w) == 2 and w[0] == "boost" and w[1].isdigit() and len(w[1]) <= 20:
        z.boost = int(w[1])
        return True
    if len(w) == 2 and w[0] in _WMARK_KEYS and w[1].isdigit() and len(w[1]) <= 20:
        if z.wmark is None:
            z.wmark = [-1] * len(_WMARK_KEYS)
        k = _WMARK_KEYS.index(w[0])
        if z.wmark[k] < 0:
            z.wmark[k] = int(w[1])
        return True
    if w and w[0] == "protection:" and z.protection is None:
        body = s[len("protection:"):].strip()
        vals = body.strip("()").split(",")
        if not (body.startswith("(") and body.endswith(")")) or \
                not all(v.strip().isdigit() and len(v.strip()) <= 20 for v in vals):
            raise HostImportError(f"{where}:{i}: protection: expected '(N, N, ...)', got "
                                  f"{body!r}")
        z.protection = [int(v) for v in vals]
        return True
    return False


def _pcp_line(z: HostZone, s: str, cpu: int) -> bool:
    """A pageset's ``cpu: N`` line or its ``high:  N`` (CPU ``cpu``'s pcp->high,
    into ``z``): True, else False."""
    w = s.split()
    if len(w) != 2 or w[0] not in ("cpu:", "high:") or not w[1].isdigit() or len(w[1]) > 20:
        return False
    if w[0] == "high:" and cpu >= 0:
        z.pcp_high.setdefault(cpu, int(w[1]))
    return True


def _check_zone(z: HostZone, keys: dict[str, int], where: str) -> None:
    """The counts of one parsed zone present and nested (HostImportError)."""
    name = f"node {z.nid} {z.name}"
    need = ["free", "spanned", "present", "managed"] + (["start_pfn"] if z.present else [])
    for attr in need:
        if attr not in keys:
            key = next(k for k, a in _ZONE_KEYS.items() if a == attr).rstrip(":")
            raise HostImportError(f"{where}:{z.line}: {name}: no {key!r} line")
    line = keys.get

    def bad(attr: str, msg: str) -> HostImportError:
        return HostImportError(f"{where}:{line(attr, z.line)}: {name}: {msg}")
    if z.start_pfn + z.spanned > MAX_HOST_PFN:
        raise bad("spanned", f"spanned {z.spanned} pages from pfn {z.start_pfn:#x} reaches "
                             f"beyond the model's limit of pfn {MAX_HOST_PFN:#x}")
    if z.present > z.spanned:
        raise bad("present", f"present {z.present} is more than spanned {z.spanned}")
    if z.managed > z.present:
        raise bad("managed", f"managed {z.managed} is more than present {z.present}")


def parse_buddyinfo(text: str, where: str) -> dict[tuple[int, str], list[int]]:
    """/proc/buddyinfo -> {(nid, zone): nr_free per order}."""
    return {k: v for k, (_i, v) in _buddyinfo_lines(text, where).items()}


def _buddyinfo_lines(text: str, where: str) -> dict[tuple[int, str], tuple[int, list[int]]]:
    """/proc/buddyinfo -> {(nid, zone): (line, nr_free per order)}; counts are
    whole numbers below :data:`MAX_HOST_PFN`, a zone appears once."""
    out: dict[tuple[int, str], tuple[int, list[int]]] = {}
    for i, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        mt = _ZONE_HDR.match(line)
        rest = line[mt.end():].split() if mt else []
        if not mt or not rest:
            raise HostImportError(f"{where}:{i}: cannot parse {line!r} (expected 'Node N, "
                                  f"zone NAME' and a count per order)")
        key = (int(mt.group(1)), mt.group(2))
        name = f"node {key[0]} {key[1]}"
        for o, x in enumerate(rest):
            if not x.isdigit() or len(x) > 20 or int(x) > MAX_HOST_PFN:
                raise HostImportError(f"{where}:{i}: {name}: cannot parse the count of order "
                                      f"{o}: {x!r} is not a number of free blocks")
        if key in out:
            raise HostImportError(f"{where}:{i}: {name} again (first on line {out[key][0]})")
        out[key] = (i, [int(x) for x in rest])
    return out


def parse_pagetypeinfo_blocks(text: str, where: str) -> dict[tuple[int, str], dict[str, int]]:
    """The "Number of blocks type" table of /proc/pagetypeinfo ->
    {(nid, zone): {type name: pageblocks}}."""
    lines = text.splitlines()
    try:
        h = next(i for i, ln in enumerate(lines) if ln.startswith("Number of blocks type"))
    except StopIteration:
        raise HostImportError(f"{where}: no 'Number of blocks type' table") from None
    names = lines[h][len("Number of blocks type"):].split()
    out: dict[tuple[int, str], dict[str, int]] = {}
    for i in range(h + 1, len(lines)):
        mt = _ZONE_HDR.match(lines[i])
        if not mt:
            break
        vals = lines[i][mt.end():].split()
        if len(vals) != len(names) or not all(v.isdigit() for v in vals):
            raise HostImportError(f"{where}:{i + 1}: expected {len(names)} counts")
        out[(int(mt.group(1)), mt.group(2))] = dict(zip(names, map(int, vals), strict=True))
    return out


# ------------------------------------------------------------------ reading a tree
def _find(root: Path, name: str) -> Path | None:
    for p in (root / "proc" / name, root / name):
        if p.exists():
            return p
    return None


def _read(root: Path, name: str, required: bool = True) -> tuple[str, str] | None:
    p = _find(root, name)
    if p is None:
        if required:
            raise HostImportError(f"{root}: no proc/{name} or {name} (no such file)")
        return None
    return _text(p), str(p)


_KINDS = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"),
          (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
          (stat.S_ISSOCK, "a socket"))


def file_kind(mode: int) -> str:
    """What a non-regular file is, in words (``a FIFO``, ``a directory``...)."""
    return next((what for test, what in _KINDS if test(mode)), "not a file")


def _text(p: Path) -> str:
    """A regular file's UTF-8 text (at most :data:`MAX_TEXT_BYTES`), or a
    HostImportError naming it.  /proc and /sys files are regular files: a
    FIFO or a device is refused before it is opened."""
    try:
        st = p.stat()
        if not stat.S_ISREG(st.st_mode):
            raise HostImportError(f"{p}: {file_kind(st.st_mode)}, not a regular file")
        with open(p, "rb") as f:  # in pieces: a /proc/sys read allocates what is asked
            parts, n = [], 0
            while n <= MAX_TEXT_BYTES and (part := f.read(1 << 16)):
                parts.append(part)
                n += len(part)
            raw = b"".join(parts)
    except OSError as exc:
        raise HostImportError(f"{p}: {exc.strerror or exc}") from None
    if len(raw) > MAX_TEXT_BYTES:
        raise HostImportError(f"{p}: larger than {MAX_TEXT_BYTES >> 20} MiB, not a /proc or "
                              f"/sys text file")
    try:
        return raw.decode()
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise HostImportError(f"{p}:{line}: not UTF-8 text (byte {raw[exc.start]:#04x} at "
                              f"offset {exc.start})") from None


def _listdir(p: Path) -> list[str]:
    try:
        return sorted(os.listdir(p))
    except OSError as exc:
        raise HostImportError(f"{p}: {exc.strerror}") from None


def read_kpageflags(root: Path, nr_pfns: int) -> tuple[np.ndarray | None, str]:
    """One u64 per pfn for [0, nr_pfns), from proc/kpageflags or
    kpageflags.bin[.xz]; (None, why) where there is none readable."""
    if nr_pfns > MAX_HOST_PFN:
        raise HostImportError(f"{root}: {nr_pfns:#x} pfns of kpageflags is beyond the model's "
                              f"limit of {MAX_HOST_PFN:#x}")
    for p in (root / "proc" / "kpageflags", root / "kpageflags"):
        if p.exists():
            _regular(p)
            try:
                with open(p, "rb") as f:
                    raw = f.read(nr_pfns * 8)
            except OSError as exc:
                return None, f"{p}: {exc.strerror}"
            return _u64(raw, nr_pfns, str(p)), str(p)
    for name, opener in (("kpageflags.bin.xz", lzma.open), ("kpageflags.bin", open)):
        p = root / name
        if p.exists():
            _regular(p)
            try:
                with opener(p, "rb") as f:
                    raw = f.read(nr_pfns * 8)
            except EOFError:  # lzma: the stream ends before its end marker
                raise HostImportError(f"{p}: truncated xz stream (it ends before its "
                                      f"end-of-stream marker)") from None
            except (OSError, lzma.LZMAError) as exc:
                raise HostImportError(f"{p}: {getattr(exc, 'strerror', None) or exc}") from None
            return _u64(raw, nr_pfns, str(p)), str(p)
    return None, "no proc/kpageflags or kpageflags.bin[.xz]"


def _regular(p: Path) -> None:
    """HostImportError unless ``p`` is a regular file (a FIFO would block)."""
    try:
        mode = p.stat().st_mode
    except OSError as exc:
        raise HostImportError(f"{p}: {exc.strerror or exc}") from None
    if not stat.S_ISREG(mode):
        raise HostImportError(f"{p}: {file_kind(mode)}, not a regular file")


def _u64(raw: bytes, nr_pfns: int, where: str) -> np.ndarray:
    if len(raw) % 8:
        raise HostImportError(f"{where}: {len(raw)} bytes is not a whole number of u64")
    if len(raw) < nr_pfns * 8:
        raise HostImportError(f"{where}: covers {len(raw) // 8:#x} pfns, but RAM ends at pfn "
                              f"{nr_pfns:#x} (truncated?)")
    return np.frombuffer(raw, dtype="<u8")


def _node_dirs(root: Path) -> list[int]:
    d = root / NODE_DIR
    if not d.is_dir():
        return []
    nodes = sorted(int(n[4:]) for n in _listdir(d) if n.startswith("node") and n[4:].isdigit())
    if nodes and nodes[-1] >= MAX_NUMNODES:
        raise HostImportError(f"{d / f'node{nodes[-1]}'}: node {nodes[-1]} is beyond "
                              f"MAX_NUMNODES ({MAX_NUMNODES})")
    return nodes


def _check_memory(end_pfn: int, where: str) -> None:
    """Refuse RAM up to ``end_pfn`` whose import would need more than
    :data:`MAX_IMPORT_BYTES` or the memory available, before allocating."""
    need = end_pfn * IMPORT_BYTES_PER_PFN
    avail = available_bytes()
    for limit, what in ((MAX_IMPORT_BYTES, "the import cap (host.MAX_IMPORT_BYTES)"),
                        (avail, "the memory available")):
        if limit is not None and need > limit:
            raise HostImportError(f"{where}: System RAM up to pfn {end_pfn:#x} would need "
                                  f"about {need:,} bytes to import ({IMPORT_BYTES_PER_PFN} a "
                                  f"pfn), more than {limit:,} bytes of {what}")


def _buddyinfo_into(zones: list[HostZone], text: str, where: str) -> None:
    """Set each zone's ``nr_free`` from /proc/buddyinfo: one count per order
    (NR_PAGE_ORDERS of them), a zone zoneinfo has, and no more free pages
    than the zone's managed pages."""
    by_key = {(z.nid, z.name): z for z in zones}
    orders = X86_64.nr_page_orders
    for key, (i, counts) in _buddyinfo_lines(text, where).items():
        name = f"node {key[0]} {key[1]}"
        z = by_key.get(key)
        if z is None:
            raise HostImportError(f"{where}:{i}: {name}: no such zone in zoneinfo")
        if len(counts) != orders:
            raise HostImportError(f"{where}:{i}: {name}: {len(counts)} orders, expected "
                                  f"{orders} (NR_PAGE_ORDERS, orders 0-{orders - 1})")
        free = sum(c << o for o, c in enumerate(counts))
        if free > z.managed:
            raise HostImportError(f"{where}:{i}: {name}: {free} free pages (nr_free << order "
                                  f"summed), more than the zone's managed {z.managed} "
                                  f"(zoneinfo)")
        z.nr_free = counts


def read_host(root: str | os.PathLike[str] = "/", kpageflags: bool = True) -> HostFacts:
    """Parse a host tree (``/`` for the running machine, or a saved folder)."""
    r = Path(root)
    if not r.is_dir():
        raise HostImportError(f"{r}: not a directory")
    notes: list[str] = []
    text, where = _read(r, "iomem")  # type: ignore[misc]
    ram = parse_iomem(text, where)
    _check_memory(max(e for _s, e in ram), where)
    # buddyinfo before zoneinfo: on a live host managed only grows (deferred
    # struct page init), so the free pages read first fit the managed read after
    bi = _read(r, "buddyinfo", required=False)
    text, where = _read(r, "zoneinfo")  # type: ignore[misc]
    zones = parse_zoneinfo(text, where)
    if not any(z.present for z in zones):
        raise HostImportError(f"{where}: no zone has present pages")
    if bi is not None:
        _buddyinfo_into(zones, *bi)
    pt = _read(r, "pagetypeinfo", required=False)
    if pt is not None:
        blocks = parse_pagetypeinfo_blocks(*pt)
        for z in zones:
            z.blocks = blocks.get((z.nid, z.name))

    nodes = _node_dirs(r)
    def _list(name: str, default: list[int]) -> list[int]:
        p = r / NODE_DIR / name
        return parse_cpulist(_text(p), str(p), MAX_NUMNODES, "MAX_NUMNODES") \
            if p.exists() else default

    if not nodes:
        nodes = sorted({z.nid for z in zones})
        notes.append(f"no {NODE_DIR}: nodes taken from zoneinfo")
    possible = _list("possible", nodes)
    online = _list("online", nodes)
    cpu_possible_p = r / CPU_DIR / "possible"
    cpus = parse_cpulist(_text(cpu_possible_p), str(cpu_possible_p)) \
        if cpu_possible_p.exists() else [0]
    if not cpus:
        raise HostImportError(f"{cpu_possible_p}: no CPUs")
    ncpu = max(cpus) + 1
    cpu_to_node = [0] * ncpu
    distance: dict[int, list[int]] = {}
    for n in nodes:
        nd = r / NODE_DIR / f"node{n}"
        cl = nd / "cpulist"
        for c in parse_cpulist(_text(cl), str(cl)) if cl.exists() else []:
            if c >= ncpu:
                cpu_to_node.extend([0] * (c + 1 - ncpu))
                ncpu = c + 1
            cpu_to_node[c] = n
        dp = nd / "distance"
        if dp.exists():
            vals = _text(dp).split()
            if not vals or not all(v.isdigit() for v in vals):
                raise HostImportError(f"{dp}: expected numbers, got {_text(dp).strip()!r}")
            if len(vals) != len(online):
                raise HostImportError(f"{dp}: {len(vals)} distances for {len(online)} online "
                                      f"nodes (one per online node, in order)")
            distance[n] = [int(v) for v in vals]

    bsb: int | None = None
    block_nodes: dict[int, list[int]] = {}
    md = r / MEMORY_DIR
    if (md / "block_size_bytes").exists():
        t = _text(md / "block_size_bytes").strip()
        try:
            bsb = int(t, 16)
        except ValueError:
            raise HostImportError(f"{md / 'block_size_bytes'}: not hex: {t!r}") from None
        if bsb <= 0 or bsb & (bsb - 1) or bsb < 1 << X86_64.section_size_bits:
            raise HostImportError(f"{md / 'block_size_bytes'}: {t} is not a power of two of "
                                  f"at least one section")
        for b in _listdir(md):
            if b.startswith("memory") and b[6:].isdigit():
                block_nodes[int(b[6:])] = sorted(int(e[4:]) for e in _listdir(md / b)
                                                 if e.startswith("node") and e[4:].isdigit())
    facts = HostFacts(str(r), ram, possible, online, cpu_to_node, distance, bsb,
                      block_nodes, zones, notes=notes)
    for mf in (r / "proc" / "sys" / "vm" / "min_free_kbytes", r / "min_free_kbytes"):
        if mf.exists():
            t = _text(mf).strip()
            if not t.isdigit() or len(t) > 12:
                raise HostImportError(f"{mf}: expected a number of kB, got {t[:40]!r}")
            facts.min_free_kbytes = int(t)
            break
    te = r / "sys" / "kernel" / "mm" / "transparent_hugepage" / "enabled"
    if te.exists():
        mt = re.search(r"\[(always|madvise|never)\]", _text(te))
        if not mt:
            raise HostImportError(f"{te}: expected the mode in brackets, e.g. "
                                  f"'always [madvise] never'")
        facts.thp = mt.group(1)
    ao = md / "auto_online_blocks"
    if ao.exists():
        t = _text(ao).strip()
        if t not in ONLINE_TYPES:
            raise HostImportError(f"{ao}: expected one of {', '.join(ONLINE_TYPES)}, got "
                                  f"{t[:40]!r}")
        facts.auto_online_blocks = t
    if kpageflags:
        end = max(e for _s, e in ram)
        facts.kpageflags, why = read_kpageflags(r, end)
        if facts.kpageflags is None:
            notes.append(f"kpageflags not used ({why}): free counts from buddyinfo")
    else:
        notes.append("kpageflags not used (asked not to): free counts from buddyinfo")
    return facts


# ------------------------------------------------------------------ the machine
def _ram_by_node(f: HostFacts) -> list[tuple[int, int, int]]:
    """RAM ranges cut into nodes by each node's zone spans (zoneinfo), else by
    the memory blocks' node links, else node 0."""
    spans: dict[int, list[int]] = {}
    for z in f.zones:
        if z.spanned:
            lo, hi = spans.setdefault(z.nid, [z.start_pfn, z.start_pfn + z.spanned])
            spans[z.nid] = [min(lo, z.start_pfn), max(hi, z.start_pfn + z.spanned)]
    cuts = sorted({p for lo, hi in spans.values() for p in (lo, hi)})
    out: list[tuple[int, int, int]] = []
    for s, e in f.ram:
        pts = [s, *(c for c in cuts if s < c < e), e]
        for lo, hi in itertools.pairwise(pts):
            owners = [n for n, (a, b) in spans.items() if a <= lo and hi <= b]
            if len(owners) == 1:
                nid = owners[0]
            elif f.block_nodes and f.block_size_bytes:
                blk = (lo << 12) // f.block_size_bytes
                nid = (f.block_nodes.get(blk) or [0])[0]
            else:
                nid = owners[0] if owners else 0
            out.append((lo, hi, nid))
    return out


def _distance_matrix(f: HostFacts, nids: list[int]) -> tuple[tuple[int, ...], ...] | None:
    """nodeK/distance lists are positional over the online nodes."""
    if not f.distance:
        return None
    k = max(nids) + 1
    m = [[10 if a == b else 20 for b in range(k)] for a in range(k)]
    cols = f.online if f.online else sorted(f.distance)
    for a, row in f.distance.items():
        if a >= k or len(row) != len(cols):
            continue
        for b, d in zip(cols, row, strict=True):
            if b < k:
                m[a][b] = d
    return tuple(tuple(r) for r in m)


def _runs(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """[start, end) of the runs of True in ``mask``."""
    d = np.diff(mask.view(np.int8), prepend=np.int8(0), append=np.int8(0))
    return np.flatnonzero(d == 1), np.flatnonzero(d == -1)


def _ranges(mask: np.ndarray) -> tuple[tuple[int, int], ...]:
    s, e = _runs(mask)
    return tuple(zip(s.tolist(), e.tolist(), strict=True))


def _bit(a: np.ndarray, b: int) -> np.ndarray:
    return ((a >> np.uint64(b)) & np.uint64(1)).astype(bool)


def _zone_idx(npfn: int, profile: PageProfile) -> np.ndarray:
    """The zone index of every pfn by the arch zone limits (int8), as
    Machine.zone_idx_of_pfn / zone_sizes_init place them."""
    z = np.full(npfn, ZONE_NORMAL, dtype=np.int8)
    z[:profile.dma32_limit_bytes >> profile.page_shift] = ZONE_DMA32
    z[:profile.dma_limit_bytes >> profile.page_shift] = ZONE_DMA
    return z


def _aligned_blocks(s: int, e: int, max_order: int) -> list[tuple[int, int]]:
    """[s, e) as maximal naturally aligned blocks: (pfn, order)."""
    out = []
    while s < e:
        o = min(max_order, (s & -s).bit_length() - 1 if s else max_order)
        while s + (1 << o) > e:
            o -= 1
        out.append((s, o))
        s += 1 << o
    return out


@dataclass
class _State:
    reserved: np.ndarray  # bool per pfn
    init: InitialState
    notes: list[str]


def _populated_zones(f: HostFacts) -> Iterator[tuple[HostZone, int]]:
    """The host's zones with present pages that the model has, with their
    zone index."""
    for z in f.zones:
        if z.present and z.name in ZONE_NAMES:
            yield z, ZONE_NAMES.index(z.name)


def _state_from_kpageflags(f: HostFacts, present: np.ndarray, zidx: np.ndarray,
                           nid: np.ndarray, max_order: int, pb_order: int) -> _State:
    kpf = f.kpageflags
    assert kpf is not None
    notes: list[str] = []
    flagless = kpf == 0
    reserved = present & (_bit(kpf, KPF_RESERVED) | _bit(kpf, KPF_HWPOISON))
    buddy = present & _bit(kpf, KPF_BUDDY) & ~reserved
    # pages never handed to the allocator: each zone's trailing flagless run,
    # capped at present - managed - reserved (zoneinfo)
    for z, zi in _populated_zones(f):
        lo, hi = z.start_pfn, z.start_pfn + z.spanned
        sel = present[lo:hi] & (zidx[lo:hi] == zi) & (nid[lo:hi] == z.nid)
        need = z.present - z.managed - int((reserved[lo:hi] & sel).sum())
        if need <= 0:
            continue
        idx = np.flatnonzero(sel)
        not_flagless = np.flatnonzero(~flagless[lo:hi][idx])
        trail = idx.size - (int(not_flagless[-1]) + 1 if not_flagless.size else 0)
        take = min(trail, need)
        reserved[lo + idx[idx.size - take:]] = True
        if take:
            notes.append(f"node {z.nid} {z.name}: {take} trailing pages with no flags "
                         f"taken as not yet handed to the allocator (deferred/unaccepted)")
        if take < need:
            notes.append(f"node {z.nid} {z.name}: {need - take} pages of present - managed "
                         f"not found as reserved or trailing flagless pages (drift)")
    alloc = present & ~reserved & ~buddy
    # allocated blocks: compound head + tails keep their order, the rest order 0
    head = alloc & _bit(kpf, KPF_COMPOUND_HEAD)
    tail = alloc & _bit(kpf, KPF_COMPOUND_TAIL) & ~head
    nontail = np.append(np.flatnonzero(~tail), tail.size)  # the end stops the last run
    heads = np.flatnonzero(head)
    nxt = nontail[np.searchsorted(nontail, heads, side="right")] \
        if heads.size else heads
    length = nxt - heads
    pfn_l: list[np.ndarray] = []
    ord_l: list[np.ndarray] = []
    pow2 = (length & (length - 1)) == 0
    order = np.log2(np.maximum(length, 1)).astype(np.int64)
    ok = pow2 & ((heads & (length - 1)) == 0) & (order <= max_order)
    pfn_l.append(heads[ok])
    ord_l.append(order[ok])
    odd = 0
    for h, n in zip(heads[~ok].tolist(), length[~ok].tolist(), strict=True):
        blocks = _aligned_blocks(h, h + n, max_order)
        pfn_l.append(np.array([b[0] for b in blocks], dtype=np.int64))
        ord_l.append(np.array([b[1] for b in blocks], dtype=np.int64))
        odd += 1
    if odd:
        notes.append(f"{odd} compound pages larger than MAX_PAGE_ORDER or unaligned, "
                     f"split into aligned blocks")
    covered = block_cover(heads, length, present.size) > 0
    singles = np.flatnonzero(alloc & ~covered)
    pfn_l.append(singles)
    ord_l.append(np.zeros(singles.size, dtype=np.int64))
    pfns = np.concatenate(pfn_l).astype(np.int64)
    orders = np.concatenate(ord_l).astype(np.int64)
    fl = np.where(_bit(kpf[pfns], KPF_SLAB), PG_slab, 0) | \
        np.where(_bit(kpf[pfns], KPF_LRU), PG_lru, 0)
    pb_mt = _pageblock_types(f, kpf, alloc, present, zidx, nid, pb_order)
    init = InitialState(pfns, orders, fl.astype(np.uint8), None, pb_mt)
    return _State(reserved, init, notes)


def _pageblock_types(f: HostFacts, kpf: np.ndarray, alloc: np.ndarray, present: np.ndarray,
                     zidx: np.ndarray, nid: np.ndarray, pb_order: int) -> np.ndarray:
    """A migratetype per pageblock reproducing pagetypeinfo's block counts."""
    npb = present.size >> pb_order
    unmov = (alloc & ~_bit(kpf, KPF_LRU))[:npb << pb_order].reshape(npb, -1).sum(1)
    slab = (alloc & _bit(kpf, KPF_SLAB))[:npb << pb_order].reshape(npb, -1).sum(1)
    pb_mt = np.full(npb, MIGRATE_MOVABLE, dtype=np.int8)
    for z, zi in _populated_zones(f):
        # pagetypeinfo_showblockcount_print() steps from zone_start_pfn
        pfn = np.arange(z.start_pfn, z.start_pfn + z.spanned, 1 << pb_order, dtype=np.int64)
        pfn = pfn[present[pfn] & (zidx[pfn] == zi) & (nid[pfn] == z.nid)]
        pbs = pfn >> pb_order
        if z.blocks:
            n_u = z.blocks.get("Unmovable", 0)
            n_r = z.blocks.get("Reclaimable", 0)
        else:
            n_u, n_r = int((unmov[pbs] > 0).sum()), 0
        by_u = pbs[np.argsort(-unmov[pbs], kind="stable")]
        pb_mt[by_u[:n_u]] = MIGRATE_UNMOVABLE
        rest = by_u[n_u:]
        by_r = rest[np.argsort(-slab[rest], kind="stable")]
        pb_mt[by_r[:n_r]] = MIGRATE_RECLAIMABLE
    return pb_mt


def _state_from_counts(f: HostFacts, present: np.ndarray, zidx: np.ndarray,
                       nid: np.ndarray) -> _State:
    """No kpageflags: reserved at each zone's top, allocated at its bottom."""
    reserved = np.zeros(present.size, dtype=bool)
    allocs: list[np.ndarray] = []
    for z, zi in _populated_zones(f):
        lo, hi = z.start_pfn, z.start_pfn + z.spanned
        idx = lo + np.flatnonzero(present[lo:hi] & (zidx[lo:hi] == zi) & (nid[lo:hi] == z.nid))
        nres = max(0, min(idx.size, z.present - z.managed))
        reserved[idx[idx.size - nres:]] = True
        free = sum(c << o for o, c in enumerate(z.nr_free)) if z.nr_free else z.free
        nalloc = max(0, min(idx.size - nres, z.managed - free))
        allocs.append(idx[:nalloc])
    pfns = np.concatenate(allocs) if allocs else np.zeros(0, dtype=np.int64)
    init = InitialState(pfns.astype(np.int64), np.zeros(pfns.size, dtype=np.int64),
                        np.zeros(pfns.size, dtype=np.uint8))
    return _State(reserved, init, ["allocated pages placed as order 0 at each zone's bottom"])


@dataclass
class ImportResult:
    """A booted model and how it compares with the host it came from."""

    machine: Machine
    facts: HostFacts
    zones: list[dict[str, Any]]
    notes: list[str]

    def summary(self) -> dict[str, Any]:
        return {"source": self.facts.source, "zones": self.zones, "notes": self.notes,
                "kpageflags": self.facts.kpageflags is not None}


def boot_from_host(root: str | os.PathLike[str] = "/", kpageflags: bool = True,
                   max_numnodes: int | None = None,
                   maxmem_pfn: int | None = None) -> ImportResult:
    """Boot a model from a host tree; see the module docstring for the rules.
    ``maxmem_pfn``: MachineConfig.maxmem_pfn, the room for hot-added memory
    (None: the host's RAM end, no room).
    Every size is bounded by the files' checks (:data:`MAX_HOST_PFN`,
    :data:`NR_CPUS`, :data:`MAX_NUMNODES`); a machine that still does not fit
    in this machine's memory raises HostImportError too."""
    try:
        return _boot_from_host(root, kpageflags, max_numnodes, maxmem_pfn)
    except MemoryError:
        raise HostImportError(f"{root}: not enough memory to model this host") from None


def _boot_from_host(root: str | os.PathLike[str], kpageflags: bool,
                    max_numnodes: int | None, maxmem_pfn: int | None = None) -> ImportResult:
    f = read_host(root, kpageflags=kpageflags)
    ram = _ram_by_node(f)
    nids = sorted({n for *_r, n in ram} | set(f.cpu_to_node) | set(f.possible))
    profile = X86_64
    end = max(e for _s, e, _n in ram)
    sec = profile.pages_per_section
    npfn = -(-end // sec) * sec
    for z in f.zones:
        if z.present and z.start_pfn + z.spanned > npfn:
            raise HostImportError(f"{f.source}: zoneinfo line {z.line}: node {z.nid} {z.name} "
                                  f"spans to pfn {z.start_pfn + z.spanned:#x}, beyond the "
                                  f"System RAM of iomem (pfn {end:#x})")
    present = np.zeros(npfn, dtype=bool)
    nid = np.zeros(npfn, dtype=np.int16)
    for s, e, n in ram:
        present[s:e] = True
        nid[s:e] = n
    zidx = _zone_idx(npfn, profile)
    notes = list(f.notes)
    for z in f.zones:
        if z.present and z.name not in ZONE_NAMES[:3]:
            raise HostImportError(f"{f.source}: zone {z.name} on node {z.nid} has pages: "
                                  f"the model has no such zone")
    if f.kpageflags is not None:
        kpf = f.kpageflags[:npfn]
        if kpf.size < npfn:  # RAM ends inside the last section: the rest is no RAM
            kpf = np.concatenate((kpf, np.full(npfn - kpf.size, 1 << KPF_NOPAGE, np.uint64)))
        f.kpageflags = kpf
        nopage = present & _bit(kpf, KPF_NOPAGE)
        if nopage.any():  # no struct page (pfn_to_online_page() is NULL): a hole
            notes.append(f"{int(nopage.sum())} pfns of System RAM have no online struct page "
                         f"(KPF_NOPAGE): holes in the model")
            present &= ~nopage
            ram = [(int(a), int(b) + 1, int(n))
                   for a, b, n in MemLayout.from_nid_array(nid, present)]
        st = _state_from_kpageflags(f, present, zidx, nid, profile.max_page_order,
                                    profile.pageblock_order)
    else:
        st = _state_from_counts(f, present, zidx, nid)
    notes += st.notes
    if set(f.possible) != set(range(max(nids) + 1)):
        notes.append(f"the host's possible nodes {f.possible} widened to 0-{max(nids)} and "
                     f"up to max_numnodes for new nodes")
    cfg = MachineConfig(
        ram=tuple(ram), cpu_to_node=tuple(f.cpu_to_node), profile=profile,
        max_numnodes=max_numnodes or max(8, max(nids) + 1),
        distance=_distance_matrix(f, nids), reserved=_ranges(st.reserved),
        memory_block_bytes=f.block_size_bytes, maxmem_pfn=maxmem_pfn)
    try:
        m = Machine(cfg, st.init)
    except ConfigError as exc:
        raise HostImportError(f"{f.source}: {exc}") from None
    notes += _take_history(m, f)
    return ImportResult(m, f, compare_zones(m, f), notes)


def _take_history(m: Machine, f: HostFacts) -> list[str]:
    """The state the kernel computed from an earlier moment's managed pages
    (at init, before the initramfs was freed; or at the last hotplug or
    sysctl write) and has kept since: min_free_kbytes, each zone's
    watermarks and lowmem_reserve; and each pageset's pcp->high, which every
    allocation and free since boot has moved.  The model cannot derive them from today's
    counts, so it takes them as they are, and recomputes them when the
    kernel would."""
    taken = []
    if f.thp is not None:  # hugepage_pmd_enabled() and whether khugepaged runs
        m.vm = replace(m.vm, thp=f.thp != "never")
        m.khugepaged_thread = m.vm.thp
        taken.append(f"THP {f.thp}")
    if f.auto_online_blocks is not None:
        m.hotplug.auto_online_blocks = f.auto_online_blocks
    if f.min_free_kbytes is not None:
        m.min_free_kbytes = f.min_free_kbytes
        taken.append("min_free_kbytes")
    S = m.S
    nr = S.lowmem_reserve.shape[1]
    for z in f.zones:
        if z.name not in ZONE_NAMES or z.nid >= m.topo.max_numnodes:
            continue
        gz = z.nid * len(ZONE_NAMES) + ZONE_NAMES.index(z.name)
        if z.wmark is not None and min(z.wmark) >= 0:
            # _watermark[]: what zoneinfo shows less the boost (the model keeps none)
            S.wmark[gz, :len(z.wmark)] = [max(0, w - z.boost) for w in z.wmark]
            if "watermarks" not in taken:
                taken.append("watermarks")
        # 6.12 with CONFIG_ZONE_DEVICE has one more zone than the model (always
        # empty, last): its column is dropped
        if z.protection is not None and len(z.protection) in (nr, nr + 1):
            S.lowmem_reserve[gz] = z.protection[:nr]
            if "protection" not in taken:
                taken.append("protection")
        for cpu, high in z.pcp_high.items():
            if cpu < m.nr_cpus:
                S.pcp_high[cpu, gz] = high
                if "pcp high" not in taken:
                    taken.append("pcp high")
    return [f"taken as the kernel holds them (history): {', '.join(taken)}"] if taken else []


def compare_zones(m: Machine, f: HostFacts) -> list[dict[str, Any]]:
    """Per populated host zone: the host's figures beside the model's."""
    rows = []
    for z, zi in _populated_zones(f):
        mz = m.zone(z.nid, zi)
        row: dict[str, Any] = {"node": z.nid, "zone": z.name}
        for key, host, model in (
                ("start_pfn", z.start_pfn, mz.zone_start_pfn),
                ("spanned", z.spanned, mz.spanned_pages),
                ("present", z.present, mz.present_pages),
                ("managed", z.managed, mz.managed_pages),
                ("free", z.free, mz.nr_free_pages)):
            row[key] = {"host": host, "model": int(model)}
        if z.nr_free is not None:
            row["nr_free"] = {"host": list(z.nr_free), "model": [int(x) for x in mz.nr_free()]}
        rows.append(row)
    return rows


__all__ = ["HostFacts", "HostImportError", "HostZone", "ImportResult", "boot_from_host",
           "compare_zones", "parse_buddyinfo", "parse_cpulist", "parse_iomem",
           "parse_pagetypeinfo_blocks", "parse_zoneinfo", "read_host", "read_kpageflags"]
