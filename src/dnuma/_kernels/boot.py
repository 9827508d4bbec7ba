"""Boot-time hand-over of free memory to the buddy allocator, compiled."""

from __future__ import annotations

import numpy as np

from ._jit import kernel
from .alloc import chunk_order
from .buddy import free_one_page, page_gz
from .state import P_MAX_ORDER, P_PB_ORDER

FPI_TO_TAIL = True


@kernel
def free_pages_memory(S, starts, ends):
    """__free_pages_memory for each [start, end): maximal aligned chunks, freed
    with FPI_TO_TAIL as memblock_free_all does.  Returns pages freed."""
    max_order = S.params[P_MAX_ORDER]
    pbo = S.params[P_PB_ORDER]
    total = 0
    for r in range(starts.shape[0]):
        p = starts[r]
        end = ends[r]
        while p < end:
            o = chunk_order(p, end, max_order)
            free_one_page(S, p, o, page_gz(S, p), S.pb_mt[p >> pbo], FPI_TO_TAIL)
            n = np.int64(1) << o
            total += n
            p += n
    return total
