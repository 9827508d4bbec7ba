"""The dnuma command."""

from __future__ import annotations

import json
import subprocess
import sys

from dnuma import __version__
from dnuma.cli import main


def test_version_in_a_new_process():
    out = subprocess.run([sys.executable, "-m", "dnuma.cli", "--version"], capture_output=True,
                         text=True, check=True)
    assert out.stdout.strip() == f"dnuma {__version__}"


def test_demo_json_repeats_and_reports_each_step(capsys):
    assert main(["demo", "--json", "--seed", "2"]) == 0
    a = json.loads(capsys.readouterr().out)
    assert [s["step"] for s in a["steps"]] == ["stripe", "push", "boot"]
    assert a["steps"][0]["onlined"] == [2] and a["steps"][1]["onlined"] == [3]
    assert a["present_pages"] == 32768 and a["moved_pages"] > 0
    assert main(["demo", "--json", "--seed", "2"]) == 0
    b = json.loads(capsys.readouterr().out)
    strip = [{k: v for k, v in s.items() if k != "commit_ms"} for s in a["steps"]]
    assert strip == [{k: v for k, v in s.items() if k != "commit_ms"} for s in b["steps"]]


def test_demo_table(capsys):
    assert main(["demo", "--check"]) == 0
    out = capsys.readouterr().out
    assert "moved on free" in out and "invariants checked" in out
    rows = [ln.split() for ln in out.splitlines()]
    assert [r[:2] for r in rows if len(r) > 1 and r[1].isdigit()] == [
        ["stripe", "1"], ["push", "2"], ["boot", "3"]]


def test_no_command_is_usage_error(capsys):
    assert main([]) == 2
