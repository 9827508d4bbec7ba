"""Imports point down the layers of DESIGN.md: cli -> report, io, sim -> mm -> _kernels."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).parent.parent / "src" / "dnuma"
# what each package may not import (its own layer and those below are fine)
FORBIDDEN = {
    "_kernels": {"mm", "sim", "io", "report", "bench", "cli", "cli_machine"},
    "mm": {"sim", "io", "report", "bench", "cli", "cli_machine"},
    "sim": {"io", "report", "bench", "cli", "cli_machine"},
    "io": {"sim", "report", "bench", "cli", "cli_machine"},
    "report": {"bench", "cli", "cli_machine"},
}


def _imports(path: Path, package: str) -> set[str]:
    """Top-level dnuma subpackages a module imports (relative or absolute)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level == 0 and node.module and node.module.startswith("dnuma."):
                out.add(node.module.split(".")[1])
            elif node.level == 1 and package and node.module is None:
                continue
            elif node.level >= 2 and node.module:
                out.add(node.module.split(".")[0])
            elif node.level >= 2:
                out.update(a.name for a in node.names)
        elif isinstance(node, ast.Import):
            out.update(a.name.split(".")[1] for a in node.names
                       if a.name.startswith("dnuma."))
    return out


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_imports_point_down(package):
    bad = []
    for path in sorted((SRC / package).glob("*.py")):
        wrong = _imports(path, package) & FORBIDDEN[package]
        if wrong:
            bad.append(f"{path.name}: {sorted(wrong)}")
    assert not bad, bad
    assert list((SRC / package).glob("*.py"))
