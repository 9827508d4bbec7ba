"""The README's examples run as written."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

from dnuma.sim.run import run_scenario
from dnuma.sim.scenario import parse_scenario

README = (Path(__file__).parent.parent / "README.md").read_text()


def _block(lang: str) -> str:
    mt = re.search(rf"```{lang}\n(.*?)```", README, re.S)
    assert mt, f"no {lang} block in README.md"
    return mt.group(1)


def _promised_output(code: str) -> tuple[list[str], list[str]]:
    """What the example prints, and what its comments say it prints."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, "README.md", "exec"), {})
    promised = [c.split("# ", 1)[1].strip() for c in code.splitlines()
                if c.lstrip().startswith("print(") and "# " in c]
    return out.getvalue().splitlines(), promised


def test_the_hotplug_example_prints_what_it_says():
    code = re.findall(r"```python\n(.*?)```", README, re.S)[1]
    assert "add_memory" in code
    printed, promised = _promised_output(code)
    assert printed == promised == ["[4, 5] online", "EBUSY 4"]


def test_the_cpu_move_example_prints_what_it_says():
    code = next(c for c in re.findall(r"```python\n(.*?)```", README, re.S) if "move_cpus" in c)
    printed, promised = _promised_output(code)
    assert printed == promised and len(printed) == 3


def test_python_example_prints_what_it_says():
    printed, promised = _promised_output(_block("python"))
    assert len(printed) == len(promised) == 2
    for got, want in zip(printed, promised, strict=True):
        assert got.startswith(want.split("...")[0]), (got, want)  # "..." elides the rest


def test_scenario_example_runs():
    sc = parse_scenario(_block("toml"), "README.md")
    res = run_scenario(sc)
    assert [s.name for s in res.steps] == ["stripe"]
    assert [t.name for t in sc.tasks] == [f"anon/{c}" for c in range(4)]


def test_the_versus_table_is_what_the_shipped_scenario_gives(capsys):
    """The DNUMA-next-to-hotplug table, every figure but the model's wall time."""
    from dnuma.cli import main

    mt = re.search(r"```\n( +DNUMA commit +hotplug\n.*?)```", README, re.S)
    assert mt, "no versus table in README.md"
    assert main(["run", "versus-hotplug", "--no-report"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    got = lines[next(i for i, ln in enumerate(lines) if "DNUMA commit" in ln):]

    def rows(lines):
        return [ln.strip() for ln in lines if ln.strip() and "wall time" not in ln]

    want = rows(mt.group(1).splitlines())
    assert rows(got)[:len(want)] == want
