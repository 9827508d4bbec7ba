"""Shared test helpers: state snapshots for "nothing changed" checks."""

from __future__ import annotations

import numpy as np

from dnuma.mm.machine import Machine


def snapshot(m: Machine) -> dict[str, np.ndarray]:
    """Copies of every array of the machine, plus its layout and node states."""
    snap = {k: v.copy() for k, v in m._arrays.items()}
    snap["_node_states"] = m.topo.node_states.copy()
    snap["_layout"] = np.concatenate([m.layout.starts, m.layout.ends, m.layout.nids])
    snap["_seq"] = np.array([m.seq])
    return snap


def assert_same(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert np.array_equal(a[k], b[k]), f"{k} changed"
