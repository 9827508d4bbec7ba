"""``dnuma layout stripe|push|show``: the layouts the RFC's test script made,
printed as its debugfs names them, as a write script or as a scenario table."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

from .common import SourceOption, UsageError

if TYPE_CHECKING:
    from ..mm.machine import Machine
    from ..mm.memlayout import MemLayout


def _machine(args: argparse.Namespace) -> Machine:
    if args.scenario:
        from ..sim.scenario import load_scenario
        from .machine import scenario_machine

        return scenario_machine(load_scenario(args.scenario))
    from ..mm.errors import ConfigError
    from ..mm.machine import Machine, MachineConfig

    try:
        return Machine(MachineConfig.uniform(nodes=args.boot_nodes, mem=args.mem, cpus=1))
    except ConfigError as exc:
        raise UsageError(f"--mem {args.mem} --boot-nodes {args.boot_nodes}: {exc}") from None


def _nodes_of(flag: str, nodes: list[int], m: Machine) -> list[int]:
    """``nodes`` checked against the machine's MAX_NUMNODES (for ``flag``)."""
    maxn = m.config.max_numnodes
    bad = [n for n in nodes if not 0 <= n < maxn]
    if bad:
        raise UsageError(f"{flag}: node {bad[0]} is not possible: outside [0, {maxn}) "
                         "(this machine's MAX_NUMNODES)")
    return nodes


def _stripe(args: argparse.Namespace, m: Machine) -> MemLayout:
    from ..mm.memlayout import PFN_LIMIT, MemLayout
    from ..sim.scenario import parse_id_list

    try:
        nodes = parse_id_list(args.nodes)
    except ValueError as exc:
        raise UsageError(f"--nodes: {exc}") from None
    if not nodes:
        raise UsageError("--nodes: no nodes")
    if not 1 <= args.block < PFN_LIMIT:
        raise UsageError(f"--block: {args.block} pfns is not in [1, {PFN_LIMIT:#x})")
    return MemLayout.stripe(m.ram_ranges(), _nodes_of("--nodes", list(nodes), m), args.block)


def _push(args: argparse.Namespace, m: Machine) -> MemLayout:
    from ..mm.memlayout import MemLayout

    return MemLayout.push(m.ram_ranges(), _nodes_of("--node", [args.node], m)[0])


def _show(args: argparse.Namespace, m: Machine) -> MemLayout:
    return m.layout


def _cmd_layout(args: argparse.Namespace) -> int:
    from ..mm.dnuma import validate_layout_for

    m = _machine(args)
    lay = args.make(args, m)
    validate_layout_for(m, lay)
    if args.format == "script":
        from ..mm.memlayout_debugfs import format_script

        sys.stdout.write(format_script(lay))
    elif args.format == "toml":
        print("ranges = { " + ", ".join(f'"{n}" = {nid}' for n, nid in lay.debugfs_names())
              + " }")
    else:
        for name, nid in lay.debugfs_names():
            print(f"{name} -> {nid}")
    return 0


def _add_common(p: argparse.ArgumentParser) -> None:
    """The machine (--mem and --boot-nodes, or --scenario) and --format."""
    p.add_argument("--mem", default="128M", metavar="SIZE", action=SourceOption, kind="machine",
                   help="machine memory (default 128M)")
    p.add_argument("--boot-nodes", type=int, default=2, metavar="N", action=SourceOption,
                   kind="machine", help="nodes of the machine at boot (default 2)")
    p.add_argument("--scenario", action=SourceOption, kind="scenario", metavar="FILE",
                   help="take the machine from a scenario instead of --mem, --boot-nodes")
    p.add_argument("--format", choices=["names", "script", "toml"], default="names")


def add_parser(sub: Any) -> None:
    """Register ``layout`` and its actions on the main parser's subparsers."""
    lay = sub.add_parser("layout", help="print the layouts the RFC's test script made",
                         description="Print a layout as the RFC's debugfs names its range "
                                     "files (XXXXX-YYYYY -> nid), as a debugfs write script "
                                     "or as a scenario 'ranges' table.")
    acts = lay.add_subparsers(dest="action", metavar="ACTION", required=True)
    # no abbreviations: push's --node must not pass for stripe's --nodes
    s = acts.add_parser("stripe", help="stripe the machine's RAM over nodes", allow_abbrev=False,
                        description="Stripe the machine's RAM over nodes in blocks of pfns.")
    s.add_argument("--nodes", default="0,1", metavar="LIST",
                   help="nodes, e.g. 0,1,2 or 0-3 (default 0,1)")
    s.add_argument("--block", type=int, default=256, metavar="PFNS",
                   help="block size in pfns (default 256)")
    s.set_defaults(make=_stripe)
    p = acts.add_parser("push", help="push all of the machine's RAM to one node",
                        description="Push all of the machine's RAM to one node.")
    p.add_argument("--node", type=int, required=True, metavar="N", help="the node to push to")
    p.set_defaults(make=_push)
    w = acts.add_parser("show", help="the machine's own layout (as booted or loaded)",
                        description="Print the machine's own layout.")
    w.set_defaults(make=_show)
    for a in (s, p, w):
        _add_common(a)
        a.set_defaults(func=_cmd_layout)
