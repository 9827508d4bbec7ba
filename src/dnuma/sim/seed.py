"""The RFC's own experiment (its "dnuma-test" script in qemu): a 128 MiB VM
with 2 nodes and 8 CPUs under allocation churn; stripe the layout in 256-pfn
blocks over nodes 0,1,2 (2 new), push everything to a new node 3, return to
the boot layout.  Each step reports what the commit did and what the churn
moved on free since the step before."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..mm.dnuma import CommitReport
from ..mm.machine import Machine, MachineConfig
from ..mm.memlayout import MemLayout
from .workload import Churn


@dataclass
class SeedStep:
    """One row of the seed scenario's table."""

    name: str
    report: CommitReport
    misplaced_pages: int  # allocated pages on a node other than the layout's
    marked_pages: int
    moved_on_free: int  # pages redirected on free since the previous step
    free_pages: int
    nodes_online: list[int]

    def row(self) -> dict[str, Any]:
        r = self.report
        return {"step": self.name, "seq": r.seq, "commit_ms": round(r.seconds * 1e3, 3),
                "marked": r.pages_marked, "free_moved": r.free_pages_moved + r.pcp_pages_moved,
                "split": r.blocks_split, "onlined": r.nodes_onlined,
                "offlined": r.nodes_offlined, "misplaced": self.misplaced_pages,
                "still_marked": self.marked_pages, "moved_on_free": self.moved_on_free,
                "free": self.free_pages, "online": self.nodes_online}


def seed_machine() -> Machine:
    return Machine(MachineConfig.uniform(nodes=2, mem="128M", cpus=8))


def warm_up_kernels() -> float:
    """Compile (or load from numba's cache) every kernel the scenario uses, on a
    tiny machine, so that no timed step pays for compilation.  Returns seconds."""
    t0 = time.perf_counter()
    m = Machine(MachineConfig.uniform(nodes=2, mem="16M", cpus=2))
    churn = Churn(m, fill=0.5, seed=0, orders=(0, 4), order_weights=(1, 1))
    churn.warm_up()
    m.commit(MemLayout.stripe(m.ram_ranges(), [0, 1, 2], 100))
    churn.run(200)
    m.vmstat_tick()
    m.misplaced_pages()
    return time.perf_counter() - t0


def run_seed(seed: int = 0, churn_ops: int = 20000, fill: float = 0.5,
             check: Callable[[Machine], None] | None = None) -> tuple[Machine, list[SeedStep]]:
    """Run the seed scenario; ``check`` (e.g. validate_all) runs after every step."""
    m = seed_machine()
    churn = Churn(m, fill=fill, seed=seed, orders=(0, 1, 2, 3, 4, 9),
                  order_weights=(16, 6, 3, 2, 1, 0.05))
    churn.warm_up()
    boot_layout = m.layout
    ram = m.ram_ranges()
    plan = [("stripe", MemLayout.stripe(ram, [0, 1, 2], 256)),
            ("push", MemLayout.push(ram, 3)),
            ("boot", MemLayout.from_ranges(list(boot_layout)))]
    steps: list[SeedStep] = []
    moved0 = m.moved_on_free
    for name, layout in plan:
        churn.run(churn_ops)
        rep = m.commit(layout)
        if check:
            check(m)
        churn.run(churn_ops)
        if check:
            check(m)
        moved = m.moved_on_free
        steps.append(SeedStep(name, rep, m.misplaced_pages(), m.marked_pages(), moved - moved0,
                              m.nr_free_pages(), list(m.for_each_online_node())))
        moved0 = moved
    return m, steps


def format_table(steps: list[SeedStep]) -> str:
    """The per-step table printed by ``dnuma demo``."""
    cols = [("step", "step", 7), ("seq", "seq", 4), ("commit_ms", "commit ms", 10),
            ("marked", "marked", 8), ("free_moved", "free moved", 11),
            ("split", "split", 6), ("onlined", "onlined", 8), ("offlined", "offlined", 9),
            ("misplaced", "misplaced", 10), ("still_marked", "marked now", 11),
            ("moved_on_free", "moved on free", 14)]
    lines = ["".join(f"{h:>{w}}" for _k, h, w in cols)]
    for st in steps:
        r = st.row()
        cells = []
        for k, _h, w in cols:
            v = r[k]
            if isinstance(v, list):
                v = ",".join(map(str, v)) or "-"
            cells.append(f"{v:>{w}}")
        lines.append("".join(cells))
    return "\n".join(lines)


def timed_seed(**kw: Any) -> tuple[Machine, list[SeedStep], float]:
    warm_up_kernels()
    t0 = time.perf_counter()
    m, steps = run_seed(**kw)
    return m, steps, time.perf_counter() - t0
