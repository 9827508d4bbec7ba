"""The ``dnuma bench`` command: the README's performance table, measured now.

``dnuma bench [NAME...] [--json] [--quick] [--strict] [--trace PATH]``.
Each benchmark runs its operation several times after a warm-up and reports
the median, beside a same-run baseline where its target names one; see
:mod:`dnuma.bench`.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ..bench import NAMES
from .common import UsageError, print_json, progress_bar


def _cmd_bench(args: argparse.Namespace) -> int:
    from ..bench.cases import BENCHMARKS, run_benchmarks
    from ..bench.harness import Context, format_table

    names = list(NAMES)
    if args.list:
        for b in BENCHMARKS:
            print(f"{b.name:12s} {b.what}")
        return 0
    unknown = [n for n in args.names if n not in names]
    if unknown:
        raise UsageError(f"bench: unknown benchmark {', '.join(map(repr, unknown))}; "
                         f"choose from: {', '.join(names)}")
    chosen = [n for n in names if n in args.names] if args.names else names
    ctx = Context(quick=args.quick, trace=args.trace)
    quiet = args.json or not sys.stderr.isatty()
    with progress_bar(float(len(chosen)), "bench", quiet, unit="benchmarks") as prog:
        results, details, facts, run = run_benchmarks(chosen, ctx, prog)
    doc: dict[str, Any] = {"machine": facts, "benchmarks": [r.as_dict() for r in results],
                           "run": run}
    if args.json:
        print_json(doc)
    else:
        print(format_table(results, details))
        f = facts
        mode = "quick sizes, floors not judged where sizes shrink" if args.quick else "full"
        print(f"\n{mode}; {run['wall_seconds']:.1f} s, peak RSS "
              f"{run['peak_rss_bytes'] / 2**30:.2f} GiB; {f['cpu_model']}, {f['nr_cpus']} CPUs, "
              f"{(f['mem_total_bytes'] or 0) / 2**30:.1f} GiB; numba {f['numba']} (cache "
              f"{'warm' if f['numba_cache_warm'] else 'cold: kernels compiled'})")
    missed = [r.name for r in results if r.ok is False]
    return 1 if args.strict and missed else 0


def add_parser(sub: Any) -> None:
    """Register ``bench`` on the main parser's subparsers."""
    names = ", ".join(NAMES)
    b = sub.add_parser(
        "bench", help="measure the model against its performance targets",
        description="Run the benchmarks (all, or the NAMEs given): each times its operation "
                    "several times after a warm-up and reports the median, beside a "
                    "same-run baseline where its target names one (a numpy pass over the "
                    "pfns, a dense table lookup, the host kernel's page population, python "
                    f"start-up). Names: {names}. Exit 0 even when a target is missed "
                    "(unless --strict), 2 on bad input.")
    b.add_argument("names", nargs="*", metavar="NAME", help=f"benchmarks to run ({names})")
    b.add_argument("--json", action="store_true",
                   help='print {"machine": {...}, "benchmarks": [...], "run": {...}}')
    b.add_argument("--quick", action="store_true",
                   help="small sizes (CI, ~30 s); floors judged only where the size does not "
                        "shrink")
    b.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    b.add_argument("--trace", metavar="PATH",
                   help="replay: the kmem trace (default: tests/data's full capture, "
                        "its excerpt with --quick)")
    b.add_argument("--list", action="store_true", help="list the benchmarks")
    b.set_defaults(func=_cmd_bench)
