"""How a command gets its machine (a scenario's own, one booted from a host
tree, or a snapshot), the options that name a host source, and the model's
facts and exports the machine commands print."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .common import SourceOption

if TYPE_CHECKING:
    from ..io.host import ImportResult
    from ..mm.machine import Machine
    from ..sim.scenario import Scenario


def machine_from(source: str, kpageflags: bool = True) -> tuple[Machine, list[str]]:
    """``host``, a folder of /proc and /sys files, or a snapshot file ->
    (machine, notes on how it was made)."""
    p = Path(source)
    if source != "host" and p.is_file():
        from ..io.snapshot import load_snapshot

        return load_snapshot(p), [f"loaded snapshot {p}"]
    from ..io.host import boot_from_host

    res = boot_from_host("/" if source == "host" else p, kpageflags=kpageflags)
    return res.machine, [f"booted from {res.facts.source}", *res.notes]


def scenario_machine(sc: Scenario) -> Machine:
    """The machine a scenario runs on: booted from its own description, or
    from ``machine.from`` (a host, a folder, a snapshot)."""
    if sc.machine_from is None:
        from ..mm.machine import Machine

        assert sc.machine is not None
        return Machine(sc.machine)
    return machine_from(sc.machine_from)[0]


def add_sources(p: argparse.ArgumentParser, scenario: str | None = None) -> None:
    """``--from-host | --from DIR`` (or ``--scenario S`` when ``scenario``, its
    help, is given): exactly one; and --no-kpageflags, which a scenario
    refuses."""
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--from-host", action="store_true",
                     help="read this machine's /proc and /sys (kpageflags needs root)")
    src.add_argument("--from", dest="source", metavar="DIR",
                     help="a folder of the same files (proc/NAME or NAME, sys/devices/system)")
    if scenario:
        src.add_argument("--scenario", action=SourceOption, kind="scenario", metavar="S",
                         help=scenario)
    p.add_argument("--no-kpageflags", action=SourceOption, kind="host", nargs=0, const=True,
                   default=False, help="ignore kpageflags: free counts from buddyinfo only")


def host_import(args: argparse.Namespace) -> ImportResult:
    """Boot from the host source of :func:`add_sources`."""
    from ..io.host import boot_from_host

    return boot_from_host("/" if args.from_host else args.source,
                          kpageflags=not args.no_kpageflags)


def model_facts(m: Machine) -> dict[str, Any]:
    """A short JSON-able description of a model machine's state, in pages.

    ``free`` is NR_FREE_PAGES as the kernel counts it (MemFree of
    /proc/meminfo, per node the node's meminfo): pages on the buddy lists,
    not those on the per-cpu lists, which ``pcp`` counts; ``free_incl_pcp``
    is their sum (every page an allocation could get)."""
    nodes = {}
    for nid in m.for_each_online_node():
        pg = m.NODE_DATA(nid)
        nodes[str(nid)] = {"present": pg.node_present_pages, "managed": pg.node_managed_pages,
                           "free": pg.nr_free_pages}
    pcp = m.pages_on_pcp()
    free_incl_pcp = m.nr_free_pages()
    return {"pfns": m.max_pfn, "cpus": m.nr_cpus, "seq": m.seq, "nodes": nodes,
            "present": m.total_present_pages, "free": free_incl_pcp - pcp, "pcp": pcp,
            "free_incl_pcp": free_incl_pcp,
            "allocated": int(m.allocated_mask().sum()), "misplaced": m.misplaced_pages()}


def check_outputs(args: argparse.Namespace) -> None:
    """--save and --sysroot (where given) checked before the slow part: a
    missing folder or a non-file in the way fails first (one line, exit 2)."""
    if getattr(args, "save", None):
        from ..io.snapshot import check_save_target

        check_save_target(args.save, "--save ")
    if getattr(args, "sysroot", None):
        from ..io.export import check_sysroot_target

        check_sysroot_target(args.sysroot, "--sysroot ")


def write_exports(m: Machine, args: argparse.Namespace, quiet: bool) -> dict[str, str]:
    """--save and --sysroot of boot and snapshot load: what was written."""
    done: dict[str, str] = {}
    check_outputs(args)
    if getattr(args, "save", None):
        from ..io.snapshot import save_snapshot

        done["snapshot"] = str(save_snapshot(m, args.save))
    if args.sysroot:
        from ..io.export import write_sysroot

        done["sysroot"] = str(write_sysroot(m, args.sysroot))
    if not quiet:
        for k, v in done.items():
            print(f"wrote {k} {v}")
    return done


def add_export_options(p: argparse.ArgumentParser) -> None:
    """--sysroot, --json and --check of boot and snapshot load."""
    p.add_argument("--sysroot", metavar="DIR", help="export the model's /sys and /proc tree")
    p.add_argument("--json", action="store_true", help="print a JSON summary")
    p.add_argument("--check", action="store_true", help="validate every invariant")
