"""One scenario under several migration policies (sim.migration), each from
the same boot and the same task seed, side by side: per commit, the time
until its pages sit on their layout node, the pages migrated and the remote
allocations meanwhile."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ..mm.machine import Machine
from .migration import MigrationPolicy
from .run import Observer, RunResult, run_scenario
from .scenario import Scenario, ScenarioError

#: the side-by-side figures per commit: (MigrationRecord key, what it means)
FIGURES: tuple[tuple[str, str], ...] = (
    ("converge_s", "s until <= 1% of its pages are misplaced"),
    ("pages_migrated", "pages migrated"),
    ("remote_allocations", "remote allocations meanwhile"),
    ("misplaced_left", "misplaced at the next commit / end"),
)


@dataclass
class PoliciesResult:
    scenario: Scenario
    runs: dict[str, RunResult]  # by policy label

    def rows(self) -> list[dict[str, Any]]:
        """One row per commit and figure: ``step``, ``what``, then each
        policy's value."""
        out = []
        recs = {p: r.migration for p, r in self.runs.items()}
        first = next(iter(recs.values()))
        for k, rec in enumerate(first):
            for key, what in FIGURES:
                out.append({"step": rec.step, "t": rec.t, "figure": key, "what": what,
                            **{p: getattr(rs[k], key) for p, rs in recs.items()}})
        return out

    def summary(self) -> dict[str, Any]:
        """JSON-able: per policy its migration records, and each run's summary."""
        return {"scenario": self.scenario.name, "source": self.scenario.source,
                "policies": {p: [x.row() for x in r.migration] for p, r in self.runs.items()},
                "runs": {p: r.summary() for p, r in self.runs.items()}}


def run_policies(sc: Scenario, policies: Sequence[MigrationPolicy],
                 machine: Callable[[], Machine],
                 observe: Callable[[str, Machine], Sequence[Observer]] | None = None,
                 progress: Callable[[str, float], None] | None = None,
                 check: Callable[[Machine], None] | None = None) -> PoliciesResult:
    """Run ``sc`` once per policy, each on a fresh ``machine()``; ``observe``
    and ``progress`` are told the policy's label first."""
    labels = [p.label() for p in policies]
    if len(set(labels)) != len(labels):
        raise ScenarioError(f"migration policies: {', '.join(labels)}: each at most once")
    runs: dict[str, RunResult] = {}
    for pol, label in zip(policies, labels, strict=True):
        obs = None if observe is None else (lambda m, label=label: observe(label, m))
        prog = None if progress is None else (lambda t, label=label: progress(label, t))
        runs[label] = run_scenario(sc, observe=obs, progress=prog, check=check,
                                   machine=machine(), migration=pol)
    return PoliciesResult(sc, runs)


__all__ = ["FIGURES", "PoliciesResult", "run_policies"]
