"""``dnuma snapshot save|load|info``: one file holding the whole model state."""

from __future__ import annotations

import argparse
import time
from typing import Any

from .common import print_json
from .machine import (
    add_export_options,
    add_sources,
    check_outputs,
    host_import,
    model_facts,
    scenario_machine,
    write_exports,
)


def _cmd_save(args: argparse.Namespace) -> int:
    from ..io.snapshot import check_save_target, save_snapshot

    t0 = time.perf_counter()
    check_save_target(args.file)  # before the (slow) machine is built
    if args.scenario:
        from ..sim.scenario import load_scenario

        m = scenario_machine(load_scenario(args.scenario))
    else:
        m = host_import(args).machine
    path = save_snapshot(m, args.file)
    out = {"file": str(path), "bytes": path.stat().st_size,
           "seconds": round(time.perf_counter() - t0, 3), "machine": model_facts(m)}
    if args.json:
        print_json(out)
    else:
        print(f"saved {path} ({out['bytes']} bytes) in {out['seconds']} s")
    return 0


def _cmd_load(args: argparse.Namespace) -> int:
    from ..io.snapshot import load_snapshot

    t0 = time.perf_counter()
    check_outputs(args)
    m = load_snapshot(args.file)
    secs = time.perf_counter() - t0
    if args.check:
        from ..mm.validate import validate_all

        validate_all(m)
    facts = model_facts(m)
    if args.json:
        print_json({"file": args.file, "seconds": round(secs, 3), "machine": facts,
                    "outputs": write_exports(m, args, True)})
        return 0
    print(f"loaded {args.file} in {secs:.2f} s: {facts['pfns']} pfns, layout seq "
          f"{facts['seq']}" + (" (invariants hold)" if args.check else ""))
    print(f"  pages: {facts['free']} free (buddy), {facts['pcp']} on pcp lists, "
          f"{facts['free_incl_pcp']} free incl. pcp, {facts['allocated']} allocated, "
          f"{facts['misplaced']} misplaced")
    for nid, n in facts["nodes"].items():
        print(f"  node {nid}: present {n['present']}, managed {n['managed']}, "
              f"free (buddy) {n['free']}")
    write_exports(m, args, False)
    return 0


def _cmd_info(args: argparse.Namespace) -> int:
    from ..io.snapshot import read_snapshot_meta

    print_json(read_snapshot_meta(args.file))
    return 0


def add_parser(sub: Any) -> None:
    """Register ``snapshot`` and its actions on the main parser's subparsers."""
    s = sub.add_parser("snapshot", help="save, load or describe a model snapshot file",
                       description="One file holds the whole model state (arrays plus "
                                   "JSON metadata, versioned and checksummed).")
    acts = s.add_subparsers(dest="action", metavar="ACTION", required=True)
    sv = acts.add_parser("save", help="save a machine booted from a host, a folder or a "
                                      "scenario", description="Boot a machine and save it.")
    sv.add_argument("file", metavar="FILE")
    add_sources(sv, scenario="the machine of a scenario, as booted")
    sv.add_argument("--json", action="store_true", help="print JSON")
    sv.set_defaults(func=_cmd_save)
    ld = acts.add_parser("load", help="load a snapshot, check it, export its tree",
                         description="Load a snapshot and print the model's facts.")
    ld.add_argument("file", metavar="FILE")
    add_export_options(ld)
    ld.set_defaults(func=_cmd_load)
    nf = acts.add_parser("info", help="the snapshot's metadata (JSON), without loading it",
                         description="Print the snapshot's metadata as JSON.")
    nf.add_argument("file", metavar="FILE")
    nf.add_argument("--json", action="store_true", help="accepted: the output is JSON")
    nf.set_defaults(func=_cmd_info)
