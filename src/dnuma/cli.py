"""The ``dnuma`` command: demo, run, layout, replay (boot and snapshot live in
:mod:`dnuma.cli_machine`, bench in :mod:`dnuma.cli_bench`)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import __version__

if TYPE_CHECKING:
    from .mm.machine import Machine
    from .report.metrics import Metrics
    from .sim.scenario import LayoutEvent


class UsageError(Exception):
    """Bad command-line input: one line on stderr, exit 2."""


# ------------------------------------------------------------------ helpers
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

    counts = " {n:.2f}/{total:.2f} {unit}" if unit else ""
    with tqdm(total=total, desc=desc, unit=unit, delay=1.0, leave=False, file=sys.stderr,
              bar_format="{desc}: {percentage:3.0f}%|{bar}|" + counts
                         + " [{elapsed}<{remaining}]") as bar:
        def update(done: float) -> None:
            bar.update(max(0.0, min(done, total) - bar.n))
        yield update


def _observers(metrics: list[Metrics]) -> Callable[[Machine], list[Metrics]]:
    from .report.metrics import Metrics

    def make(m: Machine) -> list[Metrics]:
        metrics.append(Metrics(m))
        return metrics[-1:]
    return make


def _write_outputs(out: Path, title: str, summary: dict[str, Any], metrics: Metrics,
                   quiet: bool) -> None:
    from .report.html import write_report

    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"--out {out}: cannot create: {exc.strerror}") from None
    summary_path = out / "summary.json"
    summary_path.write_text(json.dumps(summary, indent=2) + "\n")
    series = metrics.write_series(out)
    # the report has its own table of layout changes: leave out the summary's
    report = write_report(out, title, {k: v for k, v in summary.items() if k != "steps"},
                          metrics)
    if not quiet:
        print(f"\nwrote {summary_path}, {series} and {report}")


def format_steps(rows: Sequence[dict[str, Any]]) -> str:
    """The per-step table: one row per layout change."""
    cols = [("step", "step", 12), ("t", "t s", 6), ("commit_ms", "commit ms", 10),
            ("marked", "marked", 8), ("free_moved", "free moved", 11), ("split", "split", 6),
            ("onlined", "onlined", 8), ("offlined", "offlined", 9),
            ("misplaced_left", "misplaced left", 15), ("moved_on_free", "moved on free", 14)]
    lines = ["".join(f"{h:>{w}}" for _k, h, w in cols)]
    for r in rows:
        cells = []
        for k, _h, w in cols:
            v = r[k]
            if isinstance(v, list):
                v = ",".join(map(str, v)) or "-"
            cells.append(f"{v:>{w}}")
        lines.append("".join(cells))
    return "\n".join(lines)


def _check_fn(enabled: bool) -> Callable[[Machine], None] | None:
    if not enabled:
        return None
    from .mm.validate import validate_all

    return validate_all


# ------------------------------------------------------------------ run / demo
def _run(args: argparse.Namespace, scenario_arg: str) -> int:
    from .sim.run import run_scenario, warm_up
    from .sim.scenario import load_scenario

    sc = load_scenario(scenario_arg)
    if args.seed is not None:
        sc = replace(sc, seed=args.seed)
    if args.debugfs:
        sc = replace(sc, events=tuple(sorted([*sc.events, *map(_debugfs_event, args.debugfs)],
                                             key=lambda e: e.at)))
    quiet = args.json
    if not quiet:
        print(f"dnuma {sc.name}: {sc.description or sc.source}", flush=True)
        print("compiling the kernels (cached after the first run)...", file=sys.stderr,
              flush=True)
    warm_up()
    from .cli_machine import scenario_machine

    machine = scenario_machine(sc)
    metrics: list[Metrics] = []
    sysroot: list[Any] = []

    def observe(m: Machine) -> list[Any]:
        obs: list[Any] = [] if args.no_report else _observers(metrics)(m)
        if args.sysroot:
            from .io.export import SysrootWriter

            sysroot.append(SysrootWriter(m, args.sysroot))
            obs.append(sysroot[-1])
        return obs

    with progress_bar(sc.duration / 1e9, f"{sc.name} (virtual time)", quiet) as prog:
        res = run_scenario(sc, observe=observe, progress=prog, check=_check_fn(args.check),
                           machine=machine)
    if args.save_snapshot:
        from .io.snapshot import save_snapshot

        save_snapshot(res.machine, args.save_snapshot)
    summary = res.summary()
    if args.json:
        json.dump(summary, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        print()
        print(format_steps(summary["steps"]))
        fin = summary["final"]
        print(f"\n{sum(t['allocs'] for t in summary['tasks'])} allocations, "
              f"{fin['moved_on_free']} pages moved on free in all, {fin['misplaced']} "
              f"misplaced at the end; {res.wall_seconds:.2f} s"
              + (" (invariants checked after every step)" if args.check else ""))
    if metrics:
        _write_outputs(Path(args.out), f"dnuma run {sc.name}", summary, metrics[0], quiet)
    if not quiet:
        for w in sysroot:
            print(f"wrote {len(w.trees)} sysfs/procfs trees under {args.sysroot}")
        if args.save_snapshot:
            print(f"saved the final state to {args.save_snapshot}")
    return 0


def _debugfs_event(spec: str) -> LayoutEvent:
    """``AT:FILE`` -> a layout event running the debugfs write script FILE."""
    from .sim.events import parse_duration
    from .sim.scenario import LayoutEvent

    at, sep, path = spec.partition(":")
    if not sep or not path:
        raise UsageError(f"--debugfs {spec!r}: expected AT:FILE, e.g. 2s:layout.txt")
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise UsageError(f"--debugfs {spec!r}: cannot read {path}: {exc.strerror}") from None
    return LayoutEvent(parse_duration(at, f"--debugfs {spec!r}: time"), "debugfs",
                       (text, path), Path(path).stem)


def _cmd_demo(args: argparse.Namespace) -> int:
    return _run(args, "demo")


def _cmd_run(args: argparse.Namespace) -> int:
    if args.list:
        from .sim.scenario import builtin_scenarios, parse_scenario

        for name, text in builtin_scenarios().items():
            print(f"{name:14s} {parse_scenario(text, name).description}")
        return 0
    if not args.scenario:
        raise UsageError("run: give a scenario file or a shipped name (see dnuma run --list)")
    return _run(args, args.scenario)


# ------------------------------------------------------------------ layout
def _layout_machine(args: argparse.Namespace) -> Machine:
    from .mm.machine import Machine, MachineConfig

    if args.scenario:
        from .cli_machine import scenario_machine
        from .sim.scenario import load_scenario

        sc = load_scenario(args.scenario)
        return scenario_machine(sc)
    return Machine(MachineConfig.uniform(nodes=args.boot_nodes, mem=args.mem, cpus=1))


def _cmd_layout(args: argparse.Namespace) -> int:
    from .mm.memlayout import MemLayout
    from .sim.scenario import parse_id_list

    m = _layout_machine(args)
    if args.action == "stripe":
        try:
            nodes = parse_id_list(args.nodes)
        except ValueError as exc:
            raise UsageError(f"--nodes: {exc}") from None
        lay = MemLayout.stripe(m.ram_ranges(), list(nodes), args.block)
    elif args.action == "push":
        lay = MemLayout.push(m.ram_ranges(), args.node)
    else:
        lay = m.layout
    from .mm.dnuma import validate_layout_for

    validate_layout_for(m, lay)
    if args.format == "script":
        from .mm.memlayout_debugfs import format_script

        sys.stdout.write(format_script(lay))
    elif args.format == "toml":
        print("ranges = { " + ", ".join(f'"{n}" = {nid}' for n, nid in lay.debugfs_names())
              + " }")
    else:
        for name, nid in lay.debugfs_names():
            print(f"{name} -> {nid}")
    return 0


# ------------------------------------------------------------------ replay
def _cmd_replay(args: argparse.Namespace) -> int:
    from .sim.events import parse_duration
    from .sim.replay import parse_event_spec, replay_trace

    events = [parse_event_spec(s) for s in args.event]
    config = None
    machine = None
    if args.scenario:
        from .cli_machine import scenario_machine
        from .sim.scenario import load_scenario

        sc = load_scenario(args.scenario)
        config = sc.machine
        machine = scenario_machine(sc)
        events = list(sc.events) + events
    quiet = args.json
    metrics: list[Metrics] = []
    t0 = time.perf_counter()
    with progress_bar(1.0, f"replay {Path(args.trace).name}", quiet, unit="") as prog:
        res = replay_trace(args.trace, config, events, parse_duration(args.sample, "--sample"),
                           observe=None if args.no_report else _observers(metrics),
                           progress=prog, check=_check_fn(args.check), nodes=args.nodes,
                           machine=machine)
    summary = res.summary()
    if args.json:
        json.dump(summary, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        ev = res.stats.events
        print(f"replayed {sum(ev.values())} events over {res.span_s:.3f} s of trace time in "
              f"{time.perf_counter() - t0:.2f} s: " + ", ".join(f"{v} {k}" for k, v in
                                                                  ev.items()))
        print("replayed: " + ", ".join(f"{k} {v}" for k, v in res.counts.items()))
        print("anomalies: " + ", ".join(f"{k} {v}" for k, v in res.anomalies.items())
              + f", malformed lines {res.stats.malformed}")
        if res.steps:
            print()
            print(format_steps(summary["steps"]))
        for s in res.skipped_events:
            print(f"skipped: {s}")
    if metrics:
        _write_outputs(Path(args.out), f"dnuma replay {Path(args.trace).name}", summary,
                       metrics[0], quiet)
    return 0


# ------------------------------------------------------------------ parser
def _add_run_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", default="dnuma-out", metavar="DIR",
                   help="output folder: summary.json, metrics.csv, report.html "
                        "(default ./dnuma-out)")
    p.add_argument("--no-report", action="store_true",
                   help="no metrics or output folder (fastest)")
    p.add_argument("--json", action="store_true",
                   help="print the summary as JSON on stdout instead of the table")
    p.add_argument("--check", action="store_true",
                   help="validate every invariant after every layout event and at the end")


def _add_scenario_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--seed", type=int, default=None, help="override the scenario's seed")
    p.add_argument("--sysroot", metavar="DIR",
                   help="after every layout event write DIR/NN-EVENT/ and at the end "
                        "DIR/final/: the model's /sys/devices/system, /proc and memlayout "
                        "debugfs files, for lsmem --sysroot, lscpu --sysroot, lstopo -i")
    p.add_argument("--save-snapshot", metavar="FILE",
                   help="save the final model state (dnuma snapshot load FILE)")
    p.add_argument("--debugfs", action="append", default=[], metavar="AT:FILE",
                   help="at virtual time AT, write the memlayout debugfs script FILE "
                        "(lines 'start N', 'end N', 'node N', 'commit', 'clear', or the "
                        "shell's 'echo N > .../memlayout/FILE'); repeatable")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="dnuma",
        description="Dynamic NUMA: a model of the Linux NUMA page allocator whose "
                    "pfn->node map changes at runtime.")
    p.add_argument("--version", action="version", version=f"dnuma {__version__}")
    p.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = p.add_subparsers(dest="cmd", metavar="COMMAND")

    d = sub.add_parser("demo", help="the RFC's experiment: 128 MiB, 2 nodes, 8 CPUs under "
                                    "churn; stripe, push to a new node, back to boot",
                       description="Run the shipped 'demo' scenario (see dnuma run --list), "
                                   "print a table per layout step and write the output "
                                   "folder.")
    _add_run_options(d)
    _add_scenario_options(d)
    d.set_defaults(func=_cmd_demo)

    r = sub.add_parser("run", help="run a scenario file (TOML) or a shipped scenario",
                       description="Run a scenario: its machine, tasks and timeline of "
                                   "layout events in virtual time.")
    r.add_argument("scenario", nargs="?", help="a .toml file or a shipped name")
    r.add_argument("--list", action="store_true", help="list the shipped scenarios")
    _add_run_options(r)
    _add_scenario_options(r)
    r.set_defaults(func=_cmd_run)

    lay = sub.add_parser("layout", help="print the layouts the RFC's test script made",
                         description="Print a layout as the RFC's debugfs names its range "
                                     "files (XXXXX-YYYYY -> nid), as a debugfs write script "
                                     "or as a scenario 'ranges' table.")
    lay.add_argument("action", choices=["stripe", "push", "show"])
    lay.add_argument("--nodes", default="0,1", help="stripe: nodes, e.g. 0,1,2 or 0-3")
    lay.add_argument("--block", type=int, default=256, help="stripe: block size in pfns")
    lay.add_argument("--node", type=int, default=0, help="push: the node to push to")
    lay.add_argument("--mem", default="128M", help="machine memory (default 128M)")
    lay.add_argument("--boot-nodes", type=int, default=2,
                     help="nodes of the machine at boot (default 2)")
    lay.add_argument("--scenario", help="take the machine from a scenario instead")
    lay.add_argument("--format", choices=["names", "script", "toml"], default="names")
    lay.set_defaults(func=_cmd_layout)

    rp = sub.add_parser("replay", help="replay a real ftrace kmem capture onto a model machine",
                        description="Replay kmem:mm_page_alloc/mm_page_free/"
                                    "mm_page_free_batched/mm_page_pcpu_drain from a tracefs "
                                    "'trace' or 'trace_pipe' text file (plain, .gz, .xz), "
                                    "with layout events at trace times.")
    rp.add_argument("trace")
    rp.add_argument("--event", action="append", default=[], metavar="AT:ACTION[:ARGS]",
                    help="a layout event at AT seconds after the first trace event: "
                         "0.5:stripe:0,1:256, 1s:push:1, 2s:boot, 1:ranges:0-7FFF=1 "
                         "(repeatable)")
    rp.add_argument("--scenario", help="machine and layout events from a scenario file")
    rp.add_argument("--nodes", type=int, default=1,
                    help="nodes of the default machine (covers the trace's pfns; default 1)")
    rp.add_argument("--sample", default="100ms", help="sampling interval in trace time")
    _add_run_options(rp)
    rp.set_defaults(func=_cmd_replay)

    from .cli_bench import add_parsers as add_bench
    from .cli_machine import add_parsers

    add_parsers(sub)
    add_bench(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse: usage errors exit 2, --help/--version 0
        return int(exc.code or 0)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args))
    except BrokenPipeError:  # e.g. `dnuma run demo --json | head`
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        print("dnuma: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # one clear line unless --debug
        from .mm.errors import DnumaError

        if args.debug:
            raise
        if isinstance(exc, DnumaError | UsageError):
            print(f"dnuma: error: {exc}", file=sys.stderr)
            return 2
        raise


if __name__ == "__main__":
    sys.exit(main())
