"""dnuma boot, dnuma snapshot, and --sysroot / --save-snapshot on runs."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from dnuma.cli import main
from dnuma.io.snapshot import load_snapshot
from dnuma.mm.validate import validate_all

SNAP = Path(__file__).parent / "data" / "host-snapshot-1"


def test_run_sysroot_tree_per_event_and_final(tmp_path, capsys):
    root = tmp_path / "sys"
    snap = tmp_path / "end.dnuma"
    assert main(["demo", "--json", "--no-report", "--sysroot", str(root),
                 "--save-snapshot", str(snap)]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert sorted(p.name for p in root.iterdir()) == ["01-stripe", "02-push", "03-boot", "final"]
    node = root / "01-stripe" / "sys/devices/system/node"
    assert (node / "online").read_text() == "0-2\n"  # the stripe brought node 2 online
    assert (root / "02-push" / "sys/devices/system/node/node3/meminfo").exists()
    # the final tree and the saved state agree with the run's own summary
    m = load_snapshot(snap)
    validate_all(m)
    assert m.nr_free_pages() == summary["final"]["free_pages"]
    assert m.moved_on_free == summary["final"]["moved_on_free"]
    free_kb = sum(int(ln.split()[3]) for n in m.for_each_online_node()
                  for ln in (root / "final/sys/devices/system/node" / f"node{n}" / "meminfo")
                  .read_text().splitlines() if "MemFree:" in ln)
    assert free_kb == 4 * int(m.S.zone_free.sum())


def test_snapshot_save_info_load(tmp_path, capsys):
    f = tmp_path / "demo.dnuma"
    assert main(["snapshot", "save", str(f), "--scenario", "demo", "--json"]) == 0
    saved = json.loads(capsys.readouterr().out)
    assert saved["bytes"] == f.stat().st_size
    assert main(["snapshot", "info", str(f)]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["pfns"] == 32768 and info["nodes"] == [0, 1]
    assert main(["snapshot", "info", str(f), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == info
    out = tmp_path / "tree"
    assert main(["snapshot", "load", str(f), "--check", "--json", "--sysroot", str(out)]) == 0
    loaded = json.loads(capsys.readouterr().out)
    assert loaded["machine"] == saved["machine"]
    assert (out / "proc/buddyinfo").read_text().startswith("Node 0, zone")


def test_snapshot_errors_exit_2(tmp_path, capsys):
    bad = tmp_path / "bad.dnuma"
    bad.write_bytes(b"not a snapshot at all")
    assert main(["snapshot", "load", str(bad)]) == 2
    assert "not a dnuma snapshot" in capsys.readouterr().err
    assert main(["snapshot", "save", str(tmp_path / "x.dnuma"), "--from", str(tmp_path / "no")]) \
        == 2
    assert capsys.readouterr().err.count("\n") == 1
    assert not (tmp_path / "x.dnuma").exists()


def test_boot_from_folder_save_and_export(tmp_path, capsys):
    f = tmp_path / "host.dnuma"
    tree = tmp_path / "tree"
    assert main(["boot", "--from", str(SNAP), "--save", str(f), "--sysroot", str(tree)]) == 0
    out = capsys.readouterr().out
    assert "free blocks by order" in out and f"wrote snapshot {f}" in out
    m = load_snapshot(f)
    assert m.zone(0, 2).managed_pages == 589824
    # the exported node size is the host's: its meminfo MemTotal is managed pages
    real = (SNAP / "sys/devices/system/node/node0/meminfo").read_text().splitlines()[0]
    ours = (tree / "sys/devices/system/node/node0/meminfo").read_text().splitlines()[0]
    assert ours.split()[3] == real.split()[3]


@pytest.mark.skipif(shutil.which("lsmem") is None, reason="lsmem (util-linux) not installed")
def test_lsmem_reads_the_imported_machine(tmp_path):
    """The real snapshot's 24 GiB in 128 MiB blocks, back through lsmem."""
    tree = tmp_path / "tree"
    assert main(["boot", "--from", str(SNAP), "--sysroot", str(tree), "--json"]) == 0
    out = json.loads(subprocess.run(["lsmem", "--sysroot", str(tree), "-J", "-b", "-o",
                                     "RANGE,SIZE,STATE,BLOCK,NODE"], capture_output=True,
                                    text=True, check=True).stdout)
    total = sum(int(r["size"]) for r in out["memory"])
    blocks = sorted(p.name for p in (SNAP / "sys/devices/system/memory").iterdir()
                    if p.name.startswith("memory"))
    assert total == len(blocks) * 128 << 20


@pytest.mark.parametrize(("argv", "says"), [
    (["snapshot", "save", "X", "--scenario", "demo", "--sysroot", "D"],
     "unrecognized arguments: --sysroot D"),
    (["snapshot", "info", "X", "--from-host"], "unrecognized arguments: --from-host"),
    (["snapshot", "load", "X", "--scenario", "demo"], "unrecognized arguments: --scenario demo"),
    (["snapshot", "save", "X"],
     "snapshot save: one of the arguments --from-host --from --scenario is required"),
    (["snapshot", "save", "X", "--from", "D", "--scenario", "demo"],
     "snapshot save: argument --scenario: not allowed with argument --from"),
    (["snapshot", "save", "X", "--scenario", "demo", "--no-kpageflags"],
     "snapshot save: argument --no-kpageflags: not allowed with argument --scenario"),
    (["snapshot", "save", "X", "--from-host", "--from", "D"],
     "snapshot save: argument --from: not allowed with argument --from-host"),
    (["boot", "--from-host", "--from", "D"],
     "boot: argument --from: not allowed with argument --from-host"),
    (["boot", "--sysroot", "D"], "boot: one of the arguments --from-host --from is required"),
    (["snapshot", "dump", "X"], "snapshot: argument ACTION: invalid choice: 'dump' (choose "
                                "from 'save', 'load', 'info')"),
])
def test_options_that_do_not_apply_are_refused(tmp_path, monkeypatch, capsys, argv, says):
    monkeypatch.chdir(tmp_path)  # X and D would be written here
    assert main(argv) == 2
    cap = capsys.readouterr()
    assert cap.out == "" and cap.err == f"dnuma: error: {says}\n"
    assert not list(tmp_path.iterdir())


def test_boot_table_has_two_header_lines():
    from dnuma.cli.boot import format_zones

    row = {"node": 0, "zone": "DMA32", **{k: {"host": 4096, "model": 4096} for k in
                                          ("start_pfn", "spanned", "present", "managed", "free")}}
    top, sub, line = format_zones([row]).splitlines()
    assert top.split() == ["start_pfn", "spanned", "present", "managed", "pages", "free"]
    assert sub.split() == ["node", "zone"] + ["host", "model"] * 5
    assert len(line) == len(sub)
    # each field's name sits over its own host and model columns
    assert sub.index("host") < top.index("start_pfn") + len("start_pfn") <= sub.index("model") + 5


def test_snapshot_load_names_buddy_and_pcp_free_pages(tmp_path, capsys):
    """MemFree (NR_FREE_PAGES) excludes the pcp lists: "free (buddy)" and
    "free incl. pcp" are named apart, and the JSON's free is the buddy count."""
    f = tmp_path / "demo.dnuma"
    assert main(["snapshot", "save", str(f), "--scenario", "demo"]) == 0
    capsys.readouterr()
    assert main(["snapshot", "load", str(f)]) == 0
    out = capsys.readouterr().out
    assert "free (buddy)" in out and "free incl. pcp" in out and "on pcp lists" in out
    assert " free," not in out.replace("free (buddy)", "")
    assert main(["snapshot", "load", str(f), "--json"]) == 0
    facts = json.loads(capsys.readouterr().out)["machine"]
    m = load_snapshot(f)
    assert facts["free"] == int(m.S.zone_free.sum()) == sum(n["free"] for n in
                                                            facts["nodes"].values())
    assert facts["free_incl_pcp"] == facts["free"] + facts["pcp"] == m.nr_free_pages()


@pytest.mark.parametrize("argv", [
    ["snapshot", "save", "nodir/x.dnuma", "--from", "H"],
    ["boot", "--from", "H", "--save", "nodir/x.dnuma"],
    ["boot", "--from", "H", "--sysroot", "F"],
])
def test_output_targets_are_checked_before_the_import(tmp_path, monkeypatch, capsys, argv):
    import dnuma.cli.boot
    import dnuma.cli.snapshot

    def slow(args):
        raise AssertionError("the machine was built before the output was checked")
    for mod in (dnuma.cli.boot, dnuma.cli.snapshot):
        monkeypatch.setattr(mod, "host_import", slow)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "F").write_text("mine")
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and ("does not exist" in err or "not a directory" in err), err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["F"]
