"""Streaming parser of ftrace text captures of the kmem page events.

Reads a tracefs ``trace`` or ``trace_pipe`` text capture (plain, gzip, xz or
bzip2, told apart by magic bytes; a file, a pipe, a FIFO or ``-`` for stdin,
each opened and read once) of ``mm_page_alloc``, ``mm_page_free``,
``mm_page_free_batched``, ``mm_page_pcpu_drain`` and
``mm_page_alloc_zone_locked`` (pcp refills and buddy allocations, told apart
by ``percpu_refill``) and ``mm_page_alloc_extfrag`` (a fallback's block) and
yields the events as
flat arrays (:class:`TraceChunk`), one chunk per block of decompressed text.
The lines are parsed by a compiled kernel (:mod:`dnuma._kernels.ftrace`);
decompression runs in a reader thread alongside it.

Accepted variants: with or without the ``#`` header (``trace`` vs
``trace_pipe``), the irq-flags column of 4 or 5 characters or none (older
kernels, ``trace_options`` ``noirq-info``), the ``(tgid)`` column of
``record-tgid``, task names holding blanks, dashes or brackets, ``pfn`` in hex
(>= 5.x) or decimal (older), with or without ``page=``, hashed / raw / NULL /
``(null)`` pointers, extra fields of older kernels (``cold=``), the pre-3.3
names ``mm_page_free_direct`` and ``mm_pagevec_free``, sec.usec or sec.nsec
timestamps, CRLF endings, ``CPU:n [LOST m EVENTS]`` notes and ``#####``
buffer-start comments.

A failed allocation (the kernel prints ``page=0000000000000000 pfn=0x0`` for
a NULL page; older kernels ``page=(null)``; a pfn of -1UL or any pfn >= 2**52,
which no 64-bit physical address has) is an :data:`EV_ALLOC_FAIL` event with
``pfn`` -1.
"""

from __future__ import annotations

import bz2
import contextlib
import gzip
import io
import lzma
import os
import queue
import re
import stat
import threading
import zlib
from collections.abc import Generator, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from typing import Any, BinaryIO, cast

import numpy as np
import numpy.typing as npt

from .._kernels import ftrace as _k
from .._kernels.ftrace import EV_ALLOC as EV_ALLOC  # event kinds: one definition
from .._kernels.ftrace import EV_ALLOC_FAIL as EV_ALLOC_FAIL
from .._kernels.ftrace import EV_BUDDY_ALLOC as EV_BUDDY_ALLOC
from .._kernels.ftrace import EV_EXTFRAG as EV_EXTFRAG
from .._kernels.ftrace import EV_FREE as EV_FREE
from .._kernels.ftrace import EV_FREE_BATCHED as EV_FREE_BATCHED
from .._kernels.ftrace import EV_PCPU_DRAIN as EV_PCPU_DRAIN
from .._kernels.ftrace import EV_REFILL as EV_REFILL
from ..mm.constants import (
    __GFP_ATOMIC_MODEL,
    __GFP_DMA,
    __GFP_DMA32,
    __GFP_HIGH,
    __GFP_HIGHMEM,
    __GFP_MOVABLE,
    __GFP_RECLAIMABLE,
    __GFP_THISNODE,
)
from ..mm.errors import DnumaError

# the stats key of each kind: the event's name (a failed alloc is an mm_page_alloc)
KIND_NAMES = ("mm_page_alloc", "mm_page_free", "mm_page_free_batched", "mm_page_pcpu_drain",
              "mm_page_alloc", "mm_page_alloc_zone_locked", "mm_page_alloc_zone_locked",
              "mm_page_alloc_extfrag")

MAX_EXAMPLES = 10  # malformed lines kept as examples
_MAX_TEXT = 300  # characters kept of an example line
_SP_CAP = 4096  # non-event lines per kernel call


class TraceError(DnumaError, ValueError):
    """A trace file that cannot be read: missing, unreadable, corrupt or not
    text (names the path)."""


# --- gfp_flags text -> model gfp bits ---------------------------------------

# The names show_gfp_flags prints (include/trace/events/mmflags.h), as sets of
# the kernel's ___GFP_*_BIT names (include/linux/gfp_types.h, Linux 6.12, plus
# the older names).  A printed string is the union of its names.
_RECLAIM = frozenset({"DIRECT_RECLAIM", "KSWAPD_RECLAIM"})
_GFP_KERNEL = _RECLAIM | {"IO", "FS"}
_GFP_USER = _GFP_KERNEL | {"HARDWALL"}
_GFP_HIGHUSER = _GFP_USER | {"HIGHMEM"}
_GFP_HIGHUSER_MOVABLE = _GFP_HIGHUSER | {"MOVABLE", "SKIP_KASAN"}
_GFP_TRANSHUGE_LIGHT = (_GFP_HIGHUSER_MOVABLE | {"COMP", "NOMEMALLOC", "NOWARN"}) - _RECLAIM
_GFP_BITS = (
    "DMA", "HIGHMEM", "DMA32", "MOVABLE", "RECLAIMABLE", "HIGH", "IO", "FS", "ZERO",
    "DIRECT_RECLAIM", "KSWAPD_RECLAIM", "WRITE", "NOWARN", "RETRY_MAYFAIL", "NOFAIL",
    "NORETRY", "MEMALLOC", "COMP", "NOMEMALLOC", "HARDWALL", "THISNODE", "ACCOUNT",
    "ZEROTAGS", "SKIP_ZERO", "SKIP_KASAN", "NOLOCKDEP", "NO_OBJ_EXT",
    # older kernels
    "ATOMIC", "COLD", "NOTRACK", "NOTRACK_FALSE_POSITIVE", "OTHER_NODE", "NO_KSWAPD",
    "REPEAT", "NOACCOUNT",
)
TRACE_GFP_FLAGS: dict[str, frozenset[str]] = {
    **{f"__GFP_{b}": frozenset({b}) for b in _GFP_BITS},
    "__GFP_RECLAIM": _RECLAIM,
    "__GFP_WAIT": frozenset({"DIRECT_RECLAIM"}),  # <= 4.3
    "GFP_TRANSHUGE": _GFP_TRANSHUGE_LIGHT | {"DIRECT_RECLAIM"},
    "GFP_TRANSHUGE_LIGHT": _GFP_TRANSHUGE_LIGHT,
    "GFP_HIGHUSER_MOVABLE": _GFP_HIGHUSER_MOVABLE,
    "GFP_HIGHUSER": _GFP_HIGHUSER,
    "GFP_USER": _GFP_USER,
    "GFP_KERNEL_ACCOUNT": _GFP_KERNEL | {"ACCOUNT"},
    "GFP_KERNEL": _GFP_KERNEL,
    "GFP_NOFS": _RECLAIM | {"IO"},
    "GFP_ATOMIC": frozenset({"HIGH", "KSWAPD_RECLAIM"}),
    "GFP_NOIO": _RECLAIM,
    "GFP_NOWAIT": frozenset({"KSWAPD_RECLAIM", "NOWARN"}),
    "GFP_DMA": frozenset({"DMA"}),
    "GFP_DMA32": frozenset({"DMA32"}),
    # older kernels
    "GFP_TEMPORARY": _GFP_KERNEL | {"RECLAIMABLE"},  # <= 4.14
    "GFP_IOFS": frozenset({"IO", "FS"}),  # <= 4.3
    "GFP_THISNODE": frozenset({"THISNODE", "NOWARN", "NORETRY"}),  # <= 3.x
    "none": frozenset(),  # gfp 0
}
_MODEL_BITS = {
    "DMA": __GFP_DMA, "HIGHMEM": __GFP_HIGHMEM, "DMA32": __GFP_DMA32,
    "MOVABLE": __GFP_MOVABLE, "RECLAIMABLE": __GFP_RECLAIMABLE, "HIGH": __GFP_HIGH,
    "THISNODE": __GFP_THISNODE,
}


@lru_cache(maxsize=4096)
def gfp_to_model(text: str) -> tuple[int, tuple[str, ...]]:
    """A printed gfp_flags value (``GFP_KERNEL|__GFP_ZERO``) -> (model gfp bits,
    names not understood).

    Maps the zone bits, __GFP_MOVABLE, __GFP_RECLAIMABLE, __GFP_HIGH and
    __GFP_THISNODE; sets __GFP_ATOMIC_MODEL (ALLOC_NON_BLOCK) as
    gfp_to_alloc_flags() does: no __GFP_DIRECT_RECLAIM and no __GFP_NOMEMALLOC
    (GFP_ATOMIC, GFP_NOWAIT, ``none``).  Unknown names (and leftover hex bits)
    add nothing; a string of unknown names only gives 0.
    """
    bits: set[str] = set()
    unknown: list[str] = []
    known = False
    for name in text.split("|"):
        name = name.strip()
        if not name:
            continue
        kb = TRACE_GFP_FLAGS.get(name)
        if kb is None:
            unknown.append(name)
        else:
            known = True
            bits |= kb
    if not known:
        return 0, tuple(unknown)
    gfp = 0
    for b in bits:
        gfp |= _MODEL_BITS.get(b, 0)
    if "DIRECT_RECLAIM" not in bits and "NOMEMALLOC" not in bits:
        gfp |= __GFP_ATOMIC_MODEL
    return gfp, tuple(unknown)


# --- results -----------------------------------------------------------------


@dataclass(eq=False)
class TraceChunk:
    """Events of one block of the trace, as arrays of one length.

    ``kind`` int8 (EV_*); ``cpu`` int32; ``ts_ns`` int64 (trace clock, ns);
    ``pfn`` int64 (-1 for EV_ALLOC_FAIL); ``order`` int8; ``migratetype`` int8
    (-1 for the frees, which print none); ``gfp`` int32 (model gfp bits of the
    allocations, 0 for the others); ``line`` int64 (1-based line number).
    """

    kind: npt.NDArray[np.int8]
    cpu: npt.NDArray[np.int32]
    ts_ns: npt.NDArray[np.int64]
    pfn: npt.NDArray[np.int64]
    order: npt.NDArray[np.int8]
    migratetype: npt.NDArray[np.int8]
    gfp: npt.NDArray[np.int32]
    line: npt.NDArray[np.int64]

    def __len__(self) -> int:
        return int(self.kind.shape[0])

    def events(self) -> _k.TraceEvents:
        """The arrays as the kernels take them."""
        return _k.TraceEvents(self.kind, self.cpu, self.ts_ns, self.pfn, self.order,
                              self.migratetype, self.gfp, self.line)

    @classmethod
    def empty(cls, n: int = 0) -> TraceChunk:
        """A chunk of ``n`` zeroed events."""
        return cls(*_k.new_events(n))

    @classmethod
    def concat(cls, chunks: Iterable[TraceChunk]) -> TraceChunk:
        """One chunk of the events of ``chunks``, in order."""
        cs = [c.events() for c in chunks]
        if not cs:
            return cls.empty()
        return cls(*(np.concatenate(col) for col in zip(*cs, strict=True)))


@dataclass
class TraceStats:
    """Counts of one read of a trace, updated as the chunks are yielded.

    ``events``: events by event name (the four kinds; mm_page_free_direct and
    mm_pagevec_free of old kernels count as mm_page_free and
    mm_page_free_batched; failed allocations count as mm_page_alloc and in
    ``alloc_failed``); ``other``: well-formed lines of other events by name
    ("(unnamed)" for lines without one, e.g. function tracer); ``gfp_strings``:
    allocations (failed ones included) by their gfp_flags text;
    ``unknown_gfp``: allocations by gfp name not understood; ``ts_backwards``:
    events whose timestamp is below the previous event's;
    ``first_ts_ns``/``last_ts_ns``: of the first and last event in file order.
    ``tracer``, ``nr_cpus`` ('#P:N') and ``entries_*`` come from the ``trace``
    file's header (None without one, as from ``trace_pipe``).
    """

    path: str = ""
    bytes: int = 0  # decompressed
    lines: int = 0
    events: dict[str, int] = field(default_factory=lambda: dict.fromkeys(KIND_NAMES, 0))
    alloc_failed: int = 0
    malformed: int = 0
    malformed_examples: list[tuple[int, str]] = field(default_factory=list)
    other: dict[str, int] = field(default_factory=dict)
    comments: int = 0
    blank: int = 0
    lost_lines: int = 0  # "CPU:n [LOST m EVENTS]" notes
    lost_events: int = 0  # the sum of their m
    gfp_strings: dict[str, int] = field(default_factory=dict)
    unknown_gfp: dict[str, int] = field(default_factory=dict)
    ts_backwards: int = 0
    first_ts_ns: int | None = None
    last_ts_ns: int | None = None
    tracer: str | None = None
    nr_cpus: int | None = None
    nr_cpus_line: int | None = None  # the header line of '#P:N'
    entries_in_buffer: int | None = None
    entries_written: int | None = None

    @property
    def total_events(self) -> int:
        """Events of the four kinds (failed allocations included)."""
        return sum(self.events.values())

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready copy."""
        d = asdict(self)
        d["malformed_examples"] = [list(x) for x in self.malformed_examples]
        d["total_events"] = self.total_events
        return d


# --- opening -----------------------------------------------------------------

_XZ_MAGIC = b"\xfd7zXZ\x00"
_GZ_MAGIC = b"\x1f\x8b"
_BZ2_MAGIC = b"BZh"
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
_TRACE_DAT_MAGIC = b"\x17\x08Dtracing"
_STREAM_ERRORS = (OSError, EOFError, lzma.LZMAError, zlib.error)
_SNIFF = 1 << 16  # bytes of the first read (the magic is in its first 6)

#: "-" names standard input
STDIN = "-"


def trace_name(path: str | os.PathLike[str]) -> str:
    """How messages name a trace: its path, ``stdin`` for ``-``."""
    p = os.fspath(path)
    return "stdin" if p == STDIN else p


def rereadable(path: str | os.PathLike[str]) -> bool:
    """Whether the trace can be opened and read a second time: a regular file
    (not ``-``, a pipe, a FIFO or a character device)."""
    p = os.fspath(path)
    if p == STDIN:
        return False
    try:
        return stat.S_ISREG(os.stat(p).st_mode)
    except OSError:
        return False


def _looks_binary(head: bytes) -> bool:
    """More than 10% NUL or control bytes (a stray NUL in text is a malformed
    line, not a binary file)."""
    ctrl = sum(1 for c in head if (c < 32 and c not in (9, 10, 12, 13)) or c == 127)
    return ctrl > len(head) // 10


class _Head(io.RawIOBase):
    """The bytes read to sniff the format, then the rest of ``raw``: a stream
    (pipe, FIFO) is read once and nothing of it is lost."""

    def __init__(self, head: bytes, raw: io.RawIOBase) -> None:
        super().__init__()
        self._head = memoryview(head)
        self._raw = raw

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int | None:
        if self._head:
            n = min(len(b), len(self._head))
            b[:n] = self._head[:n]
            self._head = self._head[n:]
            return n
        return self._raw.readinto(b)

    def close(self) -> None:
        if not self.closed:
            self._raw.close()
        super().close()


class _OwnsSource(io.BufferedIOBase):
    """A decompressor that closes the stream it reads when it is closed."""

    source: BinaryIO | None = None

    def close(self) -> None:
        try:
            super().close()
        finally:
            if self.source is not None:
                self.source.close()


class _XZFile(_OwnsSource, lzma.LZMAFile):
    pass


class _GzipFile(_OwnsSource, gzip.GzipFile):
    pass


class _BZ2File(_OwnsSource, bz2.BZ2File):
    pass


_DECOMPRESSORS: dict[str, Any] = {"xz": _XZFile, "bzip2": _BZ2File}  # gzip: fileobj=


@dataclass
class _Opened:
    f: BinaryIO  # the decompressed text
    kind: str  # "text", "xz", "gzip", "bzip2"
    name: str  # for messages (trace_name)


def _open(path: str | os.PathLike[str]) -> _Opened:
    """Open ``path`` (``-``: stdin) once: sniff the compression from the first
    bytes read and keep them, so that a pipe or a FIFO loses nothing."""
    p = os.fspath(path)
    name = trace_name(p)
    raw: io.RawIOBase
    try:
        raw = io.FileIO(os.dup(0) if p == STDIN else p, "rb")
    except FileNotFoundError:
        raise TraceError(f"{name}: no such file") from None
    except IsADirectoryError:
        raise TraceError(f"{name}: is a directory") from None
    except OSError as exc:
        raise TraceError(f"{name}: cannot read: {exc.strerror or exc}") from None
    try:
        magic = b""
        while len(magic) < len(_XZ_MAGIC):  # a pipe may give a few bytes at a time
            b = raw.read(_SNIFF)
            if not b:
                break
            magic += b
    except OSError as exc:
        raw.close()
        raise TraceError(f"{name}: cannot read: {exc.strerror or exc}") from None
    if magic.startswith(_TRACE_DAT_MAGIC[:6]):
        raw.close()
        raise TraceError(f"{name}: not text: a trace-cmd .dat file (convert it with trace-cmd "
                         "report)")
    if magic.startswith(_ZSTD_MAGIC):
        raw.close()
        raise TraceError(f"{name}: zstd-compressed; decompress it first (zstd -d)")
    stream = io.BufferedReader(_Head(magic, raw), _SNIFF)
    kind = ("xz" if magic.startswith(_XZ_MAGIC) else "gzip" if magic.startswith(_GZ_MAGIC)
            else "bzip2" if magic.startswith(_BZ2_MAGIC) else "text")
    f: Any = stream
    if kind == "gzip":
        f = _GzipFile(fileobj=stream)
    elif kind != "text":
        f = _DECOMPRESSORS[kind](stream)
    if kind != "text":
        f.source = stream
    try:
        head = f.peek(4096)[:4096]
    except _STREAM_ERRORS as exc:
        f.close()
        raise TraceError(f"{name}: {_stream_error(kind, exc)}") from None
    if _looks_binary(head):
        f.close()
        what = "text" if kind == "text" else f"text inside its {kind} compression"
        raise TraceError(f"{name}: not {what} (binary data)")
    return _Opened(cast(BinaryIO, f), kind, name)


def _stream_error(kind: str, exc: BaseException, done: int | None = None) -> str:
    """What went wrong reading a ``kind`` stream, for a message."""
    after = "" if done is None else f" after {done} bytes of text"
    if (isinstance(exc, OSError) and exc.errno is not None) or kind == "text":
        return f"read error{after}: {getattr(exc, 'strerror', None) or exc}"
    if isinstance(exc, EOFError):
        return f"truncated {kind} stream: it ends before its end-of-stream marker{after}"
    return f"not a valid {kind} stream{after}: {exc}"


def open_trace(path: str | os.PathLike[str]) -> BinaryIO:
    """Open a trace (``-``: stdin) for binary reading, decompressing gzip, xz
    or bzip2 (told by their magic bytes; the file is opened and read once).
    Raises TraceError (naming the path) if it is missing, unreadable, a
    corrupt stream or not text."""
    return _open(path).f


def _blocks(src: _Opened, size: int, prefetch: bool) -> Generator[bytes, None, None]:
    """The decompressed content of ``src`` in blocks of ``size`` bytes, read in
    a thread ahead of the consumer when ``prefetch``."""
    done = 0

    def read() -> bytes:
        nonlocal done
        try:
            b = src.f.read(size)
        except _STREAM_ERRORS as exc:
            raise TraceError(f"{src.name}: {_stream_error(src.kind, exc, done)}") from None
        done += len(b)
        return b

    if not prefetch:
        while b := read():
            yield b
        return
    q: queue.Queue[bytes | BaseException] = queue.Queue(maxsize=2)
    stop = threading.Event()

    def put(item: bytes | BaseException) -> None:
        while not stop.is_set():
            try:
                q.put(item, timeout=0.05)
                return
            except queue.Full:
                continue

    def worker() -> None:
        try:
            while not stop.is_set():
                b = read()
                put(b)
                if not b:
                    return
        except BaseException as exc:  # handed to the consumer
            put(exc)

    t = threading.Thread(target=worker, name="dnuma-trace-reader", daemon=True)
    t.start()
    try:
        while True:
            item = q.get()
            if isinstance(item, BaseException):
                raise item
            if not item:
                return
            yield item
    finally:
        stop.set()
        t.join()


# --- parsing -----------------------------------------------------------------


class _Intern:
    """hash -> (value, count) table shared with the kernel (a StrTable),
    plus the text of each hash."""

    def __init__(self, cap: int = 256) -> None:
        self.table = _k.new_str_table(cap)
        self.text: dict[int, str] = {}

    def add(self, h: int, val: int, text: str) -> None:
        """Intern hash ``h`` (not present) with value ``val``."""
        old = self.table
        if 2 * (len(self.text) + 1) > old.keys.shape[0]:
            self.table = _k.new_str_table(2 * old.keys.shape[0])
            for i in np.flatnonzero(old.used):
                self._put(int(old.keys[i]), int(old.vals[i]), int(old.hits[i]))
        self._put(h, val, 0)
        self.text[h] = text

    def _put(self, h: int, val: int, hits: int) -> None:
        t = self.table
        i = int(_k.table_slot(t, np.int64(h)))
        t.keys[i] = h
        t.vals[i] = val
        t.hits[i] = hits
        t.used[i] = 1

    def counts(self) -> dict[str, int]:
        """text -> count of the strings seen so far, the most frequent first."""
        t = self.table
        out: dict[str, int] = {}
        for i in np.flatnonzero(t.used):
            text = self.text[int(t.keys[i])]
            out[text] = out.get(text, 0) + int(t.hits[i])
        return dict(sorted(out.items(), key=lambda kv: (-kv[1], kv[0])))


_TRACER_RE = re.compile(r"^#\s*tracer:\s*(\S+)")
# header counts and LOST notes of more than 18 digits are not understood (a
# value must fit an int64): the header field is ignored, the note malformed
_ENTRIES_RE = re.compile(r"entries-in-buffer/entries-written:\s*(\d{1,18})/(\d{1,18})\b",
                         re.ASCII)
_NRCPU_RE = re.compile(r"#P:(\d{1,18})\b", re.ASCII)
_LOST_RE = re.compile(r"^\s*CPU:\s*\d{1,18}\s+\[LOST(?:\s+(\d{1,18}))?\s+EVENTS\]\s*$",
                      re.ASCII)
_MAX_HEADER_COMMENTS = 1000
#: a line longer than this (bytes) is counted as malformed without being
#: kept whole (a binary tail or a missing newline cannot fill the memory)
MAX_LINE_BYTES = 1 << 20


class _Parser:
    """Feeds whole lines to the kernel, interns new strings, keeps the stats."""

    def __init__(self, cap: int, stats: TraceStats) -> None:
        self.stats = stats
        self.ev = _k.new_events(cap)
        self.sp = _k.new_special_lines(_SP_CAP)
        self.gfp = _Intern()
        self.other = _Intern()
        self.state = _k.new_state()
        self.line_no = 0
        self.n_ev = 0
        self.gfp_unknown: dict[str, tuple[str, ...]] = {}

    def feed(self, data: bytes, start: int, end: int) -> Iterator[TraceChunk]:
        """Parse the whole lines ``data[start:end]``; yields a chunk whenever
        the event arrays fill up."""
        buf = _k.line_buffer(data)
        pos = start
        while True:
            r: _k.ParseResult = _k.parse_lines(buf, pos, end, self.line_no, self.ev, self.n_ev,
                                               self.sp, 0, self.gfp.table, self.other.table,
                                               self.state)
            pos, self.line_no, self.n_ev = int(r.pos), int(r.line_no), int(r.n_ev)
            if r.n_sp:
                self._specials(data, int(r.n_sp))
            if r.status == _k.ST_DONE:
                return
            a, n, h = int(r.aux_start), int(r.aux_len), int(r.aux_hash)
            if r.status == _k.ST_FULL:
                if self.n_ev >= self.ev.kind.shape[0]:
                    chunk = self.flush()
                    if chunk is not None:
                        yield chunk
            elif r.status == _k.ST_NEW_GFP:
                text = data[a:a + n].decode("utf-8", "replace")
                bits, unknown = gfp_to_model(text)
                self.gfp.add(h, bits, text)
                if unknown:
                    self.gfp_unknown[text] = unknown
            else:
                name = data[a:a + n].decode("utf-8", "replace") or "(unnamed)"
                self.other.add(h, 0, name)

    def _specials(self, data: bytes, n: int) -> None:
        st, sp = self.stats, self.sp
        for i in range(n):
            code = int(sp.code[i])
            text = data[int(sp.start[i]):int(sp.end[i])].decode("utf-8", "replace")
            if code == _k.SP_COMMENT:
                st.comments += 1
                if st.comments <= _MAX_HEADER_COMMENTS:
                    self._header(text, int(sp.line[i]))
                continue
            if code == _k.SP_LOST:
                m = _LOST_RE.match(text)
                if m:
                    st.lost_lines += 1
                    st.lost_events += int(m.group(1) or 0)
                    continue
            self._malformed(int(sp.line[i]), text)

    def _malformed(self, line: int, text: str) -> None:
        st = self.stats
        st.malformed += 1
        if len(st.malformed_examples) < MAX_EXAMPLES:
            st.malformed_examples.append((line, text[:_MAX_TEXT]))

    def long_line(self, head: bytes) -> None:
        """Count a line of more than MAX_LINE_BYTES (``head``: its start) as
        malformed."""
        self.line_no += 1
        self._malformed(self.line_no, head[:_MAX_TEXT].decode("utf-8", "replace") + "...")

    def _header(self, text: str, line: int) -> None:
        h = self.stats
        if m := _TRACER_RE.match(text):
            h.tracer = m.group(1)
        if m := _ENTRIES_RE.search(text):
            h.entries_in_buffer, h.entries_written = int(m.group(1)), int(m.group(2))
        if m := _NRCPU_RE.search(text):
            h.nr_cpus, h.nr_cpus_line = int(m.group(1)), line

    def flush(self) -> TraceChunk | None:
        """The events parsed since the last flush (None if none), stats synced."""
        n = self.n_ev
        self.n_ev = 0
        self.sync()
        if n == 0:
            return None
        c = TraceChunk(*(a[:n].copy() for a in self.ev))
        st = self.stats
        for k, cnt in enumerate(np.bincount(c.kind, minlength=len(KIND_NAMES))):
            st.events[KIND_NAMES[k]] += int(cnt)
            if k == EV_ALLOC_FAIL:
                st.alloc_failed += int(cnt)
        if st.first_ts_ns is None:
            st.first_ts_ns = int(c.ts_ns[0])
        st.last_ts_ns = int(c.ts_ns[-1])
        return c

    def sync(self) -> None:
        """Copy the kernel-side counters into the stats."""
        st = self.stats
        st.lines = self.line_no
        ps = _k.ParseState(*self.state.tolist())
        st.blank = ps.blank
        st.ts_backwards = ps.ts_backwards
        st.other = self.other.counts()
        st.gfp_strings = self.gfp.counts()
        unknown: dict[str, int] = {}
        for text, cnt in st.gfp_strings.items():
            for name in self.gfp_unknown.get(text, ()):
                unknown[name] = unknown.get(name, 0) + cnt
        st.unknown_gfp = unknown


def read_trace(path: str | os.PathLike[str], chunk_bytes: int = 8 << 20,
               stats: TraceStats | None = None, *, prefetch: bool = True
               ) -> Iterator[TraceChunk]:
    """Stream the kmem events of a trace (``-``: stdin) as TraceChunks (about
    one per ``chunk_bytes`` of decompressed text).

    The file is opened and checked at once (TraceError if missing, unreadable
    or not text), and read once, a pipe or a FIFO as well as a file; it is
    read in blocks, decompressed in a reader thread when ``prefetch``.
    ``stats`` (if given) is filled as the chunks are yielded and complete once
    the iterator is exhausted.  Malformed lines (a line of more than
    MAX_LINE_BYTES among them) and lines of other events are counted there,
    never raised; a trace without any event yields nothing.  A truncated or
    corrupt compressed stream raises TraceError when it is met.
    """
    if chunk_bytes < 1:
        raise ValueError(f"chunk_bytes must be >= 1, got {chunk_bytes}")
    src = _open(path)
    st = stats if stats is not None else TraceStats()
    st.path = os.fspath(path)
    return _read(src, st, chunk_bytes, prefetch)


def _read(src: _Opened, st: TraceStats, chunk_bytes: int, prefetch: bool
          ) -> Iterator[TraceChunk]:
    parser = _Parser(max(64, chunk_bytes // 48), st)
    carry = bytearray()  # the start of a line the next block ends
    long_head: bytes | None = None  # the start of a too-long line being skipped
    with (contextlib.closing(src.f),
          contextlib.closing(_blocks(src, chunk_bytes, prefetch)) as blocks):
        for block in blocks:
            st.bytes += len(block)
            start = 0
            if carry or long_head is not None:
                nl = block.find(b"\n")
                if nl < 0:
                    if long_head is None:
                        carry += block
                        if len(carry) > MAX_LINE_BYTES:
                            long_head, carry = bytes(carry[:_MAX_TEXT]), bytearray()
                    continue
                if long_head is not None:
                    parser.long_line(long_head)
                    long_head = None
                else:
                    carry += block[:nl + 1]
                    yield from parser.feed(bytes(carry), 0, len(carry))
                    carry = bytearray()
                start = nl + 1
            last = block.rfind(b"\n")
            if last >= start:
                yield from parser.feed(block, start, last + 1)
                start = last + 1
            if len(block) - start > MAX_LINE_BYTES:
                long_head = block[start:start + _MAX_TEXT]
            else:
                carry += block[start:]
            chunk = parser.flush()
            if chunk is not None:
                yield chunk
    if long_head is not None:
        parser.long_line(long_head)
    elif carry:
        yield from parser.feed(bytes(carry), 0, len(carry))
    chunk = parser.flush()
    if chunk is not None:
        yield chunk


def load_trace(path: str | os.PathLike[str], stats: TraceStats | None = None) -> TraceChunk:
    """All the events of a trace in one chunk (see :func:`read_trace`)."""
    return TraceChunk.concat(read_trace(path, stats=stats))
