"""Line parser of ftrace text captures (tracefs ``trace`` / ``trace_pipe``) of
the kmem page events.  It runs over a uint8 buffer of whole lines and writes
one row per event into preallocated arrays (:class:`TraceEvents`); the few
lines that are not events (comments, malformed, lost-events notes) go to a
second set of arrays (:class:`SpecialLines`).

gfp_flags strings and the names of other events are identified by a 64-bit
hash (:func:`str_hash`) through small open-addressing tables owned by the
caller (:class:`StrTable`).  An unseen string stops the parse at its line
(status ST_NEW_GFP / ST_NEW_EVENT) so that the caller can intern it and call
again from there.

Line grammar (leading blanks and a trailing CR ignored)::

    comm-pid [(tgid)] [cpu] [irq-flags] sec[.frac]: event: key=value ...

``comm`` may hold blanks, dashes and brackets: the cpu field is the first
``[digits]`` preceded by ``-pid`` (and an optional ``(tgid)`` column).

Under DNUMA_NO_JIT the buffer must be a ``bytes``/``memoryview`` (its items are
Python ints), not a uint8 array: :func:`line_buffer` gives the right one.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple, TypeVar

import numpy as np

from ._jit import JIT_DISABLED, kernel, kernel_inline

# event kinds (the rows' ``kind``)
EV_ALLOC = 0
EV_FREE = 1
EV_FREE_BATCHED = 2
EV_PCPU_DRAIN = 3
EV_ALLOC_FAIL = 4
EV_REFILL = 5  # mm_page_alloc_zone_locked percpu_refill=1: buddy -> a pcp list (rmqueue_bulk)
EV_BUDDY_ALLOC = 6  # mm_page_alloc_zone_locked percpu_refill=0: rmqueue_buddy
EV_EXTFRAG = 7  # mm_page_alloc_extfrag: a fallback took the block off the buddy lists

# codes of the non-event lines
SP_COMMENT = 1
SP_MALFORMED = 2
SP_LOST = 3

# return status of parse_lines
ST_DONE = 0  # parsed up to ``end``
ST_FULL = 1  # an output array is full: drain it and call again
ST_NEW_GFP = 2  # unseen gfp_flags string at aux: intern it and call again
ST_NEW_EVENT = 3  # unseen other-event name at aux: intern it and call again

# per-line results of _parse_line
_L_EVENT = 0
_L_COMMENT = 1
_L_MALFORMED = 2
_L_LOST = 3
_L_BLANK = 4
_L_OTHER = 5

PFN_LIMIT = 1 << 52  # pfns of a 64-bit physical address space with 4 KiB pages

_M64 = 0xFFFFFFFFFFFFFFFF
_H_OFFSET = 0xCBF29CE484222325  # FNV-1a's offset basis and prime, applied to
_H_PRIME = 0x100000001B3  # 8-byte little-endian words


def _signed(u: int) -> int:
    return u - (1 << 64) if u >= 1 << 63 else u


def str_hash(data: bytes) -> int:
    """The 64-bit hash of ``data`` the kernels compute (as a signed int): FNV-1a
    over 8-byte little-endian words, then the length."""
    h = _H_OFFSET
    for i in range(0, len(data) - len(data) % 8, 8):
        h = ((h ^ int.from_bytes(data[i:i + 8], "little")) * _H_PRIME) & _M64
    w = int.from_bytes(data[len(data) - len(data) % 8:], "little")
    h = ((h ^ w ^ len(data)) * _H_PRIME) & _M64
    return _signed(h)


UNNAMED_HASH = str_hash(b"")  # the name hash of a line without an event name


def _names(*names: bytes) -> tuple[np.ndarray, ...]:
    """``names`` as uint8 arrays: a global tuple of them is a constant in a
    kernel, whose loop over it compares with immediates."""
    return tuple(np.frombuffer(n, np.uint8) for n in names)


# the event names and their kinds (<= 3.2: mm_page_free_direct, mm_pagevec_free)
_EV_NAMES = _names(b"mm_page_alloc", b"mm_page_free", b"mm_page_free_batched",
                   b"mm_page_pcpu_drain", b"mm_page_free_direct", b"mm_pagevec_free",
                   b"mm_page_alloc_zone_locked", b"mm_page_alloc_extfrag")
_EV_KINDS = np.array([EV_ALLOC, EV_FREE, EV_FREE_BATCHED, EV_PCPU_DRAIN, EV_FREE,
                      EV_FREE_BATCHED, EV_REFILL, EV_EXTFRAG], np.int64)
# the keys of the fields read (a key's bit in ``have``: 1 << its index)
_KEY_NAMES = _names(b"pfn", b"page", b"order", b"migratetype", b"gfp_flags",
                    b"percpu_refill", b"alloc_order", b"alloc_migratetype")
_K_PFN, _K_PAGE, _K_ORDER, _K_MT, _K_GFP, _K_REFILL, _K_ALLOC_ORDER, _K_ALLOC_MT = range(8)
_HAVE_PFN = 1 << _K_PFN
_HAVE_PAGE = 1 << _K_PAGE
_HAVE_ORDER = 1 << _K_ORDER
_HAVE_MT = 1 << _K_MT
_HAVE_GFP = 1 << _K_GFP


if JIT_DISABLED:

    def buf_hash(buf, a, b):
        """str_hash of buf[a:b] (plain Python)."""
        return str_hash(bytes(buf[a:b]))

else:

    @kernel
    def buf_hash(buf, a, b):
        """str_hash of buf[a:b].  In uint64: numba's int64 multiplication is
        ``mul nsw``, whose overflow LLVM may assume away."""
        h = np.uint64(_H_OFFSET)
        w = np.uint64(0)
        sh = np.uint64(0)
        for i in range(a, b):
            w |= np.uint64(buf[i]) << sh
            sh += np.uint64(8)
            if sh == np.uint64(64):
                h = (h ^ w) * np.uint64(_H_PRIME)
                w = np.uint64(0)
                sh = np.uint64(0)
        h = (h ^ w ^ np.uint64(b - a)) * np.uint64(_H_PRIME)
        return np.int64(h)


@kernel
def _eq(buf, a, b, pat):
    """Whether buf[a:b] equals the uint8 array ``pat``."""
    if b - a != pat.shape[0]:
        return False
    for i in range(pat.shape[0]):  # noqa: SIM110 - no generators in kernels
        if buf[a + i] != pat[i]:
            return False
    return True


@kernel_inline
def _event_kind(buf, a, b):
    """The EV_* kind of the event named buf[a:b], or -1."""
    for j, name in enumerate(_EV_NAMES):
        if _eq(buf, a, b, name):
            return _EV_KINDS[j]
    return -1


@kernel_inline
def _field_key(buf, a, b):
    """The index in _KEY_NAMES of the field key buf[a:b], or -1."""
    for j, name in enumerate(_KEY_NAMES):
        if _eq(buf, a, b, name):
            return j
    return -1


@kernel
def _blank(c):
    return c == 32 or c == 9


@kernel
def _digit(c):
    return c >= 48 and c <= 57


_HEXVAL = np.full(256, -1, np.int8)
for _i, _c in enumerate(b"0123456789abcdef"):
    _HEXVAL[_c] = _i
for _i, _c in enumerate(b"ABCDEF"):
    _HEXVAL[_c] = _i + 10


@kernel
def _hexval(c):
    """The value of hex digit ``c``, -1 if it is not one."""
    return np.int64(_HEXVAL[c])


@kernel
def _ident(c):
    return (c >= 97 and c <= 122) or (c >= 65 and c <= 90) or (c >= 48 and c <= 57) or c == 95


@kernel
def _parse_uint(buf, a, b):
    """``0x``-hex (<= 16 digits) or decimal [a, b) -> (ok, value, huge): huge if
    the value does not fit in 63 bits (the kernel's -1UL among them)."""
    if b - a >= 2 and buf[a] == 48 and (buf[a + 1] == 120 or buf[a + 1] == 88):
        a += 2
        n = b - a
        if n < 1 or n > 16:
            return False, 0, False
        huge = n == 16 and _hexval(buf[a]) >= 8
        v = 0
        for i in range(a, b):
            d = _hexval(buf[i])
            if d < 0:
                return False, 0, False
            if not huge:
                v = (v << 4) | d
        return True, v, huge
    n = b - a
    if n < 1 or n > 20:
        return False, 0, False
    v = 0
    for i in range(a, b):
        if not _digit(buf[i]):
            return False, 0, False
        if n <= 18:
            v = v * 10 + (buf[i] - 48)
    return True, v, n > 18


@kernel
def _parse_int(buf, a, b, lo, hi):
    """Decimal [a, b) with optional '-' in [lo, hi] -> (ok, value)."""
    neg = False
    if a < b and buf[a] == 45:
        neg = True
        a += 1
    n = b - a
    if n < 1 or n > 6:
        return False, 0
    v = 0
    for i in range(a, b):
        if not _digit(buf[i]):
            return False, 0
        v = v * 10 + (buf[i] - 48)
    if neg:
        v = -v
    if v < lo or v > hi:
        return False, 0
    return True, v


@kernel
def _parse_page(buf, a, b):
    """A ``%p`` value -> (ok, is_null): hex, ``(null)`` or another ``(...)``
    placeholder such as ``(____ptrval____)`` (not null)."""
    n = b - a
    if n >= 3 and buf[a] == 40 and buf[b - 1] == 41:
        null = (n == 6 and buf[a + 1] == 110 and buf[a + 2] == 117 and buf[a + 3] == 108
                and buf[a + 4] == 108)
        return True, null
    if n >= 2 and buf[a] == 48 and (buf[a + 1] == 120 or buf[a + 1] == 88):
        a += 2
        n -= 2
    if n < 1 or n > 16:
        return False, False
    acc = np.int8(0)
    for i in range(a, b):
        acc |= _HEXVAL[buf[i]]  # -1 (all bits) for a non-hex byte
    return acc >= 0, acc == 0


@kernel
def _pid_before(buf, p, k):
    """Whether [p, k] ends with ``-digits``, then blanks and an optional
    ``(tgid)`` column (the text before the cpu field)."""
    while k > p and _blank(buf[k]):
        k -= 1
    if buf[k] == 41:  # ')': the record-tgid column
        while k > p and buf[k] != 40:
            k -= 1
        if buf[k] != 40:
            return False
        k -= 1
        while k > p and _blank(buf[k]):
            k -= 1
    nd = 0
    while k > p and _digit(buf[k]):
        k -= 1
        nd += 1
    return nd > 0 and buf[k] == 45


@kernel
def _parse_ts(buf, a, b):
    """``sec.frac`` (frac 1..9 digits) -> (ok, ns); a plain integer (counter
    clocks) is taken as is."""
    v = 0
    nd = 0
    i = a
    while i < b and _digit(buf[i]):
        if nd < 18:
            v = v * 10 + (buf[i] - 48)
        nd += 1
        i += 1
    if nd < 1:
        return False, 0
    if i == b:
        return nd <= 18, v
    if buf[i] != 46 or nd > 9:
        return False, 0
    i += 1
    f = 0
    nf = 0
    while i < b and _digit(buf[i]):
        if nf < 9:
            f = f * 10 + (buf[i] - 48)
        nf += 1
        i += 1
    if i != b or nf < 1 or nf > 9:
        return False, 0
    while nf < 9:
        f *= 10
        nf += 1
    return True, v * 1_000_000_000 + f


@kernel
def _parse_line(buf, s, e):
    """Parse the line [s, e) -> (code, kind, cpu, ts_ns, pfn, order, mt, hash,
    span_start, span_len, name_hash).  For an alloc ``hash`` and the span are
    those of the gfp_flags value; for another event the span is its name."""
    p = s
    while p < e and _blank(buf[p]):
        p += 1
    if p == e:
        return _L_BLANK, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0
    if buf[p] == 35:  # '#'
        return _L_COMMENT, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0
    if (e - p >= 4 and buf[p] == 67 and buf[p + 1] == 80 and buf[p + 2] == 85
            and buf[p + 3] == 58):  # "CPU:n [LOST m EVENTS]"
        return _L_LOST, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0

    # the cpu field: the first " [digits] " after "-pid"
    cpu = -1
    q = p + 1
    while q < e:
        if buf[q] == 91 and _blank(buf[q - 1]):
            j = q + 1
            v = 0
            nd = 0
            while j < e and _digit(buf[j]) and nd < 9:
                v = v * 10 + (buf[j] - 48)
                j += 1
                nd += 1
            if (nd > 0 and j + 1 < e and buf[j] == 93 and _blank(buf[j + 1])
                    and _pid_before(buf, p, q - 1)):
                cpu = v
                q = j + 1
                break
        q += 1
    if cpu < 0:
        return _L_MALFORMED, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0

    # optional irq-flags column, then the timestamp "sec.usec:"
    while q < e and _blank(buf[q]):
        q += 1
    a = q
    while q < e and not _blank(buf[q]):
        q += 1
    if q > a and buf[q - 1] != 58:
        if q - a > 8:
            return _L_MALFORMED, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0
        while q < e and _blank(buf[q]):
            q += 1
        a = q
        while q < e and not _blank(buf[q]):
            q += 1
    if q - a < 2 or buf[q - 1] != 58:
        return _L_MALFORMED, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0
    ok, ts = _parse_ts(buf, a, q - 1)
    if not ok:
        return _L_MALFORMED, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0

    # the event name
    while q < e and _blank(buf[q]):
        q += 1
    a = q
    while q < e and _ident(buf[q]):
        q += 1
    if q == e:
        return _L_MALFORMED, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0
    if buf[q] != 58 or q == a:
        # a function-tracer line "func <-parent" or similar: an unnamed event
        return _L_OTHER, 0, cpu, ts, 0, 0, 0, 0, a, 0, UNNAMED_HASH
    n = q - a
    q += 1
    kind = _event_kind(buf, a, q - 1)
    if kind < 0:
        return _L_OTHER, 0, cpu, ts, 0, 0, 0, 0, a, n, buf_hash(buf, a, a + n)

    # the fields "key=value ..." (unknown keys such as cold= are skipped)
    have = 0
    null_page = False
    pfn = 0
    huge = False
    order = 0
    mt = -1
    refill = 0
    gh = 0
    ga = 0
    gl = 0
    while True:
        while q < e and _blank(buf[q]):
            q += 1
        if q >= e:
            break
        ka = q
        while q < e and buf[q] != 61 and not _blank(buf[q]):
            q += 1
        if q >= e or buf[q] != 61:
            return _L_MALFORMED, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0
        kb = q
        q += 1
        va = q
        while q < e and not _blank(buf[q]):
            q += 1
        key = _field_key(buf, ka, kb)
        # mm_page_alloc_extfrag's alloc_order and alloc_migratetype are its
        # order and migratetype
        if key == _K_ALLOC_ORDER:
            key = _K_ORDER
        elif key == _K_ALLOC_MT:
            key = _K_MT
        if key == _K_PFN:
            ok, pfn, huge = _parse_uint(buf, va, q)
        elif key == _K_PAGE:
            ok, null_page = _parse_page(buf, va, q)
        elif key == _K_ORDER:
            ok, order = _parse_int(buf, va, q, 0, 63)
        elif key == _K_MT:
            ok, mt = _parse_int(buf, va, q, -128, 127)
        elif key == _K_REFILL:
            ok, refill = _parse_int(buf, va, q, 0, 1)
        elif key == _K_GFP:
            ok = q > va
            gh = buf_hash(buf, va, q)
            ga = va
            gl = q - va
        else:
            ok = True
        if key >= 0:
            have |= 1 << key
        if not ok:
            return _L_MALFORMED, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0

    bad_pfn = huge or pfn >= PFN_LIMIT
    if kind == EV_ALLOC:
        need = _HAVE_PFN | _HAVE_ORDER | _HAVE_MT | _HAVE_GFP
        if (have & need) != need:
            return _L_MALFORMED, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0
        if bad_pfn or ((have & _HAVE_PAGE) != 0 and null_page):
            kind = EV_ALLOC_FAIL
            pfn = -1
    else:
        if kind == EV_FREE:
            need = _HAVE_PFN | _HAVE_ORDER
        elif kind == EV_PCPU_DRAIN or kind == EV_REFILL or kind == EV_EXTFRAG:  # noqa: SIM109
            need = _HAVE_PFN | _HAVE_ORDER | _HAVE_MT
        else:
            need = _HAVE_PFN
        if (have & need) != need or bad_pfn:
            return _L_MALFORMED, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0
        if kind == EV_REFILL and refill == 0:  # no percpu_refill=1: a buddy allocation
            kind = EV_BUDDY_ALLOC
    return _L_EVENT, kind, cpu, ts, pfn, order, mt, gh, ga, gl, 0


class TraceEvents(NamedTuple):
    """Events as arrays of one length, a row an event: ``kind`` int8 (EV_*),
    ``cpu`` int32, ``ts_ns`` int64 (trace clock, ns), ``pfn`` int64 (-1 for
    EV_ALLOC_FAIL), ``order`` int8, ``migratetype`` int8 (-1 for the frees,
    which print none), ``gfp`` int32 (model gfp bits of the allocations, 0
    for the others), ``line`` int64 (1-based line number)."""

    kind: np.ndarray
    cpu: np.ndarray
    ts_ns: np.ndarray
    pfn: np.ndarray
    order: np.ndarray
    migratetype: np.ndarray
    gfp: np.ndarray
    line: np.ndarray


B = TypeVar("B")


def _zeroed(bundle: Callable[..., B], n: int, *dtypes: Any) -> B:
    """A ``bundle`` of zeroed arrays of ``n`` items, of ``dtypes`` in field order."""
    return bundle(*(np.zeros(n, dt) for dt in dtypes))


def new_events(n: int) -> TraceEvents:
    """``n`` zeroed events."""
    return _zeroed(TraceEvents, n, np.int8, np.int32, np.int64, np.int64, np.int8, np.int8,
                   np.int32, np.int64)


class SpecialLines(NamedTuple):
    """The lines that are not events: ``code`` int8 (SP_*), ``line`` int64
    (1-based), ``start``/``end`` int64 (byte span in the buffer)."""

    code: np.ndarray
    line: np.ndarray
    start: np.ndarray
    end: np.ndarray


def new_special_lines(n: int) -> SpecialLines:
    """Room for ``n`` non-event lines."""
    return _zeroed(SpecialLines, n, np.int8, np.int64, np.int64, np.int64)


class StrTable(NamedTuple):
    """An open-addressing table of string hashes (capacity a power of 2, at
    most half full): ``keys`` int64 hashes, ``vals`` int32 values, ``hits``
    int64 lookups, ``used`` uint8 (1: slot taken)."""

    keys: np.ndarray
    vals: np.ndarray
    hits: np.ndarray
    used: np.ndarray


def new_str_table(cap: int) -> StrTable:
    """An empty table of ``cap`` slots (a power of 2)."""
    return _zeroed(StrTable, cap, np.int64, np.int32, np.int64, np.uint8)


class ParseState(NamedTuple):
    """What parse_lines carries from call to call (an int64 array of these)."""

    last_ts_ns: int  # timestamp of the previous event
    ts_backwards: int  # events whose timestamp is below the previous one
    blank: int  # blank lines


S_LAST_TS, S_TS_BACKWARDS, S_BLANK = range(len(ParseState._fields))


def new_state() -> np.ndarray:
    """A fresh state array for parse_lines."""
    return np.array(ParseState(np.iinfo(np.int64).min, 0, 0), np.int64)


def line_buffer(data: bytes) -> Any:
    """``data`` as parse_lines reads it: a uint8 array (a memoryview when the
    kernels run as plain Python, see the module docstring)."""
    return memoryview(data) if JIT_DISABLED else np.frombuffer(data, np.uint8)


class ParseResult(NamedTuple):
    """What parse_lines returns: ``status`` (ST_*), ``pos`` (the start of
    the first unparsed line), ``line_no`` (lines parsed before it), ``n_ev``
    and ``n_sp`` (rows filled), and for ST_NEW_* the unseen string's byte
    span and hash (``aux_start``, ``aux_len``, ``aux_hash``)."""

    status: int
    pos: int
    line_no: int
    n_ev: int
    n_sp: int
    aux_start: int
    aux_len: int
    aux_hash: int


@kernel
def table_slot(tbl, h):
    """The slot of hash ``h`` in StrTable ``tbl``, or the free slot where it
    would go (the table is never full)."""
    mask = tbl.keys.shape[0] - 1
    i = h & mask
    while tbl.used[i] != 0 and tbl.keys[i] != h:
        i = (i + 1) & mask
    return i


@kernel
def parse_lines(buf, pos, end, line_no, ev, n_ev, sp, n_sp, gfp, other, state):
    """Parse the lines of ``buf[pos:end]`` (``line_no`` lines before them).

    Events go to the TraceEvents ``ev`` from row ``n_ev`` (gfp resolved
    through the StrTable ``gfp``), the comment / malformed / lost-events lines
    to the SpecialLines ``sp`` from row ``n_sp``, other events are counted in
    the StrTable ``other``; ``state`` is a ParseState array.  Returns a
    :class:`ParseResult`.
    """
    cap_ev = ev.kind.shape[0]
    cap_sp = sp.code.shape[0]
    while pos < end:
        if n_ev >= cap_ev or n_sp >= cap_sp:
            return ParseResult(ST_FULL, pos, line_no, n_ev, n_sp, 0, 0, 0)
        e = pos
        while e < end and buf[e] != 10:
            e += 1
        nxt = e + 1 if e < end else e
        le = e
        if le > pos and buf[le - 1] == 13:
            le -= 1
        (code, kind, cpu, ts, pfn, order, mt, h, sa, sl,
         nh) = _parse_line(buf, pos, le)
        if code == _L_EVENT:
            g = 0
            if kind in (EV_ALLOC, EV_ALLOC_FAIL):
                slot = table_slot(gfp, h)
                if gfp.used[slot] == 0:
                    return ParseResult(ST_NEW_GFP, pos, line_no, n_ev, n_sp, sa, sl, h)
                g = gfp.vals[slot]
                gfp.hits[slot] += 1
            if ts < state[S_LAST_TS]:
                state[S_TS_BACKWARDS] += 1
            state[S_LAST_TS] = ts
            ev.kind[n_ev] = kind
            ev.cpu[n_ev] = cpu
            ev.ts_ns[n_ev] = ts
            ev.pfn[n_ev] = pfn
            ev.order[n_ev] = order
            ev.migratetype[n_ev] = mt
            ev.gfp[n_ev] = g
            ev.line[n_ev] = line_no + 1
            n_ev += 1
        elif code == _L_OTHER:
            slot = table_slot(other, nh)
            if other.used[slot] == 0:
                return ParseResult(ST_NEW_EVENT, pos, line_no, n_ev, n_sp, sa, sl, nh)
            other.hits[slot] += 1
        elif code == _L_BLANK:
            state[S_BLANK] += 1
        else:
            sp.code[n_sp] = (SP_COMMENT if code == _L_COMMENT
                             else SP_LOST if code == _L_LOST else SP_MALFORMED)
            sp.line[n_sp] = line_no + 1
            sp.start[n_sp] = pos
            sp.end[n_sp] = le
            n_sp += 1
        line_no += 1
        pos = nxt
    return ParseResult(ST_DONE, pos, line_no, n_ev, n_sp, 0, 0, 0)
