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


def test_python_example_prints_what_it_says():
    code = _block("python")
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, "README.md", "exec"), {})
    printed = out.getvalue().splitlines()
    promised = [c.split("# ", 1)[1].strip() for c in code.splitlines()
                if c.startswith("print(") and "# " in c]
    assert len(printed) == len(promised) == 2
    for got, want in zip(printed, promised, strict=True):
        assert got.startswith(want.split("...")[0]), (got, want)  # "..." elides the rest


def test_scenario_example_runs():
    sc = parse_scenario(_block("toml"), "README.md")
    res = run_scenario(sc)
    assert [s.name for s in res.steps] == ["stripe"]
    assert [t.name for t in sc.tasks] == [f"anon/{c}" for c in range(4)]
