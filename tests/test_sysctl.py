"""The vm sysctls and the THP toggle (dnuma.mm.sysctl): each recomputes what
the kernel's handler recomputes; a value the kernel refuses is an ArgError
and changes nothing.  (tests/test_oracle.py checks them against the real
kernel's recorded writes.)"""

from __future__ import annotations

import math

import numpy as np
import pytest

from dnuma.io.snapshot import load_snapshot, save_snapshot
from dnuma.mm import sysctl
from dnuma.mm.constants import MAX_NR_ZONES
from dnuma.mm.errors import ArgError
from dnuma.mm.machine import Machine, MachineConfig
from dnuma.mm.page_alloc import khugepaged_recommended_min_free_kbytes
from helpers import assert_same, snapshot

WMIN, WLOW, WHIGH = 0, 1, 2


@pytest.fixture
def m() -> Machine:
    return Machine(MachineConfig.uniform(nodes=2, mem="256M", cpus=4))


@pytest.mark.parametrize(("call", "says"), [
    (lambda m: sysctl.write_watermark_scale_factor(m, 0), "watermark_scale_factor"),
    (lambda m: sysctl.write_watermark_scale_factor(m, 3001), "3000"),
    (lambda m: sysctl.write_min_free_kbytes(m, -1), "min_free_kbytes"),
    (lambda m: sysctl.write_lowmem_reserve_ratio(m, [1] * 7), "lowmem_reserve_ratio"),
    (lambda m: sysctl.write_lowmem_reserve_ratio(m, [1.5]), r"lowmem_reserve_ratio\[0\]"),
    (lambda m: sysctl.write_percpu_pagelist_high_fraction(m, 5), "EINVAL"),
    (lambda m: sysctl.write_thp_enabled(m, "sometimes"), "EINVAL"),
])
def test_refused_values_change_nothing(m, call, says):
    before, vm = snapshot(m), m.vm
    with pytest.raises(ArgError, match=says):
        call(m)
    assert_same(before, snapshot(m))
    assert m.vm == vm


def test_watermark_scale_factor_spaces_the_watermarks(m):
    sysctl.write_watermark_scale_factor(m, 200)
    managed = m.S.zone_managed.astype(np.int64)
    wmin = m.S.wmark[:, WMIN]
    delta = np.maximum(wmin >> 2, managed * 200 // 10000)  # __setup_per_zone_wmarks
    pop = managed > 0
    assert (m.S.wmark[pop, WLOW] == (wmin + delta)[pop]).all()
    assert (m.S.wmark[pop, WHIGH] == (wmin + 2 * delta)[pop]).all()
    assert m.vm.watermark_scale_factor == 200


def test_lowmem_reserve_ratio_sets_the_reserves(m):
    sysctl.write_lowmem_reserve_ratio(m, [128, 128, 16, 0, 0])
    assert m.vm.lowmem_reserve_ratio == (128, 128, 16, 0)
    managed = m.S.zone_managed.reshape(-1, MAX_NR_ZONES)
    res = m.S.lowmem_reserve.reshape(-1, MAX_NR_ZONES, MAX_NR_ZONES)
    for nid in range(2):
        for i, ratio in enumerate((128, 128, 16)):
            for j in range(i + 1, MAX_NR_ZONES):
                want = int(managed[nid, i + 1:j + 1].sum()) // ratio if managed[nid, i] else 0
                assert res[nid, i, j] == want
    sysctl.write_lowmem_reserve_ratio(m, [0, -5])  # below 1: 0, no reserve
    assert m.vm.lowmem_reserve_ratio[:2] == (0, 0) and not res[:, :2].any()


def test_percpu_pagelist_high_fraction_fixes_pcp_high(m):
    sysctl.write_percpu_pagelist_high_fraction(m, 16)
    S = m.S
    assert (S.pcp_high_min == S.pcp_high_max).all()
    managed = S.zone_managed.astype(np.int64)
    split = 2  # 4 CPUs on 2 nodes
    assert (S.pcp_high_min == np.maximum(managed // 16 // split, S.pcp_batch << 2)).all()
    sysctl.write_percpu_pagelist_high_fraction(m, 0)  # auto-tuned again
    pop = managed > 0
    assert (S.pcp_high_max[pop] >= S.pcp_high_min[pop]).all()
    assert (S.pcp_high_max[pop] > S.pcp_high_min[pop]).any()


def test_thp_toggle_moves_min_free_kbytes_between_the_two_rules():
    m = Machine(MachineConfig.uniform(nodes=2, mem="1G", cpus=2))
    raised = m.min_free_kbytes
    assert m.khugepaged_thread and raised > 8192  # khugepaged's raise at boot
    # set_recommended_min_free_kbytes with THP off: calculate_min_free_kbytes,
    # sqrt(16 * lowmem kB) over the pages above the high watermarks of now
    lowmem_kb = int(np.maximum(0, m.S.zone_managed - m.S.wmark[:, WHIGH]).sum()) * 4
    sysctl.write_thp_enabled(m, "never")
    assert not m.khugepaged_thread and m.min_free_kbytes == math.isqrt(lowmem_kb * 16)
    recommended = khugepaged_recommended_min_free_kbytes(m)  # from the watermarks of now
    sysctl.write_thp_enabled(m, "madvise")
    assert m.khugepaged_thread and m.min_free_kbytes == recommended > 8192


def test_the_tunables_survive_a_snapshot(m, tmp_path):
    sysctl.write_watermark_scale_factor(m, 50)
    sysctl.write_lowmem_reserve_ratio(m, [64, 64, 8, 0])
    sysctl.write_percpu_pagelist_high_fraction(m, 8)
    save_snapshot(m, tmp_path / "m.dnsnap")
    back = load_snapshot(tmp_path / "m.dnsnap")
    assert back.vm == m.vm
    assert_same(snapshot(m), snapshot(back))
