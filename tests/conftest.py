"""Fixtures shared by the test files, and the Hypothesis profiles.

Profiles (``DNUMA_HYPOTHESIS=<name>``): ``dnuma`` (the default: Hypothesis'
example counts, no deadline, since a kernel's first call may compile it),
``thorough`` (ten times the examples) and ``coverage`` (a tenth, for
``make coverage``, where the kernels run as plain Python).  Tests that set
their own ``max_examples`` scale it with ``settings.default.max_examples``.

dnuma is imported inside the fixtures: a module another engineer is changing
must not stop every test file from being collected.
"""

from __future__ import annotations

import os
import random
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from hypothesis import settings

if TYPE_CHECKING:
    from dnuma.mm.machine import Machine

settings.register_profile("dnuma", deadline=None)
settings.register_profile("thorough", deadline=None, max_examples=1000)
settings.register_profile("coverage", deadline=None, max_examples=10)
settings.load_profile(os.environ.get("DNUMA_HYPOTHESIS", "dnuma"))


# ---------------------------------------------------------------- data
@pytest.fixture(scope="session")
def data_dir() -> Path:
    """tests/data (see its README.md)."""
    return Path(__file__).parent / "data"


@pytest.fixture(scope="session")
def host_snapshot(data_dir: Path) -> Path:
    """The saved files of a real 24 GiB Linux 6.18 host (/proc, /sys, kpageflags)."""
    return data_dir / "host-snapshot-1"


# ---------------------------------------------------------------- machines
@pytest.fixture(scope="session")
def small_machine() -> Callable[..., Machine]:
    """Boots a fresh 16 MiB machine: 4096 pfns, node 0 owns 0x0-0x7ff and
    node 1 0x800-0xfff, 2 CPUs; keywords go to ``MachineConfig.uniform``
    (``nodes=1``, ``max_numnodes=4``, ``backlog=2``, ...)."""
    from dnuma.mm.machine import Machine, MachineConfig

    def make(nodes: int = 2, **kw: Any) -> Machine:
        return Machine(MachineConfig.uniform(nodes=nodes, mem="16M", cpus=2, **kw))

    return make


@pytest.fixture
def m16(small_machine: Callable[..., Machine]) -> Machine:
    """A fresh ``small_machine()``: 16 MiB, 2 nodes, 2 CPUs."""
    return small_machine()


@pytest.fixture
def m128() -> Machine:
    """128 MiB, 2 nodes, 8 CPUs (the RFC's experiment): node 0 pfns 0-16383
    (DMA and DMA32), node 1 pfns 16384-32767 (DMA32); nothing allocated."""
    from dnuma.mm.machine import boot

    return boot(2, "128M", 8)


@pytest.fixture(scope="session")
def fill() -> Callable[..., list[tuple[int, int, int]]]:
    """``fill(m, share=0.5, seed=1)``: allocate about ``share`` of ``m``'s
    present pages in random orders 0-3 from random CPUs (stops at the first
    failure); returns the blocks as (pfn, order, cpu)."""

    def allocate(m: Machine, share: float = 0.5, seed: int = 1) -> list[tuple[int, int, int]]:
        rng = random.Random(seed)
        got, want, out = 0, int(m.total_present_pages * share), []
        while got < want:
            order, cpu = rng.randrange(4), rng.randrange(m.nr_cpus)
            pfn = m.alloc_pages(order, cpu=cpu)
            if pfn is None:
                break
            out.append((pfn, order, cpu))
            got += 1 << order
        return out

    return allocate


# ---------------------------------------------------------------- state
@pytest.fixture(scope="session")
def unchanged() -> Callable[[Machine], AbstractContextManager[None]]:
    """``with unchanged(m): ...`` fails if the block changed any of ``m``'s
    state arrays, its installed layout or its seq (tests.helpers.snapshot)."""
    from tests.helpers import assert_same, snapshot

    @contextmanager
    def check(m: Machine) -> Iterator[None]:
        before = snapshot(m)
        yield
        assert_same(before, snapshot(m))

    return check
