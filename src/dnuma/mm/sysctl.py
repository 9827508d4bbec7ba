"""The vm sysctls that make the kernel recompute (mm/page_alloc.c's
handlers), as writes to a model machine: the oracle mirrors the guest's
``echo V > /proc/sys/vm/NAME`` with them.

Mirrored so far: ``min_free_kbytes`` (min_free_kbytes_sysctl_handler:
user_min_free_kbytes = the value, then setup_per_zone_wmarks, which also
updates every zone's pcp high and batch).  The others (watermark_scale_factor,
lowmem_reserve_ratio, percpu_pagelist_high_fraction, the THP ``enabled``
toggle) need tunables the model keeps as constants today; :func:`apply`
says False for them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .errors import ArgError, check_int
from .page_alloc import setup_per_zone_lowmem_reserve, setup_per_zone_wmarks, zone_pcp_update

if TYPE_CHECKING:
    from .machine import Machine

#: proc_dointvec_minmax's bounds of vm.min_free_kbytes (extra1 = SYSCTL_ZERO)
MIN_FREE_KBYTES_LIMIT = 1 << 31


def write_min_free_kbytes(m: Machine, kbytes: int) -> None:
    """``echo KBYTES > /proc/sys/vm/min_free_kbytes``."""
    check_int("min_free_kbytes", kbytes, 0, MIN_FREE_KBYTES_LIMIT, ArgError)
    m.min_free_kbytes = int(kbytes)
    m.user_min_free_kbytes = int(kbytes)
    setup_per_zone_wmarks(m)
    zone_pcp_update(m)  # setup_per_zone_wmarks: zone_pcp_update(zone, 0) for each zone


def read_lowmem_reserve_ratio(m: Machine) -> None:
    """``cat /proc/sys/vm/lowmem_reserve_ratio``: 6.12's handler recomputes
    every zone's lowmem_reserve on a read too (lowmem_reserve_ratio_sysctl_handler
    calls setup_per_zone_lowmem_reserve whether or not it writes)."""
    setup_per_zone_lowmem_reserve(m)


def apply(m: Machine, kind: str, args: tuple[Any, ...]) -> bool:
    """Make an oracle step on ``m``: ``("sysctl", (name, value))`` or
    ``("thp", (mode,))``.  False when the model cannot mirror it yet."""
    if kind == "sysctl" and args[0] == "min_free_kbytes":
        write_min_free_kbytes(m, int(args[1]))
        return True
    return False
