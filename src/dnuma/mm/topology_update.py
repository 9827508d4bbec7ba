"""Runtime topology updates: CPUs that change node and a new distance table.

Linux has neither at runtime.  powerpc's PRRN/VPHN code (arch/powerpc/mm/
numa.c, ``arch_update_cpu_topology``, removed in 2020) could only take the
affected CPUs offline and bring them back on their new node, so the model
moves a CPU the way that path would, without the detour through offline:

* the CPU's per-cpu lists drained into their zones (page_alloc_cpu_dead's
  drain_pages), while it still sits on its old node;
* ``cpu_to_node`` (numa_set_node / set_cpu_numa_node), hence
  ``numa_node_id()`` for its allocations, ``cpumask_of_node`` and the nodes'
  ``cpulist``/``cpumap`` and ``cpuN/nodeK`` links; a node that gains its
  first CPU comes online (try_online_node), N_CPU follows the online CPUs
  (vmstat_cpu_online / vmstat_cpu_dead);
* zone_pcp_update for the populated zones of the nodes whose CPU count
  changed (zone_highsize divides by the node's CPUs);
  refresh_zone_stat_thresholds;
* the zonelists rebuilt once (find_next_best_node's CPU penalty reads the
  new cpumasks);
* a node left with neither memory nor CPUs goes offline (try_offline_node).

A distance change (there is no kernel path: the SLIT is read once at boot)
sets the table and rebuilds the zonelists once, so allocations fall back in
the new order.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from .._kernels import buddy as _kbd
from .constants import N_ONLINE, N_POSSIBLE
from .errors import ArgError, ConfigError, check_int, show
from .notifier import MEMLAYOUT_DONE, MEMLAYOUT_GOING, TopologyEvent
from .page_alloc import build_all_zonelists, refresh_zone_stat_thresholds, zone_pcp_update
from .topology import check_distance

if TYPE_CHECKING:
    from .machine import Machine


class TopologyError(ArgError):
    """A CPU move or a distance table the machine cannot take; nothing changed."""


@dataclass
class CpuMoveReport:
    """What :func:`move_cpus` did: (cpu, old node, new node) per CPU that
    changed node, per-cpu pages drained, nodes brought online or offline."""

    moved: list[tuple[int, int, int]] = field(default_factory=list)
    pcp_pages_drained: int = 0
    nodes_onlined: list[int] = field(default_factory=list)
    nodes_offlined: list[int] = field(default_factory=list)


def check_cpu_moves(m: Machine, moves: Mapping[int, int]) -> list[tuple[int, int, int]]:
    """``moves`` ({cpu: nid}) as (cpu, old, new) for the CPUs whose node
    changes, ascending; TopologyError naming the entry for a CPU that does
    not exist or a node that is not possible."""
    if not isinstance(moves, Mapping):
        raise TopologyError(f"moves: expected a mapping {{cpu: nid}}, got {show(moves)}")
    topo = m.topo
    out = []
    for cpu, nid in moves.items():
        c = check_int("cpu", cpu, 0, topo.nr_cpu_ids, TopologyError, " (nr_cpu_ids)")
        n = check_int(f"cpu {c}: node", nid, 0, topo.max_numnodes, TopologyError,
                      " (MAX_NUMNODES)")
        if not topo.node_states[N_POSSIBLE, n]:
            raise TopologyError(f"cpu {c}: node {n} is not possible")
        old = int(topo.cpu_to_node[c])
        if old != n:
            out.append((c, old, n))
    return sorted(out)


def move_cpus(m: Machine, moves: Mapping[int, int]) -> CpuMoveReport:
    """Give CPUs new nodes ({cpu: nid}; see the module's docstring for the
    steps).  Offline CPUs just change node.  Everything is checked first,
    then ``m.topology_notifier`` hears "going" (a veto raises NotifyVeto,
    nothing changed, "cancel" to the listeners before it) and, after, "done"."""
    from .memory_hotplug import try_offline_node

    todo = check_cpu_moves(m, moves)
    rep = CpuMoveReport(todo)
    if not todo:
        return rep
    m.topology_notifier.call_going(TopologyEvent(MEMLAYOUT_GOING, "cpus", list(todo)))
    m.sync_zones()
    S, topo = m.S, m.topo
    was_online = topo.node_states[N_ONLINE].copy()
    touched: set[int] = set()
    for cpu, old, new in todo:
        if topo.cpu_online[cpu]:
            rep.pcp_pages_drained += int(S.pcp_count[cpu].sum())
            for gz in np.flatnonzero(S.pcp_count[cpu]).tolist():  # drain_pages(cpu)
                _kbd.drain_pages_zone(S, cpu, gz)
            touched |= {old, new}
        topo.cpu_to_node[cpu] = new
    topo.refresh_cpu_states()
    for nid in np.flatnonzero(topo.node_states[N_ONLINE] & ~was_online).tolist():
        rep.nodes_onlined.append(nid)  # __try_online_node
        m.uevents.append(("add", f"/devices/system/node/node{nid}", "node"))
    zone_pcp_update(m, 0, populated_only=True, nids=sorted(touched))
    refresh_zone_stat_thresholds(m)
    build_all_zonelists(m)
    for nid in sorted({old for _c, old, _n in todo}):
        if try_offline_node(m, nid):
            rep.nodes_offlined.append(nid)
    m.note_zone_setup()
    m.topology_notifier.call_done(TopologyEvent(MEMLAYOUT_DONE, "cpus", list(todo), report=rep))
    return rep


def check_distances(m: Machine, matrix: Sequence[Sequence[int]]) -> np.ndarray:
    """The new SLIT rows for nodes 0..k-1 (int64 [k, k]) or TopologyError
    naming the cell: square, 10 on the diagonal, 11..254 elsewhere
    (check_distance), k from the highest online node + 1 to nr_node_ids
    (a row and a column for every node in use; rows past k keep theirs)."""
    try:
        d = np.asarray(check_distance(matrix, m.topo.max_numnodes), dtype=np.int64)
    except ConfigError as exc:
        raise TopologyError(str(exc)) from None
    k = d.shape[0]
    lo = int(np.flatnonzero(m.topo.node_states[N_ONLINE])[-1]) + 1
    hi = m.topo.nr_node_ids
    if not lo <= k <= hi:
        raise TopologyError(f"distance: {k} rows, expected {lo} to {hi} (a row and a column "
                            f"for every online node, at most one per possible node)")
    return d


def set_distances(m: Machine, matrix: Sequence[Sequence[int]]) -> None:
    """A new distance table (:func:`check_distances`), then the zonelists
    rebuilt once; ``m.topology_notifier`` hears "going" (may veto) and "done"."""
    d = check_distances(m, matrix)
    rows = d.tolist()
    m.topology_notifier.call_going(TopologyEvent(MEMLAYOUT_GOING, "distance", distance=rows))
    k = d.shape[0]
    m.topo.distance[:k, :k] = d
    build_all_zonelists(m)
    m.topology_notifier.call_done(TopologyEvent(MEMLAYOUT_DONE, "distance", distance=rows))


__all__ = ["CpuMoveReport", "TopologyError", "check_cpu_moves", "check_distances",
           "move_cpus", "set_distances"]
