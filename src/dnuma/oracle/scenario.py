"""Oracle scenarios (TOML): a QEMU machine and the steps run in the guest.

::

    name = "rfc"
    description = "..."
    [machine]                    # one table per QEMU node, in QEMU's order
    node = [{ cpus = "0-3", mem = "64M" }, { cpus = "4-7", mem = "64M" }]
    distance = [[10, 20], [20, 10]]    # optional (QEMU's default: 10 / 20)
    [[step]]                     # after the boot snapshot, in order
    name = "wsf-100"
    sysctl = { watermark_scale_factor = 100 }   # /proc/sys/vm/NAME
    [[step]]
    name = "anon"
    workload = "anon 32 fork 16"   # the traced workload (workload.c): OP MIB ...
                                   # (anon, cache, fork, pin MIB; bind NODE)

A ``workload`` step runs the static program ``dnuma-workload`` with the kmem
tracepoints on, from just before the previous snapshot reads kpageflags to
just after this one reads buddyinfo; its snapshot holds the trace.

Hotplug steps::

    hotplug = { node = 1, size = "256M", id = "dimm1" }  # QMP: a pc-dimm on QEMU node 1
    hotremove = "dimm1"                                  # QMP: device_del
    memory_block = { block = 33, state = "offline" }     # memory33/state
    cpu_offline = 5                                      # cpu5/online <- 0
    cpu_online = 5
    auto_online_blocks = "online_movable"                # how hot-added blocks come up

A write the kernel refuses is no error: its exit status and message are kept
in the snapshot (``result``) and compared as a field.

A node without ``cpus`` is CPU-less, one without ``mem`` memoryless.  The
kernel numbers nodes its own way (SRAT order, CPUs first): the comparison
reads what the guest reports, never QEMU's ids.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from ..mm.errors import ConfigError
from ..mm.machine import parse_size
from ..mm.nodemask import bitmap_parselist

#: the vm sysctls a step may write (each makes the kernel recompute something)
SYSCTLS = ("min_free_kbytes", "watermark_scale_factor", "lowmem_reserve_ratio",
           "percpu_pagelist_high_fraction")
THP_MODES = ("always", "madvise", "never")
#: what a memory block's ``state`` file takes (drivers/base/memory.c)
BLOCK_STATES = ("online", "offline", "online_kernel", "online_movable")
#: hotplug step kinds: the QMP ones, then the guest's sysfs writes
QMP_KINDS = ("hotplug", "hotremove")
HOTPLUG_KINDS = (*QMP_KINDS, "memory_block", "cpu_offline", "cpu_online", "auto_online_blocks")
MAX_DIMMS = 8  # QEMU -m slots=
#: what the traced workload can do (workload.c), each with a size in MiB
WORKLOAD_OPS = ("anon", "cache", "fork", "pin", "bind")
MAX_WORKLOAD_MIB = 4096
MAX_WORKLOAD_NODE = 1023  # bind NODE (workload.c)
MAX_GUEST_BYTES = 8 << 30  # TCG guests beyond this take minutes to boot


class OracleScenarioError(ConfigError):
    """A malformed oracle scenario (names the file and the key)."""


@dataclass(frozen=True)
class QemuNode:
    """One QEMU NUMA node: its CPUs and memory (bytes; 0: memoryless)."""

    cpus: tuple[int, ...]
    mem: int


@dataclass(frozen=True)
class Step:
    """A step in the guest: ``kind`` "sysctl" (``args``: name, value),
    "thp" (``args``: the mode), "workload" (``args``: OP, MIB, ...),
    "hotplug" (QEMU node, bytes, DIMM id), "hotremove" (DIMM id),
    "memory_block" (block, state), "cpu_offline" or "cpu_online" (cpu); a
    snapshot follows each."""

    name: str
    kind: str
    args: tuple[Any, ...]

    def shell(self) -> str:
        """The guest's commands for this step."""
        if self.kind == "sysctl":
            name, value = self.args
            return f"echo '{value}' > /proc/sys/vm/{name}\n"
        if self.kind == "workload":
            return f"/bin/dnuma-workload {' '.join(map(str, self.args))}\n"
        if self.kind == "hotplug":
            node, size, dimm = self.args
            return f"qmp_wait add {dimm} {node} {size}\n"
        if self.kind == "hotremove":
            return f"qmp_wait remove {self.args[0]}\n"
        if self.kind == "memory_block":
            block, state = self.args
            return f"write_result {state} /sys/devices/system/memory/memory{block}/state\n"
        if self.kind == "auto_online_blocks":
            return f"write_result {self.args[0]} /sys/devices/system/memory/auto_online_blocks\n"
        if self.kind in ("cpu_offline", "cpu_online"):
            return (f"write_result {int(self.kind == 'cpu_online')} "
                    f"/sys/devices/system/cpu/cpu{self.args[0]}/online\n")
        return f"echo {self.args[0]} > /sys/kernel/mm/transparent_hugepage/enabled\n"

    @property
    def traced(self) -> bool:
        return self.kind == "workload"


@dataclass(frozen=True)
class OracleScenario:
    name: str
    description: str
    nodes: tuple[QemuNode, ...]
    distance: tuple[tuple[int, ...], ...] | None
    steps: tuple[Step, ...]
    source: str

    @property
    def nr_cpus(self) -> int:
        return sum(len(n.cpus) for n in self.nodes)

    @property
    def mem(self) -> int:
        return sum(n.mem for n in self.nodes)

    @property
    def hotplug_bytes(self) -> int:
        """The memory the scenario's DIMMs add in all (QEMU's maxmem - mem)."""
        return sum(s.args[1] for s in self.steps if s.kind == "hotplug")

    @property
    def traced(self) -> bool:
        """Whether a step runs the traced workload (the guest needs it)."""
        return any(s.traced for s in self.steps)

    def steps_script(self) -> str:
        """/steps for the guest: the boot snapshot, then each step and its
        snapshot; a snapshot before a traced step starts the trace
        (``trace-next``), a traced step's own snapshot stops it (``traced``)."""
        out = ["trace_setup\n"] if self.traced else []
        names = ["boot", *(s.name for s in self.steps)]
        for i, name in enumerate(names):
            if i:
                out.append(self.steps[i - 1].shell())
            flags = [f for f, on in (("traced", i and self.steps[i - 1].traced),
                                     ("trace-next", i < len(self.steps)
                                      and self.steps[i].traced)) if on]
            out.append(" ".join(["step", name, *flags]) + "\n")
        return "".join(out)


def _fail(source: str, key: str, msg: str) -> OracleScenarioError:
    return OracleScenarioError(f"{source}: {key}: {msg}")


def _hotplug_args(source: str, key: str, kind: str, value: Any, nodes: list[QemuNode],
                  steps: list[Step]) -> tuple[Any, ...]:
    """A hotplug step's value, checked: a DIMM's QEMU node, size and id; the
    id of a DIMM added before; a memory block and state; a CPU."""
    where = f"{key}.{kind}"
    dimms = [s.args[2] for s in steps if s.kind == "hotplug"]
    if kind == "hotplug":
        if not isinstance(value, dict) or set(value) - {"node", "size", "id"} or \
                "node" not in value or "size" not in value:
            raise _fail(source, where, "expected { node = N, size = \"256M\"[, id = \"ID\"] }")
        node = value["node"]
        if not isinstance(node, int) or isinstance(node, bool) or not 0 <= node < len(nodes):
            raise _fail(source, f"{where}.node", f"expected a QEMU node 0 to {len(nodes) - 1}")
        try:
            size = parse_size(value["size"])
        except (ValueError, ConfigError) as exc:
            raise _fail(source, f"{where}.size", str(exc)) from None
        if size <= 0 or size % (128 << 20):
            raise _fail(source, f"{where}.size", "expected a multiple of 128M (a memory block)")
        dimm = value.get("id", f"dimm{len(dimms)}")
        if not isinstance(dimm, str) or not dimm.replace("-", "").isalnum() or dimm in dimms:
            raise _fail(source, f"{where}.id", "letters, digits and '-', once per scenario")
        if len(dimms) >= MAX_DIMMS:
            raise _fail(source, where, f"at most {MAX_DIMMS} DIMMs")
        return (node, size, dimm)
    if kind == "hotremove":
        if value not in dimms:
            raise _fail(source, where, f"{value!r}: not a DIMM a step before added "
                                       f"({', '.join(dimms) or 'none'})")
        return (value,)
    if kind == "auto_online_blocks":
        if value not in BLOCK_STATES:
            raise _fail(source, where, f"expected one of {', '.join(BLOCK_STATES)}")
        return (value,)
    if kind == "memory_block":
        if not isinstance(value, dict) or set(value) != {"block", "state"} or \
                not isinstance(value["block"], int) or value["block"] < 0 or \
                value["state"] not in BLOCK_STATES:
            raise _fail(source, where, f"expected {{ block = N, state = one of "
                                       f"{', '.join(BLOCK_STATES)} }}")
        return (value["block"], value["state"])
    ncpu = sum(len(n.cpus) for n in nodes)
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < ncpu:
        raise _fail(source, where, f"expected a CPU 0 to {ncpu - 1}")
    return (value,)


def _workload_args(source: str, key: str, value: Any) -> tuple[Any, ...]:
    """``"anon 32 fork 16"`` -> ("anon", 32, "fork", 16), checked as workload.c
    does: OP MIB, or ``bind NODE``."""
    words = value.split() if isinstance(value, str) else []
    if not words or len(words) % 2:
        raise _fail(source, key, "expected pairs of OP MIB, e.g. \"anon 32 fork 16\"")
    args: list[Any] = []
    for op, mib in zip(words[::2], words[1::2], strict=True):
        if op not in WORKLOAD_OPS:
            raise _fail(source, key, f"{op!r}: expected one of {', '.join(WORKLOAD_OPS)}")
        if op == "bind":
            if not mib.isdigit() or int(mib) > MAX_WORKLOAD_NODE:
                raise _fail(source, key, f"bind {mib!r}: expected a node 0 to "
                                         f"{MAX_WORKLOAD_NODE}")
        elif not mib.isdigit() or not 1 <= int(mib) <= MAX_WORKLOAD_MIB:
            raise _fail(source, key, f"{op} {mib!r}: expected 1 to {MAX_WORKLOAD_MIB} MiB")
        args += [op, int(mib)]
    return tuple(args)


def parse_oracle_scenario(text: str, source: str = "<oracle>") -> OracleScenario:
    """Parse and check an oracle scenario's TOML text."""
    try:
        raw = tomllib.loads(text)
    except (tomllib.TOMLDecodeError, RecursionError) as exc:
        raise OracleScenarioError(f"{source}: not valid TOML: {exc}") from None
    for k in raw:
        if k not in ("name", "description", "machine", "step"):
            raise _fail(source, k, "unknown key (expected name, description, machine, step)")
    mach = raw.get("machine")
    if not isinstance(mach, dict) or not isinstance(mach.get("node"), list) or \
            not mach["node"]:
        raise _fail(source, "machine.node", "expected a list of node tables")
    nodes = []
    seen: set[int] = set()
    for i, nd in enumerate(mach["node"]):
        key = f"machine.node[{i}]"
        if not isinstance(nd, dict) or set(nd) - {"cpus", "mem"}:
            raise _fail(source, key, "expected a table of cpus and mem")
        try:
            cpus = tuple(bitmap_parselist(str(nd.get("cpus", "")), 256))
            mem = parse_size(nd["mem"]) if "mem" in nd else 0
        except (ValueError, ConfigError) as exc:
            raise _fail(source, key, str(exc)) from None
        if seen & set(cpus):
            raise _fail(source, f"{key}.cpus", "a CPU is on two nodes")
        seen |= set(cpus)
        nodes.append(QemuNode(cpus, mem))
    if sorted(seen) != list(range(len(seen))) or not seen:
        raise _fail(source, "machine.node", "the CPUs must be 0..N-1, each on one node")
    total = sum(n.mem for n in nodes)
    if not 0 < total <= MAX_GUEST_BYTES:
        raise _fail(source, "machine.node", f"{total} bytes of memory in all; give 1 byte to "
                                            f"{MAX_GUEST_BYTES >> 30} GiB")
    dist = mach.get("distance")
    if dist is not None:
        nn = len(nodes)
        if not (isinstance(dist, list) and len(dist) == nn and
                all(isinstance(r, list) and len(r) == nn and
                    all(isinstance(x, int) and 10 <= x <= 254 for x in r) for r in dist)):
            raise _fail(source, "machine.distance", f"expected {nn} rows of {nn} integers in "
                                                    "[10, 254]")
        dist = tuple(tuple(r) for r in dist)
    steps: list[Step] = []
    for i, st in enumerate(raw.get("step", [])):
        key = f"step[{i}]"
        if not isinstance(st, dict):
            raise _fail(source, key, "expected a table")
        all_kinds = ("sysctl", "thp", "workload", *HOTPLUG_KINDS)
        kinds = [k for k in all_kinds if k in st]
        if len(kinds) != 1 or set(st) - {"name", *all_kinds}:
            raise _fail(source, key, f"expected a name and one of {', '.join(all_kinds)}")
        if kinds[0] == "sysctl":
            tbl = st["sysctl"]
            if not isinstance(tbl, dict) or len(tbl) != 1:
                raise _fail(source, f"{key}.sysctl", "expected one vm sysctl = value")
            (sysctl_name, value), = tbl.items()
            if sysctl_name not in SYSCTLS:
                raise _fail(source, f"{key}.sysctl", f"{sysctl_name!r}: expected one of "
                                                     f"{', '.join(SYSCTLS)}")
            if isinstance(value, list):
                value = " ".join(str(v) for v in value)
            if not isinstance(value, int | str) or isinstance(value, bool):
                raise _fail(source, f"{key}.sysctl.{sysctl_name}", "expected an integer or a list")
            args: tuple[Any, ...] = (sysctl_name, value)
        elif kinds[0] == "workload":
            args = _workload_args(source, f"{key}.workload", st["workload"])
        elif kinds[0] in HOTPLUG_KINDS:
            args = _hotplug_args(source, key, kinds[0], st[kinds[0]], nodes, steps)
        else:
            if st["thp"] not in THP_MODES:
                raise _fail(source, f"{key}.thp", f"expected one of {', '.join(THP_MODES)}")
            args = (st["thp"],)
        name = st.get("name", f"{kinds[0]}{i}")
        if not isinstance(name, str) or not name.replace("-", "").isalnum():
            raise _fail(source, f"{key}.name", "letters, digits and '-' only")
        steps.append(Step(name, kinds[0], args))
    return OracleScenario(str(raw.get("name", Path(source).stem)),
                          str(raw.get("description", "")), tuple(nodes), dist, tuple(steps),
                          source)


def builtin_oracle_scenarios() -> dict[str, str]:
    """Shipped oracle scenarios: name -> TOML text."""
    d = resources.files("dnuma.oracle") / "scenarios"
    return {f.name.removesuffix(".toml"): f.read_text()
            for f in sorted(d.iterdir(), key=lambda f: f.name) if f.name.endswith(".toml")}


def load_oracle_scenario(arg: str) -> OracleScenario:
    """A file, or a shipped scenario by name."""
    p = Path(arg)
    if not p.is_file() and arg in builtin_oracle_scenarios():
        return parse_oracle_scenario(builtin_oracle_scenarios()[arg], f"{arg}.toml")
    try:
        return parse_oracle_scenario(p.read_text(), arg)
    except OSError as exc:
        raise OracleScenarioError(f"{arg}: cannot read: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise OracleScenarioError(f"{arg}: not UTF-8 text (byte {exc.start})") from None
