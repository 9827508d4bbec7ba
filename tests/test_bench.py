"""``dnuma bench``: the quick run (so it cannot rot), its JSON schema and the
arithmetic of its figures.  Speed targets are not asserted (noisy CI)."""

from __future__ import annotations

import contextlib
import io
import json
import math
import statistics
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from dnuma.bench import NAMES, BenchError, baselines
from dnuma.bench import cases as bench_cases
from dnuma.bench.harness import Check, Context, Result, measure
from dnuma.bench.machines import Rewind, fresh_layout, mixed_initial_state
from dnuma.cli import main
from dnuma.mm.errors import DnumaError
from dnuma.mm.machine import Machine, MachineConfig
from dnuma.mm.memlayout import MemLayout
from dnuma.mm.validate import validate_all

SIZED = {"tib-stripe", "boot-tib", "lookup", "churn", "replay", "export", "online-tib"}


def run_main(argv: list[str]) -> tuple[int, str, str]:
    """``dnuma.cli.main(argv)`` -> (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main(argv)
    return rc, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def quick() -> dict[str, Any]:
    rc, out, _err = run_main(["bench", "--quick", "--json"])
    assert rc == 0
    return json.loads(out)


@pytest.fixture(scope="module")
def by_name(quick: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {b["name"]: b for b in quick["benchmarks"]}


def close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-9)


def test_schema(quick: dict[str, Any]) -> None:
    assert set(quick) == {"machine", "benchmarks", "run"}
    mach = quick["machine"]
    for k in ("cpu_model", "nr_cpus", "mem_total_bytes", "kernel", "python", "numpy",
              "numba", "numba_cache_warm"):
        assert k in mach
    assert isinstance(mach["numba_cache_warm"], bool)
    assert [b["name"] for b in quick["benchmarks"]] == list(NAMES)
    run = quick["run"]
    assert run["quick"] is True and run["wall_seconds"] > 0 and run["peak_rss_bytes"] > 0
    for b in quick["benchmarks"]:
        for k in ("name", "value", "unit", "target", "ok", "quick", "repeats", "samples",
                  "seconds", "checks"):
            assert k in b, (b["name"], k)
        assert b["quick"] is True
        assert isinstance(b["value"], float) and b["value"] > 0 and math.isfinite(b["value"])
        assert b["repeats"] == len(b["samples"]) >= 3
        assert all(s > 0 for s in b["samples"])
        assert b["seconds"] == statistics.median(b["samples"])
        assert b["checks"] and b["target"]


def test_quick_judges_only_unsized_floors(quick: dict[str, Any]) -> None:
    for b in quick["benchmarks"]:
        if b["name"] in SIZED:
            assert b["ok"] is None and "quick" in b["note"]
            assert all(c["ok"] is None for c in b["checks"])
        else:
            assert isinstance(b["ok"], bool) and "note" not in b
            assert b["ok"] == all(c["ok"] for c in b["checks"])
        for c in b["checks"]:
            actual = b["value"] if c["field"] == "value" else b[c["field"]]
            assert c["actual"] == actual and c["op"] in ("<=", ">=")


def test_figures_agree_with_their_parts(by_name: dict[str, dict[str, Any]]) -> None:
    med = statistics.median
    b = by_name["seed-stripe"]
    assert b["unit"] == "ms" and close(b["value"], b["seconds"] * 1e3)
    assert close(b["speedup_vs_rfc"], 540 / b["seconds"]) and b["nodes_onlined"] == [2]
    assert 0.45 < b["allocated_fraction"] < 0.55

    b = by_name["tib-stripe"]
    assert b["value"] == b["commit_seconds"] == b["seconds"]
    assert b["one_pass_seconds"] == med(b["one_pass_samples"])
    assert close(b["ratio"], b["commit_seconds"] / b["one_pass_seconds"])
    assert 0.55 < b["allocated_fraction"] < 0.65 and b["ranges"] == b["pfns"] // 512

    b = by_name["boot-tib"]
    assert close(b["bytes_per_pfn"], b["model_bytes"] / b["pfns"]) and b["value"] == b["seconds"]

    b = by_name["lookup"]
    assert close(b["value"], b["lookups"] / b["seconds"]) and b["lookup_seconds"] == b["seconds"]
    assert b["dense_seconds"] == med(b["dense_samples"])
    assert close(b["ratio"], b["lookup_seconds"] / b["dense_seconds"])
    assert b["cache_hits"] + b["cache_misses"] == b["lookups"]

    b = by_name["churn"]
    assert close(b["value"], b["ops"] / b["seconds"])
    assert b["host_seconds"] == med(b["host_samples"])
    assert close(b["host_pages_per_s"], b["host_bytes"] / 4096 / b["host_seconds"])
    assert close(b["realtime_factor"], b["value"] / b["host_pages_per_s"])
    assert close(b["model_pages_per_s"], b["value"] * b["pages_per_op"])
    assert 0.45 < b["fill"] < 0.55

    b = by_name["replay"]
    assert close(b["value"], b["events"] / b["seconds"])
    assert b["trace"].endswith("kmem-trace-excerpt.txt.xz")

    b = by_name["export"]
    assert b["value"] == b["seconds"] and b["files"] > 0 and "dnuma-bench-export-" in b["wrote"]

    b = by_name["online-tib"]  # quick: 4 GiB, 32 blocks
    assert b["value"] == b["seconds"] and b["memory_blocks"] == b["pfns"] // 32768
    assert close(b["ms_per_256mib"], b["seconds"] * 1e3 / (b["hot_added_bytes"] / (256 << 20)))
    assert close(b["kernel_ratio"], b["ms_per_256mib"] / b["kernel_ms_per_256mib"])

    b = by_name["offline-gib"]  # the same size in quick mode: the floor is judged
    assert close(b["value"], b["pages_migrated"] / b["seconds"]) and b["memory_blocks"] == 8
    assert 0.4 < b["allocated_fraction"] < 0.6 and b["kernel_pages_per_s"] == 3.7e9 / 4096
    assert close(b["kernel_ratio"], b["value"] / b["kernel_pages_per_s"])

    b = by_name["startup"]
    assert b["value"] == b["seconds"] and b["baseline_seconds"] == med(b["baseline_samples"])
    assert close(b["overhead_seconds"], b["value"] - b["baseline_seconds"])


def test_bad_name_exits_2_with_the_names() -> None:
    rc, out, err = run_main(["bench", "no-such", "--quick"])
    assert rc == 2 and out == ""
    assert "no-such" in err and all(n in err for n in NAMES)


def test_bench_errors_are_one_line_exit_2(tmp_path: Path) -> None:
    missing = tmp_path / "no-trace.txt"
    rc, out, err = run_main(["bench", "replay", "--quick", "--trace", str(missing)])
    assert rc == 2 and out == ""
    assert err == f"dnuma: error: bench replay: no trace at {missing}; give --trace PATH\n"


def test_the_traces_of_tests_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = Path(__file__).parent / "data"
    assert bench_cases.trace_path(Context()) == data / "kmem-trace-A.txt.xz"
    assert bench_cases.trace_path(Context(quick=True)) == data / "kmem-trace-excerpt.txt.xz"
    given = data / "kmem-trace-excerpt.txt.xz"
    assert bench_cases.trace_path(Context(trace=str(given))) == given  # --trace wins
    monkeypatch.setattr(bench_cases, "DATA", tmp_path)  # e.g. an installed package
    with pytest.raises(BenchError, match=r"tests/data of a source checkout.*--trace PATH"):
        bench_cases.trace_path(Context())


def test_bad_input_and_failed_baselines_raise_bench_error() -> None:
    assert issubclass(BenchError, DnumaError)
    with pytest.raises(BenchError, match="repeats must be >= 1, got 0"):
        measure({"a": lambda: 1.0}, repeats=0)
    argv = [sys.executable, "-c", "import sys; sys.exit('no luck')"]
    with pytest.raises(BenchError, match=r"exit 1: no luck$"):
        baselines.new_process(argv)()
    assert baselines.run_process([sys.executable, "-c", "print(42)"]) == b"42\n"


def test_list() -> None:
    rc, out, _ = run_main(["bench", "--list"])
    assert rc == 0 and [line.split()[0] for line in out.splitlines()] == list(NAMES)


def test_table_output() -> None:
    rc, out, _ = run_main(["bench", "startup", "seed-stripe", "--quick"])
    assert rc == 0
    lines = out.splitlines()
    assert lines[0].split()[:5] == ["name", "value", "unit", "target", "ok"]
    assert [ln.split()[0] for ln in lines[1:3]] == ["seed-stripe", "startup"]
    assert lines[1].split()[2] == "ms" and lines[2].split()[2] == "s"
    assert "quick sizes" in out and "numba" in out


def test_strict_exit_code(monkeypatch: pytest.MonkeyPatch) -> None:
    def failing(ctx: Any) -> tuple[Result, str]:
        return Result("startup", 9.0, "s", "<= 0.5 s", [9.0, 9.0, 9.0],
                      [Check("value", "<=", 0.5)], quick=ctx.quick), "slow"

    fake = tuple(bench_cases.Bench(b.name, b.what, failing) if b.name == "startup" else b
                 for b in bench_cases.BENCHMARKS)
    monkeypatch.setattr(bench_cases, "BENCHMARKS", fake)
    rc, out, _ = run_main(["bench", "startup", "--quick"])
    assert rc == 0 and " NO " in out
    rc, _, _ = run_main(["bench", "startup", "--quick", "--strict"])
    assert rc == 1


def test_measure_interleaves_after_warmups() -> None:
    calls: list[str] = []

    def op(name: str, own: float | None) -> Any:
        def f() -> float | None:
            calls.append(name)
            return own
        return f

    s = measure({"a": op("a", 0.25), "b": op("b", None)}, repeats=3, warmups=2)
    assert calls == ["a", "b"] * 5
    assert s["a"] == [0.25] * 3 and len(s["b"]) == 3 and all(x >= 0 for x in s["b"])


def test_mixed_initial_state_boots_valid() -> None:
    c = MachineConfig.uniform(2, "64M", 2)
    m = Machine(c, mixed_initial_state(c, run_chunks=8, seed=3))
    validate_all(m)
    assert 0.55 < 1 - m.nr_free_pages() / m.total_present_pages < 0.65
    # clustered: far fewer free blocks than free chunks
    assert int(m.S.free_cnt.sum()) < 0.5 * m.nr_free_pages() / 8
    assert set(np.unique(m.S.page_order[m.allocated_mask() & (m.S.page_flags > 0)]).tolist()) \
        <= {0, 1, 2, 3}


def test_rewind_repeats_a_commit_from_one_state() -> None:
    c = MachineConfig.uniform(2, "64M", 2)
    m0 = Machine(c, mixed_initial_state(c))
    lay = MemLayout.stripe(m0.ram_ranges(), [0, 1, 2], 256)
    rw = Rewind(m0)
    reports = []
    for _ in range(2):
        m = rw.fresh()
        assert m.seq == 0
        reports.append(m.commit(fresh_layout(lay)))
        validate_all(m)
    a, b = (r.as_dict() for r in reports)
    a.pop("seconds")
    b.pop("seconds")
    assert a == b and a["pages_marked"] > 0
