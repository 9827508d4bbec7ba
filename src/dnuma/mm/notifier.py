"""Notifier chains: kernel users (and userspace, through uevents) hear of a
change before ("going", may veto) and after ("done") it happens: a memlayout
commit (MemlayoutEvent), a CPU move or a distance change (TopologyEvent),
memory hotplug (MemoryNotify)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .errors import ArgError, NotifyVeto, check_int, show

MEMLAYOUT_GOING = "going"
MEMLAYOUT_DONE = "done"
MEMLAYOUT_CANCEL = "cancel"


@dataclass
class MemlayoutEvent:
    """What a listener is told: the stage, the new layout's seq and nodes,
    (for "done") the commit report, and the effective layouts before and
    after (``old``, ``new``: MemLayout) for :meth:`diff`."""

    stage: str
    seq: int
    nodes: list[int]
    report: Any = None
    extra: dict[str, Any] = field(default_factory=dict)
    old: Any = field(default=None, repr=False)
    new: Any = field(default=None, repr=False)

    def diff(self) -> list[tuple[int, int, int, int]]:
        """The ranges whose node the commit changes: (start_pfn, end_pfn
        inclusive, old nid, new nid), computed when asked (memlayout.layout_diff)."""
        from .memlayout import layout_diff

        if self.old is None or self.new is None:
            return []
        return layout_diff(self.old, self.new)

    def cancel(self) -> MemlayoutEvent:
        return MemlayoutEvent(MEMLAYOUT_CANCEL, self.seq, self.nodes, old=self.old,
                              new=self.new)


@dataclass
class TopologyEvent:
    """A CPU move (``kind`` "cpus": ``cpus`` as (cpu, old nid, new nid)) or a
    distance change (``kind`` "distance": the new rows in ``distance``), at
    ``stage`` going / done / cancel; ``report`` for "done"."""

    stage: str
    kind: str
    cpus: list[tuple[int, int, int]] = field(default_factory=list)
    distance: list[list[int]] | None = None
    report: Any = None

    def cancel(self) -> TopologyEvent:
        return TopologyEvent(MEMLAYOUT_CANCEL, self.kind, self.cpus, self.distance)


Listener = Callable[[Any], Any]  # called with a MemlayoutEvent or a MemoryNotify


class NotifierChain:
    """A blocking notifier chain (kernel/notifier.c), highest priority first.

    A "going" listener vetoes by raising NotifyVeto or returning False; the
    chain then tells the listeners already called with "cancel".
    """

    def __init__(self) -> None:
        self._chain: list[tuple[int, int, str, Listener]] = []
        self._n = 0

    def register(self, fn: Listener, name: str | None = None, priority: int = 0) -> None:
        """Add ``fn`` (called with the chain's events) under ``name``; higher
        ``priority`` is called first.  ArgError for a bad argument."""
        if not callable(fn):
            raise ArgError(f"fn: expected a callable listener, got {show(fn)}")
        if name is not None and not isinstance(name, str):
            raise ArgError(f"name: expected a string or None, got {show(name)}")
        priority = check_int("priority", priority, -(1 << 31), 1 << 31, ArgError, " (int)")
        self._n += 1
        label = name or str(getattr(fn, "__name__", "listener"))
        self._chain.append((-priority, self._n, label, fn))
        self._chain.sort(key=lambda t: (t[0], t[1]))

    def unregister(self, fn: Listener) -> None:
        self._chain = [t for t in self._chain if t[3] is not fn]

    def __len__(self) -> int:
        return len(self._chain)

    def call_going(self, ev: Any) -> None:
        """Call every listener with "going"; on a veto, "cancel" those before it."""
        called: list[Listener] = []
        for _p, _n, name, fn in self._chain:
            try:
                ok = fn(ev)
            except NotifyVeto:
                self._cancel(called, ev)
                raise
            if ok is False:
                self._cancel(called, ev)
                raise NotifyVeto(name, "returned NOTIFY_BAD")
            called.append(fn)

    def _cancel(self, called: list[Listener], ev: Any) -> None:
        cancel = ev.cancel()
        for fn in called:
            fn(cancel)

    def call_done(self, ev: Any) -> None:
        for _p, _n, _name, fn in self._chain:
            fn(ev)


# ---------------------------------------------------------------- memory notifier
#: include/linux/memory.h: the memory notifier's actions (memory_notify())
MEM_ONLINE = "MEM_ONLINE"
MEM_GOING_OFFLINE = "MEM_GOING_OFFLINE"
MEM_OFFLINE = "MEM_OFFLINE"
MEM_GOING_ONLINE = "MEM_GOING_ONLINE"
MEM_CANCEL_ONLINE = "MEM_CANCEL_ONLINE"
MEM_CANCEL_OFFLINE = "MEM_CANCEL_OFFLINE"
MEM_ACTIONS = (MEM_ONLINE, MEM_GOING_OFFLINE, MEM_OFFLINE, MEM_GOING_ONLINE, MEM_CANCEL_ONLINE,
               MEM_CANCEL_OFFLINE)
#: NUMA_NO_NODE
NUMA_NO_NODE = -1


@dataclass
class MemoryNotify:
    """struct memory_notify with the action: the pfn range and the node whose
    N_MEMORY (``status_change_nid``) or N_NORMAL_MEMORY
    (``status_change_nid_normal``) changes, NUMA_NO_NODE when none does."""

    action: str
    start_pfn: int
    nr_pages: int
    status_change_nid: int = NUMA_NO_NODE
    status_change_nid_normal: int = NUMA_NO_NODE


class MemoryNotifierChain(NotifierChain):
    """The memory hotplug notifier chain (register_memory_notifier; a
    blocking chain).  A MEM_GOING_* listener vetoes by raising NotifyVeto or
    returning False (NOTIFY_BAD): the chain stops there, and the caller
    sends MEM_CANCEL_* to every listener, as online_pages / offline_pages do."""

    def memory_notify(self, ev: Any) -> str | None:
        """blocking_notifier_call_chain: call each listener with ``ev``;
        the name of the first one that said NOTIFY_BAD, else None."""
        for _p, _n, name, fn in self._chain:
            try:
                ok = fn(ev)
            except NotifyVeto:
                return name
            if ok is False:
                return name
        return None


# ---------------------------------------------------------------- node notifier
#: the node notifier's actions (include/linux/node.h since Linux 6.16; 6.12
#: folds them into the memory notifier's status_change_nid)
NODE_ADDING_FIRST_MEMORY = "NODE_ADDING_FIRST_MEMORY"
NODE_ADDED_FIRST_MEMORY = "NODE_ADDED_FIRST_MEMORY"
NODE_CANCEL_ADDING_FIRST_MEMORY = "NODE_CANCEL_ADDING_FIRST_MEMORY"
NODE_REMOVING_LAST_MEMORY = "NODE_REMOVING_LAST_MEMORY"
NODE_REMOVED_LAST_MEMORY = "NODE_REMOVED_LAST_MEMORY"
NODE_CANCEL_REMOVING_LAST_MEMORY = "NODE_CANCEL_REMOVING_LAST_MEMORY"


@dataclass
class NodeNotify:
    """struct node_notify with the action: the node gaining its first or
    losing its last memory."""

    action: str
    nid: int
