"""NUMA topology: possible nodes, cpu_to_node, the SLIT distance table and
node states (include/linux/nodemask.h, include/linux/topology.h)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np

from .._kernels.state import STATE_BY_NAME, new_array
from .constants import (
    LOCAL_DISTANCE,
    MAX_MAX_NUMNODES,
    N_CPU,
    N_ONLINE,
    N_POSSIBLE,
    NR_NODE_STATES,
    NR_PCP_LISTS,
    REMOTE_DISTANCE,
)
from .errors import ArgError, ConfigError, check_int, is_int, show

#: the model's NR_CPUS, the most CPUs a machine has: CONFIG_NR_CPUS goes up to
#: 8192 (x86_64, MAXSMP), but a block on a pcp list keeps
#: ``cpu * NR_PCP_LISTS + pindex`` in page_owner (int16), so 2730
NR_CPUS = min(8192, (int(np.iinfo(STATE_BY_NAME["page_owner"].dtype).max) + 1)
              // NR_PCP_LISTS)
#: the largest SLIT distance the model takes (node_distance() is a u8; 255 is
#: "unreachable" in ACPI)
MAX_DISTANCE = 254


def check_cpu_to_node(cpu_to_node: Sequence[int], max_numnodes: int) -> tuple[int, ...]:
    """cpu_to_node as a tuple of ints: 1 to NR_CPUS CPUs, each on a node in
    [0, max_numnodes); ConfigError naming the CPU otherwise."""
    try:
        c2n = list(cpu_to_node)
    except TypeError:
        raise ConfigError(f"cpus: cpu_to_node must be a sequence of node ids, got "
                          f"{show(cpu_to_node)}") from None
    if not c2n:
        raise ConfigError("cpus: at least one CPU is needed")
    if len(c2n) > NR_CPUS:
        raise ConfigError(f"cpus: {len(c2n)} CPUs outside [1, {NR_CPUS}] (the model's "
                          f"NR_CPUS: a pcp block's list is kept in page_owner, an int16)")
    for cpu, n in enumerate(c2n):
        if type(n) is not int and not is_int(n):
            raise ConfigError(f"cpus: cpu {cpu}: node is not an integer: {show(n)}")
        if not 0 <= n < max_numnodes:
            raise ConfigError(f"cpus: cpu {cpu} on node {n}, outside [0, {max_numnodes}) "
                              f"(max_numnodes)")
    return tuple(int(n) for n in c2n)


def check_distance(matrix: Sequence[Sequence[int]], max_numnodes: int) -> tuple[tuple[int, ...],
                                                                                ...]:
    """The SLIT of nodes 0..k-1 as a k x k tuple of ints, or ConfigError:
    square (no ragged rows), 1 <= k <= max_numnodes, integers, the diagonal
    LOCAL_DISTANCE, others in (LOCAL_DISTANCE, MAX_DISTANCE] (ACPI's
    slit_valid() and numa_set_distance()); it may be asymmetric."""
    try:
        rows = [list(r) for r in matrix]
    except TypeError:
        raise ConfigError(f"distance: expected a square matrix (a list of rows of "
                          f"integers), got {show(matrix)}") from None
    k = len(rows)
    if not 1 <= k <= max_numnodes:
        raise ConfigError(f"distance: {k} rows outside [1, {max_numnodes}] (max_numnodes)")
    for i, r in enumerate(rows):
        if len(r) != k:
            raise ConfigError(f"distance: row {i} has {len(r)} entries, expected {k} "
                              f"(a square matrix)")
        for j, v in enumerate(r):
            if type(v) is not int and not is_int(v):
                raise ConfigError(f"distance[{i}][{j}]: expected an integer, got {show(v)}")
            if i == j and v != LOCAL_DISTANCE:
                raise ConfigError(f"distance[{i}][{i}]: {v}, the diagonal must be "
                                  f"{LOCAL_DISTANCE} (LOCAL_DISTANCE)")
            if i != j and not LOCAL_DISTANCE < v <= MAX_DISTANCE:
                raise ConfigError(f"distance[{i}][{j}]: {v} outside ({LOCAL_DISTANCE}, "
                                  f"{MAX_DISTANCE}] (remote distances)")
    # no symmetry is asked: slit_valid() does not, and Linux 6.12 under QEMU
    # reports an asymmetric SLIT as given (tests/data/oracle/asym3.tar.xz)
    return tuple(tuple(int(v) for v in r) for r in rows)


class Topology:
    """Nodes, CPUs and distances.  ``node_states[state, nid]`` is a bool table."""

    def __init__(self, max_numnodes: int, cpu_to_node: Sequence[int],
                 distance: Sequence[Sequence[int]] | None = None,
                 possible: Sequence[int] | None = None) -> None:
        max_numnodes = check_int("max_numnodes", max_numnodes, 1, MAX_MAX_NUMNODES,
                                 ConfigError, " (MAX_NUMNODES: 1 << NODES_SHIFT)", closed=True)
        self.max_numnodes = max_numnodes
        dims = {"node": max_numnodes, "node_state": NR_NODE_STATES}
        c2n = np.asarray(check_cpu_to_node(cpu_to_node, max_numnodes),
                         dtype=STATE_BY_NAME["cpu_to_node"].dtype)
        self.cpu_to_node = c2n
        #: cpu_online_mask (every CPU is present and possible; CPU hotplug
        #: clears and sets bits: mm.cpu_hotplug)
        self.cpu_online = np.ones(c2n.size, dtype=np.bool_)
        self.node_states = new_array("node_states", dims)
        poss = range(max_numnodes) if possible is None else possible
        for n in poss:
            n = check_int("possible node", n, 0, max_numnodes, ConfigError, " (max_numnodes)")
            self.node_states[N_POSSIBLE, n] = True
        self.distance = new_array("distance", dims)
        self.distance[:] = REMOTE_DISTANCE
        np.fill_diagonal(self.distance, LOCAL_DISTANCE)
        if distance is not None:
            self.set_distances(distance)
        self.refresh_cpu_states()

    @property
    def nr_cpu_ids(self) -> int:
        return int(self.cpu_to_node.size)

    @property
    def nr_node_ids(self) -> int:
        """Highest possible node + 1 (the RFC's debugfs check uses it)."""
        poss = np.flatnonzero(self.node_states[N_POSSIBLE])
        return int(poss[-1]) + 1 if poss.size else 0

    def set_distances(self, matrix: Sequence[Sequence[int]]) -> None:
        """Set the SLIT for nodes 0..k-1 from a k x k matrix (others keep
        theirs); ConfigError (nothing set) unless :func:`check_distance` takes it."""
        m = np.asarray(check_distance(matrix, self.max_numnodes), dtype=np.int64)
        k = m.shape[0]
        self.distance[:k, :k] = m

    def _nid(self, name: str, nid: int) -> int:
        return check_int(name, nid, 0, self.max_numnodes, ArgError, " (MAX_NUMNODES)")

    def node_distance(self, a: int, b: int) -> int:
        """node_distance(a, b) (the SLIT entry)."""
        return int(self.distance[self._nid("node_distance a", a),
                                 self._nid("node_distance b", b)])

    def cpu_packages(self) -> dict[int, list[int]]:
        """The CPU topology the model invents (it has none of its own): one
        package per node holding that node's CPUs, one core per CPU, one
        thread per core.  nid -> the package's CPUs, ascending (a CPU's
        core id is its index there)."""
        pkg: dict[int, list[int]] = {}
        for cpu, nid in enumerate(self.cpu_to_node.tolist()):
            pkg.setdefault(nid, []).append(cpu)
        return pkg

    def cpumask_of_node(self, nid: int) -> list[int]:
        """The online CPUs of node ``nid``, ascending (x86's
        node_to_cpumask_map: numa_remove_cpu drops a CPU going offline)."""
        return np.flatnonzero((self.cpu_to_node == self._nid("nid", nid))
                              & self.cpu_online).tolist()

    def num_online_cpus(self) -> int:
        return int(np.count_nonzero(self.cpu_online))

    def online_cpus_per_node(self) -> np.ndarray:
        """cpumask_weight(cpumask_of_node(nid)) for every node (int64)."""
        return np.bincount(self.cpu_to_node[self.cpu_online],
                           minlength=self.max_numnodes).astype(np.int64)

    def refresh_cpu_states(self) -> None:
        """N_CPU from the online CPUs' nodes (vmstat_cpu_online /
        vmstat_cpu_dead); a node with CPUs is online."""
        self.node_states[N_CPU] = False
        self.node_states[N_CPU, np.unique(self.cpu_to_node[self.cpu_online])] = True
        self.node_states[N_ONLINE] |= self.node_states[N_CPU]

    def node_state(self, nid: int, state: int) -> bool:
        """node_state(nid, state)."""
        return bool(self.node_states[_state(state), self._nid("nid", nid)])

    def for_each_node_state(self, state: int) -> Iterator[int]:
        """The nodes in ``state`` (N_POSSIBLE ... N_CPU), ascending."""
        return iter(np.flatnonzero(self.node_states[_state(state)]).tolist())

    def for_each_online_node(self) -> Iterator[int]:
        return self.for_each_node_state(N_ONLINE)

    def for_each_node(self) -> Iterator[int]:
        """``for_each_node``: every possible node."""
        return self.for_each_node_state(N_POSSIBLE)


def _state(state: int) -> int:
    return check_int("node state", state, 0, NR_NODE_STATES, ArgError,
                     " (enum node_states)")
