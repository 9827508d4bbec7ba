"""Uevents as userspace sees them: the machine's pending kobject uevents
(``Machine.uevents``: node, memory block and CPU devices coming, going,
onlined and offlined) numbered with a SEQNUM and printed as ``udevadm monitor
--kernel --property`` prints them, plus one ``change`` event on the node
subsystem for every memlayout commit (``MEMLAYOUT_SEQ=``, ``NODES=``).

A :class:`UeventStream` is a run observer: after every layout or machine
event it takes the machine's pending uevents, delivers each to its
callbacks (Python, a JSON-lines file, a text stream) and counts them per
change.  Memory block uevents can number thousands per change (a 1 TiB
hot-add gives 16,384): ``coalesce`` delivers each run of one action on
consecutive memory blocks as a single event with ``COUNT=`` and
``DEVPATH`` naming the first block, ``LAST=`` the last.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..mm.dnuma import CommitReport
    from ..mm.machine import Machine

_MEMORY_RE = re.compile(r"^/devices/system/memory/memory(\d+)$")


@dataclass
class Uevent:
    """One uevent: the kernel's ACTION, DEVPATH, SUBSYSTEM, SEQNUM and any
    other properties (``env``), at virtual time ``t`` (s)."""

    t: float
    seqnum: int
    action: str
    devpath: str
    subsystem: str
    env: dict[str, str] = field(default_factory=dict)

    def properties(self) -> dict[str, str]:
        return {"ACTION": self.action, "DEVPATH": self.devpath, "SUBSYSTEM": self.subsystem,
                **self.env, "SEQNUM": str(self.seqnum)}

    def udevadm(self) -> str:
        """As ``udevadm monitor --kernel --property`` prints it (a blank line after)."""
        head = f"KERNEL[{self.t:.6f}] {self.action:<8} {self.devpath} ({self.subsystem})"
        return "\n".join([head, *(f"{k}={v}" for k, v in self.properties().items())]) + "\n\n"

    def as_json(self) -> dict[str, Any]:
        return {"t": round(self.t, 9), "seqnum": self.seqnum, "action": self.action,
                "devpath": self.devpath, "subsystem": self.subsystem, "env": self.env}


def coalesce(events: list[Uevent]) -> list[Uevent]:
    """Runs of one action on consecutive memory blocks as single events
    (``COUNT``, ``LAST``); everything else as it is."""
    out: list[Uevent] = []
    last_id = -2
    for ev in events:
        mt = _MEMORY_RE.match(ev.devpath)
        bid = int(mt.group(1)) if mt else -2
        prev = out[-1] if out else None
        if (mt and prev is not None and prev.action == ev.action and bid == last_id + 1
                and _MEMORY_RE.match(prev.devpath)):
            prev.env["COUNT"] = str(int(prev.env.get("COUNT", "1")) + 1)
            prev.env["LAST"] = ev.devpath
        else:
            out.append(Uevent(ev.t, ev.seqnum, ev.action, ev.devpath, ev.subsystem,
                              dict(ev.env)))
        last_id = bid
    return out


class UeventStream:
    """Numbers and delivers a machine's uevents (see the module docstring).

    ``callbacks`` get each :class:`Uevent`; ``jsonl`` (an open text file)
    gets one JSON object a line; ``text`` gets the udevadm format.
    ``counts`` holds, per change, its name, time and uevents by subsystem.
    """

    def __init__(self, m: Machine, callbacks: list[Callable[[Uevent], Any]] | None = None,
                 jsonl: IO[str] | None = None, text: IO[str] | None = None,
                 coalesce: bool = False) -> None:
        self.m = m
        self.callbacks = list(callbacks or [])
        if jsonl is not None:
            self.callbacks.append(lambda ev: jsonl.write(json.dumps(ev.as_json()) + "\n"))
        if text is not None:
            self.callbacks.append(lambda ev: text.write(ev.udevadm()))
        self.coalesce = coalesce
        self.seqnum = 0
        self.delivered = 0
        self.counts: list[dict[str, Any]] = []
        self.flush(0.0, "boot")

    def flush(self, t: float, name: str, extra: list[Uevent] | None = None) -> list[Uevent]:
        """Take the machine's pending uevents (and ``extra``, numbered after
        them), deliver them, count them under ``name``; returns them."""
        evs = []
        for action, devpath, subsystem in self.m.uevents:
            self.seqnum += 1
            evs.append(Uevent(t, self.seqnum, action, devpath, subsystem))
        self.m.uevents.clear()
        for ev in extra or []:
            self.seqnum += 1
            ev.seqnum = self.seqnum
            evs.append(ev)
        raw = len(evs)
        if self.coalesce:
            evs = coalesce(evs)
        for ev in evs:
            for fn in self.callbacks:
                fn(ev)
        self.delivered += len(evs)
        if raw:
            by: dict[str, int] = {}
            for ev in evs:
                by[ev.subsystem] = by.get(ev.subsystem, 0) + int(ev.env.get("COUNT", "1"))
            self.counts.append({"event": name, "t": round(t, 6), "uevents": raw,
                                "delivered": len(evs), "by_subsystem": by})
        return evs

    # the run observer protocol (sim.run.Observer)
    def sample(self, t: float) -> None:
        return None

    def layout_event(self, t: float, name: str, report: CommitReport | None) -> None:
        seq = self.m.seq
        nodes = ",".join(str(n) for n in self.m.layout.node_ids())
        change = Uevent(t, 0, "change", "/devices/system/node", "node",
                        {"MEMLAYOUT_SEQ": str(seq), "NODES": nodes})
        self.flush(t, name, [change])

    def hotplug_event(self, t: float, record: Any) -> None:
        self.flush(t, str(record.name))

    def finish(self, t: float | None = None) -> list[dict[str, Any]]:
        self.flush(0.0 if t is None else t, "end")
        return self.counts


__all__ = ["Uevent", "UeventStream", "coalesce"]
