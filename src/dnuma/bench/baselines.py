"""Same-run baselines: what this machine does in the time the model takes.

Each returns an :data:`~dnuma.bench.harness.Op` (a callable timing itself) so
the harness can interleave it with the model's operation.
"""

from __future__ import annotations

import mmap
import subprocess
import sys
import time
from collections.abc import Sequence

import numpy as np

from . import BenchError
from .harness import Op


def one_pass(nr_pfns: int, passes: int = 8) -> Op:
    """numpy writing one byte for every pfn (``buf.fill`` of a
    ``uint8[nr_pfns]`` already faulted in): the floor of any per-pfn pass.
    A sample is the mean of ``passes`` passes in a row (one pass of a 1 TiB
    machine takes milliseconds: too short to time alone on a busy host)."""
    buf = np.zeros(nr_pfns, dtype=np.uint8)

    def op() -> float:
        t0 = time.perf_counter()
        for k in range(passes):
            buf.fill(k & 1)
        return (time.perf_counter() - t0) / passes
    return op


def host_populate(nbytes: int) -> Op:
    """The host kernel populating and unmapping ``nbytes`` of anonymous
    memory (``mmap(MAP_PRIVATE|MAP_ANONYMOUS|MAP_POPULATE)``, then munmap):
    one page allocation and one page free per 4 KiB page."""
    flags = mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | getattr(mmap, "MAP_POPULATE", 0x8000)

    def op() -> float:
        t0 = time.perf_counter()
        mm = mmap.mmap(-1, nbytes, flags=flags)
        mm.close()
        return time.perf_counter() - t0
    return op


def dense_nid_table(starts: np.ndarray, ends: np.ndarray, nids: np.ndarray,
                    nr_pfns: int) -> np.ndarray:
    """A per-pfn ``int16`` nid table (-1 where uncovered) of a layout: what a
    lookup would cost with 2 bytes a pfn of memory (``page_to_nid``)."""
    table = np.full(nr_pfns, -1, dtype=np.int16)
    if starts.size and int(starts[0]) == 0 and np.array_equal(starts[1:], ends[:-1] + 1) \
            and int(ends[-1]) == nr_pfns - 1:
        table[:] = np.repeat(nids.astype(np.int16), ends - starts + 1)
        return table
    for s, e, n in zip(starts.tolist(), ends.tolist(), nids.tolist(), strict=True):
        table[s:e + 1] = n
    return table


def dense_lookup(table: np.ndarray, pfns: np.ndarray) -> Op:
    """``np.take(table, pfns)``: a vectorised lookup in the dense table."""
    def op() -> float:
        t0 = time.perf_counter()
        np.take(table, pfns)
        return time.perf_counter() - t0
    return op


def run_process(argv: Sequence[str], name: str = "") -> bytes:
    """Run ``argv`` as a new process to its exit: its stdout (stderr
    captured); :class:`~dnuma.bench.BenchError` with the last line of its
    stderr unless it exits 0.  ``name`` stands for ``argv`` in the error."""
    proc = subprocess.run(list(argv), capture_output=True, check=False)
    if proc.returncode != 0:
        err = proc.stderr.decode(errors="replace").strip().splitlines()[-1:]
        raise BenchError(f"{name or ' '.join(argv)}: exit {proc.returncode}: {' '.join(err)}")
    return proc.stdout


def new_process(argv: Sequence[str]) -> Op:
    """Wall time of running ``argv`` as a new process to its exit
    (:func:`run_process`)."""
    def op() -> float:
        t0 = time.perf_counter()
        run_process(argv)
        return time.perf_counter() - t0
    return op


def python_pass() -> Op:
    """``python -c pass``: the interpreter's own start-up."""
    return new_process([sys.executable, "-c", "pass"])
