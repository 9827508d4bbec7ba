"""DNUMA next to hotplug: one scenario's ``[versus]`` move (node ``from``'s
boot memory to node ``to`` at ``at``) made twice, from the same boot and the
same task seed: once by a DNUMA commit (the pages change node in place) and
once the way Linux does it today (a ``replug`` event: each memory block
offlined, its movable pages migrated, removed, and added back on the other
node).  :func:`run_versus` runs both and puts them side by side."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from ..mm.constants import NUMASTAT_NAMES, PG_hole
from ..mm.machine import Machine
from ..mm.memlayout import MemLayout
from .events import NS
from .run import Observer, RunResult, run_scenario
from .scenario import LayoutEvent, Scenario, ScenarioError, Versus

ARMS = ("dnuma", "hotplug")
_LOCAL = NUMASTAT_NAMES.index("local_node")
_OTHER = NUMASTAT_NAMES.index("other_node")
_PRIO_BEFORE = -1  # a hook before the events of its instant


def _numa_totals(m: Machine) -> tuple[int, int]:
    """Machine-wide numastat (local_node, other_node), pages."""
    v = m.S.numa_stat.sum(axis=0)
    return int(v[_LOCAL]), int(v[_OTHER])


def _node_present(m: Machine, nid: int) -> int:
    return int(m.NODE_DATA(nid).node_present_pages)


def _layout_pages(m: Machine, nid: int) -> int:
    """Present pages the effective layout puts on ``nid``."""
    pfns = np.flatnonzero((m.S.page_flags & PG_hole) == 0)
    return int(np.count_nonzero(m.effective.lookup_nocount(pfns) == nid))


def moved_layout(m: Machine, v: Versus) -> MemLayout:
    """The DNUMA arm's layout: the machine's boot layout with node ``from``'s
    ranges given to node ``to``."""
    ranges = [(s, e, v.to_nid if n == v.from_nid else n) for s, e, n in m.layout]
    return MemLayout.from_ranges(ranges)


def arm_scenario(sc: Scenario, arm: str, m: Machine) -> Scenario:
    """``sc`` with its versus move as an event: a ``ranges`` commit (arm
    "dnuma") or a ``replug`` (arm "hotplug"), named after the arm."""
    v = sc.versus
    if v is None:
        raise ScenarioError(f"{sc.source}: no [versus] table")
    if arm == "dnuma":
        ev = LayoutEvent(v.at, "ranges", [(s, e, n) for s, e, n in moved_layout(m, v)], arm)
    elif arm == "hotplug":
        ev = LayoutEvent(v.at, "replug", (v.from_nid, v.to_nid, v.online), arm)
    else:
        raise ValueError(f"arm {arm!r}: expected one of {ARMS}")
    return replace(sc, events=tuple(sorted([*sc.events, ev], key=lambda e: e.at)))


@dataclass
class ArmResult:
    """One arm: its run and what the move cost (pages unless named)."""

    arm: str
    run: RunResult
    moving: int  # node from's present pages at ``at`` (what should move)
    figures: dict[str, Any] = field(default_factory=dict)


def _probe(v: Versus, marks: dict[str, Any]) -> list[tuple[int, int, Callable[[Machine], None]]]:
    def before(m: Machine) -> None:
        marks["at"] = _numa_totals(m)
        marks["moving"] = _node_present(m, v.from_nid)
        marks["to_before"] = _node_present(m, v.to_nid)
        marks["layout_to_before"] = _layout_pages(m, v.to_nid)

    def window(m: Machine) -> None:
        marks["window"] = _numa_totals(m)

    return [(v.at, _PRIO_BEFORE, before), (v.at + v.window, 2, window)]


def _figures(arm: str, res: RunResult, v: Versus, marks: dict[str, Any]) -> dict[str, Any]:
    m = res.machine
    at_s = v.at / NS
    (l0, o0), (l1, o1) = marks["at"], marks["window"]
    oend = _numa_totals(m)[1]
    f: dict[str, Any] = {"arm": arm}
    if arm == "dnuma":
        st = next(s for s in res.steps if s.name == "dnuma")
        r = st.report
        f.update(usable_after_s=0.0, model_wall_ms=round(r.seconds * 1e3, 3),
                 kernel_estimate_ms=None, pages_migrated=0,
                 pages_marked=r.pages_marked, free_pages_moved=r.free_pages_moved
                 + r.pcp_pages_moved, blocks_failed=[], unavailable_peak_pages=0,
                 unavailable_page_seconds=0.0)
    else:
        recs = [h for h in res.hotplug if h.name == "hotplug"]
        present = np.cumsum([h.present_delta for h in recs]) if recs else np.zeros(1)
        done = [h for h in recs if h.ok and h.present_delta > 0]
        away = 0.0  # page-seconds: each block out until it is back
        outs = [h for h in recs if h.ok and h.present_delta < 0]
        for h in outs:
            back = next((d for d in done if d.t >= h.t and d.blocks == h.blocks), None)
            end = back.t if back is not None else res.scenario.duration / NS
            away += -h.present_delta * (end - h.t)
        f.update(usable_after_s=round(done[-1].t - at_s, 6) if done else None,
                 model_wall_ms=round(sum(h.wall_ms for h in recs), 3),
                 kernel_estimate_ms=round(sum(h.kernel_ms for h in recs), 3),
                 pages_migrated=sum(h.pages_migrated for h in recs),
                 pages_marked=0, free_pages_moved=0,
                 blocks_failed=[f"{h.blocks[0]}:{h.errname}" for h in recs if not h.ok
                                and h.blocks],
                 unavailable_peak_pages=int(-min(0, int(present.min()))),
                 unavailable_page_seconds=round(away, 6))
    f.update(pages_to_move=marks["moving"],
             pages_on_to=_node_present(m, v.to_nid) - marks["to_before"],
             layout_on_to=_layout_pages(m, v.to_nid) - marks["layout_to_before"],
             pages_left_on_from=_node_present(m, v.from_nid),
             allocs_before=l0 + o0, allocs_window=(l1 - l0) + (o1 - o0),
             remote_allocs_window=o1 - o0,
             remote_allocs_to_end=oend - o0, misplaced_at_end=m.misplaced_pages(),
             moved_on_free=m.moved_on_free)
    return f


#: the side-by-side rows: (key, what it means)
ROWS: tuple[tuple[str, str], ...] = (
    ("pages_to_move", "pages of node FROM at the move"),
    ("layout_on_to", "pages the layout puts on TO at the end"),
    ("pages_on_to", "pages node TO holds at the end (page_nid)"),
    ("pages_left_on_from", "pages node FROM holds at the end"),
    ("usable_after_s", "virtual s until TO's memory is usable"),
    ("kernel_estimate_ms", "the kernel's time for it, estimated (ms)"),
    ("model_wall_ms", "the model's wall time for it (ms)"),
    ("pages_migrated", "pages migrated (copied)"),
    ("pages_marked", "allocated pages marked (move when freed)"),
    ("free_pages_moved", "free pages moved between lists"),
    ("unavailable_peak_pages", "pages unavailable at worst"),
    ("unavailable_page_seconds", "page-seconds unavailable"),
    ("blocks_failed", "blocks that refused to offline"),
    ("allocs_before", "allocations before the move (numastat)"),
    ("allocs_window", "allocations in the window"),
    ("remote_allocs_window", "of them remote (other_node)"),
    ("remote_allocs_to_end", "remote allocations, move to end"),
    ("moved_on_free", "pages moved on free (whole run)"),
    ("misplaced_at_end", "pages misplaced at the end"),
)


@dataclass
class VersusResult:
    scenario: Scenario
    arms: dict[str, ArmResult]

    def rows(self) -> list[dict[str, Any]]:
        """One row per figure: ``what``, then each arm's value."""
        v = self.scenario.versus
        assert v is not None
        out = []
        for key, what in ROWS:
            what = what.replace("FROM", str(v.from_nid)).replace("TO", str(v.to_nid))
            out.append({"figure": key, "what": what,
                        **{a: r.figures[key] for a, r in self.arms.items()}})
        return out

    def summary(self) -> dict[str, Any]:
        """JSON-able: the move, the side-by-side figures, each arm's summary."""
        v = self.scenario.versus
        assert v is not None
        return {"scenario": self.scenario.name, "source": self.scenario.source,
                "versus": {"from": v.from_nid, "to": v.to_nid, "at_s": v.at / NS,
                           "window_s": v.window / NS, "online": v.online},
                "figures": {a: r.figures for a, r in self.arms.items()},
                "arms": {a: r.run.summary() for a, r in self.arms.items()}}


def _told(fn: Callable[..., Any] | None, arm: str) -> Callable[..., Any] | None:
    """``fn`` with the arm as its first argument."""
    return None if fn is None else (lambda *a: fn(arm, *a))


def run_versus(sc: Scenario, machine: Callable[[], Machine],
               observe: Callable[[str, Machine], Sequence[Observer]] | None = None,
               progress: Callable[[str, float], None] | None = None,
               check: Callable[[Machine], None] | None = None) -> VersusResult:
    """Run ``sc``'s two arms, each on a fresh ``machine()`` with the same
    seed: "dnuma" (a commit giving node ``from``'s ranges to ``to``) and
    "hotplug" (a replug).  ``observe(arm, m)`` and ``progress(arm, t)`` as
    :func:`run_scenario`'s, told the arm."""
    v = sc.versus
    if v is None:
        raise ScenarioError(f"{sc.source}: no [versus] table: nothing to compare")
    arms: dict[str, ArmResult] = {}
    for arm in ARMS:
        m = machine()
        asc = arm_scenario(sc, arm, m)
        marks: dict[str, Any] = {}
        res = run_scenario(asc, observe=_told(observe, arm), progress=_told(progress, arm),
                           check=check, machine=m, hooks=_probe(v, marks))
        arms[arm] = ArmResult(arm, res, marks["moving"], _figures(arm, res, v, marks))
    return VersusResult(sc, arms)


__all__ = ["ARMS", "ROWS", "ArmResult", "VersusResult", "arm_scenario", "moved_layout",
           "run_versus"]
