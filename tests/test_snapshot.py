"""Snapshots: exact round trips (the loaded machine continues as the original
would) and clear errors that change nothing for damaged files."""

from __future__ import annotations

import dataclasses
import io
import json
import os
import random
import struct
import zlib
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dnuma.io import snapshot as snap
from dnuma.io.snapshot import (
    FORMAT_VERSION,
    MAGIC,
    SnapshotError,
    load_snapshot,
    read_snapshot_meta,
    save_snapshot,
)
from dnuma.mm.constants import PPC64, X86_64
from dnuma.mm.errors import DnumaError
from dnuma.mm.machine import Machine, MachineConfig, boot, saved_arrays
from dnuma.mm.memlayout import MemLayout
from dnuma.mm.validate import validate_all

Op = tuple[Any, ...]


# --------------------------------------------------------------------------- driving
def make_ops(seed: int, n: int, ncpu: int, max_order: int) -> list[Op]:
    """A random op sequence: alloc, free (an index into the live blocks),
    layout lookups, vmstat ticks and, rarely, commits."""
    r = random.Random(seed)
    ops: list[Op] = []
    for _ in range(n):
        x = r.random()
        if x < 0.5:
            ops.append(("alloc", min(int(r.expovariate(0.8)), max_order), r.randrange(ncpu)))
        elif x < 0.9:
            ops.append(("free", r.randrange(1 << 30), r.randrange(ncpu)))
        elif x < 0.95:
            ops.append(("lookup", r.random()))
        elif x < 0.99:
            ops.append(("tick",))
        else:
            ops.append(("commit", r.randrange(5)))
    return ops


def layout_for(m: Machine, kind: int) -> MemLayout:
    ram = m.ram_ranges()
    return [lambda: MemLayout.stripe(ram, [0, 1, 2], 256),
            lambda: MemLayout.push(ram, 3),
            lambda: MemLayout.stripe(ram, [1, 0], 512),
            lambda: MemLayout.from_ranges((s, e - 1, n) for s, e, n in m._ram),
            lambda: MemLayout.stripe(ram[:1], [2], 1 << 20)][kind]()


def run_ops(m: Machine, live: list[tuple[int, int]], ops: list[Op]) -> list[Any]:
    """Apply ``ops`` to ``m`` (``live``: its allocated blocks, updated); return
    every result (pfns, lookups, commit reports)."""
    out: list[Any] = []
    for op in ops:
        if op[0] == "alloc":
            pfn = m.alloc_pages(op[1], cpu=op[2])
            out.append(pfn)
            if pfn is not None:
                live.append((pfn, op[1]))
        elif op[0] == "free" and live:
            pfn, order = live.pop(op[1] % len(live))
            m.free_pages(pfn, order, cpu=op[2])
            out.append(pfn)
        elif op[0] == "lookup":
            pfn = int(op[1] * m.max_pfn)
            out.append((m.layout.pfn_to_nid(pfn), m.effective.pfn_to_nid(pfn)))
        elif op[0] == "tick":
            m.vmstat_tick()
        elif op[0] == "commit":
            rep = m.commit(layout_for(m, op[1]))
            out.append((rep.seq, rep.free_pages_moved, rep.pages_marked))
    return out


def state_of(m: Machine) -> dict[str, Any]:
    """Everything a snapshot must carry, comparable with ==."""
    lay = [m.layout, m.effective, *m.backlog]
    return {
        "arrays": {k: (v.dtype.str, v.shape, v.tobytes()) for k, v in m.state_arrays().items()},
        "scalars": {k: getattr(m, k) for k in Machine.SCALARS},
        "fallback": m.fallback_order, "uevents": list(m.uevents),
        "layouts": [(ml.seq, ml.starts.tobytes(), ml.ends.tobytes(), ml.nids.tobytes(),
                     ml.stats.hits, ml.stats.misses, int(ml.stats.cache[0])) for ml in lay],
        "identity": [[a is b for b in lay] for a in lay],
        "config": m.config,
        "numastat": [m.numastat(n) for n in range(m.config.max_numnodes)],
        "free": m.nr_free_pages(), "moved": m.moved_on_free,
    }


def assert_continues(m: Machine, live: list[tuple[int, int]], path: Path, seed: int,
                     n: int) -> Machine:
    """Save ``m``, load it, check it equals ``m``, then run the same ``n`` ops on
    both and check identical results and states."""
    save_snapshot(m, path, meta={"seed": seed})
    m2 = load_snapshot(path)
    validate_all(m2)
    assert state_of(m2) == state_of(m)
    ops = make_ops(seed, n, m.nr_cpus, m.profile.max_page_order)
    live2 = list(live)
    assert run_ops(m2, live2, ops) == run_ops(m, live, ops)
    assert live2 == live
    assert state_of(m2) == state_of(m)
    validate_all(m2)
    return m2


@pytest.fixture
def churned() -> tuple[Machine, list[tuple[int, int]]]:
    """A 2-node 128 MiB machine with a backlog of 2, after allocations, frees,
    ticks and three commits (so the backlog is full and layouts differ)."""
    m = boot(config=MachineConfig.uniform(2, "128M", 4, backlog=2))
    live: list[tuple[int, int]] = []
    run_ops(m, live, make_ops(1, 1500, 4, 10))
    for kind in (0, 2, 1):
        m.commit(layout_for(m, kind))
        run_ops(m, live, make_ops(kind + 10, 300, 4, 10))
    assert len(m.backlog) == 2 and m.moved_on_free > 0
    return m, live


# --------------------------------------------------------------------------- round trips
def test_round_trip_continues_exactly(churned, tmp_path):
    m, live = churned
    m2 = assert_continues(m, live, tmp_path / "m.snap", seed=7, n=3000)
    assert m2.seq >= 3 and [ml.seq for ml in m2.backlog] == [ml.seq for ml in m.backlog]


def test_boot_state_keeps_layout_identity(tmp_path):
    """At boot the installed layout is the effective one (one object, shared
    lookup statistics); the loaded machine keeps that."""
    m = boot(nodes=2, mem="128M", cpus=4)
    m.layout.pfn_to_nid(5)
    m2 = load_snapshot(save_snapshot(m, tmp_path / "b.snap"))
    assert m.layout is m.effective and m2.layout is m2.effective
    assert m2.layout.stats.misses == 1
    assert_continues(m, [], tmp_path / "b.snap", seed=3, n=500)


def test_compressed_round_trip(churned, tmp_path):
    m, live = churned
    raw = save_snapshot(m, tmp_path / "raw.snap")
    z = save_snapshot(m, tmp_path / "z.snap", compress=True)
    assert z.stat().st_size * 5 < raw.stat().st_size
    assert read_snapshot_meta(z)["compressed"] and not read_snapshot_meta(raw)["compressed"]
    m2 = load_snapshot(z)
    assert state_of(m2) == state_of(m)
    ops = make_ops(5, 500, 4, 10)
    assert run_ops(m2, list(live), ops) == run_ops(m, list(live), ops)


def test_ppc64_round_trip(tmp_path):
    m = boot(config=MachineConfig.uniform(2, "1G", 4, profile=PPC64, backlog=-1))
    live: list[tuple[int, int]] = []
    run_ops(m, live, make_ops(2, 800, 4, PPC64.max_page_order))
    m.commit(layout_for(m, 0))
    m2 = assert_continues(m, live, tmp_path / "p.snap", seed=4, n=1000)
    assert m2.profile is PPC64 and m2.profile.page_shift == 16
    assert m2.max_pfn == m.max_pfn == (1 << 30) >> 16


def test_custom_profile_round_trip(tmp_path):
    prof = dataclasses.replace(X86_64, name="x86_64-custom", memory_block_bytes=256 << 20)
    m = boot(config=MachineConfig.uniform(2, "128M", 2, profile=prof, min_free_kbytes=2048))
    m2 = load_snapshot(save_snapshot(m, tmp_path / "c.snap"))
    assert m2.profile == prof and m2.config == m.config


def test_meta_summary(churned, tmp_path):
    m, _ = churned
    p = save_snapshot(m, str(tmp_path / "m.snap"), meta={"note": "x", "n": [1, 2]})
    assert isinstance(p, Path)
    md = read_snapshot_meta(p)
    assert md["format_version"] == FORMAT_VERSION and md["dnuma_version"]
    assert md["created"].endswith("+00:00") and md["file_bytes"] == p.stat().st_size
    assert (md["pfns"], md["cpus"], md["seq"], md["nodes"]) == \
        (m.max_pfn, 4, m.seq, list(m.for_each_online_node()))
    assert md["meta"] == {"note": "x", "n": [1, 2]}
    assert p.stat().st_mode & 0o777 == 0o666 & ~_umask()


def test_saved_arrays_match_booted_machines():
    """The loader's dtype/shape table is the one boot() makes (both profiles)."""
    for cfg in (MachineConfig.uniform(3, "200M", 3, max_numnodes=8),
                MachineConfig.uniform(2, "1G", 5, profile=PPC64)):
        m = Machine(cfg)
        assert saved_arrays(cfg) == {k: (v.dtype, v.shape)
                                        for k, v in m.state_arrays().items()}


OP = st.one_of(
    st.tuples(st.just("alloc"), st.integers(0, 10), st.integers(0, 3)),
    st.tuples(st.just("free"), st.integers(0, 1 << 20), st.integers(0, 3)),
    st.tuples(st.just("lookup"), st.floats(0, 0.999)),
    st.tuples(st.just("tick")),
    st.tuples(st.just("commit"), st.integers(0, 4)),
)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=st.lists(OP, max_size=80), seed=st.integers(0, 1000))
def test_round_trip_after_random_ops(ops, seed, tmp_path_factory):
    m = boot(config=MachineConfig.uniform(2, "128M", 4, backlog=1))
    live: list[tuple[int, int]] = []
    run_ops(m, live, ops)
    assert_continues(m, live, tmp_path_factory.mktemp("h") / "h.snap", seed=seed, n=200)


# --------------------------------------------------------------------------- errors
@pytest.fixture(scope="module")
def good(tmp_path_factory) -> tuple[bytes, dict[str, Any]]:
    """The bytes of a valid snapshot and its parsed metadata."""
    m = boot(config=MachineConfig.uniform(2, "128M", 4, backlog=1))
    run_ops(m, [], make_ops(9, 300, 4, 10))
    m.commit(layout_for(m, 0))
    data = save_snapshot(m, tmp_path_factory.mktemp("g") / "g.snap").read_bytes()
    return data, parse(data)[1]


def parse(data: bytes) -> tuple[tuple[int, ...], dict[str, Any]]:
    head = struct.unpack_from("<8sIIQQQI", data)
    return head, json.loads(data[head[4]:head[4] + head[5]])


def with_doc(data: bytes, edit: Any) -> bytes:
    """``data`` with its metadata edited by ``edit(doc)`` and every checksum and
    length fixed, so only the edit is wrong."""
    head, doc = parse(data)
    edit(doc)
    js = json.dumps(doc).encode()
    h = struct.pack("<8sIIQQQI", head[0], head[1], head[2], head[4] + len(js), head[4],
                    len(js), zlib.crc32(js))
    h += struct.pack("<I", zlib.crc32(h))
    return h.ljust(64, b"\0") + data[64:head[4]] + js


def entry(doc: dict[str, Any], name: str) -> dict[str, Any]:
    return next(e for e in doc["arrays"] if e["name"] == name)


def assert_load_fails(tmp_path: Path, data: bytes, match: str) -> SnapshotError:
    """Loading ``data`` fails with ``match``, names the file, and leaves the
    directory and the file as they were."""
    p = tmp_path / "bad.snap"
    p.write_bytes(data)
    before = sorted(os.listdir(tmp_path))
    with pytest.raises(SnapshotError, match=match) as ei:
        load_snapshot(p)
    assert str(p) in str(ei.value) and isinstance(ei.value, DnumaError)
    assert sorted(os.listdir(tmp_path)) == before and p.read_bytes() == data
    return ei.value


def _umask() -> int:
    old = os.umask(0o022)
    os.umask(old)
    return old


def test_bad_magic(good, tmp_path):
    data, _ = good
    assert_load_fails(tmp_path, b"NOTASNAP" + data[8:], r"not a dnuma snapshot.*NOTASNAP")
    assert_load_fails(tmp_path, b"PK\x03\x04", r"not a dnuma snapshot")
    assert_load_fails(tmp_path, b"", r"empty file, not a dnuma snapshot")
    with pytest.raises(SnapshotError, match="not a dnuma snapshot"):
        read_snapshot_meta(tmp_path / "bad.snap")


def test_other_format_version(good, tmp_path):
    data, _ = good
    bad = data[:8] + struct.pack("<I", FORMAT_VERSION + 1) + data[12:]
    assert_load_fails(tmp_path, bad, rf"format version {FORMAT_VERSION + 1}; this dnuma "
                                     rf"\(.*\) reads version {FORMAT_VERSION} only")
    with pytest.raises(SnapshotError, match=f"format version {FORMAT_VERSION + 1}"):
        read_snapshot_meta(tmp_path / "bad.snap")


def test_truncated(good, tmp_path):
    data, doc = good
    n = len(data)
    assert_load_fails(tmp_path, data[:5], r"truncated snapshot: expected at least 64 bytes "
                                          r"\(the header\), got 5")
    assert_load_fails(tmp_path, data[:40], r"expected at least 64 bytes \(the header\), got 40")
    meta_at = parse(data)[0][4]
    at_array = entry(doc, "page_flags")["offset"] + 10
    for cut in (64, at_array, meta_at, meta_at + 50, n - 1):
        assert_load_fails(tmp_path, data[:cut], rf"truncated snapshot: expected {n} bytes, "
                                                rf"got {cut}$")
        with pytest.raises(SnapshotError, match="truncated"):
            read_snapshot_meta(tmp_path / "bad.snap")
    assert_load_fails(tmp_path, data + b"\0" * 3, rf"3 unexpected bytes after the end of the "
                                                   rf"snapshot \(expected {n} bytes, got {n + 3}\)")


@pytest.mark.parametrize("name", ["page_nid", "page_flags", "free_cnt", "distance",
                                  "layout0.starts"])
def test_flipped_byte_in_array(good, tmp_path, name):
    data, doc = good
    e = entry(doc, name)
    bad = bytearray(data)
    bad[e["offset"] + e["nbytes"] // 2] ^= 0x10
    assert_load_fails(tmp_path, bytes(bad), rf"checksum mismatch in array '{name}'")
    assert read_snapshot_meta(tmp_path / "bad.snap")["pfns"] == doc["summary"]["pfns"]


def test_flipped_byte_in_compressed_array(good, tmp_path):
    m = load_snapshot(_write(tmp_path / "ok.snap", good[0]))
    data = save_snapshot(m, tmp_path / "z.snap", compress=True).read_bytes()
    e = entry(parse(data)[1], "lru_next")
    assert e["codec"] == "zlib"
    bad = bytearray(data)
    bad[e["offset"] + e["stored_bytes"] // 2] ^= 1
    assert_load_fails(tmp_path, bytes(bad), r"checksum mismatch in array 'lru_next'")


def _write(p: Path, data: bytes) -> Path:
    p.write_bytes(data)
    return p


def test_damaged_metadata_and_header(good, tmp_path):
    data, _ = good
    head, _doc = parse(data)
    bad = bytearray(data)
    bad[head[4] + 30] ^= 0x01
    assert_load_fails(tmp_path, bytes(bad), r"corrupt snapshot metadata \(checksum mismatch\)")
    with pytest.raises(SnapshotError, match="corrupt snapshot metadata"):
        read_snapshot_meta(tmp_path / "bad.snap")
    bad = bytearray(data)
    bad[20] ^= 0x01  # the file size field
    assert_load_fails(tmp_path, bytes(bad), r"corrupt snapshot header \(checksum mismatch\)")
    # metadata that checksums right but is not what a dnuma wrote
    js = b"{not json"
    h = struct.pack("<8sIIQQQI", MAGIC, FORMAT_VERSION, 0, head[4] + len(js), head[4],
                    len(js), zlib.crc32(js))
    h += struct.pack("<I", zlib.crc32(h))
    assert_load_fails(tmp_path, h.ljust(64, b"\0") + data[64:head[4]] + js,
                      r"corrupt snapshot metadata \(not JSON")
    assert_load_fails(tmp_path, with_doc(data, lambda d: d.pop("config")),
                      r"malformed snapshot metadata: missing key 'config'")
    assert_load_fails(tmp_path, with_doc(data, lambda d: d["config"].update(ram=[])),
                      r"malformed snapshot metadata")
    assert_load_fails(tmp_path, with_doc(data, lambda d: d.update(effective=7)),
                      r"inconsistent snapshot state: layout references \[0, 7, 2\] outside "
                      r"the 3 layouts saved")


def test_missing_and_misshapen_arrays(good, tmp_path):
    data, _ = good

    def drop(d: dict[str, Any]) -> None:
        d["arrays"] = [e for e in d["arrays"] if e["name"] != "pcp_high"]

    def shorter(d: dict[str, Any]) -> None:
        e = entry(d, "page_nid")
        e["shape"] = [e["shape"][0] // 2]
        e["nbytes"] = e["stored_bytes"] = e["nbytes"] // 2

    def retyped(d: dict[str, Any]) -> None:
        e = entry(d, "lru_next")
        e["dtype"], e["shape"] = "<i8", [e["shape"][0] // 2]

    def other_config(d: dict[str, Any]) -> None:
        d["config"]["cpu_to_node"] = [0, 0, 1]  # 3 CPUs: the pcp arrays have 4

    assert_load_fails(tmp_path, with_doc(data, drop),
                      r"array 'pcp_high' missing from the snapshot")
    assert_load_fails(tmp_path, with_doc(data, shorter),
                      r"array 'page_nid' is int16 of shape \(16384,\); the saved config needs "
                      r"int16 of shape \(32768,\)")
    assert_load_fails(tmp_path, with_doc(data, retyped),
                      r"array 'lru_next' is int64 of shape \(16384,\); the saved config "
                      r"needs int32 of shape \(32768,\)")
    assert_load_fails(tmp_path, with_doc(data, other_config),
                      r"array 'pcp_head' is int64 of shape \(4, 256, 12\); the saved config "
                      r"needs int64 of shape \(3, 256, 12\)")
    assert_load_fails(tmp_path, with_doc(data, lambda d: d["arrays"].append(
        dict(entry(d, "params"), name="bogus"))), r"unexpected array 'bogus'")


def test_missing_file(tmp_path):
    for fn in (load_snapshot, read_snapshot_meta):
        with pytest.raises(SnapshotError, match=r"nope\.snap: no such snapshot file"):
            fn(tmp_path / "nope.snap")
    assert os.listdir(tmp_path) == []
    with pytest.raises(SnapshotError, match="a directory, not a regular file"):
        load_snapshot(tmp_path)


def test_save_errors_leave_nothing(good, tmp_path, monkeypatch):
    m = load_snapshot(_write(tmp_path / "ok.snap", good[0]))
    with pytest.raises(SnapshotError, match=r"directory .*nodir does not exist"):
        save_snapshot(m, tmp_path / "nodir" / "x.snap")
    with pytest.raises(SnapshotError, match="user metadata is not JSON-serialisable"):
        save_snapshot(m, tmp_path / "x.snap", meta={"f": object()})
    (tmp_path / "adir").mkdir()
    with pytest.raises(SnapshotError, match="cannot save snapshot"):
        save_snapshot(m, tmp_path / "adir")
    assert sorted(os.listdir(tmp_path)) == ["adir", "ok.snap"]

    # a save failing half way (disk full, interrupt) leaves the old file as it was
    calls: list[BaseException] = []

    def failing(f: Any, u8: Any, compress: bool) -> tuple[int, int]:
        if len(calls) > 5:
            raise calls[0]
        calls.append(calls[0])
        return real(f, u8, compress)

    real = snap._write_bytes
    monkeypatch.setattr(snap, "_write_bytes", failing)
    for exc in (OSError(28, "No space left on device"), KeyboardInterrupt()):
        calls[:] = [exc]
        with pytest.raises((SnapshotError, KeyboardInterrupt)) as ei:
            save_snapshot(m, tmp_path / "ok.snap")
        assert "No space left" in str(ei.value) or isinstance(ei.value, KeyboardInterrupt)
        assert sorted(os.listdir(tmp_path)) == ["adir", "ok.snap"]
        assert (tmp_path / "ok.snap").read_bytes() == good[0]


def test_inflate_checks_the_size():
    """A zlib stream that checksums right but inflates to the wrong size (or is
    not zlib at all) is refused, never written past the array."""
    z = zlib.compress(b"x" * 100)

    def inflate(blob: bytes, n: int) -> bytearray:
        out = bytearray(n)
        snap._inflate(io.BufferedReader(io.BytesIO(blob)), len(blob), memoryview(out), "t")
        return out

    assert inflate(z, 100) == b"x" * 100
    with pytest.raises(SnapshotError, match="t: compressed data inflates beyond 50 bytes"):
        inflate(z, 50)
    with pytest.raises(SnapshotError, match="t: compressed data gives 100 bytes, expected 200"):
        inflate(z, 200)
    with pytest.raises(SnapshotError, match="t: corrupt compressed data"):
        inflate(b"not zlib at all", 10)
    with pytest.raises(SnapshotError, match="expected 100"):
        inflate(z + b"junk", 100)


def test_load_refuses_a_fifo_without_opening_it(tmp_path):
    """Opening a FIFO with no writer would block: it is refused from its stat."""
    os.mkfifo(tmp_path / "p")
    for fn in (load_snapshot, read_snapshot_meta):
        with pytest.raises(SnapshotError, match="p: a FIFO, not a regular file"):
            fn(tmp_path / "p")


def test_save_replaces_only_a_regular_file(good, tmp_path):
    """A directory, a FIFO, a symlink to a device: refused, left as they were;
    a symlink to a regular file: the file is replaced, the link kept."""
    m = load_snapshot(_write(tmp_path / "ok.snap", good[0]))
    (tmp_path / "d").mkdir()
    os.mkfifo(tmp_path / "p")
    os.symlink("/dev/null", tmp_path / "null")
    for name, what in (("d", "a directory"), ("p", "a FIFO"), ("null", "a character device")):
        before = os.lstat(tmp_path / name)
        with pytest.raises(SnapshotError, match=f"{name}: cannot save snapshot: {what} is there"):
            save_snapshot(m, tmp_path / name)
        after = os.lstat(tmp_path / name)
        assert (after.st_mode, after.st_ino) == (before.st_mode, before.st_ino)
    assert sorted(os.listdir(tmp_path)) == ["d", "null", "ok.snap", "p"]
    os.symlink("ok.snap", tmp_path / "link")
    save_snapshot(m, tmp_path / "link")
    assert os.path.islink(tmp_path / "link")
    assert load_snapshot(tmp_path / "ok.snap").max_pfn == m.max_pfn


def test_check_save_target(tmp_path):
    from dnuma.io.snapshot import check_save_target

    assert check_save_target(tmp_path / "new.snap") == tmp_path / "new.snap"
    (tmp_path / "f").write_text("")
    with pytest.raises(SnapshotError, match=r"--save .*f/x\.snap: cannot save snapshot: .*f is "
                                            r"not a directory"):
        check_save_target(tmp_path / "f" / "x.snap", "--save ")
    with pytest.raises(SnapshotError, match=r"directory .*nodir does not exist"):
        check_save_target(tmp_path / "nodir" / "x.snap")


def test_huge_declared_array_is_refused_before_allocating(good, tmp_path):
    big = 1 << 40

    def huge(d):
        e = entry(d, "layout0.starts")
        e.update(shape=[big], nbytes=8 * big, codec="zlib")
    assert_load_fails(tmp_path, with_doc(good[0], huge), r"declares 8796093022208 bytes")
