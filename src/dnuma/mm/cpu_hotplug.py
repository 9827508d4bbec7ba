"""CPU hotplug (kernel/cpu.c with the mm callbacks of mm/page_alloc.c and
mm/vmstat.c, drivers/base/cpu.c's ``cpuN/online``): what the page
allocator sees when a CPU goes offline or comes back.

Down: the CPU leaves cpu_online_mask and its node's cpumask (x86's
numa_remove_cpu in cpu_disable_common) -> page_alloc_cpu_dead: its pcp
lists drained (drain_pages), zone_pcp_update(zone, 0) for every populated
zone -> vmstat_cpu_dead: refresh_zone_stat_thresholds, N_CPU cleared for a
node left without online CPUs.  Up: page_alloc_cpu_online runs before the
CPU is in its node's cpumask, so zone_pcp_update(zone, 1) counts one CPU
more for *every* populated zone (the next init_per_zone_wmark_min
recomputes them with cpu_online 0) -> the CPU online -> vmstat_cpu_online:
refresh_zone_stat_thresholds, N_CPU set.  6.12 rebuilds no zonelist on CPU
hotplug (the CPU penalty of find_next_best_node is only read at the next
build), and a node keeps N_ONLINE: try_offline_node checks present CPUs,
and every CPU stays present.  x86's cpu0 is not hotpluggable
(arch_register_cpu: hotpluggable = cpu > 0): device_offline refuses it
(offline_disabled: EPERM) and it has no ``online`` file.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from .._kernels import buddy as _kbd
from .errors import HotplugError, check_int, show
from .page_alloc import refresh_zone_stat_thresholds, zone_pcp_update

if TYPE_CHECKING:
    from .machine import Machine


def _cpu(m: Machine, cpu: int) -> int:
    """``cpu`` as an int (ArgError otherwise) naming a CPU (HotplugError EINVAL)."""
    cpu = check_int("cpu", cpu, -(1 << 62), 1 << 62)
    if not 0 <= cpu < m.topo.nr_cpu_ids:
        raise HotplugError("EINVAL", f"cpu {cpu} outside [0, {m.topo.nr_cpu_ids}) "
                                     f"(nr_cpu_ids: no such cpuN)")
    return cpu


def cpu_down(m: Machine, cpu: int) -> None:
    """remove_cpu(cpu) / ``echo 0 > cpuN/online``.  An offline CPU stays
    offline (device_offline returns 1: no error).  HotplugError EPERM for
    cpu0, EBUSY for the last online CPU, EINVAL for no such CPU."""
    cpu = _cpu(m, cpu)
    topo = m.topo
    if cpu == 0:
        raise HotplugError("EPERM", "cpu 0 is not hotpluggable on x86 (offline_disabled; "
                                    "no cpu0/online)")
    if not topo.cpu_online[cpu]:
        return
    if topo.num_online_cpus() == 1:
        raise HotplugError("EBUSY", f"cpu {cpu} is the last online CPU")
    m.sync_zones()
    topo.cpu_online[cpu] = False
    S = m.S
    for gz in np.flatnonzero(S.pcp_count[cpu]).tolist():  # drain_pages(cpu)
        _kbd.drain_pages_zone(S, cpu, gz)
    zone_pcp_update(m, 0, populated_only=True)
    refresh_zone_stat_thresholds(m)
    topo.refresh_cpu_states()
    m.note_zone_setup()
    m.uevents.append(("offline", f"/devices/system/cpu/cpu{cpu}", "cpu"))


def cpu_up(m: Machine, cpu: int) -> None:
    """add_cpu(cpu) / ``echo 1 > cpuN/online``; an online CPU is left as it is.
    HotplugError EINVAL for no such CPU."""
    cpu = _cpu(m, cpu)
    topo = m.topo
    if topo.cpu_online[cpu]:
        return
    m.sync_zones()
    zone_pcp_update(m, 1, populated_only=True)  # page_alloc_cpu_online (CPUHP_PAGE_ALLOC)
    topo.cpu_online[cpu] = True
    refresh_zone_stat_thresholds(m)  # vmstat_cpu_online
    topo.refresh_cpu_states()
    m.note_zone_setup()
    m.uevents.append(("online", f"/devices/system/cpu/cpu{cpu}", "cpu"))


def kstrtobool(text: str) -> bool:
    """kstrtobool(): the first character (1/y/t true, 0/n/f false) or "on" /
    "of"; HotplugError EINVAL otherwise."""
    if not isinstance(text, str):
        raise HotplugError("EINVAL", f"expected a string, got {show(text)}")
    t = text
    if t[:1] in ("1", "y", "Y", "t", "T") or t[:2].lower() == "on":
        return True
    if t[:1] in ("0", "n", "N", "f", "F") or t[:2].lower() == "of":
        return False
    raise HotplugError("EINVAL", f"{text!r} is not a boolean (kstrtobool)")


def write_cpu_online(m: Machine, cpu: int, text: str) -> None:
    """A write of ``/sys/devices/system/cpu/cpuN/online`` (online_store):
    HotplugError ENOENT for cpu0 (no such file) or no such CPU, EINVAL for
    text kstrtobool refuses; then :func:`cpu_up` or :func:`cpu_down`."""
    if type(cpu) is not int or not 0 < cpu < m.topo.nr_cpu_ids:
        raise HotplugError("ENOENT", f"/sys/devices/system/cpu/cpu{cpu}/online does not exist"
                                     + (" (cpu0 is not hotpluggable)" if cpu == 0 else ""))
    (cpu_up if kstrtobool(text) else cpu_down)(m, cpu)


__all__ = ["cpu_down", "cpu_up", "kstrtobool", "write_cpu_online"]
