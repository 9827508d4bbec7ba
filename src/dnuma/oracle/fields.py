"""The fields ``dnuma oracle`` compares, read the same way from a guest's
snapshot and from the model's exported tree: one parser for both.

Keys name kernel objects: ``zone[N/NAME].FIELD`` (zoneinfo's spanned,
present, managed, boost, min, low, high, promo, protection; buddyinfo's
``free_by_order``; pagetypeinfo's ``free[TYPE]``), ``node[N].FIELD``
(node meminfo's MemTotal and MemFree in kB, distance, cpulist),
``nodes.MASK`` (possible, online, has_memory, has_normal_memory, has_cpu),
``memoryB.FIELD`` (state, valid_zones, node: the nodeK links),
``memory.auto_online_blocks``, ``cpus.online``/``cpus.offline``,
``vm.min_free_kbytes`` and ``step.result`` (what a step's sysfs write or
hotplug gave: ``rc=N message``, ``blocks N -> M``).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

_ZONE = re.compile(r"^Node\s+(\d+),\s*zone\s+(\w+)")
_ZONE_FIELDS = ("spanned", "present", "managed", "boost", "min", "low", "high", "promo")
NODE_MASKS = ("possible", "online", "has_memory", "has_normal_memory", "has_cpu")


def _text(p: Path) -> str | None:
    try:
        return p.read_text()
    except (OSError, UnicodeDecodeError):
        return None


def zoneinfo_fields(text: str) -> dict[str, Any]:
    """zoneinfo -> zone[N/NAME].{spanned,...,promo,protection} and, per CPU,
    zone[N/NAME].pcp[C].{batch,stat_threshold} (count and high move on their own)."""
    out: dict[str, Any] = {}
    zone = pcp = ""
    cpu = -1
    for line in text.splitlines():
        mt = _ZONE.match(line)
        if mt:
            zone = f"zone[{mt.group(1)}/{mt.group(2)}]"
            cpu = -1
            continue
        s = line.split()
        if not zone or not s:
            continue
        if s[0] in _ZONE_FIELDS and len(s) == 2 and s[1].isdigit():
            out[f"{zone}.{s[0]}"] = int(s[1])
        elif s[0] == "protection:":
            out[f"{zone}.protection"] = tuple(int(v) for v in
                                              line.split("(", 1)[1].rstrip(")\n ").split(","))
        elif s[0] == "pagesets":
            pcp = f"{zone}.pcp"  # the per-cpu part: batch and the stat threshold
            cpu = -1
        elif zone and s[0] == "cpu:" and len(s) == 2:
            cpu = int(s[1])
        elif zone and cpu >= 0 and s[0] == "batch:" and len(s) == 2:
            out[f"{pcp}[{cpu}].batch"] = int(s[1])
        elif zone and cpu >= 0 and line.strip().startswith("vm stats threshold:"):
            out[f"{pcp}[{cpu}].stat_threshold"] = int(s[-1])
        elif s[0] in ("node_unreclaimable:", "start_pfn:"):
            zone = ""
    return out


def buddyinfo_fields(text: str) -> dict[str, Any]:
    """buddyinfo -> zone[N/NAME].free_by_order (free blocks per order)."""
    out: dict[str, Any] = {}
    for line in text.splitlines():
        mt = _ZONE.match(line)
        if mt:
            out[f"zone[{mt.group(1)}/{mt.group(2)}].free_by_order"] = tuple(
                int(v) for v in line[mt.end():].split())
    return out


def pagetypeinfo_fields(text: str) -> dict[str, Any]:
    """pagetypeinfo's free table -> zone[N/NAME].free[TYPE] (blocks per order)."""
    out: dict[str, Any] = {}
    for line in text.splitlines():
        mt = _ZONE.match(line)
        if mt and ", type" in line:
            _head, counts = line.split(", type", 1)
            typ, *vals = counts.split()
            out[f"zone[{mt.group(1)}/{mt.group(2)}].free[{typ}]"] = tuple(int(v) for v in vals)
    return out


def node_fields(sysdir: Path) -> dict[str, Any]:
    """sys/devices/system/node -> nodes.MASK and node[N].{MemTotal,MemFree,distance,cpulist}."""
    out: dict[str, Any] = {}
    for mask in NODE_MASKS:
        t = _text(sysdir / mask)
        if t is not None:
            out[f"nodes.{mask}"] = t.strip()
    for d in sorted(sysdir.glob("node[0-9]*"), key=lambda p: int(p.name[4:])):
        n = int(d.name[4:])
        for line in (_text(d / "meminfo") or "").splitlines():
            s = line.split()
            if len(s) >= 4 and s[2] in ("MemTotal:", "MemFree:"):
                out[f"node[{n}].{s[2][:-1]}"] = int(s[3])
        for f in ("distance", "cpulist"):
            t = _text(d / f)
            if t is not None:
                out[f"node[{n}].{f}"] = t.strip()
    return out


def memory_fields(sysdir: Path) -> dict[str, Any]:
    """sys/devices/system/memory -> memoryB.{state,valid_zones,node} and
    memory.auto_online_blocks."""
    out: dict[str, Any] = {}
    t = _text(sysdir / "auto_online_blocks")
    if t is not None:
        out["memory.auto_online_blocks"] = t.strip()
    for d in sorted(sysdir.glob("memory[0-9]*"), key=lambda p: int(p.name[6:])):
        for f in ("state", "valid_zones"):
            t = _text(d / f)
            if t is not None:
                out[f"{d.name}.{f}"] = t.strip()
        links = sorted(int(p.name[4:]) for p in d.glob("node[0-9]*"))
        out[f"{d.name}.node"] = ",".join(map(str, links))
    return out


def tree_fields(root: Path) -> dict[str, Any]:
    """Every compared field of a snapshot folder (``proc/``, ``sys/``)."""
    out: dict[str, Any] = {}
    proc = root / "proc"
    for name, parse in (("zoneinfo", zoneinfo_fields), ("buddyinfo", buddyinfo_fields),
                        ("pagetypeinfo", pagetypeinfo_fields)):
        t = _text(proc / name)
        if t is not None:
            out.update(parse(t))
    t = _text(proc / "sys" / "vm" / "min_free_kbytes")
    if t is not None:
        out["vm.min_free_kbytes"] = int(t)
    out.update(node_fields(root / "sys" / "devices" / "system" / "node"))
    out.update(memory_fields(root / "sys" / "devices" / "system" / "memory"))
    out.update(cpu_fields(root / "sys" / "devices" / "system" / "cpu"))
    t = _text(root / "result")  # what a step's write or hotplug gave
    if t is not None:
        out["step.result"] = t.strip()
    return out


def cpu_fields(sysdir: Path) -> dict[str, Any]:
    """sys/devices/system/cpu -> cpus.{online,offline}."""
    out: dict[str, Any] = {}
    for f in ("online", "offline"):
        t = _text(sysdir / f)
        if t is not None:
            out[f"cpus.{f}"] = t.strip()
    return out
