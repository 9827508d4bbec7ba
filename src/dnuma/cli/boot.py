"""``dnuma boot``: a model booted from a real machine's /proc and /sys (or a
saved folder of them), its zones printed beside the host's."""

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
    write_exports,
)


def format_zones(rows: list[dict[str, Any]]) -> str:
    """The host-vs-model table of :func:`dnuma.io.host.compare_zones`: two
    header lines, the zoneinfo field over its host and model columns (pages;
    ``pages free`` is NR_FREE_PAGES, the buddy lists only)."""
    keys = ("start_pfn", "spanned", "present", "managed", "free")
    heads = ("start_pfn", "spanned", "present", "managed", "pages free")
    w = max(9, *(len(str(r[k][side])) for r in rows for k in keys for side in ("host", "model")))
    cell = 2 * w + 1
    out = [(" " * 13 + "".join(f"  {h:^{cell}}" for h in heads)).rstrip(),
           f"{'node':>4} {'zone':>7} " + "".join(f"  {'host':>{w}} {'model':>{w}}" for _ in keys)]
    for r in rows:
        out.append(f"{r['node']:>4} {r['zone']:>7} " + "".join(
            f"  {r[k]['host']:>{w}} {r[k]['model']:>{w}}" for k in keys))
    for r in rows:
        if "nr_free" in r:
            out.append(f"free blocks by order, node {r['node']} {r['zone']}:")
            out.append(f"  host  {' '.join(f'{x:>6}' for x in r['nr_free']['host'])}")
            out.append(f"  model {' '.join(f'{x:>6}' for x in r['nr_free']['model'])}")
    return "\n".join(out)


def _cmd_boot(args: argparse.Namespace) -> int:
    t0 = time.perf_counter()
    check_outputs(args)  # before the (slow) import
    res = host_import(args)
    secs = time.perf_counter() - t0
    m = res.machine
    if args.check:
        from ..mm.validate import validate_all

        validate_all(m)
    summary = {**res.summary(), "seconds": round(secs, 3), "machine": model_facts(m)}
    if args.json:
        summary["outputs"] = write_exports(m, args, True)
        print_json(summary)
        return 0
    f = summary["machine"]
    print(f"booted {f['pfns']} pfns, {len(f['nodes'])} node(s), {f['cpus']} CPU(s) from "
          f"{res.facts.source} in {secs:.2f} s"
          + ("" if res.facts.kpageflags is not None else " (no kpageflags)"))
    print(format_zones(res.zones))
    for n in res.notes:
        print(f"note: {n}")
    write_exports(m, args, False)
    return 0


def add_parser(sub: Any) -> None:
    """Register ``boot`` on the main parser's subparsers."""
    b = sub.add_parser("boot", help="boot a model from a real machine (or a saved folder)",
                       description="Boot a model from /proc and /sys: nodes, CPUs, "
                                   "distances, RAM, zones and, with kpageflags, the state of "
                                   "every pfn; print the host's zones beside the model's.")
    add_sources(b)
    b.add_argument("--save", metavar="FILE", help="save the booted model as a snapshot")
    add_export_options(b)
    b.set_defaults(func=_cmd_boot)
