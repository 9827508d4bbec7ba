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
    REMOTE_DISTANCE,
)
from .errors import ConfigError


class Topology:
    """Nodes, CPUs and distances.  ``node_states[state, nid]`` is a bool table."""

    def __init__(self, max_numnodes: int, cpu_to_node: Sequence[int],
                 distance: Sequence[Sequence[int]] | None = None,
                 possible: Sequence[int] | None = None) -> None:
        if not 1 <= max_numnodes <= MAX_MAX_NUMNODES:
            raise ConfigError(f"max_numnodes: {max_numnodes} not in [1, {MAX_MAX_NUMNODES}]")
        self.max_numnodes = max_numnodes
        dims = {"node": max_numnodes, "node_state": NR_NODE_STATES}
        c2n = np.asarray(list(cpu_to_node), dtype=STATE_BY_NAME["cpu_to_node"].dtype)
        if c2n.size == 0:
            raise ConfigError("cpus: at least one CPU is needed")
        bad = np.flatnonzero((c2n < 0) | (c2n >= max_numnodes))
        if bad.size:
            raise ConfigError(f"cpus: cpu {bad[0]} on node {c2n[bad[0]]}, "
                              f"outside [0, {max_numnodes})")
        self.cpu_to_node = c2n
        self.node_states = new_array("node_states", dims)
        poss = range(max_numnodes) if possible is None else possible
        for n in poss:
            if not 0 <= n < max_numnodes:
                raise ConfigError(f"possible: node {n} outside [0, {max_numnodes})")
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
        """Set the SLIT for nodes 0..k-1 from a k x k matrix (others keep theirs)."""
        m = np.asarray(matrix, dtype=np.int64)
        k = m.shape[0] if m.ndim == 2 else -1
        if m.ndim != 2 or m.shape[1] != k or k > self.max_numnodes:
            raise ConfigError(f"distance: expected a square matrix of at most "
                              f"{self.max_numnodes} nodes, got shape {m.shape}")
        if np.any(np.diag(m) != LOCAL_DISTANCE):
            raise ConfigError(f"distance: the diagonal must be {LOCAL_DISTANCE}")
        off = m[~np.eye(k, dtype=bool)]
        if off.size and (off.min() <= LOCAL_DISTANCE or off.max() > 254):
            raise ConfigError("distance: remote distances must be in (10, 254]")
        self.distance[:k, :k] = m

    def node_distance(self, a: int, b: int) -> int:
        return int(self.distance[a, b])

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
        return np.flatnonzero(self.cpu_to_node == nid).tolist()

    def refresh_cpu_states(self) -> None:
        """N_CPU from cpu_to_node; a node with CPUs is online."""
        self.node_states[N_CPU] = False
        self.node_states[N_CPU, np.unique(self.cpu_to_node)] = True
        self.node_states[N_ONLINE] |= self.node_states[N_CPU]

    def node_state(self, nid: int, state: int) -> bool:
        return bool(self.node_states[state, nid])

    def for_each_node_state(self, state: int) -> Iterator[int]:
        yield from np.flatnonzero(self.node_states[state]).tolist()

    def for_each_online_node(self) -> Iterator[int]:
        return self.for_each_node_state(N_ONLINE)

    def for_each_node(self) -> Iterator[int]:
        """``for_each_node``: every possible node."""
        return self.for_each_node_state(N_POSSIBLE)
