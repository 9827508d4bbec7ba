"""The comparison: the model imports a guest's first snapshot, makes the
same steps, and each compared field of every later snapshot is set beside
the kernel's.

A row is ``agree``, ``explained`` (differs, with a one-line reason from the
scenario or :data:`EXPLAINED`) or ``unexplained``; and ``copied`` when the
model's value came from the import rather than from its own computation
(a field only copied proves nothing; the table says so).
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..io.export import write_sysroot
from ..io.host import boot_from_host
from ..mm import sysctl
from ..mm.constants import MAX_NR_ZONES, ZONE_NAMES
from ..mm.errors import DnumaError
from ..mm.machine import Machine
from ..mm.nodemask import bitmap_parselist
from ..sim.replay import replay_trace
from .fields import buddyinfo_fields, tree_fields
from .mirror import CPU_RECOMPUTES, HOTPLUG_RECOMPUTES, Mirror, room_pfn
from .scenario import HOTPLUG_KINDS, OracleScenario

#: differences the comparer explains for every scenario: field pattern (``*``
#: for any run) -> reason
EXPLAINED: dict[str, str] = {}
#: differences explained in the imported snapshot itself
BOOT: dict[str, str] = {
    "zone[*].free*": "the zone's free lists moved while the guest read them (its "
                     "buddyinfo differs just before and just after kpageflags, which the "
                     "import's free lists come from)",
    "node[*].MemFree": "the guest reads its files one after another while it runs: node "
                       "meminfo is read before kpageflags, which the import's free pages "
                       "come from",
}
#: per-migratetype free lists of a zone that held still: kpageflags carries
#: no migratetype, and pagetypeinfo says how many pageblocks of each type a
#: zone has, not which; the per-order totals must agree all the same
MIGRATETYPE_UNKNOWN = ("kpageflags carries no migratetype: the import knows how many "
                       "pageblocks of each type the zone has (pagetypeinfo), not which, so "
                       "free blocks may sit on another type's list (the per-order totals "
                       "agree)")
#: differences explained at steps that replay no trace: the guest's shell
#: and its snapshot copies allocate between the steps, the model does not
UNTRACED: dict[str, str] = {
    "zone[*].free*": "the guest allocates between snapshots (its shell and copies); the "
                     "model replays no trace at this step",
    "node[*].MemFree": "the guest allocates between snapshots (its shell and copies); the "
                       "model replays no trace at this step",
}

#: differences explained at a traced step: its trace ends once the guest has
#: read buddyinfo; the files read after it moved on their own
TRACED: dict[str, str] = {
    "node[*].MemFree": "the guest reads node meminfo after its trace stopped (the zone free "
                       "lists, read inside the trace, are what the replay predicts)",
    "zone[*].free[*]": MIGRATETYPE_UNKNOWN,
}
#: field families a traced step's replay computes
REPLAY_COMPUTES = ("zone[*].free_by_order", "zone[*].free[*]", "node[*].MemFree")

#: fields the guest collects since hotplug steps came (issue 13): a recording
#: made before lacks them, which is no difference
LATER_FIELDS = ("memory.auto_online_blocks", "cpus.*", "step.result")

#: field families the import computes itself rather than copying from the
#: snapshot (the rest of a boot row was read from the guest's files); the
#: model holds no watermark_boost at all, so its 0 is not a copy either
IMPORT_COMPUTES = ("vm.min_free_kbytes", "zone[*].boost", "zone[*].min", "zone[*].low",
                   "zone[*].high", "zone[*].promo", "zone[*].protection", "node[*].MemFree",
                   "node[*].MemTotal", "zone[*].free*", "zone[*].pcp[*].batch",
                   "zone[*].pcp[*].stat_threshold")

#: field families each kind of step makes the model recompute (rows of other
#: families hold what the import copied from the first snapshot)
RECOMPUTES: dict[str, tuple[str, ...]] = {
    "min_free_kbytes": ("vm.min_free_kbytes", "zone[*].min", "zone[*].low", "zone[*].high",
                        "zone[*].promo"),
    "watermark_scale_factor": ("zone[*].low", "zone[*].high", "zone[*].promo"),
    "lowmem_reserve_ratio": ("zone[*].protection",),
    "percpu_pagelist_high_fraction": (),
    "thp": ("vm.min_free_kbytes", "zone[*].min", "zone[*].low", "zone[*].high",
            "zone[*].promo"),
    "hotplug": HOTPLUG_RECOMPUTES,
    "hotremove": HOTPLUG_RECOMPUTES,
    "memory_block": HOTPLUG_RECOMPUTES,
    "auto_online_blocks": ("memory.auto_online_blocks", "step.result"),
    "cpu_offline": CPU_RECOMPUTES,
    "cpu_online": CPU_RECOMPUTES,
}


@dataclass
class Row:
    step: str
    field: str
    kernel: Any
    model: Any
    status: str  # agree | explained | unexplained
    copied: bool
    reason: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {"step": self.step, "field": self.field, "kernel": _plain(self.kernel),
                "model": _plain(self.model), "status": self.status, "copied": self.copied,
                "reason": self.reason}


def _plain(v: Any) -> Any:
    return list(v) if isinstance(v, tuple) else v


@dataclass
class Comparison:
    scenario: str
    kernel_release: str
    rows: list[Row] = field(default_factory=list)
    not_mirrored: list[str] = field(default_factory=list)  # steps the model cannot make yet
    #: per traced step, what its replay did: events replayed and anomalies
    #: (the trace's pages the model had to take as the trace says)
    replays: dict[str, dict[str, dict[str, int]]] = field(default_factory=dict)

    def counts(self) -> dict[str, int]:
        c = {"compared": len(self.rows), "agree": 0, "explained": 0, "unexplained": 0,
             "copied": sum(r.copied for r in self.rows)}
        for r in self.rows:
            c[r.status] += 1
        return c

    def as_dict(self) -> dict[str, Any]:
        return {"scenario": self.scenario, "kernel": self.kernel_release, **self.counts(),
                "not_mirrored": self.not_mirrored, "replays": self.replays,
                "rows": [r.as_dict() for r in self.rows]}


#: watermark_boost_factor's default (mm/page_alloc.c)
WATERMARK_BOOST_FACTOR = 15000
_WMARKS = ("min", "low", "high", "promo")


def _zone_of(key: str) -> str:
    return key.split("].", 1)[0] + "]"


#: at most this many pages a traced step's zone may hold more on the kernel's
#: buddy lists than the model's, all of them on the model's pcp lists: frees
#: free_unref_page put straight on the buddy lists because the CPU's pcp lock
#: was taken (its trylock) fire no event that says so; they are rare
TRYLOCK_SLACK = 64


def _pages(by_order: Any) -> int:
    return sum(int(n) << o for o, n in enumerate(by_order))


def untraced_free_reason(key: str, kern: dict[str, Any], mod: dict[str, Any],
                         m: Machine) -> str:
    """A traced step's zone free lists that differ only by a few pages the
    model holds on that zone's pcp lists and the kernel on its buddy lists;
    "" otherwise."""
    a, b = kern.get(key), mod.get(key)
    if not key.endswith(".free_by_order") or not isinstance(a, tuple) \
            or not isinstance(b, tuple):
        return ""
    nid, name = _zone_of(key)[len("zone["):-1].split("/")
    if name not in ZONE_NAMES:
        return ""
    gz = int(nid) * MAX_NR_ZONES + ZONE_NAMES.index(name)
    held = int(m.S.pcp_count[:, gz].sum())
    more = _pages(a) - _pages(b)
    if 0 < more <= min(held, TRYLOCK_SLACK):
        return (f"the kernel's buddy lists hold {more} pages more, of the {held} the model "
                "holds on this zone's pcp lists: a free free_unref_page put straight on the "
                "buddy lists (its pcp trylock failed) fires no event that says so")
    return ""


def checked_reason(key: str, kern: dict[str, Any], mod: dict[str, Any], m: Machine,
                   prev: dict[str, Any] | None = None) -> str:
    """A reason for a difference the kernel's own numbers account for, checked
    here rather than assumed: watermark_boost (audit A8) and kswapd's pressure
    stats threshold, neither of which the model keeps.  ``prev``: the kernel's
    fields at the snapshot before (kswapd may have woken under the watermarks
    of then).  "" when none holds."""
    zone, leaf = _zone_of(key), key.rsplit(".", 1)[-1]
    a, b = kern.get(key), mod.get(key)
    if not (isinstance(a, int) and isinstance(b, int)):
        return ""
    boost = kern.get(f"{zone}.boost", 0)
    if leaf == "boost" and b == 0 and a > 0:
        # boost_watermark(): pageblock_nr_pages a steal, up to high * factor / 10000
        pb = m.config.profile.pageblock_nr_pages
        high = kern.get(f"{zone}.high", 0) - a
        max_boost = max(pb, high * WATERMARK_BOOST_FACTOR // 10000)
        if a % pb == 0 or a == max_boost:
            return (f"watermark_boost {a}: the guest's own allocations stole a pageblock "
                    "of another migratetype since the watermarks were last set "
                    "(boost_watermark; kswapd clears it); the model keeps no boost "
                    "(audit A8)")
    if leaf in _WMARKS and boost and a - boost == b:
        return (f"zoneinfo adds watermark_boost ({boost}) to each watermark "
                "(wmark_pages); without it kernel and model agree")
    if leaf == "stat_threshold" and f"{zone}.low" in mod:
        # calculate_pressure_threshold(), set when kswapd woke on the node:
        # under today's watermarks, or those before a write (a write of
        # watermark_scale_factor does not refresh the thresholds)
        marks = [d for d in (mod, prev or {}) if f"{zone}.low" in d and f"{zone}.min" in d]
        if any(a == min(125, max(1, (d[f"{zone}.low"] - d[f"{zone}.min"]) // m.nr_cpus))
               for d in marks):
            return ("kswapd is awake on this node (the write left free pages under the "
                    "high watermark) and set calculate_pressure_threshold, which the "
                    "model's watermarks give; the model has no kswapd")
    return ""


def glob_match(name: str, pattern: str) -> bool:
    """``pattern`` with ``*`` for any run of characters (brackets are literal)."""
    return re.fullmatch(".*".join(map(re.escape, pattern.split("*"))), name) is not None


def _matches(name: str, patterns: Iterable[str]) -> bool:
    return any(glob_match(name, p) for p in patterns)


def model_fields(m: Machine) -> dict[str, Any]:
    """The compared fields of the model, read from its exported tree."""
    with tempfile.TemporaryDirectory(prefix="dnuma-oracle-") as td:
        out = tree_fields(write_sysroot(m, Path(td) / "sysroot"))
    out["vm.min_free_kbytes"] = m.min_free_kbytes
    return out


def still_zones(snap: Path) -> list[str]:
    """The zones (``zone[N/NAME]``) whose buddyinfo was the same when the
    guest read it first, just before and just after kpageflags: their free
    lists did not move while the snapshot was taken."""
    proc = snap / "proc"
    reads = [proc / "buddyinfo", proc / "buddyinfo.before-kpageflags",
             proc / "buddyinfo.after-kpageflags"]
    if not all(p.is_file() for p in reads):
        return []
    first, *rest = (buddyinfo_fields(p.read_text()) for p in reads)
    return [k.removesuffix(".free_by_order") for k, v in first.items()
            if all(r.get(k) == v for r in rest)]


def snapshot_dirs(root: Path) -> list[Path]:
    """The step folders of a recorded run, in order (``NN-NAME``)."""
    return sorted((p for p in root.iterdir() if p.is_dir() and p.name[:2].isdigit()),
                  key=lambda p: p.name)


def compare(sc: OracleScenario, snapshots: Path,
            explained: dict[str, str] | None = None) -> Comparison:
    """Compare the model with the guest's snapshots of ``sc`` (a folder of
    ``NN-STEP/`` trees: 00-boot, then one per step)."""
    dirs = snapshot_dirs(snapshots)
    if len(dirs) != len(sc.steps) + 1:
        raise ValueError(f"{snapshots}: {len(dirs)} snapshots for {len(sc.steps) + 1} steps")
    why = {**EXPLAINED, **(explained or {})}
    boot = dirs[0]
    release = (boot / "release").read_text().strip() if (boot / "release").exists() else "?"
    kerns = [tree_fields(d) for d in dirs]
    nr_possible = len(bitmap_parselist(kerns[0].get("nodes.possible", "0")))
    maxmem = None  # room for the run's DIMMs: up to the last block any snapshot has
    if any(st.kind in HOTPLUG_KINDS for st in sc.steps):
        bsb = boot / "sys" / "devices" / "system" / "memory" / "block_size_bytes"
        maxmem = room_pfn(kerns, int(bsb.read_text(), 16)) if bsb.is_file() else None
    cmp = Comparison(sc.name, release)
    mirror = Mirror()
    try:
        m = boot_from_host(boot, max_numnodes=nr_possible, maxmem_pfn=maxmem).machine
    except DnumaError as exc:  # a machine the model cannot take: one row says why
        cmp.rows.append(Row("boot", "import", "booted", f"refused: {exc}", "unexplained",
                            False))
        return cmp
    computed: set[str] = set(IMPORT_COMPUTES)
    prev: dict[str, Any] | None = None  # the kernel's fields at the snapshot before
    for i, d in enumerate(dirs):
        step = "boot" if i == 0 else sc.steps[i - 1].name
        traced = i > 0 and sc.steps[i - 1].traced
        if traced:  # from the snapshot before, the guest's own trace
            m = boot_from_host(dirs[i - 1], max_numnodes=nr_possible,
                               maxmem_pfn=maxmem).machine
            sysctl.read_lowmem_reserve_ratio(m)  # as that snapshot did after its zoneinfo
            r = replay_trace(d / "trace", machine=m, sample=None, follow=True)
            cmp.replays[step] = {"replayed": r.counts, "anomalies": r.anomalies}
            ts = r.stats  # a ring buffer that overwrote, or LOST lines: no prediction holds
            lost = ts.lost_events + ts.lost_lines + (ts.entries_written or 0) - \
                (ts.entries_in_buffer or 0)
            if lost:
                cmp.rows.append(Row(step, "trace.lost_events", lost, 0, "unexplained", False,
                                    "the guest's trace lost events (a larger buffer_size_kb)"))
            computed = {*IMPORT_COMPUTES, *REPLAY_COMPUTES}
        result = None
        if i > 0 and not traced:
            st = sc.steps[i - 1]
            ok, result = mirror.apply(m, st, kerns[i])
            if not ok:
                cmp.not_mirrored.append(step)
            else:
                computed.update(RECOMPUTES.get(st.args[0] if st.kind == "sysctl" else st.kind,
                                               ()))
        kern, mod = kerns[i], model_fields(m)
        if result is not None:
            mod["step.result"] = result
        # the guest's snapshot reads vm.lowmem_reserve_ratio after zoneinfo, and
        # that read recomputes lowmem_reserve: so does the model's
        sysctl.read_lowmem_reserve_ratio(m)
        computed.add("zone[*].protection")
        why_here = {**(BOOT if i == 0 else TRACED if traced else UNTRACED), **why}
        if i == 0:  # a zone whose free lists held still while the guest read
            for z in still_zones(d):  # them is no excuse: it must agree
                why_here[f"{z}.free_by_order"] = ""
                why_here[f"{z}.free[*]"] = MIGRATETYPE_UNKNOWN
        for key in sorted(set(kern) | set(mod)):
            if key not in kern and _matches(key, LATER_FIELDS):
                continue  # a recording from before the guest collected it
            a, b = kern.get(key, "(absent)"), mod.get(key, "(absent)")
            copied = not _matches(key, computed)
            if a == b:
                cmp.rows.append(Row(step, key, a, b, "agree", copied))
                continue
            reason = (checked_reason(key, kern, mod, m, prev)
                      or (untraced_free_reason(key, kern, mod, m) if traced else "")
                      or next((r for p, r in reversed(why_here.items())
                               if glob_match(key, p)), ""))
            cmp.rows.append(Row(step, key, a, b, "explained" if reason else "unexplained",
                                copied, reason))
        prev = kern
    return cmp
