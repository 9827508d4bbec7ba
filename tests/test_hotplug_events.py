"""Hotplug events in a scenario's timeline: checked at load, made at their
time, a refusal recorded with its errno (the run goes on, pages conserved)."""

from __future__ import annotations

import pytest

from dnuma.mm.constants import GFP_KERNEL, N_CPU, N_ONLINE
from dnuma.mm.memory_hotplug import memory_block_state
from dnuma.mm.validate import validate_all
from dnuma.sim.hotplug import free_range
from dnuma.sim.run import run_scenario
from dnuma.sim.scenario import ScenarioError, parse_scenario

HEAD = """
duration = "2s"
seed = 3
[machine]
nodes = 2
cpus_per_node = 2
mem = "512M"
maxmem = "1G"
max_numnodes = 4
[[task]]
name = "churn"
cpus = "0-3"
per_cpu = true
rate = 1000
lifetime = "200ms"
gfp = { movable = 3, unmovable = 1 }
"""


def _run(events: str, check=validate_all):
    return run_scenario(parse_scenario(HEAD + events, "hp.toml"), check=check)


def test_each_event_does_what_the_machine_api_does():
    res = _run("""
[[event]]
at = "0.2s"
name = "dimm"
hotplug = { node = 2, size = "256M" }
[[event]]
at = "0.4s"
offline_block = [5]
[[event]]
at = "0.6s"
online_block = { block = 5, type = "online_movable" }
[[event]]
at = "0.8s"
cpu_offline = "2-3"
[[event]]
at = "1s"
auto_online_blocks = "offline"
[[event]]
at = "1.2s"
name = "dimm2"
hotplug = { node = 3, size = "128M", start = "38000" }
""")
    m = res.machine
    rows = [h.row() for h in res.hotplug]
    assert [r["action"] for r in rows] == ["hotplug", "offline_block", "online_block",
                                          "cpu_offline", "auto_online_blocks", "hotplug"]
    assert all(r["ok"] for r in rows), rows
    assert rows[0]["blocks"] == [4, 5] and rows[0]["present_delta"] == 65536  # above boot RAM
    assert rows[1]["present_delta"] == -32768 and rows[2]["present_delta"] == 32768
    assert m.topo.node_states[N_ONLINE, 2] and not m.topo.node_states[N_CPU, 1]
    assert m.zone(2, 3).present_pages == 32768  # ZONE_MOVABLE: block 5
    assert rows[5]["blocks"] == [7] and memory_block_state(m, 7) == "offline"
    assert res.summary()["hotplug"] == rows


def test_a_refused_offline_is_recorded_and_the_run_goes_on():
    sc = parse_scenario(HEAD + """
[[event]]
at = "0.5s"
name = "dimm"
hotplug = { node = 2, size = "256M" }
[[event]]
at = "1s"
hotremove = "dimm"
[[event]]
at = "1.5s"
offline_block = 9
""", "hp.toml")
    pinned = []

    def check(m):  # after the hot-add, pin an unmovable page in block 5
        validate_all(m)
        if m.topo.node_states[N_ONLINE, 2] and not pinned:
            while not pinned or pinned[-1] < 5 * 32768:
                pinned.append(m.alloc_pages(0, cpu=0, nid=2, gfp=GFP_KERNEL, owner=9))

    res = run_scenario(sc, check=check)
    add, remove, missing = (h.row() for h in res.hotplug)
    assert add["ok"] and not remove["ok"] and remove["errno"] == "EBUSY"
    assert memory_block_state(res.machine, 4) == "online"  # the eject put it back
    assert memory_block_state(res.machine, 5) == "online"
    assert missing["errno"] == "ENOENT" and "memory block 9" in missing["detail"]


def test_free_range_finds_the_next_dimm_slot():
    res = _run("""
[[event]]
at = "0.5s"
hotplug = { node = 2, size = "128M", start = "20000" }
""")
    m = res.machine
    assert free_range(m, 32768) == 5 * 32768  # block 4 taken
    assert free_range(m, 3 * 32768) == 5 * 32768
    assert free_range(m, 4 * 32768) == -1


@pytest.mark.parametrize("event, where", [
    ('hotplug = { node = 2 }', r"event\[0\]\.hotplug\.size: missing"),
    ('hotplug = { node = 2, size = "1M" }', "multiples of the memory block"),
    ('hotplug = { node = 2, size = "1G" }', "beyond machine.maxmem"),
    ('hotplug = { node = 9, size = "128M" }', "node 9 is not possible"),
    ('hotplug = { node = 2, size = "128M", online = "sideways" }', "expected one of offline"),
    ('hotplug = { node = 2, size = "128M", start = "xyz" }', "expected a hex pfn"),
    ('hotremove = "nothing"', "not an earlier hotplug event"),
    ('cpu_offline = 0', "cpu0 is not hotpluggable"),
    ('cpu_online = 7', "CPU 7: expected 1 to 3"),
    ('online_block = { block = 4, type = "offline" }', "expected one of online"),
    ('auto_online_blocks = "yes"', "expected one of offline"),
    ('offline_block = []', "expected at least one"),
])
def test_bad_hotplug_events_say_where(event, where):
    with pytest.raises(ScenarioError, match=where) as ei:
        _run(f'[[event]]\nat = "0.5s"\n{event}\n')
    assert "hp.toml" in str(ei.value)


def test_a_machine_without_room_refuses_hotplug_before_the_run():
    with pytest.raises(ScenarioError, match="no hotplug room"):
        run_scenario(parse_scenario(HEAD.replace('maxmem = "1G"\n', "") +
                                    '[[event]]\nat = "1s"\nhotplug = { node = 2, size = "128M" }\n',
                                    "hp.toml"))
