"""Boot-time hand-over of free memory to the buddy allocator, compiled."""

from __future__ import annotations

import numpy as np

from ._jit import kernel
from .alloc import chunk_order
from .buddy import page_gz, split_large_buddy
from .state import P_MAX_ORDER

FPI_TO_TAIL = True


@kernel
def free_pages_memory(S, starts, ends):
    """__free_pages_memory for each [start, end): maximal aligned chunks, freed
    with FPI_TO_TAIL as memblock_free_all does (__free_pages_core ->
    __free_pages_ok -> free_one_page, pageblock by pageblock).  Returns
    pages freed."""
    max_order = S.params[P_MAX_ORDER]
    total = 0
    for r in range(starts.shape[0]):
        p = starts[r]
        end = ends[r]
        while p < end:
            o = chunk_order(p, end, max_order)
            split_large_buddy(S, p, o, page_gz(S, p), FPI_TO_TAIL)
            n = np.int64(1) << o
            total += n
            p += n
    return total
