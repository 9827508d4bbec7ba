"""Memory and CPU hotplug events of a run (``[[event]]`` tables with
``hotplug``, ``hotremove``, ``offline_block``, ``online_block``,
``cpu_offline``, ``cpu_online``, ``auto_online_blocks`` or ``replug``).

What can be checked before the run is (:class:`HotplugPlan`: the node, the
room below ``machine.maxmem``, block alignment, the CPUs); what the kernel
decides at the time (an offline refused with EBUSY, a block that does not
exist yet) is recorded, never fatal: each event gives a :class:`HotplugRecord`
with the errno, and the machine is left as the kernel leaves it.

Every event happens at one instant of virtual time except ``replug``, which
moves a node's memory to another node the way hotplug can: block after
block, offline and remove, then add and online on the other node, each step
taking the time the kernel would take (:func:`kernel_seconds`) while the
tasks run on.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from ..mm.constants import N_POSSIBLE
from ..mm.cpu_hotplug import write_cpu_online
from ..mm.errors import DnumaError, HotplugError, NotifyVeto
from ..mm.machine import Machine
from ..mm.memory_block import (
    eject_memory,
    memory_blocks,
    write_auto_online_blocks,
    write_memory_block_state,
)
from ..mm.memory_hotplug import (
    block_exists,
    block_range,
    memory_block_offline,
    pages_per_block,
    remove_memory,
)
from ..mm.topology_update import check_cpu_moves
from .events import NS
from .scenario import MACHINE_ACTIONS, LayoutEvent, ScenarioError

#: move_pages() of 4 KiB pages, the kernel's figure: about 3.7 GB/s
KERNEL_MOVE_PAGES_BYTES_PER_S = 3.7e9
#: the kernel's own figure for onlining one 256 MiB section: 50-60 ms before
#: the 2018 change that frees hot-added memory in MAX_PAGE_ORDER chunks
#: ("mm/page_alloc.c: memory hotplug: free pages as higher order"), under
#: 1 ms after it (ms)
KERNEL_ONLINE_MS_PER_256MIB = 1.0
KERNEL_ONLINE_MS_PER_256MIB_BEFORE_2018 = (50.0, 60.0)


def kernel_seconds(pages_migrated: int, pages_onlined: int, page_size: int = 4096) -> float:
    """What the kernel would take (s) to migrate ``pages_migrated`` pages (at
    its move_pages rate) and online ``pages_onlined`` (at its per-256 MiB
    figure): the virtual time a ``replug`` step lasts."""
    return (pages_migrated * page_size / KERNEL_MOVE_PAGES_BYTES_PER_S
            + pages_onlined * page_size / (256 << 20) * KERNEL_ONLINE_MS_PER_256MIB / 1e3)


@dataclass
class HotplugRecord:
    """What one hotplug event did: ``ok`` or the errno the kernel gave
    (``errname``) with its message; the blocks it touched, pages migrated by
    offlines, present pages gained (negative: taken offline), model wall ms."""

    name: str
    t: float  # virtual seconds
    action: str
    ok: bool = True
    errname: str | None = None
    detail: str = ""
    blocks: list[int] = field(default_factory=list)
    pages_migrated: int = 0
    present_delta: int = 0
    wall_ms: float = 0.0
    kernel_ms: float = 0.0  # replug: the kernel's estimated time for the step (kernel_seconds)

    def row(self) -> dict[str, Any]:
        return {"event": self.name, "t": round(self.t, 6), "action": self.action,
                "ok": self.ok, "errno": self.errname, "detail": self.detail,
                "blocks": self.blocks, "pages_migrated": self.pages_migrated,
                "present_delta": self.present_delta, "wall_ms": round(self.wall_ms, 3),
                "kernel_ms": round(self.kernel_ms, 3)}


def boot_ram_end(m: Machine) -> int:
    """Boot RAM's end pfn, rounded up to a memory block."""
    n = pages_per_block(m)
    return -(-max(e for _s, e, _n in m.config.ram) // n) * n


def free_range(m: Machine, nr_pages: int) -> int:
    """The first block-aligned range of ``nr_pages`` with no memory block, at
    or above boot RAM's end and below ``maxmem_pfn`` (where a hypervisor's
    DIMM slots put the next DIMM); -1 when there is none."""
    n = pages_per_block(m)
    room = min(m.config.maxmem_pfn or m.max_pfn, m.max_pfn) // n
    want = nr_pages // n
    run = 0
    for b in range(boot_ram_end(m) // n, room):
        run = 0 if block_exists(m, b) else run + 1
        if run == want:
            return (b - want + 1) * n
    return -1


def _check_possible(m: Machine, nid: int, where: str) -> None:
    """ScenarioError unless ``nid`` is a possible node of ``m``."""
    if not nid < m.config.max_numnodes or not m.topo.node_states[N_POSSIBLE, nid]:
        raise ScenarioError(f"{where}: node {nid} is not possible "
                            f"(max_numnodes {m.config.max_numnodes})")


@dataclass
class _Replug:
    """A replug under way: the blocks still to move, the one taken out."""

    todo: list[int]
    out: int | None = None

    def next(self) -> int | None:
        """0 (the next step at once) while blocks remain, else None."""
        return 0 if self.todo else None


class HotplugPlan:
    """The hotplug events of a run on ``m``, checked before anything runs."""

    def __init__(self, m: Machine, events: list[LayoutEvent], source: str) -> None:
        self.m = m
        self.records: list[HotplugRecord] = []
        self.ranges: dict[str, tuple[int, int]] = {}  # hotplug event -> (start_pfn, nr_pages)
        self._replug: dict[int, _Replug] = {}  # id(event) -> the replug under way
        n = pages_per_block(m)
        room = m.config.maxmem_pfn or 0
        boot_end = boot_ram_end(m)
        for i, ev in enumerate(events):
            where = f"{source}: event[{i}] ({ev.name} at {ev.at / NS:g} s): {ev.action}"
            if ev.action == "hotplug":
                node, size, start, _online = ev.args
                nr = size >> m.profile.page_shift
                if room <= boot_end:
                    raise ScenarioError(f"{where}: the machine has no hotplug room (give "
                                        f"machine.maxmem)")
                _check_possible(m, node, where)
                if nr % n or (start is not None and start % n):
                    raise ScenarioError(f"{where}: size and start must be multiples of the "
                                        f"memory block ({n << m.profile.page_shift >> 20} MiB)")
                if (boot_end if start is None else start) + nr > room:  # see free_range
                    raise ScenarioError(f"{where}: beyond machine.maxmem (pfn {room:#x})")
            elif ev.action == "replug":
                for k in ev.args[:2]:
                    _check_possible(m, k, where)
            elif ev.action == "cpus":
                try:
                    check_cpu_moves(m, ev.args)
                except DnumaError as exc:
                    raise ScenarioError(f"{where}: {exc}") from None
            elif ev.action in ("cpu_offline", "cpu_online"):
                bad = [c for c in ev.args if not 0 < c < m.nr_cpus]
                if bad:
                    raise ScenarioError(f"{where}: CPU {bad[0]}: expected 1 to "
                                        f"{m.nr_cpus - 1} (cpu0 is not hotpluggable)")

    def fire(self, ev: LayoutEvent, t_ns: int) -> int | None:
        """Make ``ev`` on the machine and record what happened; the virtual
        ns until the event goes on (a ``replug`` moves one block a step),
        None when it is done."""
        assert ev.action in MACHINE_ACTIONS
        rec = HotplugRecord(ev.name, t_ns / NS, ev.action)
        present = int(self.m.S.zone_present.sum())
        t0 = time.perf_counter()
        more: int | None = None
        try:
            if ev.action == "replug":
                more = self._replug_step(ev, rec)
            else:
                self._make(ev, rec)
        except HotplugError as exc:
            rec.ok, rec.errname, rec.detail = False, exc.errname, exc.detail
        except NotifyVeto as exc:  # a topology listener said no (as a notifier's EPERM)
            rec.ok, rec.errname, rec.detail = False, "EPERM", str(exc)
        except DnumaError as exc:  # e.g. a block that does not exist as an int check
            rec.ok, rec.errname, rec.detail = False, "EINVAL", str(exc)
        rec.wall_ms = (time.perf_counter() - t0) * 1e3
        rec.present_delta = int(self.m.S.zone_present.sum()) - present
        self.records.append(rec)
        return more

    def _replug_step(self, ev: LayoutEvent, rec: HotplugRecord) -> int | None:
        """One step of a replug.  The first lists the online blocks holding
        node ``from``'s memory; then each block takes two steps: out
        (memory_block_offline + remove_memory, as virtio-mem unplugs a
        block), and, once the kernel's time for its migration and online
        has passed, back in at the same pfns on node ``to`` (add_memory,
        onlined per ``online``).  A block that refuses (EBUSY) stays."""
        m = self.m
        src, dst, online = ev.args
        psize = 1 << m.profile.page_shift
        st = self._replug.get(id(ev))
        if st is None:
            mb = memory_blocks(m)
            st = _Replug([int(b) for k, b in enumerate(mb.ids.tolist())
                          if mb.online[k] and mb.nodes[k, src]])
            self._replug[id(ev)] = st
        if st.out is not None:  # back in, on node dst
            b, st.out = st.out, None
            start, nr = block_range(m, b)
            rec.blocks = m.add_memory(dst, start, nr, online)
            rec.detail = f"block {b} added to node {dst}"
            rec.kernel_ms = kernel_seconds(0, nr, psize) * 1e3
            return st.next()
        if not st.todo:
            rec.detail = f"node {src}: no online memory block to move"
            return st.next()
        b = st.todo.pop(0)
        rec.blocks = [b]
        start, nr = block_range(m, b)
        try:
            rep = memory_block_offline(m, b)
        except HotplugError as exc:  # the block stays; the replug goes on
            rec.ok, rec.errname, rec.detail = False, exc.errname, f"block {b}: {exc.detail}"
            return st.next()
        remove_memory(m, start, nr)
        st.out = b
        rec.pages_migrated = rep.pages_migrated
        rec.detail = f"block {b} offlined and removed from node {src}"
        rec.kernel_ms = kernel_seconds(rep.pages_migrated, 0, psize) * 1e3
        return max(1, round(kernel_seconds(rep.pages_migrated, nr, psize) * NS))

    def _make(self, ev: LayoutEvent, rec: HotplugRecord) -> None:
        m, act, args = self.m, ev.action, ev.args
        if act == "hotplug":
            node, size, start, online = args
            nr = size >> m.profile.page_shift
            if start is None:
                start = free_range(m, nr)
                if start < 0:
                    raise HotplugError("ERANGE", f"no free range of {nr} pages below maxmem")
            rec.blocks = m.add_memory(node, start, nr, online)
            self.ranges[ev.name] = (start, nr)
        elif act == "hotremove":
            (target,) = args
            if isinstance(target, str) and target not in self.ranges:
                raise HotplugError("ENOENT", f"{target} added no memory (or it was removed)")
            start, nr = self.ranges[target] if isinstance(target, str) else \
                (target[0], target[1] - target[0])
            if not eject_memory(m, start, nr):
                raise HotplugError("EBUSY", f"a block of pfns [{start:#x}, {start + nr:#x}) "
                                            f"refused to go offline; the memory stays")
            n = pages_per_block(m)
            rec.blocks = list(range(start // n, (start + nr) // n))
            if isinstance(target, str):
                del self.ranges[target]
        elif act == "offline_block":
            for b in args:
                rec.pages_migrated += m.offline_memory_block(b).pages_migrated
                rec.blocks.append(b)
        elif act == "online_block":
            blocks, typ = args
            for b in blocks:
                write_memory_block_state(m, b, typ)
                rec.blocks.append(b)
        elif act in ("cpu_offline", "cpu_online"):
            for c in args:
                write_cpu_online(m, c, "1" if act == "cpu_online" else "0")
        elif act == "cpus":
            mv = m.move_cpus(args)
            rec.detail = ", ".join(f"cpu {c}: node {a} -> {b}" for c, a, b in mv.moved) \
                or "no CPU changed node"
            if mv.nodes_onlined or mv.nodes_offlined:
                rec.detail += (f"; nodes online {mv.nodes_onlined}, offline "
                               f"{mv.nodes_offlined}")
        elif act == "distance":
            m.set_distances(args)
            rec.detail = f"SLIT of nodes 0-{len(args) - 1}; zonelists rebuilt"
        else:
            write_auto_online_blocks(m, args)


__all__ = ["HotplugPlan", "HotplugRecord", "boot_ram_end", "free_range"]
