"""Kernel text formats shared by the sysfs and procfs writers: bitmaps printed
with ``%*pb`` / ``%*pbl`` (lib/vsprintf.c) and the node ``distance`` line.

Bitmaps are given as set-bit indices (any iterable of ints) or as a bool
array indexed by bit.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

CHUNKSZ = 32  # bitmap_string(): bits per comma-separated chunk

Bits = Iterable[int] | np.ndarray


def _bit_indices(bits: Bits) -> list[int]:
    """Sorted set-bit indices of ``bits`` (indices, or a bool array by bit)."""
    if isinstance(bits, np.ndarray) and bits.dtype == np.bool_:
        return np.flatnonzero(bits).tolist()
    return sorted({int(b) for b in bits})


def bitmap_string(bits: Bits, nbits: int) -> str:
    """``%*pb`` of a bitmap of ``nbits`` bits (``bitmap_string()``).

    Lowercase hex in 32-bit chunks, most significant first, comma separated;
    the first chunk has ``ceil((nbits mod 32 or 32) / 4)`` digits, the others
    8 zero-padded digits.  nbits=8, bits 0-3 -> ``0f``; nbits=64 ->
    ``00000000,0000000f``.  Bits at or above ``nbits`` are ignored.
    """
    if nbits <= 0:
        return ""
    val = 0
    for b in _bit_indices(bits):
        if 0 <= b < nbits:
            val |= 1 << b
    chunksz = nbits % CHUNKSZ or CHUNKSZ
    out: list[str] = []
    i = -(-nbits // CHUNKSZ) * CHUNKSZ - CHUNKSZ
    while i >= 0:
        out.append(f"{(val >> i) & ((1 << chunksz) - 1):0{-(-chunksz // 4)}x}")
        chunksz = CHUNKSZ
        i -= CHUNKSZ
    return ",".join(out)


def bitmap_list_string(bits: Bits) -> str:
    """``%*pbl``: set bits as decimal ranges, ``0-3,8-11``; empty -> ``""``
    (``bitmap_list_string()``: a run of one bit prints as ``N``)."""
    idx = _bit_indices(bits)
    out: list[str] = []
    k = 0
    while k < len(idx):
        j = k
        while j + 1 < len(idx) and idx[j + 1] == idx[j] + 1:
            j += 1
        out.append(str(idx[k]) if j == k else f"{idx[k]}-{idx[j]}")
        k = j + 1
    return ",".join(out)


def distance_line(row: Iterable[int], online: Bits) -> str:
    """``nodeN/distance`` (``node_read_distance()``): ``node_distance(N, i)``
    for each online node ``i`` ascending, separated by spaces, then ``\\n``.

    row: the SLIT row of node N, indexed by node id.  The kernel puts the
    space before every node ``i != 0`` rather than between values, so when
    node 0 is offline the line starts with a space (kept here).
    """
    r = list(row)
    return "".join(f"{' ' if i else ''}{int(r[i])}" for i in _bit_indices(online)) + "\n"


__all__ = ["CHUNKSZ", "bitmap_list_string", "bitmap_string", "distance_line"]
