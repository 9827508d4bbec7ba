"""DNUMA migration (mm.migrate) and the run's policies (sim.migration)."""

from __future__ import annotations

import numpy as np
import pytest

from dnuma.mm.constants import GFP_HIGHUSER_MOVABLE, PG_lru
from dnuma.mm.machine import Machine, MachineConfig
from dnuma.mm.memlayout import MemLayout
from dnuma.mm.validate import validate_all
from dnuma.sim.migration import parse_policy
from dnuma.sim.run import run_scenario
from dnuma.sim.scenario import ScenarioError, load_scenario


def _machine(seed: int = 0) -> Machine:
    m = Machine(MachineConfig.uniform(2, "256M", 4, max_numnodes=4))
    r = np.random.default_rng(seed)
    for _ in range(3000):
        gfp = GFP_HIGHUSER_MOVABLE if r.random() < 0.7 else 0
        m.alloc_pages(int(r.integers(0, 3)), cpu=int(r.integers(0, 4)), gfp=gfp, owner=1)
    m.commit(MemLayout.push(m.ram_ranges(), 2))
    return m


def test_migration_fixes_the_movable_pages_and_tells_their_holders():
    m = _machine()
    total = m.total_present_pages
    heard: list[tuple[np.ndarray, np.ndarray]] = []
    m.migration_listeners.append(lambda a, b: heard.append((a.copy(), b.copy())))
    before = m.misplaced_pages()
    rep = m.migrate_misplaced_pages(max_pages=500)
    assert 500 <= rep.pages_migrated < 520 and m.misplaced_pages() == before - rep.pages_migrated
    old, new = heard[0]
    assert old.size == rep.blocks_migrated and np.all(np.diff(old) > 0)
    assert np.all(m.S.page_flags[new] & PG_lru)
    rep = m.migrate_misplaced_pages()
    assert rep.movable_left == 0 and rep.blocks_failed == 0
    left = m.misplaced_pages()
    assert 0 < left == m.marked_pages()  # the unmovable ones wait for their free
    assert m.total_present_pages == total
    validate_all(m)


def _naive(m: Machine) -> None:
    """The plain-Python twin: one block at a time through the public API."""
    from dnuma.mm.migrate import misplaced_movable_heads

    for h in misplaced_movable_heads(m).tolist():
        order, owner = int(m.S.page_order[h]), int(m.S.page_owner[h])
        t = m.alloc_pages(order, cpu=0, nid=int(m.S.page_nid[h]), gfp=GFP_HIGHUSER_MOVABLE,
                          owner=max(owner, 0))
        assert t is not None
        m.S.page_owner[t] = owner
        m.free_pages(h, order)


def test_the_compiled_loop_is_its_plain_twin_in_page_counts():
    a, b = _machine(1), _machine(1)
    a.migrate_misplaced_pages()
    _naive(b)
    assert a.misplaced_pages() == b.misplaced_pages()
    assert a.nr_free_pages() == b.nr_free_pages()
    for nid in range(3):
        assert a.NODE_DATA(nid).node_present_pages == b.NODE_DATA(nid).node_present_pages
    validate_all(a)
    validate_all(b)


def test_policies_on_the_demo():
    sc = load_scenario("demo")
    runs = {p: run_scenario(sc, migration=parse_policy(p, "t"), check=validate_all)
            for p in ("lazy", "eager", "background:1000000")}
    lazy, eager, bg = (runs[p].migration for p in runs)
    assert [r.step for r in lazy] == ["stripe", "push", "boot"]
    assert all(r.pages_migrated == 0 for r in lazy)
    assert all(r.pages_migrated > 0 for r in eager)
    # the same commits change the same pages; migration leaves fewer misplaced
    for x, y in zip(lazy, eager, strict=True):
        assert x.pages_changed == y.pages_changed and y.misplaced_left < x.misplaced_left
    assert lazy[0].converge_s is None and eager[0].converge_s is not None
    assert bg[0].converge_s is not None
    for res in runs.values():
        assert res.summary()["machine"]["present_pages"] == res.machine.total_present_pages


@pytest.mark.parametrize("spec, says", [
    ("fast", "expected one of lazy, eager, background"),
    ("background:x", "rate 'x'"),
    ({"policy": "eager", "rate": 5}, "rate and period are for policy"),
    ({"policy": "background", "rate": -1}, "expected pages per second"),
    ({"policy": "background", "speed": 1}, "unknown key"),
    (3, "expected a table"),
])
def test_bad_policies_are_refused(spec, says):
    with pytest.raises(ScenarioError, match=says):
        parse_policy(spec, "x.toml: migration")
