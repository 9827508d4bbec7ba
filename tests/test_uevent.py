"""Uevents in the kernel's format: numbered, delivered to callbacks, a
JSON-lines file and stdout, counted per change, memory blocks coalesced."""

from __future__ import annotations

import json

from dnuma.cli import main
from dnuma.io.uevent import Uevent, UeventStream, coalesce
from dnuma.mm.machine import Machine, MachineConfig
from dnuma.mm.memlayout import MemLayout

SC = """
duration = "1s"
[machine]
nodes = 2
cpus_per_node = 1
mem = "256M"
maxmem = "1G"
max_numnodes = 4
[[event]]
at = "0.2s"
name = "dimm"
hotplug = { node = 2, size = "512M" }
[[event]]
at = "0.5s"
push = 1
"""


def test_udevadm_format():
    ev = Uevent(2.5, 7, "online", "/devices/system/memory/memory9", "memory")
    assert ev.udevadm() == ("KERNEL[2.500000] online   /devices/system/memory/memory9 (memory)\n"
                            "ACTION=online\nDEVPATH=/devices/system/memory/memory9\n"
                            "SUBSYSTEM=memory\nSEQNUM=7\n\n")


def test_stream_numbers_delivers_and_counts():
    m = Machine(MachineConfig.uniform(2, "256M", 2, max_numnodes=4, maxmem_pfn=1 << 18))
    got: list[Uevent] = []
    st = UeventStream(m, callbacks=[got.append])
    m.add_memory(2, 1 << 16, 1 << 16)  # 2 blocks of 128 MiB
    st.hotplug_event(0.1, type("R", (), {"name": "dimm"})())
    assert [(e.seqnum, e.action, e.devpath) for e in got] == [
        (1, "add", "/devices/system/node/node2"),
        (2, "add", "/devices/system/memory/memory2"),
        (3, "add", "/devices/system/memory/memory3"),
        (4, "online", "/devices/system/memory/memory2"),
        (5, "online", "/devices/system/memory/memory3")]
    assert not m.uevents  # taken, not left pending
    m.commit(MemLayout.push(m.ram_ranges(), 3))
    st.layout_event(0.2, "push", None)
    assert [(e.action, e.devpath) for e in got[5:]] == [
        ("add", "/devices/system/node/node3"), ("change", "/devices/system/node")]
    assert got[-1].env == {"MEMLAYOUT_SEQ": "1", "NODES": "3"} and got[-1].seqnum == 7
    assert st.counts == [
        {"event": "dimm", "t": 0.1, "uevents": 5, "delivered": 5,
         "by_subsystem": {"node": 1, "memory": 4}},
        {"event": "push", "t": 0.2, "uevents": 2, "delivered": 2, "by_subsystem": {"node": 2}}]


def test_coalescing_keeps_the_count():
    evs = [Uevent(0, i + 1, a, f"/devices/system/memory/memory{b}", "memory")
           for i, (a, b) in enumerate([("add", 4), ("add", 5), ("add", 6), ("online", 4),
                                       ("online", 5), ("online", 9)])]
    out = coalesce(evs)
    assert [(e.action, e.devpath, e.env) for e in out] == [
        ("add", "/devices/system/memory/memory4",
         {"COUNT": "3", "LAST": "/devices/system/memory/memory6"}),
        ("online", "/devices/system/memory/memory4",
         {"COUNT": "2", "LAST": "/devices/system/memory/memory5"}),
        ("online", "/devices/system/memory/memory9", {})]


def test_cli_events_file_stdout_and_coalesce(tmp_path, capsys):
    sc = tmp_path / "u.toml"
    sc.write_text(SC)
    f = tmp_path / "ev.jsonl"
    assert main(["run", str(sc), "--no-report", "--events-file", str(f), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    lines = [json.loads(x) for x in f.read_text().splitlines()]
    assert [x["seqnum"] for x in lines] == list(range(1, len(lines) + 1))
    # node2 add, 4 blocks added and onlined, the push's layout change
    assert sum(x["subsystem"] == "memory" for x in lines) == 8
    assert doc["uevents"][0] == {"event": "dimm", "t": 0.2, "uevents": 9, "delivered": 9,
                                 "by_subsystem": {"node": 1, "memory": 8}}
    assert main(["run", str(sc), "--no-report", "--events", "--coalesce"]) == 0
    out = capsys.readouterr().out
    assert out.count("KERNEL[") == 1 + 2 + doc["uevents"][1]["uevents"]
    assert "COUNT=4\nLAST=/devices/system/memory/memory5\n" in out
    assert main(["run", str(sc), "--events", "--json"]) == 2
    assert "--events-file FILE for JSON lines" in capsys.readouterr().err
