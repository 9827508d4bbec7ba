"""Scenario files (TOML): the machine, its tasks and a timeline of layout
events.  ``load_scenario`` checks everything before anything runs; a mistake
raises ScenarioError naming the file, the key and what was expected.

Ranges are written the way the RFC's debugfs names its range files: a string
``"START-END"`` of inclusive hex pfns (``"0-7FFF"``; a ``0x`` prefix is
accepted) mapped to a node id.  See ``dnuma run --list`` for the shipped
scenarios and docs in README.md.
"""

from __future__ import annotations

import math
import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..mm import constants as C
from ..mm.errors import ConfigError, DnumaError
from ..mm.machine import MachineConfig, parse_size
from ..mm.memlayout import PFN_LIMIT
from ..mm.memory_hotplug import ONLINE_TYPES
from ..mm.nodemask import bitmap_parselist
from ..mm.topology import NR_CPUS
from .events import NS, parse_duration
from .tasks import TaskSpec

if TYPE_CHECKING:
    from .migration import MigrationPolicy

LAYOUT_ACTIONS = ("stripe", "push", "ranges", "boot", "debugfs", "debugfs_file")
#: memory and CPU hotplug events (sim.hotplug makes them)
HOTPLUG_ACTIONS = ("hotplug", "hotremove", "offline_block", "online_block", "cpu_offline",
                   "cpu_online", "auto_online_blocks", "replug")
#: runtime topology changes (mm.topology_update): CPUs to other nodes, a new SLIT
TOPOLOGY_ACTIONS = ("cpus", "distance")
#: the events sim.hotplug makes (everything but a layout change)
MACHINE_ACTIONS = (*HOTPLUG_ACTIONS, *TOPOLOGY_ACTIONS)
ACTIONS = (*LAYOUT_ACTIONS, *MACHINE_ACTIONS)
GFP_NAMES: dict[str, int] = {k: int(v) for k, v in vars(C).items()
                             if k.startswith(("GFP_", "__GFP_")) and isinstance(v, int)}
MIGRATETYPE_GFP = {"unmovable": C.GFP_KERNEL, "movable": C.GFP_HIGHUSER_MOVABLE,
                   "reclaimable": C.GFP_KERNEL | C.__GFP_RECLAIMABLE}
MAX_RATE = 1e9  # allocations a second, a task
MAX_RUN_ALLOCS = 10**9  # allocations a run's tasks may make (~3 min at 5 M/s)
MAX_SAMPLES = 10**6  # metric samples of a run
_RANGE_RE = re.compile(r"^\s*(?:0[xX])?([0-9a-fA-F]+)\s*-\s*(?:0[xX])?([0-9a-fA-F]+)\s*$")


class ScenarioError(ConfigError):
    """A malformed scenario file."""


@dataclass(frozen=True)
class LayoutEvent:
    """An event at ``at`` ns: ``action`` in ACTIONS with its ``args``: a layout
    change (LAYOUT_ACTIONS), a hotplug operation (HOTPLUG_ACTIONS) or a
    topology change (TOPOLOGY_ACTIONS)."""

    at: int
    action: str
    args: Any
    name: str


@dataclass(frozen=True)
class Versus:
    """A scenario's ``[versus]`` table: move node ``from_nid``'s boot memory
    to node ``to_nid`` at ``at`` ns, once by a DNUMA commit and once by
    hotplug (a ``replug`` event); remote allocations are compared over
    [at, at + window] ns."""

    from_nid: int
    to_nid: int
    at: int
    window: int
    online: str | None = None  # how the hotplug arm onlines (None: auto_online_blocks)


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    machine: MachineConfig | None  # None: booted from ``machine_from``
    tasks: tuple[TaskSpec, ...]
    events: tuple[LayoutEvent, ...]
    duration: int  # ns
    sample: int  # ns
    seed: int
    source: str = "<scenario>"
    machine_from: str | None = None  # "host" or a folder of /proc and /sys files
    versus: Versus | None = None  # run twice: DNUMA next to hotplug (sim.versus)
    migration: MigrationPolicy | None = None  # [migration] (sim.migration); None: lazy
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)


class _At:
    """Reads typed values out of a TOML table, naming file and key on errors."""

    def __init__(self, source: str, tbl: Mapping[str, Any], path: str = "") -> None:
        self.source, self.tbl, self.path = source, tbl, path

    def key(self, k: str) -> str:
        return f"{self.path}.{k}" if self.path else k

    def fail(self, k: str, msg: str) -> ScenarioError:
        return ScenarioError(f"{self.source}: {self.key(k)}: {msg}")

    def get(self, k: str, types: type | tuple[type, ...], default: Any = ...,
            what: str = "") -> Any:
        if k not in self.tbl:
            if default is ...:
                raise self.fail(k, f"missing (expected {what or _tname(types)})")
            return default
        v = self.tbl[k]
        if isinstance(v, bool) and bool not in _as_tuple(types):
            raise self.fail(k, f"expected {what or _tname(types)}, got {v!r}")
        if not isinstance(v, types):
            raise self.fail(k, f"expected {what or _tname(types)}, got {v!r}")
        return v

    def int_(self, k: str, default: Any = ..., lo: int | None = None,
             hi: int | None = None) -> Any:
        v = self.get(k, int, default)
        if v is default:
            return v
        if (lo is not None and v < lo) or (hi is not None and v > hi):
            raise self.fail(k, f"{v} not in [{lo}, {hi if hi is not None else 'inf'}]")
        return v

    def number(self, k: str, what: str, lo: float, hi: float, default: Any = ...) -> Any:
        """A finite int or float in [lo, hi]."""
        v = self.get(k, (int, float), default, what)
        if v is not default and not lo <= v <= hi:  # also NaN
            raise self.fail(k, f"{v!r} is not a finite number in [{lo:g}, {hi:g}] ({what})")
        return v

    def duration(self, k: str, default: Any = ...) -> Any:
        if k not in self.tbl:
            if default is ...:
                raise self.fail(k, "missing (expected a duration like '2s')")
            return default
        try:
            return parse_duration(self.tbl[k], "")
        except DnumaError as exc:
            raise self.fail(k, str(exc).lstrip(": ")) from None

    def ints(self, k: str, default: Any = ..., lo: int = 0) -> Any:
        v = self.get(k, (list, str, int), default, "a list of integers or a string like '0-3'")
        if v is default:
            return v
        try:
            out = parse_id_list(v)
        except ValueError as exc:
            raise self.fail(k, str(exc)) from None
        if any(x < lo for x in out):
            raise self.fail(k, f"values must be >= {lo}")
        return out

    def check_keys(self, allowed: Sequence[str]) -> None:
        for k in self.tbl:
            if k not in allowed:
                raise self.fail(k, f"unknown key (expected one of: {', '.join(allowed)})")


def _as_tuple(t: type | tuple[type, ...]) -> tuple[type, ...]:
    return t if isinstance(t, tuple) else (t,)


def _tname(t: type | tuple[type, ...]) -> str:
    names = {int: "an integer", float: "a number", str: "a string", list: "a list",
             dict: "a table", bool: "true or false"}
    return " or ".join(names.get(x, x.__name__) for x in _as_tuple(t))


def parse_id_list(v: object) -> tuple[int, ...]:
    """[0, 1, 2], 3, '0-3,8' -> ids (in order, duplicates dropped)."""
    if isinstance(v, int) and not isinstance(v, bool):
        return (v,)
    out: list[int] = []
    if isinstance(v, str):
        out = bitmap_parselist(v)
    elif isinstance(v, list):
        for x in v:
            if not isinstance(x, int) or isinstance(x, bool):
                raise ValueError(f"expected integers, got {x!r}")
            out.append(x)
    else:
        raise ValueError(f"expected a list of integers, got {v!r}")
    return tuple(dict.fromkeys(out))


def parse_range_map(tbl: object, where: str) -> list[tuple[int, int, int]]:
    """``{"0-7FFF" = 0, ...}`` -> (start_pfn, end_pfn inclusive, nid), in pfn
    order; errors name ``where``."""
    if not isinstance(tbl, dict):
        raise ScenarioError(f'{where}: expected a table like {{"0-7FFF" = 0}}, got {tbl!r}')
    out = []
    for name, nid in tbl.items():
        mt = _RANGE_RE.match(name)
        if not mt:
            raise ScenarioError(f"{where}: {name!r}: expected 'START-END' in hex pfns "
                                "(e.g. '0-7FFF')")
        s, e = int(mt.group(1), 16), int(mt.group(2), 16)
        if s > e:
            raise ScenarioError(f"{where}: {name!r}: start > end")
        if e >= PFN_LIMIT:
            raise ScenarioError(f"{where}: {name!r}: pfns must be below {PFN_LIMIT:#x}")
        if not isinstance(nid, int) or isinstance(nid, bool) or nid < 0:
            raise ScenarioError(f"{where}: {name!r}: node must be a non-negative integer, "
                                f"got {nid!r}")
        out.append((s, e, nid))
    if not out:
        raise ScenarioError(f"{where}: no ranges")
    return sorted(out)


def parse_gfp(name: str) -> int:
    """'GFP_KERNEL', 'GFP_HIGHUSER_MOVABLE|__GFP_THISNODE', 'movable' -> gfp bits."""
    if name.lower() in MIGRATETYPE_GFP:
        return MIGRATETYPE_GFP[name.lower()]
    g = 0
    for part in name.split("|"):
        part = part.strip()
        if part not in GFP_NAMES:
            raise ValueError(f"unknown gfp flag {part!r} (known: movable, unmovable, "
                             f"reclaimable, {', '.join(sorted(GFP_NAMES))})")
        g |= GFP_NAMES[part]
    return g


# ------------------------------------------------------------------ machine
_MACHINE_KEYS = ("nodes", "cpus", "cpus_per_node", "cpu_to_node", "mem", "mem_per_node",
                 "ram", "distance", "profile", "max_numnodes", "reserved", "min_free_kbytes",
                 "backlog", "thp", "maxmem")


def _machine_from(at: _At, base: Path | None) -> str:
    """``from = "host"``, a folder or a snapshot file (relative to the scenario file)."""
    at.check_keys(("from",))
    src = at.get("from", str, what='"host", a folder of /proc and /sys files or a snapshot')
    if src == "host":
        return src
    p = Path(src)
    if not p.is_absolute() and base is not None:
        p = base / p
    if not p.is_dir() and not p.is_file():
        raise at.fail("from", f"{p}: no such folder or snapshot file")
    return str(p)


def _machine(at: _At) -> MachineConfig:
    at.check_keys(_MACHINE_KEYS)
    prof_name = at.get("profile", str, "x86_64")
    if prof_name not in C.PROFILES:
        raise at.fail("profile", f"unknown {prof_name!r} (expected one of "
                                 f"{', '.join(C.PROFILES)})")
    prof = C.PROFILES[prof_name]
    kw: dict[str, Any] = {"profile": prof}
    maxn = at.int_("max_numnodes", C.DEFAULT_MAX_NUMNODES, 1, C.MAX_MAX_NUMNODES)
    kw["max_numnodes"] = maxn
    if "ram" in at.tbl:
        for k in ("mem", "mem_per_node"):
            if k in at.tbl:
                raise at.fail(k, "give either ram ranges or a memory size, not both")
        ram = [(s, e + 1, n)
               for s, e, n in parse_range_map(at.get("ram", dict), f"{at.source}: {at.key('ram')}")]
        nodes = sorted({n for _s, _e, n in ram})
        nr_nodes = nodes[-1] + 1
    else:
        nr_nodes = at.int_("nodes", 1, 1, maxn)
        try:
            if "mem_per_node" in at.tbl:
                per = parse_size(at.get("mem_per_node", (str, int))) >> prof.page_shift
            else:
                per = (parse_size(at.get("mem", (str, int), "128M")) >> prof.page_shift) \
                    // nr_nodes
        except DnumaError as exc:
            raise at.fail("mem", str(exc)) from None
        if per < prof.pageblock_nr_pages:
            raise at.fail("mem", f"less than one pageblock ({prof.pageblock_nr_pages} pages) "
                                 "a node")
        ram = [(i * per, (i + 1) * per, i) for i in range(nr_nodes)]
    if "cpu_to_node" in at.tbl:
        c2n = tuple(at.get("cpu_to_node", list, what="a list of node ids, one per CPU"))
    else:
        if "cpus_per_node" in at.tbl:
            cpn = at.int_("cpus_per_node", 1, 1, NR_CPUS)
            c2n = tuple(n for n in range(nr_nodes) for _ in range(cpn))
        else:
            nc = at.int_("cpus", max(1, nr_nodes), 1, NR_CPUS)
            c2n = tuple(min(c * nr_nodes // nc, nr_nodes - 1) for c in range(nc))
    if any(not isinstance(n, int) or not 0 <= n < maxn for n in c2n):
        raise at.fail("cpu_to_node", f"node ids must be in [0, {maxn})")
    if "distance" in at.tbl:
        d = at.get("distance", list, what="a square list of lists")
        if not all(isinstance(r, list) and len(r) == len(d)
                   and all(isinstance(x, int) and not isinstance(x, bool) for x in r) for r in d):
            raise at.fail("distance", f"expected a square list of lists of integers "
                                      f"({len(d)} rows of {len(d)})")
        kw["distance"] = tuple(tuple(r) for r in d)
    if "reserved" in at.tbl:
        res = at.get("reserved", list, what='a list of "START-END" pfn ranges')
        where = f"{at.source}: {at.key('reserved')}"
        kw["reserved"] = tuple((s, e + 1) for s, e, _n in
                               parse_range_map({r: 0 for r in res if isinstance(r, str)}, where))
        if not all(isinstance(r, str) for r in res):
            raise at.fail("reserved", 'expected a list of "START-END" strings')
    mfk = at.int_("min_free_kbytes", None, 0)
    if mfk is not None:
        kw["min_free_kbytes"] = mfk
    kw["backlog"] = at.int_("backlog", 0, -1)
    kw["thp"] = at.get("thp", bool, True)  # PMD THP on (Debian's default): khugepaged
    if "maxmem" in at.tbl:  # the end of the hotpluggable room (bytes from address 0)
        raw_max = at.get("maxmem", (str, int))
        try:
            kw["maxmem_pfn"] = parse_size(raw_max) >> prof.page_shift
        except DnumaError as exc:
            raise at.fail("maxmem", str(exc)) from None
    try:
        return MachineConfig(ram=tuple(ram), cpu_to_node=c2n, **kw)
    except ConfigError as exc:
        raise ScenarioError(f"{at.source}: machine: {exc}") from None


# ------------------------------------------------------------------ tasks
_TASK_KEYS = ("name", "cpus", "per_cpu", "adopt", "rate", "lifetime", "orders", "gfp",
              "policy", "nodes", "start", "stop")


def _weights(at: _At, k: str, key_of: Any, default: Any) -> Any:
    if k not in at.tbl:
        return default
    tbl = at.get(k, dict, what="a table of weights")
    out = []
    for name, w in tbl.items():
        try:
            key = key_of(name)
        except ValueError as exc:
            raise at.fail(k, str(exc)) from None
        if not isinstance(w, int | float) or isinstance(w, bool) or not 0 <= w < math.inf:
            raise at.fail(k, f"{name}: weight must be a finite non-negative number, got {w!r}")
        out.append((key, float(w)))
    if not out or sum(w for _k, w in out) <= 0:
        raise at.fail(k, "weights must not all be zero")
    return tuple(out)


def _order_key(max_order: int) -> Any:
    """Order names "0".."max_order" -> ints (ValueError otherwise)."""
    def key(name: str) -> int:
        if not name.isdigit() or int(name) > max_order:
            raise ValueError(f"order {name!r} is not an integer in [0, {max_order}] "
                             "(MAX_PAGE_ORDER)")
        return int(name)
    return key


def _tasks(source: str, raw: Any, nr_cpus: int | None, max_order: int,
           dur: int) -> tuple[TaskSpec, ...]:
    """The [[task]] tables; nr_cpus None: the machine is not known yet (cpus
    default to all, checked when the machine boots)."""
    if raw is None:
        return ()
    if not isinstance(raw, list) or not all(isinstance(t, dict) for t in raw):
        raise ScenarioError(f"{source}: task: expected [[task]] tables")
    out: list[TaskSpec] = []
    for i, tbl in enumerate(raw):
        at = _At(source, tbl, f"task[{i}]")
        at.check_keys(_TASK_KEYS)
        name = at.get("name", str, f"task{i}")
        cpus = at.ints("cpus", tuple(range(nr_cpus)) if nr_cpus is not None else ())
        if nr_cpus is not None and (not cpus or any(c >= nr_cpus for c in cpus)):
            raise at.fail("cpus", f"CPU ids must be in [0, {nr_cpus})")
        rate = at.number("rate", "allocations a second", 0, MAX_RATE)
        policy = at.get("policy", str, "local")
        if policy not in C.POLICY_NAMES:
            raise at.fail("policy", f"unknown {policy!r} (expected one of "
                                    f"{', '.join(C.POLICY_NAMES)})")
        nodes = at.ints("nodes", ())
        if policy in ("preferred", "bind", "interleave") and not nodes:
            raise at.fail("nodes", f"policy {policy!r} needs nodes")
        life = at.duration("lifetime", NS)
        start = at.duration("start", 0)
        stop = at.duration("stop", None)
        if stop is not None and stop < start:
            raise at.fail("stop", "before start")
        spec = dict(rate=float(rate), lifetime=life / NS,
                    orders=_weights(at, "orders", _order_key(max_order), ((0, 1.0),)),
                    gfps=_weights(at, "gfp", parse_gfp, ((C.GFP_KERNEL, 1.0),)),
                    policy=policy, nodes=nodes, start=start / NS,
                    stop=None if stop is None else stop / NS,
                    adopt=at.get("adopt", bool, False))
        if at.get("per_cpu", bool, False):
            if not cpus:
                raise at.fail("per_cpu", "needs cpus when the machine comes from a host")
            out.extend(TaskSpec(f"{name}/{c}", (c,), **spec) for c in cpus)
        else:
            out.append(TaskSpec(name, cpus, **spec))
    return tuple(out)


# ------------------------------------------------------------------ events
def _events(source: str, raw: Any, base: Path | None, dur: int) -> tuple[LayoutEvent, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list) or not all(isinstance(t, dict) for t in raw):
        raise ScenarioError(f"{source}: event: expected [[event]] tables")
    out: list[LayoutEvent] = []
    for i, tbl in enumerate(raw):
        at = _At(source, tbl, f"event[{i}]")
        at.check_keys(("at", "name", *ACTIONS))
        t = at.duration("at")
        if t > dur:
            raise at.fail("at", f"after the end of the run ({dur / NS:g} s)")
        acts = [a for a in ACTIONS if a in tbl]
        if len(acts) != 1:
            raise at.fail("", f"expected exactly one of {', '.join(ACTIONS)}")
        act = acts[0]
        args: Any
        if act == "stripe":
            st = _At(source, at.get(act, dict, what="{nodes = [...], block = N}"), at.key(act))
            st.check_keys(("nodes", "block"))
            args = (st.ints("nodes"), st.int_("block", lo=1, hi=PFN_LIMIT))
            if not args[0]:
                raise st.fail("nodes", "no nodes")
        elif act == "push":
            v = tbl[act]
            args = at.int_(act, lo=0) if not isinstance(v, dict) else \
                _At(source, v, at.key(act)).int_("node", lo=0)
        elif act == "ranges":
            args = parse_range_map(tbl[act], f"{source}: {at.key(act)}")
        elif act == "boot":
            if at.get(act, bool) is not True:
                raise at.fail(act, "expected true")
            args = None
        elif act == "debugfs":
            args = (at.get(act, str, what="a debugfs write script"), f"{source}:{at.key(act)}")
        elif act in TOPOLOGY_ACTIONS:
            args = _topology_args(source, at, act)
        elif act in HOTPLUG_ACTIONS:
            args = _hotplug_args(source, at, act, [e.name for e in out
                                                   if e.action == "hotplug"])
        else:
            rel = at.get(act, str, what="a file name")
            p = (base / rel) if base is not None else Path(rel)
            try:
                args = (p.read_text(), str(p))
            except OSError as exc:
                raise at.fail(act, f"cannot read {p}: {exc.strerror}") from None
            except UnicodeDecodeError as exc:
                raise at.fail(act, f"{p}: not UTF-8 text (byte {exc.start})") from None
            act = "debugfs"
        out.append(LayoutEvent(t, act, args, at.get("name", str, act)))
    return tuple(sorted(out, key=lambda e: e.at))


def _topology_args(source: str, at: _At, act: str) -> Any:
    """``cpus = { "4-7" = 2 }`` as {cpu: nid}; ``distance = [[10, 20], [20, 10]]``
    checked as a SLIT (the machine checks its size when the event fires)."""
    if act == "cpus":
        v = at.get(act, dict, what='{ "CPULIST" = NODE, ... }')
        out: dict[int, int] = {}
        for k, nid in v.items():
            where = _At(source, v, at.key(act))
            if not isinstance(nid, int) or isinstance(nid, bool) or nid < 0:
                raise where.fail(k, f"expected a node id, got {nid!r}")
            try:
                cpus = parse_id_list(k)
            except ValueError as exc:
                raise where.fail(k, f"not a CPU list: {exc}") from None
            for c in cpus:
                if c in out:
                    raise where.fail(k, f"cpu {c} is given twice")
                out[c] = nid
        if not out:
            raise at.fail(act, "no CPUs")
        return out
    d = at.get(act, list, what="a square list of lists of integers")
    from ..mm.topology import check_distance

    try:
        return check_distance(d, C.MAX_MAX_NUMNODES)
    except ConfigError as exc:
        raise at.fail(act, str(exc).removeprefix("distance").lstrip(": ")) from None


def _hotplug_args(source: str, at: _At, act: str, added: list[str]) -> Any:
    """A hotplug event's value, checked (the machine checks the rest before
    the run: sim.hotplug.HotplugPlan)."""
    if act == "hotplug":
        h = _At(source, at.get(act, dict, what='{node = N, size = "256M"}'), at.key(act))
        h.check_keys(("node", "size", "start", "online"))
        node = h.int_("node", lo=0)
        raw_size = h.get("size", (str, int))
        try:
            size = parse_size(raw_size)
        except DnumaError as exc:
            raise h.fail("size", str(exc)) from None
        start = h.get("start", (str, int), None, "a pfn (hex string or integer)")
        if isinstance(start, str):
            try:
                start = int(start, 16)
            except ValueError:
                raise h.fail("start", f"{start!r}: expected a hex pfn") from None
        online = _online_type(h, "online", types=ONLINE_TYPES)
        if size <= 0 or (start is not None and start < 0):
            raise h.fail("size", "expected a positive size and a pfn >= 0")
        return (node, size, start, online)
    if act == "hotremove":
        v = at.get(act, str, what="the name of an earlier hotplug event or 'START-END'")
        if v in added:
            return (v,)
        if not _RANGE_RE.match(v):
            raise at.fail(act, f"{v!r}: not an earlier hotplug event "
                               f"({', '.join(added) or 'none'}) nor 'START-END' hex pfns")
        ((s, e, _n),) = parse_range_map({v: 0}, f"{source}: {at.key(act)}")
        return ((s, e + 1),)
    if act == "online_block":
        v = at.tbl[act]
        if isinstance(v, dict):
            o = _At(source, v, at.key(act))
            o.check_keys(("block", "type"))
            return (o.ints("block"), _online_type(o, "type", "online"))
        return (at.ints(act), "online")
    if act == "replug":
        r = _At(source, at.get(act, dict, what="{from = N, to = M}"), at.key(act))
        r.check_keys(("from", "to", "online"))
        return (*_move(r, C.MAX_MAX_NUMNODES), _online_type(r, "online"))
    if act == "auto_online_blocks":
        v = at.get(act, str)
        if v not in ONLINE_TYPES:
            raise at.fail(act, f"{v!r}: expected one of {', '.join(ONLINE_TYPES)}")
        return v
    ids = at.ints(act)  # offline_block, cpu_offline, cpu_online: one or a list
    if not ids:
        raise at.fail(act, "expected at least one")
    return ids


def _check_work(at: _At, tasks: Sequence[TaskSpec], dur: int, sample: int) -> None:
    """Refuse a run whose work or memory has no sane bound, before it starts:
    the allocations its tasks would make and the samples it would keep."""
    if dur // sample > MAX_SAMPLES:
        raise at.fail("sample", f"{sample / NS:g} s over a {dur / NS:g} s run is "
                                f"{dur // sample:.3g} samples (at most {MAX_SAMPLES:g})")
    allocs = sum(t.rate * max(0.0, min(dur / NS, t.stop if t.stop is not None else math.inf)
                              - t.start) for t in tasks)
    if allocs > MAX_RUN_ALLOCS:
        raise at.fail("task", f"the tasks would make {allocs:.3g} allocations in the "
                              f"{dur / NS:g} s run (at most {MAX_RUN_ALLOCS:g}: lower the "
                              "rates or the duration)")


_TOP_KEYS = ("name", "description", "duration", "sample", "seed", "machine", "task", "event",
             "versus", "migration")


def _online_type(at: _At, k: str, default: str | None = None,
                 types: tuple[str, ...] = ONLINE_TYPES[1:]) -> str | None:
    """An online type (``types``: "offline" left out unless given), or ``default``."""
    v = at.get(k, str, default)
    if v is not None and v not in types:
        raise at.fail(k, f"{v!r}: expected one of {', '.join(types)}")
    return v


def _move(at: _At, maxn: int) -> tuple[int, int]:
    """The ``from`` and ``to`` nodes of a replug event or a versus table."""
    a, b = at.int_("from", lo=0, hi=maxn - 1), at.int_("to", lo=0, hi=maxn - 1)
    if a == b:
        raise at.fail("to", f"the same node as from ({a})")
    return a, b


def _versus(source: str, raw: Any, mach: MachineConfig | None, dur: int) -> Versus | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise ScenarioError(f"{source}: versus: expected a table ([versus] from = 1, to = 2, "
                            f"at = \"2s\"), got {raw!r}")
    at = _At(source, raw, "versus")
    at.check_keys(("from", "to", "at", "window", "online"))
    maxn = mach.max_numnodes if mach else C.MAX_MAX_NUMNODES
    a, b = _move(at, maxn)
    if mach is not None and not any(n == a for _s, _e, n in mach.ram):
        raise at.fail("from", f"node {a} has no boot memory to move")
    t = at.duration("at")
    if not 0 < t < dur:
        raise at.fail("at", f"must be inside the run (0, {dur / NS:g} s)")
    window = at.duration("window", dur - t)
    if not 0 < window <= dur - t:
        raise at.fail("window", f"must be > 0 and end by the end of the run "
                                f"({(dur - t) / NS:g} s after at)")
    return Versus(a, b, t, window, _online_type(at, "online"))


def parse_scenario(text: str, source: str = "<scenario>",
                   base: Path | None = None) -> Scenario:
    """Parse and check a scenario's TOML text."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(f"{source}: not valid TOML: {exc}") from None
    except RecursionError:
        raise ScenarioError(f"{source}: not valid TOML: nested too deeply") from None
    at = _At(source, raw)
    at.check_keys(_TOP_KEYS)
    dur = at.duration("duration")
    if dur <= 0:
        raise at.fail("duration", "must be > 0")
    sample = at.duration("sample", min(dur, NS // 10))
    if sample <= 0:
        raise at.fail("sample", "must be > 0")
    mat = _At(source, at.get("machine", dict, {}), "machine")
    mach: MachineConfig | None = None
    mfrom: str | None = None
    if "from" in mat.tbl:
        mfrom = _machine_from(mat, base)
    else:
        mach = _machine(mat)
        try:
            from ..mm.topology import Topology

            Topology(mach.max_numnodes, mach.cpu_to_node, mach.distance)
        except DnumaError as exc:
            raise ScenarioError(f"{source}: machine: {exc}") from None
    max_order = mach.profile.max_page_order if mach else \
        max(p.max_page_order for p in C.PROFILES.values())
    tasks = _tasks(source, raw.get("task"), len(mach.cpu_to_node) if mach else None,
                   max_order, dur)
    _check_work(at, tasks, dur, sample)
    if sum(t.adopt for t in tasks) > 1:
        raise ScenarioError(f"{source}: task: only one task may adopt the boot allocations")
    events = _events(source, raw.get("event"), base, dur)
    versus = _versus(source, raw.get("versus"), mach, dur)
    from .migration import parse_policy  # (it raises ScenarioError: imported here)

    migration = None if "migration" not in raw else \
        parse_policy(raw["migration"], f"{source}: migration")
    return Scenario(name=at.get("name", str, Path(source).stem),
                    description=at.get("description", str, ""), machine=mach, tasks=tasks,
                    events=events, duration=dur, sample=sample,
                    seed=at.int_("seed", 0, 0), source=source, machine_from=mfrom,
                    versus=versus, migration=migration, raw=raw)


def load_scenario(path: str | Path) -> Scenario:
    """A scenario from a file, or a shipped one by name (see ``builtin_scenarios``)."""
    p = Path(path)
    if not p.exists() and str(path) in builtin_scenarios():
        return parse_scenario(builtin_scenarios()[str(path)], f"{path}.toml")
    try:
        text = p.read_text()
    except OSError as exc:
        raise ScenarioError(f"{path}: cannot read: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise ScenarioError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    return parse_scenario(text, str(path), p.parent)


def builtin_scenarios() -> dict[str, str]:
    """Shipped scenarios: name -> TOML text."""
    d = resources.files("dnuma.sim") / "scenarios"
    return {f.name.removesuffix(".toml"): f.read_text() for f in sorted(d.iterdir(),
                                                                         key=lambda f: f.name)
            if f.name.endswith(".toml")}
