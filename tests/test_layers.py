"""Imports point down the layers of docs/DESIGN.md: cli -> bench, oracle -> report, io,
sim -> mm -> _kernels, and nothing but the command imports the command."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).parent.parent / "src" / "dnuma"
# what each package may not import (its own layer and those below are fine)
FORBIDDEN = {
    "_kernels": {"mm", "sim", "io", "report", "bench", "oracle", "cli"},
    "mm": {"sim", "io", "report", "bench", "oracle", "cli"},
    "sim": {"io", "report", "bench", "oracle", "cli"},
    "io": {"sim", "report", "bench", "oracle", "cli"},
    "report": {"bench", "oracle", "cli"},
    "bench": {"oracle", "cli"},
    "oracle": {"bench", "cli"},  # beside bench: the real kernel under QEMU
    "cli": set(),  # the top: it may import everything
}


def _imports(path: Path) -> set[str]:
    """Top-level dnuma subpackages (or modules) a module imports, its
    relative imports resolved against its own package."""
    here = path.relative_to(SRC.parent).with_suffix("").parts  # ("dnuma", "cli", "run")
    package = here[:-1]  # a package's __init__ is in the package itself
    names = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = package[:len(package) - node.level + 1] if node.level else ()
            mod = (*base, *(node.module or "").split(".")) if node.module else base
            names += [mod] if node.module else [(*mod, a.name) for a in node.names]
        elif isinstance(node, ast.Import):
            names += [tuple(a.name.split(".")) for a in node.names]
    return {n[1] for n in names if len(n) > 1 and n[0] == "dnuma"}


def _modules(under: Path) -> list[Path]:
    return sorted(under.rglob("*.py"))


def test_imports_resolve():
    assert _imports(SRC / "cli" / "run.py") >= {"cli", "sim", "mm"}
    assert _imports(SRC / "bench" / "__init__.py") == {"mm"}


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_imports_point_down(package):
    bad = []
    for path in _modules(SRC / package):
        wrong = _imports(path) & FORBIDDEN[package]
        if wrong:
            bad.append(f"{path.relative_to(SRC)}: {sorted(wrong)}")
    assert not bad, bad
    assert _modules(SRC / package)


def test_every_package_has_a_layer():
    packages = {p.parent.name for p in SRC.glob("*/__init__.py")}
    assert packages == set(FORBIDDEN)


def test_only_the_command_imports_the_command():
    outside = [p for p in _modules(SRC) if SRC / "cli" not in p.parents]
    assert SRC / "__init__.py" in outside  # the top-level modules are walked too
    bad = [str(p.relative_to(SRC)) for p in outside if "cli" in _imports(p)]
    assert not bad, bad
