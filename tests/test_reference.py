"""The compiled engine against the plain-Python reference model (tests/naive.py).

Stateful Hypothesis runs boot small machines and interleave allocations (all
policies, gfp zones and migratetypes, explicit nodes and __GFP_THISNODE),
frees from random CPUs, drains and DNUMA commits of random layouts (stripes
with unaligned block sizes, pushes to new nodes, the boot layout, partial
layouts) and vmstat ticks; after every step the engine's whole observable state must equal the
reference's and ``validate_all`` must pass.  Deterministic tests replay the
seed scenario under the reference and pin the engine bugs it found (regressions).
"""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
)

from dnuma._kernels import state as kstate
from dnuma.mm.constants import (
    __GFP_DMA,
    __GFP_HIGH,
    __GFP_RECLAIMABLE,
    __GFP_THISNODE,
    GFP_ATOMIC,
    GFP_DMA32,
    GFP_HIGHUSER_MOVABLE,
    GFP_KERNEL,
    MIGRATE_MOVABLE,
    PPC64,
    ZONE_DMA32,
)
from dnuma.mm.errors import BadFreeError
from dnuma.mm.machine import Machine, MachineConfig, boot
from dnuma.mm.memlayout import MemLayout
from dnuma.mm.page_alloc import MemPolicy
from dnuma.mm.validate import validate_all
from tests.naive import (
    RefBadFree,
    RefMachine,
    assert_agree,
    both_alloc,
    both_commit,
    both_free,
    ref_boot,
)

MAX_NODES = 8  # max_numnodes of the generated machines (small arrays, fast compares)
NODE_POOL = 6  # layouts and policies use nodes 0..5: new nodes beyond the boot ones

# GFP_ATOMIC goes through the model's slowpath (min watermark with the
# __GFP_HIGH/ALLOC_NON_BLOCK reductions, drain, retry) like every other gfp.
GFPS = (
    GFP_KERNEL,
    GFP_HIGHUSER_MOVABLE,
    __GFP_RECLAIMABLE,
    GFP_DMA32,
    GFP_KERNEL | __GFP_HIGH,
    GFP_KERNEL | __GFP_THISNODE,
    GFP_HIGHUSER_MOVABLE | __GFP_THISNODE,
    __GFP_RECLAIMABLE | __GFP_THISNODE,
    __GFP_DMA,
    GFP_ATOMIC,
)
ORDERS = (0,) * 8 + (1,) * 4 + (2, 2, 3, 3, 4, 5, 6, 7, 8, 9, 10)
STRIPE_BLOCKS = (37, 64, 256, 300, 511, 512, 1000, 1024, 4096)


# ---------------------------------------------------------------------- helpers
def check_layout_nodes(m: Machine) -> None:
    """Every free page sits on the node the effective layout gives it."""
    free = np.flatnonzero(m.free_mask())
    want = m.effective.lookup_nocount(free)
    covered = want >= 0
    assert np.array_equal(m.S.page_nid[free][covered], want[covered])


def partial_layout(ram_end: int, cuts: list[int], nodes: list[int]) -> MemLayout:
    """Ranges between pairs of the sorted distinct cut points (< ram_end)."""
    pts = sorted({c % ram_end for c in cuts})
    if len(pts) % 2:
        pts = pts[:-1] if len(pts) > 1 else [pts[0], pts[0]]
    rows = [(pts[i], pts[i + 1], nodes[(i // 2) % len(nodes)]) for i in range(0, len(pts), 2)]
    return MemLayout.from_ranges(rows)


# ---------------------------------------------------------------------- strategies
@st.composite
def machine_configs(draw: Any) -> MachineConfig:
    """Small x86_64 machines: uniform ones, or RAM ranges by node with holes
    between them, reserved ranges and CPUs on a memoryless node."""
    if draw(st.booleans()):
        return MachineConfig.uniform(
            nodes=draw(st.integers(2, 4)),
            mem=f"{draw(st.sampled_from([16, 24, 32, 48, 64]))}M",
            cpus=draw(st.integers(2, 8)), max_numnodes=MAX_NODES)
    nodes = draw(st.integers(2, 4))
    ram, cur = [], draw(st.sampled_from([0, 0, 1, 37, 4096]))
    for nid in range(nodes):
        if nid and draw(st.booleans()):
            cur += draw(st.integers(1, 3000))  # a hole
        size = draw(st.integers(1200, 6000))
        ram.append((cur, cur + size, nid))
        cur += size
    reserved = []
    for _ in range(draw(st.integers(0, 3))):
        s = draw(st.integers(0, cur - 2))
        reserved.append((s, min(cur, s + draw(st.integers(1, 300)))))
    ncpu = draw(st.integers(2, 8))
    cpu_nodes = st.integers(0, nodes) if draw(st.booleans()) else st.integers(0, nodes - 1)
    c2n = tuple(draw(st.lists(cpu_nodes, min_size=ncpu, max_size=ncpu)))
    return MachineConfig(ram=tuple(ram), cpu_to_node=c2n, reserved=tuple(reserved),
                         max_numnodes=MAX_NODES)


node_sets = st.lists(st.integers(0, NODE_POOL - 1), min_size=1, max_size=3, unique=True)
policy_specs = st.tuples(st.sampled_from(["local", "preferred", "bind", "interleave"]),
                         node_sets)
layout_specs = st.one_of(
    st.tuples(st.just("stripe"), node_sets,
              st.one_of(st.sampled_from(STRIPE_BLOCKS), st.integers(16, 5000))),
    st.tuples(st.just("push"), st.integers(0, NODE_POOL - 1)),
    st.tuples(st.just("boot")),
    st.tuples(st.just("partial"), st.lists(st.integers(0, 1 << 20), min_size=2, max_size=8),
              node_sets),
)


# ---------------------------------------------------------------------- state machine
class EngineVsReference(RuleBasedStateMachine):
    """Random allocator and DNUMA traffic on the engine and the reference."""

    m: Machine
    r: RefMachine

    @initialize(cfg=machine_configs(), pols=st.lists(policy_specs, min_size=1, max_size=4))
    def boot_machine(self, cfg: MachineConfig, pols: list[tuple[str, list[int]]]) -> None:
        self.m = Machine(cfg)
        self.r = ref_boot(self.m)
        self.total = self.m.total_present_pages
        self.live: list[tuple[int, int]] = []
        self.policies = [MemPolicy(mode, nodes) for mode, nodes in pols]
        self.owner = 0

    @rule(order=st.sampled_from(ORDERS), cpu=st.integers(0, 7), gfp=st.sampled_from(GFPS),
          how=st.one_of(st.none(), st.tuples(st.just("policy"), st.integers(0, 3)),
                        st.tuples(st.just("nid"), st.integers(0, NODE_POOL - 1))))
    def alloc(self, order: int, cpu: int, gfp: int, how: tuple[str, int] | None) -> None:
        cpu %= self.m.nr_cpus
        kw: dict[str, Any] = {"gfp": gfp}
        if how is not None and how[0] == "policy":
            kw["policy"] = self.policies[how[1] % len(self.policies)]
        elif how is not None:
            kw["nid"] = how[1]
        self.owner = (self.owner + 1) % 1000
        p = both_alloc(self.m, self.r, order, cpu, owner=self.owner, **kw)
        if p is not None:
            self.live.append((p, order))

    @rule(order=st.integers(0, 3), n=st.integers(1, 600), cpu=st.integers(0, 7),
          gfp=st.sampled_from(GFPS[:5]))
    def burst(self, order: int, n: int, cpu: int, gfp: int) -> None:
        """Many allocations in a row: memory pressure, watermarks, the
        slowpath's drain, fallbacks (claim and steal), failures."""
        cpu %= self.m.nr_cpus
        for _ in range(n):
            p = both_alloc(self.m, self.r, order, cpu, gfp=gfp)
            if p is None:
                break
            self.live.append((p, order))

    @rule(seed=st.integers(0, 1 << 16), frac=st.sampled_from([0.25, 0.5, 0.9]))
    def free_many(self, seed: int, frac: float) -> None:
        """Free a random part of the live blocks, from random CPUs (pcp high,
        free_high and bulk frees; fragmentation)."""
        rnd = random.Random(seed)
        rnd.shuffle(self.live)
        k = int(len(self.live) * frac)
        for pfn, order in self.live[:k]:
            both_free(self.m, self.r, pfn, order, rnd.randrange(self.m.nr_cpus))
        del self.live[:k]

    @rule(k=st.integers(0, 1 << 16), cpu=st.integers(0, 7))
    def free(self, k: int, cpu: int) -> None:
        if not self.live:
            return
        pfn, order = self.live.pop(k % len(self.live))
        both_free(self.m, self.r, pfn, order, cpu % self.m.nr_cpus)

    @rule(pfn=st.integers(0, 1 << 16), order=st.integers(0, 10))
    def bad_free(self, pfn: int, order: int) -> None:
        """Freeing what is not an allocated head of that order changes nothing."""
        pfn %= self.m.max_pfn
        if (pfn, order) in self.live:
            return
        with pytest.raises(BadFreeError):
            self.m.free_pages(pfn, order, 0)
        with pytest.raises(RefBadFree):
            self.r.free_pages(pfn, order, 0)

    @rule()
    def drain(self) -> None:
        self.m.drain_all_pages()
        self.r.drain_all_pages()
        self.r.sync_setup(self.m)

    @rule(n=st.integers(1, 4))
    def vmstat_tick(self, n: int) -> None:
        """``n`` seconds of vmstat_update: pcp high decay, remote pcp drains."""
        for _ in range(n):
            self.m.vmstat_tick()
            self.r.vmstat_tick()

    @rule(spec=layout_specs)
    def commit(self, spec: tuple[Any, ...]) -> None:
        ram = self.m.ram_ranges()
        kind = spec[0]
        if kind == "stripe":
            layout = MemLayout.stripe(ram, spec[1], spec[2])
        elif kind == "push":
            layout = MemLayout.push(ram, spec[1])
        elif kind == "boot":
            layout = MemLayout.from_ranges((s, e - 1, n) for s, e, n in self.m.config.ram)
        else:
            layout = partial_layout(ram[-1][1], spec[1], spec[2])
        both_commit(self.m, self.r, layout)

    @invariant()
    def engine_agrees_with_reference(self) -> None:
        if not hasattr(self, "m"):
            return
        validate_all(self.m)
        assert_agree(self.r, self.m)
        assert self.m.total_present_pages == self.total


# The default run does not shrink a failure (shrinking these runs takes minutes):
# the report names the step and every difference; ``pytest -m slow`` shrinks.
# 60 examples under the default Hypothesis profile, scaled with the loaded one
# (tests/conftest.py).
EngineVsReference.TestCase.settings = settings(
    max_examples=max(1, settings.default.max_examples * 3 // 5), stateful_step_count=50,
    deadline=None, report_multiple_bugs=False,
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
TestEngineVsReference = EngineVsReference.TestCase


class EngineVsReferenceBig(EngineVsReference):
    """The same, longer and more often (``pytest -m slow``)."""


EngineVsReferenceBig.TestCase.settings = settings(
    max_examples=300, stateful_step_count=120, deadline=None, report_multiple_bugs=False,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
TestEngineVsReferenceBig = pytest.mark.slow(EngineVsReferenceBig.TestCase)


# ---------------------------------------------------------------------- seed scenario
def churn(m: Machine, r: RefMachine, rnd: random.Random, live: list[tuple[int, int, int]],
          ops: int, target: int) -> None:
    """Alloc/free churn of mixed orders and gfps on both machines; allocates
    while fewer than ``target`` pages are live, else frees a random block."""
    orders, ow = (0, 1, 2, 3, 4, 9), (16, 6, 3, 2, 1, 0.05)
    gfps = (GFP_KERNEL, GFP_HIGHUSER_MOVABLE, __GFP_RECLAIMABLE)
    pages = sum(1 << o for _p, o, _c in live)
    for i in range(ops):
        if i % 500 == 499:  # a second has passed
            m.vmstat_tick()
            r.vmstat_tick()
        if pages < target or not live:
            order = rnd.choices(orders, ow)[0]
            cpu = rnd.randrange(m.nr_cpus)
            gfp = rnd.choices(gfps, (3, 6, 1))[0]
            a = m.alloc_pages(order, cpu, gfp=gfp)
            b = r.alloc_pages(order, cpu, gfp=gfp)
            assert a == b, f"churn alloc order {order} cpu {cpu}: engine {a}, reference {b}"
            if a is not None:
                live.append((a, order, cpu))
                pages += 1 << order
        else:
            pfn, order, cpu = live.pop(rnd.randrange(len(live)))
            if rnd.random() < 0.3:
                cpu = rnd.randrange(m.nr_cpus)
            m.free_pages(pfn, order, cpu)
            r.free_pages(pfn, order, cpu)
            pages -= 1 << order
        r.sync_setup(m)


def test_seed_scenario_against_reference() -> None:
    """The RFC's experiment (128 MiB, 2 nodes, 8 CPUs, ~50% allocated by a
    mixed-order churn): stripe 256-pfn blocks over nodes 0,1,2, push to a new
    node 3, back to the boot layout; the reference agrees at every step."""
    m = boot(2, "128M", 8)
    r = ref_boot(m)
    total = m.total_present_pages
    rnd = random.Random(2024)
    live: list[tuple[int, int, int]] = []
    target = total // 2
    churn(m, r, rnd, live, 6000, target)
    assert sum(1 << o for _p, o, _c in live) >= target * 0.95
    assert_agree(r, m, "warm-up")
    ram = m.ram_ranges()
    plan = [("stripe", MemLayout.stripe(ram, [0, 1, 2], 256)),
            ("push", MemLayout.push(ram, 3)),
            ("boot", MemLayout.from_ranges([(0, 16383, 0), (16384, 32767, 1)]))]
    for name, layout in plan:
        both_commit(m, r, layout)
        for when in ("commit", "churn"):
            validate_all(m)
            check_layout_nodes(m)
            assert_agree(r, m, f"{name} {when}")
            assert m.total_present_pages == total
            assert m.nr_free_pages() + sum(1 << o for _p, o, _c in live) == total
            if when == "commit":
                churn(m, r, rnd, live, 2000, target)
    assert m.moved_on_free > 0
    # free everything: every page back on its boot node
    for pfn, order, cpu in live:
        both_free(m, r, pfn, order, cpu)
    m.drain_all_pages()
    r.drain_all_pages()
    validate_all(m)
    assert_agree(r, m, "free all")
    assert m.nr_free_pages() == total and m.marked_pages() == 0
    assert [m.NODE_DATA(n).node_present_pages for n in range(4)] == [16384, 16384, 0, 0]


@pytest.mark.parametrize("cfg", [
    MachineConfig.uniform(3, "64M", 3, max_numnodes=4),
    MachineConfig(ram=((37, 3000, 0), (4000, 9000, 1)), cpu_to_node=(0, 1, 2),
                  reserved=((100, 140), (8999, 9000)), max_numnodes=4),
    MachineConfig.uniform(3, "1G", 4, profile=PPC64, max_numnodes=4),
], ids=["uniform3", "holes-reserved", "ppc64"])
def test_boot_and_one_of_each_operation(cfg: MachineConfig) -> None:
    """A short fixed script over unaligned node boundaries, holes and reserved
    pages: boot, allocs of every order, frees, a stripe, a drain."""
    m = Machine(cfg)
    r = ref_boot(m)
    live = []
    for order in range(m.profile.max_page_order + 1):
        p = both_alloc(m, r, order, order % m.nr_cpus, gfp=GFPS[order % len(GFPS)])
        if p is not None:
            live.append((p, order))
    assert_agree(r, m, "allocs")
    both_commit(m, r, MemLayout.stripe(m.ram_ranges(), [1, 2, 3], 37))
    assert_agree(r, m, "stripe")
    for p, order in live[::2]:
        both_free(m, r, p, order, 1)
    m.drain_all_pages()
    r.drain_all_pages()
    validate_all(m)
    assert_agree(r, m, "frees")


def test_unaligned_partial_layout_split_matches_reference() -> None:
    m = boot(1, "16M", 1, max_numnodes=4)
    r = ref_boot(m)
    both_commit(m, r, MemLayout.from_ranges([(0, 36, 0), (37, 1000, 1), (1001, 4095, 0)]))
    validate_all(m)
    assert_agree(r, m, "commit")


# ------------------------------------------------------------- regressions (bugs found)
def test_claim_skips_a_pageblock_straddling_the_zone_span() -> None:
    """prep_move_freepages_block() refuses a pageblock that is not inside the
    zone's span (zone_spans_pfn on its first and last pfn), so
    try_to_steal_block() does not claim it and __rmqueue falls back to
    __rmqueue_steal, leaving the pageblock MOVABLE."""
    m = boot(3, "64M", 3, max_numnodes=4)  # node 0 ends at pfn 5461, mid-pageblock
    z = m.zone(0, ZONE_DMA32)
    assert (z.zone_start_pfn, z.zone_start_pfn + z.spanned_pages) == (4096, 5461)
    assert m.alloc_pages(10, cpu=0, gfp=GFP_HIGHUSER_MOVABLE) == 4096
    assert m.alloc_pages(0, cpu=0, gfp=GFP_KERNEL) == 5460
    assert int(m.S.pb_mt[5120 >> 9]) == MIGRATE_MOVABLE
    # node 1's free pages in that pageblock were not retyped either
    assert m.zone(1, ZONE_DMA32).nr_free_by_type()[:, 0].sum() == 0


def test_bind_is_not_applied_below_policy_zone() -> None:
    """policy_nodemask(): MPOL_BIND's nodemask applies only when
    apply_policy_zone() holds, i.e. gfp_zone() >= policy_zone ("Restrict to
    nodemask (but not on lower zones)"); policy_zone is ZONE_DMA32 here, so a
    GFP_DMA allocation ignores the mask and takes node 0's ZONE_DMA."""
    m = boot(2, "64M", 2)  # node 0: DMA + DMA32, node 1: DMA32 only
    pol = MemPolicy("bind", [1])
    p = m.alloc_pages(0, cpu=1, gfp=__GFP_DMA, policy=pol)
    assert p is not None and m.S.page_nid[p] == 0 and m.S.page_zone[p] == 0


def test_bind_to_nodes_without_memory_is_not_applied() -> None:
    """policy_nodemask(): MPOL_BIND's nodemask applies only when
    apply_policy_zone() holds; with no node of the mask in N_HIGH_MEMORY
    (here: node 1 gave all its memory away) it does not for a GFP_KERNEL
    allocation, which then comes from the local zonelist."""
    m = boot(2, "64M", 2)
    pol = MemPolicy("bind", [1])
    m.commit(MemLayout.push(m.ram_ranges(), 0))
    assert m.NODE_DATA(1).node_present_pages == 0
    p = m.alloc_pages(0, cpu=1, gfp=GFP_KERNEL, policy=pol)
    assert p is not None and m.S.page_nid[p] == 0
    # a movable allocation (gfp_zone ZONE_MOVABLE >= ZONE_MOVABLE) keeps the mask
    assert m.alloc_pages(0, cpu=1, gfp=GFP_HIGHUSER_MOVABLE, policy=pol) is None


def test_pcp_drained_counter_counts_pages() -> None:
    """C_PCP_DRAINED should grow by the pages drain_pages_zone() frees, not by
    pcp->count at each of its batch << PCP_BATCH_SCALE_MAX rounds."""
    m = boot(1, "64M", 1)
    r = ref_boot(m)
    ps = [both_alloc(m, r, 0, 0) for _ in range(200)]
    for p in ps:
        assert p is not None
        both_free(m, r, p, 0, 0)
    on_pcp = m.pages_on_pcp()
    assert on_pcp > int(m.S.pcp_batch.max()) << 5  # more than one drain round
    before = int(m.S.counters[kstate.C_PCP_DRAINED])
    m.drain_all_pages()
    r.drain_all_pages()
    assert_agree(r, m, "drain")
    assert int(m.S.counters[kstate.C_PCP_DRAINED]) - before == on_pcp == r.pcp_drained
