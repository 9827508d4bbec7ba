"""Scenarios: parsing and its errors, the event loop, tasks in virtual time."""

from __future__ import annotations

import json

import numpy as np
import pytest

from dnuma.mm.constants import PG_head, PG_reserved
from dnuma.mm.errors import DnumaError
from dnuma.mm.validate import validate_all
from dnuma.sim.events import NS, PRIO_LAYOUT, PRIO_SAMPLE, EventLoop, parse_duration
from dnuma.sim.run import run_scenario
from dnuma.sim.scenario import (
    ScenarioError,
    builtin_scenarios,
    parse_id_list,
    parse_scenario,
)

SMALL = """
name = "small"
duration = "2s"
sample = "100ms"
seed = 7

[machine]
nodes = 2
cpus = 4
mem = "32M"

[[task]]
name = "churn"
cpus = "0-3"
per_cpu = true
rate = 3000
lifetime = "200ms"
orders = { 0 = 8, 1 = 2, 3 = 1 }
gfp = { movable = 2, unmovable = 1, reclaimable = 1 }

[[task]]
name = "keep"
cpus = [1]
rate = 200
lifetime = 0
gfp = { GFP_KERNEL = 1 }

[[task]]
name = "bound"
cpus = [0]
rate = 500
lifetime = "1s"
policy = "bind"
nodes = [1]

[[event]]
at = "0.5s"
stripe = { nodes = [0, 1, 2], block = 256 }

[[event]]
at = "1s"
push = 3

[[event]]
at = "1.5s"
boot = true
"""


def small(**over: str) -> str:
    text = SMALL
    for old, new in over.items():
        assert old in text
        text = text.replace(old, new)
    return text


def test_event_loop_orders_by_time_priority_sequence():
    seen: list[tuple[int, str]] = []
    advanced: list[int] = []
    loop = EventLoop(advanced.append)
    loop.at(5, PRIO_SAMPLE, lambda t: seen.append((t, "sample")))
    loop.at(5, PRIO_LAYOUT, lambda t: seen.append((t, "layout")))
    loop.at(3, PRIO_SAMPLE, lambda t: seen.append((t, "early")))
    loop.at(5, PRIO_LAYOUT, lambda t: seen.append((t, "layout2")))
    loop.every(0, 4, 8, PRIO_SAMPLE, lambda t: seen.append((t, "tick")))
    loop.run()
    assert seen == [(0, "tick"), (3, "early"), (4, "tick"), (5, "layout"), (5, "layout2"),
                    (5, "sample"), (8, "tick")]
    assert advanced == [3, 4, 5, 8]  # the tasks run up to each new instant once


def test_event_loop_peek_and_run_until():
    """As SimPy's Environment: peek at the next event, run up to a time
    (inclusive) leaving later events queued; a period without an end."""
    seen: list[tuple[int, str]] = []
    loop = EventLoop()
    assert loop.peek() is None
    loop.every(0, 10, None, PRIO_SAMPLE, lambda t: seen.append((t, "tick")))
    loop.at(10, PRIO_LAYOUT, lambda t: seen.append((t, "layout")))
    assert loop.peek() == 0
    loop.run(10)
    assert seen == [(0, "tick"), (10, "layout"), (10, "tick")]
    assert loop.now == 10 and loop.peek() == 20
    loop.run(15)  # nothing due: the clock moves on
    assert loop.now == 15 and len(seen) == 3
    with pytest.raises(ValueError, match="past"):
        loop.at(12, PRIO_LAYOUT, lambda t: None)


def test_parse_duration_and_ids():
    assert parse_duration("250ms") == NS // 4
    assert parse_duration(2) == 2 * NS and parse_duration("1.5s") == 3 * NS // 2
    assert parse_duration("3us") == 3000
    for bad in ("-1s", "fast", True, "1 parsec"):
        with pytest.raises(DnumaError):
            parse_duration(bad)
    assert parse_id_list("0-3,8") == (0, 1, 2, 3, 8)
    assert parse_id_list([2, 1, 2]) == (2, 1)
    with pytest.raises(ValueError):
        parse_id_list("3-1")


@pytest.mark.parametrize(("text", "where"), [
    (small(**{'duration = "2s"': 'duration = "2s"\nduration = "3s"'}), "line"),
    (small(**{'mem = "32M"': 'mem = "32Q"'}), "machine.mem"),
    (small(**{'rate = 3000': 'rate = "fast"'}), "task[0].rate"),
    (small(**{'cpus = [1]': 'cpus = [9]'}), "task[1].cpus"),
    (small(**{'GFP_KERNEL = 1': 'GFP_KERNAL = 1'}), "task[1].gfp"),
    (small(**{'policy = "bind"': 'policy = "bnid"'}), "task[2].policy"),
    (small(**{'nodes = [1]\n': ''}), "task[2].nodes"),
    (small(**{'lifetime = "200ms"': 'lifetime = "200 years"'}), "task[0].lifetime"),
    (small(**{'push = 3': 'push = 3\nboot = true'}), "event[1]"),
    (small(**{'at = "1.5s"': 'at = "3s"'}), "event[2].at"),
    (small(**{'block = 256': 'block = 0'}), "event[0].stripe.block"),
    (small(**{'seed = 7': 'seed = 7\ncolour = "red"'}), "colour"),
    (small(**{'push = 3': 'ranges = { "8000-7000" = 1 }'}), "event[1].ranges"),
    (small(**{'push = 3': 'ranges = { "zz" = 1 }'}), "event[1].ranges"),
    (small(**{'duration = "2s"\n': ''}), "duration"),
])
def test_malformed_scenarios_name_the_key(text, where):
    with pytest.raises(ScenarioError) as ei:
        parse_scenario(text, "bad.toml")
    msg = str(ei.value)
    assert msg.startswith("bad.toml: ") and where in msg, msg


def test_layout_problems_are_found_before_anything_runs():
    sc = parse_scenario(small(**{'push = 3': 'push = 5000'}), "big-node.toml")
    with pytest.raises(ScenarioError, match=r"big-node.toml: event\[1\] \(push at 1 s\)"):
        run_scenario(sc)
    sc = parse_scenario(small(**{'push = 3': 'ranges = { "0-FFFFF" = 1 }'}), "beyond.toml")
    with pytest.raises(ScenarioError, match="beyond the end of memory"):
        run_scenario(sc)


def test_run_conserves_pages_and_accounts_every_task_page():
    sc = parse_scenario(SMALL, "small.toml")
    res = run_scenario(sc, check=validate_all)
    m = res.machine
    S = m.S
    heads = np.flatnonzero(S.page_flags & PG_head)
    alloc_pages = int((np.int64(1) << S.page_order[heads].astype(np.int64)).sum())
    reserved = int(np.count_nonzero(S.page_flags & PG_reserved))
    assert m.nr_free_pages() + alloc_pages + reserved == m.total_present_pages
    stats = res.tasks.task_stats()
    assert sum(int(t["live_pages"]) for t in stats) == alloc_pages
    # per task: the pages it holds carry its index as owner
    for k, t in enumerate(stats):
        own = heads[S.page_owner[heads] == k]
        assert int((np.int64(1) << S.page_order[own].astype(np.int64)).sum()) == t["live_pages"]
    keep = next(t for t in stats if t["task"] == "keep")
    assert keep["frees"] == 0 and keep["live_pages"] == keep["allocs"]
    # Poisson arrivals at 3000/s for 2 s on each of 4 CPUs
    churn = [t for t in stats if str(t["task"]).startswith("churn/")]
    assert len(churn) == 4
    for t in churn:
        assert 5400 < int(t["allocs"]) < 6600


def test_steps_report_each_layout_change():
    res = run_scenario(parse_scenario(SMALL, "small.toml"))
    rows = [s.row() for s in res.steps]
    assert [r["step"] for r in rows] == ["stripe", "push", "boot"]
    assert [r["t"] for r in rows] == [0.5, 1.0, 1.5]
    assert rows[0]["onlined"] == [2] and rows[1]["onlined"] == [3]
    for r in rows:
        assert r["marked"] > 0 and r["moved_on_free"] > 0
        # short-lived pages are freed and redirected; what is left is less
        assert r["misplaced_left"] < r["misplaced_after"]
    # what the boot layout left misplaced at the end is what the machine has
    assert rows[-1]["misplaced_left"] == res.machine.misplaced_pages()


def test_policies_place_pages_without_layout_events():
    text = SMALL[:SMALL.index("[[event]]")]
    res = run_scenario(parse_scenario(text, "small.toml"))
    S = res.machine.S
    names = [s.name for s in res.scenario.tasks]
    k = names.index("bound")
    heads = np.flatnonzero(((S.page_flags & PG_head) != 0) & (S.page_owner == k))
    assert heads.size > 0 and set(S.page_nid[heads].tolist()) == {1}
    for t in res.tasks.task_stats():
        if str(t["task"]).startswith("churn/"):  # local policy, no memory pressure
            assert t["local_allocs"] == t["allocs"] > 0
    assert res.steps == [] and res.machine.misplaced_pages() == 0


def test_same_seed_same_summary_other_seed_differs():
    def strip(s):
        s = dict(s)
        s.pop("wall_seconds")
        s["steps"] = [{k: v for k, v in r.items() if k != "commit_ms"} for r in s["steps"]]
        return s

    sc = parse_scenario(SMALL, "small.toml")
    a = strip(run_scenario(sc).summary())
    b = strip(run_scenario(sc).summary())
    assert a == b
    c = strip(run_scenario(parse_scenario(small(**{"seed = 7": "seed = 8"}), "s.toml"))
              .summary())
    assert c["tasks"] != a["tasks"]


def test_shipped_scenarios_parse():
    shipped = builtin_scenarios()
    assert {"demo", "consolidate", "evacuate", "debugfs"} <= set(shipped)
    for name, text in shipped.items():
        sc = parse_scenario(text, name)
        assert sc.description and (sc.events or sc.versus)


# ------------------------------------------------------------------ machine.from
FROM = """
duration = "1s"
[machine]
from = "{src}"
[[task]]
{task}
rate = 10
"""


def test_machine_from_resolves_relative_folder(tmp_path):
    (tmp_path / "snap").mkdir()
    sc = parse_scenario(FROM.format(src="snap", task=""), "x.toml", tmp_path)
    assert sc.machine is None and sc.machine_from == str(tmp_path / "snap")
    assert sc.tasks[0].cpus == ()  # every CPU of the machine, once it is known
    assert parse_scenario(FROM.format(src="host", task=""), "x.toml").machine_from == "host"
    with pytest.raises(ScenarioError, match="boot it first"):
        run_scenario(sc)


@pytest.mark.parametrize(("src", "task", "msg"), [
    ("nowhere", "", "machine.from: .*nowhere: no such folder or snapshot file"),
    ("host", "per_cpu = true", r"task\[0\].per_cpu: needs cpus"),
    ("host", "adopt = true\nrate = 0\n[[task]]\nadopt = true", "only one task may adopt"),
])
def test_machine_from_errors(tmp_path, src, task, msg):
    with pytest.raises(ScenarioError, match=msg):
        parse_scenario(FROM.format(src=src, task=task), "x.toml", tmp_path)


def test_machine_from_a_snapshot_file_runs(tmp_path, capsys):
    """The README's promise: a scenario's machine may come from a snapshot."""
    from dnuma.cli import main
    from dnuma.io.snapshot import save_snapshot
    from dnuma.mm.machine import Machine, MachineConfig

    save_snapshot(Machine(MachineConfig.uniform(nodes=2, mem="32M", cpus=2)),
                  tmp_path / "m.dnsnap")
    (tmp_path / "s.toml").write_text(FROM.format(src="m.dnsnap", task="lifetime = '10ms'")
                                     + '[[event]]\nat = "0.5s"\npush = 1\n')
    sc = parse_scenario((tmp_path / "s.toml").read_text(), "s.toml", tmp_path)
    assert sc.machine_from == str(tmp_path / "m.dnsnap")
    assert main(["run", str(tmp_path / "s.toml"), "--no-report", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["machine"]["present_pages"] == 8192 and out["steps"][0]["step"] == "push"


def test_machine_from_other_keys_refused():
    text = FROM.format(src="host", task="").replace('[machine]\n', '[machine]\nnodes = 2\n')
    with pytest.raises(ScenarioError, match="machine"):
        parse_scenario(text, "x.toml")


def test_adopting_task_frees_boot_allocations():
    """A task with adopt = true owns what was allocated before the run."""
    from dnuma.mm.machine import boot
    from dnuma.sim.tasks import TaskSet, TaskSpec

    m = boot(nodes=2, mem="32M", cpus=2)
    pfns = [m.alloc_pages(1, cpu=0) for _ in range(300)]
    ts = TaskSet(m, [TaskSpec("boot", (), rate=0, lifetime=0.1, adopt=True)], seed=3)
    assert ts.task_stats()[0]["live_pages"] == 600
    assert ts.live_blocks == 300
    free0 = m.nr_free_pages()
    ts.run_until(NS)  # ten mean lifetimes: nearly all freed
    st = ts.task_stats()[0]
    assert st["frees"] > 290 and st["live_pages"] == 600 - 2 * st["frees"]
    assert m.nr_free_pages() == free0 + 2 * st["frees"]
    still = sum(bool(m.S.page_flags[p] & PG_head) for p in pfns)
    assert still == 300 - st["frees"] == ts.live_blocks
    validate_all(m)
