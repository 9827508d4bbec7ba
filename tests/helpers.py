"""Shared test helpers: state snapshots for "nothing changed" checks."""

from __future__ import annotations

import numpy as np

from dnuma.mm.machine import Machine


def snapshot(m: Machine) -> dict[str, np.ndarray]:
    """Copies of every state array (the kernels' bundle: STATE of
    dnuma._kernels.state), plus the installed layout and the seq."""
    snap = {k: v.copy() for k, v in m.S._asdict().items()}
    snap["_layout"] = np.concatenate([m.layout.starts, m.layout.ends, m.layout.nids])
    snap["_seq"] = np.array([m.seq])
    return snap


def assert_same(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert np.array_equal(a[k], b[k]), f"{k} changed"
