"""Bad input to the public Python API (Machine, MachineConfig, MemLayout, the
allocator calls): a typed DnumaError naming the argument, never TypeError,
OverflowError, numba's TypingError or MemoryError, and the machine's state
unchanged (tests.helpers.snapshot before and after)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from dnuma.mm import errors
from dnuma.mm.constants import __GFP_DMA, __GFP_DMA32, __GFP_HIGHMEM, N_MEMORY
from dnuma.mm.errors import (
    AllocArgError,
    ArgError,
    BadFreeError,
    ConfigError,
    DnumaError,
    LayoutError,
)
from dnuma.mm.machine import InitialState, Machine, MachineConfig, boot, parse_size
from dnuma.mm.memlayout import PFN_LIMIT, MemLayout
from dnuma.mm.page_alloc import MemPolicy
from dnuma.mm.validate import validate_all
from tests.helpers import assert_same, snapshot

#: what a bad argument must never surface as
UNTYPED = (TypeError, OverflowError, MemoryError, AttributeError, IndexError, KeyError)

MAXN = 4  # the test machine's MAX_NUMNODES (not the default 64, nor 1024)


def _machine() -> Machine:
    """16 MiB, 2 nodes of MAXN possible, 2 CPUs, one layout committed and a
    few blocks allocated: the head of an order-2 block at ``m.test_head``."""
    m = Machine(MachineConfig.uniform(2, "16M", 2, max_numnodes=MAXN))
    m.test_head = m.alloc_pages(2, cpu=0)
    for cpu in (0, 1):
        m.alloc_pages(0, cpu=cpu)
    m.commit(MemLayout.stripe(m.ram_ranges(), [0, 1, 2], 256))
    return m


def _rebound_overlap(m: Machine) -> None:
    ml = MemLayout.from_ranges([(0, 99, 0), (100, 199, 1)])
    ml.starts = np.array([0, 50])  # attributes can be re-bound; the commit re-checks
    m.commit(ml)


def _policy(mode: str, nodes: list[int]) -> MemPolicy:
    return MemPolicy(mode, nodes)


def _case(name: str, call: Callable[[Machine], Any], exc: type[DnumaError],
          *words: str) -> Any:
    return pytest.param(call, exc, words, id=name)


API_CASES = [
    # alloc_pages: order
    _case("alloc-order-float", lambda m: m.alloc_pages(order=1.5), AllocArgError,
          "order", "integer", "float"),
    _case("alloc-order-negative", lambda m: m.alloc_pages(order=-1), AllocArgError,
          "order", "[0, 10]"),
    _case("alloc-order-above-max", lambda m: m.alloc_pages(order=11), AllocArgError,
          "order", "MAX_PAGE_ORDER"),
    _case("alloc-order-bool", lambda m: m.alloc_pages(order=True), AllocArgError,
          "order", "bool"),
    _case("alloc-order-numpy-float", lambda m: m.alloc_pages(order=np.float64(2)),
          AllocArgError, "order", "float64"),
    _case("alloc-order-str", lambda m: m.alloc_pages(order="1"), AllocArgError, "order"),
    # cpu
    _case("alloc-cpu-huge", lambda m: m.alloc_pages(cpu=10**20), AllocArgError,
          "cpu", "[0, 2)"),
    _case("alloc-cpu-negative", lambda m: m.alloc_pages(cpu=-1), AllocArgError, "cpu"),
    _case("alloc-cpu-float", lambda m: m.alloc_pages(cpu=0.0), AllocArgError, "cpu"),
    # nid: the machine's own MAX_NUMNODES in the message
    _case("alloc-nid-str", lambda m: m.alloc_pages(nid="0"), AllocArgError, "nid", "str"),
    _case("alloc-nid-beyond-max", lambda m: m.alloc_pages(nid=MAXN), AllocArgError,
          "nid", f"[0, {MAXN})", "MAX_NUMNODES"),
    _case("alloc-nid-numpy-float", lambda m: m.alloc_pages(nid=np.float32(1)),
          AllocArgError, "nid"),
    # gfp
    _case("alloc-gfp-beyond-u32", lambda m: m.alloc_pages(gfp=2**64), AllocArgError,
          "gfp", "gfp_t"),
    _case("alloc-gfp-float", lambda m: m.alloc_pages(gfp=1.5), AllocArgError, "gfp"),
    _case("alloc-gfp-zone-bad", lambda m: m.alloc_pages(gfp=__GFP_DMA | __GFP_DMA32),
          AllocArgError, "gfp", "GFP_ZONE_BAD"),
    _case("alloc-gfp-zone-bad-highmem", lambda m: m.alloc_pages(gfp=__GFP_DMA | __GFP_HIGHMEM),
          AllocArgError, "gfp", "GFP_ZONE_BAD"),
    # owner: page_owner is int16
    _case("alloc-owner-2**40", lambda m: m.alloc_pages(owner=2**40), AllocArgError,
          "owner", "int16"),
    _case("alloc-owner-negative", lambda m: m.alloc_pages(owner=-5), AllocArgError, "owner"),
    _case("alloc-owner-float", lambda m: m.alloc_pages(owner=np.float64(3)), AllocArgError,
          "owner"),
    # policy
    _case("alloc-policy-str", lambda m: m.alloc_pages(policy="interleave"), AllocArgError,
          "policy", "MemPolicy"),
    _case("alloc-nid-and-policy", lambda m: m.alloc_pages(nid=1, policy=_policy("bind", [1])),
          AllocArgError, "nid and policy"),
    _case("alloc-policy-node-2000", lambda m: m.alloc_pages(policy=_policy("bind", [2000])),
          AllocArgError, "policy", "node 2000", f"[0, {MAXN})", "MAX_NUMNODES"),
    _case("alloc-policy-node-beyond-max",
          lambda m: m.alloc_pages(policy=_policy("bind", [MAXN + 3])), AllocArgError,
          "policy", f"[0, {MAXN})"),
    _case("policy-node-str", lambda m: m.alloc_pages(policy=_policy("bind", ["1"])),
          AllocArgError, "policy nodes[0]"),
    _case("policy-mode-bool", lambda m: m.alloc_pages(policy=MemPolicy(True)),
          AllocArgError, "policy", "mode"),
    # free_pages
    _case("free-pfn-2**64", lambda m: m.free_pages(2**64, 0), BadFreeError, "pfn", "outside"),
    _case("free-pfn-negative", lambda m: m.free_pages(-1, 0), BadFreeError, "pfn"),
    _case("free-pfn-float", lambda m: m.free_pages(float(m.test_head), 2),
          BadFreeError, "pfn", "float"),
    _case("free-order-float", lambda m: m.free_pages(m.test_head, 2.0),
          BadFreeError, "order"),
    _case("free-order-above-max", lambda m: m.free_pages(m.test_head, 11),
          BadFreeError, "order", "MAX_PAGE_ORDER"),
    _case("free-order-huge", lambda m: m.free_pages(m.test_head, 2**70),
          BadFreeError, "order"),
    _case("free-cpu-str", lambda m: m.free_pages(m.test_head, 2, "0"),
          AllocArgError, "cpu"),
    _case("free-cpu-huge", lambda m: m.free_pages(m.test_head, 2, 2**70),
          AllocArgError, "cpu"),
    _case("free-wrong-order", lambda m: m.free_pages(m.test_head, 1),
          BadFreeError, "order-2 block, freed as order 1"),
    # views
    _case("node-data-str", lambda m: m.NODE_DATA("0"), AllocArgError, "nid"),
    _case("node-data-beyond-max", lambda m: m.NODE_DATA(MAXN), AllocArgError, "nid",
          f"[0, {MAXN})"),
    _case("zone-idx-beyond", lambda m: m.zone(0, 4), AllocArgError, "zone_idx", "MAX_NR_ZONES"),
    _case("zone-idx-float", lambda m: m.zone(0, 1.0), AllocArgError, "zone_idx"),
    _case("numastat-negative", lambda m: m.numastat(-1), AllocArgError, "nid"),
    _case("node-state-beyond", lambda m: list(m.for_each_node_state(99)), ArgError,
          "node state"),
    _case("pcp-cpu-beyond", lambda m: m.zone(0, 1).pcp(5), AllocArgError, "cpu"),
    _case("zone-idx-of-pfn-float", lambda m: m.zone_idx_of_pfn(1.5), ArgError, "pfn"),
    _case("node-distance-str", lambda m: m.topo.node_distance("0", 1), ArgError,
          "node_distance"),
    # commit and layouts
    _case("commit-not-a-layout", lambda m: m.commit("0-fff:1"), LayoutError, "layout",
          "MemLayout"),
    _case("commit-beyond-memory", lambda m: m.commit(MemLayout.from_ranges([(0, 4096, 1)])),
          LayoutError, "beyond the end of memory"),
    _case("commit-node-beyond-max", lambda m: m.commit(MemLayout.from_ranges([(0, 9, 9)])),
          LayoutError, "node 9", f"[0, {MAXN})", "MAX_NUMNODES"),
    _case("commit-rebound-arrays-overlap", _rebound_overlap, LayoutError, "overlapping"),
    _case("layout-unsorted", lambda m: m.commit(MemLayout(
        np.array([100, 0]), np.array([199, 99]), np.array([1, 0]))), LayoutError,
        "range #1", "sorted"),
    _case("layout-overlap", lambda m: m.commit(MemLayout(
        np.array([0, 50]), np.array([99, 199]), np.array([0, 1]))), LayoutError,
        "overlapping", "range #0", "range #1"),
    _case("layout-float-array", lambda m: m.commit(MemLayout(
        np.array([0.0]), np.array([99]), np.array([0]))), LayoutError, "starts", "float64"),
    _case("layout-bool-nids", lambda m: m.commit(MemLayout(
        np.array([0]), np.array([99]), np.array([True]))), LayoutError, "nids", "bool"),
    _case("layout-start-after-end", lambda m: m.commit(MemLayout(
        np.array([0, 300]), np.array([99, 200]), np.array([0, 1]))), LayoutError,
        "range #1", "start > end"),
    _case("layout-lengths-differ", lambda m: m.commit(MemLayout(
        np.array([0, 300]), np.array([99]), np.array([0, 1]))), LayoutError, "one length"),
    _case("layout-from-strings", lambda m: m.commit(MemLayout.from_ranges([("0", "5", "0")])),
          LayoutError, "range #0", "start", "str"),
    _case("layout-float-end", lambda m: m.commit(MemLayout.from_ranges([(0, 1.5, 0)])),
          LayoutError, "range #0", "end"),
    _case("layout-end-2**70", lambda m: m.commit(MemLayout.from_ranges([(0, 2**70, 0)])),
          LayoutError, "range #0", "end"),
    _case("layout-nid-2000", lambda m: m.commit(MemLayout.from_ranges([(0, 9, 2000)])),
          LayoutError, "node 2000", f"[0, {MAXN})", "MAX_NUMNODES"),
    _case("layout-nid-beyond-int16", lambda m: m.commit(MemLayout.from_ranges([(0, 9, 1 << 15)])),
          LayoutError, "nid 32768", "int16"),
    _case("push-nid-5000", lambda m: m.commit(MemLayout.push(m.ram_ranges(), 5000)),
          LayoutError, "node 5000", f"[0, {MAXN})", "MAX_NUMNODES"),
    _case("layout-uint64-beyond", lambda m: m.commit(MemLayout.from_arrays(
        np.array([0], np.uint64), np.array([2**64 - 1], np.uint64), np.array([0]))),
        LayoutError, "end pfn", "PFN_LIMIT"),
    _case("stripe-block-zero", lambda m: m.commit(MemLayout.stripe(m.ram_ranges(), [0], 0)),
          LayoutError, "block_pfns"),
    _case("stripe-node-numpy-float", lambda m: m.commit(MemLayout.stripe(
        m.ram_ranges(), [np.float64(0)], 256)), LayoutError, "nodes[0]"),
    _case("stripe-too-many-ranges", lambda m: m.commit(MemLayout.stripe(
        [(0, PFN_LIMIT)], [0, 1], 1)), LayoutError, "stripe", "bytes"),
    _case("push-nid-negative", lambda m: m.commit(MemLayout.push(m.ram_ranges(), -1)),
          LayoutError, "nid"),
    _case("push-end-before-start", lambda m: m.commit(MemLayout.push([(10, 5)], 0)),
          LayoutError, "ram_ranges[0]"),
    _case("lookup-float-pfns", lambda m: m.effective.lookup(np.array([0.5])), ArgError,
          "pfns", "float64"),
    _case("pfn-to-nid-huge", lambda m: m.layout.pfn_to_nid(2**64), ArgError, "pfn"),
    _case("with-seq-float", lambda m: m.commit(m.layout.with_seq(1.5)), LayoutError, "seq"),
    # the notifier chain
    _case("notifier-not-callable", lambda m: m.notifier.register("listener"), ArgError, "fn"),
    _case("notifier-priority-float", lambda m: m.notifier.register(print, priority=0.5),
          ArgError, "priority"),
]


@pytest.mark.parametrize(("call", "exc", "words"), API_CASES)
def test_bad_api_argument_is_typed_named_and_changes_nothing(call, exc, words):
    m = _machine()
    before = snapshot(m)
    listeners = len(m.notifier)
    with pytest.raises(exc) as ei:
        call(m)
    assert isinstance(ei.value, DnumaError) and not isinstance(ei.value, UNTYPED)
    for w in words:
        assert w in str(ei.value), f"{w!r} not in {str(ei.value)!r}"
    assert_same(before, snapshot(m))
    assert len(m.notifier) == listeners
    validate_all(m)


_RAM = ((0, 4096, 0),)
CONFIG_CASES = [
    pytest.param(lambda: MachineConfig.uniform(2, "4T", 2), ("mem", "4T", "bytes"),
                 id="mem-4T"),
    pytest.param(lambda: MachineConfig.uniform(2, float("nan"), 2), ("mem", "nan"),
                 id="mem-nan"),
    pytest.param(lambda: MachineConfig.uniform(2, -1, 2), ("mem", "-1"), id="mem-negative"),
    pytest.param(lambda: MachineConfig.uniform(2, "9" * 100, 2), ("mem", "cannot parse"),
                 id="mem-digits"),
    pytest.param(lambda: MachineConfig.uniform(2, "16M", 262144), ("cpus", "[1, 2730]", "NR_CPUS"),
                 id="cpus-262144"),
    pytest.param(lambda: MachineConfig.uniform(100, "1G", 2), ("nodes", "[1, 64]"),
                 id="nodes-beyond-default-max"),
    pytest.param(lambda: MachineConfig.uniform(5, "16M", 2, max_numnodes=4), ("nodes", "[1, 4]"),
                 id="nodes-beyond-max"),
    pytest.param(lambda: MachineConfig.uniform(1.5, "16M", 2), ("nodes", "float"),
                 id="nodes-float"),
    pytest.param(lambda: MachineConfig(_RAM, (0,), max_numnodes=2000), ("max_numnodes", "1024"),
                 id="max-numnodes-2000"),
    pytest.param(lambda: MachineConfig(_RAM, (0, 0), distance=((10, 20), (20,))),
                 ("distance", "row 1"), id="distance-ragged"),
    pytest.param(lambda: MachineConfig(_RAM, (0,), distance=((10, 20), (300, 10))),
                 ("distance[1][0]", "254"), id="distance-beyond-254"),
    pytest.param(lambda: MachineConfig(_RAM, (0,), distance=((10, 20.5), (20.5, 10))),
                 ("distance[0][1]", "float"), id="distance-float"),
    pytest.param(lambda: MachineConfig(_RAM, (0,), distance=((0, 20), (20, 10))),
                 ("distance[0][0]", "LOCAL_DISTANCE"), id="distance-diagonal"),
    pytest.param(lambda: MachineConfig(_RAM, (0,), distance=((10, 255), (255, 10))),
                 ("distance[0][1]", "(10, 254]"), id="distance-255"),
    pytest.param(lambda: MachineConfig(_RAM, (0,), distance=((10,),) * 70),
                 ("distance", "max_numnodes"), id="distance-too-many-nodes"),
    pytest.param(lambda: MachineConfig(_RAM, (0,), min_free_kbytes=10**15),
                 ("min_free_kbytes", "[0, 16384]"), id="min-free-kbytes-1e15"),
    pytest.param(lambda: MachineConfig(_RAM, (0,), min_free_kbytes=float("inf")),
                 ("min_free_kbytes", "inf"), id="min-free-kbytes-inf"),
    pytest.param(lambda: MachineConfig(_RAM, (0,), min_free_kbytes=-1),
                 ("min_free_kbytes",), id="min-free-kbytes-negative"),
    pytest.param(lambda: MachineConfig(_RAM, (0,), backlog=-2), ("backlog",), id="backlog-2"),
    pytest.param(lambda: MachineConfig(_RAM, (0,), backlog=1.5), ("backlog", "float"),
                 id="backlog-float"),
    pytest.param(lambda: MachineConfig(_RAM, (0,), memory_block_bytes=3 << 27),
                 ("memory_block_bytes", "power of two"), id="memory-block-not-pow2"),
    pytest.param(lambda: MachineConfig(_RAM, (0,), memory_block_bytes=1 << 40),
                 ("memory_block_bytes", "outside"), id="memory-block-huge"),
    pytest.param(lambda: MachineConfig(((0, 4096.5, 0),), (0,)), ("ram", "float"),
                 id="ram-float"),
    pytest.param(lambda: MachineConfig(((0, 1 << 32, 0),), (0,)), ("ram", "2**31"),
                 id="ram-beyond-2**31"),
    pytest.param(lambda: MachineConfig(((0, 4096, 9),), (0,), max_numnodes=4),
                 ("ram", "node 9", "[0, 4)"), id="ram-node-beyond-max"),
    pytest.param(lambda: MachineConfig(_RAM, ("0",)), ("cpus", "cpu 0", "str"),
                 id="cpu-to-node-str"),
    pytest.param(lambda: MachineConfig(_RAM, (0,), reserved=((5, 2),)), ("reserved",),
                 id="reserved-empty"),
    pytest.param(lambda: MachineConfig(_RAM, (0,), reserved=((0.5, 2),)), ("reserved", "float"),
                 id="reserved-float"),
    pytest.param(lambda: MachineConfig(_RAM, (0,), profile="x86_64"), ("profile",),
                 id="profile-str"),
    pytest.param(lambda: Machine("16M"), ("config", "MachineConfig"), id="machine-not-config"),
    pytest.param(lambda: Machine(MachineConfig(_RAM, (0,)), initial="x"), ("initial",),
                 id="machine-initial-str"),
    pytest.param(lambda: Machine(MachineConfig(_RAM, (0,)), InitialState(
        np.array([0.5]), np.array([0]), np.array([0], np.uint8))), ("alloc_pfn", "float64"),
        id="initial-float-pfns"),
    pytest.param(lambda: Machine(MachineConfig(_RAM, (0,)), InitialState(
        np.array([0]), np.array([0]), np.array([0], np.uint8), np.array([2**40]))),
        ("alloc_owner", "int16"), id="initial-owner-2**40"),
    pytest.param(lambda: boot(config=MachineConfig(_RAM, (0,)), max_numnodes=4),
                 ("config", "not both"), id="boot-config-and-fields"),
    pytest.param(lambda: parse_size(1e9), ("size", "float"), id="parse-size-float"),
    pytest.param(lambda: boot(2, "16M", 2, min_free_kb=5), ("min_free_kb", "not a machine field"),
                 id="boot-unknown-field"),
]


@pytest.mark.parametrize(("make", "words"), CONFIG_CASES)
def test_bad_config_is_refused_naming_the_field(make, words):
    with pytest.raises(ConfigError) as ei:
        make()
    assert not isinstance(ei.value, UNTYPED)
    for w in words:
        assert w in str(ei.value), f"{w!r} not in {str(ei.value)!r}"


def test_a_state_beyond_the_memory_available_is_refused_with_its_bytes(monkeypatch):
    cfg = MachineConfig.uniform(2, "16M", 2)
    monkeypatch.setattr(errors, "available_bytes", lambda: 1 << 20)
    with pytest.raises(ConfigError, match=r"would need [\d,]+ bytes .* 1,048,576 bytes of "
                                          r"memory available"):
        Machine(cfg)
    monkeypatch.setattr(errors, "MAX_STATE_BYTES", 1 << 16)
    with pytest.raises(ConfigError, match="MAX_STATE_BYTES"):
        MachineConfig.uniform(2, "16M", 2)


def test_user_min_free_kbytes_up_to_the_memory_is_taken():
    m = Machine(MachineConfig(((0, 4096, 0),), (0,), min_free_kbytes=16384))
    assert m.min_free_kbytes == 16384
    validate_all(m)


def test_config_sequences_are_normalised_to_tuples_of_ints():
    cfg = MachineConfig([[np.int64(0), 4096, np.int32(0)]], [np.int16(0)],
                        distance=[[10]], reserved=[[0, 16]])
    assert cfg.ram == ((0, 4096, 0),) and type(cfg.ram[0][0]) is int
    assert cfg.cpu_to_node == (0,) and cfg.distance == ((10,),) and cfg.reserved == ((0, 16),)
    validate_all(Machine(cfg))


def test_numpy_integers_are_taken_where_ints_are():
    m = _machine()
    p = m.alloc_pages(np.int8(1), cpu=np.int64(1), nid=np.int32(0), owner=np.int16(7))
    assert p is not None and m.S.page_owner[p] == 7
    m.free_pages(np.int64(p), np.uint8(1), np.int32(1))
    assert m.NODE_DATA(np.int64(1)).node_id == 1
    ml = MemLayout(np.array([0], np.int32), np.array([4095], np.uint16), np.array([1], np.int8))
    assert ml.starts.dtype == np.int64 and ml.nids.dtype == np.int16
    m.commit(ml)
    validate_all(m)


# ---------------------------------------------------------------- Hypothesis
_ROWS = st.lists(st.tuples(st.integers(-40, 700), st.integers(-2, 1200), st.integers(-1, 5)),
                 min_size=0, max_size=8)


@settings(max_examples=max(40, settings.default.max_examples), deadline=None)
@given(_ROWS, st.integers(-3, 50), st.booleans(), st.data(),
       st.sampled_from(["init", "from_ranges", "from_arrays"]),
       st.sampled_from([np.int64, np.int32]))
def test_random_layouts_are_refused_or_commit_to_a_valid_machine(rows, first, shuffle, data,
                                                                 how, dtype):
    """Random (start, end, nid) lists laid out by (gap, length) steps, some
    gaps negative (overlaps), some lengths negative (start > end), in pfn
    order or shuffled, some beyond memory (4096 pfns) or MAX_NUMNODES:
    LayoutError with the machine unchanged, or a commit after which every
    invariant holds and the effective layout gives each range its node."""
    ranges, pos = [], first
    for gap, length, nid in rows:
        ranges.append((pos + gap, pos + gap + length, nid))
        pos += gap + max(length, 0) + 1
    if shuffle:
        ranges = data.draw(st.permutations(ranges))
    cols = [np.array([r[i] for r in ranges], dtype=dtype) for i in range(3)]
    m = Machine(MachineConfig.uniform(2, "16M", 2, max_numnodes=MAXN))
    m.alloc_pages(1, cpu=1)
    before = snapshot(m)
    try:
        if how == "init":
            ml = MemLayout(*cols)
        elif how == "from_arrays":
            ml = MemLayout.from_arrays(*cols)
        else:
            ml = MemLayout.from_ranges(ranges)
        rep = m.commit(ml)
    except LayoutError as e:
        event("refused")
        assert "range" in str(e) or "layout" in str(e)
        assert_same(before, snapshot(m))
        return
    event("committed")
    validate_all(m)
    assert rep.seq == m.seq == 1
    for s, e, nid in ml:
        assert m.effective.pfn_to_nid(s) == nid == m.effective.pfn_to_nid(e)
        assert m.topo.node_states[N_MEMORY, nid]
