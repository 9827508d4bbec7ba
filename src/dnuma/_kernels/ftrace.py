"""Line parser of ftrace text captures (tracefs ``trace`` / ``trace_pipe``) of
the kmem page events.  It runs over a uint8 buffer of whole lines and writes
one row per event into preallocated arrays; the few lines that are not events
(comments, malformed, lost-events notes) go to a second set of arrays.

gfp_flags strings and the names of other events are identified by a 64-bit
hash (:func:`str_hash`) through small open-addressing tables owned by the
caller.  An unseen string stops the parse at its line (status ST_NEW_GFP /
ST_NEW_EVENT) so that the caller can intern it and call again from there.

Line grammar (leading blanks and a trailing CR ignored)::

    comm-pid [(tgid)] [cpu] [irq-flags] sec[.frac]: event: key=value ...

``comm`` may hold blanks, dashes and brackets: the cpu field is the first
``[digits]`` preceded by ``-pid`` (and an optional ``(tgid)`` column).

Under DNUMA_NO_JIT the buffer must be a ``bytes``/``memoryview`` (its items are
Python ints), not a uint8 array.
"""

from __future__ import annotations

import numpy as np

from ._jit import _DISABLED, kernel

# event kinds (the rows' ``kind``)
EV_ALLOC = 0
EV_FREE = 1
EV_FREE_BATCHED = 2
EV_PCPU_DRAIN = 3
EV_ALLOC_FAIL = 4

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

# state array slots
S_LAST_TS = 0  # timestamp of the previous event, ns
S_TS_BACKWARDS = 1  # events whose timestamp is below the previous one
S_BLANK = 2  # blank lines
NR_STATE = 3

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

_PAT_ALLOC = np.frombuffer(b"mm_page_alloc", np.uint8)
_PAT_FREE = np.frombuffer(b"mm_page_free", np.uint8)
_PAT_FREE_DIRECT = np.frombuffer(b"mm_page_free_direct", np.uint8)  # <= 3.2 mm_page_free
_PAT_FREE_BATCHED = np.frombuffer(b"mm_page_free_batched", np.uint8)
_PAT_PAGEVEC_FREE = np.frombuffer(b"mm_pagevec_free", np.uint8)  # <= 3.2 ..._free_batched
_PAT_PCPU_DRAIN = np.frombuffer(b"mm_page_pcpu_drain", np.uint8)
_PAT_PAGE = np.frombuffer(b"page", np.uint8)
_PAT_PFN = np.frombuffer(b"pfn", np.uint8)
_PAT_ORDER = np.frombuffer(b"order", np.uint8)
_PAT_MT = np.frombuffer(b"migratetype", np.uint8)
_PAT_GFP = np.frombuffer(b"gfp_flags", np.uint8)

_HAVE_PAGE = 1
_HAVE_PFN = 2
_HAVE_ORDER = 4
_HAVE_MT = 8
_HAVE_GFP = 16


if _DISABLED:

    def _hash(buf, a, b):
        """str_hash of buf[a:b] (plain Python)."""
        return str_hash(bytes(buf[a:b]))

else:

    @kernel
    def _hash(buf, a, b):
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
    kind = -1
    if n == 13:
        if _eq(buf, a, a + n, _PAT_ALLOC):
            kind = EV_ALLOC
    elif n == 12:
        if _eq(buf, a, a + n, _PAT_FREE):
            kind = EV_FREE
    elif n == 20:
        if _eq(buf, a, a + n, _PAT_FREE_BATCHED):
            kind = EV_FREE_BATCHED
    elif n == 18:
        if _eq(buf, a, a + n, _PAT_PCPU_DRAIN):
            kind = EV_PCPU_DRAIN
    elif n == 19:
        if _eq(buf, a, a + n, _PAT_FREE_DIRECT):
            kind = EV_FREE
    elif n == 15 and _eq(buf, a, a + n, _PAT_PAGEVEC_FREE):
        kind = EV_FREE_BATCHED
    if kind < 0:
        return _L_OTHER, 0, cpu, ts, 0, 0, 0, 0, a, n, _hash(buf, a, a + n)

    # the fields "key=value ..." (unknown keys such as cold= are skipped)
    have = 0
    null_page = False
    pfn = 0
    huge = False
    order = 0
    mt = -1
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
        kl = kb - ka
        if kl == 3 and _eq(buf, ka, kb, _PAT_PFN):
            ok, pfn, huge = _parse_uint(buf, va, q)
            have |= _HAVE_PFN
        elif kl == 4 and _eq(buf, ka, kb, _PAT_PAGE):
            ok, null_page = _parse_page(buf, va, q)
            have |= _HAVE_PAGE
        elif kl == 5 and _eq(buf, ka, kb, _PAT_ORDER):
            ok, order = _parse_int(buf, va, q, 0, 63)
            have |= _HAVE_ORDER
        elif kl == 11 and _eq(buf, ka, kb, _PAT_MT):
            ok, mt = _parse_int(buf, va, q, -128, 127)
            have |= _HAVE_MT
        elif kl == 9 and _eq(buf, ka, kb, _PAT_GFP):
            ok = q > va
            gh = _hash(buf, va, q)
            ga = va
            gl = q - va
            have |= _HAVE_GFP
        else:
            ok = True
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
        elif kind == EV_PCPU_DRAIN:
            need = _HAVE_PFN | _HAVE_ORDER | _HAVE_MT
        else:
            need = _HAVE_PFN
        if (have & need) != need or bad_pfn:
            return _L_MALFORMED, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0
    return _L_EVENT, kind, cpu, ts, pfn, order, mt, gh, ga, gl, 0


@kernel
def table_slot(keys, used, h):
    """The slot of hash ``h`` in an open-addressing table, or the free slot
    where it would go (the table is never full)."""
    mask = keys.shape[0] - 1
    i = h & mask
    while used[i] != 0 and keys[i] != h:
        i = (i + 1) & mask
    return i


@kernel
def parse_lines(buf, pos, end, line_no,
                ev_kind, ev_cpu, ev_ts, ev_pfn, ev_order, ev_mt, ev_gfp, ev_line, n_ev,
                sp_code, sp_line, sp_start, sp_end, n_sp,
                g_keys, g_vals, g_count, g_used, o_keys, o_count, o_used, state):
    """Parse the lines of ``buf[pos:end]`` (``line_no`` lines before them).

    Events go to ``ev_*[n_ev:]`` (gfp resolved through the gfp table), the
    comment / malformed / lost-events lines to ``sp_*[n_sp:]`` (byte spans),
    other events are counted in the other-event table.  Returns (status, pos,
    line_no, n_ev, n_sp, aux_start, aux_len, aux_hash) with ``pos`` the start
    of the first unparsed line; aux is the unseen string for ST_NEW_*.
    """
    cap_ev = ev_kind.shape[0]
    cap_sp = sp_code.shape[0]
    while pos < end:
        if n_ev >= cap_ev or n_sp >= cap_sp:
            return ST_FULL, pos, line_no, n_ev, n_sp, 0, 0, 0
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
            gfp = 0
            if kind in (EV_ALLOC, EV_ALLOC_FAIL):
                slot = table_slot(g_keys, g_used, h)
                if g_used[slot] == 0:
                    return ST_NEW_GFP, pos, line_no, n_ev, n_sp, sa, sl, h
                gfp = g_vals[slot]
                g_count[slot] += 1
            if ts < state[S_LAST_TS]:
                state[S_TS_BACKWARDS] += 1
            state[S_LAST_TS] = ts
            ev_kind[n_ev] = kind
            ev_cpu[n_ev] = cpu
            ev_ts[n_ev] = ts
            ev_pfn[n_ev] = pfn
            ev_order[n_ev] = order
            ev_mt[n_ev] = mt
            ev_gfp[n_ev] = gfp
            ev_line[n_ev] = line_no + 1
            n_ev += 1
        elif code == _L_OTHER:
            slot = table_slot(o_keys, o_used, nh)
            if o_used[slot] == 0:
                return ST_NEW_EVENT, pos, line_no, n_ev, n_sp, sa, sl, nh
            o_count[slot] += 1
        elif code == _L_BLANK:
            state[S_BLANK] += 1
        else:
            sp_code[n_sp] = (SP_COMMENT if code == _L_COMMENT
                             else SP_LOST if code == _L_LOST else SP_MALFORMED)
            sp_line[n_sp] = line_no + 1
            sp_start[n_sp] = pos
            sp_end[n_sp] = le
            n_sp += 1
        line_no += 1
        pos = nxt
    return ST_DONE, pos, line_no, n_ev, n_sp, 0, 0, 0


def new_state() -> np.ndarray:
    """A fresh state array for parse_lines."""
    st = np.zeros(NR_STATE, np.int64)
    st[S_LAST_TS] = np.iinfo(np.int64).min
    return st
