"""The DNUMA commit: order of steps, veto, validation, transplant, redirect on free."""

from __future__ import annotations

import numpy as np
import pytest

from dnuma.mm.constants import N_MEMORY, N_ONLINE, ZONE_DMA32, PG_pcp
from dnuma.mm.errors import LayoutError, NotifyVeto
from dnuma.mm.machine import Machine, MachineConfig, boot
from dnuma.mm.memlayout import MemLayout
from dnuma.mm.validate import validate_all
from dnuma.sim.run import run_scenario
from dnuma.sim.scenario import load_scenario
from dnuma.sim.workload import Churn


@pytest.fixture
def busy(m128: Machine) -> tuple[Machine, Churn]:
    """m128 half allocated by a churn, then 5000 more churn steps."""
    m = m128
    ch = Churn(m, fill=0.5, seed=3)
    ch.warm_up()
    ch.run(5000)
    return m, ch


def test_stripe_moves_every_free_page_and_marks_allocated_ones(busy):
    m, ch = busy
    total = m.total_present_pages
    rep = m.commit(MemLayout.stripe(m.ram_ranges(), [0, 1, 2], 256))
    validate_all(m)
    assert rep.seq == 1 == m.seq and rep.nodes_onlined == [2]
    assert rep.zonelist_rebuilds == 1
    assert rep.free_pages_moved + rep.pcp_pages_moved > 0 and rep.pages_marked > 0
    assert m.marked_pages() == rep.pages_marked == m.misplaced_pages()
    free = np.flatnonzero(m.free_mask())
    want = np.array([(p // 256) % 3 for p in free])
    assert np.array_equal(m.S.page_nid[free], want)
    assert m.total_present_pages == total
    assert m.topo.node_states[N_ONLINE, 2] and m.topo.node_states[N_MEMORY, 2]
    assert m.uevents == [("add", "/devices/system/node/node2", "node")]
    # freeing the marked pages moves them: nothing misplaced, nothing marked
    moved0 = m.moved_on_free
    ch.free_all()
    validate_all(m)
    assert m.marked_pages() == 0 and m.misplaced_pages() == 0
    assert m.moved_on_free - moved0 == rep.pages_marked
    nd = [m.NODE_DATA(n).node_present_pages for n in range(3)]
    assert nd == [int(np.count_nonzero((np.arange(32768) // 256) % 3 == n)) for n in range(3)]


def test_push_off_every_boot_node_and_back(busy):
    m, ch = busy
    rep = m.commit(MemLayout.push(m.ram_ranges(), 3))
    validate_all(m)
    assert rep.nodes_onlined == [3]
    assert m.NODE_DATA(3).nr_free_pages == m.nr_free_pages() - m.pages_on_pcp()
    # CPUs of nodes 0 and 1 now allocate from node 3 (their zonelists fall back)
    p = m.alloc_pages(0, cpu=0)
    assert m.S.page_nid[p] == 3
    ch.run(20000)
    validate_all(m)
    ch.free_all()
    m.free_pages(p, 0)
    validate_all(m)
    assert m.NODE_DATA(0).node_present_pages == 0 == m.NODE_DATA(1).node_present_pages
    assert m.NODE_DATA(3).node_present_pages == 32768
    assert not m.topo.node_states[N_MEMORY, 0]
    assert m.topo.node_states[N_ONLINE, 0]  # it still has CPUs
    rep = m.commit(MemLayout.from_ranges([(0, 16383, 0), (16384, 32767, 1)]))
    validate_all(m)
    assert m.NODE_DATA(0).node_present_pages == 16384 and m.NODE_DATA(3).node_present_pages == 0
    assert m.nr_free_pages() == 32768
    # 6.12 offline_pages: node 3 loses N_MEMORY but stays online (only memory
    # removal, try_offline_node, offlines a node): no "remove" uevent
    assert rep.nodes_offlined == []
    assert m.topo.node_states[N_ONLINE, 3] and not m.topo.node_states[N_MEMORY, 3]
    assert not any(a == "remove" for a, _p, _s in m.uevents)
    assert 3 in m.for_each_online_node() and m.fallback_order[3][0] != 3


def test_unaligned_boundaries_split_free_blocks():
    m = boot(1, "16M", 1)
    rep = m.commit(MemLayout.from_ranges([(0, 36, 0), (37, 1000, 1), (1001, 4095, 0)]))
    validate_all(m)
    assert rep.blocks_split == 1  # the order-10 block at pfn 0 holds both boundaries
    assert m.NODE_DATA(1).node_present_pages == 964
    z = m.zone(1, 0)
    assert z.nr_free_pages == 964
    # 37..1000 is freed as maximal aligned chunks, merged where buddies allow
    assert z.zone_start_pfn == 37 and z.spanned_pages == 964


def test_partial_layout_keeps_earlier_targets(busy):
    m, _ch = busy
    m.commit(MemLayout.stripe(m.ram_ranges(), [0, 1, 2], 256))
    m.commit(MemLayout.from_ranges([(1000, 5000, 3)]))
    validate_all(m)
    assert m.effective.pfn_to_nid(999) == 0 and m.effective.pfn_to_nid(1000) == 3
    assert m.effective.pfn_to_nid(20000) == (20000 // 256) % 3
    assert list(m.layout) == [(1000, 5000, 3)]  # what debugfs shows as layout.2


def test_invalid_layouts_change_nothing(busy, unchanged):
    m, _ch = busy
    with unchanged(m):
        with pytest.raises(LayoutError, match="beyond the end of memory"):
            m.commit(MemLayout.from_ranges([(0, 40000, 1)]))
        with pytest.raises(LayoutError, match="not possible"):
            m.commit(MemLayout.from_ranges([(0, 100, 64)]))
    cfg = MachineConfig(ram=((0, 8192, 0),), cpu_to_node=(0,), max_numnodes=4)
    m2 = Machine(cfg)
    with unchanged(m2), pytest.raises(LayoutError, match="not possible"):
        m2.commit(MemLayout.from_ranges([(0, 100, 4)]))


def test_veto_restores_the_exact_prior_state(busy, unchanged):
    m, _ch = busy
    seen = []

    def kernel_user(ev):
        seen.append(ev.stage)

    def firmware(ev):
        if ev.stage == "going":
            raise NotifyVeto("firmware", "busy")

    m.notifier.register(kernel_user, priority=10)
    m.notifier.register(firmware)
    with unchanged(m), pytest.raises(NotifyVeto, match="firmware: busy"):
        m.commit(MemLayout.push(m.ram_ranges(), 3))
    assert seen == ["going", "cancel"]
    m.notifier.unregister(firmware)
    rep = m.commit(MemLayout.push(m.ram_ranges(), 3))
    assert seen[-2:] == ["going", "done"] and rep.seq == 1


def test_listener_returning_false_vetoes(busy):
    m, _ch = busy
    m.notifier.register(lambda ev: ev.stage != "going", name="slab")
    with pytest.raises(NotifyVeto, match="slab"):
        m.commit(MemLayout.push(m.ram_ranges(), 3))
    assert m.seq == 0


def test_backlog_keeps_old_layouts():
    m = Machine(MachineConfig.uniform(2, "64M", 2, backlog=2))
    for n in (2, 3, 4):
        m.commit(MemLayout.push(m.ram_ranges(), n))
    assert [ml.seq for ml in m.backlog] == [1, 2] and m.layout.seq == 3


def test_reserved_pages_are_rehomed_in_place():
    cfg = MachineConfig(ram=((0, 16384, 0),), cpu_to_node=(0,), reserved=((100, 200),),
                        max_numnodes=4)
    m = Machine(cfg)
    rep = m.commit(MemLayout.push(m.ram_ranges(), 1))
    validate_all(m)
    assert rep.reserved_rehomed == 100
    assert m.NODE_DATA(0).node_present_pages == 0
    assert m.zone(1, ZONE_DMA32).managed_pages == 12288
    assert m.zone(1, 0).present_pages - m.zone(1, 0).managed_pages == 100


def test_marks_clear_when_the_layout_returns(busy):
    m, _ch = busy
    rep1 = m.commit(MemLayout.stripe(m.ram_ranges(), [0, 1, 2], 256))
    rep2 = m.commit(MemLayout.from_ranges([(0, 16383, 0), (16384, 32767, 1)]))
    validate_all(m)
    assert rep2.pages_unmarked == rep1.pages_marked
    assert m.marked_pages() == 0 == m.misplaced_pages()


def test_demo_scenario_invariants_hold_at_every_step():
    res = run_scenario(load_scenario("demo"), check=validate_all)
    m, steps = res.machine, res.steps
    assert [s.name for s in steps] == ["stripe", "push", "boot"]
    assert steps[0].report.nodes_onlined == [2] and steps[1].report.nodes_onlined == [3]
    assert m.total_present_pages == 32768
    free = np.flatnonzero(m.free_mask())
    assert np.array_equal(m.S.page_nid[free], (free >= 16384).astype(np.int16))
    assert sum(s.moved_on_free for s in steps) == m.moved_on_free > 0


def test_commit_ends_with_drain_all_pages(busy):
    """memlayout_commit's last step (every RFC version) is drain_all_pages():
    no CPU holds a pcp page after a commit, and the pcp pages whose node
    changed went to their new node's buddy lists as they drained."""
    m, _ch = busy
    on_pcp = m.pages_on_pcp()
    pcp = np.flatnonzero(m.S.page_flags & PG_pcp)
    assert on_pcp > 0
    rep = m.commit(MemLayout.stripe(m.ram_ranges(), [0, 1, 2], 256))
    validate_all(m)
    assert m.pages_on_pcp() == 0 and int(m.S.pcp_count.sum()) == 0
    assert rep.pcp_pages_drained == on_pcp
    want = (pcp // 256) % 3
    assert 0 < rep.pcp_pages_moved < on_pcp
    # every former pcp page is now a free buddy page on its layout node
    assert np.all(m.free_mask()[pcp]) and np.array_equal(m.S.page_nid[pcp], want)
    # the RFC's moved-pages counts the commit's transplants (buddy and pcp)
    assert m.moved_pages == rep.free_pages_moved + rep.pcp_pages_moved
    assert m.moved_on_free == 0


def test_a_node_onlined_by_a_commit_stays_online_without_pages():
    """A layout naming a node that gets no page (a range over a hole) onlines
    it and it stays online, memoryless, as after 6.12's offline_pages."""
    m = Machine(MachineConfig(ram=((0, 0x800, 0), (0x900, 0x1000, 1)), cpu_to_node=(0, 1)))
    rep = m.commit(MemLayout.from_ranges([(0x800, 0x8FF, 2)]))
    validate_all(m)
    assert rep.nodes_onlined == [2] and rep.nodes_offlined == []
    st = m.topo.node_states
    assert st[N_ONLINE, 2] and not st[N_MEMORY, 2] and m.NODE_DATA(2).node_present_pages == 0
    assert m.uevents == [("add", "/devices/system/node/node2", "node")]
