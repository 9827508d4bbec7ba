"""Replay of real kmem traces onto the model."""

from __future__ import annotations

import json
import lzma
import re
from pathlib import Path

import numpy as np
import pytest

from dnuma.cli import main
from dnuma.mm.constants import PG_head
from dnuma.mm.errors import DnumaError
from dnuma.mm.machine import MachineConfig
from dnuma.mm.validate import validate_all
from dnuma.sim.events import NS
from dnuma.sim.replay import parse_event_spec, replay_trace

DATA = Path(__file__).parent / "data"
EXCERPT = DATA / "kmem-trace-excerpt.txt.xz"
_LINE = re.compile(r"\[(\d+)\].*?\s(\d+\.\d+): (mm_page_\w+): .*?pfn=0x([0-9a-f]+) order=(\d+)")


def line(ts: float, ev: str, pfn: int, order: int = 0, cpu: int = 0) -> str:
    head = f"           <...>-7569    [{cpu:03d}] .....   {ts:.6f}: {ev}: page=000000008cf296b1 "
    tail = {"mm_page_alloc": " migratetype=1 gfp_flags=GFP_HIGHUSER_MOVABLE|__GFP_ZERO",
            "mm_page_pcpu_drain": " migratetype=1"}.get(ev, "")
    return head + f"pfn={pfn:#x} order={order}" + tail


def write_trace(path: Path, lines: list[str]) -> Path:
    path.write_text("# tracer: nop\n#\n" + "\n".join(lines) + "\n")
    return path


def small_machine(nodes: int = 2) -> MachineConfig:
    return MachineConfig.uniform(nodes=nodes, mem="32M", cpus=2)


def test_anomalies_are_counted_never_fatal(tmp_path):
    t = write_trace(tmp_path / "t.txt", [
        line(1.0, "mm_page_alloc", 0x1000),
        line(1.1, "mm_page_free", 0x1000),
        line(1.1, "mm_page_free_batched", 0x1000),
        line(1.2, "mm_page_free", 0x1000),  # double free
        line(1.3, "mm_page_free", 0x2000),  # allocated before the trace began
        line(1.4, "mm_page_alloc", 0x1000, cpu=1),
        line(1.5, "mm_page_alloc", 0x1000),  # the model holds it: a free was missed
        line(1.6, "mm_page_free", 0x1000, order=1),  # wrong order
        line(1.7, "mm_page_alloc", 0x100000),  # beyond the 32 MiB model
        line(1.8, "mm_page_pcpu_drain", 0x3000),
        "           <...>-7569    [000] .....   1.900000: mm_page_alloc: page=zzz pfn=0xq",
        line(2.0, "mm_page_alloc", 0x1000, order=2),  # 0x1000 is allocated inside it
        line(2.1, "mm_page_alloc", 0x1003, order=2),  # not aligned to its order
    ])
    res = replay_trace(t, small_machine(), check=validate_all)
    assert res.counts["allocs"] == 2 and res.counts["frees"] == 1
    assert res.counts["free_batched"] == 1 and res.counts["pcpu_drains"] == 1
    assert res.anomalies == {"free_unseen": 1, "double_free": 1, "free_mismatch": 1,
                             "alloc_busy": 2, "outside_model": 1, "unaligned": 1}
    assert res.stats.malformed == 1
    S = res.machine.S
    assert np.flatnonzero(S.page_flags & PG_head).tolist() == [0x1000]


def _expected_live(path: Path) -> dict[int, int]:
    """A plain-Python replay of the trace: pfn -> order of the blocks it
    leaves allocated (frees of unknown pages ignored)."""
    live: dict[int, int] = {}
    held: set[int] = set()
    with lzma.open(path, "rt") as f:
        for ln in f:
            mt = _LINE.search(ln)
            if not mt:
                continue
            ev, pfn, order = mt.group(3), int(mt.group(4), 16), int(mt.group(5))
            pages = set(range(pfn, pfn + (1 << order)))
            if ev == "mm_page_alloc" and not pages & held:
                live[pfn] = order
                held |= pages
            elif ev == "mm_page_free" and live.get(pfn) == order:
                del live[pfn]
                held -= pages
    return live


def test_excerpt_leaves_exactly_the_trace_live_pages_allocated():
    res = replay_trace(EXCERPT, check=validate_all)
    S = res.machine.S
    heads = np.flatnonzero(S.page_flags & PG_head)
    got = dict(zip(heads.tolist(), S.page_order[heads].tolist(), strict=True))
    assert got == _expected_live(EXCERPT)
    ev = res.stats.events
    assert ev["mm_page_alloc"] == (res.counts["allocs"] + res.anomalies["alloc_busy"]
                                   + res.counts["alloc_fails"])
    # the default machine covers every pfn of the trace
    assert res.anomalies["outside_model"] == 0
    assert res.machine.max_pfn > max(got)


def test_layout_events_move_the_traces_pages(tmp_path):
    from dnuma.report.metrics import Metrics

    metrics: list[Metrics] = []

    def observe(m):
        metrics.append(Metrics(m))
        return metrics

    span = replay_trace(EXCERPT).span_s
    evs = [parse_event_spec(f"{span / 3:.6f}:stripe:0,1:256"),
           parse_event_spec(f"{2 * span / 3:.6f}:boot")]
    res = replay_trace(EXCERPT, None, evs, sample=NS // 1000, observe=observe,
                       check=validate_all, nodes=2)
    assert [s.name for s in res.steps] == ["stripe", "boot"]
    st = res.steps[0]
    assert st.report.pages_marked > 0 and st.report.nodes_onlined == []
    assert st.moved_on_free > 0  # the trace freed marked pages after the stripe
    assert res.machine.moved_on_free >= st.moved_on_free
    cols = metrics[0].columns()
    # samples in time order (a commit records its before/after at one instant)
    assert cols["t"].size >= 3 and np.all(np.diff(cols["t"]) >= 0) and cols["t"][-1] > 0


def test_replay_runs_a_scenarios_debugfs_scripts(tmp_path):
    """The layout events of a replay are prepared and fired as a run's are:
    a debugfs script commits (several times: one step each), a bad layout
    is refused before anything runs, naming the event."""
    from dnuma.sim.scenario import load_scenario

    sc = load_scenario("debugfs")  # 64 MiB: a trace of its pfns, over 4 s
    t = write_trace(tmp_path / "t.txt", [
        line(0.5 * k, ev, 0x100 * (k % 0x30), cpu=k % 2)
        for k in range(1, 9) for ev in ("mm_page_alloc", "mm_page_free")])
    res = replay_trace(t, sc.machine, sc.events, check=validate_all)
    assert [s.name for s in res.steps] == ["new-node-2", "stripe"]
    assert res.steps[0].report.nodes_onlined == [2] and res.skipped_events == []
    with pytest.raises(DnumaError, match=r"replay: event\[0\] \(push at 0.001 s\)"):
        replay_trace(EXCERPT, small_machine(), [parse_event_spec("0.001:push:99")])


def covering_machine() -> MachineConfig:
    """Two nodes over the excerpt's pfns (up to 0x18b81b)."""
    return MachineConfig.uniform(nodes=2, mem="8G", cpus=2)


def test_same_trace_same_result():
    a = replay_trace(EXCERPT, covering_machine(), [parse_event_spec("0.001:push:1")]).summary()
    b = replay_trace(EXCERPT, covering_machine(), [parse_event_spec("0.001:push:1")]).summary()
    for s in (a, b):
        s.pop("wall_seconds")
        s.pop("events_per_s")
        for r in s["steps"]:
            r.pop("commit_ms")
    assert a == b


def test_one_parse_or_two_give_the_same_replay(monkeypatch):
    """A machine sized to the trace: the trace is parsed once and kept, or,
    past BUFFER_EVENTS, read a second time; the replay is the same."""
    import dnuma.sim.replay as rp

    def run():
        s = replay_trace(EXCERPT, None, [parse_event_spec("0.001:stripe:0,1:256")],
                         nodes=2).summary()
        for k in ("wall_seconds", "events_per_s"):
            s.pop(k)
        for r in s["steps"]:
            r.pop("commit_ms")
        return s

    once = run()
    monkeypatch.setattr(rp, "BUFFER_EVENTS", 100)
    twice = run()
    assert once == twice
    assert once["trace"]["total_events"] > 100 and once["replayed"]["allocs"] > 0


@pytest.mark.parametrize("spec", ["stripe", "1s", "1s:stripe:0,1", "x:boot", "1s:push:a",
                                  "1s:ranges:zz=1", "1s:teleport"])
def test_bad_event_specs(spec):
    with pytest.raises(DnumaError, match="--event"):
        parse_event_spec(spec)


def test_cli_replay_json_and_errors(tmp_path, capsys):
    assert main(["replay", str(EXCERPT), "--nodes", "2", "--event", "0.0005:stripe:0,1:512",
                 "--json", "--out", str(tmp_path / "out")]) == 0
    s = json.loads(capsys.readouterr().out)
    assert s["replayed"]["allocs"] > 0 and s["steps"][0]["step"] == "stripe"
    assert (tmp_path / "out" / "report.html").exists()
    assert main(["replay", str(tmp_path / "missing.txt")]) == 2
    assert "missing.txt" in capsys.readouterr().err
    assert main(["replay", str(EXCERPT), "--event", "soon:boot"]) == 2
    assert "--event" in capsys.readouterr().err


def test_a_machine_sized_from_a_trace_is_bounded(tmp_path):
    """CPUs beyond MAX_CPUS and pfns beyond MAX_PFNS are refused, naming the
    line, before anything is allocated; onto a given machine they are only
    counted (the CPU taken modulo, the pfn outside the model)."""
    import dnuma.sim.replay as rp
    from dnuma.sim.ftrace import TraceError

    t = write_trace(tmp_path / "cpu.txt", [line(1.0, "mm_page_alloc", 0x10),
                                           line(1.1, "mm_page_free", 0x10, cpu=99999)])
    with pytest.raises(TraceError, match=rf"cpu.txt: line 4: CPU 99999 .* {rp.MAX_CPUS} CPUs"):
        replay_trace(t)
    res = replay_trace(t, small_machine(), check=validate_all)
    assert res.counts["allocs"] == 1 and res.counts["frees"] == 1
    t = write_trace(tmp_path / "pfn.txt", [line(1.0, "mm_page_alloc", 0x10),
                                           line(1.1, "mm_page_free", 1 << 30)])
    with pytest.raises(TraceError, match=r"pfn.txt: line 4: pfn 0x40000000 .* 0x10000000"):
        replay_trace(t)
    assert replay_trace(t, small_machine()).anomalies["outside_model"] == 1
    t = write_trace(tmp_path / "hdr.txt", ["#P:5000", line(1.0, "mm_page_alloc", 0x10)])
    with pytest.raises(TraceError, match=r"hdr.txt: line 3: the header's #P:5000"):
        replay_trace(t)


def test_orders_above_max_page_order_are_outside_the_model(tmp_path):
    t = write_trace(tmp_path / "t.txt", [line(1.0, "mm_page_alloc", 0, order=63),
                                         line(1.1, "mm_page_alloc", 0x10),
                                         line(1.2, "mm_page_free", 0, order=63),
                                         line(1.3, "mm_page_alloc", 0x800, order=11)])
    for cfg in (None, small_machine()):
        res = replay_trace(t, cfg, check=validate_all)
        assert res.counts["allocs"] == 1 and res.anomalies["outside_model"] == 3


def test_a_machine_holding_none_of_the_trace_is_refused(tmp_path):
    from dnuma.sim.ftrace import TraceError

    t = write_trace(tmp_path / "t.txt", [line(1.0, "mm_page_alloc", 0x100000),
                                         line(1.1, "mm_page_free", 0x100000)])
    with pytest.raises(TraceError, match=r"t.txt: none of the trace's 2 allocations and frees "
                                         r"\(pfns 0x100000-0x100000\) .* 0x0-0x2000"):
        replay_trace(t, small_machine())


def test_samples_are_bounded(tmp_path):
    import dnuma.sim.replay as rp

    t = write_trace(tmp_path / "t.txt", [line(1.0, "mm_page_alloc", 0x10),
                                         line(3.0, "mm_page_free", 0x10)])
    with pytest.raises(DnumaError, match=r"t.txt: --sample 1us takes 2000001 samples"):
        replay_trace(t, sample=1000)
    with pytest.raises(DnumaError, match="sample"):
        replay_trace(t, sample=0)
    assert replay_trace(t, sample=None).sample_ns == NS // 10
    t = write_trace(tmp_path / "long.txt", [line(1.0, "mm_page_alloc", 0x10),
                                            line(100_001.0, "mm_page_free", 0x10)])
    res = replay_trace(t, sample=None)
    assert res.sample_ns > NS and res.summary()["sample_s"] == res.sample_ns / NS
    assert 100_000 // (res.sample_ns / NS) + 1 <= rp.MAX_SAMPLES


def test_a_clock_jumping_back_samples_to_its_latest_time(tmp_path):
    from dnuma.report.metrics import Metrics

    metrics: list[Metrics] = []

    def observe(m):
        metrics.append(Metrics(m))
        return metrics

    t = write_trace(tmp_path / "t.txt", [line(1.0, "mm_page_alloc", 0x10),
                                         line(2501.0, "mm_page_pcpu_drain", 0x20),
                                         line(2.0, "mm_page_free", 0x10)])
    with pytest.raises(DnumaError, match=r"--sample 100ms takes 25001 samples over the "
                                         r"trace's 2500 s"):
        replay_trace(t, sample=NS // 10)
    assert replay_trace(t, sample=None).sample_ns == -(-2500 * NS // 19_999)
    res = replay_trace(t, sample=10 * NS, observe=observe)
    assert res.span_s == 2500.0 and res.stats.ts_backwards == 1
    assert res.counts["allocs"] == 1 and res.counts["frees"] == 1
    cols = metrics[0].columns()
    assert cols["t"][-1] == 2500.0 and np.all(np.diff(cols["t"]) >= 0)


def test_cli_names_the_flag(tmp_path, capsys):
    t = write_trace(tmp_path / "t.txt", [line(1.0, "mm_page_alloc", 0x10)])
    for argv, want in [(["--event", "0.5:stripe:0,99:256"], "--event '0.5:stripe:0,99:256' "
                                                              "(stripe at 0.5 s): "),
                       (["--event", "1s:teleport"], "unknown action 'teleport'"),
                       (["--event", "1s:stripe:0:0"], "stripe block must be > 0"),
                       (["--nodes", "0"], "--nodes 0: must be in [1, 64]"),
                       (["--sample", "0"], "--sample '0': must be > 0"),
                       (["--sample", "1e400s"], "--sample")]:
        assert main(["replay", str(t), "--no-report", *argv]) == 2
        err = capsys.readouterr().err
        assert want in err and len(err.splitlines()) == 1, err


def zone_locked(ts: float, pfn: int, order: int = 0, refill: int = 1, cpu: int = 0) -> str:
    return (f"           <...>-7569    [{cpu:03d}] d..3.   {ts:.6f}: mm_page_alloc_zone_locked: "
            f"page=(____ptrval____) pfn={pfn:#x} order={order} migratetype=1 "
            f"percpu_refill={refill}")


def extfrag(ts: float, pfn: int, order: int = 0, cpu: int = 0) -> str:
    return (f"           <...>-7569    [{cpu:03d}] d..3.   {ts:.6f}: mm_page_alloc_extfrag: "
            f"page=(____ptrval____) pfn={pfn:#x} alloc_order={order} fallback_order=3 "
            f"pageblock_order=9 alloc_migratetype=1 fallback_migratetype=0 fragmenting=1 "
            f"change_ownership=0")


def _where(m, pfn: int) -> str:
    """buddy, pcp or allocated: where the model holds ``pfn``'s block."""
    from dnuma._kernels.buddy import block_head
    from dnuma.mm.constants import PG_buddy, PG_pcp

    h = block_head(m.S, pfn)
    f = int(m.S.page_flags[h])
    return "buddy" if f & PG_buddy else "pcp" if f & PG_pcp else "allocated"


def test_zone_locked_is_parsed_and_counted(tmp_path):
    t = write_trace(tmp_path / "t.txt", [zone_locked(1.0, 0x1000), zone_locked(1.1, 0x1010, 1, 0),
                                         line(1.2, "mm_page_alloc", 0x1000)])
    res = replay_trace(t, small_machine(), check=validate_all)
    assert res.stats.events["mm_page_alloc_zone_locked"] == 2
    assert res.counts["zone_locked"] == 2 and res.counts["allocs"] == 1
    assert res.stats.malformed == 0


def test_follow_keeps_the_traces_pcp_lists(tmp_path):
    """Follow mode: a free stays on the freeing CPU's pcp list until the
    trace drains it, a refill moves a block from the buddy lists to a pcp
    list, and pages the model held allocated (a pcp list kpageflags could not
    show, an allocation the trace could not show) are taken as the trace says."""
    from dnuma.mm.machine import Machine

    def run(lines, follow: bool) -> tuple[Machine, object, int]:
        m = Machine(small_machine())
        m.alloc_pages(0, cpu=0)  # a page the model holds allocated before the trace
        held = int(np.flatnonzero(m.S.page_flags & PG_head)[0])
        m.drain_all_pages()
        res = replay_trace(write_trace(tmp_path / "t.txt", lines(held)), machine=m,
                           follow=follow, check=validate_all)
        return m, res, held

    def trace(held: int) -> list[str]:
        return [line(1.0, "mm_page_alloc", 0x1400), line(1.1, "mm_page_free", 0x1400, cpu=1),
                zone_locked(1.2, 0x1500, cpu=0),  # refilled, not yet allocated
                line(1.3, "mm_page_alloc", 0x1600),
                line(1.4, "mm_page_free", 0x1600),
                line(1.5, "mm_page_free", 0x1600),  # freed again: an untraced allocation
                line(1.6, "mm_page_pcpu_drain", held),  # sat on a pcp list at the snapshot
                line(1.7, "mm_page_alloc", 0x1800, order=9),
                line(1.8, "mm_page_free", 0x1800, order=9),  # a THP: held as on its pcp list
                extfrag(1.85, 0x1a00, order=1, cpu=1)]  # a fallback's refill

    m, res, held = run(trace, True)
    assert _where(m, 0x1400) == "pcp" and _where(m, 0x1a00) == "pcp"
    assert m.S.pcp_count[1].sum() == 3 and res.counts["extfrag"] == 1
    assert _where(m, 0x1500) == "pcp" and m.S.pcp_count[0].sum() == 2  # 0x1500 and 0x1600
    assert _where(m, 0x1600) == "pcp" and _where(m, held) == "buddy"
    assert res.anomalies["double_free"] == 1
    assert _where(m, 0x1800) == "allocated"
    m2, _, _ = run(lambda held: [*trace(held), line(1.9, "mm_page_pcpu_drain", 0x1800, order=9)],
                True)
    assert _where(m2, 0x1800) == "buddy"
    # the model's own pcp policy, without follow: the refill and drain are only counted
    m3, res3, held = run(trace, False)
    assert _where(m3, 0x1500) == "buddy" and res3.counts["zone_locked"] == 1
    assert _where(m3, 0x1a00) == "buddy"
    assert _where(m3, 0x1800) == "buddy" and _where(m3, held) == "allocated"
