"""The machine: boot (free_area_init + memblock_free_all), the public
allocator calls, and views.  ``boot()`` is the short way in."""

from __future__ import annotations

import dataclasses
import itertools
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .._kernels import alloc as _ka
from .._kernels import boot as _kb
from .._kernels import buddy as _kbd
from .._kernels import lookup as _lk
from .._kernels import state as _st
from .constants import (
    __GFP_DMA,
    __GFP_DMA32,
    __GFP_HIGHMEM,
    __GFP_MOVABLE,
    DEFAULT_MAX_NUMNODES,
    GFP_KERNEL,
    MAX_MAX_NUMNODES,
    MAX_NR_ZONES,
    MIGRATE_TYPES,
    MODE_NODE,
    MPOL_LOCAL,
    NR_NODE_STATES,
    X86_64,
    ZONE_DMA,
    ZONE_DMA32,
    ZONE_NORMAL,
    PageProfile,
    PG_buddy,
    PG_head,
    PG_hole,
    PG_lru,
    PG_pcp,
    PG_reserved,
    PG_slab,
)
from .cpu_hotplug import cpu_down, cpu_up
from .dnuma import CommitReport, commit
from .errors import (
    AllocArgError,
    ArgError,
    BadFreeError,
    ConfigError,
    LayoutError,
    check_bytes,
    check_int,
    check_int_array,
    first_outside,
    is_int,
    show,
)
from .memlayout import PFN_LIMIT, LayoutBacklog, MemLayout
from .memory_hotplug import (
    HotplugTunables,
    OfflineReport,
    add_memory,
    memory_block_offline,
    memory_block_online,
    remove_memory,
)
from .migrate import MigrateReport, migrate_misplaced_pages
from .mmzone import PgData, Zone
from .notifier import MemoryNotifierChain, NotifierChain
from .page_alloc import (
    THP_MIN_TOTALRAM_BYTES,
    MemPolicy,
    VmTunables,
    build_all_zonelists,
    hugepage_init,
    init_per_zone_wmark_min,
    min_free_kbytes_sysctl_handler,
    totalram_pages,
    update_node_states,
    zone_pcp_reset,
)
from .topology import NR_CPUS, Topology, check_cpu_to_node, check_distance
from .topology_update import CpuMoveReport, move_cpus, set_distances

_SIZE_RE = re.compile(r"^\s*(\d{1,24})\s*([KMGTP]?)(i?B)?\s*$", re.IGNORECASE)

#: gfp_t is an unsigned int
GFP_BITS = 32
GFP_ZONEMASK = __GFP_DMA | __GFP_HIGHMEM | __GFP_DMA32 | __GFP_MOVABLE
#: include/linux/gfp.h: the zone-modifier combinations gfp_zone() BUGs on
GFP_ZONE_BAD = (1 << (__GFP_DMA | __GFP_HIGHMEM)
                | 1 << (__GFP_DMA | __GFP_DMA32)
                | 1 << (__GFP_DMA32 | __GFP_HIGHMEM)
                | 1 << (__GFP_DMA | __GFP_DMA32 | __GFP_HIGHMEM)
                | 1 << (__GFP_MOVABLE | __GFP_HIGHMEM | __GFP_DMA)
                | 1 << (__GFP_MOVABLE | __GFP_DMA32 | __GFP_DMA)
                | 1 << (__GFP_MOVABLE | __GFP_DMA32 | __GFP_HIGHMEM)
                | 1 << (__GFP_MOVABLE | __GFP_DMA32 | __GFP_DMA | __GFP_HIGHMEM))
#: arch/x86/mm/init_64.c set_memory_block_size_order(): at most MEM_SIZE_FOR_LARGE_BLOCK
MAX_MEMORY_BLOCK_BYTES = 64 << 30
#: page_owner is int16; -1 means free
OWNER_LIMIT = int(np.iinfo(_st.STATE_BY_NAME["page_owner"].dtype).max) + 1


def parse_size(text: str | int) -> int:
    """'128M', '1TiB', '4096' (or an int) -> bytes; ConfigError for anything
    else (floats, negative numbers, bools)."""
    if type(text) is int or is_int(text):
        return check_int("size", text, 0, 1 << 63, ConfigError, " (bytes)")
    if not isinstance(text, str):
        raise ConfigError(f"size: expected e.g. 128M, 4GiB or a number of bytes, got "
                          f"{show(text)}")
    mt = _SIZE_RE.match(text)
    if not mt:
        raise ConfigError(f"size: cannot parse {text[:40]!r} (expected e.g. 128M, 4GiB)")
    mult = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40, "P": 1 << 50}
    return int(mt.group(1)) * mult[mt.group(2).upper()]


def _rows(field: str, value: Any, width: int) -> list[tuple[int, ...]]:
    """``value`` as a list of ``width``-tuples of ints, or ConfigError naming
    the field and the row."""
    try:
        rows = [tuple(r) for r in value]
    except TypeError:
        raise ConfigError(f"{field}: expected a sequence of {width}-tuples of integers, "
                          f"got {show(value)}") from None
    for i, r in enumerate(rows):
        if len(r) != width:
            raise ConfigError(f"{field} range #{i}: expected {width} integers, got {r!r}")
        for v in r:
            if type(v) is not int and not is_int(v):
                raise ConfigError(f"{field} range #{i}: expected integers, got {show(v)}")
    return [tuple(int(v) for v in r) for r in rows]


def _check_ram(rows: list[tuple[int, ...]], max_numnodes: int) -> list[tuple[int, int, int]]:
    """memblock ranges sorted by start: non-empty, pfns in [0, PFN_LIMIT),
    nodes in [0, max_numnodes), disjoint; ConfigError naming the range by
    its index in ``rows``."""
    if not rows:
        raise ConfigError("ram: no memory ranges")
    for i, (s, e, n) in enumerate(rows):
        if s < 0 or e <= s:
            raise ConfigError(f"ram range #{i} [{s:#x}, {e:#x}): empty or negative")
        if not 0 <= n < max_numnodes:
            raise ConfigError(f"ram range #{i} [{s:#x}, {e:#x}): node {n} outside "
                              f"[0, {max_numnodes}) (max_numnodes)")
        if e >= PFN_LIMIT:
            raise ConfigError(f"ram range #{i} [{s:#x}, {e:#x}): pfns from 2**31 on are not "
                              f"supported (int32 lists)")
    order = sorted(range(len(rows)), key=lambda k: rows[k])
    for a, b in itertools.pairwise(order):
        if rows[b][0] < rows[a][1]:
            s, e, _n = rows[b]
            raise ConfigError(f"ram range #{b} [{s:#x}, {e:#x}) overlaps range #{a} "
                              f"[{rows[a][0]:#x}, {rows[a][1]:#x})")
    return [(rows[k][0], rows[k][1], rows[k][2]) for k in order]


@dataclass(frozen=True)
class MachineConfig:
    """What to boot: RAM ranges by node, CPUs, distances, page profile.

    ram: ``(start_pfn, end_pfn_exclusive, nid)`` memblock ranges (holes between);
    cpu_to_node: the node of each CPU (1 to NR_CPUS CPUs); distance: the SLIT
    of nodes 0..k-1 (square, symmetric); reserved: ``(start_pfn, end_pfn)``
    ranges never given to the buddy allocator; min_free_kbytes: the sysctl
    (kB, at most the machine's memory), if set; backlog: old layouts kept (-1
    all); memory_block_bytes: an explicit memory block size (a power of two,
    at least a section, at most 64 GiB), else the architecture's probe decides;
    thp: transparent hugepages on (Debian's TRANSPARENT_HUGEPAGE_ALWAYS=y, the
    default) or off (``transparent_hugepage=never``); it only decides whether
    khugepaged raises min_free_kbytes (set_recommended_min_free_kbytes);
    maxmem_pfn: the exclusive end pfn up to which memory may be hot-added
    (:meth:`Machine.add_memory`; the per-pfn arrays cover it, the pfns beyond
    boot RAM start as holes), at least the end of boot RAM, which is the
    default (no room for hotplug).

    min_free_kbytes is written as the sysctl is, after boot
    (min_free_kbytes_sysctl_handler): it holds until the next
    init_per_zone_wmark_min (a commit), which takes the larger of it and the
    sqrt formula, and then khugepaged's recommendation if that is larger.

    Every field is checked when the config is made (ConfigError naming the
    field and the allowed range), sequences normalised to tuples of ints;
    a state beyond errors.MAX_STATE_BYTES is refused here, one beyond the
    memory available when a machine boots.
    """

    ram: tuple[tuple[int, int, int], ...]
    cpu_to_node: tuple[int, ...]
    profile: PageProfile = X86_64
    max_numnodes: int = DEFAULT_MAX_NUMNODES
    distance: tuple[tuple[int, ...], ...] | None = None
    reserved: tuple[tuple[int, int], ...] = ()
    min_free_kbytes: int | None = None
    backlog: int = 0
    memory_block_bytes: int | None = None  # set_memory_block_size_order(); None: probe
    thp: bool = True  # CONFIG_TRANSPARENT_HUGEPAGE_ALWAYS=y; False: transparent_hugepage=never
    maxmem_pfn: int | None = None  # hotpluggable end pfn (exclusive); None: boot RAM end

    def __post_init__(self) -> None:
        put = object.__setattr__
        if not isinstance(self.profile, PageProfile):
            raise ConfigError(f"profile: expected a PageProfile, got {show(self.profile)}")
        maxn = check_int("max_numnodes", self.max_numnodes, 1, MAX_MAX_NUMNODES, ConfigError,
                         " (MAX_NUMNODES: 1 << NODES_SHIFT)", closed=True)
        put(self, "max_numnodes", maxn)
        ram = _rows("ram", self.ram, 3)
        srt = _check_ram(ram, maxn)
        put(self, "ram", tuple(ram))
        put(self, "cpu_to_node", check_cpu_to_node(self.cpu_to_node, maxn))
        if self.distance is not None:
            put(self, "distance", check_distance(self.distance, maxn))
        res = _rows("reserved", self.reserved, 2)
        for i, (rs, re_) in enumerate(res):
            if not 0 <= rs < re_ <= PFN_LIMIT:
                raise ConfigError(f"reserved range #{i} [{rs:#x}, {re_:#x}): empty or outside "
                                  f"[0, {PFN_LIMIT:#x}]")
        put(self, "reserved", tuple(res))
        if self.min_free_kbytes is not None:
            ram_kb = sum(e - s for s, e, _n in srt) << self.profile.page_shift >> 10
            put(self, "min_free_kbytes", check_int(
                "min_free_kbytes", self.min_free_kbytes, 0, ram_kb, ConfigError,
                " (kB: the sysctl's minimum 0, at most the machine's memory)", closed=True))
        put(self, "backlog", check_int("backlog", self.backlog, -1, 1 << 31, ConfigError,
                                       " (-1 keeps every old layout, 0 none, N the last N)"))
        mb = self.memory_block_bytes
        if mb is not None:
            sec = 1 << self.profile.section_size_bits
            mb = check_int("memory_block_bytes", mb, sec, MAX_MEMORY_BLOCK_BYTES, ConfigError,
                           " (bytes: a section to MEM_SIZE_FOR_LARGE_BLOCK)", closed=True)
            if mb & (mb - 1):
                raise ConfigError(f"memory_block_bytes: {mb:#x} is not a power of two of at "
                                  f"least one section ({sec:#x})")
            put(self, "memory_block_bytes", mb)
        if type(self.thp) is not bool:
            raise ConfigError(f"thp: expected true or false, got {show(self.thp)}")
        end = srt[-1][1]
        mx = end if self.maxmem_pfn is None else check_int(
            "maxmem_pfn", self.maxmem_pfn, end, PFN_LIMIT, ConfigError,
            " (the end of boot RAM to 2**31: int32 lists)")
        put(self, "maxmem_pfn", mx)
        check_bytes(f"ram: a machine of {srt[-1][1]:,} pfns and {len(self.cpu_to_node)} CPUs",
                    state_bytes(self), ConfigError, available=False)

    @classmethod
    def uniform(cls, nodes: int = 2, mem: str | int = "128M", cpus: int = 8,
                profile: PageProfile = X86_64, **kw: Any) -> MachineConfig:
        """``nodes`` nodes sharing ``mem`` bytes evenly (contiguous, node 0 lowest)
        and ``cpus`` CPUs evenly."""
        if not isinstance(profile, PageProfile):
            raise ConfigError(f"profile: expected a PageProfile, got {show(profile)}")
        known = {f.name for f in dataclasses.fields(cls)} - {"ram", "cpu_to_node", "profile"}
        unknown = sorted(set(kw) - known)
        if unknown:
            raise ConfigError(f"{', '.join(unknown)}: not a machine field (expected "
                              f"{', '.join(sorted(known))})")
        maxn = check_int("max_numnodes", kw.get("max_numnodes", DEFAULT_MAX_NUMNODES), 1,
                         MAX_MAX_NUMNODES, ConfigError, " (MAX_NUMNODES: 1 << NODES_SHIFT)",
                         closed=True)
        nodes = check_int("nodes", nodes, 1, maxn, ConfigError, " (max_numnodes)",
                          closed=True)
        cpus = check_int("cpus", cpus, 1, NR_CPUS, ConfigError, " (the model's NR_CPUS)",
                         closed=True)
        try:
            total = parse_size(mem) >> profile.page_shift
        except ConfigError as e:
            raise ConfigError(f"mem: {e}") from None
        if total < nodes * profile.nr_page_orders:
            raise ConfigError(f"mem: {mem} is too small for {nodes} nodes")
        if total >= PFN_LIMIT:
            raise ConfigError(f"mem: {mem} is {total:,} pfns, outside [0, {PFN_LIMIT:,}) "
                              f"(int32 lists)")
        check_bytes(f"mem: {mem} ({total:,} pfns)", int(total * _st.per_pfn_bytes()),
                    ConfigError, available=False)
        per = total // nodes
        ram = tuple((i * per, (i + 1) * per if i < nodes - 1 else total, i)
                    for i in range(nodes))
        c2n = tuple(min(c * nodes // cpus, nodes - 1) for c in range(cpus))
        return cls(ram=ram, cpu_to_node=c2n, profile=profile, **kw)


@dataclass(frozen=True)
class InitialState:
    """A real allocation state to boot into (see :mod:`dnuma.io.host`).

    alloc_pfn/alloc_order: head pfn and order of each allocated block;
    alloc_flags: extra struct page flags of each head (PG_slab, PG_lru);
    alloc_owner: owner ids (0 when None); pb_mt: a migratetype per pageblock.
    Pages neither allocated nor reserved nor holes start free.
    """

    alloc_pfn: np.ndarray
    alloc_order: np.ndarray
    alloc_flags: np.ndarray
    alloc_owner: np.ndarray | None = None
    pb_mt: np.ndarray | None = None


class Machine:
    """A booted model machine.

    Per-pfn state lives in numpy arrays (``self.S``, 15 1/8 bytes a pfn); every
    operation conserves pages.  Allocation failure is a result (``None``).
    """

    def __init__(self, config: MachineConfig, initial: InitialState | None = None) -> None:
        """Boot ``config``; with ``initial``, start from a real allocation state
        (allocated blocks and pageblock types, e.g. from /proc/kpageflags).

        ConfigError when the model state would not fit in the memory available.
        """
        if not isinstance(config, MachineConfig):
            raise ConfigError(f"config: expected a MachineConfig, got {show(config)}")
        if initial is not None and not isinstance(initial, InitialState):
            raise ConfigError(f"initial: expected an InitialState, got {show(initial)}")
        check_bytes(f"machine of {state_dims(config)['pfn']:,} pfns and "
                    f"{len(config.cpu_to_node)} CPUs", state_bytes(config), ConfigError)
        self._setup(config)
        self._boot(initial)

    def _setup(self, config: MachineConfig) -> None:
        """The Python-side state every machine has, before its arrays exist."""
        self.config = config
        self.profile = config.profile
        self.topo = Topology(config.max_numnodes, config.cpu_to_node, config.distance)
        self.user_min_free_kbytes = -1  # until a sysctl write
        self.min_free_kbytes = 1024  # the compile-time initial value
        self.khugepaged_thread = False  # started by hugepage_init
        self.vm = VmTunables(thp=bool(config.thp))  # the vm sysctls (mm/sysctl.py)
        # what the zone set-up (init_per_zone_wmark_min) was last computed
        # from: the redirected-page counter and managed pages (sync_zones)
        self._setup_moved = 0
        self._setup_managed = np.zeros(0, dtype=np.int64)
        self.zonelist_rebuilds = 0
        self.fallback_order: dict[int, list[int]] = {}
        self.backlog = LayoutBacklog(config.backlog)
        self.notifier = NotifierChain()
        self.memory_notifier = MemoryNotifierChain()  # register_memory_notifier
        #: told (old head pfns ascending, their new head pfns) whenever
        #: allocated blocks migrate (an offline): holders of pfns (a run's
        #: tasks, while it runs) follow them
        self.migration_listeners: list[Callable[[np.ndarray, np.ndarray], None]] = []
        #: register_node_notifier: NodeNotify for a node's first / last memory
        self.node_notifier = MemoryNotifierChain()
        #: CPU moves and distance changes (mm.topology_update): TopologyEvent
        self.topology_notifier = NotifierChain()
        self.hotplug = HotplugTunables()
        #: memory blocks present but offline: block id -> mem->nid (mm.memory_hotplug)
        self.offline_blocks: dict[int, int] = {}
        self.uevents: list[tuple[str, str, str]] = []
        # scratch policy arrays for calls without a MemPolicy
        self._no_mask = np.zeros(config.max_numnodes, dtype=np.bool_)
        self._no_il = np.full(1, -1, dtype=np.int64)
        self._ram = _check_ram(list(config.ram), config.max_numnodes)

    # ------------------------------------------------------------------ state
    #: Python-side scalars a snapshot must carry (besides config and layouts)
    SCALARS = ("seq", "min_free_kbytes", "user_min_free_kbytes", "zonelist_rebuilds")
    # (khugepaged_thread follows from the config and managed pages: restore)

    def state_arrays(self) -> dict[str, np.ndarray]:
        """Every saved array of the model state by name (the live arrays, not
        copies): STATE's machine and topology arrays, not the layout's; the
        zone set-up brought up to date first (:meth:`sync_zones`)."""
        self.sync_zones()
        return {a.name: self._arrays[a.name] for a in _st.owned_by(_st.MACHINE, _st.TOPOLOGY)}

    def scalars(self) -> dict[str, Any]:
        """The Python-side state :meth:`restore` takes besides the arrays and
        layouts: SCALARS, fallback_order and uevents (copies)."""
        out: dict[str, Any] = {k: int(getattr(self, k)) for k in self.SCALARS}
        out["fallback_order"] = {k: list(v) for k, v in self.fallback_order.items()}
        out["vm"] = self.vm.as_dict()
        out["uevents"] = list(self.uevents)
        out["hotplug"] = {"ram": [list(r) for r in self._ram],
                          "offline_blocks": {str(k): v for k, v in self.offline_blocks.items()},
                          "cpu_online": self.topo.cpu_online.tolist(),
                          "present_early": self.present_early.tolist(),
                          "tunables": self.hotplug.as_dict()}
        return out

    @classmethod
    def restore(cls, config: MachineConfig, arrays: dict[str, np.ndarray],
                layout: MemLayout, effective: MemLayout, backlog: list[MemLayout],
                scalars: dict[str, Any]) -> Machine:
        """A machine in exactly the state :meth:`state_arrays` and the
        scalars describe (no boot): the inverse of a snapshot."""
        if not isinstance(config, MachineConfig):
            raise ConfigError(f"config: expected a MachineConfig, got {show(config)}")
        m = cls.__new__(cls)
        m._setup(config)
        saved = [a.name for a in _st.owned_by(_st.MACHINE, _st.TOPOLOGY)]
        missing = [k for k in saved if k not in arrays]
        if missing:
            raise ConfigError(f"restore: arrays missing: {', '.join(missing)}")
        for a in _st.owned_by(_st.TOPOLOGY):
            setattr(m.topo, a.name, arrays[a.name])
        m._arrays = {k: arrays[k] for k in saved}
        for k in cls.SCALARS:
            setattr(m, k, int(scalars[k]))
        m.fallback_order = {int(k): list(v)
                            for k, v in scalars.get("fallback_order", {}).items()}
        if "vm" in scalars:  # snapshots before the tunables: the defaults
            m.vm = VmTunables.from_dict(scalars["vm"])
        m.uevents = [(str(a), str(p), str(s)) for a, p, s in scalars.get("uevents", [])]
        hp = scalars.get("hotplug")  # snapshots before hotplug: the boot state
        m.present_early = m._arrays["zone_present"].copy()
        if hp is not None:
            m._ram = [(int(a), int(b), int(c)) for a, b, c in hp["ram"]]
            m.offline_blocks = {int(k): int(v) for k, v in hp["offline_blocks"].items()}
            m.topo.cpu_online[:] = np.asarray(hp["cpu_online"], dtype=bool)
            m.present_early = np.asarray(hp["present_early"], dtype=np.int64)
            m.hotplug = HotplugTunables(**hp["tunables"])
        m.layout = layout
        for ml in backlog:
            m.backlog.feed(ml)
        m._point_kernels_at(effective)  # the saved lookup cache (ml_cache) stays
        # hugepage_init's decision: total managed pages never change after boot
        m.khugepaged_thread = bool(m.vm.thp) and totalram_pages(m) >= (
            THP_MIN_TOTALRAM_BYTES >> config.profile.page_shift)
        m._note_zone_setup()  # the saved watermarks are taken as they are
        return m

    # ------------------------------------------------------------------ boot
    def _zone_limits(self) -> tuple[int, int]:
        p = self.profile
        return p.dma_limit_bytes >> p.page_shift, p.dma32_limit_bytes >> p.page_shift

    def zone_idx_of_pfn(self, pfn: int) -> int:
        """The zone type of a pfn (arch zone limits, like zone_sizes_init)."""
        if type(pfn) is not int:
            pfn = check_int("pfn", pfn, 0, 1 << 63)
        dma, dma32 = self._zone_limits()
        if pfn < dma:
            return ZONE_DMA
        if pfn < dma32:
            return ZONE_DMA32
        return ZONE_NORMAL

    def _boot(self, initial: InitialState | None = None) -> None:
        p = self.profile
        n_nodes = self.config.max_numnodes
        ncpu = self.topo.nr_cpu_ids
        dims = state_dims(self.config)  # sections up to maxmem_pfn: hotplug room
        max_pfn = dims["pfn"]
        a = {x.name: _st.new_array(x.name, dims) for x in _st.owned_by(_st.MACHINE)}
        # the topology's own arrays, shared with the kernels
        a.update({x.name: getattr(self.topo, x.name) for x in _st.owned_by(_st.TOPOLOGY)})
        page_flags, page_nid, page_zone = a["page_flags"], a["page_nid"], a["page_zone"]
        for s, e, nid in self._ram:
            page_flags[s:e] = 0
            page_nid[s:e] = nid
        dma, dma32 = self._zone_limits()
        page_zone[:] = ZONE_NORMAL
        page_zone[:min(dma32, max_pfn)] = ZONE_DMA32
        page_zone[:min(dma, max_pfn)] = ZONE_DMA
        for s, e in self.config.reserved:
            s, e = max(0, s), min(e, max_pfn)
            seg = page_flags[s:e]
            seg[(seg & PG_hole) == 0] |= PG_reserved

        params = a["params"]
        params[_st.P_MAX_ORDER] = p.max_page_order
        params[_st.P_PB_ORDER] = p.pageblock_order
        params[_st.P_MAX_PFN] = max_pfn
        params[_st.P_NR_CPUS] = ncpu
        params[_st.P_MAX_NUMNODES] = n_nodes
        params[_st.P_SECTION_SHIFT] = p.section_size_bits - p.page_shift
        self._arrays: dict[str, np.ndarray] = a
        # present/managed pages per zone and per section, range by range
        for s, e, nid in self._ram:
            for lo, hi, z in self._split_by_zone(s, e):
                self._count_present(lo, hi, nid * MAX_NR_ZONES + z)
        a["zone_managed"][:] = a["zone_present"]
        self.present_early = a["zone_present"].copy()  # zone->present_early_pages
        resv = np.flatnonzero(page_flags & PG_reserved)
        if resv.size:
            gz = page_nid[resv].astype(np.int64) * MAX_NR_ZONES + page_zone[resv]
            a["zone_managed"] -= np.bincount(gz, minlength=a["zone_managed"].size)

        # the initial memlayout (ML_INITIAL, seq 0) from the memblock ranges
        self.layout = MemLayout.from_ranges((s, e - 1, n) for s, e, n in self._ram).with_seq(0)
        self.effective = self.layout
        self.seq = 0
        self.install_effective(self.effective)

        self._boot_zone_spans()
        if initial is None:
            runs = self._free_runs()
            starts = np.array([r[0] for r in runs], dtype=np.int64)
            ends = np.array([r[1] for r in runs], dtype=np.int64)
        else:
            starts, ends = self._apply_initial(initial)
        _kb.free_pages_memory(self.S, starts, ends)
        update_node_states(self)
        init_per_zone_wmark_min(self)  # postcore_initcall: khugepaged not started yet
        hugepage_init(self)  # subsys_initcall
        if self.config.min_free_kbytes is not None:  # the sysctl, written after the initcalls
            min_free_kbytes_sysctl_handler(self, self.config.min_free_kbytes)
        build_all_zonelists(self, boot=True)  # mm_core_init's build, in the model's order
        self._note_zone_setup()

    def _boot_zone_spans(self) -> None:
        """zone_spanned_pages_in_node(): a populated zone spans its arch range
        clamped to its node's span, holes at either end included."""
        a = self._arrays
        dma, dma32 = self._zone_limits()
        arch = ((0, dma), (dma, dma32), (dma32, 1 << 62))
        for nid in {n for *_r, n in self._ram}:
            lo = min(s for s, _e, n in self._ram if n == nid)
            hi = max(e for _s, e, n in self._ram if n == nid)
            for z, (zl, zh) in enumerate(arch):
                gz = nid * MAX_NR_ZONES + z
                if a["zone_present"][gz]:
                    a["zone_start"][gz] = max(zl, lo)
                    a["zone_end"][gz] = min(zh, hi)
                    a["zone_flags"][gz] &= ~_st.ZONE_SPAN_DIRTY

    def _apply_initial(self, init: InitialState) -> tuple[np.ndarray, np.ndarray]:
        """Mark ``init``'s allocated blocks and pageblock types; return the free
        runs left (present, not reserved, not allocated), cut at zone and
        node boundaries, for memblock_free_all."""
        a = self._arrays
        flags, order, owner = a["page_flags"], a["page_order"], a["page_owner"]
        arrs = {k: check_int_array(f"initial state: {k}", getattr(init, k), ConfigError)
                for k in ("alloc_pfn", "alloc_order", "alloc_flags", "alloc_owner", "pb_mt")
                if getattr(init, k) is not None}
        n0 = arrs["alloc_pfn"].size
        if any(arrs[k].size != n0 for k in ("alloc_order", "alloc_flags", "alloc_owner")
               if k in arrs):
            raise ConfigError("initial state: alloc_pfn, alloc_order, alloc_flags (and "
                              "alloc_owner) must be 1-d arrays of the same length")
        npb = a["pb_mt"].size  # pageblocks up to maxmem_pfn: pb_mt may stop at boot RAM's end
        nboot = -(-max(e for _s, e, _n in self._ram) >> self.profile.pageblock_order)
        if "pb_mt" in arrs and not min(nboot, npb) <= arrs["pb_mt"].size <= npb:
            raise ConfigError(f"initial state: pb_mt must have one migratetype for each of "
                              f"the {npb} pageblocks (or the {nboot} up to the end of boot "
                              f"RAM), got shape {arrs['pb_mt'].shape}")
        for k, lo, hi, what in (("alloc_flags", 0, 256, "uint8 flags"),
                                ("alloc_owner", 0, OWNER_LIMIT, "page_owner is int16"),
                                ("pb_mt", 0, MIGRATE_TYPES, "MIGRATE_TYPES"),
                                ("alloc_pfn", 0, 1 << 62, "pfns"),
                                ("alloc_order", -(1 << 62), 1 << 62, "orders")):
            i = first_outside(arrs[k], lo, hi) if k in arrs else -1
            if i >= 0:
                raise ConfigError(f"initial state: {k}[{i}] = {int(arrs[k][i])} outside "
                                  f"[{lo}, {hi}) ({what})")
        if arrs["alloc_flags"].size and int(np.bitwise_or.reduce(arrs["alloc_flags"])) & ~(
                PG_slab | PG_lru):
            raise ConfigError(f"initial state: alloc_flags may hold only PG_slab "
                              f"({PG_slab}) and PG_lru ({PG_lru})")
        heads = arrs["alloc_pfn"].astype(np.int64)
        orders = arrs["alloc_order"].astype(np.int64)
        extra = arrs["alloc_flags"].astype(np.uint8)
        size = flags.size
        bad = (orders < 0) | (orders > self.profile.max_page_order)
        n = np.int64(1) << np.clip(orders, 0, 62)
        bad |= (heads < 0) | (heads + n > size) | ((heads & (n - 1)) != 0)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise ConfigError(f"initial state: allocated block {i} at pfn {int(heads[i]):#x} "
                              f"order {int(orders[i])} is unaligned, outside the machine or "
                              f"above MAX_PAGE_ORDER {self.profile.max_page_order}")
        cover = block_cover(heads, n, size)
        busy = cover > 0
        taken = busy & ((flags & (PG_hole | PG_reserved)) == 0)
        if int(cover.max(initial=0)) > 1 or int(taken.sum()) != int(n.sum()):
            raise ConfigError("initial state: allocated blocks overlap each other, "
                              "a hole or a reserved page")
        last = heads + n - 1
        nid, zone = a["page_nid"], a["page_zone"]
        split = np.flatnonzero((nid[heads] != nid[last]) | (zone[heads] != zone[last]))
        if split.size:
            i = int(split[0])
            raise ConfigError(f"initial state: allocated block {i} at pfn {int(heads[i]):#x} "
                              f"order {int(orders[i])} spans two zones or nodes")
        flags[heads] |= PG_head | extra
        order[heads] = orders
        owner[heads] = arrs["alloc_owner"].astype(np.int16) if "alloc_owner" in arrs else 0
        if "pb_mt" in arrs:
            a["pb_mt"][:arrs["pb_mt"].size] = arrs["pb_mt"]
        free = (flags & (PG_hole | PG_reserved)) == 0
        free &= ~taken
        # cut runs where the zone or the node changes, as memblock ranges are
        cut = np.ones(flags.size, dtype=bool)
        cut[1:] = (a["page_zone"][1:] != a["page_zone"][:-1]) | \
                  (a["page_nid"][1:] != a["page_nid"][:-1])
        f8 = free.view(np.int8)
        starts = np.flatnonzero(free & (cut | np.concatenate(([True], f8[:-1] == 0))))
        nxt = np.concatenate((cut[1:], [True]))
        ends = np.flatnonzero(free & (nxt | np.concatenate((f8[1:] == 0, [True])))) + 1
        return starts.astype(np.int64), ends.astype(np.int64)

    def _split_by_zone(self, s: int, e: int) -> Iterator[tuple[int, int, int]]:
        dma, dma32 = self._zone_limits()
        cuts = sorted({s, e} | {c for c in (dma, dma32) if s < c < e})
        for lo, hi in itertools.pairwise(cuts):
            yield lo, hi, self.zone_idx_of_pfn(lo)

    def _count_present(self, lo: int, hi: int, gz: int) -> None:
        """Boot: pfns [lo, hi) are present in zone ``gz`` (zone and per-section counts)."""
        a = self._arrays
        shift = self.profile.section_size_bits - self.profile.page_shift
        a["zone_present"][gz] += (hi - lo)
        s0, s1 = lo >> shift, (hi - 1) >> shift
        if s0 == s1:
            a["sec_present"][s0, gz] += (hi - lo)
            return
        a["sec_present"][s0, gz] += (((s0 + 1) << shift) - lo)
        a["sec_present"][s0 + 1:s1, gz] += (1 << shift)
        a["sec_present"][s1, gz] += (hi - (s1 << shift))

    def _free_runs(self) -> list[tuple[int, int]]:
        """RAM minus reserved pages, cut at zone boundaries (memblock free ranges)."""
        resv = sorted((max(0, s), e) for s, e in self.config.reserved)
        runs: list[tuple[int, int]] = []
        for s, e, _nid in self._ram:
            for lo, hi, _z in self._split_by_zone(s, e):
                cur = lo
                for rs, re_ in resv:
                    if re_ <= cur or rs >= hi:
                        continue
                    if rs > cur:
                        runs.append((cur, rs))
                    cur = max(cur, re_)
                if cur < hi:
                    runs.append((cur, hi))
        return runs

    def install_effective(self, ml: MemLayout) -> None:
        """Point the kernels at a new effective layout (the lookup on free),
        its lookup cache empty."""
        if not isinstance(ml, MemLayout):
            raise LayoutError(f"layout: expected a MemLayout, got {show(ml)}")
        self._point_kernels_at(ml)
        self.S.ml_cache[0] = -1

    def _point_kernels_at(self, ml: MemLayout) -> None:
        """``ml`` becomes the effective layout: its arrays (STATE's layout
        arrays) go into a new KState bundle."""
        self.effective = ml
        a = self._arrays
        self._max_pfn = int(a["params"][_st.P_MAX_PFN])  # read-only: a plain int for checks
        a.update(ml_tbl=ml.table, ml_starts=ml.starts, ml_ends=ml.ends, ml_nids=ml.nids)
        self.S = _st.KState(**a)

    # ------------------------------------------------------------------ facts
    @property
    def max_pfn(self) -> int:
        """Arrays cover pfns [0, max_pfn) (section aligned)."""
        return int(self.S.params[_st.P_MAX_PFN])

    @property
    def nr_cpus(self) -> int:
        return self.topo.nr_cpu_ids

    def memblock_ranges(self) -> list[tuple[int, int, int]]:
        """memblock.memory: ``(start_pfn, end_pfn_exclusive, nid)``, sorted;
        boot RAM and hot-added memory, online or offline."""
        return list(self._ram)

    def add_memblock(self, start_pfn: int, end_pfn: int, nid: int) -> None:
        """memblock_add_node (add_memory_resource); the caller checked the range."""
        self._ram = sorted([*self._ram, (start_pfn, end_pfn, nid)])

    def remove_memblock(self, start_pfn: int, end_pfn: int) -> None:
        """memblock_remove (try_remove_memory): the range cut out of every range."""
        out = []
        for s, e, n in self._ram:
            if e <= start_pfn or s >= end_pfn:
                out.append((s, e, n))
                continue
            if s < start_pfn:
                out.append((s, start_pfn, n))
            if e > end_pfn:
                out.append((end_pfn, e, n))
        self._ram = out

    def ram_ranges(self) -> list[tuple[int, int]]:
        """RAM as ``(start_pfn, end_pfn_exclusive)``, adjacent ranges merged
        (System RAM: boot and hot-added memory, offline blocks included)."""
        out: list[tuple[int, int]] = []
        for s, e, _n in self._ram:
            if out and out[-1][1] == s:
                out[-1] = (out[-1][0], e)
            else:
                out.append((s, e))
        return out

    @property
    def moved_on_free(self) -> int:
        """Pages redirected to a new node when freed (marked pages)."""
        return int(self.S.counters[_st.C_MOVED_ON_FREE])

    @property
    def moved_pages(self) -> int:
        """The RFC's debugfs ``moved-pages`` (ml_stat_count_moved_pages, called
        from dnuma_post_free_to_new_zone): every page re-homed to a new node,
        by a commit (buddy transplants and pcp-drain redirects) or when freed
        (:attr:`moved_on_free`)."""
        return int(self.S.counters[_st.C_MOVED_AT_COMMIT]) + self.moved_on_free

    @property
    def total_present_pages(self) -> int:
        return int(self.S.zone_present.sum())

    def pages_on_pcp(self) -> int:
        return int(self.S.pcp_count.sum())

    def nr_free_pages(self) -> int:
        """Free pages: buddy lists plus per-cpu lists."""
        return int(self.S.zone_free.sum()) + self.pages_on_pcp()

    def NODE_DATA(self, nid: int) -> PgData:
        """The node ``nid`` (``pglist_data``); AllocArgError outside [0, MAX_NUMNODES)."""
        return PgData(self, self._check_nid(nid))

    def zone(self, nid: int, zone_idx: int) -> Zone:
        """``NODE_DATA(nid)->node_zones[zone_idx]``."""
        nid = self._check_nid(nid)
        zone_idx = check_int("zone_idx", zone_idx, 0, MAX_NR_ZONES, AllocArgError,
                             " (MAX_NR_ZONES)")
        return Zone(self, nid, zone_idx)

    def for_each_online_node(self) -> Iterator[int]:
        return self.topo.for_each_online_node()

    def for_each_node_state(self, state: int) -> Iterator[int]:
        """The nodes in node state ``state`` (N_POSSIBLE ... N_CPU)."""
        return self.topo.for_each_node_state(state)

    def for_each_populated_zone(self) -> Iterator[Zone]:
        for gz in np.flatnonzero(self.S.zone_present > 0).tolist():
            yield Zone(self, gz // MAX_NR_ZONES, gz % MAX_NR_ZONES)

    def _check_nid(self, nid: int, name: str = "nid") -> int:
        maxn = self.config.max_numnodes
        if type(nid) is int and 0 <= nid < maxn:
            return nid
        return check_int(name, nid, 0, maxn, AllocArgError, " (this machine's MAX_NUMNODES)")

    def check_nid(self, nid: int) -> int:
        """``nid`` as an int in [0, MAX_NUMNODES), else AllocArgError."""
        return self._check_nid(nid)

    def _check_cpu(self, cpu: int) -> int:
        """A CPU that runs tasks: in [0, nr_cpu_ids) and online (AllocArgError)."""
        if type(cpu) is int and 0 <= cpu < self.topo.nr_cpu_ids and self.topo.cpu_online[cpu]:
            return cpu
        cpu = check_int("cpu", cpu, 0, self.topo.nr_cpu_ids, AllocArgError, " (nr_cpu_ids)")
        if not self.topo.cpu_online[cpu]:
            raise AllocArgError(f"cpu: cpu {cpu} is offline (cpu_online_mask)")
        return cpu

    def check_online_cpu(self, cpu: int) -> int:
        """:meth:`_check_cpu` for the other mm modules."""
        return self._check_cpu(cpu)

    def _check_order(self, order: int, err: type[ArgError]) -> int:
        top = self.profile.max_page_order
        if type(order) is int and 0 <= order <= top:
            return order
        return check_int("order", order, 0, top, err, " (MAX_PAGE_ORDER)", closed=True)

    def numastat(self, nid: int) -> dict[str, int]:
        return self.NODE_DATA(nid).numastat()

    # ------------------------------------------------------------------ alloc/free
    def alloc_pages(self, order: int = 0, cpu: int = 0, nid: int | None = None,
                    gfp: int = GFP_KERNEL, policy: MemPolicy | None = None,
                    owner: int = 0) -> int | None:
        """Allocate 2**order pages on behalf of a task running on ``cpu``.

        nid given: ``alloc_pages_node(nid)`` (no task policy); else the task's
        ``policy`` (local when None).  owner: a task id in [0, 32767] kept
        with the block.  Returns the head pfn, or None on failure; bad
        arguments raise AllocArgError before anything changes.
        """
        order = self._check_order(order, AllocArgError)
        cpu = self._check_cpu(cpu)
        gfp = check_gfp(gfp)
        if type(owner) is not int or not 0 <= owner < OWNER_LIMIT:
            owner = check_int("owner", owner, 0, OWNER_LIMIT, AllocArgError,
                              " (page_owner is int16)")
        if nid is not None:
            if policy is not None:
                raise AllocArgError("nid and policy: give one (alloc_pages_node takes no "
                                    "task policy)")
            nid = self._check_nid(nid)
            mode, target, mask, il = MODE_NODE, nid, self._no_mask, self._no_il
        elif policy is None:
            mode, target, mask, il = MPOL_LOCAL, 0, self._no_mask, self._no_il
        else:
            if not isinstance(policy, MemPolicy):
                raise AllocArgError(f"policy: expected a MemPolicy, got {show(policy)}")
            mask, il = policy.arrays(self.config.max_numnodes)
            first = policy.nodes[0] if policy.nodes else 0
            mode, target = policy.mode, first
        pfn = _ka.alloc_pages(self.S, order, cpu, gfp, mode, target, mask, il, owner)
        return None if pfn < 0 else int(pfn)

    def free_pages(self, pfn: int, order: int = 0, cpu: int = 0) -> None:
        """``__free_pages``: free the block at ``pfn`` from ``cpu``.

        Raises BadFreeError (nothing changed) unless ``pfn`` heads an allocated
        block of exactly that order (an integer in [0, MAX_PAGE_ORDER]);
        AllocArgError for a bad ``cpu``.
        """
        if type(pfn) is not int or not 0 <= pfn < self._max_pfn:
            pfn = check_int("pfn", pfn, 0, self._max_pfn, BadFreeError,
                            " (the machine's pfns)")
        order = self._check_order(order, BadFreeError)
        cpu = self._check_cpu(cpu)
        if _ka.free_pages(self.S, pfn, order, cpu) != 0:
            raise BadFreeError(self._why_bad_free(pfn, order))
        self.sync_zones()

    def _why_bad_free(self, pfn: int, order: int) -> str:
        if not 0 <= pfn < self.max_pfn:
            return f"pfn {pfn:#x} outside [0, {self.max_pfn:#x})"
        f = int(self.S.page_flags[pfn])
        if f & PG_head:
            return (f"pfn {pfn:#x} heads an order-{int(self.S.page_order[pfn])} block, "
                    f"freed as order {order}")
        if f & (PG_buddy | PG_pcp):
            return f"pfn {pfn:#x} is already free (double free)"
        if f & PG_reserved:
            return f"pfn {pfn:#x} is reserved"
        if f & PG_hole:
            return f"pfn {pfn:#x} is a hole"
        return f"pfn {pfn:#x} is not the head of an allocated block"

    def vmstat_tick(self) -> None:
        """One run of vmstat_update on every CPU (the kernel does it each
        second): pcp high decays and idle remote pcps drain.  Zone set-up
        left behind by compiled runs is brought up to date first
        (:meth:`sync_zones`)."""
        self.sync_zones()
        S = self.S
        off = np.flatnonzero(~self.topo.cpu_online)
        if off.size == 0:
            _kbd.refresh_cpu_vm_stats(S)
            return
        # vmstat_update runs on online CPUs only: an offline CPU's pagesets
        # keep their high, flags and counters
        rows = [(a, a[off].copy()) for a in (S.pcp_high, S.pcp_free_count, S.pcp_alloc_factor,
                                             S.pcp_flags, S.pcp_expire)]
        _kbd.refresh_cpu_vm_stats(S)
        for a, saved in rows:
            a[off] = saved

    def drain_all_pages(self) -> None:
        """drain_all_pages(NULL): every CPU's pcp lists back to the buddy lists."""
        _kbd.drain_all_pages(self.S, -1)

    # ------------------------------------------------------------------ dnuma
    def commit(self, layout: MemLayout) -> CommitReport:
        """Install ``layout`` (see :func:`dnuma.mm.dnuma.commit`); LayoutError
        (nothing changed) for a layout that is not a valid MemLayout or does
        not fit this machine."""
        return commit(self, layout)

    def migrate_misplaced_pages(self, max_pages: int | None = None,
                                cpu: int = 0) -> MigrateReport:
        """Migrate marked movable pages now, up to ``max_pages``
        (mm.migrate.migrate_misplaced_pages)."""
        return migrate_misplaced_pages(self, max_pages, cpu)

    # ------------------------------------------------------------------ hotplug
    def add_memory(self, nid: int, start_pfn: int, nr_pages: int,
                   online_type: str | None = None) -> list[int]:
        """Hot-add memory (mm.memory_hotplug.add_memory): the new block ids.
        ``online_type``: "offline", "online", "online_kernel",
        "online_movable"; None: ``self.hotplug.auto_online_blocks``."""
        return add_memory(self, nid, start_pfn, nr_pages, online_type)

    def online_memory_block(self, block_id: int, online_type: str = "online") -> None:
        """Online an offline memory block (memory_block_online)."""
        memory_block_online(self, block_id, online_type)

    def offline_memory_block(self, block_id: int, cpu: int = 0) -> OfflineReport:
        """Offline an online memory block (memory_block_offline -> offline_pages),
        the migration run from ``cpu``."""
        return memory_block_offline(self, block_id, cpu)

    def remove_memory(self, start_pfn: int, nr_pages: int) -> None:
        """Hot-remove offline memory (mm.memory_hotplug.remove_memory)."""
        remove_memory(self, start_pfn, nr_pages)

    def cpu_down(self, cpu: int) -> None:
        """Take ``cpu`` offline (mm.cpu_hotplug.cpu_down)."""
        cpu_down(self, cpu)

    def cpu_up(self, cpu: int) -> None:
        """Bring ``cpu`` online (mm.cpu_hotplug.cpu_up)."""
        cpu_up(self, cpu)

    def move_cpus(self, moves: Mapping[int, int]) -> CpuMoveReport:
        """Give CPUs new nodes, {cpu: nid} (mm.topology_update.move_cpus)."""
        return move_cpus(self, moves)

    def set_distances(self, matrix: Sequence[Sequence[int]]) -> None:
        """A new SLIT for nodes 0..k-1, zonelists rebuilt once
        (mm.topology_update.set_distances)."""
        set_distances(self, matrix)

    def rebuild_after_layout_change(self) -> tuple[list[int], list[int]]:
        """Node states, the pagesets of zones emptied or refilled
        (zone_pcp_reset), watermarks, pcp high/batch, stat thresholds and
        zonelists, once."""
        self.S.counters[_st.C_ZONES_CHANGED] = 0
        on, off = update_node_states(self)
        zone_pcp_reset(self)  # zones emptied: the boot pageset; refilled: a fresh one
        init_per_zone_wmark_min(self)  # as online_pages / offline_pages and the RFC do
        build_all_zonelists(self)
        self._note_zone_setup()
        self.uevents.extend(("add", f"/devices/system/node/node{n}", "node") for n in on)
        self.uevents.extend(("remove", f"/devices/system/node/node{n}", "node") for n in off)
        return on, off

    def sync_zones(self) -> None:
        """After redirected frees (which move managed pages between zones):
        if a zone was emptied or populated, update node states and rebuild
        the zonelists as online_pages / offline_pages do; if managed pages
        changed at all, rerun init_per_zone_wmark_min (min_free_kbytes,
        watermarks, pcp batch/high, lowmem_reserve), as the kernel never
        changes managed pages without it.

        Called after every public free, after every compiled run (churn,
        tasks, replay), at each vmstat tick and before the procfs files and
        snapshots are made; a cheap counter check when nothing moved.
        """
        S = self.S
        if S.counters[_st.C_ZONES_CHANGED]:
            self.rebuild_after_layout_change()
        elif S.counters[_st.C_MOVED_ON_FREE] != self._setup_moved:
            if not np.array_equal(S.zone_managed, self._setup_managed):
                init_per_zone_wmark_min(self)
            self._note_zone_setup()

    def note_zone_setup(self) -> None:
        """The zone set-up was just recomputed (the hotplug paths)."""
        self._note_zone_setup()

    def _note_zone_setup(self) -> None:
        """The zone set-up now matches managed pages (see :meth:`sync_zones`)."""
        self._setup_moved = int(self.S.counters[_st.C_MOVED_ON_FREE])
        self._setup_managed = self.S.zone_managed.copy()

    # ------------------------------------------------------------------ page states
    def free_mask(self) -> np.ndarray:
        """bool per pfn: free (on a buddy or a pcp list)."""
        return block_mask(self.S, PG_buddy | PG_pcp)

    def allocated_mask(self) -> np.ndarray:
        return block_mask(self.S, PG_head)

    def misplaced_pages(self) -> int:
        """Allocated pages whose node differs from the effective layout's."""
        mask = self.allocated_mask()
        pfns = np.flatnonzero(mask)
        if pfns.size == 0:
            return 0
        want = self.effective.lookup_nocount(pfns)
        return int(np.count_nonzero((want >= 0) & (want != self.S.page_nid[pfns])))

    def mark_mask(self) -> np.ndarray:
        """bool per pfn: carries the LookupNode mark (only allocated block heads do)."""
        return mark_mask(self.S)

    def marked_pages(self) -> int:
        heads = mark_heads(self.S)
        return int((1 << self.S.page_order[heads].astype(np.int64)).sum())

    def nbytes(self) -> int:
        """Bytes of model state held in arrays."""
        return int(sum(v.nbytes for v in self._arrays.values()))

    def per_pfn_bytes(self) -> float:
        """Bytes per pfn of the per-pfn arrays alone (the mark bitmap's 1/8 included)."""
        return _st.per_pfn_bytes()


def state_dims(c: MachineConfig) -> dict[str, int]:
    """The sizes of the machine dimensions of STATE (:mod:`dnuma._kernels.state`)
    for a machine booted from ``c``: per-pfn arrays cover whole sections."""
    p = c.profile
    sec = p.pages_per_section
    end = max([int(e) for _s, e, _n in c.ram] + [int(c.maxmem_pfn or 0)])
    pfns = -(-end // sec) * sec
    gz = c.max_numnodes * MAX_NR_ZONES
    return {"pfn": pfns, "pfn8": -(-pfns // 8), "pageblock": pfns >> p.pageblock_order,
            "section": pfns // sec, "gz": gz, "zonelist": gz + 1, "order": p.nr_page_orders,
            "cpu": len(c.cpu_to_node), "node": c.max_numnodes, "node_state": NR_NODE_STATES}


def check_gfp(gfp: int) -> int:
    """``gfp`` as an int: a gfp_t (32 bits) whose zone modifiers gfp_zone()
    accepts (not GFP_ZONE_BAD, e.g. __GFP_DMA | __GFP_DMA32); AllocArgError
    otherwise."""
    if type(gfp) is not int or not 0 <= gfp < 1 << GFP_BITS:
        gfp = check_int("gfp", gfp, 0, 1 << GFP_BITS, AllocArgError, " (gfp_t)")
    if (GFP_ZONE_BAD >> (gfp & GFP_ZONEMASK)) & 1:
        raise AllocArgError(f"gfp: {gfp:#x} combines zone modifiers gfp_zone() refuses "
                            f"(GFP_ZONE_BAD: {gfp & GFP_ZONEMASK:#x})")
    return gfp


def state_bytes(c: MachineConfig) -> int:
    """Bytes of the state arrays a machine booted from ``c`` holds: the
    saved arrays (15 1/8 bytes a pfn, per-zone, per-cpu and per-node ones)
    and the boot layout's lookup table."""
    total = sum(int(np.prod(shape, dtype=np.int64)) * dt.itemsize
                for dt, shape in saved_arrays(c).values())
    pfns = state_dims(c)["pfn"]
    return total + 4 * ((pfns >> _lk.LOOKUP_SHIFT) + 1)


def saved_arrays(c: MachineConfig) -> dict[str, tuple[np.dtype[Any], tuple[int, ...]]]:
    """dtype and shape of every saved state array (what
    :meth:`Machine.state_arrays` returns, a snapshot holds and
    :meth:`Machine.restore` takes) of a machine booted from ``c``."""
    dims = state_dims(c)
    return {a.name: (np.dtype(a.dtype), _st.shape_of(a, dims))
            for a in _st.owned_by(_st.MACHINE, _st.TOPOLOGY)}


def block_cover(heads: np.ndarray, nr_pages: np.ndarray, size: int) -> np.ndarray:
    """How many of the blocks [heads, heads + nr_pages) cover each pfn of
    [0, size): a difference array summed up (int64 per pfn)."""
    d = np.bincount(heads, minlength=size + 1)[:size + 1] \
        - np.bincount(heads + nr_pages, minlength=size + 1)[:size + 1]
    return np.cumsum(d[:size])


def block_pfns(S: _st.KState, flag: int) -> tuple[np.ndarray, np.ndarray]:
    """Every pfn inside a block whose head has ``flag``, with that block's head
    pfn beside it: (heads repeated per page, pfns)."""
    heads = np.flatnonzero(S.page_flags & flag)
    n = 1 << S.page_order[heads].astype(np.int64)
    starts = np.repeat(heads, n)
    offs = np.arange(int(n.sum())) - np.repeat(np.cumsum(n) - n, n)
    return starts, starts + offs


def mark_heads(S: _st.KState) -> np.ndarray:
    """The marked pfns (block heads), ascending: only the bitmap's non-zero
    bytes are unpacked."""
    nz = np.flatnonzero(S.page_mark)
    if nz.size == 0:
        return nz
    bits = np.unpackbits(S.page_mark[nz], bitorder="little").reshape(-1, 8)
    r, c = np.nonzero(bits)
    return (nz[r] << 3) + c


def mark_mask(S: _st.KState) -> np.ndarray:
    """bool per pfn from the ``page_mark`` bitmap (bit ``pfn & 7`` of byte ``pfn >> 3``)."""
    bits = np.unpackbits(S.page_mark, count=S.page_flags.size, bitorder="little")
    return bits.view(np.bool_)


def block_mask(S: _st.KState, flag: int) -> np.ndarray:
    """bool per pfn: inside a block whose head has ``flag``."""
    mask = np.zeros(S.page_flags.size, dtype=bool)
    mask[block_pfns(S, flag)[1]] = True
    return mask


def boot(nodes: int = 2, mem: str | int = "128M", cpus: int = 8,
         config: MachineConfig | None = None, **kw: Any) -> Machine:
    """Boot a machine: ``boot(nodes=2, mem="128M", cpus=8)`` or ``boot(config=...)``
    (``mem`` in bytes or like "128M"; ConfigError naming a bad field)."""
    if config is not None and kw:
        raise ConfigError(f"config: give a MachineConfig or its fields "
                          f"({', '.join(sorted(kw))}), not both")
    return Machine(config if config is not None else
                   MachineConfig.uniform(nodes, mem, cpus, **kw))
