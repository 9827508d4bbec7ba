"""The dnuma command."""

from __future__ import annotations

import csv
import json
import subprocess
import sys

import pytest

from dnuma import __version__
from dnuma.cli import main


def test_version_in_a_new_process():
    out = subprocess.run([sys.executable, "-m", "dnuma.cli", "--version"], capture_output=True,
                         text=True, check=True)
    assert out.stdout.strip() == f"dnuma {__version__}"


def _no_timing(summary):
    s = dict(summary)
    s.pop("wall_seconds")
    s["steps"] = [{k: v for k, v in r.items() if k != "commit_ms"} for r in s["steps"]]
    return s


def test_demo_json_repeats_and_writes_the_output_folder(capsys, tmp_path):
    out = tmp_path / "out"
    assert main(["demo", "--json", "--seed", "2", "--out", str(out)]) == 0
    a = json.loads(capsys.readouterr().out)
    assert [s["step"] for s in a["steps"]] == ["stripe", "push", "boot"]
    assert a["steps"][0]["onlined"] == [2] and a["steps"][1]["onlined"] == [3]
    assert a["machine"]["present_pages"] == 32768 and a["final"]["moved_on_free"] > 0
    assert json.loads((out / "summary.json").read_text()) == a
    with (out / "metrics.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) > 8 / 0.05 and float(rows[-1]["t"]) == 8.0
    html = (out / "report.html").read_text()
    assert "<img" in html and "stripe" in html
    assert main(["demo", "--json", "--seed", "2", "--no-report"]) == 0
    b = json.loads(capsys.readouterr().out)
    assert _no_timing(a) == _no_timing(b)


def test_demo_table(capsys, tmp_path):
    assert main(["demo", "--check", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "moved on free" in out and "invariants checked" in out
    rows = [ln.split() for ln in out.splitlines()]
    assert [r[:2] for r in rows if len(r) > 2 and r[0] in ("stripe", "push", "boot")] == [
        ["stripe", "2.0"], ["push", "4.0"], ["boot", "6.0"]]
    assert "report.html" in out


def test_run_list_and_a_scenario_file(capsys, tmp_path):
    assert main(["run", "--list"]) == 0
    listed = capsys.readouterr().out
    assert "demo" in listed and "evacuate" in listed
    sc = tmp_path / "mine.toml"
    sc.write_text('duration = "1s"\n[machine]\nnodes = 2\nmem = "16M"\n'
                  '[[task]]\nrate = 1000\nlifetime = "100ms"\n'
                  '[[event]]\nat = "0.5s"\npush = 1\n')
    assert main(["run", str(sc), "--json", "--no-report"]) == 0
    s = json.loads(capsys.readouterr().out)
    assert s["scenario"] == "mine" and s["steps"][0]["step"] == "push"


def test_bad_scenario_is_one_line_exit_2(capsys, tmp_path):
    sc = tmp_path / "bad.toml"
    sc.write_text('duration = "1s"\n[machine]\nnodes = "two"\n')
    assert main(["run", str(sc)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "bad.toml: machine.nodes: expected an integer" in err
    sc.write_text('duration = "1s\n')
    assert main(["run", str(sc)]) == 2
    assert "not valid TOML" in capsys.readouterr().err
    assert main(["run", str(tmp_path / "nope.toml")]) == 2
    assert "nope.toml" in capsys.readouterr().err
    with pytest.raises(ValueError):
        main(["--debug", "run", str(sc)])


def test_layout_tools(capsys):
    assert main(["layout", "stripe", "--nodes", "0,1,2", "--block", "256", "--mem", "4M"]) == 0
    lines = capsys.readouterr().out.split("\n")
    assert lines == ["0-FF -> 0", "100-1FF -> 1", "200-2FF -> 2", "300-3FF -> 0", ""]
    assert main(["layout", "stripe", "--nodes", "0-2", "--mem", "4M", "--format", "script"]) == 0
    script = capsys.readouterr().out
    assert "start 0x300\nend 0x3ff\nnode 0\n" in script.lower() and script.endswith("commit 1\n")
    assert main(["layout", "push", "--node", "3", "--mem", "4M"]) == 0
    assert capsys.readouterr().out == "0-3FF -> 3\n"
    assert main(["layout", "show", "--mem", "4M"]) == 0
    assert capsys.readouterr().out == "0-1FF -> 0\n200-3FF -> 1\n"
    assert main(["layout", "push", "--node", "5000"]) == 2
    assert "5000" in capsys.readouterr().err


def test_layout_show_from_a_scenario(capsys):
    assert main(["layout", "show", "--scenario", "demo", "--format", "toml"]) == 0
    assert capsys.readouterr().out == 'ranges = { "0-3FFF" = 0, "4000-7FFF" = 1 }\n'


def _one_line_error(capsys) -> str:
    cap = capsys.readouterr()
    assert cap.out == "" and cap.err.count("\n") == 1 and cap.err.startswith("dnuma: error: ")
    return cap.err


@pytest.mark.parametrize(("argv", "says"), [
    (["layout", "push"], "layout push: the following arguments are required: --node"),
    (["layout", "show", "--mem", "4M", "--scenario", "demo"],
     "layout show: argument --scenario: not allowed with argument --mem"),
    (["layout", "stripe", "--scenario", "demo", "--boot-nodes", "3"],
     "layout stripe: argument --boot-nodes: not allowed with argument --scenario"),
    (["layout", "stripe", "--node", "3"], "unrecognized arguments: --node 3"),
    (["layout", "push", "--node", "1", "--block", "512"], "unrecognized arguments: --block 512"),
    (["layout", "show", "--nodes", "0,1"], "unrecognized arguments: --nodes 0,1"),
    (["layout"], "layout: the following arguments are required: ACTION"),
    (["layout", "push", "--node", "x"], "layout push: argument --node: invalid int value: 'x'"),
    (["run", "--bogus"], "unrecognized arguments: --bogus"),
])
def test_a_flag_that_does_not_apply_is_refused(capsys, argv, says):
    assert main(argv) == 2
    assert _one_line_error(capsys) == f"dnuma: error: {says}\n"


def test_help_is_argparse_s(capsys):
    assert main(["layout", "push", "--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: dnuma layout push [-h] --node N") and "--scenario FILE" in out


def test_no_command_is_usage_error(capsys):
    assert main([]) == 2
    assert capsys.readouterr().err == "dnuma: error: no COMMAND given (see dnuma --help)\n"


def test_the_compiling_line_shows_only_while_compiling(monkeypatch):
    """On a terminal, numba's cache misses show one progress line, rewritten
    in place and erased before anything else is printed; off a terminal, or
    with nothing compiled, nothing."""
    import io

    from dnuma._kernels import _notice

    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    for tty in (True, False):
        err = Tty() if tty else io.StringIO()
        monkeypatch.setattr("sys.stderr", err)
        monkeypatch.setattr(_notice, "_state", {"depth": 0, "compiled": 0, "t0": 0.0,
                                                "shown": False})
        _notice.end_compile_notice()
        assert err.getvalue() == ""  # nothing compiled: nothing said
        _notice.compile_started()
        _notice.compile_started()  # a nested compilation counts once on the line
        _notice.compile_ended()
        assert err.getvalue() == ""
        _notice.compile_ended()
        _notice.end_compile_notice()
        if tty:
            line, erase = err.getvalue().rsplit("\r", 1)
            assert line.startswith("\rdnuma: compiling the kernels") and "2 compiled" in line
            assert erase == "\033[K"
        else:
            assert err.getvalue() == ""
