"""A 1 TiB machine (268,435,456 pfns): boot, 60% allocated, stripe commit.

Slow: run with ``pytest -m slow`` (several minutes, about 6 GiB of RAM).
"""

from __future__ import annotations

import time

import numpy as np
import pytest

from dnuma.mm.machine import boot
from dnuma.mm.memlayout import MemLayout
from dnuma.mm.validate import validate_conservation, validate_counters, validate_layout
from dnuma.sim.workload import Churn


@pytest.mark.slow
def test_tib_machine_boots_and_commits_a_stripe(capsys):
    t0 = time.perf_counter()
    m = boot(4, "1T", 8)
    t_boot = time.perf_counter() - t0
    assert m.max_pfn == 268_435_456
    assert m.per_pfn_bytes() == 15.125
    bytes_per_pfn = m.nbytes() / m.max_pfn
    assert bytes_per_pfn < 16.5

    t0 = time.perf_counter()
    ch = Churn(m, fill=0.6, seed=0)
    ch.warm_up()
    t_fill = time.perf_counter() - t0
    assert ch.live_pages >= 0.59 * m.total_present_pages

    block = 512  # 2 MiB of 4 KiB pages
    layout = MemLayout.stripe(m.ram_ranges(), [0, 1, 2, 3], block)
    rep = m.commit(layout)
    free = np.flatnonzero(m.free_mask())
    assert np.array_equal(m.S.page_nid[free], ((free // block) % 4).astype(np.int16))
    validate_conservation(m)
    validate_counters(m)
    validate_layout(m)
    with capsys.disabled():
        print(f"\n1 TiB: boot {t_boot:.2f} s, fill to 60% {t_fill:.1f} s "
              f"({ch.allocs} allocations), stripe commit {rep.seconds:.3f} s "
              f"(marked {rep.pages_marked}, moved {rep.free_pages_moved}, "
              f"split {rep.blocks_split}), {bytes_per_pfn:.3f} bytes/pfn")
