"""CPUs that change node and distance tables changed at runtime
(mm.topology_update), from the API and from a scenario."""

from __future__ import annotations

import numpy as np
import pytest

from dnuma.io.export import Tree
from dnuma.io.sysfs import cpu_tree, node_tree
from dnuma.mm.constants import MAX_NR_ZONES, N_CPU, N_ONLINE, NUMASTAT_NAMES
from dnuma.mm.machine import Machine, MachineConfig
from dnuma.mm.page_alloc import zone_pcp_update
from dnuma.mm.topology_update import TopologyError
from dnuma.mm.validate import validate_all
from dnuma.sim.events import NS
from dnuma.sim.run import run_scenario
from dnuma.sim.scenario import ScenarioError, load_scenario, parse_scenario

_LOCAL = NUMASTAT_NAMES.index("local_node")
_OTHER = NUMASTAT_NAMES.index("other_node")


def _sysfs(m: Machine) -> tuple[dict[str, str], set[str]]:
    """The node and cpu trees: files by path after ``devices/system/``, links."""
    t = Tree()
    node_tree(m, t)
    cpu_tree(m, t)
    cut = "devices/system/"
    return ({p[p.index(cut) + len(cut):]: text for p, text, _ in t.files},
            {p[p.index(cut) + len(cut):] for p, _ in t.links})


def _machine(**kw) -> Machine:
    m = Machine(MachineConfig.uniform(2, "64M", 4, max_numnodes=4, **kw))
    for i in range(64):
        m.alloc_pages(i % 3, cpu=i % 4)
    return m


def test_moved_cpus_drain_and_allocate_on_their_new_node():
    m = _machine()
    S = m.S
    assert S.pcp_count[2].sum() and S.pcp_count[3].sum()
    held = int(S.pcp_count[2:4].sum())
    rep = m.move_cpus({2: 0, 3: 0, 1: 0})  # cpu 1 is on node 0 already
    assert rep.moved == [(2, 1, 0), (3, 1, 0)] and rep.pcp_pages_drained == held
    assert not S.pcp_count[2:4].any()
    assert m.topo.cpu_to_node.tolist() == [0, 0, 0, 0]
    assert m.topo.cpumask_of_node(0) == [0, 1, 2, 3] and m.topo.cpumask_of_node(1) == []
    assert not m.topo.node_states[N_CPU, 1] and m.topo.node_states[N_ONLINE, 1]
    validate_all(m)
    before = S.numa_stat.copy()
    p = m.alloc_pages(0, cpu=3)
    assert S.page_nid[p] == 0  # numa_node_id() is the new node
    d = S.numa_stat - before
    assert d[:, _LOCAL].sum() == 1 and d[:, _OTHER].sum() == 0


def test_pcp_high_recomputed_for_the_nodes_that_changed_only():
    m = _machine()
    S = m.S
    S.pcp_high_max[1] += 7  # a zone of node 0, off its figure: node 0 is not touched
    m.move_cpus({3: 2})  # node 1 loses a CPU, node 2 gains one (no memory)
    assert S.pcp_high_max[1] == m.S.pcp_high_max[1]
    kept = S.pcp_high_max[1]
    node1 = slice(MAX_NR_ZONES, 2 * MAX_NR_ZONES)
    got = S.pcp_high_min[node1].copy(), S.pcp_high_max[node1].copy()
    zone_pcp_update(m, 0, populated_only=True)  # the kernel's figure now
    assert np.array_equal(got[0], S.pcp_high_min[node1])
    assert np.array_equal(got[1], S.pcp_high_max[node1])
    assert S.pcp_high_max[1] == kept - 7


def test_a_node_gains_its_first_cpu_and_the_zonelists_see_it():
    m = _machine()
    assert not m.topo.node_states[N_ONLINE, 3]
    rebuilds = m.zonelist_rebuilds
    rep = m.move_cpus({3: 3})
    assert rep.nodes_onlined == [3] and m.topo.node_states[N_CPU, 3]
    assert m.zonelist_rebuilds == rebuilds + 1
    # node 3 has no memory: it falls back to nodes 0 and 1, at one distance;
    # find_next_best_node's CPU penalty puts a node without CPUs first
    m.move_cpus({2: 3})  # node 1 has no CPU left
    assert m.fallback_order[3] == [1, 0]
    m.move_cpus({0: 3, 1: 3, 2: 1})  # now node 0 has none, node 1 has cpu 2
    assert m.fallback_order[3] == [0, 1]
    assert ("add", "/devices/system/node/node3", "node") in m.uevents
    files, links = _sysfs(m)
    assert files["node/node3/cpulist"] == "0-1,3\n" and files["node/node1/cpulist"] == "2\n"
    assert files["node/node0/cpulist"] == "\n"
    assert "cpu/cpu3/node3" in links and "cpu/cpu3/node1" not in links
    validate_all(m)


def test_a_node_left_with_nothing_goes_offline():
    m = _machine()
    m.move_cpus({3: 3})
    rep = m.move_cpus({3: 2})
    assert rep.nodes_offlined == [3] and rep.nodes_onlined == [2]
    assert not m.topo.node_states[N_ONLINE, 3]


@pytest.mark.parametrize(("moves", "says"), [
    ({9: 1}, "cpu: 9 outside"),
    ({1: 7}, "cpu 1: node: 7 outside"),
    ({1: "2"}, "cpu 1: node: expected an integer"),
    ([1, 2], "expected a mapping"),
])
def test_bad_moves_change_nothing(moves, says, unchanged):
    m = _machine()
    with unchanged(m), pytest.raises(TopologyError, match=says):
        m.move_cpus(moves)


def test_distances_change_the_fallback_order():
    m = Machine(MachineConfig.uniform(3, "96M", 3, max_numnodes=3))
    assert m.fallback_order[0] == [0, 1, 2]
    m.set_distances([[10, 40, 20], [40, 10, 20], [20, 20, 10]])
    assert m.fallback_order[0] == [0, 2, 1] and m.topo.node_distance(0, 2) == 20
    assert _sysfs(m)[0]["node/node0/distance"] == "10 40 20\n"
    # allocations from node 0's CPU fall back to node 2 once node 0 is full
    nids = []
    for _ in range(80):
        p = m.alloc_pages(9, cpu=0)
        if p is None:
            break
        nids.append(int(m.S.page_nid[p]))
    assert 2 in nids and nids[nids.index(2) - 1] == 0
    assert 1 not in nids[:nids.index(2) + 8]
    validate_all(m)


@pytest.mark.parametrize(("matrix", "says"), [
    ([[10, 20], [20, 10]], "2 rows, expected 3 to 3"),
    ([[10, 20, 20], [20, 11, 20], [20, 20, 10]], r"distance\[1\]\[1\]: 11"),
    ([[10, 20, 20], [20, 10, 255], [20, 20, 10]], r"distance\[1\]\[2\]: 255"),
    ([[10, 20, 20], [20, 10], [20, 20, 10]], "row 1 has 2 entries"),
    ([[10, 20, 20], [20, 10, 1.5], [20, 20, 10]], r"distance\[1\]\[2\]: expected an integer"),
])
def test_bad_distances_change_nothing(matrix, says, unchanged):
    m = Machine(MachineConfig.uniform(3, "96M", 3, max_numnodes=3))
    with unchanged(m), pytest.raises(TopologyError, match=says):
        m.set_distances(matrix)


def _local_share(sc, t0: float, t1: float) -> float:
    marks = {}

    def at(t):
        def f(m):
            v = m.S.numa_stat.sum(axis=0)
            marks[t] = (int(v[_LOCAL]), int(v[_OTHER]))
        return f

    run_scenario(sc, hooks=[(round(t * NS), 2, at(t)) for t in (t0, t1)], check=validate_all)
    loc, oth = (marks[t1][i] - marks[t0][i] for i in (0, 1))
    return loc / (loc + oth)


def test_the_demo_with_cpus_following_the_memory_allocates_locally():
    # after the push to node 3, no CPU is on node 3 in the demo: nothing is
    # local; with the CPUs moved there, nearly everything is
    assert _local_share(load_scenario("demo"), 4.1, 5.9) < 0.05
    assert _local_share(load_scenario("demo-follow"), 4.1, 5.9) > 0.95


HEAD = """
duration = "1s"
[machine]
nodes = 2
cpus_per_node = 2
mem = "64M"
max_numnodes = 3
[[task]]
cpus = "0-3"
per_cpu = true
rate = 500
lifetime = "100ms"
"""


def test_scenario_events():
    res = run_scenario(parse_scenario(HEAD + """
[[event]]
at = "0.3s"
cpus = { "2-3" = 2 }
[[event]]
at = "0.6s"
distance = [[10, 30, 20], [30, 10, 20], [20, 20, 10]]
""", "t.toml"), check=validate_all)
    m = res.machine
    assert m.topo.cpu_to_node.tolist() == [0, 0, 2, 2]
    assert m.topo.node_distance(0, 1) == 30
    assert [r.action for r in res.hotplug] == ["cpus", "distance"] and all(
        r.ok for r in res.hotplug)
    assert "cpu 2: node 1 -> 2" in res.hotplug[0].detail


@pytest.mark.parametrize(("event", "says"), [
    ('cpus = { "2-3" = 2, "3" = 1 }', "cpu 3 is given twice"),
    ('cpus = { "x" = 2 }', r"event\[0\]\.cpus\.x: not a CPU list"),
    ('cpus = { "1" = -1 }', "expected a node id"),
    ("cpus = {}", "no CPUs"),
    ("distance = [[10, 5], [5, 10]]", r"event\[0\].distance: \[0\]\[1\]: 5"),
])
def test_bad_topology_events(event, says):
    with pytest.raises(ScenarioError, match=says):
        parse_scenario(HEAD + f"[[event]]\nat = '0.5s'\n{event}\n", "t.toml")


def test_a_move_to_an_impossible_node_is_refused_before_the_run():
    sc = parse_scenario(HEAD + "[[event]]\nat = '0.5s'\ncpus = { '1' = 3 }\n", "t.toml")
    with pytest.raises(ScenarioError, match="cpu 1: node: 3 outside"):
        run_scenario(sc)


def test_a_snapshot_keeps_the_moved_cpus_and_distances(tmp_path):
    from dnuma.io.snapshot import load_snapshot, save_snapshot

    m = _machine()
    m.move_cpus({3: 2})
    m.set_distances([[10, 30, 20], [30, 10, 20], [20, 20, 10]])
    save_snapshot(m, tmp_path / "s.dnuma")
    m2 = load_snapshot(tmp_path / "s.dnuma")
    assert m2.topo.cpu_to_node.tolist() == [0, 0, 1, 2]
    assert m2.topo.node_distance(0, 1) == 30 and m2.fallback_order == m.fallback_order
    assert m2.alloc_pages(0, cpu=3) is not None
    validate_all(m2)


# ---------------------------------------------------------------- notifiers
@pytest.mark.parametrize("change", ["cpus", "distance"])
def test_a_veto_cancels_and_changes_nothing(change, unchanged):
    from dnuma.mm.errors import NotifyVeto

    m = _machine()
    heard: list[tuple[str, str, str]] = []

    def first(ev):
        heard.append(("first", ev.stage, ev.kind))

    def veto(ev):
        heard.append(("veto", ev.stage, ev.kind))
        if ev.stage == "going":
            raise NotifyVeto("firmware", "not now")

    def last(ev):
        heard.append(("last", ev.stage, ev.kind))

    m.topology_notifier.register(last, priority=-1)
    m.topology_notifier.register(veto, "firmware")
    m.topology_notifier.register(first, priority=5)

    def do():
        if change == "cpus":
            m.move_cpus({3: 2})
        else:
            m.set_distances([[10, 30], [30, 10]])

    with unchanged(m), pytest.raises(NotifyVeto, match="vetoed by firmware: not now"):
        do()
    assert heard == [("first", "going", change), ("veto", "going", change),
                     ("first", "cancel", change)]
    heard.clear()
    m.topology_notifier.unregister(veto)
    do()
    assert heard == [("first", "going", change), ("last", "going", change),
                     ("first", "done", change), ("last", "done", change)]
    validate_all(m)


def test_the_done_event_carries_what_moved():
    m = _machine()
    got = []
    m.topology_notifier.register(got.append)
    m.move_cpus({2: 3, 0: 0})
    slit = [[10 if i == j else 20 + i + j for j in range(4)] for i in range(4)]
    m.set_distances(slit)  # node 3 is online now: 4 rows
    assert got[1].cpus == [(2, 1, 3)] and got[1].report.nodes_onlined == [3]
    assert got[3].distance == slit


def test_a_vetoed_cpus_event_is_recorded_and_the_run_goes_on():
    from dnuma.mm.errors import NotifyVeto

    sc = parse_scenario(HEAD + "[[event]]\nat = '0.5s'\ncpus = { '3' = 2 }\n", "t.toml")

    def no(ev):
        raise NotifyVeto("test", "no")

    from dnuma.mm.machine import Machine as M

    m = M(sc.machine)
    m.topology_notifier.register(no)
    res = run_scenario(sc, machine=m, check=validate_all)
    assert res.hotplug[0].errname == "EPERM" and m.topo.cpu_to_node[3] == 1


def test_a_commit_event_gives_its_diff():
    from dnuma.mm.memlayout import MemLayout

    m = _machine()
    seen = []
    m.notifier.register(seen.append)
    half = 8192
    m.commit(MemLayout.from_ranges([(0, half - 1, 0), (half, 2 * half - 1, 2)]))
    going, done = seen
    assert going.diff() == done.diff() == [(half, 2 * half - 1, 1, 2)]
    m.commit(MemLayout.from_ranges([(0, 99, 3), (100, half - 1, 0),
                                    (half, 2 * half - 1, 2)]))
    assert seen[-1].diff() == [(0, 99, 0, 3)]
