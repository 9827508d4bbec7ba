"""The fast paths of memory hotplug against their plain twins: a run of
blocks onlined in one pass (memory_hotplug.online_pages_run) leaves the
state onlining them one by one leaves, and the compiled offline loops
(_kernels/hotplug.py) do what the plain-Python loops do."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dnuma._kernels import buddy as _kbd
from dnuma._kernels import hotplug as _khp
from dnuma.mm import memory_hotplug as mh
from dnuma.mm.constants import GFP_HIGHUSER_MOVABLE, PG_buddy, PG_head, PG_lru, PG_slab
from dnuma.mm.machine import Machine, MachineConfig
from dnuma.mm.validate import validate_all
from tests.helpers import assert_same, snapshot

BLOCK = 32768


def _state(m: Machine) -> dict[str, Any]:
    snap: dict[str, Any] = snapshot(m)
    snap["_scalars"] = np.frombuffer(repr(sorted(
        (k, v) for k, v in m.scalars().items() if k != "uevents")).encode(), np.uint8)
    snap["_mfk"] = np.array([m.min_free_kbytes])
    snap["_offline"] = np.array(sorted(m.offline_blocks.items())).ravel()
    return snap


def _pair(boot: str, thp: bool) -> tuple[Machine, Machine]:
    cfg = MachineConfig.uniform(2, boot, 4, maxmem_pfn=(6 << 30) >> 12, max_numnodes=4,
                                thp=thp)
    fast, slow = Machine(cfg), Machine(cfg)
    slow.memory_notifier.register(lambda ev: None, "watch")  # one by one: a listener sees
    return fast, slow


@settings(max_examples=6, deadline=None)
@given(boot=st.sampled_from(["512M", "2G"]), nblocks=st.integers(2, 16),
       nid=st.sampled_from([1, 2]), thp=st.booleans(),
       online=st.sampled_from(["online", "online_kernel", "online_movable"]))
def test_a_run_onlined_at_once_is_onlining_block_by_block(boot, nblocks, nid, thp, online):
    fast, slow = _pair(boot, thp)
    start = (4 << 30) >> 12
    at_once = []
    real = mh.online_pages_run

    def spy(*args: Any) -> int:
        at_once.append(real(*args))
        return at_once[-1]

    mh.online_pages_run = spy
    try:
        a = fast.add_memory(nid, start, nblocks * BLOCK, online)
        fast_runs = sum(at_once)
        b = slow.add_memory(nid, start, nblocks * BLOCK, online)
    finally:
        mh.online_pages_run = real
    assert fast_runs == nblocks - 1 and sum(at_once) == fast_runs  # the slow one: none
    assert a == b
    assert fast.min_free_kbytes == slow.min_free_kbytes
    assert_same(_state(fast), _state(slow))
    validate_all(fast)


def _naive_migrate_range(S, start, end, gz, cpu, gfp, mask, il, out, moved_to):
    """The plain-Python do_migrate_range (one block at a time through the
    compiled allocator), the compiled loop's twin."""
    from dnuma._kernels import alloc as _ka
    from dnuma.mm.constants import MIGRATE_ISOLATE, MODE_NODEMASK

    pbo = int(S.params[_khp.P_PB_ORDER])
    nid = gz // mh.MAX_NR_ZONES
    for h in (start + np.flatnonzero(S.page_flags[start:end] & PG_head)).tolist():
        order, owner = int(S.page_order[h]), int(S.page_owner[h])
        flags = int(S.page_flags[h])
        t = _ka.alloc_pages(S, order, cpu, gfp, MODE_NODEMASK, nid, mask, il, max(owner, 0))
        if t < 0:
            return h
        S.page_flags[t] |= flags & (PG_lru | PG_slab)
        S.page_owner[t] = owner
        S.page_flags[h] = flags & (0xFF ^ (PG_head | PG_lru | PG_slab))
        S.page_owner[h] = -1
        moved_to[h - start] = t
        S.page_mark[h >> 3] &= np.uint8(0xFF ^ (1 << (h & 7)))
        step = min(order, pbo)
        for p in range(h, h + (1 << order), 1 << step):
            _kbd.free_one_page(S, p, step, gz, MIGRATE_ISOLATE, False)
        S.zone_free[gz] -= 1 << order
        out[0] += 1 << order
        out[1] += 1
    return -1


def _naive_take_off_free_lists(S, start, end, gz, mt):
    total = 0
    for h in (start + np.flatnonzero(S.page_flags[start:end] & PG_buddy)).tolist():
        o = int(S.page_order[h])
        _kbd.del_from_free_list(S, h, gz, o, mt)
        total += 1 << o
    return total


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_compiled_offline_loops_are_the_plain_ones(seed, monkeypatch):
    """Offline a block full of movable blocks of mixed orders, on two equal
    machines: one through the compiled loops, one through their twins."""
    cfg = MachineConfig.uniform(2, "1G", 4, max_numnodes=4)
    machines = []
    for _ in range(2):
        m = Machine(cfg)
        r = np.random.default_rng(seed)
        for _ in range(3000):
            m.alloc_pages(int(r.integers(0, 4)), cpu=int(r.integers(2, 4)), nid=1,
                          gfp=GFP_HIGHUSER_MOVABLE, owner=int(r.integers(1, 50)))
        machines.append(m)
    heads = (machines[0].S.page_flags[4 * BLOCK:8 * BLOCK] & PG_head).reshape(4, -1)
    block = 4 + int(np.count_nonzero(heads, axis=1).argmax())  # node 1's fullest block
    reps = []
    for naive, m in zip((False, True), machines, strict=True):
        if naive:
            monkeypatch.setattr(mh._khp, "migrate_range", _naive_migrate_range)
            monkeypatch.setattr(mh._khp, "take_off_free_lists", _naive_take_off_free_lists)
        reps.append(m.offline_memory_block(block))
    assert reps[0] == reps[1] and reps[0].pages_migrated > 0
    assert_same(_state(machines[0]), _state(machines[1]))
    validate_all(machines[0])
