"""The ``dnuma boot`` and ``dnuma snapshot`` commands, and how a run gets its
machine: a scenario's own, one booted from a host tree, or a snapshot."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .io.host import ImportResult
    from .mm.machine import Machine
    from .sim.scenario import Scenario


def machine_from(source: str, kpageflags: bool = True) -> tuple[Machine, list[str]]:
    """``host``, a folder of /proc and /sys files, or a snapshot file ->
    (machine, notes on how it was made)."""
    p = Path(source)
    if source != "host" and p.is_file():
        from .io.snapshot import load_snapshot

        return load_snapshot(p), [f"loaded snapshot {p}"]
    from .io.host import boot_from_host

    res = boot_from_host("/" if source == "host" else p, kpageflags=kpageflags)
    return res.machine, [f"booted from {res.facts.source}", *res.notes]


def scenario_machine(sc: Scenario) -> Machine:
    """The machine a scenario runs on: booted from its own description, or
    from ``machine.from`` (a host, a folder, a snapshot)."""
    if sc.machine_from is None:
        from .mm.machine import Machine

        assert sc.machine is not None
        return Machine(sc.machine)
    return machine_from(sc.machine_from)[0]


def format_zones(rows: list[dict[str, Any]]) -> str:
    """The host-vs-model table of :func:`dnuma.io.host.compare_zones`."""
    keys = ("start_pfn", "spanned", "present", "managed", "free")
    out = [f"{'node':>4} {'zone':>7} " + " ".join(f"{k + ' host':>14} {'model':>9}" for k in keys)]
    for r in rows:
        out.append(f"{r['node']:>4} {r['zone']:>7} " + " ".join(
            f"{r[k]['host']:>14} {r[k]['model']:>9}" for k in keys))
    for r in rows:
        if "nr_free" in r:
            out.append(f"free blocks by order, node {r['node']} {r['zone']}:")
            out.append(f"  host  {' '.join(f'{x:>6}' for x in r['nr_free']['host'])}")
            out.append(f"  model {' '.join(f'{x:>6}' for x in r['nr_free']['model'])}")
    return "\n".join(out)


def _import(args: argparse.Namespace) -> ImportResult:
    from .io.host import boot_from_host

    if not (args.from_host or args.source):
        from .cli import UsageError

        raise UsageError("boot: give --from-host or --from DIR")
    return boot_from_host("/" if args.from_host else args.source,
                          kpageflags=not args.no_kpageflags)


def _after_boot(m: Machine, args: argparse.Namespace, quiet: bool) -> dict[str, str]:
    """--save and --sysroot, shared by boot and snapshot load."""
    done: dict[str, str] = {}
    if getattr(args, "save", None):
        from .io.snapshot import save_snapshot

        done["snapshot"] = str(save_snapshot(m, args.save))
    if getattr(args, "sysroot", None):
        from .io.export import write_sysroot

        done["sysroot"] = str(write_sysroot(m, args.sysroot))
    if not quiet:
        for k, v in done.items():
            print(f"wrote {k} {v}")
    return done


def _cmd_boot(args: argparse.Namespace) -> int:
    t0 = time.perf_counter()
    res = _import(args)
    secs = time.perf_counter() - t0
    m = res.machine
    if args.check:
        from .mm.validate import validate_all

        validate_all(m)
    summary = {**res.summary(), "seconds": round(secs, 3), "machine": machine_facts(m)}
    if args.json:
        summary["outputs"] = _after_boot(m, args, True)
        json.dump(summary, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    f = summary["machine"]
    print(f"booted {f['pfns']} pfns, {len(f['nodes'])} node(s), {f['cpus']} CPU(s) from "
          f"{res.facts.source} in {secs:.2f} s"
          + ("" if res.facts.kpageflags is not None else " (no kpageflags)"))
    print(format_zones(res.zones))
    for n in res.notes:
        print(f"note: {n}")
    _after_boot(m, args, False)
    return 0


def machine_facts(m: Machine) -> dict[str, Any]:
    """A short JSON-able description of a machine's state (pages)."""
    nodes = {}
    for nid in m.for_each_online_node():
        pg = m.NODE_DATA(nid)
        nodes[str(nid)] = {"present": pg.node_present_pages, "managed": pg.node_managed_pages,
                           "free": pg.nr_free_pages}
    return {"pfns": m.max_pfn, "cpus": m.nr_cpus, "seq": m.seq, "nodes": nodes,
            "present": m.total_present_pages, "free": m.nr_free_pages(),
            "allocated": int(m.allocated_mask().sum()), "misplaced": m.misplaced_pages()}


def _cmd_snapshot(args: argparse.Namespace) -> int:
    from .cli import UsageError
    from .io.snapshot import load_snapshot, read_snapshot_meta, save_snapshot

    allowed = {"save": {"from_host", "source", "no_kpageflags", "scenario", "json"},
               "load": {"sysroot", "check", "json"}, "info": set()}[args.action]
    given = {k for k in ("from_host", "source", "no_kpageflags", "scenario", "sysroot",
                         "check", "json") if getattr(args, k)}
    if given - allowed:
        flags = ", ".join("--" + k.replace("_", "-").replace("source", "from")
                          for k in sorted(given - allowed))
        raise UsageError(f"snapshot {args.action}: {flags} not used here")

    if args.action == "info":
        json.dump(read_snapshot_meta(args.file), sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    if args.action == "save":
        t0 = time.perf_counter()
        if args.from_host or args.source:
            m = _import(args).machine
        elif args.scenario:
            from .sim.scenario import load_scenario

            sc = load_scenario(args.scenario)
            m = scenario_machine(sc)
        else:
            raise UsageError("snapshot save: give --from-host, --from DIR or --scenario S")
        path = save_snapshot(m, args.file)
        out = {"file": str(path), "bytes": path.stat().st_size,
               "seconds": round(time.perf_counter() - t0, 3), "machine": machine_facts(m)}
        if args.json:
            json.dump(out, sys.stdout, indent=2)
            sys.stdout.write("\n")
        else:
            print(f"saved {path} ({out['bytes']} bytes) in {out['seconds']} s")
        return 0
    t0 = time.perf_counter()
    m = load_snapshot(args.file)
    secs = time.perf_counter() - t0
    if args.check:
        from .mm.validate import validate_all

        validate_all(m)
    facts = machine_facts(m)
    if args.json:
        json.dump({"file": args.file, "seconds": round(secs, 3), "machine": facts,
                   "outputs": _after_boot(m, args, True)}, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    print(f"loaded {args.file} in {secs:.2f} s: {facts['pfns']} pfns, layout seq "
          f"{facts['seq']}, {facts['free']} free, {facts['allocated']} allocated, "
          f"{facts['misplaced']} misplaced" + (" (invariants hold)" if args.check else ""))
    for nid, n in facts["nodes"].items():
        print(f"  node {nid}: present {n['present']}, managed {n['managed']}, "
              f"free {n['free']}")
    _after_boot(m, args, False)
    return 0


def _add_source(p: argparse.ArgumentParser) -> None:
    p.add_argument("--from-host", action="store_true",
                   help="read this machine's /proc and /sys (kpageflags needs root)")
    p.add_argument("--from", dest="source", metavar="DIR",
                   help="a folder of the same files (proc/NAME or NAME, sys/devices/system)")
    p.add_argument("--no-kpageflags", action="store_true",
                   help="ignore kpageflags: free counts from buddyinfo only")


def add_parsers(sub: Any) -> None:
    """Register ``boot`` and ``snapshot`` on the main parser's subparsers."""
    b = sub.add_parser("boot", help="boot a model from a real machine (or a saved folder)",
                       description="Boot a model from /proc and /sys: nodes, CPUs, "
                                   "distances, RAM, zones and, with kpageflags, the state of "
                                   "every pfn; print the host's zones beside the model's.")
    _add_source(b)
    b.add_argument("--save", metavar="FILE", help="save the booted model as a snapshot")
    b.add_argument("--sysroot", metavar="DIR", help="export the model's /sys and /proc tree")
    b.add_argument("--json", action="store_true", help="print a JSON summary")
    b.add_argument("--check", action="store_true", help="validate every invariant")
    b.set_defaults(func=_cmd_boot)

    s = sub.add_parser("snapshot", help="save, load or describe a model snapshot file",
                       description="One file holds the whole model state (arrays plus "
                                   "JSON metadata, versioned and checksummed).")
    s.add_argument("action", choices=["save", "load", "info"])
    s.add_argument("file")
    _add_source(s)
    s.add_argument("--scenario", help="save: the machine of a scenario, as booted")
    s.add_argument("--sysroot", metavar="DIR", help="load: export the /sys and /proc tree")
    s.add_argument("--json", action="store_true", help="print JSON")
    s.add_argument("--check", action="store_true", help="load: validate every invariant")
    s.set_defaults(func=_cmd_snapshot)
