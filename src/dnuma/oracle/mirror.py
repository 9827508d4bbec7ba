"""The model's side of each untraced oracle step: the same sysctl, THP mode,
sysfs write or hotplug the guest made, on the machine the comparer keeps.

A refused write is mirrored as the guest's shell reports it (``rc=1 sh:
write error: STRERROR``), a DIMM as ``blocks N -> M`` (the guest's count of
``memoryB`` directories before and after).  Where QEMU put a DIMM (its
physical address and the node the firmware's SRAT gives it) is the
hypervisor's choice, not the kernel's: it is read from the guest's
snapshot after the step; everything the kernel does with it is the
model's own.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Any

from ..mm import sysctl
from ..mm.cpu_hotplug import write_cpu_online
from ..mm.errors import HotplugError
from ..mm.machine import Machine
from ..mm.memory_block import (
    eject_memory,
    memory_blocks,
    write_auto_online_blocks,
    write_memory_block_state,
)
from ..mm.memory_hotplug import pages_per_block
from .scenario import Step

_BLOCK_KEY = re.compile(r"^memory(\d+)\.state$")

#: field families a hotplug step makes the model recompute (the others keep
#: what they had); a block's node links are where QEMU put the DIMM (copied)
HOTPLUG_RECOMPUTES = (
    "zone[*].spanned", "zone[*].present", "zone[*].managed", "zone[*].min", "zone[*].low",
    "zone[*].high", "zone[*].promo", "zone[*].protection", "zone[*].pcp[*].batch",
    "zone[*].pcp[*].stat_threshold", "vm.min_free_kbytes", "node[*].MemTotal", "nodes.online",
    "nodes.has_*",
    "memory*.state", "memory*.valid_zones", "step.result")
CPU_RECOMPUTES = ("cpus.*", "nodes.has_cpu", "node[*].cpulist", "zone[*].pcp[*].batch",
                  "zone[*].pcp[*].stat_threshold", "step.result")


def block_ids(fields: dict[str, Any]) -> set[int]:
    """The memory blocks (``memoryB``) a snapshot's fields list."""
    return {int(mt.group(1)) for k in fields if (mt := _BLOCK_KEY.match(k))}


def room_pfn(snapshots: list[dict[str, Any]], block_bytes: int, page_shift: int = 12) -> int:
    """The end pfn of the last memory block any snapshot lists: the room a
    run's DIMMs need (MachineConfig.maxmem_pfn)."""
    last = max((b for f in snapshots for b in block_ids(f)), default=-1)
    return (last + 1) * (block_bytes >> page_shift)


def shell_result(exc: HotplugError | None) -> str:
    """What the guest's ``write_result`` keeps: ``rc=0`` or ``rc=1 sh: write
    error: STRERROR`` (busybox sh's message for a failed write)."""
    return "rc=0" if exc is None else f"rc=1 sh: write error: {os.strerror(exc.errno)}"


def _runs(ids: list[int]) -> list[tuple[int, int]]:
    """Consecutive block ids as (first, count) runs."""
    out: list[tuple[int, int]] = []
    for b in sorted(ids):
        if out and out[-1][0] + out[-1][1] == b:
            out[-1] = (out[-1][0], out[-1][1] + 1)
        else:
            out.append((b, 1))
    return out


@dataclass
class Mirror:
    """The comparer's model-side state across a run's steps: the DIMMs
    hot-added so far (QMP id -> (start_pfn, nr_pages))."""

    dimms: dict[str, tuple[int, int]] = field(default_factory=dict)

    def apply(self, m: Machine, step: Step, after: dict[str, Any]) -> tuple[bool, str | None]:
        """Make ``step`` on ``m``; ``after``: the guest's fields after it (read
        for a DIMM's placement only).  Returns (mirrored, the model's
        ``step.result`` or None when the step keeps none)."""
        kind, args = step.kind, step.args
        if kind in ("sysctl", "thp"):
            return sysctl.apply(m, kind, args), None
        if kind == "hotplug":
            return True, self.hotplug(m, args[2], after)
        if kind == "hotremove":
            return True, self.hotremove(m, args[0])
        try:
            if kind == "memory_block":
                write_memory_block_state(m, args[0], args[1])
            elif kind == "auto_online_blocks":
                write_auto_online_blocks(m, args[0])
            elif kind in ("cpu_offline", "cpu_online"):
                write_cpu_online(m, args[0], "1" if kind == "cpu_online" else "0")
            else:
                return False, None
        except HotplugError as exc:
            return True, shell_result(exc)
        return True, shell_result(None)

    def hotplug(self, m: Machine, dimm: str, after: dict[str, Any]) -> str:
        """acpi_memory_enable_device -> __add_memory for the DIMM's range: the
        blocks the guest gained, on the node its snapshot links them to;
        onlined per auto_online_blocks (mhp_default_online_type)."""
        before = set(memory_blocks(m).ids.tolist())
        new = sorted(block_ids(after) - before)
        n = pages_per_block(m)
        for first, count in _runs(new):  # one DIMM: one run
            links = str(after.get(f"memory{first}.node", ""))
            if not links.isdigit():
                raise ValueError(f"DIMM {dimm}: memory{first} links to nodes {links!r}")
            start = first * n
            m.add_memory(int(links), start, count * n)
            self.dimms[dimm] = (start, count * n)
        return f"blocks {len(before)} -> {memory_blocks(m).ids.size}"

    def hotremove(self, m: Machine, dimm: str) -> str:
        """device_del of a DIMM: the ACPI eject (acpi_scan_hot_remove) offlines
        each of its online blocks (acpi_scan_try_to_offline) and, when one
        refuses, onlines those it took back (memory_subsys_online: MMOP_ONLINE)
        and the DIMM stays; else acpi_memory_device_remove -> __remove_memory."""
        count = memory_blocks(m).ids.size
        if dimm in self.dimms and eject_memory(m, *self.dimms[dimm]):
            del self.dimms[dimm]
        return f"blocks {count} -> {memory_blocks(m).ids.size}"


__all__ = ["CPU_RECOMPUTES", "HOTPLUG_RECOMPUTES", "Mirror", "block_ids", "room_pfn",
           "shell_result"]
