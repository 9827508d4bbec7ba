"""The model against the real kernel's recorded snapshots (tests/data/oracle:
Linux 6.12.117 under QEMU, recorded by ``make oracle``), and the oracle's
own parts: scenarios, the initramfs, QEMU's command line, the fields.

``tests/data/oracle/KNOWN-DIFFERENCES`` lists the rows that still disagree
unexplained (``scenario step field``), each a model gap to close: a new
disagreement fails, and so does a listed row that now agrees (take it off
the list)."""

from __future__ import annotations

import gzip
import re
from pathlib import Path

import pytest

from dnuma import boot
from dnuma.oracle.compare import checked_reason, compare, glob_match, untraced_free_reason
from dnuma.oracle.fields import buddyinfo_fields, pagetypeinfo_fields, zoneinfo_fields
from dnuma.oracle.qemu import OracleError, initramfs, qemu_args, qmp_request
from dnuma.oracle.record import open_recording
from dnuma.oracle.scenario import (
    OracleScenarioError,
    builtin_oracle_scenarios,
    parse_oracle_scenario,
)

ORACLE = Path(__file__).parent / "data" / "oracle"
KNOWN = ORACLE / "KNOWN-DIFFERENCES"


def _known() -> set[tuple[str, str, str]]:
    out = set()
    for line in KNOWN.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            sc, step, fld = line.split()[:3]
            out.add((sc, step, fld))
    return out


@pytest.fixture(scope="module")
def comparisons(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    out = {}
    for name in builtin_oracle_scenarios():
        d = tmp_path_factory.mktemp(name)
        snaps, text = open_recording(ORACLE / f"{name}.tar.xz", d)
        out[name] = compare(parse_oracle_scenario(text, name), snaps)
    return out


def test_every_shipped_scenario_is_recorded_from_the_kernel_we_model(comparisons):
    assert set(comparisons) == set(builtin_oracle_scenarios()) and len(comparisons) >= 7
    for c in comparisons.values():
        assert c.kernel_release == "6.12.117+deb12-amd64"
        assert c.counts()["compared"] > 100


def test_no_new_disagreement_and_the_known_list_is_true(comparisons):
    seen = {(c.scenario, r.step, r.field) for c in comparisons.values() for r in c.rows
            if r.status == "unexplained"}
    known = _known()
    assert not seen - known, f"new disagreements with the kernel: {sorted(seen - known)}"
    assert not known - seen, f"now agree, take them off KNOWN-DIFFERENCES: {sorted(known - seen)}"


def test_what_the_model_computes_agrees(comparisons):
    """The fields the model recomputed itself (not copied from the import)
    and the kernel agree on, in numbers: a sysctl write of min_free_kbytes
    gives the kernel's watermarks exactly."""
    rows = [r for r in comparisons["rfc"].rows if r.step == "min-free-4096"]
    wm = [r for r in rows if r.field.endswith((".min", ".low", ".high", ".promo"))]
    assert wm and all(not r.copied and r.status == "agree" for r in wm)
    assert any(r.field == "zone[0/DMA32].min" and r.kernel > 0 for r in wm)


def test_memoryless_and_cpuless_nodes_are_the_kernels(comparisons):
    rows = {r.field: r for r in comparisons["numa4"].rows if r.step == "boot"}
    assert rows["nodes.has_memory"].kernel == "0,2-3"  # SRAT order: node 1 has CPUs only
    assert rows["nodes.has_cpu"].kernel == "0-2"
    assert all(r.status != "unexplained" for r in rows.values())


def test_an_asymmetric_slit_is_imported_as_the_kernel_reports_it(comparisons):
    rows = {r.field: r for r in comparisons["asym3"].rows if r.step == "boot"}
    assert rows["node[1].distance"].kernel == "25 10 20" == rows["node[1].distance"].model


def test_boost_and_kswapd_are_explained_only_when_the_kernels_numbers_add_up(comparisons):
    """watermark_boost and kswapd's pressure threshold explain a row only when
    the kernel's own numbers account for the difference exactly."""
    rows = {r.field: r for r in comparisons["rfc"].rows if r.step == "wsf-100"}
    boosted = rows["zone[0/DMA32].min"]
    assert boosted.kernel - rows["zone[0/DMA32].boost"].kernel == boosted.model
    m = boot(nodes=1, cpus=4, mem="64M")
    z = "zone[0/DMA32]"
    kern = {f"{z}.boost": 512, f"{z}.min": 546, f"{z}.high": 598, f"{z}.pcp[0].stat_threshold": 3}
    mod = {f"{z}.boost": 0, f"{z}.min": 34, f"{z}.low": 46, f"{z}.high": 86,
           f"{z}.pcp[0].stat_threshold": 8}
    assert "watermark_boost" in checked_reason(f"{z}.boost", kern, mod, m)
    assert "watermark_boost (512)" in checked_reason(f"{z}.min", kern, mod, m)
    assert checked_reason(f"{z}.min", {**kern, f"{z}.min": 547}, mod, m) == ""
    assert checked_reason(f"{z}.boost", {**kern, f"{z}.boost": 500}, mod, m) == ""
    assert "kswapd" in checked_reason(f"{z}.pcp[0].stat_threshold", kern, mod, m)  # 12 // 4
    assert checked_reason(f"{z}.pcp[0].stat_threshold",
                          {**kern, f"{z}.pcp[0].stat_threshold": 2}, mod, m) == ""
    # kswapd woke before a write of watermark_scale_factor (which refreshes no
    # threshold): the watermarks of the snapshot before give it
    before = {f"{z}.min": 30, f"{z}.low": 38}
    assert "kswapd" in checked_reason(f"{z}.pcp[0].stat_threshold",
                                      {**kern, f"{z}.pcp[0].stat_threshold": 2}, mod, m, before)


def test_fields_parse_the_kernels_text():
    z = zoneinfo_fields("Node 1, zone    DMA32\n  pages free     3\n        min      13\n"
                        "        low      16\n        spanned  12288\n"
                        "        protection: (0, 0, 7, 7, 7)\n  pagesets\n    cpu: 0\n"
                        "              high:  0\n")
    assert z == {"zone[1/DMA32].min": 13, "zone[1/DMA32].low": 16,
                 "zone[1/DMA32].spanned": 12288, "zone[1/DMA32].protection": (0, 0, 7, 7, 7)}
    z = zoneinfo_fields("Node 0, zone      DMA\n  pagesets\n    cpu: 1\n"
                        "              count: 5\n              high:  9\n"
                        "              batch: 3\n  vm stats threshold: 6\n"
                        "  node_unreclaimable:  0\n  start_pfn:           1\n")
    assert z == {"zone[0/DMA].pcp[1].batch": 3, "zone[0/DMA].pcp[1].stat_threshold": 6}
    assert buddyinfo_fields("Node 0, zone      DMA      2      1\n") == {
        "zone[0/DMA].free_by_order": (2, 1)}
    assert pagetypeinfo_fields("Node    0, zone      DMA, type    Unmovable      2      1\n") \
        == {"zone[0/DMA].free[Unmovable]": (2, 1)}
    assert glob_match("zone[0/DMA].min", "zone[*].min")
    assert not glob_match("zoneX0/DMA].min", "zone[*].min")


def test_a_traced_workload_is_predicted_block_for_block(comparisons):
    """The model replays the guest's own kmem trace from the snapshot before
    (following its pcp lists) and predicts every zone's free blocks per
    order after it, computed, not copied."""
    for name, steps in (("trace-anon", ["anon"]), ("trace-cache", ["cache", "fork"])):
        c = comparisons[name]
        assert list(c.replays) == steps
        for step in steps:
            rows = [r for r in c.rows if r.step == step and r.field.endswith(".free_by_order")]
            assert len(rows) >= 3 and all(r.status == "agree" and not r.copied for r in rows)
            assert sum(c.replays[step]["replayed"].values()) > 10_000
            before = {r.field: r.kernel for r in c.rows if r.step == "boot"
                      and r.field.endswith(".free_by_order")}
            assert any(before[r.field] != r.kernel for r in rows)  # the workload moved them


def _rows(c, step):
    return {r.field: r for r in c.rows if r.step == step}


def add_present(c):
    return _rows(c, "add-node2")["zone[1/Normal].present"].model


def test_hot_added_memory_is_onlined_as_the_kernel_onlines_it(comparisons):
    """hotplug-add: a DIMM on a node with memory and one on a node that had
    none; the zone, spans, watermarks, node states and block files are the
    model's own (only the DIMM's address and node come from the guest)."""
    c = comparisons["hotplug-add"]
    add1, add2 = _rows(c, "add-node1"), _rows(c, "add-node2")
    for rows in (add1, add2):
        assert all(r.status != "unexplained" for r in rows.values())
    assert add1["step.result"].kernel == "blocks 4 -> 6" == add1["step.result"].model
    assert add1["memory32.valid_zones"].kernel == "Normal" == add1["memory32.valid_zones"].model
    assert add1["zone[1/Normal].present"].kernel == 65536 == add1["zone[1/Normal].present"].model
    # the new node: N_ONLINE, N_MEMORY, its zone and its free lists, computed
    assert add2["nodes.online"].kernel == "0-2" == add2["nodes.online"].model
    assert add2["nodes.has_memory"].kernel == "0-2"
    for f in ("nodes.online", "nodes.has_memory", "zone[2/Normal].managed", "zone[2/Normal].min",
              "zone[2/Normal].free_by_order", "vm.min_free_kbytes", "memory34.valid_zones"):
        assert add2[f].status == "agree" and not add2[f].copied, f
    assert add2["memory34.node"].copied  # where QEMU put the DIMM
    assert _rows(c, "boot")["vm.min_free_kbytes"].kernel != add2["vm.min_free_kbytes"].kernel


def test_offline_online_and_refusals_are_the_kernels(comparisons):
    c = comparisons["hotplug-add"]
    off, on, busy = _rows(c, "offline-b33"), _rows(c, "online-b33"), _rows(c, "offline-b1")
    assert off["memory33.state"].kernel == "offline" == off["memory33.state"].model
    assert off["memory33.valid_zones"].model == "Normal Movable"
    assert off["zone[1/Normal].present"].model == add_present(c) - 32768
    assert on["memory33.state"].model == "online" and on["step.result"].model == "rc=0"
    ebusy = "rc=1 sh: write error: Device or resource busy"  # boot memory: unmovable pages
    assert busy["step.result"].kernel == ebusy == busy["step.result"].model
    pinned = comparisons["hotplug-pinned"]  # pages the traced workload pinned (pipes)
    assert list(pinned.replays) == ["pin"]
    r = _rows(pinned, "offline-b32")
    assert r["step.result"].kernel == ebusy == r["step.result"].model
    assert r["memory32.state"].model == "online"
    r = _rows(pinned, "remove-dimm2")  # the eject's offline fails: the DIMM stays
    assert r["step.result"].kernel == "blocks 6 -> 6" == r["step.result"].model
    r = _rows(pinned, "offline-b33")  # the other block goes, its pages migrated
    assert r["memory33.state"].model == "offline" and r["step.result"].model == "rc=0"
    assert r["node[2].MemFree"].status == "agree"
    assert r["zone[2/Normal].free_by_order"].status == "agree"


def test_cpus_going_offline_and_a_node_losing_its_last(comparisons):
    c = comparisons["hotplug-add"]
    off2, off3, on3 = _rows(c, "cpu2-off"), _rows(c, "cpu3-off"), _rows(c, "cpu3-on")
    assert off2["cpus.online"].kernel == "0-1,3" == off2["cpus.online"].model
    assert off3["nodes.has_cpu"].kernel == "0" == off3["nodes.has_cpu"].model
    assert off3["node[1].cpulist"].model == ""
    assert not any(".pcp[2]." in f or ".pcp[3]." in f for f in off3)  # for_each_online_cpu
    assert "zone[1/Normal].pcp[3].batch" in on3 and on3["cpus.offline"].model == "2"
    assert all(r.status != "unexplained" for r in [*off2.values(), *off3.values()])


def test_movable_hot_add_and_a_hot_remove_that_offlines_a_node(comparisons):
    c = comparisons["hotplug-movable"]
    add2, rm = _rows(c, "add-node2"), _rows(c, "remove-node2")
    assert add2["memory32.valid_zones"].kernel == "Movable" == add2["memory32.valid_zones"].model
    assert add2["zone[2/Movable].present"].model == 65536
    assert add2["nodes.has_normal_memory"].kernel == "0-1"  # movable only: not N_NORMAL_MEMORY
    assert add2["nodes.has_memory"].kernel == "0-2" == add2["nodes.has_memory"].model
    assert rm["nodes.online"].kernel == "0-1" == rm["nodes.online"].model  # try_offline_node
    assert rm["step.result"].model == "blocks 6 -> 4"
    assert not any(f.startswith("node[2].") for f in rm)
    ok = _rows(c, "online-kernel-b33")
    assert ok["memory33.valid_zones"].kernel == "Normal" == ok["memory33.valid_zones"].model
    assert ok["zone[1/Movable].present"].model == 32768


def test_a_refused_eject_onlines_back_what_it_offlined():
    """The model's DIMM eject (acpi_scan_try_to_offline): block 4 offlines,
    block 5 holds an unmovable page, so block 4 comes back online and the
    DIMM stays; a free eject then removes it and node 2 goes offline."""
    from dnuma.mm.constants import GFP_KERNEL, N_ONLINE
    from dnuma.mm.machine import Machine, MachineConfig
    from dnuma.mm.memory_hotplug import memory_block_state
    from dnuma.oracle.mirror import Mirror, room_pfn, shell_result

    blk = 32768
    m = Machine(MachineConfig.uniform(2, "512M", 4, maxmem_pfn=8 * blk, max_numnodes=4))
    mirror = Mirror()
    after = {"memory4.state": "online", "memory5.state": "online", "memory4.node": "2",
             "memory5.node": "2"}
    assert room_pfn([after], 128 << 20) == 6 * blk
    assert mirror.hotplug(m, "d", after) == "blocks 4 -> 6" and mirror.dimms == {"d": (4 * blk,
                                                                                      2 * blk)}
    pages = []
    while not pages or pages[-1] < 5 * blk:
        pages.append(m.alloc_pages(0, cpu=0, nid=2, gfp=GFP_KERNEL, owner=1))
    pin = pages.pop()
    for p in pages:
        m.free_pages(p)
    total = m.nr_free_pages()
    assert mirror.hotremove(m, "d") == "blocks 6 -> 6"
    assert memory_block_state(m, 4) == "online" == memory_block_state(m, 5)
    assert m.nr_free_pages() == total and "d" in mirror.dimms
    m.free_pages(pin)
    assert mirror.hotremove(m, "d") == "blocks 6 -> 4"
    assert not m.topo.node_states[N_ONLINE, 2] and mirror.dimms == {}  # try_offline_node
    assert shell_result(None) == "rc=0"


def test_a_trace_that_lost_events_judges_nothing(tmp_path):
    snaps, text = open_recording(ORACLE / "trace-anon.tar.xz", tmp_path)
    trace = snaps / "01-anon" / "trace"
    head, rest = trace.read_text().split("\n", 3)[:3], trace.read_text().split("\n", 3)[3]
    head[2] = re.sub(r"(\d+)/(\d+)", lambda m: f"{m[1]}/{int(m[2]) + 5}", head[2])
    trace.write_text("\n".join([*head, rest]))
    rows = [r for r in compare(parse_oracle_scenario(text), snaps).rows
            if r.field == "trace.lost_events"]
    assert [(r.kernel, r.status) for r in rows] == [(5, "unexplained")]


def test_a_few_pages_more_on_the_kernels_buddy_lists_are_explained_only_if_pcp_held():
    """A free free_unref_page put straight on the buddy lists (its pcp
    trylock failed) fires no event: a traced step's zone may show a few
    pages more free than the model's, no more than the model holds on that
    zone's pcp lists; any other difference stays unexplained."""
    m = boot(nodes=1, cpus=2, mem="512M")
    m.alloc_pages(0, cpu=0)  # the refill leaves a batch on CPU 0's pcp list
    z, gz = "zone[0/DMA32]", m.zone(0, 1).gz
    held = int(m.S.pcp_count[:, gz].sum())
    assert held > 3
    key = f"{z}.free_by_order"
    mod = {key: (14, 10, 4)}
    assert "3 pages more" in untraced_free_reason(key, {key: (17, 10, 4)}, mod, m)
    assert untraced_free_reason(key, {key: (11, 10, 4)}, mod, m) == ""  # the model has more
    assert untraced_free_reason(key, {key: (14, 10, 4 + held)}, mod, m) == ""  # too many
    m.drain_all_pages()
    assert untraced_free_reason(key, {key: (17, 10, 4)}, mod, m) == ""  # none held


def test_traced_steps_start_and_stop_the_trace_around_them():
    sc = parse_oracle_scenario(builtin_oracle_scenarios()["trace-cache"], "trace-cache.toml")
    assert sc.traced and sc.steps_script().splitlines() == [
        "trace_setup", "step boot trace-next", "/bin/dnuma-workload cache 32 anon 8",
        "step cache traced trace-next", "/bin/dnuma-workload fork 24 anon 4", "step fork traced"]
    with pytest.raises(OracleError, match="workload binary"):
        initramfs(sc, "/bin/sh")


def test_the_initramfs_holds_busybox_init_and_the_steps(tmp_path):
    sc = parse_oracle_scenario(builtin_oracle_scenarios()["sysctl"], "sysctl.toml")
    bb = tmp_path / "busybox"
    bb.write_bytes(b"\x7fELF not really")
    wl = tmp_path / "dnuma-workload"
    wl.write_bytes(b"\x7fELF neither")
    assert b"dnuma-workload" not in gzip.decompress(initramfs(sc, str(bb), wl))
    sc = parse_oracle_scenario(builtin_oracle_scenarios()["trace-anon"], "trace-anon.toml")
    data = gzip.decompress(initramfs(sc, str(bb), wl))
    names, pos = [], 0
    while True:  # walk the newc archive
        assert data[pos:pos + 6] == b"070701"
        size, nlen = int(data[pos + 54:pos + 62], 16), int(data[pos + 94:pos + 102], 16)
        name = data[pos + 110:pos + 110 + nlen - 1].decode()
        pos += 110 + nlen
        pos += -pos % 4
        body = data[pos:pos + size]
        pos += size + (-size % 4)
        if name == "TRAILER!!!":
            break
        names.append(name)
        if name == "steps":
            assert body.decode() == sc.steps_script()
            assert "/bin/dnuma-workload anon 24 fork 16\n" in body.decode()
        if name == "bin/dnuma-workload":
            assert body == wl.read_bytes()
    assert {"init", "steps", "bin/busybox", "bin/dnuma-workload", "proc", "sys"} <= set(names)


HOTPLUG = """
name = "hp"
[machine]
node = [{ cpus = "0-1", mem = "256M" }, { cpus = "2-3", mem = "256M" }, { }]
[[step]]
name = "add"
hotplug = { node = 2, size = "256M" }
[[step]]
name = "movable"
auto_online_blocks = "online_movable"
[[step]]
name = "off"
memory_block = { block = 33, state = "offline" }
[[step]]
name = "cpu-off"
cpu_offline = 3
[[step]]
name = "remove"
hotremove = "dimm0"
"""


def test_hotplug_steps_become_qmp_requests_and_sysfs_writes(tmp_path):
    sc = parse_oracle_scenario(HOTPLUG, "hp.toml")
    assert [s.kind for s in sc.steps] == ["hotplug", "auto_online_blocks", "memory_block",
                                         "cpu_offline", "hotremove"]
    assert sc.hotplug_bytes == 256 << 20
    script = sc.steps_script()
    assert f"qmp_wait add dimm0 2 {256 << 20}\n" in script
    assert "write_result online_movable /sys/devices/system/memory/auto_online_blocks" in script
    assert "write_result offline /sys/devices/system/memory/memory33/state" in script
    assert "write_result 0 /sys/devices/system/cpu/cpu3/online" in script
    assert "qmp_wait remove dimm0\n" in script
    args = " ".join(qemu_args(sc, Path("vmlinuz"), Path("initrd.gz"), tmp_path / "qmp"))
    assert "-m 512M,slots=8,maxmem=768M " in args
    assert f"-qmp unix:{tmp_path / 'qmp'},server=on,wait=off" in args
    # the host's side of a request: the QMP commands it sends
    sent = []

    class FakeQmp:
        def execute(self, command, **kw):
            sent.append((command, kw))

    qmp_request(FakeQmp(), ["add", "dimm0", "2", str(256 << 20)])
    qmp_request(FakeQmp(), ["remove", "dimm0"])
    assert sent == [("object-add", {"qom-type": "memory-backend-ram", "id": "mem-dimm0",
                                    "size": 256 << 20}),
                    ("device_add", {"driver": "pc-dimm", "id": "dimm0", "memdev": "mem-dimm0",
                                    "node": 2}),
                    ("device_del", {"id": "dimm0"})]


def test_the_qmp_client_talks_qmp(tmp_path):
    """Greeting, capabilities, a command with its events skipped, an error."""
    import json
    import socket
    import threading

    from dnuma.oracle.qmp import Qmp, QmpError

    path = tmp_path / "qmp"
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(str(path))
    srv.listen(1)
    got = []

    def serve():
        c, _ = srv.accept()
        f = c.makefile("rwb")
        f.write(b'{"QMP": {"version": {}}}\n')
        f.flush()
        for line in f:
            msg = json.loads(line)
            got.append(msg)
            if msg["execute"] == "device_add":
                f.write(b'{"event": "ACPI_DEVICE_OST"}\n{"return": {}}\n')
            elif msg["execute"] == "device_del":
                f.write(b'{"error": {"class": "GenericError", "desc": "no such device"}}\n')
            else:
                f.write(b'{"return": {}}\n')
            f.flush()
        c.close()

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    with Qmp(path, timeout_s=5) as q:
        assert q.execute("device_add", driver="pc-dimm", id="d") == {}
        with pytest.raises(QmpError, match="device_del: no such device"):
            q.execute("device_del", id="x")
    t.join(5)
    srv.close()
    assert [m["execute"] for m in got] == ["qmp_capabilities", "device_add", "device_del"]
    assert got[1]["arguments"] == {"driver": "pc-dimm", "id": "d"}


def test_qemu_gets_memoryless_cpuless_nodes_and_distances():
    sc = parse_oracle_scenario(builtin_oracle_scenarios()["numa4"], "numa4.toml")
    args = " ".join(qemu_args(sc, Path("vmlinuz"), Path("initrd.gz")))
    assert "-numa node,nodeid=1,cpus=2-3 " in args  # memoryless: no memdev
    assert "-numa node,nodeid=2,memdev=m2 " in args  # CPU-less
    assert "-numa dist,src=0,dst=3,val=28" in args and "-smp 6" in args and "-m 1024M" in args
    assert "-accel tcg,thread=single" in args


def test_a_folder_named_like_a_shipped_scenario_does_not_shadow_it(tmp_path, monkeypatch):
    from dnuma.oracle.scenario import load_oracle_scenario

    (tmp_path / "rfc").mkdir()  # e.g. a recording unpacked here
    monkeypatch.chdir(tmp_path)
    assert load_oracle_scenario("rfc").name == "rfc"
    with pytest.raises(OracleScenarioError, match=r"nowhere\.toml: cannot read"):
        load_oracle_scenario("nowhere.toml")


@pytest.mark.parametrize(("text", "where"), [
    ("[machine]\nnode = []\n", "machine.node"),
    ('[machine]\nnode = [{ cpus = "0-1", mem = "lots" }]\n', "machine.node[0]"),
    ('[machine]\nnode = [{ cpus = "0", mem = "64M" }, { cpus = "0", mem = "64M" }]\n',
     "machine.node[1].cpus"),
    ('[machine]\nnode = [{ cpus = "1", mem = "64M" }]\n', "CPUs must be 0..N-1"),
    ('[machine]\nnode = [{ cpus = "0", mem = "64G" }]\n', "GiB"),
    ('[machine]\nnode = [{ cpus = "0", mem = "64M" }]\ndistance = [[10, 20]]\n',
     "machine.distance"),
    ('[machine]\nnode = [{ cpus = "0", mem = "64M" }]\n[[step]]\nsysctl = { swappiness = 1 }\n',
     "step[0].sysctl"),
    ('[machine]\nnode = [{ cpus = "0", mem = "64M" }]\n[[step]]\nthp = "sometimes"\n',
     "step[0].thp"),
    ('[machine]\nnode = [{ cpus = "0", mem = "64M" }]\n[[step]]\nworkload = "anon"\n',
     "step[0].workload"),
    ('[machine]\nnode = [{ cpus = "0", mem = "64M" }]\n[[step]]\nworkload = "swap 3"\n',
     "'swap'"),
    ('[machine]\nnode = [{ cpus = "0", mem = "64M" }]\n[[step]]\nworkload = "anon 0"\n',
     "1 to 4096 MiB"),
    ('[machine]\nnode = [{ cpus = "0", mem = "64M" }]\n[[step]]\nworkload = 3\n',
     "step[0].workload"),
    ('[machine]\nnode = [{ cpus = "0", mem = "64M" }]\n[[step]]\nworkload = "bind 1024"\n',
     "step[0].workload"),
    ('[machine]\nnode = [{ cpus = "0", mem = "64M" }]\n[[step]]\nworkload = "pin 0"\n',
     "step[0].workload"),
    ('[machine]\nnode = [{ cpus = "0", mem = "64M" }]\n[[step]]\nhotplug = { node = 1, '
     'size = "128M" }\n', "step[0].hotplug.node"),
    ('[machine]\nnode = [{ cpus = "0", mem = "64M" }]\n[[step]]\nhotplug = { node = 0, '
     'size = "100M" }\n', "multiple of 128M"),
    ('[machine]\nnode = [{ cpus = "0", mem = "64M" }]\n[[step]]\nhotremove = "d"\n',
     "not a DIMM a step before added"),
    ('[machine]\nnode = [{ cpus = "0", mem = "64M" }]\n[[step]]\nmemory_block = '
     '{ block = 1, state = "gone" }\n', "step[0].memory_block"),
    ('[machine]\nnode = [{ cpus = "0", mem = "64M" }]\n[[step]]\ncpu_offline = 1\n',
     "expected a CPU 0 to 0"),
    ('[machine]\nnode = [{ cpus = "0", mem = "64M" }]\n[[step]]\nauto_online_blocks = '
     '"sometimes"\n', "step[0].auto_online_blocks"),
    ('nme = "x"\n', "nme"),
])
def test_bad_oracle_scenarios_say_where(text, where):
    with pytest.raises(OracleScenarioError, match=f"x.toml: .*{__import__('re').escape(where)}"):
        parse_oracle_scenario(text, "x.toml")


def test_the_command_compares_recorded_runs(capsys):
    from dnuma.cli import main

    known_rfc = sum(1 for sc, _st, _f in _known() if sc == "rfc")
    code = main(["oracle", "rfc", "numa4", "--json", "--record", str(ORACLE)])
    assert code == (1 if known_rfc else 0)  # exit 1: a field disagrees unexplained
    doc = __import__("json").loads(capsys.readouterr().out)
    assert [s["scenario"] for s in doc["scenarios"]] == ["rfc", "numa4"]
    assert doc["total"]["unexplained"] == known_rfc
    assert doc["total"]["compared"] == sum(s["compared"] for s in doc["scenarios"]) > 500
    assert main(["oracle", "asym3", "--record", str(ORACLE)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("asym3 (Linux 6.12.117+deb12-amd64): ") and "0 unexplained" in out
    assert main(["oracle", "nowhere"]) == 2
    assert "nowhere: cannot read" in capsys.readouterr().err
