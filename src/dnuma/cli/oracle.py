"""``dnuma oracle``: the model beside the real kernel, field by field."""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Any

from .common import UsageError, print_json


def _scenarios(args: argparse.Namespace) -> list[Any]:
    from ..oracle.scenario import builtin_oracle_scenarios, load_oracle_scenario

    names = args.scenario or list(builtin_oracle_scenarios())
    return [load_oracle_scenario(n) for n in names]


def _recorded_dir() -> Path:
    """tests/data/oracle of the repository this dnuma comes from, or ./."""
    from ..oracle.record import RECORDED

    here = Path(__file__).resolve().parents[3]
    for base in (here, Path.cwd()):
        if (base / RECORDED).is_dir():
            return base / RECORDED
    return Path.cwd() / RECORDED


def _cmd_oracle(args: argparse.Namespace) -> int:
    from ..oracle.compare import compare
    from ..oracle.qemu import run_guest
    from ..oracle.record import open_recording, save_recording
    from ..oracle.scenario import parse_oracle_scenario

    scs = _scenarios(args)
    rec = Path(args.record) if args.record else _recorded_dir()
    results = []
    for sc in scs:
        with tempfile.TemporaryDirectory(prefix="dnuma-oracle-") as td:
            work = Path(args.keep) / sc.name if args.keep else Path(td)
            if args.live:
                def say(msg: str) -> None:
                    if not args.json:
                        print(f"  {msg}", file=sys.stderr, flush=True)
                say(f"{sc.name}: booting Linux under QEMU ({sc.mem >> 20} MiB, "
                    f"{len(sc.nodes)} nodes, {sc.nr_cpus} CPUs)")
                snaps = run_guest(sc, work, kernel=args.kernel, progress=say)
                if args.save:
                    from ..oracle.scenario import builtin_oracle_scenarios

                    text = builtin_oracle_scenarios().get(sc.name) or Path(sc.source).read_text()
                    save_recording(snaps, rec / f"{sc.name}.tar.xz", text)
            else:
                path = rec / f"{sc.name}.tar.xz"
                if not path.is_file():
                    raise UsageError(f"{sc.name}: no recorded run at {path} (record it with "
                                     "dnuma oracle --live --save)")
                snaps, text = open_recording(path, work / "recorded")
                sc = parse_oracle_scenario(text, f"{path}:scenario.toml")
            results.append(compare(sc, snaps))
    total = {k: sum(r.counts()[k] for r in results)
             for k in ("compared", "agree", "explained", "unexplained", "copied")}
    if args.json:
        print_json({"scenarios": [r.as_dict() for r in results], "total": total})
    else:
        for r in results:
            c = r.counts()
            print(f"{r.scenario} (Linux {r.kernel_release}): {c['compared']} fields compared, "
                  f"{c['agree']} agree, {c['explained']} explained, {c['unexplained']} "
                  f"unexplained; {c['copied']} copied from the snapshot"
                  + (f"; steps the model cannot make yet: {', '.join(r.not_mirrored)}"
                     if r.not_mirrored else ""))
            for step, rp in r.replays.items():
                ev = sum(rp["replayed"].values())
                odd = ", ".join(f"{v} {k}" for k, v in rp["anomalies"].items() if v)
                print(f"  trace of {step}: {ev} events replayed from the snapshot before"
                      + (f"; taken as the trace says: {odd}" if odd else ""))
            for row in r.rows:
                if row.status != "agree" or args.all:
                    mark = {"agree": "=", "explained": "~", "unexplained": "!"}[row.status]
                    print(f"  {mark} {row.step:14s} {row.field:40s} kernel {row.kernel!s:28s} "
                          f"model {row.model!s}" + (f"  ({row.reason})" if row.reason else "")
                          + ("  [copied]" if row.copied else ""))
        print(f"in all: {total['compared']} compared, {total['agree']} agree, "
              f"{total['explained']} explained, {total['unexplained']} unexplained")
    return 1 if total["unexplained"] else 0


def add_parser(sub: Any) -> None:
    """Register ``oracle`` on the main parser's subparsers."""
    p = sub.add_parser("oracle", help="compare the model with real Linux 6.12 (QEMU)",
                       description="Compare the model with real Linux 6.12, field by field: "
                                   "against the recorded guest snapshots, or live under QEMU "
                                   "(--live).  Exit 1 when a field disagrees unexplained.")
    p.add_argument("scenario", nargs="*", help="oracle scenario files or shipped names "
                                               "(default: every shipped one)")
    p.add_argument("--live", action="store_true", help="boot the kernel under QEMU")
    p.add_argument("--save", action="store_true",
                   help="with --live: record the snapshots (tests/data/oracle/NAME.tar.xz)")
    p.add_argument("--record", metavar="DIR", help="folder of recorded runs "
                                                   "(default: the repository's tests/data/oracle)")
    p.add_argument("--kernel", metavar="VMLINUZ", help="the guest kernel (default: "
                                                       ".oracle/ or $DNUMA_ORACLE_KERNEL)")
    p.add_argument("--keep", metavar="DIR", help="keep the guest's files under DIR/NAME/")
    p.add_argument("--json", action="store_true", help="every row and the counts as JSON")
    p.add_argument("--all", action="store_true", help="list the agreeing rows too")
    p.set_defaults(func=_cmd_oracle)
