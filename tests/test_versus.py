"""DNUMA next to hotplug: a scenario's [versus] move made once by a commit and
once by a replug (offline, migrate, remove, add back on the other node)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from dnuma.cli import main
from dnuma.mm.constants import PG_head, PG_lru
from dnuma.mm.machine import Machine
from dnuma.mm.memory_hotplug import block_range, pages_per_block
from dnuma.mm.validate import validate_all
from dnuma.sim.events import NS
from dnuma.sim.hotplug import kernel_seconds
from dnuma.sim.run import run_scenario
from dnuma.sim.scenario import ScenarioError, parse_scenario
from dnuma.sim.versus import ROWS, run_versus

HEAD = """
name = "vs"
duration = "1.2s"
sample = "20ms"
seed = 5
[machine]
nodes = 2
cpus_per_node = 2
mem = "1G"
max_numnodes = 4
[[task]]
name = "cache"
cpus = "2-3"
per_cpu = true
rate = 20000
stop = "400ms"
lifetime = "60s"
orders = { 0 = 3, 3 = 1 }
gfp = { movable = 1 }
[[task]]
name = "anon"
cpus = "0-3"
per_cpu = true
rate = 2000
lifetime = "200ms"
gfp = { movable = 3, unmovable = 1 }
"""
VERSUS = """
[versus]
from = 1
to = 2
at = "0.5s"
window = "0.5s"
"""


@pytest.fixture(scope="module")
def versus():
    sc = parse_scenario(HEAD + VERSUS, "vs.toml")
    return run_versus(sc, lambda: Machine(sc.machine), check=validate_all)


def test_both_arms_move_node_1_and_lose_no_page(versus):
    f = {a: r.figures for a, r in versus.arms.items()}
    n1 = 512 << 20 >> 12
    for arm, r in versus.arms.items():
        m = r.run.machine
        assert f[arm]["pages_to_move"] == n1
        assert m.total_present_pages == 2 * n1, arm  # every block came back (or stayed)
        assert f[arm]["pages_on_to"] + f[arm]["pages_left_on_from"] == n1, arm
    d, h = f["dnuma"], f["hotplug"]
    # DNUMA: the layout gives node 2 all of it at once, nothing copied or away
    assert d["layout_on_to"] == n1 and d["usable_after_s"] == 0.0
    assert d["pages_migrated"] == 0 and d["unavailable_page_seconds"] == 0.0
    assert d["pages_marked"] > 0 and d["pages_left_on_from"] == d["misplaced_at_end"] > 0
    # hotplug: whole blocks, those that refused stay on node 1
    m = versus.arms["hotplug"].run.machine
    nb = pages_per_block(m)
    failed = [int(x.split(":")[0]) for x in h["blocks_failed"]]
    assert h["pages_left_on_from"] == len(failed) * nb
    assert h["layout_on_to"] == h["pages_on_to"] == n1 - len(failed) * nb
    assert h["pages_migrated"] > 0 and h["unavailable_peak_pages"] == nb
    assert h["misplaced_at_end"] == 0 and h["pages_marked"] == 0


def test_blocks_that_refused_hold_an_unmovable_page(versus):
    res = versus.arms["hotplug"].run
    m, S = res.machine, res.machine.S
    bad = [r for r in res.hotplug if not r.ok]
    assert bad and all(r.errname == "EBUSY" for r in bad)
    for r in bad:
        s, n = block_range(m, r.blocks[0])
        heads = s + np.flatnonzero(S.page_flags[s:s + n] & PG_head)
        # the unmovable task pages live for ever: still there at the end
        assert np.any((S.page_flags[heads] & PG_lru) == 0), r.blocks


def test_hotplug_time_is_the_kernel_estimate_of_its_steps(versus):
    res = versus.arms["hotplug"].run
    recs = [r for r in res.hotplug if r.name == "hotplug"]
    f = versus.arms["hotplug"].figures
    # the steps follow one another on the virtual clock, each as long as the
    # kernel would take: the last block is back when their sum has passed
    assert f["usable_after_s"] == pytest.approx(f["kernel_estimate_ms"] / 1e3, abs=1e-6)
    assert f["kernel_estimate_ms"] == pytest.approx(sum(r.kernel_ms for r in recs), abs=1e-3)
    ts = [r.t for r in recs]
    assert ts == sorted(ts) and ts[0] == 0.5
    migrated = sum(r.pages_migrated for r in recs)
    assert f["pages_migrated"] == migrated
    ok = sum(1 for r in recs if r.ok and r.present_delta > 0)
    assert f["kernel_estimate_ms"] == pytest.approx(
        kernel_seconds(migrated, ok * pages_per_block(res.machine)) * 1e3, abs=1e-2)


def test_same_tasks_before_the_move(versus):
    f = versus.summary()["figures"]
    # same seed, same boot: the same allocations until the move
    assert f["dnuma"]["allocs_before"] == f["hotplug"]["allocs_before"] > 0
    assert set(f["dnuma"]) == set(f["hotplug"]) >= {k for k, _ in ROWS}
    assert f["dnuma"]["allocs_window"] > 0 and f["dnuma"]["remote_allocs_window"] > 0


def test_kernel_seconds():
    assert kernel_seconds(0, 256 << 20 >> 12) == pytest.approx(1e-3)
    assert kernel_seconds(1 << 18, 0) == pytest.approx((1 << 30) / 3.7e9)


def test_replug_as_an_event_and_one_not_done_by_the_end():
    sc = parse_scenario(HEAD + """
[[event]]
at = "0.5s"
replug = { from = 1, to = 3, online = "online_movable" }
""", "ev.toml")
    res = run_scenario(sc, check=validate_all)
    added = [r for r in res.hotplug if r.ok and r.present_delta > 0]
    assert added and res.machine.topo.node_states[:, 3].any()
    assert sum(r.present_delta for r in res.hotplug) == 0
    # the kernel needs longer than the run has left: recorded, not lost
    short = parse_scenario(HEAD.replace('duration = "1.2s"', 'duration = "0.5001s"') + """
[[event]]
at = "0.5s"
replug = { from = 1, to = 2 }
""", "short.toml")
    res = run_scenario(short, check=validate_all)
    assert res.hotplug[-1].errname == "ETIME"
    assert res.machine.total_present_pages + sum(
        -r.present_delta for r in res.hotplug) == 2 * (512 << 20 >> 12)


@pytest.mark.parametrize(("text", "says"), [
    ("[versus]\nfrom = 1\nto = 1\nat = '0.5s'\n", "versus.to: the same node"),
    ("[versus]\nfrom = 3\nto = 2\nat = '0.5s'\n", "versus.from: node 3 has no boot memory"),
    ("[versus]\nfrom = 1\nto = 2\nat = '2s'\n", "versus.at: must be inside the run"),
    ("[versus]\nfrom = 1\nto = 2\nat = '1s'\nwindow = '1s'\n", "versus.window"),
    ("[versus]\nfrom = 1\nto = 2\nat = '1s'\nonline = 'up'\n", "versus.online: 'up'"),
    ("[versus]\nfrom = 1\nto = 9\nat = '1s'\n", "versus.to: 9 not in [0, 3]"),
    ("[versus]\nfrom = 1\nto = 2\nwhen = 1\n", "versus.when: unknown key"),
    ("[[event]]\nat = '1s'\nreplug = { from = 1 }\n", "event[0].replug.to: missing"),
    ("[[event]]\nat = '1s'\nreplug = { from = 1, to = 2, online = 'x' }\n",
     "event[0].replug.online"),
])
def test_bad_versus_and_replug(text, says):
    with pytest.raises(ScenarioError, match="vs.toml: " + says.replace("[", r"\[")
                       .replace("]", r"\]").replace("(", r"\(")):
        parse_scenario(HEAD + text, "vs.toml")


def test_versus_not_a_table():
    with pytest.raises(ScenarioError, match=r"vs\.toml: versus: expected a table"):
        parse_scenario("versus = 3\n" + HEAD, "vs.toml")


def test_replug_to_an_impossible_node_is_refused_before_the_run():
    sc = parse_scenario(HEAD + "[[event]]\nat = '1s'\nreplug = { from = 1, to = 7 }\n", "vs.toml")
    with pytest.raises(ScenarioError, match="node 7 is not possible"):
        run_scenario(sc)


def test_cli_table_json_and_folder(capsys, tmp_path):
    p = tmp_path / "vs.toml"
    p.write_text(HEAD.replace('"1.2s"', '"0.8s"') + VERSUS.replace('"0.5s"\n', '"0.3s"\n'))
    out = tmp_path / "out"
    assert main(["run", str(p), "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "DNUMA commit" in text and "blocks that refused to offline" in text
    assert "replug" in text
    doc = json.loads((out / "summary.json").read_text())
    assert doc["versus"] == {"from": 1, "to": 2, "at_s": 0.3, "window_s": 0.3, "online": None}
    assert (out / "versus.png").read_bytes()[:4] == b"\x89PNG"
    assert (out / "dnuma" / "report.html").exists() and (out / "hotplug" / "report.html").exists()
    assert main(["run", str(p), "--json", "--no-report"]) == 0
    doc2 = json.loads(capsys.readouterr().out)
    assert doc2["figures"]["hotplug"]["pages_migrated"] == doc["figures"]["hotplug"][
        "pages_migrated"]
    assert main(["run", str(p), "--sysroot", str(tmp_path / "s")]) == 2
    assert "--sysroot: not with a [versus] scenario" in capsys.readouterr().err


def test_shipped_scenario_parses():
    from dnuma.sim.scenario import load_scenario

    sc = load_scenario("versus-hotplug")
    assert sc.versus is not None and sc.versus.at == 3 * NS // 2


def test_tasks_still_own_their_blocks_after_hotplug_migrated_them(versus):
    """Migration moved task blocks (sim.tasks follows Machine.migration_listeners):
    every block a task will free is an allocated head of its order."""
    res = versus.arms["hotplug"].run
    lb, S = res.tasks.live, res.machine.S
    slots = lb.heap_slot[:int(lb.ctl[0])]
    heads = lb.pfn[slots]
    assert np.all((S.page_flags[heads] & PG_head) != 0)
    assert np.all(S.page_order[heads] == lb.order[slots])


def test_tasks_own_their_blocks_after_a_dnuma_commit(versus):
    """The twin of the test above: a commit relabels in place, so every
    block a task holds is still an allocated head of its order."""
    res = versus.arms["dnuma"].run
    lb, S = res.tasks.live, res.machine.S
    slots = lb.heap_slot[:int(lb.ctl[0])]
    assert slots.size > 0
    assert np.all((S.page_flags[lb.pfn[slots]] & PG_head) != 0)
    assert np.all(S.page_order[lb.pfn[slots]] == lb.order[slots])
