"""The ftrace kmem text parser (dnuma.sim.ftrace).

``data/kmem-trace-excerpt.txt.xz`` holds slices of the real capture
tests/data/kmem-trace-A.txt.xz (Linux 6.18), in file
order: its header and lines 13-2500 (allocs, frees, batched frees,
GFP_NOWAIT), short runs around <idle>-0 and kworker lines, order-3 frees,
order-9 GFP_TRANSHUGE allocs, a pcpu-drain burst (49895-50300), frees at
484.6 s and 487.6 s of pages allocated in the first slice (87860-87940,
807110-807118, 809245-809275), the rare gfp strings (__GFP_NOMEMALLOC,
GFP_ATOMIC, __GFP_THISNODE) and the last lines: 3147 lines.
"""

from __future__ import annotations

import bz2
import gzip
import lzma
import os
import re
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from dnuma._kernels import ftrace as kf
from dnuma.mm.constants import (
    __GFP_ATOMIC_MODEL,
    __GFP_DMA32,
    __GFP_HIGH,
    __GFP_HIGHMEM,
    __GFP_MOVABLE,
    __GFP_RECLAIMABLE,
    __GFP_THISNODE,
)
from dnuma.mm.errors import DnumaError
from dnuma.sim.ftrace import (
    EV_ALLOC,
    EV_ALLOC_FAIL,
    EV_BUDDY_ALLOC,
    EV_EXTFRAG,
    EV_FREE,
    EV_FREE_BATCHED,
    EV_PCPU_DRAIN,
    EV_REFILL,
    MAX_LINE_BYTES,
    TraceChunk,
    TraceError,
    TraceStats,
    gfp_to_model,
    load_trace,
    open_trace,
    read_trace,
    rereadable,
    trace_name,
)

DATA = Path(__file__).parent / "data"
EXCERPT = DATA / "kmem-trace-excerpt.txt.xz"
FIXTURE = DATA / "kmem-trace-A.txt.xz"
HM = __GFP_HIGHMEM | __GFP_MOVABLE
FIELDS = ("kind", "cpu", "ts_ns", "pfn", "order", "migratetype", "gfp", "line")

# --- a plain-Python reference parser for the real format ----------------------

_REF_LINE = re.compile(r"^\s*.+-\d+\s+\[(\d+)\]\s+\S{5}\s+(\d+)\.(\d{6}): (mm_page_\w+): (.*)$")
_REF_KIND = {"mm_page_alloc": EV_ALLOC, "mm_page_free": EV_FREE,
             "mm_page_free_batched": EV_FREE_BATCHED, "mm_page_pcpu_drain": EV_PCPU_DRAIN,
             "mm_page_alloc_zone_locked": EV_REFILL, "mm_page_alloc_extfrag": EV_EXTFRAG}


def _null_page(text: str) -> bool:
    try:
        return int(text, 16) == 0
    except ValueError:  # (____ptrval____), a hashed pointer's placeholder
        return text == "(null)"


def ref_parse(text: str) -> list[tuple[int, ...]]:
    """(kind, cpu, ts_ns, pfn, order, migratetype, gfp, line) of each event."""
    rows = []
    for no, ln in enumerate(text.splitlines(), 1):
        if ln.startswith("#"):
            continue
        m = _REF_LINE.match(ln)
        assert m, ln
        cpu, sec, usec, ev, rest = m.groups()
        f = dict(kv.split("=", 1) for kv in rest.split())
        kind = _REF_KIND[ev]
        pfn = int(f["pfn"], 16)
        gfp = 0
        if kind == EV_REFILL and f["percpu_refill"] == "0":
            kind = EV_BUDDY_ALLOC
        if kind == EV_EXTFRAG:
            f["order"], f["migratetype"] = f["alloc_order"], f["alloc_migratetype"]
        if kind == EV_ALLOC:
            gfp = gfp_to_model(f["gfp_flags"])[0]
            if _null_page(f["page"]):
                kind, pfn = EV_ALLOC_FAIL, -1
        rows.append((kind, int(cpu), int(sec) * 10**9 + int(usec) * 1000, pfn,
                     int(f["order"]), int(f.get("migratetype", -1)), gfp, no))
    return rows


def rows(c: TraceChunk) -> list[tuple[int, ...]]:
    return list(zip(*(getattr(c, f).tolist() for f in FIELDS), strict=True))


def parse(path: Path, **kw) -> tuple[TraceChunk, TraceStats]:
    st = TraceStats()
    chunks = list(read_trace(path, stats=st, **kw))
    assert all(len(c) > 0 for c in chunks)
    return TraceChunk.concat(chunks), st


def write(path: Path, lines: list[str] | str, *, nl: str = "\n") -> Path:
    text = lines if isinstance(lines, str) else nl.join(lines) + nl
    path.write_bytes(text.encode())
    return path


def head(ts: str = "1.000000", cpu: int = 0, task: str = "bash-1234",
         flags: str | None = ".....") -> str:
    f = f" {flags}" if flags is not None else ""
    return f"{task:>20}  [{cpu:03d}]{f}  {ts}: "


@pytest.fixture(scope="module")
def excerpt_text() -> str:
    return lzma.decompress(EXCERPT.read_bytes()).decode()


# --- the real excerpt --------------------------------------------------------


def test_excerpt_matches_reference_parser(excerpt_text):
    c, st = parse(EXCERPT)
    ref = ref_parse(excerpt_text)
    assert rows(c) == ref
    assert c.kind.dtype == np.int8 and c.cpu.dtype == np.int32 and c.ts_ns.dtype == np.int64
    assert c.pfn.dtype == np.int64 and c.order.dtype == np.int8
    assert c.migratetype.dtype == np.int8 and c.gfp.dtype == np.int32
    assert c.line.dtype == np.int64
    # every kind is there, and the real gfp mix
    assert set(np.unique(c.kind).tolist()) == {EV_ALLOC, EV_FREE, EV_FREE_BATCHED, EV_PCPU_DRAIN}
    assert {0, HM, __GFP_ATOMIC_MODEL, HM | __GFP_THISNODE,
            __GFP_HIGH | __GFP_ATOMIC_MODEL | __GFP_RECLAIMABLE} <= set(c.gfp.tolist())
    nlines = excerpt_text.count("\n")
    assert st.lines == nlines == 3147
    assert st.comments == 12 and st.malformed == 0 and st.other == {} and st.blank == 0
    assert st.total_events == len(c) == nlines - 12
    assert st.events == {"mm_page_alloc": 1181, "mm_page_free": 1033,
                         "mm_page_free_batched": 676, "mm_page_pcpu_drain": 245,
                         "mm_page_alloc_zone_locked": 0, "mm_page_alloc_extfrag": 0}
    assert st.alloc_failed == 0 and st.unknown_gfp == {} and st.ts_backwards == 0
    assert (st.tracer, st.nr_cpus, st.entries_in_buffer, st.entries_written) == (
        "nop", 2, 869288, 869288)
    assert st.first_ts_ns == ref[0][2] and st.last_ts_ns == ref[-1][2]
    assert sum(st.gfp_strings.values()) == 1181
    assert st.gfp_strings["GFP_TRANSHUGE|__GFP_NORETRY|__GFP_THISNODE"] == (
        excerpt_text.count("GFP_TRANSHUGE|"))
    assert st.bytes == len(excerpt_text)
    d = st.to_dict()
    assert d["total_events"] == len(c) and d["nr_cpus"] == 2


def test_a_guests_trace_with_pcp_refills_matches_reference_parser(tmp_path):
    """The oracle's guest trace (Linux 6.12.117, hashed pointers, the
    mm_page_alloc_zone_locked refills) parses as the reference does."""
    from dnuma.oracle.record import open_recording

    snaps, _ = open_recording(DATA / "oracle" / "trace-anon.tar.xz", tmp_path)
    lines = (snaps / "01-anon" / "trace").read_text().splitlines(keepends=True)
    text = "".join(lines[:20_000])
    (tmp_path / "t.txt").write_text(text)
    c, st = parse(tmp_path / "t.txt")
    assert rows(c) == ref_parse(text)
    kinds = set(np.unique(c.kind).tolist())
    assert {EV_ALLOC, EV_FREE, EV_PCPU_DRAIN, EV_REFILL} <= kinds
    assert st.events["mm_page_alloc_zone_locked"] == text.count("mm_page_alloc_zone_locked:")
    assert st.malformed == 0 and st.other == {}


def test_compressions_chunk_sizes_and_threads_agree(tmp_path, excerpt_text):
    ref, st_ref = parse(EXCERPT)
    raw = excerpt_text.encode()
    plain = tmp_path / "trace"  # no suffix: told by the content
    plain.write_bytes(raw)
    gz = tmp_path / "trace.txt"  # a misleading suffix
    gz.write_bytes(gzip.compress(raw))
    bz = tmp_path / "trace.bz"
    bz.write_bytes(bz2.compress(raw))
    for path, kw in [(plain, {}), (gz, {}), (bz, {}), (plain, {"prefetch": False}),
                     (EXCERPT, {"chunk_bytes": 97}), (gz, {"chunk_bytes": 4096})]:
        c, st = parse(path, **kw)
        assert rows(c) == rows(ref), (path, kw)
        st.path = st_ref.path
        assert st == st_ref, (path, kw)
    # small blocks give many chunks, each of whole lines
    chunks = list(read_trace(EXCERPT, chunk_bytes=5000))
    assert len(chunks) > 50
    assert sum(len(c) for c in chunks) == len(ref)
    assert len(load_trace(EXCERPT)) == len(ref)


def test_stopping_early_closes_cleanly():
    it = read_trace(EXCERPT, chunk_bytes=2000)
    first = next(it)
    assert len(first) > 0
    it.close()  # joins the reader thread, closes the file


@pytest.mark.skipif(not FIXTURE.exists(), reason="tests/data/kmem-trace-A.txt.xz not present")
def test_whole_fixture():
    st = TraceStats()
    n = sum(len(c) for c in read_trace(FIXTURE, stats=st))
    assert n == st.total_events == st.entries_written == 869288
    assert st.malformed == 0 and st.other == {} and st.ts_backwards == 0
    assert st.events == {"mm_page_alloc": 287055, "mm_page_free": 232188,
                         "mm_page_free_batched": 225548, "mm_page_pcpu_drain": 124497,
                         "mm_page_alloc_zone_locked": 0, "mm_page_alloc_extfrag": 0}


# --- gfp_flags ------------------------------------------------------------------


@pytest.mark.parametrize("text,bits,unknown", [
    ("GFP_KERNEL_ACCOUNT|__GFP_ZERO|__GFP_COMP", 0, ()),
    ("GFP_HIGHUSER_MOVABLE|__GFP_ZERO|__GFP_COMP", HM, ()),
    ("GFP_NOFS|__GFP_HIGHMEM|__GFP_MOVABLE|__GFP_NOWARN|__GFP_NORETRY|__GFP_COMP"
     "|__GFP_HARDWALL", HM, ()),
    ("GFP_HIGHUSER|__GFP_ACCOUNT", __GFP_HIGHMEM, ()),
    ("GFP_NOWAIT", __GFP_ATOMIC_MODEL, ()),
    ("GFP_NOWAIT|__GFP_RECLAIMABLE|__GFP_NORETRY|__GFP_COMP",
     __GFP_ATOMIC_MODEL | __GFP_RECLAIMABLE, ()),
    ("GFP_ATOMIC|__GFP_RECLAIMABLE|__GFP_NOWARN|__GFP_NORETRY|__GFP_COMP",
     __GFP_HIGH | __GFP_ATOMIC_MODEL | __GFP_RECLAIMABLE, ()),
    ("GFP_TRANSHUGE|__GFP_NORETRY|__GFP_THISNODE", HM | __GFP_THISNODE, ()),
    ("GFP_TRANSHUGE_LIGHT", HM, ()),  # no direct reclaim, but __GFP_NOMEMALLOC
    ("__GFP_RECLAIMABLE|__GFP_IO|__GFP_NOWARN|__GFP_NORETRY|__GFP_COMP|__GFP_NOMEMALLOC",
     __GFP_RECLAIMABLE, ()),
    ("GFP_KERNEL|GFP_DMA32", __GFP_DMA32, ()),
    ("GFP_DMA32", __GFP_DMA32 | __GFP_ATOMIC_MODEL, ()),
    ("none", __GFP_ATOMIC_MODEL, ()),
    ("__GFP_WAIT|__GFP_IO|__GFP_FS|__GFP_COLD", 0, ()),  # pre-4.4 names
    ("GFP_KERNEL|__GFP_FOO|0x4000000", 0, ("__GFP_FOO", "0x4000000")),
    ("(null)", 0, ("(null)",)),
])
def test_gfp_to_model(text, bits, unknown):
    assert gfp_to_model(text) == (bits, unknown)


def test_kernel_hash_matches_python():
    data = bytes(range(33, 33 + 40))
    buf = np.frombuffer(data, np.uint8)
    for n in range(len(data) - 3):
        assert kf.buf_hash(buf, 3, 3 + n) == kf.str_hash(data[3:3 + n])


# --- format variants -----------------------------------------------------------


def test_format_variants(tmp_path):
    pg = "page=00000000a1b2c3d4 "
    a = " migratetype=1 gfp_flags="
    lines = [
        # trace_pipe: no header; irq flags with hardirq; pid 0
        head("1234.000001", 1, "<idle>-0", "d.h2.") + f"mm_page_free: {pg}pfn=0x1000 order=3",
        # no irq-flags column, decimal pfn, raw pointer
        head("100.500000", 0, "bash-1234", None)
        + f"mm_page_alloc: page=ffffea0000040000 pfn=4096 order=0{a}GFP_HIGHUSER_MOVABLE",
        # 4-char irq flags (4.x), a task name with dashes, an old field
        head("7.000002", 3, "my-task-name-77", "d..3")
        + "mm_page_pcpu_drain: page=ffffea0000080000 pfn=8192 order=1 migratetype=2",
        # record-tgid columns
        "            bash-1234  ( 1234) [002] .....     3.000000: mm_page_free_batched: "
        f"{pg}pfn=0x2000 order=0",
        "           <...>-99    (-------) [002] .....     3.000001: mm_page_free: "
        f"{pg}pfn=0x2001 order=0",
        # task names with blanks and brackets
        head("5.000000", 1, "Web Content-5555") + f"mm_page_free: {pg}pfn=0x3000 order=0",
        head("6.000000", 0, "foo [1] bar-42") + f"mm_page_free: {pg}pfn=0x3001 order=0",
        # failed allocations: NULL page (6.x and old), -1UL pfn, pfn beyond 2**52
        head("8.0") + "mm_page_alloc: page=0000000000000000 pfn=0x0 order=2 migratetype=0"
        " gfp_flags=GFP_ATOMIC",
        head("8.1") + "mm_page_alloc: page=(null) pfn=0 order=0 migratetype=0 gfp_flags=GFP_KERNEL",
        head("8.2") + f"mm_page_alloc: pfn=0xffffffffffffffff order=0{a}GFP_KERNEL",
        head("8.3") + f"mm_page_alloc: page=0000000000000000 pfn=0xfffffffffffffff order=0{a}none",
        head("8.4") + f"mm_page_alloc: pfn=18446744073709551615 order=1{a}(null)",
        # old event names and fields
        head("9.0") + f"mm_page_free_direct: {pg}pfn=0x5000 order=1",
        head("9.1") + f"mm_pagevec_free: {pg}pfn=5001 order=0 cold=1",
        # pfn without page=, a placeholder pointer, nanosecond and counter timestamps
        head("10.123456789") + "mm_page_free: pfn=0x4000 order=0",
        head("11.5") + "mm_page_free: page=(____ptrval____) pfn=0x4001 order=0",
        head("123456789") + "mm_page_free: pfn=0x4002 order=0",
        # unknown gfp names, a negative migratetype
        head("12.0") + "mm_page_alloc: pfn=0x6000 order=0 migratetype=-1 "
        "gfp_flags=GFP_KERNEL|__GFP_FOO|0x4000000",
    ]
    t = write(tmp_path / "pipe.txt", lines, nl="\r\n")
    c, st = parse(t)
    assert rows(c) == [
        (EV_FREE, 1, 1234_000_001_000, 0x1000, 3, -1, 0, 1),
        (EV_ALLOC, 0, 100_500_000_000, 4096, 0, 1, HM, 2),
        (EV_PCPU_DRAIN, 3, 7_000_002_000, 8192, 1, 2, 0, 3),
        (EV_FREE_BATCHED, 2, 3_000_000_000, 0x2000, 0, -1, 0, 4),
        (EV_FREE, 2, 3_000_001_000, 0x2001, 0, -1, 0, 5),
        (EV_FREE, 1, 5 * 10**9, 0x3000, 0, -1, 0, 6),
        (EV_FREE, 0, 6 * 10**9, 0x3001, 0, -1, 0, 7),
        (EV_ALLOC_FAIL, 0, 8 * 10**9, -1, 2, 0, __GFP_HIGH | __GFP_ATOMIC_MODEL, 8),
        (EV_ALLOC_FAIL, 0, 8_100_000_000, -1, 0, 0, 0, 9),
        (EV_ALLOC_FAIL, 0, 8_200_000_000, -1, 0, 1, 0, 10),
        (EV_ALLOC_FAIL, 0, 8_300_000_000, -1, 0, 1, __GFP_ATOMIC_MODEL, 11),
        (EV_ALLOC_FAIL, 0, 8_400_000_000, -1, 1, 1, 0, 12),
        (EV_FREE, 0, 9 * 10**9, 0x5000, 1, -1, 0, 13),
        (EV_FREE_BATCHED, 0, 9_100_000_000, 5001, 0, -1, 0, 14),
        (EV_FREE, 0, 10_123_456_789, 0x4000, 0, -1, 0, 15),
        (EV_FREE, 0, 11_500_000_000, 0x4001, 0, -1, 0, 16),
        (EV_FREE, 0, 123456789, 0x4002, 0, -1, 0, 17),
        (EV_ALLOC, 0, 12 * 10**9, 0x6000, 0, -1, 0, 18),
    ]
    assert st.malformed == 0 and st.comments == 0 and st.lines == len(lines)
    assert st.nr_cpus is None and st.tracer is None
    assert st.alloc_failed == 5 and st.events["mm_page_alloc"] == 7
    assert st.events["mm_page_free"] == 8 and st.events["mm_page_free_batched"] == 2
    assert st.unknown_gfp == {"(null)": 1, "__GFP_FOO": 1, "0x4000000": 1}
    assert st.ts_backwards == 4  # the file is not in time order


def test_other_lines_are_counted(tmp_path):
    lines = [
        "# tracer: function",
        "# entries-in-buffer/entries-written: 9/12   #P:4",
        head("1.0") + "sched_switch: prev_comm=bash prev_pid=1 prev_prio=120 prev_state=S ==> "
        "next_comm=swapper/0 next_pid=0 next_prio=120",
        head("1.1") + "sched_switch: prev_comm=swapper/0 prev_pid=0",
        head("1.2") + "do_sys_open <-__x64_sys_openat",
        head("1.3") + "mm_page_alloc_zone_locked: page=0000000012345678 pfn=0x10 order=0 "
        "migratetype=1 percpu_refill=1",
        head("1.35") + "mm_page_alloc_extfrag: page=(____ptrval____) pfn=0x20 alloc_order=1 "
        "fallback_order=3 pageblock_order=9 alloc_migratetype=0 fallback_migratetype=1 "
        "fragmenting=1 change_ownership=0",
        "CPU:1 [LOST 42 EVENTS]",
        "CPU:0 [LOST EVENTS]",
        "##### CPU 2 buffer started ####",
        "",
        "   ",
        head("1.4") + "mm_page_free: page=0000000012345678 pfn=0x10 order=0",
    ]
    c, st = parse(write(tmp_path / "t", lines))
    assert rows(c) == [(EV_REFILL, 0, 1_300_000_000, 0x10, 0, 1, 0, 6),
                       (EV_EXTFRAG, 0, 1_350_000_000, 0x20, 1, 0, 0, 7),
                       (EV_FREE, 0, 1_400_000_000, 0x10, 0, -1, 0, 13)]
    assert st.other == {"sched_switch": 2, "(unnamed)": 1}
    assert (st.tracer, st.nr_cpus, st.entries_in_buffer, st.entries_written) == (
        "function", 4, 9, 12)
    assert (st.lost_lines, st.lost_events, st.comments, st.blank) == (2, 42, 3, 2)
    assert st.malformed == 0 and st.lines == 13


def test_malformed_lines_are_counted_never_fatal(tmp_path):
    good = head("2.0") + "mm_page_alloc: page=000000004675073c pfn=0x1047fd order=0 "
    mt = "migratetype=0 gfp_flags=GFP_KERNEL"
    bad = [
        good + "migrat",  # truncated: a key without a value
        good + "migratetype=",  # truncated: an empty value
        good + "migratetype=0 gfp_flags=",  # truncated: no gfp flags
        good,  # truncated: no migratetype, no gfp_flags
        "            bash-7554    [000] .....   481.5165",  # truncated in the timestamp
        head("2.0") + "mm_page_fr",  # truncated in the event name
        "xyzzy",
        "\x01\x02 binary junk \x7f",
        head("2.0") + f"mm_page_alloc: page=zzz pfn=0x10 order=0 {mt}",  # bad page hex
        head("2.0") + f"mm_page_alloc: page=00000000 pfn=0x10g7fd order=0 {mt}",  # bad pfn hex
        head("2.0") + "mm_page_free: page=0000000012345678 order=0",  # no pfn
        head("2.0") + "mm_page_free: pfn=0x10 order=99",  # order out of range
        head("2.0") + "mm_page_free: pfn=0xffffffffffffffff order=0",  # not a pfn
        head("2.0") + "mm_page_pcpu_drain: pfn=0x10 order=0",  # no migratetype
        head("48x.5") + "mm_page_free: pfn=0x10 order=0",  # bad timestamp
        head("2.0000000001") + "mm_page_free: pfn=0x10 order=0",  # 10 fraction digits
        "bash-1 ..... 1.0: mm_page_free: pfn=0x1 order=0",  # no cpu field
        head("2.0", flags="..........") + "mm_page_free: pfn=0x1 order=0",  # no timestamp
        "CPU:1 something else",
    ]
    lines = ["# tracer: nop", head("1.0") + f"mm_page_alloc: pfn=0x10 order=0 {mt}"]
    lines += [*bad, head("3.0") + "mm_page_free: pfn=0x10 order=0"]
    t = tmp_path / "bad.txt"
    t.write_bytes("\n".join(lines).encode() + b"\n\xff\xfe garbage \x00 with a NUL\nabc")
    for kw in ({}, {"chunk_bytes": 7}):
        c, st = parse(t, **kw)
        assert c.line.tolist() == [2, len(lines)]
        assert st.malformed == len(bad) + 2
        assert st.lines == len(lines) + 2  # the last line has no newline
        assert [no for no, _ in st.malformed_examples] == list(range(3, 13))
        assert st.malformed_examples[0][1] == bad[0]
        assert st.other == {} and st.comments == 1


def test_no_events_is_not_an_error(tmp_path):
    for name, text in [("empty", ""), ("header", "# tracer: nop\n#\n#P:2\n"),
                       ("junk", "hello\nworld")]:
        st = TraceStats()
        assert list(read_trace(write(tmp_path / name, text), stats=st)) == []
        assert st.total_events == 0 and st.first_ts_ns is None
    assert st.malformed == 2 and st.malformed_examples == [(1, "hello"), (2, "world")]
    assert len(load_trace(tmp_path / "empty")) == 0


# --- errors --------------------------------------------------------------------


def test_unreadable_files_raise_trace_error(tmp_path):
    assert issubclass(TraceError, DnumaError)
    missing = tmp_path / "nope.txt.xz"
    with pytest.raises(TraceError, match=re.escape(str(missing))):
        read_trace(missing)  # raised at the call, not at the first chunk
    with pytest.raises(TraceError, match="directory"):
        open_trace(tmp_path)
    binary = tmp_path / "trace.dat"
    binary.write_bytes(b"\x17\x08Dtracing6\x00" + bytes(range(256)) * 4)
    with pytest.raises(TraceError, match=r"not text.*trace-cmd"):
        read_trace(binary)
    nuls = tmp_path / "zeros"
    nuls.write_bytes(b"\x00" * 100)
    with pytest.raises(TraceError, match="not text"):
        read_trace(nuls)
    packed = tmp_path / "packed.gz"
    packed.write_bytes(gzip.compress(bytes(range(256)) * 64))
    with pytest.raises(TraceError, match="gzip"):
        read_trace(packed)
    zst = tmp_path / "t.zst"
    zst.write_bytes(b"\x28\xb5\x2f\xfd" + b"\x00" * 16)
    with pytest.raises(TraceError, match="zstd"):
        read_trace(zst)
    bad_xz = tmp_path / "bad.xz"
    bad_xz.write_bytes(b"\xfd7zXZ\x00" + b"\x01" * 64)
    with pytest.raises(TraceError, match="not a valid xz stream"):
        read_trace(bad_xz)


def test_truncated_compressed_stream_raises_trace_error(tmp_path):
    data = EXCERPT.read_bytes()
    cut = tmp_path / "cut.xz"
    cut.write_bytes(data[: len(data) // 2])
    for prefetch in (True, False):
        with pytest.raises(TraceError, match=r"cut\.xz"):
            list(read_trace(cut, chunk_bytes=4096, prefetch=prefetch))


def test_mutated_lines_never_crash(tmp_path, excerpt_text):
    """Random damage (cuts, flipped bytes, junk) to a third of the lines: no
    crash, every line accounted for, the undamaged events exactly right."""
    rng = np.random.default_rng(7)
    lines = excerpt_text.encode().split(b"\n")[:-1]
    damaged = set()
    for i in rng.choice(len(lines), len(lines) // 3, replace=False).tolist():
        ln = bytearray(lines[i])
        op = i % 4
        if op == 0:
            ln = ln[: rng.integers(0, len(ln) + 1)]
        elif op == 1:
            for j in rng.integers(0, len(ln), 3).tolist():
                ln[j] = int(rng.integers(1, 256)) if ln[j] != 10 else 32
        elif op == 2:
            j = int(rng.integers(0, len(ln) + 1))
            ln[j:j] = bytes(rng.integers(32, 127, 8).tolist())
        else:
            j = int(rng.integers(0, len(ln)))
            del ln[j:j + 6]
        ln = ln.replace(b"\n", b" ").replace(b"\r", b" ")
        if bytes(ln) != lines[i]:
            damaged.add(i + 1)
        lines[i] = bytes(ln)
    t = tmp_path / "damaged.txt"
    t.write_bytes(b"\n".join(lines) + b"\n")
    for kw in ({}, {"chunk_bytes": 1000}):
        c, st = parse(t, **kw)
        assert st.lines == len(lines)
        assert st.lines == (st.total_events + st.malformed + sum(st.other.values())
                            + st.comments + st.blank + st.lost_lines)
        got = {r[-1]: r for r in rows(c)}
        ref = [r for r in ref_parse(excerpt_text) if r[-1] not in damaged]
        assert all(got[r[-1]] == r for r in ref)
        assert st.malformed > 300


def test_many_distinct_strings(tmp_path):
    """The string tables grow past their first size."""
    lines = []
    for i in range(600):
        lines.append(head(f"{i}.0") + f"event_{i}: x={i}")
        lines.append(head(f"{i}.5") + f"mm_page_alloc: pfn={i:#x} order=0 migratetype=0 "
                     f"gfp_flags=GFP_KERNEL|__GFP_X{i % 300}")
    c, st = parse(write(tmp_path / "t", lines), chunk_bytes=10000)
    assert c.pfn.tolist() == list(range(600)) and not c.gfp.any()
    assert st.other == {f"event_{i}": 1 for i in range(600)}
    assert len(st.gfp_strings) == 300 and set(st.gfp_strings.values()) == {2}
    assert st.unknown_gfp == {f"__GFP_X{i}": 2 for i in range(300)}


# --- streams, long lines, huge header numbers ---------------------------------


def _fifo(tmp_path: Path, data: bytes, piece: int = 0) -> tuple[Path, threading.Thread]:
    """A FIFO a thread fills with ``data`` (its first bytes ``piece`` at a time)."""
    p = tmp_path / "fifo"
    os.mkfifo(p)

    def fill() -> None:
        with open(p, "wb", buffering=0) as f:
            i = 0
            while piece and i < 16:
                f.write(data[i:i + piece])
                time.sleep(0.01)
                i += piece
            f.write(data[i:])

    t = threading.Thread(target=fill, daemon=True)
    t.start()
    return p, t


@pytest.mark.parametrize("packer", [None, gzip.compress, lzma.compress, bz2.compress])
def test_a_fifo_is_read_once_and_whole(tmp_path, excerpt_text, packer):
    """A FIFO (or a pipe) is opened once; the bytes read to tell the format
    are kept: the events are those of the file, a few bytes at a time or not."""
    ref, ref_st = parse(EXCERPT)
    data = excerpt_text.encode()
    data = packer(data) if packer else data
    for piece in (0, 1):
        p, t = _fifo(tmp_path, data, piece)
        c, st = parse(p, chunk_bytes=50_000)
        t.join(timeout=5)
        assert rows(c) == rows(ref) and st.lines == ref_st.lines == 3147
        p.unlink()


def test_stdin_is_dash(monkeypatch, tmp_path, excerpt_text):
    (tmp_path / "t.txt").write_text(excerpt_text)
    fd = os.open(tmp_path / "t.txt", os.O_RDONLY)
    saved = os.dup(0)
    try:
        os.dup2(fd, 0)
        c, st = parse(Path("-"))
    finally:
        os.dup2(saved, 0)
        os.close(saved)
        os.close(fd)
    assert st.path == "-" and len(c) == 1181 + 1033 + 676 + 245
    assert trace_name("-") == "stdin" and not rereadable("-")
    assert rereadable(tmp_path / "t.txt")


def test_a_line_past_max_line_bytes_is_one_malformed_line(tmp_path):
    ev = head("1.0") + "mm_page_free: pfn=0x10 order=0"
    big = b"x" * (MAX_LINE_BYTES + 10)
    t = tmp_path / "long.txt"
    t.write_bytes(f"{ev}\n".encode() + big + f"\n{ev}\n".encode() + big)
    for kw in ({}, {"chunk_bytes": 4096}, {"chunk_bytes": MAX_LINE_BYTES // 3}):
        c, st = parse(t, **kw)
        assert c.line.tolist() == [1, 3] and st.lines == 4 and st.malformed == 2
        assert [no for no, _ in st.malformed_examples] == [2, 4]
        assert st.malformed_examples[0][1].startswith("xxx")


def test_huge_header_numbers_are_not_understood(tmp_path):
    digits = "9" * 5000  # more than int() takes from text
    t = write(tmp_path / "t.txt", [
        f"# entries-in-buffer/entries-written: 1/{digits}   #P:{digits}",
        head("1.0") + "mm_page_free: pfn=0x10 order=0",
        f"CPU:0 [LOST {digits} EVENTS]", "CPU:1 [LOST 7 EVENTS]", "#P:4"])
    _, st = parse(t)
    assert st.entries_written is None and st.nr_cpus == 4 and st.nr_cpus_line == 5
    assert st.malformed == 1 and st.lost_lines == 1 and st.lost_events == 7


@pytest.mark.parametrize("packer,kind", [(gzip.compress, "gzip"), (lzma.compress, "xz"),
                                         (bz2.compress, "bzip2")])
def test_a_truncated_stream_says_so(tmp_path, excerpt_text, packer, kind):
    data = packer(excerpt_text.encode())
    cut = tmp_path / "cut"
    cut.write_bytes(data[: len(data) * 2 // 3])
    with pytest.raises(TraceError, match=rf"cut: truncated {kind} stream: it ends before"):
        list(read_trace(cut, chunk_bytes=4096))
