"""Writes to the tunables that make the kernel recompute the zone set-up:
``/proc/sys/vm/{min_free_kbytes, watermark_scale_factor,
lowmem_reserve_ratio, percpu_pagelist_high_fraction}`` (mm/page_alloc.c's
sysctl handlers) and ``/sys/kernel/mm/transparent_hugepage/enabled``
(mm/huge_memory.c enabled_store).  Each checks its value as the kernel does
(ArgError, nothing changed, for what the kernel refuses with EINVAL) and
recomputes what the kernel's handler recomputes.  The oracle mirrors the
guest's writes with them."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any

from .constants import MAX_NR_ZONES
from .errors import ArgError, check_int
from .page_alloc import (
    MIN_PERCPU_PAGELIST_HIGH_FRACTION,
    min_free_kbytes_sysctl_handler,
    setup_per_zone_lowmem_reserve,
    setup_per_zone_wmarks,
    start_stop_khugepaged,
    zone_pcp_update,
)

if TYPE_CHECKING:
    from .machine import Machine

INT_MAX = (1 << 31) - 1
#: vm.watermark_scale_factor's proc_dointvec_minmax bounds (SYSCTL_ONE, 3000)
WATERMARK_SCALE_FACTOR_MAX = 3000
THP_MODES = ("always", "madvise", "never")


def write_min_free_kbytes(m: Machine, kbytes: int) -> None:
    """``echo KB > /proc/sys/vm/min_free_kbytes`` (min_free_kbytes_sysctl_handler)."""
    check_int("min_free_kbytes", kbytes, 0, INT_MAX, ArgError, closed=True)
    min_free_kbytes_sysctl_handler(m, int(kbytes))


def write_watermark_scale_factor(m: Machine, factor: int) -> None:
    """``echo F > /proc/sys/vm/watermark_scale_factor``: then setup_per_zone_wmarks."""
    check_int("watermark_scale_factor", factor, 1, WATERMARK_SCALE_FACTOR_MAX, ArgError,
              closed=True)
    m.vm = replace(m.vm, watermark_scale_factor=int(factor))
    setup_per_zone_wmarks(m)


def write_lowmem_reserve_ratio(m: Machine, ratios: list[int]) -> None:
    """``echo R0 R1 ... > /proc/sys/vm/lowmem_reserve_ratio``: values below 1
    become 0, then setup_per_zone_lowmem_reserve.  The kernel has one more
    zone (ZONE_DEVICE, always empty): a last value for it is accepted and
    has no effect."""
    if not 1 <= len(ratios) <= MAX_NR_ZONES + 1:
        raise ArgError(f"lowmem_reserve_ratio: {len(ratios)} values, expected 1 to "
                       f"{MAX_NR_ZONES + 1}")
    for i, r in enumerate(ratios):
        check_int(f"lowmem_reserve_ratio[{i}]", r, -INT_MAX - 1, INT_MAX, ArgError, closed=True)
    new = list(m.vm.lowmem_reserve_ratio)
    for i, r in enumerate(ratios[:MAX_NR_ZONES]):  # proc_dointvec: the values given
        new[i] = int(r) if r >= 1 else 0
    m.vm = replace(m.vm, lowmem_reserve_ratio=tuple(new))
    setup_per_zone_lowmem_reserve(m)


def read_lowmem_reserve_ratio(m: Machine) -> None:
    """``cat /proc/sys/vm/lowmem_reserve_ratio``: 6.12's handler recomputes
    every zone's lowmem_reserve on a read too (lowmem_reserve_ratio_sysctl_handler
    calls setup_per_zone_lowmem_reserve whether or not it writes)."""
    setup_per_zone_lowmem_reserve(m)


def write_percpu_pagelist_high_fraction(m: Machine, fraction: int) -> None:
    """``echo F > /proc/sys/vm/percpu_pagelist_high_fraction``: 0 (auto) or
    at least MIN_PERCPU_PAGELIST_HIGH_FRACTION, then zone_pcp_update for
    every zone (percpu_pagelist_high_fraction_sysctl_handler)."""
    check_int("percpu_pagelist_high_fraction", fraction, 0, INT_MAX, ArgError, closed=True)
    if 0 < fraction < MIN_PERCPU_PAGELIST_HIGH_FRACTION:
        raise ArgError(f"percpu_pagelist_high_fraction: {fraction} is below "
                       f"{MIN_PERCPU_PAGELIST_HIGH_FRACTION} (EINVAL; 0 means automatic)")
    m.vm = replace(m.vm, percpu_pagelist_high_fraction=int(fraction))
    zone_pcp_update(m)


def write_thp_enabled(m: Machine, mode: str) -> None:
    """``echo MODE > /sys/kernel/mm/transparent_hugepage/enabled`` (enabled_store):
    PMD THP is on for "always" and "madvise"; then start_stop_khugepaged,
    which sets khugepaged's recommended min_free_kbytes (or, with THP off,
    recomputes it with calculate_min_free_kbytes) and the watermarks."""
    if mode not in THP_MODES:
        raise ArgError(f"transparent_hugepage/enabled: {mode!r} is not one of "
                       f"{', '.join(THP_MODES)} (EINVAL)")
    m.vm = replace(m.vm, thp=mode != "never")
    start_stop_khugepaged(m)


_WRITERS = {"min_free_kbytes": write_min_free_kbytes,
            "watermark_scale_factor": write_watermark_scale_factor,
            "percpu_pagelist_high_fraction": write_percpu_pagelist_high_fraction}


def apply(m: Machine, kind: str, args: tuple[Any, ...]) -> bool:
    """Make an oracle step on ``m``: ``("sysctl", (name, value))`` or
    ``("thp", (mode,))``.  False when the model cannot mirror it."""
    if kind == "thp":
        write_thp_enabled(m, str(args[0]))
        return True
    name, value = args
    if name == "lowmem_reserve_ratio":
        write_lowmem_reserve_ratio(m, [int(v) for v in str(value).split()])
        return True
    if name in _WRITERS:
        _WRITERS[name](m, int(value))
        return True
    return False
