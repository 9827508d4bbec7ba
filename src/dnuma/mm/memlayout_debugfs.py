"""The RFC's debugfs interface to memlayout (mm/memlayout-debugfs.c, with
CONFIG_DNUMA_DEBUGFS_WRITE) as a state machine: no files, just writes and reads.

``<debugfs>/memlayout/`` holds::

    start, end        0600  x64: a pfn, read back as "0x%016llx"
    node              0200  writing a node id adds [start, end] -> node to the
                            pending layout, then start and end go back to 0
    commit            0200  writing any number commits the pending layout
    clear             0200  writing any number drops the pending layout
    moved-pages, pfn-lookup-cache-hits, pfn-lookup-cache-misses   0400 u64
    layout.<seq>/     one 0400 file per range, named "%lX-%lX", reading its nid
    current           symlink to the installed layout's directory

Values are parsed as simple_attr_write does, with ``kstrtoull(buf, 0)``.
A write the kernel refuses raises :class:`DebugfsError` (its ``errno`` names
the kernel's error) and changes nothing.  A commit the model refuses
(LayoutError, NotifyVeto from ``Machine.commit``) also changes nothing and
keeps the pending ranges, so they can be cleared or fixed; in the RFC
``memlayout_commit`` cannot fail.

Simplified: the RFC gives the pending layout its ``layout.<seq>`` directory
as soon as it is created (memlayout_create); here a layout gets its seq when
committed, and only the installed layout and the backlog have directories.
The RFC's later memlayout.c stretches a committed layout over every pfn
(memlayout_expand); the model keeps uncovered pfns where they are, as
:mod:`dnuma.mm.memlayout` does.

Scripts (:func:`parse_script`) are lines of ``FILE [VALUE]`` or the shell form
``echo VALUE > /sys/kernel/debug/memlayout/FILE``.  Running one
(:func:`run_script`) applies the writes in order, like the shell would: when a
write fails, the commits made by earlier lines stay in place.
"""

from __future__ import annotations

import bisect
import re
import shlex
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .._kernels import state as _st
from .dnuma import CommitReport, validate_layout_for
from .errors import DnumaError, LayoutError
from .memlayout import MemLayout

if TYPE_CHECKING:
    from .machine import Machine

DEBUGFS_ROOT = "/sys/kernel/debug/memlayout"
WRITABLE = ("start", "end", "node", "commit", "clear")
STAT_FILES = ("moved-pages", "pfn-lookup-cache-misses", "pfn-lookup-cache-hits")
U64_MAX = (1 << 64) - 1
_PFN_MAX = (1 << 63) - 1  # the model's pfns are int64

_DIGITS = {8: frozenset("01234567"), 10: frozenset("0123456789"),
           16: frozenset("0123456789abcdefABCDEF")}
_RANGE_RE = re.compile(r"^([0-9a-fA-F]+)-([0-9a-fA-F]+)$")
_FD_REDIRECT_RE = re.compile(r"(?:^|\s)\d+>")


class DebugfsError(DnumaError, ValueError):
    """A debugfs write or read the kernel would refuse.

    errno: the kernel's error name (EINVAL, ERANGE, ENOENT, EACCES, EISDIR).
    """

    def __init__(self, message: str, errno: str = "EINVAL") -> None:
        super().__init__(message)
        self.errno = errno


@dataclass(frozen=True)
class DebugfsWrite:
    """One write of a script: ``value`` (text) to ``memlayout/<name>``."""

    name: str
    value: str
    source: str = "<script>"
    line: int = 0

    @property
    def where(self) -> str:
        return f"{self.source}:{self.line}"


class ScriptError(DebugfsError):
    """A script line failed: the message starts with ``source:line``.

    write: the failing write; cause: its error; reports: the commits the
    earlier lines made (they stay in place).
    """

    def __init__(self, write: DebugfsWrite, cause: Exception,
                 reports: list[CommitReport]) -> None:
        errno = cause.errno if isinstance(cause, DebugfsError) else "EINVAL"
        super().__init__(f"{write.where}: {cause}", errno)
        self.write = write
        self.cause = cause
        self.reports = reports


def kstrtoull(text: str) -> int:
    """``kstrtoull(s, 0)``: decimal, ``0x`` hex or ``0`` octal, an optional
    leading ``+``, in [0, 2**64).  Surrounding whitespace is ignored (the
    kernel takes only one trailing newline, which is what ``echo`` adds)."""
    s = text.strip()
    if s.startswith("+"):
        s = s[1:]
    # _parse_integer_fixup_radix: "0x" needs a hex digit after it, else octal
    if s[:2] in ("0x", "0X") and len(s) > 2 and s[2] in _DIGITS[16]:
        base, digits = 16, s[2:]
    elif s.startswith("0"):
        base, digits = 8, s
    else:
        base, digits = 10, s
    if not digits or not set(digits) <= _DIGITS[base]:
        what = {8: "octal", 10: "decimal", 16: "hex"}[base]
        raise DebugfsError(f"{text.strip()!r} is not a number (expected decimal, 0x hex "
                           f"or 0 octal; read as {what})", "EINVAL")
    v = int(digits, base)
    if v > U64_MAX:
        raise DebugfsError(f"{text.strip()!r} does not fit in 64 bits", "ERANGE")
    return v


def _rel(path: str) -> str:
    """A path inside ``memlayout/``: anything up to ``memlayout/`` is dropped."""
    p = path.strip()
    k = p.rfind("memlayout/")
    if k >= 0:
        p = p[k + len("memlayout/"):]
    return p.strip("/")


class MemlayoutDebugfs:
    """``<debugfs>/memlayout/`` of one machine: the user's start/end/node
    values, the pending layout (``user_ml``) and the read-only files.

    The kernel has one such directory; use one instance per machine.
    """

    def __init__(self, machine: Machine) -> None:
        self.machine = machine
        self.start = 0  # dnuma_user_start (pfn)
        self.end = 0  # dnuma_user_end (pfn, inclusive)
        self.node = 0  # dnuma_user_node: the last node written successfully
        self.commit_value = 0  # dnuma_user_commit (u8)
        self.clear_value = 0  # dnuma_user_clear (u8)
        self.last_report: CommitReport | None = None
        # user_ml: pending ranges sorted by start pfn (inclusive ends)
        self._starts: list[int] = []
        self._ends: list[int] = []
        self._nids: list[int] = []

    # ---- state -----------------------------------------------------------
    @property
    def nr_node_ids(self) -> int:
        """Highest possible node + 1: ``node`` takes ids below it."""
        return self.machine.topo.nr_node_ids

    @property
    def pending(self) -> list[tuple[int, int, int]]:
        """The pending ranges ``(pfn_start, pfn_end_inclusive, nid)`` in pfn order."""
        return list(zip(self._starts, self._ends, self._nids, strict=True))

    # ---- writes ----------------------------------------------------------
    def write(self, name: str, value: str) -> CommitReport | None:
        """Write ``value`` to ``memlayout/<name>`` (a full path works too).

        Returns the report of a commit that installed a layout, else None.
        Raises DebugfsError (or, for commit, LayoutError / NotifyVeto) with
        nothing changed.
        """
        f = _rel(name)
        if f not in WRITABLE:
            if f in STAT_FILES or f == "current" or f.startswith("layout."):
                raise DebugfsError(f"memlayout/{f} is read-only", "EACCES")
            raise DebugfsError(f"memlayout/{f}: no such file (writable: "
                               f"{', '.join(WRITABLE)})", "ENOENT")
        try:
            val = kstrtoull(value)
        except DebugfsError as exc:
            raise DebugfsError(f"memlayout/{f}: {exc}", exc.errno) from None
        if f == "start":
            self.start = val
        elif f == "end":
            self.end = val
        elif f == "node":
            self._node_write(val)
        elif f == "commit":
            return self._commit_write(val)
        else:
            self._clear_write(val)
        return None

    def _node_write(self, nid: int) -> None:
        """``dnuma_user_node_watch`` + ``memlayout_new_range``."""
        # the kernel passes the u64 to a u32 parameter (4294967298 becomes
        # node 2); the model refuses any value >= nr_node_ids instead
        if nid >= self.nr_node_ids:
            raise DebugfsError(f"memlayout/node: node {nid} >= nr_node_ids "
                               f"({self.nr_node_ids})", "EINVAL")
        s, e = self.start, self.end
        if s > e:
            raise DebugfsError(f"memlayout/node: start {s:#x} > end {e:#x}", "EINVAL")
        # find_insertion_point: a range sharing a pfn with a pending one is
        # refused (memlayout_new_range returns 1: a short write, and echo's
        # retry of the rest gets EINVAL); adjacent ranges are fine
        i = bisect.bisect_right(self._starts, s)
        for k in (i - 1, i):
            if 0 <= k < len(self._starts) and self._starts[k] <= e and s <= self._ends[k]:
                raise DebugfsError(
                    f"memlayout/node: range {s:#x}-{e:#x} -> node {nid} overlaps the pending "
                    f"range {self._starts[k]:#x}-{self._ends[k]:#x} -> node {self._nids[k]}",
                    "EINVAL")
        self._starts.insert(i, s)
        self._ends.insert(i, e)
        self._nids.insert(i, nid)
        self.start = self.end = 0
        self.node = nid

    def _commit_write(self, val: int) -> CommitReport | None:
        """``dnuma_user_commit_watch``: commit the pending layout, if any, and
        start a new one.  With no ranges pending nothing happens (the kernel
        only commits a ``user_ml`` that exists)."""
        if not self._starts:
            self.commit_value = val & 0xFF
            return None
        m = self.machine
        k = next((j for j, e in enumerate(self._ends) if e > _PFN_MAX), -1)
        if k >= 0:
            last = m.ram_ranges()[-1][1] - 1
            raise LayoutError(f"range {self._starts[k]:#x}-{self._ends[k]:#x}: beyond the "
                              f"end of memory (last pfn {last:#x})")
        report = self._install(MemLayout.from_ranges(self.pending))
        self._starts, self._ends, self._nids = [], [], []
        self.commit_value = val & 0xFF
        if report is not None:
            self.last_report = report
        return report

    def _install(self, layout: MemLayout) -> CommitReport | None:
        """memlayout_commit: install ``layout`` on the machine."""
        return self.machine.commit(layout)

    def _clear_write(self, val: int) -> None:
        """``dnuma_user_clear_watch``: drop the pending layout (start and end stay)."""
        self._starts, self._ends, self._nids = [], [], []
        self.clear_value = val & 0xFF

    def run_script(self, writes: Iterable[DebugfsWrite]) -> list[CommitReport]:
        """Apply ``writes`` in order; returns the reports of the commits made.

        A failing write raises ScriptError (``source:line: ...``); the commits
        of earlier lines stay in place, as they would after a shell script
        stopped at that line, and are in the error's ``reports``.
        """
        reports: list[CommitReport] = []
        for w in writes:
            try:
                rep = self.write(w.name, w.value)
            except DnumaError as exc:
                raise ScriptError(w, exc, reports) from exc
            if rep is not None:
                reports.append(rep)
        return reports

    # ---- reads -----------------------------------------------------------
    def layouts(self) -> dict[int, MemLayout]:
        """The layouts with a ``layout.<seq>`` directory: the backlog and current."""
        out = {ml.seq: ml for ml in self.machine.backlog}
        out[self.machine.layout.seq] = self.machine.layout
        return out

    def readlink(self, name: str = "current") -> str:
        """``current`` -> ``layout.<seq>`` of the installed layout."""
        if _rel(name) != "current":
            raise DebugfsError(f"memlayout/{_rel(name)}: not a symlink", "EINVAL")
        return f"layout.{self.machine.layout.seq}"

    def _dir_layout(self, d: str) -> MemLayout | None:
        if d == "current":
            d = self.readlink()
        if d.startswith("layout.") and d[7:].isdigit():
            return self.layouts().get(int(d[7:]))
        return None

    def listdir(self, path: str = "") -> list[str]:
        """The names in ``memlayout/`` or in one of its layout directories."""
        p = _rel(path)
        if p in ("", "memlayout"):
            return [*STAT_FILES, *WRITABLE, "current",
                    *(f"layout.{s}" for s in sorted(self.layouts()))]
        ml = self._dir_layout(p)
        if ml is None:
            raise DebugfsError(f"memlayout/{p}: no such directory", "ENOENT")
        return [n for n, _nid in ml.debugfs_names()]

    def read(self, name: str) -> str:
        """The text a read of ``memlayout/<name>`` gives (with its newline).

        ``start``/``end``: ``0x%016llx``; ``node``, ``commit``, ``clear``: the
        last value written (the kernel's 0200 files, readable by root);
        counters in decimal; ``layout.<seq>/<A>-<B>`` (or ``current/...``):
        the range's nid.  Range names are matched by value, so both the
        ``%lX`` and the later ``%05lx`` spellings work.
        """
        f = _rel(name)
        m = self.machine
        simple = {
            "start": lambda: f"0x{self.start:016x}",
            "end": lambda: f"0x{self.end:016x}",
            "node": lambda: str(self.node),
            "commit": lambda: str(self.commit_value),
            "clear": lambda: str(self.clear_value),
            "moved-pages": lambda: str(m.moved_pages),
            "pfn-lookup-cache-hits": lambda: str(int(m.S.counters[_st.C_LOOKUP_HITS])),
            "pfn-lookup-cache-misses": lambda: str(int(m.S.counters[_st.C_LOOKUP_MISSES])),
        }
        if f in simple:
            return simple[f]() + "\n"
        if "/" not in f:
            if f in ("", "current") or self._dir_layout(f) is not None:
                raise DebugfsError(f"memlayout/{f} is a directory", "EISDIR")
            raise DebugfsError(f"memlayout/{f}: no such file", "ENOENT")
        d, rng = f.rsplit("/", 1)
        ml = self._dir_layout(d)
        if ml is None:
            raise DebugfsError(f"memlayout/{d}: no such directory", "ENOENT")
        mt = _RANGE_RE.match(rng)
        if mt:
            s, e = int(mt.group(1), 16), int(mt.group(2), 16)
            for rs, re_, nid in ml:
                if (rs, re_) == (s, e):
                    return f"{nid}\n"
        raise DebugfsError(f"memlayout/{f}: no such file (ranges of {d}: "
                           f"{', '.join(n for n, _ in ml.debugfs_names()[:4])}"
                           f"{', ...' if len(ml) > 4 else ''})", "ENOENT")


# ---- scripts ---------------------------------------------------------------
_EXPECTED = ("expected 'FILE [VALUE]' or 'echo VALUE > .../memlayout/FILE' with FILE one of "
             + ", ".join(WRITABLE))


class DebugfsDryRun(MemlayoutDebugfs):
    """The directory of ``machine`` for checking scripts before they run:
    writes are refused as they would be, and a commit only validates its
    layout against the machine (``validate_layout_for``), committing nothing."""

    def _install(self, layout: MemLayout) -> CommitReport | None:
        validate_layout_for(self.machine, layout)
        return None


def _script_error(source: str, lineno: int, msg: str) -> DebugfsError:
    return DebugfsError(f"{source}:{lineno}: {msg}", "EINVAL")


def _basename(path: str) -> str:
    return path.rstrip("/").rsplit("/", 1)[-1]


def parse_script(text: str, source: str = "<script>") -> list[DebugfsWrite]:
    """Parse a debugfs write script: one write a line, ``#`` comments and blank
    lines ignored.  A line is ``FILE [VALUE]`` (``commit`` and ``clear`` write
    1 when no value is given) or ``echo [-n] VALUE > PATH`` where PATH ends in
    the file's name.  Values are checked here, so a malformed line fails
    before anything runs.  Raises DebugfsError naming ``source:line``.
    """
    out: list[DebugfsWrite] = []
    for lineno, raw in enumerate(text.splitlines(), 1):
        try:
            lx = shlex.shlex(raw, posix=True, punctuation_chars="<>|&;()")
            lx.whitespace_split = True
            toks = list(lx)
        except ValueError as exc:
            raise _script_error(source, lineno, f"{exc} in {raw.strip()!r}") from None
        if not toks:
            continue
        if toks[0] == "echo":
            if _FD_REDIRECT_RE.search(raw):
                raise _script_error(source, lineno, "'N>' redirects file descriptor N in a "
                                    f"shell: put a space before '>' in {raw.strip()!r}")
            args = toks[1:]
            while args and args[0] in ("-n", "-e", "-E"):
                args = args[1:]
            if len(args) != 3 or args[1] not in (">", ">>"):
                raise _script_error(source, lineno, f"{_EXPECTED}, got {raw.strip()!r}")
            value, name = args[0], _basename(args[2])
        else:
            name = _basename(toks[0])
            if name not in WRITABLE or len(toks) > 2:
                raise _script_error(source, lineno, f"{_EXPECTED}, got {raw.strip()!r}")
            if len(toks) == 1:
                if name in ("start", "end", "node"):
                    raise _script_error(source, lineno, f"{name}: expected a value "
                                        f"({'a pfn' if name != 'node' else 'a node id'})")
                toks.append("1")
            value = toks[1]
        if name not in WRITABLE:
            raise _script_error(source, lineno, f"memlayout/{name}: not a writable file "
                                f"({', '.join(WRITABLE)})")
        try:
            kstrtoull(value)
        except DebugfsError as exc:
            raise _script_error(source, lineno, f"{name}: {exc}") from None
        out.append(DebugfsWrite(name, value, source, lineno))
    return out


def run_script(machine: Machine, writes: Iterable[DebugfsWrite]) -> list[CommitReport]:
    """Apply ``writes`` to a fresh ``memlayout/`` of ``machine`` (see
    :meth:`MemlayoutDebugfs.run_script`: earlier commits stay if a line fails)."""
    return MemlayoutDebugfs(machine).run_script(writes)


def format_script(layout: MemLayout, shell: bool = False, root: str = DEBUGFS_ROOT) -> str:
    """The writes that make ``layout`` through debugfs, ending with a commit:
    ``start``/``end`` in hex pfns, ``node`` in decimal.  ``shell=True`` gives
    ``echo VALUE > root/FILE`` lines a root shell on an RFC kernel can run."""
    lines: list[str] = []

    def put(name: str, value: str) -> None:
        lines.append(f"echo {value} > {root}/{name}" if shell else f"{name} {value}")

    for s, e, nid in layout:
        put("start", f"{s:#x}")
        put("end", f"{e:#x}")
        put("node", str(nid))
    put("commit", "1")
    return "\n".join(lines) + "\n"


__all__ = ["DEBUGFS_ROOT", "STAT_FILES", "WRITABLE", "DebugfsError", "DebugfsWrite",
           "MemlayoutDebugfs", "ScriptError", "format_script", "kstrtoull", "parse_script",
           "run_script"]
