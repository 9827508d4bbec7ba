"""The ``dnuma`` command."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from . import __version__


class UsageError(Exception):
    """Bad command-line input: one line on stderr, exit 2."""


def _cmd_demo(args: argparse.Namespace) -> int:
    from .mm.validate import validate_all
    from .sim.seed import format_table, timed_seed

    check = validate_all if args.check else None
    if not args.json:
        print("compiling the kernels (cached after the first run)...", file=sys.stderr,
              flush=True)
    m, steps, secs = timed_seed(seed=args.seed, check=check)
    if args.json:
        out = {"scenario": "seed", "seed": args.seed, "seconds": round(secs, 3),
               "steps": [s.row() for s in steps],
               "moved_pages": m.moved_on_free,
               "present_pages": m.total_present_pages}
        json.dump(out, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        print("dnuma seed scenario: 128 MiB, 2 nodes, 8 CPUs, ~50% allocated by churn;\n"
              "stripe 256-pfn blocks over nodes 0,1,2 -> push to node 3 -> boot layout\n")
        print(format_table(steps))
        print(f"\n{m.moved_on_free} pages moved on free in all; {secs:.2f} s"
              + (" (invariants checked after every step)" if check else ""))
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="dnuma",
        description="Dynamic NUMA: a model of the Linux NUMA page allocator whose "
                    "pfn->node map changes at runtime.")
    p.add_argument("--version", action="version", version=f"dnuma {__version__}")
    p.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = p.add_subparsers(dest="cmd", metavar="COMMAND")
    d = sub.add_parser("demo", help="run the RFC's experiment (the seed scenario) and print "
                                    "a table per layout step")
    d.add_argument("--seed", type=int, default=0, help="workload random seed (default 0)")
    d.add_argument("--json", action="store_true", help="print the summary as JSON")
    d.add_argument("--check", action="store_true",
                   help="validate every invariant after every step")
    d.set_defaults(func=_cmd_demo)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args))
    except BrokenPipeError:  # e.g. `dnuma demo --json | head`
        sys.stderr.close()
        return 0
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
