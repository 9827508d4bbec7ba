"""What the commands share: the usage error, the progress bar, JSON on
stdout, the step table and a run's output folder."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._kernels._notice import end_compile_notice
from ..mm.errors import DnumaError

if TYPE_CHECKING:
    from ..mm.machine import Machine
    from ..report.metrics import Metrics


class UsageError(DnumaError):
    """Bad command-line input: one line on stderr, exit 2."""


@contextmanager
def output_dirs(**dirs: str | Path | None) -> Iterator[None]:
    """Create the output folders ``dirs`` (flag name -> folder; None: not
    asked for) before the work starts, so that a bad target fails first; if
    the work then fails, remove the folders made here that are still empty."""
    made: list[Path] = []
    for flag, d in dirs.items():
        if d is None:
            continue
        p = Path(d)
        missing = [q for q in (p, *p.parents) if not q.exists()]
        try:
            p.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            _remove_empty(made)
            raise UsageError(f"--{flag.replace('_', '-')} {d}: cannot create the folder: "
                             f"{exc.strerror}") from None
        made.extend(missing)
    try:
        yield
    except BaseException:
        _remove_empty(made)
        raise


def _remove_empty(dirs: list[Path]) -> None:
    for q in dirs:  # deepest first
        with suppress(OSError):
            q.rmdir()


def check_file_target(path: str | Path, flag: str) -> None:
    """A file the command will write at the end: its folder must exist and
    it must be missing or a regular file (never a device, FIFO or folder)."""
    p = Path(path)
    if not p.parent.is_dir():
        raise UsageError(f"{flag} {path}: folder {p.parent} does not exist")
    if p.exists() and not p.is_file():
        raise UsageError(f"{flag} {path}: exists and is not a regular file; refusing to "
                         "replace it")


@contextmanager
def progress_bar(total: float, desc: str, quiet: bool,
                 unit: str = "s") -> Iterator[Callable[[float], None]]:
    """A progress bar on stderr for work that takes more than a second, fed
    with the amount done so far (of ``total``, in ``unit``; "" for a
    fraction); nothing when ``quiet`` or when stderr is not a terminal."""
    if quiet or not sys.stderr.isatty():
        yield lambda done: None
        return
    from tqdm import tqdm

    end_compile_notice()
    counts = " {n:.2f}/{total:.2f} {unit}" if unit else ""
    with tqdm(total=total, desc=desc, unit=unit, delay=1.0, leave=False, file=sys.stderr,
              bar_format="{desc}: {percentage:3.0f}%|{bar}|" + counts
                         + " [{elapsed}<{remaining}]") as bar:
        def update(done: float) -> None:
            bar.update(max(0.0, min(done, total) - bar.n))
        yield update


def print_json(doc: Any) -> None:
    """``doc`` on stdout, indented, with a final newline."""
    end_compile_notice()
    json.dump(doc, sys.stdout, indent=2)
    sys.stdout.write("\n")


def observers(metrics: list[Metrics]) -> Callable[[Machine], list[Metrics]]:
    """An ``observe`` hook that records the run's metrics into ``metrics``."""
    from ..report.metrics import Metrics

    def make(m: Machine) -> list[Metrics]:
        metrics.append(Metrics(m))
        return metrics[-1:]
    return make


def check_fn(enabled: bool) -> Callable[[Machine], None] | None:
    """``validate_all`` when --check is given, else None."""
    if not enabled:
        return None
    from ..mm.validate import validate_all

    return validate_all


def write_outputs(out: Path, title: str, summary: dict[str, Any], metrics: Metrics,
                  quiet: bool) -> None:
    """The output folder: summary.json, the metrics series and report.html."""
    from ..report.html import write_report

    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"--out {out}: cannot create: {exc.strerror}") from None
    end_compile_notice()
    summary_path = out / "summary.json"
    summary_path.write_text(json.dumps(summary, indent=2) + "\n")
    series = metrics.write_series(out)
    # the report has its own table of layout changes: leave out the summary's
    report = write_report(out, title, {k: v for k, v in summary.items() if k != "steps"},
                          metrics)
    if not quiet:
        print(f"\nwrote {summary_path}, {series} and {report}")


def format_table(rows: Sequence[dict[str, Any]], cols: Sequence[tuple[str, str, int]]) -> str:
    """Rows as right-aligned columns (key, heading, width; a negative width
    aligns left); a list is joined with commas ("-" when empty), None shows
    as "-"."""
    def cell(v: Any, w: int) -> str:
        return f"{v:<{-w}}" if w < 0 else f"{v:>{w}}"

    lines = ["".join(cell(h, w) for _k, h, w in cols)]
    for r in rows:
        cells = []
        for k, _h, w in cols:
            v = r[k]
            if isinstance(v, list):
                v = ",".join(map(str, v)) or "-"
            cells.append(cell("-" if v is None else v, w))
        lines.append("".join(cells))
    return "\n".join(lines)


def format_steps(rows: Sequence[dict[str, Any]]) -> str:
    """The per-step table: one row per layout change."""
    return format_table(rows, [
        ("step", "step", 12), ("t", "t s", 6), ("commit_ms", "commit ms", 10),
        ("marked", "marked", 8), ("free_moved", "free moved", 11), ("split", "split", 6),
        ("onlined", "onlined", 8), ("offlined", "offlined", 9),
        ("misplaced_left", "misplaced left", 15), ("moved_on_free", "moved on free", 14)])


def format_hotplug(rows: Sequence[dict[str, Any]]) -> str:
    """The machine events of a run (hotplug and topology): one row each, a
    refused one with its errno."""
    return format_table(rows, [
        ("event", "machine event", 18), ("t", "t s", 10), ("action", "action", 19),
        ("errno", "errno", 7), ("blocks", "blocks", 12), ("present_delta", "present +/-", 12),
        ("pages_migrated", "migrated", 10), ("wall_ms", "wall ms", 11),
        ("kernel_ms", "kernel ms", 11)])


def _show(v: Any, none: str | None = "never") -> Any:
    """A figure for a table: thousands separated, 3 decimals, ``none`` for None."""
    if v is None:
        return none
    if isinstance(v, bool) or not isinstance(v, int | float):
        return v
    return f"{v:,}" if isinstance(v, int) else f"{v:,.3f}"


def format_versus(rows: Sequence[dict[str, Any]]) -> str:
    """DNUMA next to hotplug: one row per figure, the two arms side by side."""
    return format_table([{"what": f"  {r['what']}", "dnuma": _show(r["dnuma"], None),
                          "hotplug": _show(r["hotplug"], None)} for r in rows], [
        ("what", "", -50), ("dnuma", "DNUMA commit", 14), ("hotplug", "hotplug", 22)])


def format_migration(commits: Sequence[dict[str, Any]]) -> str:
    """A run's migration records (sim.migration), one row per commit."""
    return format_table([{**c, "converge_s": _show(c["converge_s"])} for c in commits], [
        ("step", "step", -10), ("pages_changed", "pages changed", 14),
        ("misplaced_after_commit", "misplaced", 10), ("pages_migrated", "migrated", 9),
        ("converge_s", "99% placed (s)", 15), ("remote_allocations", "remote allocs", 14),
        ("misplaced_left", "misplaced left", 15)])


def format_policies(rows: Sequence[dict[str, Any]], labels: Sequence[str]) -> str:
    """Migration policies side by side (sim.policies): per commit and figure,
    one column per policy."""
    return format_table([{"what": f"{r['step']} at {r['t']:g} s: {r['what']}",
                          **{p: _show(r[p]) for p in labels}} for r in rows],
                        [("what", "", -58), *((p, p, max(12, len(p) + 2)) for p in labels)])


class SourceOption(argparse.Action):
    """An option of one source of the machine (``kind``, e.g. a scenario or
    the machine options): options of two sources are refused, in argparse's
    words for a mutually exclusive pair.  ``nargs=0`` makes it a flag that
    stores ``const``."""

    def __init__(self, option_strings: Sequence[str], dest: str, kind: str,
                 **kwargs: Any) -> None:
        super().__init__(option_strings, dest, **kwargs)
        self.kind = kind

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: str | Sequence[Any] | None, option_string: str | None = None) -> None:
        given: dict[str, str] = getattr(namespace, "source_options", None) or {}
        clash = [opt for opt, kind in given.items() if kind != self.kind]
        if clash:
            parser.error(f"argument {option_string}: not allowed with argument {clash[0]}")
        namespace.source_options = {**given, str(option_string): self.kind}
        setattr(namespace, self.dest, self.const if self.nargs == 0 else values)
