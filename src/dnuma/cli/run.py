"""``dnuma demo``, ``dnuma run`` and ``dnuma replay``: a scenario or a real
kmem trace played onto a model machine, with its table and output folder."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from .common import (
    UsageError,
    check_file_target,
    check_fn,
    format_hotplug,
    format_migration,
    format_policies,
    format_steps,
    format_versus,
    observers,
    output_dirs,
    print_json,
    progress_bar,
    write_outputs,
)

if TYPE_CHECKING:
    from ..mm.machine import Machine
    from ..report.metrics import Metrics
    from ..sim.scenario import LayoutEvent, Scenario


# ------------------------------------------------------------------ run / demo
def _run(args: argparse.Namespace, scenario_arg: str) -> int:
    from ..sim.scenario import load_scenario

    out = report_dir(args)
    sc = load_scenario(scenario_arg)
    if args.seed is not None:
        sc = replace(sc, seed=args.seed)
    if args.debugfs:
        extra = [_debugfs_event(spec) for spec in args.debugfs]
        for spec, ev in zip(args.debugfs, extra, strict=True):
            if ev.at > sc.duration:
                raise UsageError(f"--debugfs {spec}: {ev.at / 1e9:g} s is after the end of "
                                 f"the run ({sc.duration / 1e9:g} s)")
        sc = replace(sc, events=tuple(sorted([*sc.events, *extra], key=lambda e: e.at)))
    if args.save_snapshot:
        check_file_target(args.save_snapshot, "--save-snapshot")
    with output_dirs(out=out, sysroot=args.sysroot):
        return _run_scenario(args, sc)


def _run_scenario(args: argparse.Namespace, sc: Scenario) -> int:
    from ..mm.errors import ConfigError
    from ..sim.run import run_scenario, warm_up
    from ..sim.scenario import HOTPLUG_ACTIONS
    from .machine import scenario_machine

    quiet = args.json
    if not quiet:
        print(f"dnuma {sc.name}: {sc.description or sc.source}", flush=True)
    warm_up(hotplug=sc.versus is not None
            or any(e.action in HOTPLUG_ACTIONS for e in sc.events))
    policies = _policies(args.migrate)
    if sc.versus is not None:
        if policies:
            raise UsageError(f"--migrate: not with a [versus] scenario ({sc.name} runs twice)")
        return _run_versus(args, sc)
    if len(policies) > 1:
        return _run_policies(args, sc, policies)
    try:
        machine = scenario_machine(sc)
    except ConfigError as exc:
        raise ConfigError(f"{sc.source}: machine: {exc}") from None
    metrics: list[Metrics] = []
    sysroot: list[Any] = []
    streams: list[Any] = []
    if args.events and args.json:
        raise UsageError("--events: prints the uevents on stdout, which --json holds; give "
                         "--events-file FILE for JSON lines")
    jsonl = _open_events_file(args.events_file)

    def observe(m: Machine) -> list[Any]:
        obs: list[Any] = [] if args.no_report else observers(metrics)(m)
        if args.sysroot:
            from ..io.export import SysrootWriter

            sysroot.append(SysrootWriter(m, args.sysroot))
            obs.append(sysroot[-1])
        if args.events or jsonl is not None:
            from ..io.uevent import UeventStream

            streams.append(UeventStream(m, jsonl=jsonl, text=sys.stdout if args.events
                                        else None, coalesce=args.coalesce))
            obs.append(streams[-1])
        return obs

    with progress_bar(sc.duration / 1e9, f"{sc.name} (virtual time)", quiet) as prog:
        res = run_scenario(sc, observe=observe, progress=prog, check=check_fn(args.check),
                           machine=machine, migration=policies[0] if policies else None)
    if args.save_snapshot:
        from ..io.snapshot import save_snapshot

        save_snapshot(res.machine, args.save_snapshot)
    summary = res.summary()
    if jsonl is not None:
        jsonl.close()
    if streams:
        summary["uevents"] = streams[0].counts
    if args.json:
        print_json(summary)
    else:
        if summary["steps"]:
            print()
            print(format_steps(summary["steps"]))
        if summary["hotplug"]:
            print()
            print(format_hotplug(summary["hotplug"]))
        if res.policy.policy != "lazy":
            print(f"\nmigration: {res.policy.label()}")
            print(format_migration(summary["migration"]["commits"]))
        if streams:
            n = sum(c["uevents"] for c in streams[0].counts)
            print(f"\n{n} uevents ({streams[0].delivered} delivered"
                  + (", memory blocks coalesced" if args.coalesce else "") + "): "
                  + ", ".join(f"{c['event']} {c['uevents']}" for c in streams[0].counts))
        fin = summary["final"]
        print(f"\n{sum(t['allocs'] for t in summary['tasks'])} allocations, "
              f"{fin['moved_on_free']} pages moved on free in all, {fin['misplaced']} "
              f"misplaced at the end; {res.wall_seconds:.2f} s"
              + (" (invariants checked after every step)" if args.check else ""))
    if metrics:
        write_outputs(Path(args.out), f"dnuma run {sc.name}", summary, metrics[0], quiet)
    if not quiet:
        for w in sysroot:
            print(f"wrote {len(w.trees)} sysfs/procfs trees under {args.sysroot}")
        if args.save_snapshot:
            print(f"saved the final state to {args.save_snapshot}")
    return 0


def _arm_runs(args: argparse.Namespace, sc: Scenario, why: str) -> tuple[
        Callable[[], Machine], dict[str, Metrics], Callable[[str, Machine], list[Any]]]:
    """What a scenario run several times (a versus's arms, --migrate's
    policies) needs: the one-run options refused (``why``: how it runs), a
    fresh machine per run, and observers per arm whose Metrics land in the
    returned dict (none with --no-report)."""
    from ..mm.errors import ConfigError
    from .machine import scenario_machine

    for flag, val in (("--sysroot", args.sysroot), ("--save-snapshot", args.save_snapshot),
                      ("--events", args.events), ("--events-file", args.events_file)):
        if val:
            raise UsageError(f"{flag}: not with {why}")

    def machine() -> Machine:
        try:
            return scenario_machine(sc)
        except ConfigError as exc:
            raise ConfigError(f"{sc.source}: machine: {exc}") from None

    metrics: dict[str, Metrics] = {}

    def observe(arm: str, m: Machine) -> list[Any]:
        if args.no_report:
            return []
        got: list[Metrics] = []
        obs = observers(got)(m)
        metrics[arm] = got[0]
        return obs

    return machine, metrics, observe


def _write_arms(args: argparse.Namespace, sc: Scenario, metrics: dict[str, Metrics],
                summaries: dict[str, Any], summary: dict[str, Any], figure: str,
                png: Callable[[], bytes]) -> None:
    """The output folder of a scenario run several times: each arm's report
    in a subfolder named after it, ``figure`` (made by ``png``) and
    summary.json; nothing with --no-report."""
    if not metrics:
        return
    out = Path(args.out)
    for arm, mt in metrics.items():
        write_outputs(out / arm.replace(" ", "-").replace("/", "_"),
                      f"dnuma run {sc.name}: {arm}", summaries[arm], mt, args.json)
    (out / figure).write_bytes(png())
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    if not args.json:
        print(f"wrote {out / 'summary.json'} and {out / figure}")


def _run_versus(args: argparse.Namespace, sc: Scenario) -> int:
    """A ``[versus]`` scenario: both arms, the side-by-side table, and the
    output folder (summary.json, versus.png, each arm's report in a
    subfolder)."""
    from ..report.plots import versus_png
    from ..sim.versus import run_versus

    machine, metrics, observe = _arm_runs(args, sc, f"a [versus] scenario ({sc.name} runs "
                                                    f"twice)")
    dur = sc.duration / 1e9
    with progress_bar(2 * dur, f"{sc.name}: dnuma, then hotplug (virtual time)",
                      args.json) as prog:
        res = run_versus(sc, machine, observe=observe,
                         progress=lambda arm, t: prog(t + (dur if arm == "hotplug" else 0.0)),
                         check=check_fn(args.check))
    summary = res.summary()
    if args.json:
        print_json(summary)
    else:
        print()
        print(format_versus(res.rows()))
        hot = summary["arms"]["hotplug"]["hotplug"]
        if hot:
            print()
            print(format_hotplug(hot))
    v = sc.versus
    assert v is not None
    _write_arms(args, sc, metrics, summary["arms"], summary, "versus.png",
                lambda: versus_png(metrics, v.from_nid, v.to_nid, v.at / 1e9))
    return 0


def _policies(spec: str | None) -> list[Any]:
    """--migrate POLICY[,POLICY...]: the migration policies, in order."""
    from ..sim.migration import parse_policy

    if spec is None:
        return []
    return [parse_policy(part.strip(), "--migrate") for part in spec.split(",")]


def _run_policies(args: argparse.Namespace, sc: Scenario, policies: list[Any]) -> int:
    """``--migrate`` with several policies: the scenario once per policy, the
    side-by-side table, and the output folder (summary.json, migration.png,
    each policy's report in a subfolder)."""
    from ..report.plots import policies_png
    from ..sim.policies import run_policies

    machine, metrics, observe = _arm_runs(args, sc, f"several --migrate policies ({sc.name} "
                                                    f"runs {len(policies)} times)")
    dur = sc.duration / 1e9
    labels = [p.label() for p in policies]
    with progress_bar(len(policies) * dur, f"{sc.name}: {', '.join(labels)} (virtual time)",
                      args.json) as prog:
        res = run_policies(sc, policies, machine, observe=observe,
                           progress=lambda label, t: prog(t + dur * labels.index(label)),
                           check=check_fn(args.check))
    summary = res.summary()
    if args.json:
        print_json(summary)
    else:
        print()
        print(format_policies(res.rows(), labels))
    commits = [(r.t, r.step) for r in next(iter(res.runs.values())).migration]
    _write_arms(args, sc, metrics, summary["runs"], summary, "migration.png",
                lambda: policies_png(metrics, commits))
    return 0


def _open_events_file(path: str | None) -> IO[str] | None:
    """--events-file: a new JSON-lines file (refused if it cannot be written)."""
    if path is None:
        return None
    check_file_target(path, "--events-file")
    try:
        return open(path, "w")  # closed after the run
    except OSError as exc:
        raise UsageError(f"--events-file {path}: cannot write: {exc.strerror}") from None


def _debugfs_event(spec: str) -> LayoutEvent:
    """``AT:FILE`` -> a layout event running the debugfs write script FILE."""
    from ..sim.events import parse_duration
    from ..sim.scenario import LayoutEvent

    at, sep, path = spec.partition(":")
    if not sep or not path:
        raise UsageError(f"--debugfs {spec!r}: expected AT:FILE, e.g. 2s:layout.txt")
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise UsageError(f"--debugfs {spec!r}: cannot read {path}: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise UsageError(f"--debugfs {spec!r}: {path}: not UTF-8 text (byte {exc.start})") \
            from None
    return LayoutEvent(parse_duration(at, f"--debugfs {spec!r}: time"), "debugfs",
                       (text, path), Path(path).stem)


def _cmd_demo(args: argparse.Namespace) -> int:
    return _run(args, "demo")


def _cmd_run(args: argparse.Namespace) -> int:
    if args.list and args.scenario:
        raise UsageError(f"run: --list takes no scenario (got {args.scenario!r})")
    if args.list:
        from ..sim.scenario import builtin_scenarios, parse_scenario

        for name, text in builtin_scenarios().items():
            print(f"{name:14s} {parse_scenario(text, name).description}")
        return 0
    if not args.scenario:
        raise UsageError("run: give a scenario file or a shipped name (see dnuma run --list)")
    return _run(args, args.scenario)


# ------------------------------------------------------------------ replay
def _cmd_replay(args: argparse.Namespace) -> int:
    from ..mm.constants import DEFAULT_MAX_NUMNODES
    from ..sim.replay import parse_event_spec, parse_trace_time, replay_trace

    if not 1 <= args.nodes <= DEFAULT_MAX_NUMNODES:
        raise UsageError(f"--nodes {args.nodes}: must be in [1, {DEFAULT_MAX_NUMNODES}] "
                         "(MAX_NUMNODES)")
    sample = None if args.sample is None else parse_trace_time(args.sample, "--sample")
    if sample == 0:
        raise UsageError(f"--sample {args.sample!r}: must be > 0")
    events = [parse_event_spec(s) for s in args.event]
    labels = [f"--event {s!r}" for s in args.event]
    config = None
    machine = None
    if args.scenario:
        from ..sim.scenario import load_scenario
        from .machine import scenario_machine

        sc = load_scenario(args.scenario)
        config = sc.machine
        machine = scenario_machine(sc)
        events = list(sc.events) + events
        labels = [f"{args.scenario}: event[{i}]" for i in range(len(sc.events))] + labels
    with output_dirs(out=report_dir(args)):
        quiet = args.json
        metrics: list[Metrics] = []
        t0 = time.perf_counter()
        with progress_bar(1.0, f"replay {Path(args.trace).name}", quiet, unit="") as prog:
            res = replay_trace(args.trace, config, events, sample,
                               observe=None if args.no_report else observers(metrics),
                               progress=prog, check=check_fn(args.check), nodes=args.nodes,
                               machine=machine, event_labels=labels)
        summary = res.summary()
        if args.json:
            print_json(summary)
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
            write_outputs(Path(args.out), f"dnuma replay {Path(args.trace).name}", summary,
                          metrics[0], quiet)
    return 0


# ------------------------------------------------------------------ parsers
OUT_DEFAULT = "dnuma-out"


def report_dir(args: argparse.Namespace) -> str | None:
    """The output folder a run will write (None with --no-report); --out
    given with --no-report is refused, not ignored."""
    if args.no_report:
        if args.out != OUT_DEFAULT:
            raise UsageError(f"--out {args.out}: not allowed with --no-report (which writes "
                             "no output folder)")
        return None
    return str(args.out)


def seed(text: str) -> int:
    """--seed: an integer in [0, 2**64)."""
    try:
        v = int(text, 0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if not 0 <= v < 2**64:
        raise argparse.ArgumentTypeError(f"{v} is not in [0, 2**64)")
    return v


def _add_run_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", default=OUT_DEFAULT, metavar="DIR",
                   help="output folder: summary.json, metrics.csv, report.html "
                        "(default ./dnuma-out)")
    p.add_argument("--no-report", action="store_true",
                   help="no metrics or output folder (fastest)")
    p.add_argument("--json", action="store_true",
                   help="print the summary as JSON on stdout instead of the table")
    p.add_argument("--check", action="store_true",
                   help="validate every invariant after every layout event and at the end")


def _add_scenario_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--seed", type=seed, default=None, help="override the scenario's seed")
    p.add_argument("--sysroot", metavar="DIR",
                   help="after every layout event write DIR/NN-EVENT/ and at the end "
                        "DIR/final/: the model's /sys/devices/system, /proc and memlayout "
                        "debugfs files, for lsmem --sysroot, lscpu --sysroot, lstopo -i")
    p.add_argument("--save-snapshot", metavar="FILE",
                   help="save the final model state (dnuma snapshot load FILE)")
    p.add_argument("--events", action="store_true",
                   help="print the uevents (node, memory block, CPU, and a 'change' for "
                        "every layout commit) as udevadm monitor --kernel --property does")
    p.add_argument("--events-file", metavar="FILE",
                   help="write the uevents to FILE, one JSON object a line")
    p.add_argument("--coalesce", action="store_true",
                   help="with --events/--events-file: one uevent for each run of one action "
                        "on consecutive memory blocks (COUNT=, LAST=)")
    p.add_argument("--migrate", metavar="POLICY[,POLICY...]",
                   help="migration after each commit: lazy (the RFC: pages move when freed), "
                        "eager (movable pages migrated at once), background[:PAGES_PER_S] "
                        "(rate-limited); several: the run once per policy, side by side")
    p.add_argument("--debugfs", action="append", default=[], metavar="AT:FILE",
                   help="at virtual time AT, write the memlayout debugfs script FILE "
                        "(lines 'start N', 'end N', 'node N', 'commit', 'clear', or the "
                        "shell's 'echo N > .../memlayout/FILE'); repeatable")


def add_run_parsers(sub: Any) -> None:
    """Register ``demo`` and ``run`` on the main parser's subparsers."""
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


def add_replay_parser(sub: Any) -> None:
    """Register ``replay`` on the main parser's subparsers."""
    rp = sub.add_parser("replay", help="replay a real ftrace kmem capture onto a model machine",
                        description="Replay kmem:mm_page_alloc/mm_page_free/"
                                    "mm_page_free_batched/mm_page_pcpu_drain from a tracefs "
                                    "'trace' or 'trace_pipe' text file (plain, .gz, .xz), "
                                    "with layout events at trace times.")
    rp.add_argument("trace", help="the trace file, or - for stdin (a pipe or a FIFO is read "
                                  "once)")
    rp.add_argument("--event", action="append", default=[], metavar="AT:ACTION[:ARGS]",
                    help="a layout event at AT seconds after the first trace event: "
                         "0.5:stripe:0,1:256, 1s:push:1, 2s:boot, 1:ranges:0-7FFF=1 "
                         "(repeatable)")
    rp.add_argument("--scenario", help="machine and layout events from a scenario file")
    rp.add_argument("--nodes", type=int, default=1,
                    help="nodes of the default machine (covers the trace's pfns; default 1)")
    rp.add_argument("--sample", default=None,
                    help="sampling interval in trace time (default 100ms, wider on a trace "
                         "long enough for more than 20000 samples)")
    _add_run_options(rp)
    rp.set_defaults(func=_cmd_replay)
