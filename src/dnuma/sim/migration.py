"""Migration policies: how a run fixes the allocated pages a commit leaves
on their old node (mm.migrate).

* ``lazy``: the RFC: a marked page moves when its owner frees it;
* ``eager``: every marked movable page migrated right after the commit, as
  an offline migrates a block's pages;
* ``background``: a rate-limited migrator, ``rate`` pages a second of
  virtual time, every ``period``.

Unmovable pages stay lazy under every policy.  For each commit the run
records (:class:`MigrationRecord`) the pages the commit gave a new node, the
time until at most 1% of that many pages are still off their layout node
(``converge_s``; None if not by the next commit or the end), the pages
migrated, and the allocations served from a remote node (numastat
other_node, migration targets included, as the kernel counts them) from the
commit until it converged.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from ..mm.constants import NUMASTAT_NAMES, PG_hole
from ..mm.errors import ConfigError
from ..mm.machine import block_cover
from ..mm.notifier import MEMLAYOUT_DONE, MEMLAYOUT_GOING, MemlayoutEvent
from .events import NS, parse_duration
from .scenario import ScenarioError

if TYPE_CHECKING:
    from ..mm.machine import Machine

POLICIES = ("lazy", "eager", "background")
DEFAULT_RATE = 100_000.0  # pages/s: ~400 MB/s of 4 KiB pages
DEFAULT_PERIOD = NS // 100  # 10 ms
CONVERGED = 0.01  # converged: misplaced <= 1% of the pages the commit changed
_OTHER = NUMASTAT_NAMES.index("other_node")


@dataclass(frozen=True)
class MigrationPolicy:
    """``policy`` one of POLICIES; ``rate`` pages/s and ``period`` ns for
    "background"."""

    policy: str = "lazy"
    rate: float = DEFAULT_RATE
    period: int = DEFAULT_PERIOD

    def label(self) -> str:
        return f"background {self.rate:g}/s" if self.policy == "background" else self.policy


def parse_policy(value: object, where: str) -> MigrationPolicy:
    """A policy from a scenario's ``[migration]`` table ({policy, rate,
    period}) or a command-line spec ("lazy", "eager", "background",
    "background:RATE"); ScenarioError naming ``where``."""
    if isinstance(value, str):
        name, _, rate = value.partition(":")
        raw: dict[str, Any] = {"policy": name}
        if rate:
            try:
                raw["rate"] = float(rate)
            except ValueError:
                raise ScenarioError(f"{where}: rate {rate!r}: expected pages per second "
                                    f"(a number)") from None
    elif isinstance(value, dict):
        raw = dict(value)
    else:
        raise ScenarioError(f"{where}: expected a table ([migration] policy = \"eager\") "
                            f"or a policy name, got {value!r}")
    unknown = sorted(set(raw) - {"policy", "rate", "period"})
    if unknown:
        raise ScenarioError(f"{where}.{unknown[0]}: unknown key (expected one of: policy, "
                            f"rate, period)")
    name = raw.get("policy", "lazy")
    if name not in POLICIES:
        raise ScenarioError(f"{where}.policy: {name!r}: expected one of {', '.join(POLICIES)}")
    rate = raw.get("rate", DEFAULT_RATE)
    if isinstance(rate, bool) or not isinstance(rate, int | float) or not 0 < rate < 1e15:
        raise ScenarioError(f"{where}.rate: {rate!r}: expected pages per second, > 0")
    try:
        period = parse_duration(raw.get("period", DEFAULT_PERIOD / NS), "")
    except ConfigError as exc:
        raise ScenarioError(f"{where}.period{exc}") from None
    if period <= 0:
        raise ScenarioError(f"{where}.period: must be > 0")
    if name != "background" and ("rate" in raw or "period" in raw):
        raise ScenarioError(f"{where}: rate and period are for policy \"background\"")
    return MigrationPolicy(name, float(rate), period)


@dataclass
class MigrationRecord:
    """One commit under the run's policy (pages unless named)."""

    step: str
    t: float  # virtual s of the commit
    policy: str
    pages_changed: int  # present pages the commit gave a new node
    misplaced_after_commit: int
    pages_migrated: int = 0
    blocks_failed: int = 0  # migrations with no target
    converge_s: float | None = None  # after the commit
    remote_allocations: int = 0  # numastat other_node, commit to converged (or end)
    misplaced_left: int = 0  # at the next commit or the end
    _other0: int = 0

    def row(self) -> dict[str, Any]:
        d = asdict(self)
        del d["_other0"]
        return d


def _other_node(m: Machine) -> int:
    return int(m.S.numa_stat[:, _OTHER].sum())


def changed_pages(m: Machine, diff: list[tuple[int, int, int, int]]) -> int:
    """Present pages in the ranges (start, end inclusive, old, new) of a
    commit's diff."""
    n = m.S.page_flags.size
    a = np.array([(s, min(e, n - 1) + 1) for s, e, _o, _n in diff if s < n],
                 dtype=np.int64).reshape(-1, 2)
    inside = block_cover(a[:, 0], a[:, 1] - a[:, 0], n) > 0
    return int(np.count_nonzero(inside & ((m.S.page_flags & PG_hole) == 0)))


class Migrator:
    """A run's migration: told of each commit (the memlayout notifier's
    "done"), it migrates under its policy and keeps a record per commit."""

    def __init__(self, m: Machine, policy: MigrationPolicy) -> None:
        self.m, self.policy = m, policy
        self.records: list[MigrationRecord] = []
        self._pending: list[tuple[int, int]] = []  # (diff pages, misplaced) per commit
        m.notifier.register(self._heard, "dnuma-migrator", priority=-100)

    def _heard(self, ev: MemlayoutEvent) -> None:
        if ev.stage == MEMLAYOUT_GOING and self.records:  # the last record ends here
            self._end(self.records[-1])
        if ev.stage == MEMLAYOUT_DONE:
            self._pending.append((changed_pages(self.m, ev.diff()), self.m.misplaced_pages()))

    def _cpu(self) -> int:
        return int(np.flatnonzero(self.m.topo.cpu_online)[0])

    def _migrate(self, max_pages: int | None) -> None:
        rep = self.m.migrate_misplaced_pages(max_pages, self._cpu())
        if self.records:
            self.records[-1].pages_migrated += rep.pages_migrated
            self.records[-1].blocks_failed += rep.blocks_failed

    def committed(self, t_ns: int, names: list[str]) -> None:
        """After a layout event's commits (step ``names``): open a record per
        commit, migrate if eager."""
        for name, (changed, misplaced) in zip(names, self._pending, strict=False):
            self.records.append(MigrationRecord(name, t_ns / NS, self.policy.label(), changed,
                                                misplaced, _other0=_other_node(self.m)))
        self._pending.clear()
        if self.policy.policy == "eager":
            self._migrate(None)
        self.check(t_ns)

    def tick(self, t_ns: int) -> None:
        """The background migrator's period: up to rate x period pages."""
        if self.records and self.records[-1].converge_s is None:
            self._migrate(max(1, round(self.policy.rate * self.policy.period / NS)))
            self.check(t_ns)

    def check(self, t_ns: int) -> None:
        """Close the last record's convergence if it has converged by ``t_ns``."""
        if not self.records:
            return
        r = self.records[-1]
        if r.converge_s is None and self.m.misplaced_pages() <= CONVERGED * r.pages_changed:
            r.converge_s = round(t_ns / NS - r.t, 9)
            r.remote_allocations = _other_node(self.m) - r._other0

    def close(self) -> None:
        """At the end of the run: unconverged records count remote
        allocations to the end; the migrator leaves the notifier chain."""
        self.m.notifier.unregister(self._heard)
        if self.records:
            self._end(self.records[-1])

    def _end(self, r: MigrationRecord) -> None:
        """Close ``r`` (at the next commit's "going", or the end): what is
        left misplaced, and the remote allocations of an unconverged one."""
        r.misplaced_left = self.m.misplaced_pages()
        if r.converge_s is None:
            r.remote_allocations = _other_node(self.m) - r._other0


__all__ = ["POLICIES", "MigrationPolicy", "MigrationRecord", "Migrator", "changed_pages",
           "parse_policy"]
