"""Run a scenario: boot its machine, start its tasks, and walk one event loop
through the layout events, vmstat ticks and samples in virtual time."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from ..mm.dnuma import CommitReport, validate_layout_for
from ..mm.errors import DnumaError, LayoutError
from ..mm.machine import Machine
from ..mm.memlayout import MemLayout
from ..mm.memlayout_debugfs import DebugfsDryRun, DebugfsWrite, MemlayoutDebugfs, parse_script
from .events import NS, PRIO_END, PRIO_LAYOUT, PRIO_SAMPLE, PRIO_VMSTAT, EventLoop
from .hotplug import HotplugPlan, HotplugRecord
from .migration import MigrationPolicy, MigrationRecord, Migrator
from .scenario import MACHINE_ACTIONS, LayoutEvent, Scenario, ScenarioError
from .tasks import TaskSet

VMSTAT_INTERVAL = NS  # sysctl vm.stat_interval: 1 s


class Observer(Protocol):
    """What a run tells its observers (report.Metrics is one)."""

    def sample(self, t: float) -> None: ...

    def layout_event(self, t: float, name: str, report: CommitReport | None) -> None: ...

    def finish(self, t: float | None = None) -> object: ...


# An observer may also have ``hotplug_event(t, record)``: called after each
# hotplug event (each step of a replug) with its HotplugRecord.


@dataclass
class Step:
    """One layout change and what followed it until the next one (or the end)."""

    name: str
    t: float  # virtual seconds
    report: CommitReport
    misplaced_after: int = 0  # right after the commit
    misplaced_left: int = 0  # at the next layout event (or the end of the run)
    marked_left: int = 0
    moved_on_free: int = 0  # pages redirected on free in between
    nodes_online: list[int] = field(default_factory=list)
    _moved0: int = 0

    def row(self) -> dict[str, Any]:
        r = self.report
        return {"step": self.name, "t": round(self.t, 6), "seq": r.seq,
                "commit_ms": round(r.seconds * 1e3, 3), "marked": r.pages_marked,
                "free_moved": r.free_pages_moved + r.pcp_pages_moved,
                "split": r.blocks_split, "onlined": r.nodes_onlined,
                "offlined": r.nodes_offlined, "misplaced_after": self.misplaced_after,
                "misplaced_left": self.misplaced_left, "still_marked": self.marked_left,
                "moved_on_free": self.moved_on_free, "online": self.nodes_online}


@dataclass
class RunResult:
    scenario: Scenario
    machine: Machine
    tasks: TaskSet
    steps: list[Step]
    wall_seconds: float
    hotplug: list[HotplugRecord] = field(default_factory=list)
    migration: list[MigrationRecord] = field(default_factory=list)
    policy: MigrationPolicy = field(default_factory=MigrationPolicy)

    def summary(self) -> dict[str, Any]:
        """JSON-able; identical for two runs with the same scenario and seed
        except for the timing fields (``commit_ms``, ``wall_ms``, ``wall_seconds``)."""
        m = self.machine
        sc = self.scenario
        return {
            "scenario": sc.name, "source": sc.source, "seed": sc.seed,
            "duration_s": sc.duration / NS, "sample_s": sc.sample / NS,
            "machine": {"present_pages": m.total_present_pages, "nr_cpus": m.nr_cpus,
                        "page_size": 1 << m.profile.page_shift,
                        "nodes_online": list(m.for_each_online_node())},
            "steps": [s.row() for s in self.steps],
            "hotplug": [h.row() for h in self.hotplug],
            "migration": {"policy": self.policy.label(),
                          "commits": [r.row() for r in self.migration]},
            "tasks": self.tasks.task_stats(),
            "final": {"free_pages": m.nr_free_pages(), "misplaced": m.misplaced_pages(),
                      "marked": m.marked_pages(), "moved_on_free": m.moved_on_free,
                      "numastat": {n: m.numastat(n) for n in m.for_each_online_node()}},
            "wall_seconds": round(self.wall_seconds, 3),
        }


class StepLog:
    """The steps of a run: each layout change opens one, the next (or the end
    of the run) closes it with what is left misplaced and what moved on free."""

    def __init__(self, m: Machine, observers: Sequence[Observer],
                 check: Callable[[Machine], None] | None) -> None:
        self.m, self.observers, self.check = m, observers, check
        self.steps: list[Step] = []

    def close(self) -> None:
        if self.steps:
            st, m = self.steps[-1], self.m
            st.misplaced_left = m.misplaced_pages()
            st.marked_left = m.marked_pages()
            st.moved_on_free = m.moved_on_free - st._moved0

    def committed(self, t_ns: int, reports: Sequence[tuple[str, CommitReport]]) -> None:
        """Record the commits a layout event made at ``t_ns``."""
        m = self.m
        for name, rep in reports:
            self.steps.append(Step(name, t_ns / NS, rep, misplaced_after=m.misplaced_pages(),
                                   nodes_online=list(m.for_each_online_node()),
                                   _moved0=m.moved_on_free))
            for o in self.observers:
                o.layout_event(t_ns / NS, name, rep)
        if self.check:
            self.check(m)


def _static_layout(m: Machine, ev: LayoutEvent, boot: MemLayout) -> MemLayout | None:
    """The layout of a stripe/push/ranges/boot event (None for a debugfs script)."""
    maxn = m.config.max_numnodes
    nodes = ev.args[0] if ev.action == "stripe" else [ev.args] if ev.action == "push" else []
    for n in nodes:
        if not 0 <= n < maxn:
            raise LayoutError(f"{ev.action}: node {n} is not possible: outside [0, {maxn}) "
                              "(this machine's MAX_NUMNODES)")
    if ev.action == "stripe":
        nodes, block = ev.args
        return MemLayout.stripe(m.ram_ranges(), list(nodes), block)
    if ev.action == "push":
        return MemLayout.push(m.ram_ranges(), ev.args)
    if ev.action == "ranges":
        return MemLayout.from_ranges(ev.args)
    if ev.action == "boot":
        return boot
    return None


class LayoutPlan:
    """The layout events of a run on ``m``, each checked before anything
    runs: a stripe/push/ranges/boot layout validated against the machine, a
    debugfs script parsed (errors raise ScenarioError naming ``source``, the
    event and its time).  The run and the replay both fire them from here."""

    def __init__(self, m: Machine, events: Sequence[LayoutEvent], source: str) -> None:
        self.m = m
        self.events = tuple(events)
        self.fired = 0  # events fired so far (they fire in order)
        boot = MemLayout.from_ranges(list(m.layout))
        self._todo: list[MemLayout | list[DebugfsWrite]] = []
        dry = DebugfsDryRun(m)  # the scripts, in order, as the one directory sees them
        for i, ev in enumerate(self.events):
            try:
                lay = _static_layout(m, ev, boot)
                if lay is not None:
                    validate_layout_for(m, lay)
                    self._todo.append(lay)
                    continue
                writes = parse_script(*ev.args)
            except DnumaError as exc:
                raise ScenarioError(f"{source}: event[{i}] ({ev.name} at "
                                    f"{ev.at / NS:g} s): {exc}") from None
            try:
                dry.run_script(writes)
            except DnumaError as exc:  # names the script, its line and the write
                raise ScenarioError(str(exc)) from None
            self._todo.append(writes)
        self._debugfs: MemlayoutDebugfs | None = None  # one directory for the machine

    def fire(self, i: int) -> list[tuple[str, CommitReport]]:
        """Make event ``i``'s commits: (step name, report) each (a debugfs
        script may commit several times: ``name``, ``name#2``, ...)."""
        ev, todo = self.events[i], self._todo[i]
        self.fired = i + 1
        if isinstance(todo, MemLayout):
            return [(ev.name, self.m.commit(todo))]
        if self._debugfs is None:
            self._debugfs = MemlayoutDebugfs(self.m)
        return [(ev.name if k == 0 else f"{ev.name}#{k + 1}", r)
                for k, r in enumerate(self._debugfs.run_script(todo))]

    def schedule(self, loop: EventLoop, log: StepLog,
                 after: Callable[[int, list[str]], None] | None = None) -> None:
        """Put every event on ``loop`` at its time, each closing the step
        before it in ``log`` and opening its own; then ``after(t, step
        names)`` (the run's migrator)."""
        def at(i: int) -> Callable[[int], None]:
            def fire(t: int) -> None:
                log.close()
                reports = self.fire(i)
                log.committed(t, reports)
                if after is not None:
                    after(t, [name for name, _r in reports])
            return fire

        for i, ev in enumerate(self.events):
            loop.at(ev.at, PRIO_LAYOUT, at(i))

    @property
    def pending(self) -> tuple[LayoutEvent, ...]:
        """The events not fired yet."""
        return self.events[self.fired:]


def run_scenario(sc: Scenario, observe: Callable[[Machine], Sequence[Observer]] | None = None,
                 progress: Callable[[float], None] | None = None,
                 check: Callable[[Machine], None] | None = None,
                 machine: Machine | None = None,
                 hooks: Sequence[tuple[int, int, Callable[[Machine], None]]] = (),
                 migration: MigrationPolicy | None = None) -> RunResult:
    """Run ``sc`` to its end.  ``observe(machine)`` returns the observers
    (e.g. ``lambda m: [Metrics(m)]``), made once the machine has booted;
    ``progress(t)`` gets virtual seconds as they pass; ``check`` (e.g.
    validate_all) runs after every layout event and at the end; each of
    ``hooks`` (t ns, priority, fn) runs ``fn(machine)`` at its time (a
    priority below PRIO_LAYOUT: before the events of that instant);
    ``migration`` overrides the scenario's migration policy.  Layouts
    and hotplug events are checked against the machine before anything runs."""
    wall0 = time.perf_counter()
    if machine is not None:
        m = machine
    elif sc.machine is not None:
        m = Machine(sc.machine)
    else:
        raise ScenarioError(f"{sc.source}: machine.from = {sc.machine_from!r}: boot it first "
                            f"(dnuma.io.host.boot_from_host) and pass machine=")
    plan = LayoutPlan(m, [e for e in sc.events if e.action not in MACHINE_ACTIONS], sc.source)
    hot_events = [e for e in sc.events if e.action in MACHINE_ACTIONS]
    hot = HotplugPlan(m, hot_events, sc.source)
    try:
        tasks = TaskSet(m, sc.tasks, seed=sc.seed)
    except DnumaError as exc:
        raise ScenarioError(f"{sc.source}: task: {exc}") from None
    observers = list(observe(m)) if observe else []
    log = StepLog(m, observers, check)

    def advance(t: int) -> None:
        tasks.run_until(t)
        if progress:
            progress(t / NS)

    loop = EventLoop(advance)
    policy = migration or sc.migration or MigrationPolicy()
    migrator = Migrator(m, policy)
    plan.schedule(loop, log, after=migrator.committed)
    if policy.policy == "background":
        loop.every(policy.period, policy.period, sc.duration, PRIO_VMSTAT, migrator.tick)

    def hotplug(ev: LayoutEvent) -> Callable[[int], None]:
        def fire(t: int) -> None:
            more = hot.fire(ev, t)
            rec = hot.records[-1]
            for o in observers:
                note = getattr(o, "hotplug_event", None)
                if note is not None:
                    note(t / NS, rec)
            if check:
                check(m)
            if more is not None:
                if t + more <= sc.duration:
                    loop.at(t + more, PRIO_LAYOUT, fire)
                else:
                    hot.records.append(HotplugRecord(
                        ev.name, sc.duration / NS, ev.action, False, "ETIME",
                        f"not done by the end of the run ({sc.duration / NS:g} s)"))
        return fire

    for ev in hot_events:  # after a layout event at the same time
        loop.at(ev.at, PRIO_LAYOUT, hotplug(ev))
    for t_hook, prio, fn in hooks:
        loop.at(t_hook, prio, lambda _t, fn=fn: fn(m))  # type: ignore[misc]
    loop.every(VMSTAT_INTERVAL, VMSTAT_INTERVAL, sc.duration, PRIO_VMSTAT,
               lambda t: m.vmstat_tick())

    def sample(t: int) -> None:
        migrator.check(t)
        for o in observers:
            o.sample(t / NS)

    loop.every(0, sc.sample, sc.duration, PRIO_SAMPLE, sample)

    def end(t: int) -> None:
        m.migration_listeners.remove(tasks.follow_migration)  # the tasks are done
        migrator.close()
        log.close()
        if check:
            check(m)
        for o in observers:
            o.finish(t / NS)

    loop.at(sc.duration, PRIO_END, end)
    loop.run()
    return RunResult(sc, m, tasks, log.steps, time.perf_counter() - wall0, hot.records,
                     migrator.records, policy)


_WARM_UP = """
duration = "1.1s"
[machine]
nodes = 2
cpus = 2
mem = "MEM"
[[task]]
rate = 2000
lifetime = "100ms"
orders = { 0 = 4, 1 = 1, 4 = 1 }
gfp = { movable = 1, unmovable = 1 }
[[event]]
at = "0.5s"
stripe = { nodes = [0, 1, 2], block = 100 }
"""


_WARM_UP_HOTPLUG = """
[[event]]
at = "0s"
replug = { from = 1, to = 2 }
"""


def warm_up(hotplug: bool = False) -> float:
    """Compile (or load from numba's cache) the kernels a run uses, on a tiny
    scenario, so that no timed commit pays for compilation (``hotplug``:
    also an offline, a removal and an online).  Returns seconds."""
    from .scenario import parse_scenario

    t0 = time.perf_counter()
    # hotplug: a 128 MiB memory block a node
    text = _WARM_UP.replace("MEM", "256M" if hotplug else "16M") \
        + (_WARM_UP_HOTPLUG if hotplug else "")
    run_scenario(parse_scenario(text, "<warm-up>"))
    return time.perf_counter() - t0
